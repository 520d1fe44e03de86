"""Fault injection for the emulator: a plan of deterministic network and server failures.

A :class:`FaultPlan` is read live by the emulator (``emu.faults``): tests may change its fields
between phases. Rules that target connections are scoped by connection index: 0-based, counting
the websockets the emulator accepted (``emu.sessions[i]`` is connection ``i``); ``None`` means every
connection. Each per-connection rule fires at most once per connection (a rule object replaced by a
new one fires again).

Triggers named ``after_bytes`` count the decoded audio bytes the connection has received
(``EmulatedSession.appended_bytes``) and fire right after the append that reaches the count;
``after_seconds`` count from the moment the websocket was accepted (checked every 10 ms). A rule
with neither trigger fires at once (on the next check).

Close codes follow docs/protocol.md §7 E.35: 4000 with reason ``"<type>.<code>"`` for fatal
request errors, 1011 (or an abrupt drop, seen as 1006) for simulated server faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "MALFORMED_FRAME",
    "UNKNOWN_EVENT_TYPE",
    "CloseWith",
    "DelaySessionUpdated",
    "FaultPlan",
    "RandomDrop",
    "RefuseHandshake",
    "SendBinary",
    "SendError",
    "Stall",
    "default_handshake_error_body",
    "deviate",
]


def default_handshake_error_body(status: int) -> dict[str, Any]:
    """The OpenAI-style JSON error body the emulator sends with a refused handshake of ``status``.

    The messages are those of OpenAI's REST API for the same statuses (401 invalid key, 429 rate
    limit, 500 server error, 503 overload); the realtime upgrade answers with the same JSON shape
    (``{"error": {message, type, param, code}}``) [I].
    """
    if status == 401:
        error = {
            "message": "Incorrect API key provided: sk-emul***ator. You can find your API key "
            "at https://platform.openai.com/account/api-keys.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    elif status == 403:
        error = {
            "message": "You are not allowed to access this resource.",
            "type": "invalid_request_error",
            "param": None,
            "code": "permission_denied",
        }
    elif status == 429:
        error = {
            "message": "Rate limit reached for requests. Please try again in 1s.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    elif status == 503:
        error = {
            "message": "The engine is currently overloaded, please try again later.",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    elif status >= 500:
        error = {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error",
            "param": None,
            "code": None,
        }
    else:
        error = {
            "message": f"The request was refused with HTTP {status}.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    return {"error": error}


@dataclass
class RefuseHandshake:
    """Answer the next ``times`` websocket upgrades with HTTP ``status`` instead of accepting them.

    ``body`` is the JSON error body (default :func:`default_handshake_error_body`); ``headers``
    are added to the response (e.g. ``{"Retry-After": "1"}``). ``connections`` is matched against
    the index the connection would have had if accepted (the number accepted so far).
    """

    status: int
    times: int = 1
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    connections: set[int] | None = None
    used: int = field(default=0, compare=False)
    """How many handshakes this rule has refused so far (maintained by the emulator)."""


@dataclass
class RandomDrop:
    """Abort the TCP connection after a seeded-random number of received audio bytes.

    The count is drawn uniformly from ``[min_bytes, max_bytes]`` with ``random.Random`` seeded by
    ``seed`` and the connection index, so a run is reproducible and connections drop at different
    points.
    """

    seed: int
    min_bytes: int
    max_bytes: int
    connections: set[int] | None = None


@dataclass
class CloseWith:
    """Send a proper close frame with ``code`` and ``reason`` once a trigger is reached.

    Give ``after_seconds`` or ``after_bytes`` (the first reached fires; neither means at once).
    """

    code: int
    reason: str = ""
    after_seconds: float | None = None
    after_bytes: int | None = None
    connections: set[int] | None = None


@dataclass
class SendError:
    """Inject an ``error`` event once a trigger is reached, and optionally close afterwards.

    The event is ``{"type": "error", "error": {type, code, message, param: null, event_id:
    null}}``. With ``close_code`` set, the socket is then closed with that code and reason
    ``close_reason`` (default ``"<type>.<code>"``, the pattern of docs/protocol.md §1.7), which
    models the fatal account errors of docs/protocol.md §7 E.34 (``invalid_api_key``,
    ``insufficient_quota``).
    """

    code: str | None = "server_error"
    type: str = "server_error"
    message: str = "The server had an error while processing your request. Sorry about that!"
    after_seconds: float | None = None
    after_bytes: int | None = None
    close_code: int | None = None
    close_reason: str | None = None
    connections: set[int] | None = None


@dataclass
class Stall:
    """Make the connection half-open once a trigger is reached: TCP stays up, nothing moves.

    ``read=True`` stops reading from the socket (client audio, client pings and even the client's
    close frame go unprocessed, so heartbeat pings are never answered); ``answer=True`` stops
    sending anything (events queued meanwhile are never delivered). The stall lasts until the
    client gives up and drops the TCP connection, or the emulator closes.
    """

    after_seconds: float | None = None
    after_bytes: int | None = None
    read: bool = True
    answer: bool = True
    connections: set[int] | None = None


@dataclass
class DelaySessionUpdated:
    """Hold the connection's first ``session.updated`` for ``seconds`` (None: never send it).

    The session is configured at once (a second ``session.update`` meanwhile is applied in
    order); only the answer waits, and every event queued after it waits too, so the order of
    events is kept. Pings are still answered: a server that is up but slow (or stuck) finishing
    the set-up, where the real one answers at once (docs/protocol.md §7 B.10).
    """

    seconds: float | None = None
    connections: set[int] | None = None


@dataclass
class SendBinary:
    """Send one binary frame of ``size`` zero bytes once a trigger is reached.

    The protocol has no binary frames (JSON text events only, docs/protocol.md §3.2 [V]); a
    client must survive one (a proxy's or a broken server's) without logging its payload.
    Give ``after_seconds`` or ``after_bytes`` (the first reached fires; neither means at once).
    """

    size: int
    after_seconds: float | None = None
    after_bytes: int | None = None
    connections: set[int] | None = None


@dataclass
class FaultPlan:
    """Which faults the emulator injects. Every field defaults to "no fault".

    Per-connection scalars (``drop_after_seconds``, ``drop_after_bytes``,
    ``malformed_json_after_bytes``, ``unknown_event_after_bytes``) apply to the connections in
    ``connections`` (None = all); the rule objects carry their own ``connections``.

    Attributes:
        refuse_handshake: refuse upgrades with an HTTP error (:class:`RefuseHandshake`).
        drop_after_seconds: abort the TCP transport (no close frame; the client sees an abnormal
            closure, 1006) once the connection has lived this long.
        drop_after_bytes: abort the TCP transport once the connection received this many audio
            bytes.
        drop_at_random: abort after a seeded-random byte count (:class:`RandomDrop`).
        close_with: send a close frame with a chosen code (:class:`CloseWith`).
        send_error: inject an ``error`` event, optionally followed by a close (:class:`SendError`).
        stall: go half-open (:class:`Stall`).
        delay_session_updated: answer the set-up late, or never (:class:`DelaySessionUpdated`).
        send_binary: send a binary frame (:class:`SendBinary`).
        fail_items: the committed item(s) with these 0-based indices, counted per emulator over all
            sessions in commit order, get ``conversation.item.input_audio_transcription.failed``
            (docs/protocol.md §4.1.7) instead of deltas and ``completed``.
        refuse_commits: the client commit(s) with these 0-based indices, counted per connection
            in arrival order, are refused with ``input_audio_buffer_commit_empty`` as if the
            server's buffer held less than 100 ms; the buffer is kept (docs/protocol.md §7 C.53).
        omit_committed: the committed item(s) with these indices (counted like ``fail_items``)
            get no ``input_audio_buffer.committed``: their transcription events name an item the
            client never saw committed (docs/protocol.md §7 D.48).
        reorder_completed: hold each item's ``completed`` (or ``failed``) until the next item of
            the same session completes, then send the two swapped (docs/protocol.md §7 D.31). A
            held event with no follower is sent after ``reorder_hold_seconds``.
        reorder_hold_seconds: see ``reorder_completed``.
        malformed_json_after_bytes: once per connection, after this many audio bytes, send a text
            frame that is not JSON.
        unknown_event_after_bytes: once per connection, after this many audio bytes, send an event
            of type :data:`UNKNOWN_EVENT_TYPE` (clients must ignore unknown events,
            docs/protocol.md §4).
        stray_deltas: after each item's completion group, send a transcript delta for an item
            id the session never commits (a phantom item; which id pre-commit deltas carry is
            unverified, docs/protocol.md §4.3 [I]).
        connections: which connections the per-connection scalars above apply to.
        committed_after_completed: send each item's ``input_audio_buffer.committed`` right after
            its ``completed`` (or ``failed``) instead of before it: an order the service has not
            been seen to use (docs/protocol.md §7 H.52; §4.3 leaves it open), for testing clients
            and ``openai_rt.check``.
        null_error_event_ids: send every ``error`` with ``error.event_id`` null, even when the
            client event that caused it carried an ``event_id`` (docs/protocol.md §7 H.52; a
            public capture of ``input_audio_buffer_commit_empty`` shows null, §3.3).
    """

    refuse_handshake: RefuseHandshake | None = None
    drop_after_seconds: float | None = None
    drop_after_bytes: int | None = None
    drop_at_random: RandomDrop | None = None
    close_with: CloseWith | None = None
    send_error: SendError | None = None
    stall: Stall | None = None
    delay_session_updated: DelaySessionUpdated | None = None
    send_binary: SendBinary | None = None
    fail_items: int | set[int] | None = None
    refuse_commits: int | set[int] | None = None
    omit_committed: int | set[int] | None = None
    reorder_completed: bool = False
    reorder_hold_seconds: float = 1.0
    malformed_json_after_bytes: int | None = None
    unknown_event_after_bytes: int | None = None
    stray_deltas: bool = False
    connections: set[int] | None = None
    committed_after_completed: bool = False
    null_error_event_ids: bool = False

    def applies_to(self, connections: set[int] | None, index: int) -> bool:
        """Whether a rule scoped to ``connections`` applies to connection ``index``."""
        return connections is None or index in connections

    def fails_item(self, index: int) -> bool:
        """Whether the committed item ``index`` (per emulator) must fail."""
        return _names(self.fail_items, index)

    def refuses_commit(self, index: int) -> bool:
        """Whether the client commit ``index`` (per connection) must be refused."""
        return _names(self.refuse_commits, index)

    def omits_committed(self, index: int) -> bool:
        """Whether the committed item ``index`` (per emulator) gets no ``committed`` event."""
        return _names(self.omit_committed, index)

    def is_idle(self) -> bool:
        """Whether no per-connection rule is set (the emulator's fast path on every event)."""
        return (
            self.drop_after_seconds is None
            and self.drop_after_bytes is None
            and self.drop_at_random is None
            and self.close_with is None
            and self.send_error is None
            and self.stall is None
            and self.send_binary is None
            and self.malformed_json_after_bytes is None
            and self.unknown_event_after_bytes is None
        )

    def has_timed_rules(self) -> bool:
        """Whether any rule may fire on time (so the emulator must keep checking connections).

        ``close_with``, ``send_error``, ``send_binary`` and ``stall`` without any trigger fire at
        once, so they count as timed too.
        """
        return (
            self.drop_after_seconds is not None
            or self.close_with is not None
            or self.send_error is not None
            or self.send_binary is not None
            or self.stall is not None
        )


def _names(rule: int | set[int] | None, index: int) -> bool:
    """Whether an item rule (one index or a set of them) names item ``index``."""
    if rule is None:
        return False
    if isinstance(rule, int):
        return rule == index
    return index in rule


UNKNOWN_EVENT_TYPE = "emulator.unknown_event"
"""The ``type`` of the event sent by ``FaultPlan.unknown_event_after_bytes``."""

MALFORMED_FRAME = '{"type": "error", "event_id": "event_truncated'
"""The non-JSON text frame sent by ``FaultPlan.malformed_json_after_bytes``."""


_RESULT_TYPES = (
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
)


def deviate(
    plan: FaultPlan, held: dict[str, dict[str, Any]], event: dict[str, Any]
) -> list[dict[str, Any]]:
    """What goes on the wire for ``event`` under the plan's ``committed_after_completed`` and
    ``null_error_event_ids``: the event (changed or not), possibly followed by a ``committed``
    held back in ``held`` (the connection's, keyed by item id), or nothing while it is held."""
    etype = event.get("type")
    if plan.null_error_event_ids and etype == "error" and isinstance(event.get("error"), dict):
        event = {**event, "error": {**event["error"], "event_id": None}}
    if etype == "input_audio_buffer.committed" and plan.committed_after_completed:
        held[event["item_id"]] = event
        return []
    if etype in _RESULT_TYPES and held:
        committed = held.pop(str(event.get("item_id")), None)
        if committed is not None:
            return [event, committed]
    return [event]
