"""The benchmark recording: three utterances cut from ``examples/sample.wav``.

No system dependency: the utterances are pieces of the bundled sample (24 kHz mono pcm16),
separated by that sample's own background noise, so a VAD sees ordinary speech and pauses.
The driver builds it once and hands the bytes and the utterance spans to every client.
"""

from __future__ import annotations

import wave
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 24000
BYTES_PER_SECOND = SAMPLE_RATE * 2
SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample.wav"

# (start, end) seconds in sample.wav of each utterance: cut at pauses between words
UTTERANCES = ((0.58, 2.52), (5.67, 7.27), (10.66, 12.45))
BACKGROUND = (4.05, 5.55)  # a pause of the sample: its background noise fills the gaps
LEAD, GAP, TAIL = 0.3, 0.6, 0.8
FLUSH_AFTER = 0.25
"""A session VAD (``inference.VAD`` defaults: ``min_silence_duration=0.25``) ends speech this
long after it stopped; the driver flushes there, where the AgentSession would."""


@dataclass(frozen=True)
class Recording:
    """The audio and where its utterances are (seconds from the start)."""

    pcm: bytes
    frame_ms: int
    speech: list[tuple[float, float]]
    flush_frames: list[int]
    """Index of the frame after which the session's VAD would flush, per utterance."""

    @property
    def seconds(self) -> float:
        """Duration in seconds."""
        return len(self.pcm) / BYTES_PER_SECOND

    @property
    def frame_bytes(self) -> int:
        """Bytes per pushed frame."""
        return BYTES_PER_SECOND * self.frame_ms // 1000

    @property
    def n_frames(self) -> int:
        """Number of frames pushed per stream."""
        return len(self.pcm) // self.frame_bytes

    def meta(self) -> dict[str, Any]:
        """Everything but the audio, for the results file."""
        d = asdict(self)
        del d["pcm"]
        d["seconds"] = self.seconds
        return d


def _fade(x: np.ndarray, ms: float = 10.0) -> np.ndarray:
    n = min(len(x) // 2, int(SAMPLE_RATE * ms / 1000))
    ramp = np.linspace(0.0, 1.0, n)
    y = x.astype(np.float64)
    y[:n] *= ramp
    y[-n:] *= ramp[::-1]
    return y


def build(frame_ms: int = 50) -> Recording:
    """Lead silence, the three utterances separated by gaps, a tail; whole frames only."""
    with wave.open(str(SAMPLE), "rb") as w:
        if w.getframerate() != SAMPLE_RATE or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise ValueError(f"{SAMPLE} must be 24 kHz mono pcm16")
        src = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)

    def cut(a: float, b: float) -> np.ndarray:
        return src[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]

    bg = cut(*BACKGROUND).astype(np.float64)
    parts: list[np.ndarray] = [bg[: int(LEAD * SAMPLE_RATE)]]
    speech: list[tuple[float, float]] = []
    pos = len(parts[0])
    for i, (a, b) in enumerate(UTTERANCES):
        u = cut(a, b)
        seg = _fade(u)  # short fades: no click at the cuts
        speech.append((pos / SAMPLE_RATE, (pos + len(seg)) / SAMPLE_RATE))
        parts.append(seg)
        pos += len(seg)
        pause = bg[: int((TAIL if i == len(UTTERANCES) - 1 else GAP) * SAMPLE_RATE)]
        parts.append(pause)
        pos += len(pause)
    audio = np.concatenate(parts)
    frame = SAMPLE_RATE * frame_ms // 1000
    audio = audio[: len(audio) // frame * frame]
    pcm = np.clip(np.round(audio), -32768, 32767).astype(np.int16).tobytes()
    flush_frames = [
        min(int(np.ceil((end + FLUSH_AFTER) * 1000 / frame_ms)), len(audio) // frame) - 1
        for _, end in speech
    ]
    return Recording(pcm=pcm, frame_ms=frame_ms, speech=speech, flush_frames=flush_frames)
