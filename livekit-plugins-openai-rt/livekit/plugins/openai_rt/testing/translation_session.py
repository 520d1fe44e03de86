"""The server side of one translation connection (``/v1/realtime/translations``), sans I/O.

A :class:`TranslationServerSession` takes client events (parsed JSON objects) and returns what
the server must do, in order: server events to send and :class:`~.outbox.Close`. It is the
translation counterpart of :class:`~.server_session.ServerSession`, on the same
:class:`~.lifecycle.ConnectionSession`, so :class:`~.server.Emulator` runs either one per websocket
and applies the same faults. It follows
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
from typing import Any

from .lifecycle import ConnectionSession
from .records import EmulatedSession
from .routing import RejectedRoute, TranslationRoute
from .rules import MAX_APPEND_BYTES
from .schema import ApiError, Json, check_keys, invalid_enum, invalid_type
from .settings import TranslationHost, TranslationSettings
from .translation_translators import FRAME_BYTES

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


class TranslationServerSession(ConnectionSession[TranslationHost, TranslationRoute]):
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
        super().__init__(record, route, host, now=now)
        self.frames = 0
        self._buffer = bytearray()  # appended audio short of a whole frame
        self._close_requested = False
        self._last_due = now  # outputs go out in frame order, never before an earlier frame's

    def _create(self, route: TranslationRoute) -> Json:
        record = self.record
        record.kind = "translation"
        record.config = translation_session_config(record.id, record.expires_at, route.model)
        return copy.deepcopy(record.config)

    def _type_error(self, etype: object) -> ApiError:
        return ApiError("missing_required_parameter", "Missing required parameter: 'type'.", "type")

    def _dispatch(self, etype: str, event: Json, now: float) -> None:
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
        data = self._decode_audio(audio_b64)
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
