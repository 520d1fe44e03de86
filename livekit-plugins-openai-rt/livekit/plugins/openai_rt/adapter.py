"""``RealtimeStream``: the asyncio adapter around a sans-I/O session core, shared by both streams.

It owns the tasks (the input pump, the optional VAD loop, the timers, one receiver per socket,
one writer at a time), opens sockets through :class:`~.connection.Connection`, retries within
the connect options' budget with backoff, and hands the session's records to the subclass.
Every decision (what to send, when to reconnect, roll over, finish or fail) is the session's
(:class:`~.lifecycle.SessionLifecycle`).

:class:`~.stream.SpeechStream` (transcription) and :class:`~.translation_stream.TranslationStream`
subclass it with what differs: the URL and the upgrade headers, the pump and the VAD loop, what
the records become (``SpeechEvent``\\ s, translated audio), and taking over a prewarmed session.
"""

from __future__ import annotations

import asyncio
import random
import time
from abc import abstractmethod
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import aiohttp

from livekit import rtc
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
    stt,
    vad as vad_mod,
)

from . import records as r
from .audio import downmix
from .auth import CredentialsError
from .connection import Binary, Closed, Connection, HandshakeRefused, Text, TransportError
from .errors import Action, classify_http_status
from .lifecycle import SessionLifecycle
from .log import clip, logger
from .states import State

TIMER_TICK = 1.0
"""Longest sleep of the timer task: the session's deadlines are checked at least this often
(and at a quarter of the shortest timer), without a wake-up per event at scale."""

BACKOFF_CAP_SECONDS = 30.0
"""Longest wait between two attempts to open a session."""


class StreamOptions(Protocol):
    """What the adapter reads of a stream's options."""

    @property
    def model(self) -> str:
        """The model (for log lines)."""
        ...

    @property
    def heartbeat(self) -> float | None:
        """The websocket ping interval in seconds (None: off)."""
        ...


_SessionT = TypeVar("_SessionT", bound=SessionLifecycle[Any, Any])
_OptionsT = TypeVar("_OptionsT", bound=StreamOptions)


class RealtimeStream(stt.RecognizeStream, Generic[_SessionT, _OptionsT]):
    """A LiveKit recognize stream over one or more Realtime sessions of one session core.

    Push audio with ``push_frame`` (any rate; stereo is downmixed), ``flush()`` and
    ``end_input()``; the subclass turns the session's records into events.
    """

    _log_name: ClassVar[str] = "openai_rt"
    """How task names and log lines name the stream."""
    _session_kind: ClassVar[str] = "transcription"
    """What kind of session the stream keeps open (for the retry budget's message)."""

    def __init__(
        self,
        *,
        stt: stt.STT,
        conn_options: APIConnectOptions,
        sample_rate: int,
        opts: _OptionsT,
        session: _SessionT,
        http_session: aiohttp.ClientSession,
        vad: vad_mod.VAD | None,
    ) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=sample_rate)
        self._opts = opts
        self._session = session
        self._http = http_session
        self._vad = vad
        self._conn: Connection | None = None
        self._ended = asyncio.Event()  # the session reached a decision that ends its socket
        self._writing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._task_error: BaseException | None = None
        self._time_offset = 0.0
        self._configured = False  # the current socket's session reached LIVE
        self._sessions_task: asyncio.Future[None] | None = None
        self._vad_task: asyncio.Task[None] | None = None

    @property
    def session(self) -> _SessionT:
        """The sans-I/O session this stream drives (its state, ledger and counters)."""
        return self._session

    @property
    def skipped_server_frames(self) -> int:
        """Server frames this stream could not use: malformed JSON, unknown event types and
        binary frames (each logged; none stops the stream)."""
        return self._session.skipped_frames

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        """Push audio: any sample rate (resampled to the session's), mono or multi-channel
        (downmixed: interleaved samples must never reach the server as if they were mono)."""
        if frame.num_channels > 1:
            frame = downmix(frame)
        super().push_frame(frame)

    # -- for subclasses ----------------------------------------------------------------------------

    @abstractmethod
    def _url(self) -> str:
        """The URL of the session's socket."""

    @abstractmethod
    async def _headers(self) -> dict[str, str]:
        """The upgrade headers of one connect (raises :class:`~.auth.CredentialsError`)."""

    def _credentials_note(self) -> str:
        """Said after a refused handshake's message (which credentials were used)."""
        return ""

    @abstractmethod
    async def _pump(self, vad_stream: vad_mod.VADStream | None) -> None:
        """Input channel -> session (and the stream's VAD), then the end of input."""

    @abstractmethod
    async def _vad_loop(self, vad_stream: vad_mod.VADStream) -> None:
        """The stream's own VAD: speech events and the segment ends they make."""

    @abstractmethod
    def _receive_text(self, data: str, now: float) -> None:
        """A text frame from the server, for the session."""

    @abstractmethod
    def _on_output(self, out: Any) -> None:
        """One of the session's records or decisions."""

    async def _serve_warm(self) -> r.Ending | None:
        """Serve a session opened before the stream needed it, if there is one (None: the
        stream opens its own)."""
        return None

    def _stream_done(self) -> None:
        """The stream ended (its tasks are done and its socket is closed)."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def _run(self) -> None:
        self._time_offset = self.start_time_offset
        vad_stream = self._vad.stream() if self._vad is not None else None
        if vad_stream is not None:
            self._vad_task = self._spawn(self._vad_loop(vad_stream), "vad")
        self._spawn(self._pump(vad_stream), "pump")
        self._spawn(self._timers(), "timers")
        self._sessions_task = asyncio.ensure_future(self._sessions())
        try:
            await self._sessions_task
        except asyncio.CancelledError:
            if self._task_error is None:
                raise
            raise APIError(
                f"openai_rt internal error: {clip(repr(self._task_error))}", retryable=False
            ) from None
        except APIError:
            raise
        except Exception as e:
            logger.exception("%s stream failed unexpectedly", self._log_name, extra=self._extra())
            raise APIError(f"openai_rt internal error: {clip(repr(e))}", retryable=False) from e
        finally:
            if self._sessions_task is not None and not self._sessions_task.done():
                self._sessions_task.cancel()
                await asyncio.gather(self._sessions_task, return_exceptions=True)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if vad_stream is not None:
                await vad_stream.aclose()
            if self._session.speaking:
                self._session.set_speaking(False)
                self._emit(stt.SpeechEventType.END_OF_SPEECH, speech_end_time=time.time())
            await self._close_socket()
            self._stream_done()

    async def _sessions(self) -> None:
        """Open sessions one after another until the session core finishes or fails."""
        session = self._session
        attempts = 0  # failed attempts in a row (the connect options' retry budget)
        while True:
            if session.state is State.FINISHED:
                return
            if session.state is State.FAILED:
                raise self._fatal(session.ending)
            decision = await self._serve_warm()
            if decision is None:
                if session.state in (State.FINISHED, State.FAILED):
                    continue  # the input ended (or a fatal error) while a warm session opened
                conn = await self._open(attempts)
                if conn is None:
                    attempts += 1
                    continue
                decision = await self._serve(conn)
            if isinstance(decision, r.Finish):
                return
            if isinstance(decision, r.Fail):
                raise self._fatal(decision)
            if isinstance(decision, r.RollOver):
                attempts = 0
                continue
            assert isinstance(decision, r.Reconnect)
            attempts = 0 if self._configured else attempts
            attempts += 1
            error = _api_error(decision.failure)
            self._check_budget(attempts, error)
            logger.warning(
                "reconnecting: %s", decision.failure.message, extra=self._extra(attempt=attempts)
            )
            self._emit_error(error, recoverable=True)
            await self._backoff(attempts, None)

    async def _open(self, attempts: int) -> Connection | None:
        """Open and configure-request a socket; None after a retryable failure (already waited
        out), raising when the failure is fatal or the budget is spent."""
        session = self._session
        url = self._url()
        session.connecting()
        started = time.perf_counter()
        try:
            # asked on every connect: a token provider hands out a fresh token each time
            headers = await self._headers()
            conn = await Connection.open(
                self._http,
                url,
                headers=headers,
                timeout=self._conn_options.timeout,
                heartbeat=self._opts.heartbeat,
            )
        except CredentialsError as e:
            session.connect_failed()
            if session.state is State.FINISHED:
                return None
            if not e.retryable:
                error = APIError(e.message, retryable=False)
                logger.error(error.message, extra=self._extra())
                raise error from None
            failed = APIConnectionError(e.message)
            self._check_budget(attempts + 1, failed)
            self._log_retry(failed, attempts + 1)
            await self._backoff(attempts + 1, None)
            return None
        except HandshakeRefused as e:
            session.connect_failed()
            if session.state is State.FINISHED:
                return None
            verdict = classify_http_status(e.status)
            error = APIStatusError(
                f"{e.message}{self._credentials_note()}: {verdict.hint}",
                status_code=e.status,
                retryable=verdict.action is Action.RECONNECT,
            )
            if verdict.action is Action.FATAL:
                logger.error(error.message, extra=self._extra(status=e.status))
                raise error from None
            self._check_budget(attempts + 1, error)
            self._log_retry(error, attempts + 1)
            await self._backoff(attempts + 1, e.retry_after)
            return None
        except TransportError as e:
            session.connect_failed()
            if session.state is State.FINISHED:
                return None
            lost: APIConnectionError = (
                APITimeoutError(e.message) if e.timed_out else APIConnectionError(e.message)
            )
            self._check_budget(attempts + 1, lost)
            self._log_retry(lost, attempts + 1)
            await self._backoff(attempts + 1, None)
            return None
        if session.state is not State.CONNECTING:
            # the input ended with nothing to send while the socket was opening
            await conn.close()
            return None
        self._report_connection_acquired(time.perf_counter() - started, False)
        return conn

    async def _serve(self, conn: Connection, start: Callable[[], None] | None = None) -> r.Ending:
        """Run one socket until the session decides it is done with it. ``start`` tells the
        session the socket is there (default: it was just opened)."""
        session = self._session
        self._conn = conn
        self._configured = False
        self._ended.clear()
        if start is None:
            session.socket_opened(time.monotonic(), wall=time.time())
        else:
            start()
        receiver = self._spawn(self._receive(conn), "receive")
        self._drain()
        try:
            await self._ended.wait()
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
            await self._close_socket()
        decision = session.ending
        assert decision is not None
        session.socket_released()
        return decision

    async def _close_socket(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    # -- retries --------------------------------------------------------------------------------

    def _check_budget(self, attempts: int, error: APIError) -> None:
        """Past the connect options' retry budget: one ERROR, and an error that does not invite
        another retry."""
        budget = self._conn_options.max_retry
        if attempts <= budget:
            return
        message = (
            f"gave up after {attempts} failed attempt(s) to keep a {self._session_kind} "
            f"session open (max_retry={budget}); last: {error.message}"
        )
        logger.error(message, extra=self._extra(attempt=attempts))
        if isinstance(error, APIStatusError):
            raise APIStatusError(
                message, status_code=error.status_code, body=error.body, retryable=False
            ) from None
        raise APIConnectionError(message, retryable=False) from None

    def _log_retry(self, error: APIError, attempt: int) -> None:
        logger.warning("retrying: %s", error.message, extra=self._extra(attempt=attempt))
        self._emit_error(error, recoverable=True)

    async def _backoff(self, attempt: int, retry_after: float | None) -> None:
        """Wait before attempt ``attempt + 1``: exponential with jitter from the connect
        options' ``retry_interval`` (a first retry after a drop is quick), at least the
        server's ``Retry-After``; cut short if the session finishes meanwhile."""
        if attempt <= 1:
            delay = min(0.1, self._conn_options.retry_interval)
        else:
            delay = self._conn_options.retry_interval * 2 ** (attempt - 2)
        delay = min(delay, BACKOFF_CAP_SECONDS) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._ended.clear()
        try:
            await asyncio.wait_for(self._ended.wait(), delay)
        except asyncio.TimeoutError:
            pass

    def _fatal(self, decision: r.Ending | None) -> APIError:
        assert isinstance(decision, r.Fail)
        error = _api_error(decision.failure)
        logger.error(error.message, extra=self._extra(**decision.failure.body))
        return error

    # -- tasks --------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a task the stream keeps and watches: a task that dies with an exception stops
        the stream loudly (a silent pump would stop the stream without a word)."""
        task = asyncio.create_task(coro, name=f"{self._log_name.replace(' ', '.')}.{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None or self._task_error is not None:
            return
        self._task_error = task.exception()
        logger.error(
            "%s %s task failed",
            self._log_name,
            task.get_name(),
            exc_info=task.exception(),
            extra=self._extra(),
        )
        if self._sessions_task is not None:
            self._sessions_task.cancel()

    async def _timers(self) -> None:
        session = self._session
        timers = session.timers
        cap = max(0.01, min(TIMER_TICK, timers.result_timeout / 4, timers.final_timeout / 4))
        while True:
            wait = session.next_timer(time.monotonic())
            await asyncio.sleep(cap if wait is None else max(0.005, min(cap, wait)))
            session.tick(time.monotonic())
            self._drain()

    async def _receive(self, conn: Connection) -> None:
        session = self._session
        while True:
            frame = await conn.receive()
            now = time.monotonic()
            if isinstance(frame, Text):
                self._receive_text(frame.data, now)
            elif isinstance(frame, Binary):
                session.binary_frame(frame.size)
            else:
                assert isinstance(frame, Closed)
                session.socket_closed(now, code=frame.code, reason=frame.reason)
                self._drain()
                return
            self._drain()

    async def _write(self) -> None:
        """Send what the session has for the socket, in order. One writer at a time: a caller
        that finds a write in progress leaves the rest to it."""
        conn = self._conn
        if self._writing or conn is None:
            return
        session = self._session
        self._writing = True
        try:
            while self._conn is conn:
                msg = session.data_to_send(time.monotonic())
                if msg is None:
                    return
                try:
                    await conn.send(msg)
                except TransportError:
                    return  # the receiver sees the close; the session replays what is owed
                session.sent()
        finally:
            self._writing = False

    # -- outputs -------------------------------------------------------------------------------

    def _drain(self) -> None:
        """Hand the session's outputs to :meth:`_on_output`, start a write if there is
        something to send, and wake the session loop on a decision."""
        session = self._session
        if session.has_outputs():
            for out in session.take_outputs():
                self._on_output(out)
        if (
            not self._writing
            and self._conn is not None
            and session.ending is None
            and session.wants_to_send()
        ):
            self._spawn(self._write(), "write")
        if session.ending is not None:
            self._ended.set()

    def _vad_speech(self, ev: vad_mod.VADEvent) -> bool:
        """Apply a START/END_OF_SPEECH of the stream's VAD: the session's ``speaking`` and the
        speech event. True at an end of speech (where the subclass ends the turn)."""
        session = self._session
        if ev.type == vad_mod.VADEventType.START_OF_SPEECH and not session.speaking:
            session.set_speaking(True)
            self._emit(
                stt.SpeechEventType.START_OF_SPEECH,
                speech_start_time=time.time() - ev.speech_duration,
            )
        elif ev.type == vad_mod.VADEventType.END_OF_SPEECH and session.speaking:
            session.set_speaking(False)
            self._emit(
                stt.SpeechEventType.END_OF_SPEECH,
                speech_end_time=time.time() - ev.silence_duration,
            )
            return True
        return False

    def _emit(self, kind: stt.SpeechEventType, **fields: Any) -> None:
        self._event_ch.send_nowait(stt.SpeechEvent(type=kind, **fields))

    def _extra(self, **more: object) -> dict[str, object]:
        return {"session_id": self._session.session_id, "model": self._opts.model, **more}


def _api_error(failure: r.Failure) -> APIError:
    """The LiveKit exception for a session failure: retryable unless it is fatal."""
    retryable = failure.action is not Action.FATAL
    if failure.kind == "timeout":
        return APITimeoutError(failure.message, retryable=retryable)
    if failure.kind == "connection":
        return APIConnectionError(failure.message, retryable=retryable)
    return APIError(failure.message, body=dict(failure.body), retryable=retryable)
