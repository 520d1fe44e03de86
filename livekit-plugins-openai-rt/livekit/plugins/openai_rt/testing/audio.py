"""Audio and wire helpers of the emulator: G.711 decoding, frame energy, base64, ids.

Pure functions with no protocol decisions in them; the server session uses them to measure and
store what clients append, the server to log appends cheaply.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["b64_len", "b64decode", "decode_pcm16", "frame_rms", "new_id"]

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Random bytes map to base62 through a translation table (C speed; the slight bias of
# 256 % 62 does not matter for ids).
_ID_TABLE = bytes(ord(_BASE62[b % 62]) for b in range(256))


def new_id(prefix: str) -> str:
    """A fresh id: ``prefix`` + 21 base62 characters (docs/protocol.md §7 E.36 [O] examples)."""
    return prefix + secrets.token_bytes(21).translate(_ID_TABLE).decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict base64 decoding (invalid characters or padding raise ``binascii.Error``)."""
    if sys.version_info >= (3, 11):
        return binascii.a2b_base64(text, strict_mode=True)
    return base64.b64decode(text, validate=True)  # pragma: no cover - Python 3.10


def b64_len(audio: Any) -> int:
    """Decoded length of a base64 string, without decoding it (for cheap logging)."""
    if not isinstance(audio, str):
        return 0
    return max(0, len(audio) * 3 // 4 - (2 if audio.endswith("==") else audio.endswith("=")))


def _ulaw_table() -> npt.NDArray[np.int16]:
    # ITU-T G.711 mu-law expansion.
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -sample, sample).astype(np.int16)


def _alaw_table() -> npt.NDArray[np.int16]:
    # ITU-T G.711 A-law expansion.
    a = np.arange(256, dtype=np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    sample = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(sign != 0, sample, -sample).astype(np.int16)


_G711_TABLES = {"audio/pcmu": _ulaw_table(), "audio/pcma": _alaw_table()}


def decode_pcm16(audio: bytes, fmt: str) -> bytes:
    """``audio`` in input format ``fmt`` as 16-bit little-endian PCM at the format's own rate
    (G.711 expanded by the ITU-T tables; pcm returned as is)."""
    if fmt == "audio/pcm":
        return audio
    return _G711_TABLES[fmt][np.frombuffer(audio, dtype=np.uint8)].astype("<i2").tobytes()


def frame_rms(audio: bytes, fmt: str, frame_bytes: int) -> npt.NDArray[np.float64]:
    """RMS (int16 units) of each complete ``frame_bytes`` frame of ``audio`` in format ``fmt``.

    ``fmt`` is ``"audio/pcm"`` (little-endian int16) or a G.711 format (``"audio/pcmu"``,
    ``"audio/pcma"``, one byte per sample, expanded to int16 first). A trailing partial frame is
    ignored.
    """
    n = len(audio) // frame_bytes
    if fmt == "audio/pcm":
        samples = np.frombuffer(audio, dtype="<i2", count=n * frame_bytes // 2)
    else:
        samples = _G711_TABLES[fmt][np.frombuffer(audio, dtype=np.uint8, count=n * frame_bytes)]
    x = samples.astype(np.float64).reshape(n, -1)
    return np.asarray(np.sqrt(np.mean(x * x, axis=1)), dtype=np.float64)
