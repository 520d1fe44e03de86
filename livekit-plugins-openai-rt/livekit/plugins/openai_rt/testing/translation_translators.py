"""Pluggable translators: what the emulator's translation sessions "say" for each 200 ms frame.

The emulator does no translation. A :class:`Translator` turns each 200 ms input frame (9,600 bytes
of pcm16 at 24 kHz, docs/protocol.md §5.2) into the frame's outputs: target-language text,
source-language text (sent only when the session asks for a source transcript) and translated
speech (200 ms of pcm16 per frame, §7 F.40).

* :class:`FrameCrcTranslator` (the default) is a pure function of each frame's bytes: its text is
  one token per frame, so a client's translations prove which audio was translated, in which
  order, with nothing lost or repeated (:func:`expected_translation` computes them for given
  audio), and its "translated speech" is the frame itself, so the audio out can be compared with
  the audio in byte for byte.
* :class:`ScriptTranslator` returns scripted lines, word by word, for readable demos.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "FRAME_BYTES",
    "FrameCrcTranslator",
    "FrameTranslation",
    "ScriptTranslator",
    "Translator",
    "expected_source_transcript",
    "expected_translation",
]

FRAME_BYTES = 9600
"""One 200 ms translation frame of pcm16 mono at 24 kHz (docs/protocol.md §5.2)."""


@dataclass(frozen=True)
class FrameTranslation:
    """What one input frame produces.

    Attributes:
        text: target-language text (``session.output_transcript.delta``; may be "").
        source: source-language text (``session.input_transcript.delta``; may be "").
        audio: translated speech, pcm16 mono at 24 kHz (``session.output_audio.delta``).
    """

    text: str
    source: str
    audio: bytes


@runtime_checkable
class Translator(Protocol):
    """A source of translations, called once per 200 ms frame, in each session's frame order."""

    def translate(self, frame: bytes, language: str) -> FrameTranslation:
        """The outputs of ``frame`` (exactly :data:`FRAME_BYTES` bytes) translated into
        ``language``."""
        ...


def _token(frame: bytes | memoryview) -> str:
    return f"{zlib.crc32(frame):08x} "


class FrameCrcTranslator:
    """The default translator: each frame's outputs are a pure function of its bytes.

    Text ``"<language>:<crc32 of the frame as 8 hex digits> "``, source text ``"<crc32> "``,
    and the frame itself as the "translated speech" (the emulator synthesises nothing).
    """

    def translate(self, frame: bytes, language: str) -> FrameTranslation:
        """Translate one frame (a pure function of its bytes and ``language``)."""
        token = _token(frame)
        return FrameTranslation(text=f"{language}:{token}", source=token, audio=frame)


def _frames(audio: bytes) -> list[bytes]:
    """``audio`` cut into frames, the last one completed with silence (as the emulator pads the
    final partial frame at ``session.close``, docs/protocol.md §7 F.41 [I])."""
    padded = audio + bytes(-len(audio) % FRAME_BYTES)
    return [padded[i : i + FRAME_BYTES] for i in range(0, len(padded), FRAME_BYTES)]


def expected_translation(audio: bytes, language: str) -> str:
    """The target text :class:`FrameCrcTranslator` produces for exactly ``audio``, frame by
    frame (a partial last frame completed with silence)."""
    return "".join(f"{language}:{_token(frame)}" for frame in _frames(audio))


def expected_source_transcript(audio: bytes) -> str:
    """The source text :class:`FrameCrcTranslator` produces for exactly ``audio``."""
    return "".join(_token(frame) for frame in _frames(audio))


class ScriptTranslator:
    """Scripted translations for demos: the i-th utterance heard is translated as ``lines[i]``.

    An utterance is a run of frames louder than ``threshold`` (RMS, int16 units); a frame quieter
    than that after speech ends it. One word of the line is released every ``frames_per_word``
    loud frames, keeping the last word for the end of the utterance, when the rest of the line is
    released. ``source_lines`` (optional) are released the same way as the source text. Past the
    end of ``lines`` utterances are translated as "". The translated speech is the frame itself.

    State is shared by every session of the emulator: use it with one stream at a time.
    """

    def __init__(
        self,
        lines: Sequence[str],
        *,
        source_lines: Sequence[str] = (),
        frames_per_word: int = 2,
        threshold: float = 100.0,
    ) -> None:
        """Create a translator for ``lines`` (and, optionally, their ``source_lines``)."""
        if frames_per_word <= 0:
            raise ValueError("frames_per_word must be positive")
        self.lines = list(lines)
        self.source_lines = list(source_lines)
        self.frames_per_word = frames_per_word
        self.threshold = threshold
        self._line = 0  # index of the utterance in progress, or of the next one
        self._loud = 0  # loud frames of the utterance in progress (0: none in progress)
        self._released = 0  # words of the current line released
        self._lock = threading.Lock()

    def translate(self, frame: bytes, language: str) -> FrameTranslation:
        """Release the words that ``frame`` brings (scripted; ``language`` is not used)."""
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
        loud = bool(np.sqrt(np.mean(samples * samples)) > self.threshold)
        with self._lock:
            if loud:
                self._loud += 1
                due = self._loud // self.frames_per_word
                return self._release(due, frame, end=False)
            if self._loud:
                out = self._release(None, frame, end=True)
                self._line += 1
                self._loud = self._released = 0
                return out
            return FrameTranslation(text="", source="", audio=frame)

    def _release(self, due: int | None, frame: bytes, *, end: bool) -> FrameTranslation:
        words = _words(self.lines, self._line)
        source = _words(self.source_lines, self._line)
        stop = len(words) if end else min(due or 0, max(0, len(words) - 1))
        if stop <= self._released:
            return FrameTranslation(text="", source="", audio=frame)
        start, self._released = self._released, stop
        # the source advances in step with the target, by the same share of its words
        s_start = len(source) * start // max(1, len(words))
        s_stop = len(source) if end else len(source) * stop // max(1, len(words))
        return FrameTranslation(
            text="".join(words[start:stop]), source="".join(source[s_start:s_stop]), audio=frame
        )


def _words(lines: Sequence[str], index: int) -> list[str]:
    """The words of ``lines[index]``, each keeping its trailing space, so they concatenate to the
    line (and a space separates it from the next line); [] past the end."""
    if index >= len(lines) or not lines[index]:
        return []
    words = lines[index].split(" ")
    return [w + " " for w in words[:-1]] + [words[-1] + " "]
