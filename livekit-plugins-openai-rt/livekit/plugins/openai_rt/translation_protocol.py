"""Sans-I/O codec of OpenAI's Realtime translation protocol (``/v1/realtime/translations``).

The translation counterpart of :mod:`.protocol`: the client events (``session.update``,
``session.input_audio_buffer.append``, ``session.close``), the parsing of the translation
server events, and the 200 ms frame arithmetic that ties an output's ``elapsed_ms`` to the
input audio it translates; the upgrade URL is :func:`.urls.translation_url`. Nothing here touches a socket or a clock.

Protocol facts are in ``docs/protocol.md`` §5 (translation sessions) and §7 F.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import protocol as p
from .urls import translation_url as translation_url  # re-exported: tp.translation_url

FRAME_MS = 200
"""Translation consumes the input in 200 ms engine frames (§5.2)."""

FRAME_BYTES = FRAME_MS * p.BYTES_PER_MS
"""One engine frame of 24 kHz pcm16 mono: 9,600 bytes (§5.2)."""

ELAPSED_MS_MARKS: Literal["frame_end", "frame_start"] = "frame_end"
"""Which edge of its 200 ms input frame an output's ``elapsed_ms`` names: the end [I].

The SDK says only that ``elapsed_ms`` is alignment metadata "derived from the translation frame"
that advances in 200 ms steps (§5.3). This client reads it as the end of the input frame the
output belongs to (``elapsed_ms=1400`` translates session audio [1200, 1400) ms); a live check
must confirm or correct it (§5.3, §8). Everything that depends on the reading goes through
:func:`frames_through`."""

SAMPLE_RATE = p.SAMPLE_RATE
"""Translation sessions take 24 kHz pcm16 mono only (§5.2) and, by default, answer in it [I]."""


def frames_through(elapsed_ms: int) -> int:
    """How many input frames of the session an output stamped ``elapsed_ms`` reaches: the
    frame it belongs to is the last of them (a stamp between two boundaries counts as the
    frame it falls in)."""
    frames = -(-max(0, elapsed_ms) // FRAME_MS)
    return frames if ELAPSED_MS_MARKS == "frame_end" else frames + 1


# --------------------------------------------------------------------------------------------
# client events


@dataclass(frozen=True)
class TranslationConfig:
    """Everything a translation ``session.update`` carries (§5.2)."""

    model: str
    target_language: str
    source_transcription: str | None = None
    noise_reduction: str | None = None


def session_update(config: TranslationConfig, *, event_id: str | None = None) -> dict[str, Any]:
    """The ``session.update`` of a translation session (§5.2).

    It names only the three fields a translation session takes; ``transcription`` and
    ``noise_reduction`` are always sent, as ``null`` when off, so an update can also turn them
    off ("Set to null to disable it", SDK). ``type`` and ``model`` are never sent: they are
    fixed at creation (§5.1).
    """
    audio_input: dict[str, Any] = {
        "transcription": (
            {"model": config.source_transcription} if config.source_transcription else None
        ),
        "noise_reduction": {"type": config.noise_reduction} if config.noise_reduction else None,
    }
    audio = {"input": audio_input, "output": {"language": config.target_language}}
    return p.session_update_event({"audio": audio}, event_id)


_APPEND_HEAD = b'{"type":"session.input_audio_buffer.append","audio":"'
_APPEND_TAIL = b'"}'


def append_message(pcm: bytes | bytearray | memoryview) -> bytes:
    """A serialized ``session.input_audio_buffer.append`` (§5.2), built like
    :func:`.protocol.append_message` (no JSON encoder: base64 needs no escaping)."""
    return _APPEND_HEAD + base64.b64encode(pcm) + _APPEND_TAIL


CLOSE_MESSAGE = b'{"type":"session.close"}'
"""A serialized ``session.close``: the server translates what it holds, then ``session.closed``
(§5.2)."""


# --------------------------------------------------------------------------------------------
# server events


@dataclass(frozen=True, slots=True)
class OutputTranscript:
    """``session.output_transcript.delta``: target-language text to append (§5.3)."""

    delta: str
    elapsed_ms: int | None


@dataclass(frozen=True, slots=True)
class InputTranscript:
    """``session.input_transcript.delta``: source-language text, when enabled (§5.3)."""

    delta: str
    elapsed_ms: int | None


@dataclass(frozen=True, slots=True)
class OutputAudio:
    """``session.output_audio.delta``: translated speech, base64 pcm16 (§5.3). Kept encoded:
    only a stream whose translated audio is read decodes it."""

    audio: str
    elapsed_ms: int | None
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """``session.closed``: the server translated everything and ends the session (§5.3)."""


Output = OutputTranscript | InputTranscript | OutputAudio
"""The per-frame outputs of a translation session."""

ServerEvent = (
    Output
    | SessionClosed
    | p.SessionCreated
    | p.SessionUpdated
    | p.ServerError
    | p.Unknown
    | p.Malformed
)
"""Everything :func:`parse_server_event` returns."""


def parse_server_event(raw: str | bytes) -> ServerEvent:
    """Parse one server text frame of a translation session into a typed record. Never raises.

    ``session.created``, ``session.updated`` and ``error`` have the shapes of the transcription
    protocol and are parsed as :func:`.protocol.parse_server_event` parses them; any other type
    a translation session does not define is :class:`~.protocol.Unknown` (§5.3).
    """
    return p.parse_event(raw, _parse_dict)


def _parse_dict(ev: dict[str, Any]) -> ServerEvent:
    t: str = ev["type"]
    if t == "session.output_transcript.delta":
        return OutputTranscript(p.required_str(ev, "delta"), _elapsed(ev))
    if t == "session.output_audio.delta":
        return OutputAudio(
            audio=p.required_str(ev, "delta"),
            elapsed_ms=_elapsed(ev),
            sample_rate=_positive(ev.get("sample_rate"), SAMPLE_RATE),
            channels=_positive(ev.get("channels"), 1),
        )
    if t == "session.input_transcript.delta":
        return InputTranscript(p.required_str(ev, "delta"), _elapsed(ev))
    if t == "session.closed":
        return SessionClosed()
    session_event = p.SESSION_EVENTS.get(t)
    if session_event is not None:
        return session_event(ev)
    return p.unknown(t)


def _elapsed(ev: Mapping[str, Any]) -> int | None:
    value = ev.get("elapsed_ms")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"elapsed_ms must be a number, got {type(value).__name__}")
    if not math.isfinite(value):  # JSON's 1e999 is inf, which int() cannot take
        raise ValueError(f"elapsed_ms must be finite, got {value!r}")
    return int(value)


def _positive(value: Any, default: int) -> int:
    """An optional positive integer field (``sample_rate``, ``channels``): the default when
    absent; a malformed value is an error."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value
