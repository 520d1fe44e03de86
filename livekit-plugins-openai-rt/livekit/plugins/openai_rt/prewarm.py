"""A warm first turn: one transcription session opened and configured before a stream needs it.

``STT.prewarm()`` (LiveKit calls it when an agent activity starts) opens a socket, waits for
``session.created``, sends the ``session.update`` a stream of the STT would send, and waits for
``session.updated``. The next ``stream()`` whose URL and configuration match takes that socket
over, and its core starts LIVE at once (``TranscriptionSession.socket_adopted``): the first
audio goes out as it arrives, instead of after the handshake and the configuration round trip.
A warm session nobody takes within ``prewarm_ttl`` seconds is closed.

Why not ``livekit.agents.utils.ConnectionPool``: its sockets are bare (the configuration round
trip, the larger half of the wait, would still be on the first turn), it gives sockets back to
the pool when a stream ends (a used transcription session carries its item chain and expiry
clock; each stream here owns its sessions), and it has no bound for an unused socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from . import protocol as p
from .auth import Credentials, CredentialsError
from .connection import Closed, Connection, Text, TransportError
from .log import logger

T = TypeVar("T")


@dataclass(frozen=True)
class WarmSession:
    """A socket whose session is configured and unused.

    Attributes:
        conn: the socket (nobody reads it until a stream takes it over).
        created: its ``session.created`` (id, ``expires_at``).
        config: the configuration it was given (``session.updated`` answered it).
        url: the URL it was opened on.
        opened_at: ``time.monotonic()`` when the socket opened (its lifetime starts there).
    """

    conn: Connection
    created: p.SessionCreated
    config: p.SessionConfig
    url: str
    opened_at: float


class PrewarmFailed(Exception):
    """The warm session could not be set up (the first stream then connects itself)."""


async def open_warm(
    http: aiohttp.ClientSession,
    url: str,
    *,
    credentials: Credentials,
    config: p.SessionConfig,
    timeout: float,
    heartbeat: float | None,
) -> WarmSession:
    """Open and configure a session within ``timeout`` seconds, with the STT's credentials.
    Raises :class:`PrewarmFailed`, :class:`~.connection.TransportError` or
    :class:`~.auth.CredentialsError`; anything the server answers other than
    ``session.created`` then ``session.updated`` is a failure (the stream that connects instead
    meets it again and applies the error policy)."""
    started = time.monotonic()
    headers = await credentials.headers()
    conn = await Connection.open(http, url, headers=headers, timeout=timeout, heartbeat=heartbeat)
    opened_at = time.monotonic()
    try:
        deadline = started + timeout
        created = await _expect(conn, p.SessionCreated, deadline)
        await conn.send(p.encode(p.session_update(config, event_id="session_update")))
        await _expect(conn, p.SessionUpdated, deadline)
    except BaseException:
        await conn.close()
        raise
    return WarmSession(conn, created, config, url, opened_at)


async def _expect(conn: Connection, kind: type[T], deadline: float) -> T:
    """The next event of ``kind``, skipping events a transcription client ignores."""
    while True:
        frame = await _within(conn.receive(), deadline)
        if isinstance(frame, Closed):
            raise PrewarmFailed(f"the socket closed ({frame.code} {frame.reason!r})")
        if not isinstance(frame, Text):
            continue
        ev = p.parse_server_event(frame.data)
        if isinstance(ev, kind):
            return ev
        if not isinstance(ev, p.Ignored | p.Unknown):
            raise PrewarmFailed(f"the server answered {type(ev).__name__}")


async def _within(coro: Coroutine[Any, Any, T], deadline: float) -> T:
    """Await ``coro`` until ``deadline`` (monotonic); a cancellation is never swallowed."""
    task = asyncio.ensure_future(coro)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
    finally:
        if not task.done():
            task.cancel()
    if not done:
        raise PrewarmFailed("no answer in time")
    return task.result()


class Prewarmer:
    """Holds at most one warm session for an STT.

    Args:
        ttl: seconds a warm session waits for a stream before it is closed.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._task: asyncio.Task[WarmSession | None] | None = None
        self._key: tuple[str, p.SessionConfig] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> bool:
        """A warm session is being set up or waits for a stream."""
        return self._task is not None

    def start(
        self, url: str, config: p.SessionConfig, opener: Callable[[], Awaitable[WarmSession]]
    ) -> None:
        """Set up a warm session with ``opener`` (in the background), unless one is pending."""
        if self._task is not None:
            return
        self._key = (url, config)
        self._task = asyncio.create_task(self._run(opener), name="openai_rt.prewarm")

    def take(self, url: str, config: p.SessionConfig) -> asyncio.Task[WarmSession | None] | None:
        """The pending warm session (a task: it may still be opening) when it was set up for
        ``url`` and ``config``; it is the caller's from now on. None otherwise."""
        if self._task is None or self._key != (url, config):
            return None
        task, self._task = self._task, None
        self._cancel_expiry()
        return task

    async def aclose(self) -> None:
        """Close the pending warm session, if any."""
        task, self._task = self._task, None
        self._cancel_expiry()
        if task is not None:
            task.cancel()
            results = await asyncio.gather(task, return_exceptions=True)
            if isinstance(results[0], WarmSession):
                await results[0].conn.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _run(self, opener: Callable[[], Awaitable[WarmSession]]) -> WarmSession | None:
        started = time.monotonic()
        try:
            warm = await opener()
        except (PrewarmFailed, TransportError, CredentialsError) as e:
            logger.debug("prewarming a session failed (%s); the first stream connects itself", e)
            if self._task is asyncio.current_task():
                self._task = None
            return None
        logger.debug(
            "prewarmed session %s ready in %.0f ms",
            warm.created.session_id,
            (time.monotonic() - started) * 1000,
            extra={"session_id": warm.created.session_id},
        )
        if self._task is asyncio.current_task():
            self._expiry = asyncio.get_running_loop().call_later(self.ttl, self._expire)
        return warm

    def _expire(self) -> None:
        self._expiry = None
        task, self._task = self._task, None
        if task is None or not task.done() or task.cancelled():
            return
        warm = task.result()
        if warm is None:
            return
        logger.debug(
            "prewarmed session %s unused for %g s: closed",
            warm.created.session_id,
            self.ttl,
            extra={"session_id": warm.created.session_id},
        )
        closing = asyncio.ensure_future(warm.conn.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None


async def adopt(task: asyncio.Task[WarmSession | None]) -> WarmSession | None:
    """Wait for a taken warm session. If the waiter is cancelled, the session is closed (or
    its setup cancelled): a taken socket is never left open."""
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            warm = await task
            if warm is not None:
                await warm.conn.close()
        raise
