"""One accepted websocket at run time: its protocol session, what waits to be written, its timer.

:class:`~.server.Emulator` makes a :class:`Connection` per upgrade it accepts. The connection
queues what its session returns for the writer task and keeps the one timer that polls the
session at :meth:`~.lifecycle.ConnectionSession.next_deadline`; it also carries the state the
fault plan leaves on it (stalls, a drop, the rules already fired: :mod:`.injection`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from .faults import RandomDrop
from .outbox import Outgoing
from .schema import Json
from .server_session import ServerSession
from .translation_session import TranslationServerSession

__all__ = ["BinaryFrame", "Connection", "RawFrame", "Session"]


@dataclass
class RawFrame:
    """A text frame sent as is (the fault plan's malformed frame)."""

    text: str


@dataclass
class BinaryFrame:
    """A binary frame of ``size`` zero bytes (the fault plan's ``send_binary``)."""

    size: int


Session = ServerSession | TranslationServerSession
"""The protocol state of one connection: transcription (and routing errors) or translation."""


class Connection:
    """Runtime state of one accepted websocket (the protocol state is in ``session``)."""

    def __init__(
        self,
        session: Session,
        request: web.Request,
        ws: web.WebSocketResponse,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """A connection whose websocket ``ws`` was just accepted for ``request``."""
        self.session = session
        self.record = session.record
        self.request = request
        self.ws = ws
        self.loop = loop
        self.t0 = loop.time()
        self.out: asyncio.Queue[Outgoing | RawFrame | BinaryFrame] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        # The one timer that calls session.poll at session.next_deadline().
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: float | None = None
        self.finished = False
        self.dropped = False
        self.read_stalled = False
        self.answer_stalled = False
        self.close_in_progress = False
        # fault bookkeeping
        self.fired: list[object] = []
        self.random_drop_rule: RandomDrop | None = None
        self.random_drop_at = 0
        # committed events held back until their item's result (committed_after_completed)
        self.held_committed: dict[str, Json] = {}

    def was_fired(self, rule: object) -> bool:
        """``rule`` (this very object) has fired on this connection."""
        return any(r is rule for r in self.fired)

    def deliver(self, outgoing: list[Outgoing]) -> None:
        """Queue what the session returned for the writer, and re-arm its timer."""
        if self.finished:
            return
        for item in outgoing:
            self.out.put_nowait(item)
        deadline = self.session.next_deadline()
        if deadline == self.timer_at:
            return
        self.cancel_timer()
        self.timer_at = deadline
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self._on_timer, deadline)

    def cancel_timer(self) -> None:
        """Stop the session's timer, if one is armed."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self, deadline: float) -> None:
        self.timer = None
        self.timer_at = None
        if self.finished:
            return
        # The loop may fire a timer up to its clock resolution early: the deadline has come.
        now = max(self.loop.time(), deadline)
        self.deliver(self.session.poll(now))

    def drop(self) -> None:
        """Abort the TCP connection: no close frame, the client sees an abnormal closure."""
        self.dropped = True
        self.session.abandon()
        self.record.close_code = 1006
        self.abort_transport()

    def abort_transport(self) -> None:
        """Abort the TCP connection under the websocket, if it is still there."""
        transport = self.request.transport
        if transport is not None:
            transport.abort()
