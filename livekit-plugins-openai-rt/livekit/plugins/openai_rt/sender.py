"""What goes out on the live socket, in order: a cursor that walks the audio ledger.

Part of the sans-I/O session core (:mod:`.session` owns one :class:`Sender`). Nothing is
queued but control messages: audio, commits and clears are read from the ledger when the socket
can take them, so a replay after a reconnect is just the cursor starting again at the oldest
audio still owed a transcript, and it is contiguous by construction.
"""

from __future__ import annotations

from collections import deque

from . import protocol as p
from .ledger import AudioLedger, Segment


class Sender:
    """The send side of one socket.

    It also knows what the server's input buffer holds (the audio sent since the last commit
    or clear on this socket): when the next audio to send does not continue that buffer (the
    session dropped audio that holds no speech), an ``input_audio_buffer.clear`` goes first, so
    the dropped audio never reaches a commit.

    Args:
        ledger: the session's audio ledger; its ``send_cursor`` is kept in step so the replay
            bound never lets go of audio this socket has not sent.
    """

    def __init__(self, ledger: AudioLedger) -> None:
        self._ledger = ledger
        self._fmt = ledger.format
        self._control: deque[bytes] = deque()  # messages that go before any audio
        self._cursor = 0  # absolute position of the next audio byte to send
        self._marks: list[tuple[int, int]] = [(0, 0)]  # (server byte, stream position)
        self._server_bytes = 0  # audio bytes sent on this socket
        self._buffer_start = 0  # stream position of the server buffer's first byte
        self._buffered = 0  # bytes in the server's buffer (sent since the last commit or clear)
        self._last_commit: Segment | None = None
        self.hold: int | None = None
        """Open audio from this position on is not sent yet (the stream's VAD has not seen
        it); None: no hold. Committed audio is never held."""
        self.commits_issued = 0
        """Client commits issued on this socket."""

    def reset(self) -> None:
        """No live socket: nothing goes out, the replay bound applies to all held audio."""
        self._control.clear()
        self._ledger.send_cursor = None

    def start(self, pos: int) -> None:
        """A configured socket: audio goes out from stream position ``pos``."""
        self._cursor = pos
        self._server_bytes = 0
        self._marks = [(0, pos)]
        self._buffered = 0
        self._last_commit = None
        self._ledger.send_cursor = pos

    def control(self, message: bytes) -> None:
        """Queue a control message (``session.update``): it goes before any audio."""
        self._control.append(message)

    def has_control(self) -> bool:
        """A control message waits."""
        return bool(self._control)

    def next_control(self) -> bytes | None:
        """The next control message, if any."""
        return self._control.popleft() if self._control else None

    def has_audio(self) -> bool:
        """Audio, a commit or a clear waits to go out (a cheap check)."""
        ledger = self._ledger
        if self._cursor < self._open_limit():
            return True
        if self._buffered and self._buffer_start != ledger.open.start:
            return True
        for seg in ledger.in_flight:
            if not (seg.commit_issued or seg.by_server or seg.done):
                return True
        return False

    def next_audio(self) -> bytes | None:
        """The next append, commit or clear, in stream order: each committed segment's audio,
        then its commit, then the open audio (up to the hold). None when everything that may
        go out went out."""
        ledger = self._ledger
        for seg in ledger.in_flight:
            if seg.commit_issued or seg.by_server or seg.done:  # the common case first
                continue
            clear = self._clear_unless_at(seg.start)
            if clear is not None:
                return clear
            if self._cursor < seg.start:
                self._jump(seg.start)
            if self._cursor < seg.end:
                return self._append(seg.end)
            seg.commit_issued = True
            self.commits_issued += 1
            self._buffered = 0
            self._last_commit = seg
            return p.commit_message(seg.commit_event_id)
        clear = self._clear_unless_at(ledger.open.start)
        if clear is not None:
            return clear
        if self._cursor < ledger.open.start:
            self._jump(ledger.open.start)
        limit = self._open_limit()
        if self._cursor < limit:
            return self._append(limit)
        return None

    def refused(self, seg: Segment) -> None:
        """The server refused ``seg``'s commit and kept its buffer (§3.3): unless a later
        commit on this socket emptied it since, the server's buffer still starts at ``seg``."""
        if seg is self._last_commit:
            self._buffer_start = seg.start
            self._buffered = self._cursor - seg.start
            self._last_commit = None

    def server_committed(self, end: int) -> None:
        """The server's VAD committed its buffer up to stream position ``end``."""
        self._buffer_start = end
        self._buffered = max(0, self._cursor - end)
        self._last_commit = None

    def stream_pos(self, server_ms: int) -> int:
        """The stream position of a server audio timestamp (ms of audio sent on this socket:
        the server's clock skips what the cursor skipped)."""
        server_byte = server_ms * self._fmt.bytes_per_ms
        base_server, base_pos = self._marks[0]
        for s_byte, pos in self._marks:
            if s_byte > server_byte:
                break
            base_server, base_pos = s_byte, pos
        return base_pos + server_byte - base_server

    def _open_limit(self) -> int:
        position = self._ledger.position
        return position if self.hold is None else min(position, max(self.hold, self._cursor))

    def _clear_unless_at(self, start: int) -> bytes | None:
        """A clear, when the server's buffer holds audio that the next audio to send (at
        ``start``) does not continue: audio the session dropped."""
        if not self._buffered or self._buffer_start == start:
            return None
        self._buffered = 0
        return p.CLEAR_MESSAGE

    def _append(self, limit: int) -> bytes:
        chunk = self._ledger.store.read(
            self._cursor, min(self._fmt.chunk_bytes, limit - self._cursor)
        )
        if not self._buffered:
            self._buffer_start = self._cursor
        self._buffered += len(chunk)
        self._cursor += len(chunk)
        self._server_bytes += len(chunk)
        self._ledger.send_cursor = self._cursor
        return p.append_message(chunk)

    def _jump(self, pos: int) -> None:
        """Skip audio that needs no sending (already transcribed, or dropped)."""
        self._cursor = pos
        self._marks.append((self._server_bytes, pos))
        self._ledger.send_cursor = pos
