"""Sans-I/O bookkeeping of a translated stream: held audio, segments, and which frames'
translations arrived.

Part of the translation session core (:mod:`.translation_session` owns one
:class:`TranslationLedger`). Positions are absolute byte offsets in the stream's 24 kHz pcm16
audio. A translation session has no commits: the server translates 200 ms frames as they come
(docs/protocol.md §5.2) and stamps each output with ``elapsed_ms`` (§5.3). The ledger turns
those stamps into stream positions (:func:`.translation_protocol.frames_through`) and keeps
three things straight:

* **Frames.** Every output belongs to one input frame. The outputs of the newest frame heard
  are *held* until the frame is known to be complete: an output of a later frame arrives, the
  session closes, or :data:`HOLD_SECONDS` pass. Only then are they released (translated text
  into its segment, translated audio out). After a lost socket, held outputs are dropped and the
  next socket starts at the first frame not known complete (``confirmed_to``): each frame is
  translated, and released, exactly once.
* **Segments.** The stream cuts its audio into segments where the transcription stream would
  commit (a flush, its VAD's end of speech, the end of input), always at a frame boundary. A
  segment's final is released once every frame in it is complete, or ``segment_timeout``
  seconds after its last frame went out. Text that arrives for a segment already released
  goes to the next one, so no text is lost or repeated.
* **Usage.** Every byte sent is billed, replays included (§6): reported with each final.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from . import protocol as p, translation_protocol as tp
from .ledger import AudioStore, ReplayPlan
from .records import UsageRecord
from .translation_records import TranslatedAudio, Translation, TranslationOutput

FRAME = tp.FRAME_BYTES

HOLD_SECONDS = 0.4
"""Longest the outputs of the newest frame are held waiting for a sign that the frame is
complete (two frames of audio). A server that goes quiet after the last words of an utterance
delays their release by this much."""


def frame_floor(pos: int) -> int:
    """The frame boundary at or before ``pos``."""
    return pos - pos % FRAME


@dataclass(eq=False)
class Segment:
    """A span ``[start, end)`` of the stream's audio whose translation becomes one final.

    Attributes:
        seq: order in the stream (names it: :attr:`id`).
        start: absolute position of its first byte (a frame boundary).
        end: one past its last byte (a frame boundary); None while it is the open segment.
        runs: released target text, as ``[language, text]`` runs.
        source: released source-language text.
        sent_at: when its last frame went out on the current socket (the final's timeout
            starts then), None until then.
    """

    seq: int
    start: int
    end: int | None = None
    runs: list[list[str]] = field(default_factory=list)
    source: str = ""
    sent_at: float | None = None

    @property
    def id(self) -> str:
        """The segment's name in speech events (``request_id``)."""
        return f"translation_{self.seq}"

    @property
    def text(self) -> str:
        """The released target text."""
        return "".join(text for _, text in self.runs)


@dataclass(frozen=True, slots=True)
class _Held:
    """An output of the newest frame, with the target language in force when it arrived."""

    output: tp.Output
    language: str


class TranslationLedger:
    """A stream's audio from append to released translation.

    Args:
        replay_limit_bytes: most held audio whose translation has not arrived, kept to replay
            after a lost socket. Past it the oldest is let go (at a frame boundary), but never
            audio the live socket has not sent yet.
        segment_timeout: seconds a segment's final waits for its translation after its last
            frame went out.
        emit: where translations, translated audio and usage go.
        source_enabled: whether the source-language transcript is on (finals carry it).
        language: the target language in force.
    """

    def __init__(
        self,
        *,
        replay_limit_bytes: int,
        segment_timeout: float,
        emit: Callable[[TranslationOutput], None],
        source_enabled: bool,
        language: str,
    ) -> None:
        self._limit = replay_limit_bytes
        self._timeout = segment_timeout
        self._emit = emit
        self.source_enabled = source_enabled
        self.language = language
        self.store = AudioStore()
        """The held audio (from ``confirmed_to`` on, bounded)."""
        self.open = Segment(seq=0, start=0)
        """The segment audio is being appended to."""
        self.closed: deque[Segment] = deque()
        """Cut segments whose final is not released yet, in order."""
        self.confirmed_to = 0
        """Every frame before this position is translated and released."""
        self.heard_to = 0
        """End of the newest frame an output of the current socket belongs to."""
        self.send_cursor: int | None = None
        """Where the live socket's sending stands (None: no live socket)."""
        self.unbilled_bytes = 0
        """Audio sent since the last usage record."""
        self._seq = 0
        self._base = 0  # stream position of the current socket's first byte
        self._held: list[_Held] = []
        self._held_since = 0.0

    @property
    def position(self) -> int:
        """Bytes appended over the stream's life."""
        return self.store.end

    def owed(self) -> bool:
        """Audio sent or to send whose translation is not released yet."""
        return self.confirmed_to < self.position

    # -- input side -----------------------------------------------------------------------------

    def append(self, chunk: bytes) -> None:
        """Add whole frames of audio to the open segment (the session seals them)."""
        self.store.append(chunk)
        floor = frame_floor(self.store.end - self._limit)
        if self.send_cursor is not None:
            floor = min(floor, self.send_cursor)
        if floor > self.store.start:
            self.store.drop_before(floor)

    def cut(self, now: float) -> Segment | None:
        """End the open segment at the last frame boundary; the audio after it starts the next
        one. None when the open segment holds no whole frame (its audio goes with the next)."""
        end = frame_floor(self.position)
        if end <= self.open.start:
            return None
        seg, self.open = self.open, Segment(seq=self._next_seq(), start=end)
        seg.end = end
        if self.send_cursor is not None and self.send_cursor >= end:
            seg.sent_at = now
        self.closed.append(seg)
        # no frame past the cut can have been heard (nothing is heard past the audio
        # appended), so the text released into the open segment so far is all this one's
        return seg

    # -- the socket ------------------------------------------------------------------------------

    def start_socket(self) -> ReplayPlan:
        """A new socket is configured: plan its audio. It starts at the first frame whose
        translation is not known to be complete; audio let go past the replay bound is skipped
        (and reported as lost)."""
        self._drop_held()
        lost = max(0, self.store.start - self.confirmed_to)
        start = self.confirmed_to + lost
        self.confirmed_to = self.heard_to = self._base = start
        self.send_cursor = start
        for seg in self.closed:
            seg.sent_at = None
        return ReplayPlan(start=start, owed_bytes=self.position - start, lost_bytes=lost)

    def end_socket(self) -> None:
        """The socket is gone: outputs of frames not known complete are dropped (the next
        socket translates those frames again)."""
        self._drop_held()
        self.heard_to = self.confirmed_to
        self.send_cursor = None

    def sent(self, nbytes: int, now: float) -> None:
        """``nbytes`` more audio went out on the live socket."""
        assert self.send_cursor is not None
        self.send_cursor += nbytes
        self.unbilled_bytes += nbytes
        for seg in self.closed:
            if seg.sent_at is None and seg.end is not None and seg.end <= self.send_cursor:
                seg.sent_at = now

    def bill(self, item_id: str) -> None:
        """Report the audio sent since the last usage record."""
        if self.unbilled_bytes:
            self._emit(UsageRecord(item_id, self.unbilled_bytes / p.BYTES_PER_SECOND))
            self.unbilled_bytes = 0

    # -- outputs ---------------------------------------------------------------------------------

    def frame_end(self, elapsed_ms: int | None) -> int:
        """The stream position where the frame an output belongs to ends.

        ``elapsed_ms`` counts the current socket's audio (§5.2: resumed audio is contiguous),
        clamped to the frames sent. Without it, the output belongs to the newest frame heard
        (or the socket's first) [I].
        """
        first = self._base + FRAME
        if elapsed_ms is None:
            return max(self.heard_to, first)
        sent = self.send_cursor if self.send_cursor is not None else self.heard_to
        end = self._base + tp.frames_through(elapsed_ms) * FRAME
        return min(max(end, first), max(sent, first))

    def output(self, out: tp.Output, now: float) -> None:
        """An output of the live socket: held while its frame may still get more, else
        released; an interim shows the segment's text so far."""
        end = self.frame_end(out.elapsed_ms)
        if end > self.heard_to:
            self._release_held()
            self._confirm(end - FRAME)
            self.heard_to = end
            self._held_since = now
        if end == self.heard_to and end > self.confirmed_to:
            self._held.append(_Held(out, self.language))
        else:
            self._apply(out, end, self.language)
        if isinstance(out, tp.OutputTranscript) and out.delta:
            self._interim(self._segment_for(end))
        self.release_finals(now)

    def closed_by_server(self, now: float) -> None:
        """``session.closed``: every frame sent is translated."""
        self._release_held()
        if self.send_cursor is not None:
            self._confirm(self.send_cursor)
            self.heard_to = self.confirmed_to
        self.release_finals(now)

    def tick(self, now: float) -> None:
        """Release the held frame and the finals whose time came."""
        if self._held and now - self._held_since >= HOLD_SECONDS:
            self._release_held()
        self.release_finals(now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has something to do, or None."""
        due = []
        if self._held:
            due.append(self._held_since + HOLD_SECONDS)
        if self.closed and self.closed[0].sent_at is not None:
            due.append(self.closed[0].sent_at + self._timeout)
        return min(due) if due else None

    def release_finals(self, now: float) -> None:
        """Emit the final (and usage) of every segment whose translation arrived, or whose
        wait timed out, in order."""
        while self.closed:
            seg = self.closed[0]
            assert seg.end is not None
            timed_out = seg.sent_at is not None and now - seg.sent_at >= self._timeout
            if seg.end > self.confirmed_to and not timed_out:
                return
            self.closed.popleft()
            if seg.text.strip():
                self._emit(self._translation("final", seg))
            self.bill(seg.id)

    def release_all(self) -> None:
        """End of the stream: release every final as it stands."""
        self._release_held()
        while self.closed:
            seg = self.closed.popleft()
            if seg.text.strip():
                self._emit(self._translation("final", seg))
            self.bill(seg.id)

    def set_language(self, language: str) -> None:
        """The server confirmed a new target language: text from now on is in it."""
        self.language = language

    # -- internals -------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _segment_for(self, frame_end: int) -> Segment:
        """The segment a frame's translation goes to: the one holding the frame, or the first
        not released yet when that one was (late text is never dropped)."""
        for seg in self.closed:
            assert seg.end is not None
            if frame_end <= seg.end:
                return seg
        return self.open

    def _release_held(self) -> None:
        held, self._held = self._held, []
        for h in held:
            self._apply(h.output, self.heard_to, h.language)
        self._confirm(self.heard_to)

    def _confirm(self, pos: int) -> None:
        """Every frame before ``pos`` is translated: its audio is no longer needed."""
        if pos > self.confirmed_to:
            self.confirmed_to = pos
            self.store.drop_before(pos)

    def _drop_held(self) -> None:
        self._held.clear()

    def _apply(self, out: tp.Output, frame_end: int, language: str) -> None:
        if isinstance(out, tp.OutputAudio):
            self._emit(TranslatedAudio(out.audio, out.sample_rate, out.channels))
            return
        seg = self._segment_for(frame_end)
        if isinstance(out, tp.InputTranscript):
            seg.source += out.delta
        elif seg.runs and seg.runs[-1][0] == language:
            seg.runs[-1][1] += out.delta
        elif out.delta:
            seg.runs.append([language, out.delta])

    def _interim(self, seg: Segment) -> None:
        held = "".join(
            h.output.delta for h in self._held if isinstance(h.output, tp.OutputTranscript)
        )
        if held and self._segment_for(self.heard_to) is not seg:
            held = ""
        if (seg.text + held).strip():
            self._emit(self._translation("interim", seg, held))

    def _translation(
        self, kind: Literal["interim", "final"], seg: Segment, held: str = ""
    ) -> Translation:
        runs = tuple((lang, text) for lang, text in seg.runs)
        if held:
            if runs and runs[-1][0] == self.language:
                runs = (*runs[:-1], (self.language, runs[-1][1] + held))
            else:
                runs = (*runs, (self.language, held))
        return Translation(
            kind=kind,
            segment_id=seg.id,
            text="".join(text for _, text in runs),
            language=runs[0][0] if runs else self.language,
            runs=runs,
            source_text=seg.source if self.source_enabled else None,
            start=seg.start / p.BYTES_PER_SECOND,
            end=seg.end / p.BYTES_PER_SECOND if seg.end is not None else 0.0,
        )
