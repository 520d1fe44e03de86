"""The server side of one realtime connection, as a sans-I/O state machine.

A :class:`ServerSession` takes client events (parsed JSON objects) and returns what the server
must do, in order: server events to send, and :class:`~.outbox.Close` when the socket must be
closed. It owns the session's configuration, the audio buffer, commits, the server VAD
(:mod:`.vad`), the transcription output (:mod:`.output`) and the session's expiry. It never reads
a clock and never touches a socket: calls that may start something timed take ``now`` (seconds
of any monotonic clock), and output due later (a completion delay, a held out-of-order
completion, the expiry) comes out of :meth:`ServerSession.poll`, which the server calls at
:meth:`ServerSession.next_deadline`.

The emulator (:mod:`.server`) runs one per accepted websocket. A test can drive one directly::

    session = ServerSession(record, TranscriptionRoute(), SessionSettings(), now=0.0)
    session.open()  # [session.created]
    session.handle({"type": "input_audio_buffer.commit"}, now=0.0)  # [error: buffer too small]

Behaviour is cited by section of docs/protocol.md (§7 C: audio buffer, §7 D: output, §7 E:
lifetime).
"""

from __future__ import annotations

from typing import Literal

from .audio import b64_len, new_id
from .lifecycle import ConnectionSession
from .output import TranscriptOutput, item_object
from .records import EmulatedItem, EmulatedSession
from .routing import ConversationRoute, Route, TranscriptionRoute
from .rules import AUDIO_FORMATS, BETA_SHAPE_MESSAGE, MAX_APPEND_BYTES, MIN_COMMIT_MS
from .schema import (
    ApiError,
    Json,
    apply_session_update,
    check_keys,
    invalid_enum,
    invalid_type,
    realtime_session_config,
    transcription_session_config,
)
from .settings import SessionHost
from .vad import EnergyVad

__all__ = ["ServerSession"]

_CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)
# Conversation-only client events (docs/protocol.md §4: response.* and conversation items belong
# to conversation sessions) get a dedicated error in a transcription session [I].
_CONVERSATION_EVENT_TYPES = (
    "response.create",
    "response.cancel",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "output_audio_buffer.clear",
)


class ServerSession(ConnectionSession[SessionHost, TranscriptionRoute | ConversationRoute]):
    """The protocol state of one accepted connection: client events in, server events out.

    Args:
        record: the public record of the connection; the session keeps it up to date.
        route: what the upgrade asked for (:func:`~.routing.route`).
        host: the server-wide settings, read live (:class:`~.settings.SessionHost`).
        now: the current time; the session expires ``host.max_session_seconds`` after it.
        items: the server-wide list of committed items, which the session appends to (a new
            item's ``index`` is its position in it); by default a list of this session's own.

    Attributes:
        record: the connection's :class:`~.records.EmulatedSession`.
        closing: a close was decided (by the protocol, a fault or the server going away): client
            events are ignored from now on.
    """

    def __init__(
        self,
        record: EmulatedSession,
        route: Route,
        host: SessionHost,
        *,
        now: float,
        items: list[EmulatedItem] | None = None,
    ) -> None:
        """Create the session of a freshly accepted connection; :meth:`open` starts it."""
        super().__init__(record, route, host, now=now)
        self._items: list[EmulatedItem] = [] if items is None else items
        self._output = TranscriptOutput(self._outbox, host, self._take_item_id)
        self._vad = EnergyVad()
        # ?model= on a transcription URL (docs/protocol.md §7 A.3, the livekit/agents-js#1756 trap)
        self._url_model = route.url_model if isinstance(route, TranscriptionRoute) else None
        # the preallocated id of the next item (docs/protocol.md §4.3)
        self._next_item_id: str | None = None
        self._last_item_id: str | None = None
        self._client_commits = 0  # commit events received (the fault plan counts them)

    def finish(self) -> None:
        """The connection has ended: give back the pending item, forget everything scheduled."""
        super().finish()
        self._output.stop()

    def _create(self, route: TranscriptionRoute | ConversationRoute) -> Json:
        record = self.record
        if isinstance(route, ConversationRoute):
            record.kind = "realtime"
            record.config = realtime_session_config(record.id, record.expires_at, route.model)
        else:
            # Transcription: session.created at once (docs/protocol.md §7 B.17).
            record.config = transcription_session_config(record.id, record.expires_at, route.model)
        return record.config

    def _sends_expiry_error(self) -> bool:
        return self._host.expiry_error_event

    # -- client events -------------------------------------------------------------------------

    def _dispatch(self, etype: str, event: Json, now: float) -> None:
        if etype == "transcription_session.update":
            # The beta event (docs/protocol.md §7 A.7 [O]).
            raise ApiError("beta_api_shape_disabled", BETA_SHAPE_MESSAGE, fatal=True)
        if self.record.kind == "realtime":
            self._on_realtime_event(etype, event)
        elif etype == "session.update":
            self._on_session_update(event)
        elif etype == "input_audio_buffer.append":
            self._on_append(event, now)
        elif etype == "input_audio_buffer.commit":
            check_keys(event, ("type", "event_id"), "")
            self._on_commit(now)
        elif etype == "input_audio_buffer.clear":
            check_keys(event, ("type", "event_id"), "")
            self._on_clear()
        elif etype in _CONVERSATION_EVENT_TYPES:
            # No response.* in a transcription session (docs/protocol.md §7 D.32 [I]).
            raise ApiError(
                "invalid_value",
                f"Invalid value: '{etype}'. This event is not supported in transcription sessions.",
                "type",
            )
        else:
            raise invalid_enum("type", etype, _CLIENT_EVENT_TYPES)

    def _on_realtime_event(self, etype: str, event: Json) -> None:
        if etype == "session.update":
            sess = event.get("session")
            if isinstance(sess, dict) and sess.get("type") == "transcription":
                # docs/protocol.md §7 A.4 [O] justspeaktoit PR #427, Microsoft Q&A 12820829.
                raise ApiError(
                    "invalid_parameter",
                    "Passing a transcription session update event to a realtime session is not "
                    "allowed.",
                    "session.type",
                )
        if etype == "input_audio_buffer.append":
            self.record.appended_bytes += b64_len(event.get("audio"))
            return
        raise ApiError(
            "not_implemented",
            "The emulator implements transcription sessions only; conversation sessions are not "
            "emulated.",
        )

    def _on_session_update(self, event: Json) -> None:
        record = self.record
        new_config = apply_session_update(
            record.config,
            event,
            self._host.model_rules,
            url_model=self._url_model,
            fatal_turn_detection=self._host.close_on_turn_detection_error,
        )
        old_tr = record.config["audio"]["input"]["transcription"]
        record.config = new_config
        inp = new_config["audio"]["input"]
        if inp["transcription"] is None and old_tr is not None:
            self._output.discard()
        if inp["turn_detection"] is None:
            self._vad.reset()
        # session.updated carries the full effective session, without the client's event_id
        # (docs/protocol.md §7 B.10 [V] SDK session_update_event.py).
        self._outbox.emit({"type": "session.updated", "session": new_config})

    # -- audio buffer --------------------------------------------------------------------------

    def _format(self) -> tuple[str, int, int]:
        fmt: str = self.record.config["audio"]["input"]["format"]["type"]
        bytes_per_ms, sample_bytes = AUDIO_FORMATS[fmt]
        return fmt, bytes_per_ms, sample_bytes

    def _take_item_id(self) -> str:
        """The preallocated id of the next item, allocating it on first use."""
        if self._next_item_id is None:
            self._next_item_id = new_id("item_")
        return self._next_item_id

    def _on_append(self, event: Json, now: float) -> None:
        check_keys(event, ("type", "event_id", "audio"), "")
        audio_b64 = event.get("audio")
        if audio_b64 is None:
            raise ApiError(
                "missing_required_parameter", "Missing required parameter: 'audio'.", "audio"
            )
        if not isinstance(audio_b64, str):
            raise invalid_type("audio", "a string", audio_b64)
        data = self._decode_audio(audio_b64)
        if len(data) > MAX_APPEND_BYTES:
            # docs/protocol.md §7 C.18 [V] limit, message [I].
            raise ApiError(
                "invalid_value",
                f"Invalid 'audio': {len(data)} bytes of audio exceed the maximum of "
                f"{MAX_APPEND_BYTES} bytes (15 MiB) per event.",
                "audio",
            )
        fmt, bytes_per_ms, sample_bytes = self._format()
        if len(data) % sample_bytes:
            # Whole samples only (docs/protocol.md §7 C.18 [V]); wording [I].
            raise ApiError(
                "invalid_value",
                f"Invalid 'audio': {len(data)} bytes is not a whole number of {sample_bytes}-byte "
                f"samples for {fmt}.",
                "audio",
            )
        if not data:
            return
        record = self.record
        start = record.appended_bytes
        record.appended_bytes += len(data)
        td = record.config["audio"]["input"]["turn_detection"]
        if td is None:
            # No VAD: never speech_started/stopped (docs/protocol.md §7 C.23 [C][O]).
            self._buffer_audio(data)
            return
        self._append_through_vad(td, data, start, fmt, bytes_per_ms, now)

    def _buffer_audio(self, data: bytes) -> None:
        """Add audio to the input buffer and feed the item's transcriber."""
        buffer = self.record._buffer
        buffer += data
        config = self.record.config
        if config["audio"]["input"]["transcription"] is not None:
            self._output.feed(data, buffer, config)

    def _append_through_vad(
        self, td: Json, data: bytes, start: int, fmt: str, bytes_per_ms: int, now: float
    ) -> None:
        """Buffer ``data`` (at stream offset ``start``) through the VAD (docs/protocol.md §7 C.22).

        Each end of speech commits the buffer up to the end of its silence window; what follows
        stays buffered.
        """
        pos = start  # stream offset up to which `data` has been buffered
        for boundary in self._vad.process(data, start, td, fmt, bytes_per_ms):
            if boundary.kind == "started":
                self._outbox.emit(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": boundary.audio_ms,
                        "item_id": self._take_item_id(),
                    }
                )
                continue
            self._buffer_audio(data[pos - start : boundary.offset - start])
            pos = boundary.offset
            self._outbox.emit(
                {
                    "type": "input_audio_buffer.speech_stopped",
                    "audio_end_ms": boundary.audio_ms,
                    "item_id": self._take_item_id(),
                }
            )
            if self.record.buffer_bytes:
                self._commit("server_vad", now)
        if pos < start + len(data):
            self._buffer_audio(data[pos - start :])

    def _on_commit(self, now: float) -> None:
        _, bytes_per_ms, _ = self._format()
        buffered = self.record.buffer_bytes
        index, self._client_commits = self._client_commits, self._client_commits + 1
        if buffered < MIN_COMMIT_MS * bytes_per_ms or self._host.faults.refuses_commit(index):
            # docs/protocol.md §7 C.19 / §3.3 [O]: verbatim message, buffer untouched, session
            # open (or the fault of docs/protocol.md §7 C.53).
            raise ApiError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms "
                f"of audio, but buffer only has {buffered / bytes_per_ms:.2f}ms of audio.",
            )
        # A manual commit ends any speech in progress without speech_stopped (SDK
        # speech_started docstring: "unless the client manually commits the audio buffer during
        # VAD activation" [V]).
        self._vad.reset()
        self._commit("client", now)

    def _on_clear(self) -> None:
        # Always answered, even on an empty buffer (docs/protocol.md §7 C.21 [V] SDK, [O]
        # speaches).
        self.record._buffer.clear()
        self._output.discard()
        # Streamed deltas may have used the preallocated id: the next item gets a new one [I].
        self._next_item_id = None
        self._vad.reset()
        self._outbox.emit({"type": "input_audio_buffer.cleared"})

    def _commit(self, by: Literal["client", "server_vad"], now: float) -> None:
        """Commit the whole input buffer as a new item (docs/protocol.md §7 C.20)."""
        record, host = self.record, self._host
        audio = bytes(record._buffer)
        record._buffer.clear()
        item_id = self._take_item_id()
        self._next_item_id = None
        previous = self._last_item_id
        self._last_item_id = item_id
        tr = record.config["audio"]["input"]["transcription"]
        item = EmulatedItem(
            item_id=item_id,
            previous_item_id=previous,
            session_id=record.id,
            audio=audio if host.record_audio else b"",
            committed_by=by,
            index=len(self._items),
            model=tr["model"] if tr is not None else None,
            audio_bytes=len(audio),
            format=self._format()[0],
        )
        record.items.append(item)
        self._items.append(item)
        # committed {item_id, previous_item_id (null for the first)} (docs/protocol.md §7 C.20
        # [V] SDK), unless the fault plan leaves it out (docs/protocol.md §7 D.48).
        if not host.faults.omits_committed(item.index):
            self._outbox.emit(
                {
                    "type": "input_audio_buffer.committed",
                    "previous_item_id": previous,
                    "item_id": item_id,
                }
            )
        if host.emit_item_added:
            # docs/protocol.md §4.1.6 [I]: a user message holding the audio (bytes omitted).
            self._outbox.emit(
                {
                    "type": "conversation.item.added",
                    "previous_item_id": previous,
                    "item": item_object(item_id, None),
                }
            )
        if tr is None:
            self._output.discard()  # transcription off: no transcription events
            return
        self._output.commit(item, audio, record.config, now)
