"""The server side of one translation connection (``/v1/realtime/translations``), sans I/O.

A :class:`TranslationServerSession` takes client events (parsed JSON objects) and returns what
the server must do, in order: server events to send and :class:`~.outbox.Close`. It is the
translation counterpart of :class:`~.server_session.ServerSession`, with the same interface, so
:class:`~.server.Emulator` runs either one per websocket and applies the same faults. It follows
docs/protocol.md §7 F:

* ``session.created`` at once (§7 F.37), ``session.update`` limited to the output language, the
  source transcription and the noise reduction (§7 F.38);
* ``session.input_audio_buffer.append`` of 24 kHz pcm16 only, consumed in 200 ms frames: short
  appends are buffered, long ones split (§7 F.39);
* per frame, after ``translation_delay``: the source transcript (when enabled), the translated
  text and 200 ms of translated speech, each stamped ``elapsed_ms`` = the end of the frame in
  the session's audio (§7 F.40; the client's reading of ``elapsed_ms``, §5.3 [I]);
* ``session.close``: the last partial frame padded and translated, then ``session.closed`` and
  close 1000 (§7 F.41); the session's expiry as for transcription (§7 E.33).

A test can drive one directly::

    session = TranslationServerSession(record, TranslationRoute("gpt-realtime-translate"),
                                       TranslationSettings(), now=0.0)
    session.open()  # [session.created]
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .audio import b64decode
from .outbox import Outbox, Outgoing
from .records import EmulatedSession
from .routing import RejectedRoute, TranslationRoute
from .rules import MAX_APPEND_BYTES, MODEL_RULES, ModelRules
from .schema import ApiError, Json, check_keys, invalid_enum, invalid_type
from .translation_translators import FRAME_BYTES, FrameCrcTranslator, Translator

__all__ = [
    "DEFAULT_OUTPUT_LANGUAGE",
    "TranslationHost",
    "TranslationServerSession",
    "TranslationSettings",
]

FRAME_MS = 200
"""Milliseconds per translation frame (docs/protocol.md §5.2)."""

DEFAULT_OUTPUT_LANGUAGE = "en"
"""The output language of a new session before any ``session.update`` (§7 F.37 [I])."""

_CLIENT_EVENT_TYPES = ("session.update", "session.input_audio_buffer.append", "session.close")


class TranslationHost(Protocol):
    """What a translation session reads from the server that hosts it."""

    @property
    def translator(self) -> Translator:
        """Turns each 200 ms frame into its outputs."""
        ...

    @property
    def translation_delay(self) -> float:
        """Seconds between a frame's arrival and its outputs."""
        ...

    @property
    def model_rules(self) -> Mapping[str, ModelRules]:
        """The transcription models (a source transcription must name one)."""
        ...

    @property
    def max_session_seconds(self) -> float:
        """Sessions get ``session_expired`` and are closed after this long."""
        ...


@dataclass
class TranslationSettings:
    """A :class:`TranslationHost` with the emulator's defaults (see ``Emulator``)."""

    translator: Translator = field(default_factory=FrameCrcTranslator)
    translation_delay: float = 0.0
    model_rules: Mapping[str, ModelRules] = field(default_factory=lambda: MODEL_RULES)
    max_session_seconds: float = 3600.0


def translation_session_config(session_id: str, expires_at: int, model: str) -> Json:
    """The session object of a new translation session (§7 F.37; the default output language
    [I])."""
    return {
        "id": session_id,
        "type": "translation",
        "model": model,
        "expires_at": expires_at,
        "audio": {
            "input": {"noise_reduction": None, "transcription": None},
            "output": {"language": DEFAULT_OUTPUT_LANGUAGE},
        },
    }


class TranslationServerSession:
    """The protocol state of one translation connection: client events in, server events out.

    Args:
        record: the public record of the connection; the session keeps it up to date
            (``kind`` ``"translation"``, ``config``, ``appended_bytes``).
        route: what the upgrade asked for (:func:`~.routing.translation_route`).
        host: the server-wide settings, read live.
        now: the current time; the session expires ``host.max_session_seconds`` after it.

    Attributes:
        frames: input frames translated so far.
        closing: a close was decided: client events are ignored from now on.
    """

    def __init__(
        self,
        record: EmulatedSession,
        route: TranslationRoute | RejectedRoute,
        host: TranslationHost,
        *,
        now: float,
    ) -> None:
        """Create the session of a freshly accepted connection; :meth:`open` starts it."""
        self.record = record
        self.closing = False
        self.frames = 0
        self._route = route
        self._host = host
        self._outbox = Outbox()
        self._buffer = bytearray()  # appended audio short of a whole frame
        self._close_requested = False
        self._last_due = now  # outputs go out in frame order, never before an earlier frame's
        self._outbox.at(now + host.max_session_seconds, self._expire)

    # -- driving the session -----------------------------------------------------------------

    def open(self) -> list[Outgoing]:
        """Start the session: ``session.created``, or the routing error and a close."""
        route, record = self._route, self.record
        record.kind = "translation"
        if isinstance(route, RejectedRoute):
            record.kind = "rejected"
            self._error(route.error, None)
            self._close(4000, f"{route.error.type}.{route.error.code}")
        else:
            record.config = translation_session_config(record.id, record.expires_at, route.model)
            self._outbox.emit({"type": "session.created", "session": copy.deepcopy(record.config)})
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
                raise ApiError(
                    "missing_required_parameter", "Missing required parameter: 'type'.", "type"
                )
            if self._close_requested:
                # After session.close nothing more is taken (§7 F.41 [I]; the SDK refuses it
                # client-side).
                raise ApiError(
                    "session_closing",
                    "The translation session is closing: no event is accepted after session.close.",
                )
            if etype == "session.update":
                self._on_update(event)
            elif etype == "session.input_audio_buffer.append":
                self._on_append(event, now)
            elif etype == "session.close":
                check_keys(event, ("type", "event_id"), "")
                self._on_close(now)
            else:
                raise invalid_enum("type", etype, _CLIENT_EVENT_TYPES)
        except ApiError as err:
            self._error(err, event_id)
        return self._outbox.take()

    def handle_invalid_frame(self, binary: bool) -> list[Outgoing]:
        """Answer a frame that is not a JSON object; the session stays open (wording [I])."""
        if self.closing:
            return []
        if binary:
            message = "Binary frames are not supported."
        else:
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
        """Send ``event`` on the server's initiative (faults)."""
        self._outbox.emit(event)
        return self._outbox.take()

    def emit_error(self, err: ApiError) -> list[Outgoing]:
        """Send an ``error`` event that answers no client event (faults)."""
        self._error(err, None)
        return self._outbox.take()

    def close(self, code: int, reason: str) -> list[Outgoing]:
        """Close the socket with ``code`` and ``reason`` (once)."""
        self._close(code, reason)
        return self._outbox.take()

    def abandon(self) -> None:
        """The connection is going away without a protocol close: ignore further events."""
        self.closing = True

    def finish(self) -> None:
        """The connection has ended: forget everything scheduled."""
        self.closing = True
        self._outbox.clear()

    # -- client events -------------------------------------------------------------------------

    def _on_update(self, event: Json) -> None:
        check_keys(event, ("type", "event_id", "session"), "")
        sess = event.get("session")
        if not isinstance(sess, dict):
            raise invalid_type("session", "an object", sess)
        for fixed in ("type", "model"):
            if fixed in sess:
                # Fixed at creation (§7 F.38 [V]); code [I].
                raise ApiError(
                    "invalid_value",
                    f"The session {fixed} is set at creation and cannot be changed with "
                    "session.update.",
                    f"session.{fixed}",
                )
        check_keys(sess, ("audio",), "session")
        config = copy.deepcopy(self.record.config)
        audio = sess.get("audio", {})
        if not isinstance(audio, dict):
            raise invalid_type("session.audio", "an object", audio)
        check_keys(audio, ("input", "output"), "session.audio")
        if "input" in audio:
            self._merge_input(config["audio"]["input"], audio["input"])
        if "output" in audio:
            output = audio["output"]
            if not isinstance(output, dict):
                raise invalid_type("session.audio.output", "an object", output)
            check_keys(output, ("language",), "session.audio.output")
            if "language" in output:
                language = output["language"]
                if not isinstance(language, str) or not language.strip():
                    raise invalid_type("session.audio.output.language", "a string", language)
                config["audio"]["output"]["language"] = language
        self.record.config = config
        # session.updated carries the whole session (§5.3 [V]).
        self._outbox.emit({"type": "session.updated", "session": copy.deepcopy(config)})

    def _merge_input(self, current: Json, given: Any) -> None:
        path = "session.audio.input"
        if not isinstance(given, dict):
            raise invalid_type(path, "an object", given)
        check_keys(given, ("transcription", "noise_reduction"), path)
        if "transcription" in given:
            tr = given["transcription"]
            if tr is not None:
                if not isinstance(tr, dict):
                    raise invalid_type(f"{path}.transcription", "an object", tr)
                check_keys(tr, ("model",), f"{path}.transcription")
                model = tr.get("model")
                if not isinstance(model, str) or model not in self._host.model_rules:
                    # A transcription model the emulator knows (§7 F.38); wording [I].
                    raise invalid_enum(
                        f"{path}.transcription.model", model, tuple(self._host.model_rules)
                    )
                tr = {"model": model}
            current["transcription"] = tr
        if "noise_reduction" in given:
            current["noise_reduction"] = _noise_reduction(
                given["noise_reduction"], current.get("noise_reduction"), f"{path}.noise_reduction"
            )

    def _on_append(self, event: Json, now: float) -> None:
        check_keys(event, ("type", "event_id", "audio"), "")
        audio_b64 = event.get("audio")
        if not isinstance(audio_b64, str):
            raise invalid_type("audio", "a string", audio_b64)
        try:
            data = b64decode(audio_b64)
        except ValueError as exc:
            raise ApiError(
                "invalid_value", "Invalid 'audio': the value is not valid base64.", "audio"
            ) from exc
        if len(data) > MAX_APPEND_BYTES or len(data) % 2:
            # 24 kHz pcm16 mono only (§7 F.39 [V]); the 15 MiB limit of §3.2; wording [I].
            raise ApiError(
                "invalid_value",
                f"Invalid 'audio': {len(data)} bytes is not 24 kHz PCM16 mono audio of at most "
                f"{MAX_APPEND_BYTES} bytes.",
                "audio",
            )
        self.record.appended_bytes += len(data)
        self._buffer += data
        # Whole 200 ms frames are consumed; a shorter rest waits for more (§7 F.39 [V]).
        while len(self._buffer) >= FRAME_BYTES:
            frame = bytes(self._buffer[:FRAME_BYTES])
            del self._buffer[:FRAME_BYTES]
            self._translate(frame, now)

    def _on_close(self, now: float) -> None:
        self._close_requested = True
        if self._buffer:
            # The final partial frame is padded with silence (§7 F.41 [I]).
            self._buffer += bytes(FRAME_BYTES - len(self._buffer))
            frame = bytes(self._buffer)
            self._buffer.clear()
            self._translate(frame, now)
        self._outbox.at(max(now, self._last_due), self._closed)

    # -- output ----------------------------------------------------------------------------------

    def _translate(self, frame: bytes, now: float) -> None:
        self.frames += 1
        elapsed_ms = self.frames * FRAME_MS  # the end of this frame in the session's audio
        audio_cfg = self.record.config["audio"]
        language: str = audio_cfg["output"]["language"]
        with_source = audio_cfg["input"]["transcription"] is not None
        out = self._host.translator.translate(frame, language)
        due = max(now + self._host.translation_delay, self._last_due)
        self._last_due = due

        def send(_: float) -> None:
            if with_source and out.source:
                self._outbox.emit(
                    {
                        "type": "session.input_transcript.delta",
                        "delta": out.source,
                        "elapsed_ms": elapsed_ms,
                    }
                )
            if out.text:
                self._outbox.emit(
                    {
                        "type": "session.output_transcript.delta",
                        "delta": out.text,
                        "elapsed_ms": elapsed_ms,
                    }
                )
            if out.audio:
                self._outbox.emit(
                    {
                        "type": "session.output_audio.delta",
                        "delta": base64.b64encode(out.audio).decode("ascii"),
                        "format": "pcm16",
                        "sample_rate": 24000,
                        "channels": 1,
                        "elapsed_ms": elapsed_ms,
                    }
                )

        if due <= now:
            send(now)
        else:
            self._outbox.at(due, send)

    def _closed(self, _: float) -> None:
        # session.closed, then a normal close (§7 F.41; close code [I]).
        if self.closing:
            return
        self._outbox.emit({"type": "session.closed"})
        self._close(1000, "")

    # -- helpers ---------------------------------------------------------------------------------

    def _error(self, err: ApiError, client_event_id: str | None) -> None:
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

    def _expire(self, _: float) -> None:
        # session_expired, then close 1001 with the message as reason (§7 E.33 [O]).
        if self.closing:
            return
        minutes = self._host.max_session_seconds / 60.0
        shown = str(round(minutes)) if abs(minutes - round(minutes)) < 1e-9 else f"{minutes:.3g}"
        message = f"Your session hit the maximum duration of {shown} minutes."
        self._error(ApiError("session_expired", message), None)
        self._close(1001, message)


def _noise_reduction(value: Any, current: Any, path: str) -> Json | None:
    """A merged ``noise_reduction``: null turns it off; ``strength`` defaults to 1 when it is
    first enabled, and an update without it keeps the current one (§5.2 [V] SDK)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_type(path, "an object", value)
    check_keys(value, ("type", "strength"), path)
    kind = value.get("type")
    if kind not in ("near_field", "far_field"):
        raise invalid_enum(f"{path}.type", kind, ("near_field", "far_field"))
    strength = value.get("strength")
    if strength is None:
        strength = current.get("strength", 1) if isinstance(current, dict) else 1
    elif isinstance(strength, bool) or not isinstance(strength, int | float):
        raise invalid_type(f"{path}.strength", "a decimal", strength)
    elif not 0 <= strength <= 1:
        raise ApiError(
            "invalid_value",
            f"Invalid '{path}.strength': must be between 0 and 1, got {strength}.",
            f"{path}.strength",
        )
    return {"type": kind, "strength": strength}
