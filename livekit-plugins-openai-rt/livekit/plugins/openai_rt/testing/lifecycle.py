"""What every connection's protocol state shares, sans I/O: its lifecycle from open to close.

:class:`ConnectionSession` is the base of :class:`~.server_session.ServerSession`
(``/v1/realtime``) and :class:`~.translation_session.TranslationServerSession`
(``/v1/realtime/translations``). It opens the session (``session.created``, or the routing error
and a close), reads each client event's ``event_id`` and ``type`` before its subclass dispatches
it, answers frames that are not JSON objects, sends ``error`` events, closes once, expires the
session (docs/protocol.md §7 E.33) and hands timed work to the server through its
:class:`~.outbox.Outbox`. A subclass says what a new session is (:meth:`_create`) and how each
client event is handled (:meth:`_dispatch`).
"""

from __future__ import annotations

from typing import Generic, TypeVar

from .audio import b64decode
from .outbox import Outbox, Outgoing
from .records import EmulatedSession
from .routing import RejectedRoute
from .schema import ApiError, Json, invalid_type
from .settings import LifetimeHost

__all__ = ["ConnectionSession"]

HostT = TypeVar("HostT", bound=LifetimeHost)
RouteT = TypeVar("RouteT")


def _format_minutes(seconds: float) -> str:
    """Minutes for the session_expired message: "60", or "0.0333" for short test sessions."""
    minutes = seconds / 60.0
    if abs(minutes - round(minutes)) < 1e-9:
        return str(round(minutes))
    return f"{minutes:.3g}"


class ConnectionSession(Generic[HostT, RouteT]):
    """The protocol state of one accepted connection: client events in, server events out.

    Args:
        record: the public record of the connection; the session keeps it up to date.
        route: what the upgrade asked for, or why it was rejected.
        host: the server-wide settings, read live.
        now: the current time; the session expires ``host.max_session_seconds`` after it.

    Attributes:
        record: the connection's :class:`~.records.EmulatedSession`.
        closing: a close was decided (by the protocol, a fault or the server going away): client
            events are ignored from now on.
    """

    def __init__(
        self, record: EmulatedSession, route: RouteT | RejectedRoute, host: HostT, *, now: float
    ) -> None:
        """Create the session of a freshly accepted connection; :meth:`open` starts it."""
        self.record = record
        self.closing = False
        self._route = route
        self._host = host
        self._outbox = Outbox()
        # Session expiry (docs/protocol.md §7 E.33 [O]).
        self._outbox.at(now + host.max_session_seconds, self._expire)

    # -- what a subclass says ----------------------------------------------------------------

    def _create(self, route: RouteT) -> Json:
        """Set up the record of a session the upgrade accepted; the ``session.created`` object."""
        raise NotImplementedError

    def _dispatch(self, etype: str, event: Json, now: float) -> None:
        """Handle one client event of type ``etype``; an :class:`ApiError` is answered."""
        raise NotImplementedError

    def _type_error(self, etype: object) -> ApiError:
        """The error for a client event whose ``type`` is missing or not a string."""
        if etype is None:
            return ApiError(
                "missing_required_parameter", "Missing required parameter: 'type'.", "type"
            )
        return invalid_type("type", "a string", etype)

    def _sends_expiry_error(self) -> bool:
        """Send the ``session_expired`` error before the expiry's close."""
        return True

    # -- driving the session -----------------------------------------------------------------

    def open(self) -> list[Outgoing]:
        """Start the session: ``session.created``, or the routing error and a close."""
        route = self._route
        if isinstance(route, RejectedRoute):
            self.record.kind = "rejected"
            self._fail(route.error, None)
        else:
            self._outbox.emit({"type": "session.created", "session": self._create(route)})
        return self._outbox.take()

    def handle(self, event: Json, now: float) -> list[Outgoing]:
        """Process one client event (a parsed JSON object) received at ``now``."""
        if self.closing:
            return []
        raw_event_id = event.get("event_id")
        event_id = raw_event_id if isinstance(raw_event_id, str) else None
        try:
            if raw_event_id is not None and not isinstance(raw_event_id, str):
                raise invalid_type("event_id", "a string", raw_event_id)
            etype = event.get("type")
            if not isinstance(etype, str):
                raise self._type_error(etype)
            self._dispatch(etype, event, now)
        except ApiError as err:
            if err.fatal:
                self._fail(err, event_id)
            else:
                self._error(err, event_id)
        return self._outbox.take()

    def handle_invalid_frame(self, binary: bool) -> list[Outgoing]:
        """Answer a frame that is not a JSON object (``binary``: a binary frame); stays open."""
        if self.closing:
            return []
        if binary:
            # Binary frames are not part of the protocol (JSON text events only,
            # docs/protocol.md §3.2 [V]); wording [I].
            self._error(ApiError("invalid_json", "Binary frames are not supported."), None)
        else:
            # Wording [I].
            message = "The client event could not be parsed as a JSON object."
            self._error(ApiError("invalid_json", message), None)
        return self._outbox.take()

    def next_deadline(self) -> float | None:
        """When :meth:`poll` next has something to do, or None."""
        return self._outbox.next_deadline()

    def poll(self, now: float) -> list[Outgoing]:
        """Run everything due at or before ``now``, in order; return what to send."""
        while (entry := self._outbox.pop_due(now)) is not None:
            entry.run(now)
        return self._outbox.take()

    def emit(self, event: Json) -> list[Outgoing]:
        """Send ``event`` (stamped with an ``event_id``) on the server's initiative (faults)."""
        self._outbox.emit(event)
        return self._outbox.take()

    def emit_error(self, err: ApiError) -> list[Outgoing]:
        """Send an ``error`` event that answers no client event (faults)."""
        self._error(err, None)
        return self._outbox.take()

    def close(self, code: int, reason: str) -> list[Outgoing]:
        """Close the socket with ``code`` and ``reason`` (once; later calls return nothing)."""
        self._close(code, reason)
        return self._outbox.take()

    def abandon(self) -> None:
        """The connection is going away without a protocol close: ignore further events."""
        self.closing = True

    def finish(self) -> None:
        """The connection has ended: forget everything scheduled."""
        self.closing = True
        self._outbox.clear()

    # -- output helpers ------------------------------------------------------------------------

    def _error(self, err: ApiError, client_event_id: str | None) -> None:
        # error.event_id carries the client's event_id (docs/protocol.md §4.1.9 [V] SDK
        # realtime_error).
        self._outbox.emit(
            {
                "type": "error",
                "error": {
                    "type": err.type,
                    "code": err.code,
                    "message": err.message,
                    "param": err.param,
                    "event_id": client_event_id,
                },
            }
        )

    def _close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self._outbox.close(code, reason)

    def _fail(self, err: ApiError, client_event_id: str | None) -> None:
        """Send the error, then close 4000 "<type>.<code>" (docs/protocol.md §1.7 [V] livekit/agents-js#1756)."""
        self._error(err, client_event_id)
        self._close(4000, f"{err.type}.{err.code}")

    def _expire(self, now: float) -> None:
        # docs/protocol.md §7 E.33: close 1001 with the message as reason [O]
        # pollen-robotics/reachy_mini_conversation_app#134, after the session_expired error [O]
        # fuwei007/OpenAIIOSRealtimeAPIDemo#4 unless the host turns that error off.
        if self.closing:
            return
        minutes = _format_minutes(self._host.max_session_seconds)
        message = f"Your session hit the maximum duration of {minutes} minutes."
        if self._sends_expiry_error():
            self._error(ApiError("session_expired", message), None)
        self._close(1001, message)

    # -- client events -------------------------------------------------------------------------

    @staticmethod
    def _decode_audio(audio_b64: str) -> bytes:
        """The bytes of an append's base64 ``audio``."""
        try:
            return b64decode(audio_b64)
        except ValueError as exc:  # binascii.Error is a ValueError
            # Wording [I].
            raise ApiError(
                "invalid_value", "Invalid 'audio': the value is not valid base64.", "audio"
            ) from exc
