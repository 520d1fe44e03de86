"""Sans-I/O bookkeeping of a stream's audio: what was appended, committed, transcribed.

The ledger is what makes "nothing lost, nothing duplicated" checkable and replayable: every byte
of audio belongs to exactly one :class:`Segment` (the open one, or a committed one waiting for its
transcript), segments are released in commit order, and after a socket dies the ledger says
which audio the next socket must receive again. No sockets, no clocks.

Positions are absolute byte offsets into the stream's audio (pcm16, 24 kHz), so a segment keeps
its place even when the oldest audio is no longer held for replay.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .protocol import BYTES_PER_SECOND, MIN_COMMIT_BYTES, ServerError, TranscriptCompleted


@dataclass(eq=False)
class Segment:
    """A span of the stream's audio that becomes (or will become) one server item.

    Attributes:
        seq: 0-based order of the segment in the stream.
        start_pos: absolute byte position of its first byte.
        end_pos: absolute byte position one past its last byte.
        chunks: the audio still held for replay (a suffix of the span when the oldest audio
            went past the replay bound).
        held: bytes in ``chunks``.
        by_server: the server's VAD committed it (rather than a client commit).
        item_id: the server item on the current socket, once ``committed`` named it.
        commit_sent: a client commit for it went out on the current socket.
        result: the ``completed`` event, once it arrived.
        failure: the ``failed`` error, when the server could not transcribe it.
    """

    seq: int
    start_pos: int
    end_pos: int
    chunks: list[bytes] = field(default_factory=list)
    held: int = 0
    by_server: bool = False
    item_id: str | None = None
    commit_sent: bool = False
    result: TranscriptCompleted | None = None
    failure: ServerError | None = None

    @property
    def nbytes(self) -> int:
        """Audio bytes in the span (held or not)."""
        return self.end_pos - self.start_pos

    @property
    def seconds(self) -> float:
        """Audio seconds in the span."""
        return self.nbytes / BYTES_PER_SECOND

    @property
    def start_seconds(self) -> float:
        """Stream time of the first byte, in seconds."""
        return self.start_pos / BYTES_PER_SECOND

    @property
    def end_seconds(self) -> float:
        """Stream time one past the last byte, in seconds."""
        return self.end_pos / BYTES_PER_SECOND

    @property
    def done(self) -> bool:
        """The server answered for it (transcript or failure)."""
        return self.result is not None or self.failure is not None

    @property
    def commit_event_id(self) -> str:
        """The ``event_id`` of its client commit, echoed back by errors about that commit."""
        return f"commit_{self.seq}"


class AudioLedger:
    """Tracks a stream's audio from append to released transcript.

    Args:
        replay_limit_bytes: most audio held for replay; past it the oldest held audio is let go
            (it was sent; it is only lost if a socket dies before it is transcribed).
    """

    def __init__(self, *, replay_limit_bytes: int) -> None:
        self._replay_limit = replay_limit_bytes
        self._seq = 0
        self.position = 0
        """Bytes appended over the stream's life."""
        self.open = Segment(seq=0, start_pos=0, end_pos=0)
        """Audio appended since the last commit."""
        self.in_flight: deque[Segment] = deque()
        """Committed segments not released yet, in commit order."""
        self.held = 0
        """Bytes held for replay across all segments."""
        self.unheld_bytes = 0
        """Bytes let go past the replay bound and not yet reported."""
        self.socket_origin = 0
        """Absolute position of the first byte the current socket received."""

    # -- input side -----------------------------------------------------------------------------

    def append(self, pcm: bytes) -> None:
        """Add appended audio to the open segment."""
        n = len(pcm)
        self.open.chunks.append(pcm)
        self.open.held += n
        self.open.end_pos += n
        self.position += n
        self.held += n
        if self.held > self._replay_limit:
            self._let_go(self.held - self._replay_limit)

    def commit(self) -> Segment | None:
        """Close the open segment for a client commit.

        Returns None (and keeps the audio open, to go with the next commit) when it holds less
        than the server's 100 ms minimum.
        """
        if self.open.nbytes < MIN_COMMIT_BYTES:
            return None
        seg = self.open
        self._start_open(seg.end_pos)
        self.in_flight.append(seg)
        return seg

    def pad_open(self) -> bytes:
        """Silence that brings a non-empty open segment up to the commit minimum (end of input:
        a short tail is committed padded rather than dropped). Appended by the caller."""
        if 0 < self.open.nbytes < MIN_COMMIT_BYTES:
            return bytes(MIN_COMMIT_BYTES - self.open.nbytes)
        return b""

    # -- server side ----------------------------------------------------------------------------

    def on_committed(self, item_id: str, *, end_ms: int | None) -> Segment | None:
        """Attach a ``committed`` item to its segment.

        ``end_ms`` is the ``audio_end_ms`` of the item's ``speech_stopped`` (server time), known
        only when the server's VAD made the commit; it then covers the audio up to that point:
        the head of the oldest pending segment that contains it (a client commit racing the
        server's VAD) or of the open audio. Otherwise the item answers the oldest client commit
        still waiting, or (a server commit with no ``speech_stopped``) takes all open audio.
        Returns None for a repeated ``committed``.
        """
        if self.find(item_id) is not None:
            return None
        if end_ms is None:
            for seg in self.in_flight:
                if seg.commit_sent and seg.item_id is None:
                    seg.item_id = item_id
                    return seg
            seg = self._split(self.open, self.open.end_pos)
        else:
            pos = self.socket_origin + end_ms * 48
            target = self.open
            for i, pending in enumerate(self.in_flight):
                if pending.item_id is None and pending.start_pos < pos < pending.end_pos:
                    head = self._split(pending, pos)
                    self.in_flight.insert(i, head)
                    head.by_server = True
                    head.item_id = item_id
                    return head
            seg = self._split(target, min(target.end_pos, max(target.start_pos, pos)))
        seg.by_server = True
        seg.item_id = item_id
        self.in_flight.append(seg)
        return seg

    def find(self, item_id: str) -> Segment | None:
        """The in-flight segment the current socket calls ``item_id``."""
        for seg in self.in_flight:
            if seg.item_id == item_id:
                return seg
        return None

    def commit_refused(self, event_id: str) -> Segment | None:
        """A client commit was refused as too small (``input_audio_buffer_commit_empty``).

        The server leaves its buffer as it was (§3.3), so the segment's audio goes with the next
        commit: it is folded into the segment after it (or the open audio).
        """
        for i, seg in enumerate(self.in_flight):
            if seg.commit_event_id == event_id and seg.item_id is None:
                nxt = self.in_flight[i + 1] if i + 1 < len(self.in_flight) else self.open
                nxt.start_pos = seg.start_pos
                nxt.chunks[:0] = seg.chunks
                nxt.held += seg.held
                del self.in_flight[i]
                return seg
        return None

    def abandon_open(self) -> int:
        """Drop the open audio from the ledger (nothing will commit it); returns its size."""
        n = self.open.nbytes
        self.held -= self.open.held
        self._start_open(self.open.end_pos)
        return n

    def release(self) -> list[Segment]:
        """Pop the segments that are done and have no undone segment before them."""
        out: list[Segment] = []
        while self.in_flight and self.in_flight[0].done:
            seg = self.in_flight.popleft()
            self.held -= seg.held
            seg.chunks = []
            seg.held = 0
            out.append(seg)
        return out

    # -- reconnect ------------------------------------------------------------------------------

    def reset_socket(self, *, server_commits: bool) -> list[Segment]:
        """Forget the old socket's item ids; return the segments the new socket must receive
        again, in order, before the open audio.

        With client commits every undone segment is re-committed as it was. When the server's
        VAD commits, it must find the turns again, so undone segments (and the done ones queued
        behind them, whose results would otherwise jump the order) go back into the open audio.
        """
        if server_commits and self.in_flight:
            merged = self.in_flight[0]
            merged_chunks: list[bytes] = []
            held = 0
            for seg in self.in_flight:
                merged_chunks.extend(seg.chunks)
                held += seg.held
            merged_chunks.extend(self.open.chunks)
            held += self.open.held
            self.in_flight.clear()
            self.open = Segment(
                seq=merged.seq,
                start_pos=merged.start_pos,
                end_pos=self.open.end_pos,
                chunks=merged_chunks,
                held=held,
            )
        for seg in self.in_flight:
            seg.item_id = None
            seg.commit_sent = False
        replay = [seg for seg in self.in_flight if not seg.done]
        first = replay[0] if replay else self.open
        self.socket_origin = first.end_pos - first.held if first.held else first.start_pos
        return replay

    def take_unheld(self) -> int:
        """Bytes let go past the replay bound since the last call (for one warning)."""
        n, self.unheld_bytes = self.unheld_bytes, 0
        return n

    # -- internals ------------------------------------------------------------------------------

    def _start_open(self, pos: int) -> None:
        self._seq += 1
        self.open = Segment(seq=self._seq, start_pos=pos, end_pos=pos)

    def _split(self, seg: Segment, end: int) -> Segment:
        """Cut ``seg`` at absolute position ``end``: return a new segment for the part before
        it and keep the rest in ``seg`` (which keeps its place, commit state and seq)."""
        held_start = seg.end_pos - seg.held
        cut = end - held_start  # bytes of held audio that go to the head
        head: list[bytes] = []
        tail: list[bytes] = []
        taken = 0
        for chunk in seg.chunks:
            if taken >= cut:
                tail.append(chunk)
            elif taken + len(chunk) <= cut:
                head.append(chunk)
            else:
                head.append(chunk[: cut - taken])
                tail.append(chunk[cut - taken :])
            taken += len(chunk)
        head_held = max(0, min(cut, seg.held))
        self._seq += 1
        out = Segment(
            seq=self._seq, start_pos=seg.start_pos, end_pos=end, chunks=head, held=head_held
        )
        seg.start_pos = end
        seg.chunks = tail
        seg.held -= head_held
        return out

    def _let_go(self, excess: int) -> None:
        """Drop ``excess`` bytes of the oldest held audio."""
        for seg in (*self.in_flight, self.open):
            while excess > 0 and seg.chunks:
                chunk = seg.chunks[0]
                if len(chunk) <= excess:
                    seg.chunks.pop(0)
                    n = len(chunk)
                else:
                    seg.chunks[0] = chunk[excess:]
                    n = excess
                seg.held -= n
                self.held -= n
                self.unheld_bytes += n
                excess -= n
            if excess <= 0:
                return
