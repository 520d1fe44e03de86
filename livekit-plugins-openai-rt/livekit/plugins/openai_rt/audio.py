"""Audio helpers of the stream adapters: downmixing, G.711 encoding and loudness, vectorised
with numpy.

G.711 (``audio_format="pcmu"`` / ``"pcma"``, docs/protocol.md §2.2, §3.1) is encoded with one
65,536-entry lookup table per law, built once from the ITU-T G.711 segment arithmetic as the
classic Sun reference code does it (which is also what ``audioop`` did; ``audioop`` is gone in
Python 3.13). Encoding a frame is one table lookup per sample.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

from livekit import rtc

from .formats import AudioFormat

_ULAW_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _all_samples() -> npt.NDArray[np.int32]:
    """Every int16 value, indexed by its bit pattern as uint16."""
    return np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.int16).astype(np.int32)


def _ulaw_table() -> npt.NDArray[np.uint8]:
    # 14-bit magnitude, bias 33, clip 8159; the code is the bit-inverted segment and mantissa
    pcm = _all_samples() >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm), 8159) + 0x21
    seg = np.searchsorted(_ULAW_SEG_END, mag, side="left")
    code = (seg << 4) | ((mag >> np.minimum(seg + 1, 8)) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return np.asarray((code ^ mask) & 0xFF, dtype=np.uint8)


def _alaw_table() -> npt.NDArray[np.uint8]:
    # 13-bit magnitude; even bits inverted (0x55), sign bit set for non-negative samples
    pcm = _all_samples() >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag, side="left")
    shift = np.where(seg < 2, 1, np.minimum(seg, 8))
    code = (np.minimum(seg, 7) << 4) | ((mag >> shift) & 0x0F)
    code = np.where(seg >= 8, 0x7F, code)
    return np.asarray((code ^ mask) & 0xFF, dtype=np.uint8)


@functools.cache
def _table(format_type: str) -> npt.NDArray[np.uint8]:
    return _ulaw_table() if format_type == "audio/pcmu" else _alaw_table()


class G711Encoder:
    """Encodes 16-bit PCM (at 8 kHz, already resampled) to G.711 mu-law or A-law bytes."""

    def __init__(self, audio_format: AudioFormat) -> None:
        """An encoder for ``audio_format`` (``audio/pcmu`` or ``audio/pcma``)."""
        if audio_format.type not in ("audio/pcmu", "audio/pcma"):
            raise ValueError(f"{audio_format.name} is not a G.711 format")
        self._table = _table(audio_format.type)

    def encode(self, pcm16: bytes | memoryview) -> bytes:
        """One byte per 16-bit little-endian sample of ``pcm16``."""
        samples = np.frombuffer(pcm16, dtype="<u2")
        return bytes(self._table[samples].tobytes())


def level_dbfs(pcm16: bytes | memoryview, sample_rate: int) -> float:
    """The loudest 10 ms RMS of 16-bit mono ``pcm16``, in dBFS (full scale 0, silence
    -inf). A shorter tail counts as a window of its own. One float32 copy of the samples, no
    other temporary as large (this runs on every frame of a silence)."""
    x = np.frombuffer(pcm16, dtype="<i2").astype(np.float32)
    if not len(x):
        return -math.inf
    window = max(1, sample_rate // 100)
    n = len(x) // window
    loudest = 0.0
    if n:
        full = x[: n * window].reshape(n, window)
        loudest = float(np.max(np.einsum("ij,ij->i", full, full))) / window
    if len(x) > n * window:
        tail = x[n * window :]
        loudest = max(loudest, float(np.dot(tail, tail)) / len(tail))
    return 10.0 * math.log10(loudest / 32768.0**2) if loudest > 0 else -math.inf


def downmix(frame: rtc.AudioFrame) -> rtc.AudioFrame:
    """Average the channels of an interleaved int16 frame into one."""
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    mono = samples.mean(axis=1).round().astype(np.int16)
    return rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, frame.samples_per_channel)
