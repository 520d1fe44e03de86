"""The input audio formats of a Realtime session, and the units the session core counts in.

Part of the sans-I/O protocol core (:mod:`.protocol` re-exports every name here): pcm16 at
24 kHz, and G.711 mu-law and A-law at 8 kHz (docs/protocol.md §2.2, §3.1). The G.711 encoder
itself is the adapter's (:mod:`.audio`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

SAMPLE_RATE = 24000
"""The only PCM rate transcription sessions accept (§2.2 ``format``)."""

AudioFormatName = Literal["pcm16", "pcmu", "pcma"]
"""The input formats a transcription session accepts (§2.2 ``format``)."""


@dataclass(frozen=True)
class AudioFormat:
    """One input audio format, and the units the session core counts in (§2.2, §3.1).

    Every position, length and bound of the core (the ledger, the replay bound, the 100 ms
    commit minimum, usage seconds, the server's ``audio_*_ms``) is in bytes of this format.

    Attributes:
        name: the plugin's name for it (``audio_format=``).
        type: the ``format.type`` sent in ``session.update``.
        sample_rate: samples per second on the wire.
        sample_bytes: bytes per sample (2 for pcm16, 1 for G.711).
        silence_byte: the byte that encodes a zero sample (padding a short final commit).
    """

    name: AudioFormatName
    type: str
    sample_rate: int
    sample_bytes: int
    silence_byte: int

    @property
    def bytes_per_second(self) -> int:
        """Bytes per second of audio."""
        return self.sample_rate * self.sample_bytes

    @property
    def bytes_per_ms(self) -> int:
        """Bytes per millisecond: converts the server's ``audio_*_ms`` (§3.4)."""
        return self.bytes_per_second // 1000

    @property
    def min_commit_bytes(self) -> int:
        """A commit of less than 100 ms fails with ``input_audio_buffer_commit_empty``
        (§3.3; 4,800 bytes of pcm16, 800 of G.711: §3.1, §7 C.19)."""
        return self.bytes_per_second // 10

    @property
    def chunk_bytes(self) -> int:
        """Audio goes out in ~50 ms appends: small enough for prompt interims, few enough
        messages."""
        return self.bytes_per_second // 20

    def seconds(self, nbytes: int) -> float:
        """Seconds of audio in ``nbytes``."""
        return nbytes / self.bytes_per_second

    def position(self, seconds: float) -> int:
        """The byte position of ``seconds`` into the audio (on a whole sample, rounded down)."""
        return int(seconds * self.sample_rate) * self.sample_bytes

    def silence(self, nbytes: int) -> bytes:
        """``nbytes`` of silence (zero samples) in this format."""
        return bytes([self.silence_byte]) * nbytes

    def session_format(self) -> dict[str, Any]:
        """The ``audio.input.format`` object of ``session.update`` (§2.2: pcm carries its
        rate, G.711 none)."""
        if self.type == "audio/pcm":
            return {"type": self.type, "rate": self.sample_rate}
        return {"type": self.type}


PCM16 = AudioFormat("pcm16", "audio/pcm", SAMPLE_RATE, 2, 0x00)
"""16-bit little-endian mono PCM at 24 kHz (§2.2, §3.1)."""

PCMU = AudioFormat("pcmu", "audio/pcmu", 8000, 1, 0xFF)
"""G.711 mu-law at 8 kHz: 6x fewer bytes than pcm16 (§2.2, §3.1)."""

PCMA = AudioFormat("pcma", "audio/pcma", 8000, 1, 0xD5)
"""G.711 A-law at 8 kHz (§2.2, §3.1)."""

AUDIO_FORMATS: Mapping[AudioFormatName, AudioFormat] = {f.name: f for f in (PCM16, PCMU, PCMA)}
"""Every input format, by the name ``audio_format=`` takes."""

BYTES_PER_SECOND = PCM16.bytes_per_second
"""pcm16 mono at 24 kHz: the one format of translation sessions (§5.2). Transcription sessions
count in their own :class:`AudioFormat`."""

BYTES_PER_MS = PCM16.bytes_per_ms
"""Bytes per millisecond of pcm16 at 24 kHz (translation sessions, §5.2)."""
