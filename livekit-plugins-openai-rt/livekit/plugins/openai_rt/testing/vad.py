"""The emulator's server VAD: a deterministic energy detector over 10 ms frames.

OpenAI's VAD is a model; this one decides speech by frame energy (the mapping is in
:mod:`.rules`), so tests can build audio that is unambiguously speech (a tone) or silence (zeros)
and know to the frame where turns start and end (docs/protocol.md §7 C.22). The detector only
finds the boundaries; the server session buffers, commits and sends the events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .audio import frame_rms
from .rules import SEMANTIC_VAD_SILENCE_MS, VAD_FRAME_MS, VAD_RMS_SCALE
from .schema import Json

__all__ = ["EnergyVad", "SpeechBoundary"]


@dataclass(frozen=True)
class SpeechBoundary:
    """Speech started or stopped.

    Attributes:
        kind: ``"started"`` or ``"stopped"``.
        offset: the stream offset in bytes (since the session's first audio) of the boundary:
            the onset frame's start, or the end of the silence window that ended the speech.
        audio_ms: the ``audio_start_ms`` (onset minus ``prefix_padding_ms``, at least 0) or the
            ``audio_end_ms`` (the end of the silence window) of the event.
    """

    kind: Literal["started", "stopped"]
    offset: int
    audio_ms: int


class EnergyVad:
    """The VAD state of one session: audio is fed in order, boundaries come out.

    ``speech_started.audio_start_ms`` = onset - prefix_padding_ms (>= 0); speech stops after
    ``silence_duration_ms`` of consecutive non-speech frames, at the end of that silence window.
    Times count appended audio, not wall time ([V] SDK speech_started/stopped docstrings).

    Attributes:
        speaking: speech is in progress (started, not yet stopped).
    """

    def __init__(self) -> None:
        """A detector in silence, with no audio seen."""
        self._carry = b""  # the partial frame left over by the last append
        self.speaking = False
        self._silence_ms = 0

    def reset(self) -> None:
        """Forget any speech in progress (a manual commit, a clear, VAD switched off).

        The partial frame carried over is kept: frames stay aligned to the audio stream.
        """
        self.speaking = False
        self._silence_ms = 0

    def process(
        self, data: bytes, start: int, td: Json, fmt: str, bytes_per_ms: int
    ) -> list[SpeechBoundary]:
        """Feed ``data``, which starts at stream offset ``start``; return the boundaries in it.

        ``td`` is the effective ``turn_detection`` object, ``fmt`` the input format.
        """
        frame_bytes = VAD_FRAME_MS * bytes_per_ms
        combined = self._carry + data if self._carry else data
        carry_len = len(self._carry)
        n_frames = len(combined) // frame_bytes
        self._carry = combined[n_frames * frame_bytes :]
        if n_frames == 0:
            return []
        rms = frame_rms(combined, fmt, frame_bytes)
        limit = float(td.get("threshold", 0.5)) * VAD_RMS_SCALE
        if td["type"] == "semantic_vad":
            silence_ms = SEMANTIC_VAD_SILENCE_MS
            prefix_ms = 0
        else:
            silence_ms = int(td.get("silence_duration_ms", 500))
            prefix_ms = int(td.get("prefix_padding_ms", 300))
        first_frame_offset = start - carry_len  # stream offset of combined[0]
        boundaries: list[SpeechBoundary] = []
        for k in range(n_frames):
            frame_start = first_frame_offset + k * frame_bytes
            if rms[k] > limit:
                if not self.speaking:
                    self.speaking = True
                    onset_ms = frame_start // bytes_per_ms
                    boundaries.append(
                        SpeechBoundary("started", frame_start, max(0, onset_ms - prefix_ms))
                    )
                self._silence_ms = 0
            elif self.speaking:
                self._silence_ms += VAD_FRAME_MS
                if self._silence_ms >= silence_ms:
                    self.speaking = False
                    self._silence_ms = 0
                    frame_end = frame_start + frame_bytes
                    boundaries.append(
                        SpeechBoundary("stopped", frame_end, frame_end // bytes_per_ms)
                    )
        return boundaries
