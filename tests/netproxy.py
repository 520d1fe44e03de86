"""A TCP proxy between a stream and the emulator that shapes the upload exactly.

It forwards the websocket upgrade and then whole websocket frames from the client, so it can stop
reading at an exact frame (a server that stops reading: the client's sends block for real) or
forward at a limited rate (a slow uplink). Socket buffers on the proxy side are kept small, and
:func:`small_buffer_session` gives the client an aiohttp session whose sockets have a small send
buffer, so backpressure reaches the client's sends after a known, small amount of data instead of
after megabytes of kernel buffering. Everything from the server goes through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np

SMALL_BUFFER = 4096
"""SO_RCVBUF / SO_SNDBUF asked for (Linux doubles it): a few KiB of kernel buffering."""


def _small_send_buffer_socket(addr_info: tuple) -> socket.socket:  # type: ignore[type-arg]
    family, type_, proto, _, _ = addr_info
    sock = socket.socket(family, type_, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    return sock


def small_buffer_session() -> aiohttp.ClientSession:
    """An aiohttp session whose sockets have a small, fixed send buffer (no autotuning)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(socket_factory=_small_send_buffer_socket)
    )


@dataclass
class ProxyConn:
    """One proxied connection (``index`` counts accepted connections from 0)."""

    index: int
    audio_bytes: int = 0
    """Decoded audio bytes of the appends forwarded to the server."""
    commits: int = 0
    """Commits forwarded to the server."""
    held: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the proxy stopped reading from the client (see :attr:`Proxy.hold_after`)."""


class Proxy:
    """A loopback proxy to ``127.0.0.1:target_port``.

    Args:
        target_port: the emulator's port.
        hold_after: ``{connection index: audio bytes}``: on that connection, once the appends
            forwarded carry this many audio bytes, stop reading from the client for good.
        upload_rate: forward the client's bytes at most this fast (bytes per second).
    """

    def __init__(
        self,
        target_port: int,
        *,
        hold_after: dict[int, int] | None = None,
        upload_rate: float | None = None,
    ) -> None:
        self.target_port = target_port
        self.hold_after = dict(hold_after or {})
        self.upload_rate = upload_rate
        self.connections: list[ProxyConn] = []
        self._listener: socket.socket | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sockets: list[socket.socket] = []
        self.port = 0

    @property
    def base_url(self) -> str:
        """OpenAI-SDK style base URL through the proxy."""
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> Proxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # accepted sockets inherit it; set before listen() so the window scale stays small
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
            sock.close()
        if self._listener is not None:
            self._listener.close()

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._listener is not None
        while True:
            client, _ = await loop.sock_accept(self._listener)
            client.setblocking(False)
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            upstream.setblocking(False)
            self._sockets += [client, upstream]
            await loop.sock_connect(upstream, ("127.0.0.1", self.target_port))
            conn = ProxyConn(len(self.connections))
            self.connections.append(conn)
            self._spawn(self._connection(conn, client, upstream))

    async def _connection(
        self, conn: ProxyConn, client: socket.socket, upstream: socket.socket
    ) -> None:
        up = asyncio.ensure_future(self._upload(conn, client, upstream))
        down = asyncio.ensure_future(_copy(upstream, client))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            if down.done() and not up.done() and not conn.held.is_set():
                await asyncio.wait({up}, timeout=1.0)
        finally:
            for task in (up, down):
                task.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
            if not conn.held.is_set():
                client.close()
                upstream.close()

    async def _upload(
        self, conn: ProxyConn, client: socket.socket, upstream: socket.socket
    ) -> None:
        loop = asyncio.get_running_loop()
        buf = bytearray()
        upgraded = False
        budget_at = time.monotonic()
        hold_at = self.hold_after.get(conn.index)
        while True:
            try:
                data = await loop.sock_recv(client, SMALL_BUFFER)
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_WR)
                return
            buf += data
            if not upgraded:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    continue
                await loop.sock_sendall(upstream, bytes(buf[: end + 4]))
                del buf[: end + 4]
                upgraded = True
            while (frame := _next_frame(buf)) is not None:
                size, opcode, payload = frame
                raw = bytes(buf[:size])
                del buf[:size]
                if self.upload_rate is not None:
                    budget_at = max(budget_at, time.monotonic()) + size / self.upload_rate
                    await asyncio.sleep(budget_at - time.monotonic())
                try:
                    await loop.sock_sendall(upstream, raw)
                except OSError:
                    return
                if opcode == 1:
                    _count(conn, payload)
                if hold_at is not None and conn.audio_bytes >= hold_at:
                    conn.held.set()
                    await asyncio.Event().wait()  # never reads from the client again


async def _copy(src: socket.socket, dst: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            data = await loop.sock_recv(src, 65536)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return
            await loop.sock_sendall(dst, data)
        except OSError:
            return


def _next_frame(buf: bytearray) -> tuple[int, int, bytes] | None:
    """(wire size, opcode, unmasked payload) of the websocket frame at the start of ``buf``."""
    if len(buf) < 2:
        return None
    n = buf[1] & 0x7F
    off = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, off = int.from_bytes(buf[2:4], "big"), 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, off = int.from_bytes(buf[2:10], "big"), 10
    mask = None
    if buf[1] & 0x80:
        if len(buf) < off + 4:
            return None
        mask = bytes(buf[off : off + 4])
        off += 4
    if len(buf) < off + n:
        return None
    payload = np.frombuffer(bytes(buf[off : off + n]), dtype=np.uint8)
    if mask is not None:
        payload = payload ^ np.resize(np.frombuffer(mask, dtype=np.uint8), n)
    return off + n, buf[0] & 0x0F, payload.tobytes()


def _count(conn: ProxyConn, payload: bytes) -> None:
    event = json.loads(payload)
    if event.get("type") == "input_audio_buffer.append":
        audio = event["audio"]
        conn.audio_bytes += len(audio) * 3 // 4 - audio[-2:].count("=")
    elif event.get("type") == "input_audio_buffer.commit":
        conn.commits += 1
