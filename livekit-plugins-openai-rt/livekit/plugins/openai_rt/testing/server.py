"""The emulator's network side: an aiohttp server that runs one server session per websocket.

:class:`Emulator` accepts upgrades (refusing them as :mod:`.routing` and the fault plan decide),
reads client frames, hands them to the connection's :class:`~.server_session.ServerSession`
(``/v1/realtime``) or :class:`~.translation_session.TranslationServerSession`
(``/v1/realtime/translations``) and writes what it returns; each connection's queue and timer are
in :mod:`.connection`. It also logs every event in and out, and has the connection faults of the
:class:`~.faults.FaultPlan` (refused handshakes, drops, stalls, close frames, injected errors and
junk frames) applied by :mod:`.injection`. The protocol itself lives in the server session.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from aiohttp import WSMsgType, web

from . import routing
from .audio import b64_len
from .connection import BinaryFrame, Connection, RawFrame, Session
from .faults import FaultPlan, default_handshake_error_body, deviate
from .injection import check_faults, delay_session_updated
from .outbox import Close
from .records import EmulatedItem, EmulatedSession, LoggedEvent
from .rules import MODEL_RULES, ModelRules
from .schema import Json
from .server_session import ServerSession
from .settings import COMPLETED_DELAY
from .transcribers import BlockCrcTranscriber, Transcriber
from .translation_session import TranslationServerSession
from .translation_translators import FrameCrcTranslator, Translator

__all__ = ["Emulator"]

T = TypeVar("T")


class Emulator:
    """A local OpenAI Realtime transcription and translation server, for tests and demos.

    Use it as an async context manager (or call :meth:`start` / :meth:`aclose`)::

        async with Emulator(api_key="test-key") as emu:
            url = emu.ws_url      # ws://127.0.0.1:<port>/v1/realtime?intent=transcription
            ...
            await emu.wait_for(lambda: emu.committed_items())

    Args:
        host: interface to listen on.
        port: TCP port, 0 for an ephemeral one.
        api_key: the only accepted key; None accepts any non-empty key. A wrong key gets HTTP 401
            ``invalid_api_key`` at the handshake, a missing one HTTP 401 too.
        transcriber: turns item audio into text (default :class:`BlockCrcTranscriber`).
        max_session_seconds: sessions expire after this long: the ``session_expired`` error, then
            close 1001 with the reason "Your session hit the maximum duration of N minutes."
            (docs/protocol.md §7 E.33 [O]).
        gateway_mode: accept ``?model=`` as the transcription model, like LiteLLM or speaches,
            instead of the real server's ``invalid_model`` (docs/protocol.md §7 A.9).
        record_events: keep every event in :attr:`events` (turn off for benchmarks).
        faults: the fault plan (default: an empty :class:`FaultPlan`, which tests may fill later).
        completed_delay: seconds between a commit and its ``completed`` (default 0.3, a
            realistic delay, docs/protocol.md §7 D.47 [I]); post-commit deltas are spread over
            that time. 0 answers at once.
        expiry_error_event: send the ``session_expired`` error before the expiry's close 1001
            (default on, as observed; off: the close alone, also observed).
        emit_item_added: send ``conversation.item.added`` after ``committed`` and
            ``conversation.item.done`` after ``completed`` (docs/protocol.md §4.1.6 [I], default
            on).
        close_on_turn_detection_error: close (4000) after the ``turn_detection`` ``invalid_value``
            error instead of keeping the session open (docs/protocol.md §7 B.11 [I]: one client
            saw the session aborted).
        record_audio: keep each item's audio in :attr:`EmulatedItem.audio` (default: the value of
            ``record_events``, so benchmarks do not hold all audio in memory).
        model_rules: replace :data:`MODEL_RULES` (e.g. to add a model or try a different rule).
        translator: what translation sessions (``/v1/realtime/translations``) say for each
            200 ms frame (default :class:`FrameCrcTranslator`).
        translation_delay: seconds between a translation frame's arrival and its outputs.
        azure: speak Azure OpenAI's URL and auth shapes instead of OpenAI's
            (:class:`~.routing.AzureMode`: docs/protocol.md §7 H.50-51): serve
            ``/openai/v1/realtime`` and ``/openai/realtime?api-version=…&deployment=…``, take an
            ``api-key`` (checked against ``api_key``) or an Entra bearer token, and accept the
            mode's deployment names as transcription models, each under its family's rules.
        handshake_delay: seconds the websocket upgrade takes before it is accepted (the TLS
            and websocket handshakes of a distant server; 0 by default, loopback speed). The
            real figure depends on the network path and is not documented (docs/protocol.md
            §1.3 [I]); 0.3 is a plausible cross-region value.

    Attributes:
        sessions: one :class:`EmulatedSession` per accepted websocket, in connection order (the
            index in this list is the connection index that fault rules refer to).
        events: every event in and out, all sessions, in order (:class:`LoggedEvent`); ``out``
            events are logged when actually written to the socket.
        handshakes: upgrade attempts seen, including refused ones.
        handshake_times: ``time.monotonic()`` of each upgrade attempt, in order.
        faults: the :class:`FaultPlan` in force, read live: tests may change it between phases.
        port: the bound port once started.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        transcriber: Transcriber | None = None,
        max_session_seconds: float = 3600.0,
        gateway_mode: bool = False,
        record_events: bool = True,
        faults: FaultPlan | None = None,
        completed_delay: float = COMPLETED_DELAY,
        expiry_error_event: bool = True,
        emit_item_added: bool = True,
        close_on_turn_detection_error: bool = False,
        record_audio: bool | None = None,
        model_rules: Mapping[str, ModelRules] | None = None,
        translator: Translator | None = None,
        translation_delay: float = 0.0,
        azure: routing.AzureMode | None = None,
        handshake_delay: float = 0.0,
    ) -> None:
        """Configure the emulator; nothing listens until :meth:`start`."""
        self.host = host
        self.port = port
        self.api_key = api_key
        self.transcriber: Transcriber = transcriber or BlockCrcTranscriber()
        self.max_session_seconds = max_session_seconds
        self.gateway_mode = gateway_mode
        self.record_events = record_events
        self.faults: FaultPlan = faults if faults is not None else FaultPlan()
        self.completed_delay = completed_delay
        self.expiry_error_event = expiry_error_event
        self.emit_item_added = emit_item_added
        self.close_on_turn_detection_error = close_on_turn_detection_error
        self.record_audio = record_events if record_audio is None else record_audio
        self.model_rules: Mapping[str, ModelRules] = (
            dict(model_rules) if model_rules is not None else MODEL_RULES
        )
        self.translator: Translator = translator or FrameCrcTranslator()
        self.translation_delay = translation_delay
        self.azure = azure
        if azure is not None:
            self.model_rules = azure.model_rules(self.model_rules)
        self.handshake_delay = handshake_delay
        self.sessions: list[EmulatedSession] = []
        self.events: list[LoggedEvent] = []
        self.handshakes = 0
        self.handshake_times: list[float] = []
        self._committed: list[EmulatedItem] = []
        self._live: dict[str, Connection] = {}
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (binds the port; :attr:`port` is then the real port)."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        app = web.Application()
        if self.azure is not None:
            app.router.add_get(routing.AZURE_V1_PATH, self._handle_realtime)
            app.router.add_get(routing.AZURE_DATED_PATH, self._handle_realtime)
        else:
            app.router.add_get("/v1/realtime", self._handle_realtime)
            app.router.add_get("/v1/realtime/translations", self._handle_translations)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._ticker = asyncio.create_task(self._tick(), name="openai-rt-emulator-faults")

    async def aclose(self) -> None:
        """Close every connection (1001) and stop listening."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        conns = list(self._live.values())
        await asyncio.gather(*(self._shutdown_conn(c) for c in conns), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def base_url(self) -> str:
        """OpenAI-SDK style base URL, ``http://<host>:<port>/v1`` (Azure mode: the v1 API's,
        ``http://<host>:<port>/openai/v1``)."""
        return self.azure_endpoint + ("/openai/v1" if self.azure is not None else "/v1")

    @property
    def azure_endpoint(self) -> str:
        """The resource endpoint for ``STT.with_azure(azure_endpoint=...)``,
        ``http://<host>:<port>``."""
        if self._runner is None:
            raise RuntimeError("emulator not started")
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The transcription websocket URL, ``ws://<host>:<port>/v1/realtime?intent=transcription``
        (Azure mode: ``…/openai/v1/realtime?intent=transcription``)."""
        return "ws" + self.base_url[4:] + "/realtime?intent=transcription"

    def committed_items(self) -> list[EmulatedItem]:
        """Every item committed by this emulator, over all sessions, in commit order."""
        return list(self._committed)

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Poll ``predicate`` until it returns something truthy, and return that.

        Raises:
            TimeoutError: ``predicate`` stayed falsy for ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.005)

    # -- HTTP ----------------------------------------------------------------------------------

    @staticmethod
    def _refuse(refusal: routing.HttpRefusal) -> web.Response:
        return web.json_response(refusal.body, status=refusal.status)

    async def _handle_translations(self, request: web.Request) -> web.StreamResponse:
        route = routing.translation_route(request.query)
        return await self._accept(
            request,
            lambda record, now: TranslationServerSession(record, route, self, now=now),
        )

    async def _handle_realtime(self, request: web.Request) -> web.StreamResponse:
        route = routing.route(
            request.query, request.headers, self.model_rules, gateway_mode=self.gateway_mode
        )
        return await self._accept(
            request,
            lambda record, now: ServerSession(record, route, self, now=now, items=self._committed),
        )

    async def _accept(
        self, request: web.Request, make_session: Callable[[EmulatedSession, float], Session]
    ) -> web.StreamResponse:
        """Upgrade ``request`` (or refuse it, as the fault plan and authentication decide) and
        serve its websocket with the session ``make_session`` creates."""
        self.handshakes += 1
        self.handshake_times.append(time.monotonic())
        index = len(self.sessions)

        refusal = self.faults.refuse_handshake
        if (
            refusal is not None
            and refusal.used < refusal.times
            and self.faults.applies_to(refusal.connections, index)
        ):
            refusal.used += 1
            body = refusal.body or default_handshake_error_body(refusal.status)
            return web.json_response(body, status=refusal.status, headers=refusal.headers)

        if self.azure is not None:
            auth_refusal = routing.authenticate_azure(
                request.headers, self.api_key, self.azure
            ) or routing.azure_deployment_refusal(request.path, request.query, self.azure)
        else:
            auth_refusal = routing.authenticate(request.headers, self.api_key)
        if auth_refusal is not None:
            return self._refuse(auth_refusal)

        # Echo the `realtime` subprotocol when offered (docs/protocol.md §1.4 / §7 A.1 [I]). Pings
        # and close frames are answered by hand (autoping/autoclose off) so a stalled connection
        # can leave them unanswered (faults.Stall).
        ws = web.WebSocketResponse(
            autoping=False,
            autoclose=False,
            protocols=("realtime",),
            max_msg_size=24 * 1024 * 1024,  # room for a 15 MiB append in base64
            timeout=2.0,
        )
        if not ws.can_prepare(request).ok:
            return self._refuse(routing.NOT_WEBSOCKET)
        if self.handshake_delay > 0:
            await asyncio.sleep(self.handshake_delay)
        await ws.prepare(request)

        record = EmulatedSession(
            index=index,
            query=dict(request.query.items()),
            headers=routing.redact_headers(request.headers),
            max_session_seconds=self.max_session_seconds,
            created_at=time.time(),
            path=request.path,
        )
        self.sessions.append(record)
        loop = asyncio.get_running_loop()
        session = make_session(record, loop.time())
        conn = Connection(session, request, ws, loop)
        self._live[record.id] = conn
        conn.writer = asyncio.create_task(self._writer(conn))
        try:
            conn.deliver(session.open())
            check_faults(conn, self.faults)
            await self._reader(conn)
        finally:
            await self._finish(conn)
        return ws

    # -- reader / writer ---------------------------------------------------------------------

    async def _reader(self, conn: Connection) -> None:
        ws = conn.ws
        while True:
            if conn.read_stalled:
                await self._wait_transport_gone(conn)
                return
            msg = await ws.receive()
            if conn.read_stalled:
                # Stalled while waiting: the frame counts as never read.
                continue
            if msg.type == WSMsgType.TEXT:
                if not conn.session.closing:
                    self._on_text(conn, msg.data)
                    check_faults(conn, self.faults)
            elif msg.type == WSMsgType.BINARY:
                if not conn.session.closing:
                    self._log_in(conn, {"type": "<malformed>", "raw": repr(msg.data[:200])})
                    conn.deliver(conn.session.handle_invalid_frame(binary=True))
            elif msg.type == WSMsgType.PING:
                # Answer heartbeats unless the connection is stalled (faults.Stall).
                if not conn.answer_stalled:
                    try:
                        await ws.pong(msg.data)
                    except ConnectionError:
                        return
            elif msg.type == WSMsgType.PONG:
                continue
            elif msg.type == WSMsgType.CLOSE:
                # The client closes: answer its close frame unless sending is stalled.
                if conn.answer_stalled:
                    await self._wait_transport_gone(conn)
                    return
                if conn.record.close_code is None:
                    # a close frame without a status code is "no status received", 1005
                    # (RFC 6455 §7.1.5; docs/protocol.md §7 E.49)
                    conn.record.close_code = int(msg.data) or 1005
                try:
                    await ws.close(code=int(msg.data) if msg.data else 1000)
                except ConnectionError:
                    pass
                return
            else:  # CLOSING (our own close in progress), CLOSED, ERROR
                return

    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._log_in(conn, {"type": "<malformed>", "raw": text[:200]})
            conn.deliver(conn.session.handle_invalid_frame(binary=False))
            return
        etype = event.get("type")
        if etype in ("input_audio_buffer.append", "session.input_audio_buffer.append"):
            # Appends are logged by size: the base64 would hold every byte of audio twice.
            logged: Json = {"type": etype, "audio_bytes": b64_len(event.get("audio"))}
            if "event_id" in event:
                logged["event_id"] = event["event_id"]
            self._log_in(conn, logged)
        else:
            self._log_in(conn, event)
        conn.deliver(conn.session.handle(event, conn.loop.time()))

    async def _wait_transport_gone(self, conn: Connection) -> None:
        # A read-stalled connection ends when the client drops TCP or the emulator closes.
        while not conn.finished:
            transport = conn.request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(0.02)

    async def _writer(self, conn: Connection) -> None:
        ws = conn.ws
        record = conn.record
        never = asyncio.Event()
        try:
            while True:
                item = await conn.out.get()
                if conn.answer_stalled:
                    await never.wait()  # half-open: nothing is ever sent again
                if isinstance(item, dict) and item["type"] == "session.updated":
                    await delay_session_updated(conn, self.faults, never)
                if isinstance(item, Close):
                    conn.close_in_progress = True
                    record.close_code = item.code
                    record.close_reason = item.reason
                    await ws.close(code=item.code, message=item.reason.encode())
                    return
                if isinstance(item, RawFrame):
                    await ws.send_str(item.text)
                    self._log_out(conn, {"type": "<malformed>", "raw": item.text[:200]})
                    continue
                if isinstance(item, BinaryFrame):
                    await ws.send_bytes(bytes(item.size))
                    self._log_out(conn, {"type": "<binary>", "bytes": item.size})
                    continue
                for event in deviate(self.faults, conn.held_committed, item):
                    await ws.send_str(json.dumps(event, separators=(",", ":")))
                    self._log_out(conn, event)
        except (ConnectionError, RuntimeError):
            # The client went away mid-send; the reader sees the end of the connection.
            return

    async def _finish(self, conn: Connection) -> None:
        """Tear down a connection whose reader has ended."""
        record = conn.record
        if conn.close_in_progress and conn.writer is not None and not conn.writer.done():
            await asyncio.wait({conn.writer}, timeout=3.0)
        conn.finished = True
        conn.cancel_timer()
        conn.session.finish()
        if conn.writer is not None:
            conn.writer.cancel()
            await asyncio.gather(conn.writer, return_exceptions=True)
        if conn.dropped or conn.read_stalled:
            record.close_code = record.close_code or 1006  # abnormal closure, no close frame
        elif record.close_code is None:
            record.close_code = conn.ws.close_code
        record.closed = True
        self._live.pop(record.id, None)

    async def _shutdown_conn(self, conn: Connection) -> None:
        if conn.read_stalled or conn.answer_stalled or conn.dropped:
            conn.abort_transport()
            return
        if conn.writer is not None:
            conn.writer.cancel()
        conn.session.abandon()
        try:
            await asyncio.wait_for(
                conn.ws.close(code=1001, message=b"emulator shutting down"), timeout=1.0
            )
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            conn.abort_transport()

    # -- event log -----------------------------------------------------------------------------

    def _log_in(self, conn: Connection, event: Json) -> None:
        if self.record_events:
            self.events.append(LoggedEvent("in", conn.record.id, time.monotonic(), event))

    def _log_out(self, conn: Connection, event: Json) -> None:
        if self.record_events:
            self.events.append(LoggedEvent("out", conn.record.id, time.monotonic(), event))

    # -- faults --------------------------------------------------------------------------------

    async def _tick(self) -> None:
        # One task checks time-triggered faults of all live connections every 10 ms, and only
        # when the plan has such rules (cheap when idle, fine with hundreds of sessions).
        while True:
            await asyncio.sleep(0.01)
            if self.faults.has_timed_rules():
                for conn in list(self._live.values()):
                    check_faults(conn, self.faults)
