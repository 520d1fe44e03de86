"""The input side of a session: what the stream gives it (audio, flushes, the end of input, its
VAD's judgement) becomes commits and clears in the ledger.

Part of the sans-I/O session core (:mod:`.session` owns one :class:`Intake`). Audio goes into
the ledger in ~50 ms chunks; a flush commits the open audio, or clears it when it holds no
speech (:class:`~.speech.SpeechMap` decides); with a stream VAD, open audio the VAD has not
judged is held back from the sender, an end of speech commits exactly where it was, and a flush
the VAD has not caught up with waits for it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Literal

from .ledger import AudioLedger
from .log import logger
from .results import Results
from .sender import Sender
from .speech import SpeechMap

CloseResult = Literal["committed", "cleared", "kept"]
"""What closing the open audio did: committed it, cleared it (no speech), or kept it open
(under the 100 ms minimum: it goes with the next commit)."""


class Intake:
    """The input side of one stream.

    Args:
        ledger: the session's audio ledger.
        results: the answers side (told of commits and clears).
        sender: the send cursor (its hold follows the VAD).
        skip_silence: clear audio to commit that holds no speech.
        local_vad: the stream runs a VAD, which says where speech is and holds audio back.
        extra: the session's log fields.
    """

    def __init__(
        self,
        ledger: AudioLedger,
        results: Results,
        sender: Sender,
        *,
        skip_silence: bool,
        local_vad: bool,
        extra: Callable[[], Mapping[str, object]],
    ) -> None:
        self._ledger = ledger
        self._fmt = ledger.format
        self._results = results
        self._sender = sender
        self._extra = extra
        self.speech = SpeechMap(self._fmt, enabled=skip_silence, local_vad=local_vad)
        """Where the stream's audio may hold speech."""
        self.skipped_seconds = 0.0
        """Seconds of audio cleared instead of committed because they held no speech."""
        self._pending = bytearray()  # appended audio not yet in the ledger (< one chunk)
        self._appended = 0  # bytes appended over the stream's life (ledger + pending)
        self._waiting_flushes: deque[int] = deque()  # flush positions the VAD has not judged
        if local_vad:
            sender.hold = 0  # nothing judged yet

    @property
    def pending(self) -> int:
        """Appended bytes not in the ledger yet."""
        return len(self._pending)

    @property
    def wants_level(self) -> bool:
        """Whether the next audio should carry its level (see ``SpeechMap.wants_level``)."""
        return self.speech.wants_level(self._ledger.open.start)

    def audio(self, data: bytes | memoryview, level: float | None) -> None:
        """Audio appended, with its loudest 10 ms in dBFS (None: not measured)."""
        nbytes = data.nbytes if isinstance(data, memoryview) else len(data)
        self._appended += nbytes
        self.speech.audio(self._appended, level)
        if not self._pending and nbytes >= self._fmt.chunk_bytes:
            self._ledger.append(bytes(data))  # a whole chunk (RoomIO's 50 ms): one copy
            return
        self._pending += data
        if len(self._pending) >= self._fmt.chunk_bytes:
            self.seal()

    def seal(self) -> None:
        """Move the pending audio into the ledger."""
        if self._pending:
            self._ledger.append(bytes(self._pending))
            self._pending.clear()

    def flush(self, at: int | None) -> CloseResult | None:
        """A flush (``at``: where the stream's VAD ended speech). None when it waits for the
        VAD to judge the audio before it."""
        self.seal()
        if at is None and not self.speech.judged(self._ledger.position):
            self._waiting_flushes.append(self._ledger.position)
            return None
        return self.close_open(at)

    def end(self) -> None:
        """The input ended: nothing is held back; the tail commit takes what waiting flushes
        would have."""
        self._waiting_flushes.clear()
        self._sender.hold = None
        self.commit_tail()

    def vad_progress(self, pos: int, *, input_ended: bool) -> tuple[bool, list[CloseResult]]:
        """The VAD judged the audio up to ``pos``; returns whether ``pos`` is a position in the
        audio, and what the flushes that waited for it did. A VAD that does not say where it
        is in the audio (no audio judged, or past what was appended: a wall clock) is treated
        as lost: nothing is held back for it, and nothing is cleared on its word."""
        if not 0 < pos <= self._appended:
            return False, self.vad_lost()
        self.speech.vad_progress(pos)
        if not input_ended:
            self._sender.hold = self.speech.vad_seen
        return True, self._flush_judged()

    def vad_lost(self) -> list[CloseResult]:
        """The VAD stopped: no hold, every later byte may be speech; the waiting flushes go."""
        self.speech.vad_lost()
        self._sender.hold = None
        return self._flush_judged()

    def commit_tail(self) -> None:
        """Commit what is open (a short tail padded with silence to the 100 ms minimum), or
        clear it when it holds no speech."""
        self.seal()
        ledger = self._ledger
        if ledger.open.nbytes and not self.speech.holds_speech(ledger.open.start, ledger.position):
            self.close_open(None)
            return
        pad = ledger.padding_needed()
        if pad:
            ledger.append(self._fmt.silence(pad))
            self._appended += pad
        self.close_open(None)

    def close_open(self, at: int | None) -> CloseResult:
        """Commit the open audio up to ``at`` (default: all of it); clear it when it holds no
        speech; keep it open when it is under the 100 ms minimum."""
        ledger = self._ledger
        end = ledger.position
        if at is not None:
            # never cut before audio the live socket already sent: the server's item would
            # hold it (the VAD hold keeps that from happening; this keeps the ledger true)
            end = min(max(at, ledger.send_cursor or 0), end)
        if end <= ledger.open.start:
            return "kept"
        if not self.speech.holds_speech(ledger.open.start, end):
            seconds = self._fmt.seconds(ledger.clear_open(end))
            self.skipped_seconds += seconds
            self._results.cleared()
            logger.debug(
                "not committing %.2f s of audio with no speech in it (%s): cleared instead",
                seconds,
                self.speech.why_silent(),
                extra={**self._extra(), "skipped_seconds": seconds},
            )
            return "cleared"
        seg = ledger.commit(end)
        if seg is None:
            return "kept"
        self.speech.committed()
        self._results.committing(seg)
        return "committed"

    def _flush_judged(self) -> list[CloseResult]:
        """The flushes that waited for the VAD, once it has judged their audio."""
        done: list[CloseResult] = []
        while self._waiting_flushes and self.speech.judged(self._waiting_flushes[0]):
            done.append(self.close_open(self._waiting_flushes.popleft()))
        return done
