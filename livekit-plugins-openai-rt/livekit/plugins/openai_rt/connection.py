"""The transport: the only code that touches the socket.

:class:`Connection` opens a websocket (with an absolute deadline), sends text frames, receives
frames as small records (:data:`Frame`) and closes. It decides nothing: what a frame or a
failure means is the session's and the error policy's job. Exceptions raised here carry no
request, no headers and no chained exception, so the API key cannot ride along in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any, cast

import aiohttp

from .log import clip
from .urls import redact_url

CLOSE_TIMEOUT = 1.0
"""Seconds to wait for the server's close frame after ours (a dead server never sends it)."""

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest server frame accepted (the protocol's events are far smaller)."""

RETRY_AFTER_MAX_SECONDS = 60.0
"""A ``Retry-After`` longer than this is capped (a stream cannot wait minutes)."""


class TransportError(Exception):
    """The socket could not be opened, or broke. ``timed_out`` when a deadline passed."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.timed_out = timed_out


class HandshakeRefused(TransportError):
    """The server answered the upgrade with an HTTP error status.

    Attributes:
        status: the HTTP status.
        retry_after: seconds the server asked to wait (``Retry-After``), capped; None if absent.
    """

    def __init__(self, message: str, *, status: int, retry_after: float | None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Text:
    """A text frame: one JSON server event."""

    data: str


@dataclass(frozen=True, slots=True)
class Binary:
    """A binary frame (the protocol has none): only its size is kept."""

    size: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The socket closed: by a close frame (``code``, ``reason``), or it broke (``code`` None,
    ``reason`` says how)."""

    code: int | None
    reason: str


Frame = Text | Binary | Closed
"""What :meth:`Connection.receive` returns."""

_TEXT = aiohttp.WSMsgType.TEXT
_BINARY = aiohttp.WSMsgType.BINARY


class Connection:
    """One open websocket. Create with :meth:`open`."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, url: str) -> None:
        self._ws = ws
        self._sock: Any = ws.get_extra_info("socket")  # the TCP socket (under TLS too)
        self.url = url
        """The URL it was opened on (with the query: do not log it; see ``redact_url``)."""

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        url: str,
        *,
        headers: dict[str, str],
        timeout: float,
        heartbeat: float | None,
    ) -> Connection:
        """Open a websocket to ``url`` within ``timeout`` seconds (an absolute deadline).

        The handshake runs in its own task awaited with ``asyncio.wait``: unlike
        ``asyncio.wait_for`` on Python 3.10/3.11, a cancellation that lands as the handshake
        completes is never swallowed (the socket is then closed and the cancellation goes on).
        Raises :class:`HandshakeRefused` or :class:`TransportError`.
        """
        task = asyncio.ensure_future(
            http.ws_connect(
                url,
                headers=headers,
                heartbeat=heartbeat,
                max_msg_size=MAX_MESSAGE_BYTES,
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
            )
        )
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except BaseException:
            task.cancel()
            task.add_done_callback(_close_orphan)
            raise
        if not done:
            task.cancel()
            task.add_done_callback(_close_orphan)
            raise TransportError(
                f"connecting to {redact_url(url)} timed out after {timeout:g} s", timed_out=True
            )
        failure: TransportError
        try:
            ws = cast(aiohttp.ClientWebSocketResponse, task.result())
        except aiohttp.WSServerHandshakeError as e:
            failure = HandshakeRefused(
                f"{redact_url(url)} refused the websocket upgrade with HTTP {e.status}",
                status=e.status,
                retry_after=_retry_after(e.headers),
            )
        except (aiohttp.ClientError, OSError) as e:
            failure = TransportError(f"cannot connect to {redact_url(url)}: {_describe(e)}")
        else:
            return cls(ws, url)
        # raised outside the handler so it has no __context__: aiohttp's exception holds the
        # request, and with it the Authorization header
        raise failure

    async def send(self, message: bytes) -> None:
        """Send one text frame (UTF-8 JSON). Raises :class:`TransportError` when the socket is
        closing or broken."""
        try:
            await self._ws.send_frame(message, _TEXT)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as e:
            failure = TransportError(f"send failed: {_describe(e)}")
        else:
            return
        raise failure

    async def receive(self) -> Frame:
        """The next frame. Never raises for a socket that closes or breaks: that is a
        :class:`Closed` frame. There is no read timeout here; the session's timers are
        absolute deadlines (aiohttp's restarts after every pong)."""
        msg = await self._ws.receive()
        if msg.type is _TEXT:
            return Text(cast(str, msg.data))
        if msg.type is _BINARY:
            return Binary(len(msg.data))
        ws = self._ws
        if msg.type is aiohttp.WSMsgType.ERROR or ws.close_code in (None, 1006):
            return Closed(None, f"connection lost ({_describe(ws.exception() or msg.data)})")
        reason = msg.extra if isinstance(msg.extra, str) else ""
        return Closed(ws.close_code, reason)

    @property
    def closed(self) -> bool:
        """The socket is closed (or closing)."""
        return self._ws.closed

    async def close(self) -> None:
        """Close the socket: a close frame, at most ``CLOSE_TIMEOUT`` for the server's, then the
        TCP socket is shut down.

        A server that stopped reading leaves our unsent bytes in the transport. aiohttp's close
        then waits for them forever (a plain-TCP transport closes only once its buffer is
        flushed), and so does a send blocked on them: the stream's writer would never come
        back. Shutting the socket down fails them at once and frees the file descriptor.
        """
        try:
            if not self._ws.closed:
                closing = asyncio.ensure_future(_quiet_close(self._ws))
                _closing.add(closing)  # it may outlive this call: kept referenced until done
                closing.add_done_callback(_closing.discard)
                await asyncio.wait({closing}, timeout=2 * CLOSE_TIMEOUT)
        finally:
            if self._sock is not None:
                # OSError: already closed; TypeError: uvloop's transport sockets refuse it
                with contextlib.suppress(OSError, TypeError):
                    self._sock.shutdown(socket.SHUT_RDWR)


def _retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form), capped."""
    if headers is None:
        return None
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, RETRY_AFTER_MAX_SECONDS)


def _describe(obj: object) -> str:
    """A bounded description of an exception or payload (a server can send megabytes)."""
    return clip(repr(obj))


_closing: set[asyncio.Future[Any]] = set()  # closes in progress (kept referenced)


def _close_orphan(task: asyncio.Future[Any]) -> None:
    """Close a socket whose handshake finished after nobody was waiting for it."""
    if task.cancelled() or task.exception() is not None:
        return
    closing = asyncio.ensure_future(_quiet_close(task.result()))
    _closing.add(closing)
    closing.add_done_callback(_closing.discard)


async def _quiet_close(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Close a socket whose close nobody can act on: a failure to close it is of no
    consequence (it is shut down or orphaned)."""
    with contextlib.suppress(Exception):
        await ws.close()
