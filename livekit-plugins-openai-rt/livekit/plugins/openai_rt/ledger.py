"""Sans-I/O bookkeeping of a stream's audio: what was appended, committed, transcribed.

The ledger is what makes "nothing lost, nothing duplicated" checkable and replayable. Positions
are absolute byte offsets into the stream's audio, in the session's input format
(:class:`~.protocol.AudioFormat`: pcm16 at 24 kHz or G.711 at 8 kHz), counted from its first byte.
The audio itself is held once, contiguously, in an :class:`AudioStore`; a :class:`Segment` is a
span of it that becomes (or will become) one server item. Every byte belongs to exactly one
segment: a committed one waiting for its transcript, or the open one (appended since the last
commit). Segments are released in commit order. After a socket dies the ledger says where the
next socket's audio starts and how much of what is owed is gone past the replay bound.

No sockets, no clocks.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field

from .formats import PCM16, AudioFormat
from .protocol import ServerError, TranscriptCompleted


class AudioStore:
    """The held audio: the contiguous bytes ``[start, end)`` of the stream, in chunks.

    Chunks are kept as appended (no copy); reading at a chunk boundary returns the chunk
    itself. The oldest bytes are let go with :meth:`drop_before`, at once.
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._starts: list[int] = []
        self._head = 0  # chunks before this index are dropped (compacted now and then)
        self.start = 0
        """Absolute position of the oldest byte held."""
        self.end = 0
        """Absolute position one past the newest byte held (= bytes appended so far)."""

    @property
    def nbytes(self) -> int:
        """Bytes held."""
        return self.end - self.start

    def append(self, chunk: bytes) -> None:
        """Hold ``chunk`` after the newest byte."""
        if not chunk:
            return
        self._chunks.append(chunk)
        self._starts.append(self.end)
        self.end += len(chunk)

    def read(self, pos: int, limit: int) -> bytes:
        """Up to ``limit`` bytes from absolute position ``pos``, never crossing a chunk
        boundary (so a read at a chunk's start returns that chunk without a copy).
        ``pos`` must be held (``start <= pos < end``)."""
        i = bisect_right(self._starts, pos, self._head) - 1
        chunk = self._chunks[i]
        off = pos - self._starts[i]
        if off == 0 and len(chunk) <= limit:
            return chunk
        return chunk[off : off + limit]

    def drop_before(self, pos: int) -> int:
        """Let go of the bytes before ``pos``; returns how many were let go."""
        pos = min(pos, self.end)
        if pos <= self.start:
            return 0
        dropped = pos - self.start
        i = bisect_right(self._starts, pos, self._head) - 1
        if i >= self._head and self._starts[i] < pos:
            # cut the chunk that holds ``pos``: keep its tail
            off = pos - self._starts[i]
            self._chunks[i] = self._chunks[i][off:]
            self._starts[i] = pos
        for j in range(self._head, i):
            self._chunks[j] = b""  # the audio goes now; the list itself is compacted later
        self._head = max(self._head, i)
        if self._head > 256 and self._head * 2 > len(self._chunks):
            del self._chunks[: self._head]
            del self._starts[: self._head]
            self._head = 0
        self.start = pos
        return dropped


@dataclass(eq=False)
class Segment:
    """A span ``[start, end)`` of the stream's audio that becomes one server item.

    Attributes:
        seq: order of the segment in the stream (also names its client commit).
        start: absolute position of its first byte.
        end: absolute position one past its last byte.
        by_server: the server's VAD committed it (rather than a client commit).
        item_id: the server item on the current socket, once ``committed`` named it.
        commit_issued: its client commit went out on the current socket.
        result: the ``completed`` event, once it arrived.
        failure: why it will have no transcript (a ``failed`` item, or audio lost).
    """

    seq: int
    start: int
    end: int
    by_server: bool = False
    item_id: str | None = None
    commit_issued: bool = False
    result: TranscriptCompleted | None = None
    failure: ServerError | None = None

    @property
    def nbytes(self) -> int:
        """Audio bytes in the span."""
        return self.end - self.start

    @property
    def done(self) -> bool:
        """The server answered for it (transcript or failure)."""
        return self.result is not None or self.failure is not None

    @property
    def commit_event_id(self) -> str:
        """The ``event_id`` of its client commit, echoed back by errors about that commit."""
        return f"commit_{self.seq}"


@dataclass(frozen=True)
class ReplayPlan:
    """Where a new socket's audio starts, after :meth:`AudioLedger.reset_socket`.

    Attributes:
        start: absolute position of the first byte the new socket receives.
        owed_bytes: bytes of untranscribed audio the new socket receives again.
        lost_bytes: bytes of untranscribed audio that were let go past the replay bound and
            cannot be sent again.
        lost_segments: committed segments entirely let go (they end with no transcript).
    """

    start: int
    owed_bytes: int
    lost_bytes: int
    lost_segments: tuple[Segment, ...] = field(default=())


LOST_AUDIO = ServerError(
    code=None,
    type=None,
    message="the audio went past the replay bound before it could be sent again",
)
"""The failure a segment gets when its audio was let go before a new socket could take it."""


class AudioLedger:
    """Tracks a stream's audio from append to released transcript.

    Args:
        replay_limit_bytes: most untranscribed audio held for replay after a reconnect. Past it
            the oldest held audio is let go, but never audio the live socket has not been sent
            yet: that is a backlog, not a replay.
        audio_format: the format the positions count bytes of (the commit minimum is its).
    """

    def __init__(self, *, replay_limit_bytes: int, audio_format: AudioFormat = PCM16) -> None:
        self._replay_limit = replay_limit_bytes
        self.format = audio_format
        """The audio format (units of every position)."""
        self._seq = 0
        self.store = AudioStore()
        """The held audio."""
        self.open = Segment(seq=0, start=0, end=0)
        """Audio appended since the last commit."""
        self.in_flight: deque[Segment] = deque()
        """Committed segments not released yet, in commit order."""
        self.send_cursor: int | None = None
        """Where the live socket's sending stands (None: no live socket). Audio from here on
        was not sent on it yet, so the replay bound never lets it go. Kept by the session."""

    @property
    def position(self) -> int:
        """Bytes appended over the stream's life."""
        return self.store.end

    # -- input side -----------------------------------------------------------------------------

    def append(self, chunk: bytes) -> None:
        """Add appended audio to the open segment."""
        self.store.append(chunk)
        self.open.end = self.store.end
        self._apply_bound()

    def commit(self, end: int | None = None) -> Segment | None:
        """Close the open audio up to ``end`` (default: all of it) for a client commit; what
        follows ``end`` stays open.

        Returns None (and keeps the audio open, to go with the next commit) when the span holds
        less than the server's 100 ms minimum.
        """
        end = self._open_end(end)
        if end - self.open.start < self.format.min_commit_bytes:
            return None
        if end == self.open.end:
            seg = self.open
            self._start_open(end)
        else:
            seg = self._split_open(end)
        self.in_flight.append(seg)
        return seg

    def clear_open(self, end: int | None = None) -> int:
        """Drop the open audio up to ``end`` (default: all of it): nothing will transcribe it.
        Returns the bytes dropped. The sender clears the server's buffer of whatever of it was
        sent (see :class:`~.sender.Sender`)."""
        end = self._open_end(end)
        dropped = end - self.open.start
        self.open.start = end
        self._drop_unneeded()
        return dropped

    def padding_needed(self) -> int:
        """Bytes of silence that bring a non-empty open segment up to the commit minimum (end of
        input: a short tail is committed padded rather than dropped)."""
        if 0 < self.open.nbytes < self.format.min_commit_bytes:
            return self.format.min_commit_bytes - self.open.nbytes
        return 0

    # -- server side ----------------------------------------------------------------------------

    def on_committed(self, item_id: str, *, end_pos: int | None) -> Segment | None:
        """Attach a ``committed`` item to its segment.

        ``end_pos`` is the stream position of the item's ``speech_stopped``, known only when the
        server's VAD made the commit; the item then covers the audio up to that point: the head
        of the oldest waiting segment that contains it (a client commit racing the server's
        VAD) or of the open audio. Otherwise the item answers the oldest client commit still
        waiting, or (a server commit with no ``speech_stopped``) takes all open audio.
        Returns None for a repeated ``committed``.
        """
        if self.find(item_id) is not None:
            return None
        if end_pos is None:
            waiting = self.oldest_waiting_commit()
            if waiting is not None:
                waiting.item_id = item_id
                return waiting
            seg = self._split_open(self.open.end)
        else:
            for i, pending in enumerate(self.in_flight):
                if pending.item_id is None and pending.start < end_pos < pending.end:
                    head = Segment(
                        seq=self._next_seq(), start=pending.start, end=end_pos, by_server=True
                    )
                    pending.start = end_pos
                    head.item_id = item_id
                    self.in_flight.insert(i, head)
                    return head
            seg = self._split_open(min(self.open.end, max(self.open.start, end_pos)))
        seg.by_server = True
        seg.item_id = item_id
        self.in_flight.append(seg)
        return seg

    def oldest_waiting_commit(self) -> Segment | None:
        """The oldest segment whose client commit went out on this socket and that no
        ``committed`` named yet."""
        for seg in self.in_flight:
            if seg.commit_issued and seg.item_id is None:
                return seg
        return None

    def waiting_commits(self) -> int:
        """Client commits issued on this socket that no ``committed`` named yet."""
        return sum(1 for seg in self.in_flight if seg.commit_issued and seg.item_id is None)

    def find(self, item_id: str) -> Segment | None:
        """The in-flight segment the current socket calls ``item_id``."""
        for seg in self.in_flight:
            if seg.item_id == item_id:
                return seg
        return None

    def find_commit(self, event_id: str) -> Segment | None:
        """The in-flight segment whose client commit carried ``event_id``."""
        for seg in self.in_flight:
            if seg.commit_event_id == event_id:
                return seg
        return None

    def refuse(self, seg: Segment) -> None:
        """The server refused ``seg``'s commit and kept its buffer (§3.3): the audio goes with
        the next commit, so it is folded into the segment after it (or the open audio)."""
        i = self.in_flight.index(seg)
        nxt = self.in_flight[i + 1] if i + 1 < len(self.in_flight) else self.open
        nxt.start = seg.start
        del self.in_flight[i]

    def release(self) -> list[Segment]:
        """Pop the segments that are done and have no undone segment before them."""
        out: list[Segment] = []
        while self.in_flight and self.in_flight[0].done:
            out.append(self.in_flight.popleft())
        if out:
            self._drop_unneeded()
        return out

    def owed(self) -> bool:
        """A result is owed by the current socket: a commit went out (or the server committed)
        and no transcript or failure came back yet."""
        return any(
            (s.commit_issued or s.item_id is not None) and not s.done for s in self.in_flight
        )

    def abandon_open(self) -> int:
        """Drop the open audio (nothing will commit it); returns its size in bytes."""
        return self.clear_open()

    # -- reconnect ------------------------------------------------------------------------------

    def reset_socket(self, *, server_commits: bool) -> ReplayPlan:
        """Forget the old socket's item ids and plan what the new socket must receive.

        With client commits every undone segment is committed again as it was. When the
        server's VAD commits, it must find the turns again, so undone segments (and the done
        ones queued behind them, whose results would otherwise jump the order) go back into
        the open audio. Audio let go past the replay bound is reported, and segments wholly
        let go end with a :data:`LOST_AUDIO` failure.
        """
        self.send_cursor = None
        if server_commits and any(not s.done for s in self.in_flight):
            first = next(i for i, s in enumerate(self.in_flight) if not s.done)
            merge_from = self.in_flight[first].start
            while len(self.in_flight) > first:
                self.in_flight.pop()
            self.open.start = merge_from
        for seg in self.in_flight:
            seg.item_id = None
            seg.commit_issued = False
        held_from = self.store.start
        lost = 0
        lost_segments: list[Segment] = []
        owed = 0
        for seg in [*self.in_flight, self.open]:
            if seg.done:
                continue
            if seg.start < held_from:
                gone = min(seg.end, held_from) - seg.start
                lost += gone
                if seg is not self.open and seg.end <= held_from:
                    seg.failure = LOST_AUDIO
                    lost_segments.append(seg)
                    continue
                seg.start += gone
            owed += seg.nbytes
        return ReplayPlan(
            start=max(held_from, self._needed_from()),
            owed_bytes=owed,
            lost_bytes=lost,
            lost_segments=tuple(lost_segments),
        )

    # -- internals ------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _start_open(self, pos: int) -> None:
        self.open = Segment(seq=self._next_seq(), start=pos, end=pos)

    def _open_end(self, end: int | None) -> int:
        """``end`` clamped into the open audio (None: its end)."""
        return self.open.end if end is None else min(self.open.end, max(self.open.start, end))

    def _split_open(self, end: int) -> Segment:
        """Cut the open audio at ``end``: a new segment for the part before it."""
        head = Segment(seq=self._next_seq(), start=self.open.start, end=end)
        self.open.start = end
        return head

    def _needed_from(self) -> int:
        """The oldest position still owed a transcript."""
        for seg in self.in_flight:
            if not seg.done:
                return seg.start
        return self.open.start

    def _drop_unneeded(self) -> None:
        """Let go of audio no segment needs any more (never audio the live socket has not
        sent)."""
        keep_from = self._needed_from()
        if self.send_cursor is not None:
            keep_from = min(keep_from, self.send_cursor)
        self.store.drop_before(keep_from)

    def _apply_bound(self) -> None:
        """Keep at most the replay bound of held audio, letting the oldest go, but never audio
        the live socket has not sent yet."""
        floor = self.store.end - self._replay_limit
        if self.send_cursor is not None:
            floor = min(floor, self.send_cursor)
        if floor > self.store.start:
            self.store.drop_before(floor)
