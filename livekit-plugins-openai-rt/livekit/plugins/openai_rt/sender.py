"""What goes out on the live socket, in order: a cursor that walks the audio ledger.

Part of the sans-I/O session core (:mod:`.session` owns one :class:`Sender`). Nothing is
queued but control messages: audio and commits are read from the ledger when the socket can
take them, so a replay after a reconnect is just the cursor starting again at the oldest audio
still owed a transcript, and it is contiguous by construction.
"""

from __future__ import annotations

from collections import deque

from . import protocol as p
from .ledger import AudioLedger

CHUNK_BYTES = p.BYTES_PER_SECOND // 20
"""Audio goes out in ~50 ms appends: small enough for prompt interims, few enough messages."""


class Sender:
    """The send side of one socket.

    Args:
        ledger: the session's audio ledger; its ``send_cursor`` is kept in step so the replay
            bound never lets go of audio this socket has not sent.
    """

    def __init__(self, ledger: AudioLedger) -> None:
        self._ledger = ledger
        self._control: deque[bytes] = deque()  # messages that go before any audio
        self._cursor = 0  # absolute position of the next audio byte to send
        self._marks: list[tuple[int, int]] = [(0, 0)]  # (server byte, stream position)
        self._server_bytes = 0  # audio bytes sent on this socket
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
        """Audio or a commit waits to go out (a cheap check)."""
        if self._cursor < self._ledger.position:
            return True
        return any(
            not (seg.done or seg.commit_issued or seg.by_server) for seg in self._ledger.in_flight
        )

    def next_audio(self) -> bytes | None:
        """The next append or commit, in stream order: each committed segment's audio, then
        its commit, then the open audio. None when everything went out."""
        ledger = self._ledger
        for seg in ledger.in_flight:
            if seg.done or seg.commit_issued or seg.by_server:
                continue
            if self._cursor < seg.start:
                self._jump(seg.start)
            if self._cursor < seg.end:
                return self._append(seg.end)
            seg.commit_issued = True
            self.commits_issued += 1
            return p.commit_message(seg.commit_event_id)
        if self._cursor < ledger.open.start:
            self._jump(ledger.open.start)
        if self._cursor < ledger.position:
            return self._append(ledger.position)
        return None

    def stream_pos(self, server_ms: int) -> int:
        """The stream position of a server audio timestamp (ms of audio sent on this socket:
        the server's clock skips what the cursor skipped)."""
        server_byte = server_ms * p.BYTES_PER_MS
        base_server, base_pos = self._marks[0]
        for s_byte, pos in self._marks:
            if s_byte > server_byte:
                break
            base_server, base_pos = s_byte, pos
        return base_pos + server_byte - base_server

    def _append(self, limit: int) -> bytes:
        chunk = self._ledger.store.read(self._cursor, min(CHUNK_BYTES, limit - self._cursor))
        self._cursor += len(chunk)
        self._server_bytes += len(chunk)
        self._ledger.send_cursor = self._cursor
        return p.append_message(chunk)

    def _jump(self, pos: int) -> None:
        """Skip audio that needs no sending (already transcribed)."""
        self._cursor = pos
        self._marks.append((self._server_bytes, pos))
        self._ledger.send_cursor = pos
