"""The error policy: every way the server can fail a session, and the one action each one gets.

One table, :data:`POLICY`, maps every server ``error`` code, ``error`` type, websocket close code
and handshake HTTP status the plugin knows to an :class:`Action` and the advice its log line
carries. The session core and the transport look failures up here and compare actions by
identity; no other module compares error codes. Sources are in ``docs/protocol.md`` (§1.7 close
codes, §3.3 the refused commit, §4.4 the error catalogue, §6 session lifetime).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal


class Action(enum.Enum):
    """What the client does about a failure."""

    WARN = "warn"
    """Benign: one WARNING, the session goes on."""
    REFUSED_COMMIT = "refused_commit"
    """The server refused a commit and kept its buffer (less than 100 ms in it): the commit's
    audio goes with the next commit. The session goes on."""
    ROLL_OVER = "roll_over"
    """The session reached its maximum duration: move to a new session, replaying what is owed.
    Planned: no retry budget is spent."""
    RECONNECT = "reconnect"
    """Transient: open a new session and replay what is not transcribed yet."""
    FATAL = "fatal"
    """Configuration or account problem that a retry cannot fix: one ERROR, the stream fails."""


@dataclass(frozen=True)
class Verdict:
    """An :class:`Action` and the advice the log line (and the exception) carries."""

    action: Action
    hint: str


KeyKind = Literal["code", "type", "close", "http"]
"""Which field of a failure a :data:`POLICY` key matches: an ``error.code``, an ``error.type``,
a websocket close code or a handshake HTTP status."""

_OPTIONS_HINT = "check the STT options (model, language, delay, prompt, turn_detection)"
_KEY_HINT = (
    "the key was refused: set a valid OPENAI_API_KEY or api_key= "
    "(Azure: AZURE_OPENAI_API_KEY, or an Entra token with access to the resource)"
)

POLICY: Mapping[tuple[KeyKind, str | int], Verdict] = {
    # -- error codes that leave the session open (§3.3, §4.4) --------------------------------
    ("code", "input_audio_buffer_commit_empty"): Verdict(
        Action.REFUSED_COMMIT, "a commit found less than 100 ms of audio in the server's buffer"
    ),
    # -- the session is over: a planned move to a new one (§4.4, §6) ---------------------------
    ("code", "session_expired"): Verdict(
        Action.ROLL_OVER, "the session reached its maximum duration"
    ),
    # -- transient server trouble (§4.4) --------------------------------------------------------
    ("code", "server_error"): Verdict(Action.RECONNECT, "transient server failure"),
    ("code", "rate_limit_exceeded"): Verdict(Action.RECONNECT, "rate limited"),
    ("type", "server_error"): Verdict(Action.RECONNECT, "transient server failure"),
    # -- configuration (§1.2, §4.4) -------------------------------------------------------------
    ("code", "invalid_model"): Verdict(
        Action.FATAL,
        "the server refused the model: check model=, and use model_in_url=True only with a "
        "gateway that routes on ?model=",
    ),
    ("code", "invalid_value"): Verdict(Action.FATAL, _OPTIONS_HINT),
    ("code", "unknown_parameter"): Verdict(Action.FATAL, _OPTIONS_HINT),
    ("code", "invalid_parameter"): Verdict(
        Action.FATAL, "base_url must point at a transcription-capable /v1 endpoint"
    ),
    ("code", "beta_api_shape_disabled"): Verdict(
        Action.FATAL, "the server wants the GA protocol; check base_url and proxies"
    ),
    # -- account (§4.4) ---------------------------------------------------------------------------
    ("code", "invalid_api_key"): Verdict(Action.FATAL, _KEY_HINT),
    ("code", "insufficient_quota"): Verdict(Action.FATAL, "the account has no quota left"),
    ("code", "account_deactivated"): Verdict(Action.FATAL, "the account is deactivated"),
    ("code", "billing_hard_limit_reached"): Verdict(
        Action.FATAL, "the account reached its billing limit"
    ),
    ("code", "credit_balance_exhausted"): Verdict(Action.FATAL, "the account has no credit left"),
    ("type", "authentication_error"): Verdict(Action.FATAL, _KEY_HINT),
    ("type", "permission_error"): Verdict(Action.FATAL, "the key lacks access to this model"),
    # -- websocket close codes (§1.7) -------------------------------------------------------------
    # 4000 carries "<type>.<code>" in its reason and gets that error's verdict (classify_close)
    # 1001 "going away": the server shuts the session down (deploys, and, with a reason that
    # names the maximum duration, expiry; see classify_close)
    ("close", 1001): Verdict(Action.RECONNECT, "the server is going away"),
    # -- handshake HTTP statuses (§1.3) -----------------------------------------------------------
    ("http", 401): Verdict(Action.FATAL, _KEY_HINT),
    ("http", 403): Verdict(Action.FATAL, "the key lacks access to this endpoint or model"),
    ("http", 404): Verdict(Action.FATAL, "check base_url: the endpoint does not exist"),
    ("http", 408): Verdict(Action.RECONNECT, "the server timed out the handshake"),
    ("http", 409): Verdict(Action.RECONNECT, "transient conflict"),
    ("http", 429): Verdict(Action.RECONNECT, "rate limited"),
}
"""Every known failure and its verdict, keyed by ``(kind, value)``."""

_UNKNOWN_CLOSE = Verdict(Action.RECONNECT, "the connection closed")
_UNKNOWN_5XX = Verdict(Action.RECONNECT, "transient server failure")
_UNKNOWN_HTTP = Verdict(Action.FATAL, "check base_url: the endpoint refused the upgrade")
_UNKNOWN_WHILE_CONFIGURING = Verdict(Action.FATAL, _OPTIONS_HINT)
_UNKNOWN_WHILE_LIVE = Verdict(Action.WARN, "unrecognised error; the session stays open")

EXPIRY_REASON_WORDS = ("maximum duration",)
"""Words of a close reason that mark a session expiry (observed: close 1001 "Your session hit
the maximum duration of 60 minutes.", §6)."""


def classify_error(code: str | None, type_: str | None, *, configuring: bool) -> Verdict:
    """The verdict on an ``error`` event: by code, then by type.

    An unknown error while the session is being configured (before ``session.updated``) is
    fatal, since the session would run with settings it refused. Once the session is live an
    unknown error is a warning: "most errors are recoverable and the session will stay open"
    (§4.1.9).
    """
    if code is not None and (verdict := POLICY.get(("code", code))) is not None:
        return verdict
    if type_ is not None and (verdict := POLICY.get(("type", type_))) is not None:
        return verdict
    return _UNKNOWN_WHILE_CONFIGURING if configuring else _UNKNOWN_WHILE_LIVE


def classify_close(code: int | None, reason: str) -> Verdict:
    """The verdict on a websocket close the client did not ask for.

    A 4000 close names the error as ``"<type>.<code>"`` (§1.7) and gets that error's verdict,
    fatal unless the table says otherwise. A close whose reason names the maximum duration is
    an expiry (a planned roll-over). Every other close is transient.
    """
    if code == 4000:
        err_type, _, err_code = reason.partition(".")
        verdict = POLICY.get(("code", err_code)) or POLICY.get(("type", err_type))
        if verdict is None or verdict.action in (Action.WARN, Action.REFUSED_COMMIT):
            return Verdict(
                Action.FATAL, f"the server refused the session ({reason or 'no reason'})"
            )
        return verdict
    if any(word in reason.lower() for word in EXPIRY_REASON_WORDS):
        return POLICY[("code", "session_expired")]
    if code is not None and (verdict := POLICY.get(("close", code))) is not None:
        return verdict
    return _UNKNOWN_CLOSE


def classify_http_status(status: int) -> Verdict:
    """The verdict on a refused websocket handshake."""
    verdict = POLICY.get(("http", status))
    if verdict is not None:
        return verdict
    return _UNKNOWN_5XX if status >= 500 else _UNKNOWN_HTTP
