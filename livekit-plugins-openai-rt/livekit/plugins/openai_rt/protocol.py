"""Sans-I/O core of the OpenAI Realtime transcription protocol.

Turns configuration into client events, server JSON into small typed records, and server
failures (error codes, close codes, HTTP statuses) into one :class:`ErrorAction`. Nothing here
touches a socket, a clock or an event loop, so all of it is tested without one.

Protocol facts come from ``openai-realtime-protocol.md``; section numbers are cited inline.
"""

from __future__ import annotations

import base64
import enum
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

SAMPLE_RATE = 24000
"""The only PCM rate transcription sessions accept (§2.2 ``format``)."""

BYTES_PER_SECOND = SAMPLE_RATE * 2
"""pcm16 mono at 24 kHz."""

MIN_COMMIT_BYTES = BYTES_PER_SECOND // 10
"""A commit of less than 100 ms fails with ``input_audio_buffer_commit_empty`` (§3.3)."""

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"

TurnDetection = Mapping[str, Any]
"""A ``server_vad`` / ``semantic_vad`` object as sent in ``audio.input.turn_detection``."""

TURN_DETECTION_TYPES = ("server_vad", "semantic_vad")


# --------------------------------------------------------------------------------------------
# client events


@dataclass(frozen=True)
class SessionConfig:
    """Everything a transcription ``session.update`` carries."""

    model: str
    language: str | None = None
    delay: str | None = None
    prompt: str | None = None
    turn_detection: TurnDetection | None = None
    noise_reduction: str | None = None
    logprobs: bool = False


def session_update(config: SessionConfig, *, event_id: str | None = None) -> dict[str, Any]:
    """The GA ``session.update`` for a transcription session (§2.1).

    ``turn_detection`` is always sent, as ``null`` when the client commits, because a session
    starts with server VAD on (§3.4) and gpt-realtime-whisper needs it off.
    """
    transcription: dict[str, Any] = {"model": config.model}
    if config.language:
        transcription["language"] = config.language
    if config.delay is not None:
        transcription["delay"] = config.delay
    if config.prompt is not None:
        transcription["prompt"] = config.prompt
    audio_input: dict[str, Any] = {
        "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
        "transcription": transcription,
        "turn_detection": dict(config.turn_detection) if config.turn_detection else None,
        "noise_reduction": {"type": config.noise_reduction} if config.noise_reduction else None,
    }
    session: dict[str, Any] = {"type": "transcription", "audio": {"input": audio_input}}
    if config.logprobs:
        session["include"] = [LOGPROBS_INCLUDE]
    event: dict[str, Any] = {"type": "session.update", "session": session}
    if event_id is not None:
        event["event_id"] = event_id
    return event


_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_APPEND_TAIL = b'"}'


def append_message(pcm: bytes | bytearray | memoryview) -> bytes:
    """A serialized ``input_audio_buffer.append`` (§3.2), as the UTF-8 payload of a text frame.

    Built without ``json.dumps`` or a str round trip: base64 is ASCII and needs no JSON
    escaping, so the message is two constant byte strings around the encoded audio.
    """
    return _APPEND_HEAD + base64.b64encode(pcm) + _APPEND_TAIL


def commit_message(event_id: str) -> bytes:
    """A serialized ``input_audio_buffer.commit``; ``event_id`` lets errors name the commit."""
    return b'{"type":"input_audio_buffer.commit","event_id":' + json.dumps(event_id).encode() + b"}"


def encode(event: Mapping[str, Any]) -> bytes:
    """Serialize a client event as the UTF-8 payload of a text frame."""
    return json.dumps(event, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# server events


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """``session.created``: the first server event (§4.1.1)."""

    session_id: str
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """``session.updated``: the effective configuration after an update (§4.1.2)."""

    session_id: str
    session: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started`` (server VAD only, §3.4)."""

    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """``input_audio_buffer.speech_stopped`` (server VAD only, §3.4)."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class Committed:
    """``input_audio_buffer.committed``: an item was created from the buffer (§4.1.3)."""

    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class Cleared:
    """``input_audio_buffer.cleared``."""


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """``…input_audio_transcription.delta``: text to append to the item's transcript (§4.1.4)."""

    item_id: str
    delta: str
    logprobs: Sequence[float] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """The ``usage`` of a completed transcription: seconds for duration-billed models, tokens
    for token-billed ones (§4.1.5)."""

    kind: Literal["duration", "tokens"]
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    audio_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptCompleted:
    """``…input_audio_transcription.completed`` (§4.1.5)."""

    item_id: str
    transcript: str
    usage: Usage | None = None
    logprobs: Sequence[float] | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptFailed:
    """``…input_audio_transcription.failed``: no ``completed`` follows for the item (§4.1.7)."""

    item_id: str
    error: ServerError


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` event (§4.1.9). ``event_id`` is the client event that caused it, if any."""

    code: str | None
    type: str | None
    message: str
    param: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed event the transcription client has no use for (``conversation.item.*``)."""

    type: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """An event type this client does not know; the stream goes on (§4: ignore unknown types)."""

    type: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that is not a JSON object with a string ``type``."""

    reason: str


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | Committed
    | Cleared
    | TranscriptDelta
    | TranscriptCompleted
    | TranscriptFailed
    | ServerError
    | Ignored
    | Unknown
    | Malformed
)

_IGNORED_TYPES = frozenset(
    {
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.timeout_triggered",
        "rate_limits.updated",
    }
)


def parse_server_event(raw: str | bytes) -> ServerEvent:
    """Parse one server text frame into a typed record. Never raises."""
    try:
        ev = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        return Malformed(f"not JSON: {e}")
    if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
        return Malformed("not an object with a string 'type'")
    try:
        return _parse_dict(ev)
    except (KeyError, TypeError, ValueError) as e:
        return Malformed(f"bad {ev['type']!r} event: {e!r}")


def _parse_dict(ev: dict[str, Any]) -> ServerEvent:
    t: str = ev["type"]
    if t == "conversation.item.input_audio_transcription.delta":
        return TranscriptDelta(
            item_id=ev.get("item_id") or "",
            delta=ev.get("delta") or "",
            logprobs=_logprobs(ev.get("logprobs")),
        )
    if t == "conversation.item.input_audio_transcription.completed":
        languages = ev.get("languages") or []
        language = languages[0].get("code") if languages else None
        return TranscriptCompleted(
            item_id=ev["item_id"],
            transcript=ev.get("transcript") or "",
            usage=_usage(ev.get("usage")),
            logprobs=_logprobs(ev.get("logprobs")),
            language=language or None,
        )
    if t == "input_audio_buffer.committed":
        return Committed(item_id=ev["item_id"], previous_item_id=ev.get("previous_item_id"))
    if t == "input_audio_buffer.speech_started":
        return SpeechStarted(item_id=ev.get("item_id") or "", audio_start_ms=ev["audio_start_ms"])
    if t == "input_audio_buffer.speech_stopped":
        return SpeechStopped(item_id=ev.get("item_id") or "", audio_end_ms=ev["audio_end_ms"])
    if t == "error":
        return _error(ev.get("error"))
    if t == "conversation.item.input_audio_transcription.failed":
        return TranscriptFailed(item_id=ev["item_id"], error=_error(ev.get("error")))
    if t == "session.created":
        session = ev.get("session") or {}
        expires = session.get("expires_at")
        return SessionCreated(
            session_id=session.get("id") or "",
            expires_at=float(expires) if isinstance(expires, (int, float)) else None,
        )
    if t == "session.updated":
        session = ev.get("session") or {}
        return SessionUpdated(session_id=session.get("id") or "", session=session)
    if t == "input_audio_buffer.cleared":
        return Cleared()
    if t in _IGNORED_TYPES:
        return Ignored(t)
    return Unknown(t)


def _error(err: Any) -> ServerError:
    if not isinstance(err, dict):
        return ServerError(code=None, type=None, message=str(err))
    return ServerError(
        code=err.get("code"),
        type=err.get("type"),
        message=str(err.get("message") or ""),
        param=err.get("param"),
        event_id=err.get("event_id"),
    )


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    if usage.get("type") == "duration":
        return Usage(kind="duration", seconds=float(usage.get("seconds") or 0.0))
    if usage.get("type") == "tokens":
        details = usage.get("input_token_details") or {}
        return Usage(
            kind="tokens",
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            audio_tokens=int(details.get("audio_tokens") or 0),
        )
    return None


def _logprobs(lp: Any) -> list[float] | None:
    if not isinstance(lp, list) or not lp:
        return None
    return [float(p["logprob"]) for p in lp if isinstance(p, dict) and "logprob" in p]


def confidence(logprobs: Sequence[float] | None) -> float:
    """Mean token probability (0..1) from logprobs; 0.0 when the server sent none."""
    if not logprobs:
        return 0.0
    return math.exp(sum(logprobs) / len(logprobs))


# --------------------------------------------------------------------------------------------
# error classification: the one table every failure goes through


class ErrorAction(enum.Enum):
    """What the client does about a failure."""

    IGNORE = "ignore"
    """Benign: log a WARNING, the stream goes on."""
    ITEM_FAILED = "item_failed"
    """One item produced no transcript: log a WARNING, release the items after it."""
    RECONNECT = "reconnect"
    """Transient: open a new session and replay the audio that is not transcribed yet."""
    FATAL = "fatal"
    """Configuration or account problem: retrying cannot help. One ERROR, the stream fails."""


@dataclass(frozen=True)
class Classification:
    """An :class:`ErrorAction` plus the advice the ERROR/WARNING line carries."""

    action: ErrorAction
    hint: str = ""


_CONFIG_HINT = "check the STT options (model, language, delay, prompt, turn_detection)"

ERROR_CODES: Mapping[str, Classification] = {
    # recoverable, the session stays open (§3.3, §4.4)
    "input_audio_buffer_commit_empty": Classification(
        ErrorAction.IGNORE, "a commit found less than 100 ms of audio in the server buffer"
    ),
    # reconnect: the session is gone or the server failed (§4.4, §6)
    "session_expired": Classification(
        ErrorAction.RECONNECT, "the session reached its maximum duration"
    ),
    "server_error": Classification(ErrorAction.RECONNECT, "transient server failure"),
    "rate_limit_exceeded": Classification(ErrorAction.RECONNECT, "rate limited; backing off"),
    # fatal: configuration (§1.2, §4.4, seed001)
    "invalid_model": Classification(
        ErrorAction.FATAL,
        "the server refused the model: check model=, and use model_in_url=True only with a "
        "gateway that routes on ?model=",
    ),
    "invalid_value": Classification(ErrorAction.FATAL, _CONFIG_HINT),
    "unknown_parameter": Classification(ErrorAction.FATAL, _CONFIG_HINT),
    "invalid_parameter": Classification(
        ErrorAction.FATAL, "base_url must point at a transcription-capable /v1 endpoint"
    ),
    "beta_api_shape_disabled": Classification(
        ErrorAction.FATAL, "the server wants the GA protocol; check base_url and proxies"
    ),
    # fatal: account (LK-rt _FATAL_ERROR_CODES, §4.4)
    "invalid_api_key": Classification(ErrorAction.FATAL, "set a valid OPENAI_API_KEY or api_key="),
    "insufficient_quota": Classification(ErrorAction.FATAL, "the account has no quota left"),
    "account_deactivated": Classification(ErrorAction.FATAL, "the account is deactivated"),
    "billing_hard_limit_reached": Classification(
        ErrorAction.FATAL, "the account reached its billing limit"
    ),
    "credit_balance_exhausted": Classification(ErrorAction.FATAL, "the account has no credit left"),
}

ERROR_TYPES: Mapping[str, Classification] = {
    "server_error": Classification(ErrorAction.RECONNECT, "transient server failure"),
    "authentication_error": Classification(
        ErrorAction.FATAL, "set a valid OPENAI_API_KEY or api_key="
    ),
    "permission_error": Classification(ErrorAction.FATAL, "the key lacks access to this model"),
}


def classify_error(error: ServerError, *, configuring: bool = False) -> Classification:
    """Classify an ``error`` event by code, then by type.

    An unknown code during configuration (before ``session.updated``) is fatal, since the
    session would run with settings it refused. Mid-stream, an unknown code is logged and the
    stream goes on: "most errors are recoverable and the session will stay open" (seed002).
    """
    if error.code and error.code in ERROR_CODES:
        return ERROR_CODES[error.code]
    if error.type and error.type in ERROR_TYPES:
        return ERROR_TYPES[error.type]
    if configuring:
        return Classification(ErrorAction.FATAL, _CONFIG_HINT)
    return Classification(ErrorAction.IGNORE, "unrecognised error; the session stays open")


def classify_close(code: int | None, reason: str = "") -> Classification:
    """Classify a websocket close the client did not ask for.

    4000 carries ``"<type>.<code>"`` and is a request error the server will repeat (§1.7);
    every other close (1000 after ``session_expired``, 1001, 1006, 1011, …) is reconnectable.
    """
    if code == 4000:
        _, _, err_code = reason.partition(".")
        known = ERROR_CODES.get(err_code)
        if known is not None and known.action is not ErrorAction.FATAL:
            return known
        return Classification(
            ErrorAction.FATAL, known.hint if known else f"the server refused the session: {reason}"
        )
    return Classification(ErrorAction.RECONNECT, "the connection closed")


def classify_http_status(status: int) -> Classification:
    """Classify a refused websocket handshake."""
    if status in (401, 403):
        return Classification(
            ErrorAction.FATAL, "the key was refused: set a valid OPENAI_API_KEY or api_key="
        )
    if status in (408, 409, 429) or status >= 500:
        return Classification(ErrorAction.RECONNECT, "transient refusal")
    return Classification(ErrorAction.FATAL, "check base_url (the endpoint refused the upgrade)")
