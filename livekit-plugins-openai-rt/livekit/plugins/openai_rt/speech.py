"""Where a stream's audio may hold speech: what lets the session core clear, rather than commit
(and pay for), audio that holds none, and hold back audio its VAD has not judged yet.

Part of the sans-I/O session core (:mod:`.session` owns one :class:`SpeechMap`). Positions are
absolute byte offsets in the session's input format, like the ledger's. The evidence is the
stream's VAD when it runs one, else a conservative energy gate over the levels the adapter
measures. It errs one way only: audio it knows nothing about may hold speech.
"""

from __future__ import annotations

import math

from .formats import AudioFormat

SILENCE_DBFS = -60.0
"""The energy gate: audio whose every 10 ms stays at or under this RMS level (dBFS, full scale
= 0) holds no speech. Conservative: a whisper is louder, so only silence, or a line quieter than
a quiet room, is cleared."""

VAD_UNSEEN_SECONDS = 0.1
"""With a VAD: audio to commit that extends more than this past what the VAD has judged may
hold speech (it is committed, not cleared)."""


class SpeechMap:
    """The speech evidence of one stream.

    Args:
        audio_format: the session's format (positions count its bytes).
        enabled: ``skip_silence``; when off, all audio may hold speech.
        local_vad: the stream runs a VAD, which alone says where speech is (levels are not
            used).
    """

    def __init__(self, audio_format: AudioFormat, *, enabled: bool, local_vad: bool) -> None:
        self._fmt = audio_format
        self.enabled = enabled
        self.local_vad = local_vad
        self.speech_until = 0
        """Audio before this position may hold speech."""
        self.vad_seen = 0
        """How far the stream's VAD has judged the audio."""
        self._speaking = False
        self._vad_lost = False
        self._vad_step: int | None = None  # the VAD's window: its smallest step forward
        self._loudest = -math.inf  # loudest level measured since the last commit or clear

    def wants_level(self, open_start: int) -> bool:
        """Whether audio appended now should carry its level: the energy gate is on and the
        open audio (from ``open_start``) is not yet known to hold speech."""
        return self.enabled and not self.local_vad and self.speech_until <= open_start

    def audio(self, end: int, level: float | None) -> None:
        """Audio up to position ``end`` was appended; ``level`` is its loudest 10 ms RMS in
        dBFS (None: not measured)."""
        if self.local_vad:
            return
        if level is None or level > SILENCE_DBFS:
            self.speech_until = end
        if level is not None:
            self._loudest = max(self._loudest, level)

    def set_speaking(self, speaking: bool) -> None:
        """The stream's VAD says whether speech is in progress."""
        self._speaking = speaking
        if speaking:
            self.speech_until = max(self.speech_until, self.vad_seen)

    def vad_progress(self, pos: int) -> None:
        """The stream's VAD has judged the audio up to ``pos``."""
        if pos > self.vad_seen:
            step = pos - self.vad_seen
            self._vad_step = step if self._vad_step is None else min(self._vad_step, step)
            self.vad_seen = pos
        if self._speaking:
            self.speech_until = max(self.speech_until, self.vad_seen)

    def vad_lost(self) -> None:
        """The stream's VAD stopped: every later byte may hold speech."""
        self._vad_lost = True

    def judged(self, pos: int) -> bool:
        """Whether the stream's VAD (if any) has judged the audio up to ``pos``: all of it but
        less than one of its windows (which it judges once more audio comes)."""
        if not self.local_vad or self._vad_lost or pos <= self.vad_seen:
            return True
        return self._vad_step is not None and pos - self.vad_seen < self._vad_step

    def holds_speech(self, start: int, end: int) -> bool:
        """Whether the audio ``[start, end)`` may hold speech."""
        if not self.enabled or self.speech_until > start or self._vad_lost:
            return True
        unseen = end - max(self.vad_seen, start)
        return self.local_vad and unseen > self._fmt.position(VAD_UNSEEN_SECONDS)

    def why_silent(self) -> str:
        """Why the audio since the last commit or clear holds no speech (for the log line);
        starts the next span's measurement."""
        loudest, self._loudest = self._loudest, -math.inf
        if self.local_vad:
            return "the stream's VAD heard none"
        return f"loudest 10 ms at {loudest:.0f} dBFS, gate {SILENCE_DBFS:g} dBFS"

    def committed(self) -> None:
        """The open audio was committed: its measurement starts over."""
        self._loudest = -math.inf
