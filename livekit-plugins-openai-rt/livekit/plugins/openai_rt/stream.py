"""``SpeechStream``: the asyncio adapter around the sans-I/O :class:`~.session.TranscriptionSession`.

It owns the tasks (the input pump, the optional VAD loop, the timers, one receiver per socket),
opens sockets through :class:`~.connection.Connection`, retries within the connect options'
budget, and turns the session's records into LiveKit ``SpeechEvent``\\ s. Every decision (what to
send, when to commit, reconnect, roll over, finish or fail) is the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Coroutine, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp
import numpy as np

from livekit import rtc
from livekit.agents import (
    NOT_GIVEN,
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
    LanguageCode,
    NotGivenOr,
    stt,
    vad as vad_mod,
)

from . import protocol as p, records as r, session as s
from .audio import G711Encoder, level_dbfs
from .auth import Credentials, CredentialsError
from .connection import Binary, Closed, Connection, HandshakeRefused, Text, TransportError
from .errors import Action, classify_http_status
from .log import clip, logger
from .models import DelayValue, NoiseReduction
from .options import STTOptions
from .prewarm import WarmSession, adopt
from .usage import TranscriptionUsage

if TYPE_CHECKING:
    from .stt import STT

TIMER_TICK = 1.0
"""Longest sleep of the timer task: the session's deadlines are checked at least this often
(and at a quarter of the shortest timer), without a wake-up per event at scale."""

BACKOFF_CAP_SECONDS = 30.0
"""Longest wait between two attempts to open a session."""


class SpeechStream(stt.RecognizeStream):
    """A streaming recognition over one or more Realtime transcription sessions.

    Push audio with ``push_frame`` (any rate; stereo is downmixed); ``flush()`` commits the
    audio so far (the session's VAD calls it at end of speech); ``end_input()`` commits the
    rest, and iteration ends after the last final transcript. Audio to commit that holds no
    speech is cleared instead (``skip_silence``, see :attr:`skipped_silence_seconds`).
    """

    def __init__(
        self,
        *,
        stt: STT,
        opts: STTOptions,
        conn_options: APIConnectOptions,
        credentials: Credentials,
        http_session: aiohttp.ClientSession,
        vad: vad_mod.VAD | None,
        warm: asyncio.Task[WarmSession | None] | None = None,
    ) -> None:
        fmt = opts.format
        # the framework resamples every pushed frame to the format's rate
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=fmt.sample_rate)
        self._opts = opts
        self._credentials = credentials
        self._http = http_session
        self._vad = vad
        self._warm = warm  # a prewarmed session to take over first (see prewarm.py)
        self._encoder = G711Encoder(fmt) if fmt.sample_bytes == 1 else None
        self._session = s.TranscriptionSession(
            opts.session_config(),
            timers=opts.timers(configure_timeout=conn_options.timeout),
            replay_limit_bytes=int(opts.replay_seconds * fmt.bytes_per_second),
            local_vad=vad is not None,
            skip_silence=opts.skip_silence,
        )
        self._conn: Connection | None = None
        self._ended = asyncio.Event()  # the session reached a decision that ends its socket
        self._writing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._task_error: BaseException | None = None
        self._first_audio_wall: float | None = None
        self._time_offset = 0.0
        self._configured = False  # the current socket's session reached LIVE
        self._sessions_task: asyncio.Future[None] | None = None
        self._vad_task: asyncio.Task[None] | None = None

    @property
    def session(self) -> s.TranscriptionSession:
        """The sans-I/O session this stream drives (its state, ledger and counters)."""
        return self._session

    @property
    def skipped_silence_seconds(self) -> float:
        """Seconds of audio this stream cleared instead of committing because they held no
        speech (``skip_silence``): audio not billed and not transcribed."""
        return self._session.skipped_seconds

    @property
    def skipped_server_frames(self) -> int:
        """Server frames this stream could not use: malformed JSON, unknown event types and
        binary frames (each logged; none stops the stream)."""
        return self._session.skipped_frames

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        """Push audio: any sample rate (resampled to 24 kHz), mono or multi-channel
        (downmixed: interleaved samples must never reach the server as if they were mono)."""
        if frame.num_channels > 1:
            frame = _downmix(frame)
        super().push_frame(frame)

    def update_options(
        self,
        *,
        model: NotGivenOr[str] = NOT_GIVEN,
        language: NotGivenOr[str | None] = NOT_GIVEN,
        languages: NotGivenOr[Sequence[str] | None] = NOT_GIVEN,
        keywords: NotGivenOr[Sequence[str] | None] = NOT_GIVEN,
        delay: NotGivenOr[DelayValue | None] = NOT_GIVEN,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        turn_detection: NotGivenOr[p.TurnDetection | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[NoiseReduction | None] = NOT_GIVEN,
    ) -> None:
        """Change options of this live stream.

        Language hints, keywords, delay, prompt, noise reduction and turn detection apply in
        place with a ``session.update`` (also when the session is still being set up). A new
        model (or clearing a value, which an update cannot do) moves the stream to a new
        session at the next pause, without losing audio. Raises ``ValueError`` for an invalid
        combination, changing nothing.
        """
        new = self._opts.replace(
            model=model,
            language=language,
            languages=languages,
            keywords=keywords,
            delay=delay,
            prompt=prompt,
            turn_detection=turn_detection,
            noise_reduction=noise_reduction,
        )
        old, self._opts = self._opts, new
        self._session.update_config(new.session_config(), new_session=new.needs_new_session(old))
        self._drain()

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
            logger.exception("openai_rt stream failed unexpectedly", extra=self._extra())
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

    async def _sessions(self) -> None:
        """Open sessions one after another until the session core finishes or fails."""
        session = self._session
        attempts = 0  # failed attempts in a row (the connect options' retry budget)
        while True:
            if session.state is s.State.FINISHED:
                return
            if session.state is s.State.FAILED:
                raise self._fatal(session.ending)
            warm = await self._adopt() if self._warm is not None else None
            if warm is not None:
                decision = await self._serve(warm.conn, warm)
            else:
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

    async def _adopt(self) -> WarmSession | None:
        """Take over the prewarmed session, once it is ready (None if it failed: the stream
        connects itself)."""
        task, self._warm = self._warm, None
        assert task is not None
        session = self._session
        session.connecting()
        started = time.perf_counter()
        warm = await adopt(task)
        if warm is None or warm.conn.closed:
            session.connect_failed()
            return None
        if session.state is not s.State.CONNECTING:
            # the input ended with nothing to transcribe while the session was being set up
            await warm.conn.close()
            return None
        self._report_connection_acquired(time.perf_counter() - started, True)
        logger.debug("taking over a prewarmed session", extra=self._extra())
        return warm

    async def _open(self, attempts: int) -> Connection | None:
        """Open and configure-request a socket; None after a retryable failure (already waited
        out), raising when the failure is fatal or the budget is spent."""
        session = self._session
        url = connection_url(self._opts)
        session.connecting()
        started = time.perf_counter()
        try:
            # asked on every connect: a token provider hands out a fresh token each time
            headers = await self._credentials.headers()
            conn = await Connection.open(
                self._http,
                url,
                headers=headers,
                timeout=self._conn_options.timeout,
                heartbeat=self._opts.heartbeat,
            )
        except CredentialsError as e:
            session.connect_failed()
            if session.state is s.State.FINISHED:
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
            if session.state is s.State.FINISHED:
                return None
            verdict = classify_http_status(e.status)
            error = APIStatusError(
                f"{e.message} (credentials: {self._credentials.kind}): {verdict.hint}",
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
            if session.state is s.State.FINISHED:
                return None
            lost: APIConnectionError = (
                APITimeoutError(e.message) if e.timed_out else APIConnectionError(e.message)
            )
            self._check_budget(attempts + 1, lost)
            self._log_retry(lost, attempts + 1)
            await self._backoff(attempts + 1, None)
            return None
        if session.state is not s.State.CONNECTING:
            # the input ended with nothing to transcribe while the socket was opening
            await conn.close()
            return None
        self._report_connection_acquired(time.perf_counter() - started, False)
        return conn

    async def _serve(self, conn: Connection, warm: WarmSession | None = None) -> r.Ending:
        """Run one socket (a fresh one, or the ``warm`` one taken over) until the session
        decides it is done with it."""
        session = self._session
        self._conn = conn
        self._configured = False
        self._ended.clear()
        if warm is None:
            session.socket_opened(time.monotonic(), wall=time.time())
        else:
            session.socket_adopted(
                time.monotonic(),
                wall=time.time(),
                opened_at=warm.opened_at,
                created=warm.created,
                configured=warm.config,
            )
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
            f"gave up after {attempts} failed attempt(s) to keep a transcription session "
            f"open (max_retry={budget}); last: {error.message}"
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
        the stream loudly (a silent pump would stop transcription without a word)."""
        task = asyncio.create_task(coro, name=f"openai_rt.{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None or self._task_error is not None:
            return
        self._task_error = task.exception()
        logger.error(
            "openai_rt %s task failed",
            task.get_name(),
            exc_info=task.exception(),
            extra=self._extra(),
        )
        if self._sessions_task is not None:
            self._sessions_task.cancel()

    async def _pump(self, vad_stream: vad_mod.VADStream | None) -> None:
        """Input channel -> session (and the stream's VAD). Audio is recorded in the session
        before anything awaits, so a blocked or cancelled send can never lose it. Frames are
        measured for the energy gate (while it needs it) and G.711-encoded here."""
        session = self._session
        rate = session.format.sample_rate
        encoder = self._encoder
        async for item in self._input_ch:
            if isinstance(item, rtc.AudioFrame):
                if self._first_audio_wall is None:
                    self._first_audio_wall = time.time() - item.duration
                level = level_dbfs(item.data, rate) if session.wants_level else None
                session.audio(
                    item.data if encoder is None else encoder.encode(item.data), level=level
                )
                if vad_stream is not None:
                    try:
                        vad_stream.push_frame(item)
                    except RuntimeError:
                        vad_stream = None  # the VAD stream closed: its own task reports why
                        session.vad_lost()
            else:
                session.flush()
                self._drain()
            await self._write()
        if vad_stream is not None and self._vad_task is not None:
            # the VAD judges the last audio before the tail is committed or cleared, however
            # fast the input came
            with contextlib.suppress(RuntimeError):
                vad_stream.end_input()
            await asyncio.wait({self._vad_task})
        session.end_input()
        self._drain()

    async def _vad_loop(self, vad_stream: vad_mod.VADStream) -> None:
        """The stream's own VAD: START/END_OF_SPEECH, a commit exactly where each speech ends
        (``VADEvent.timestamp`` is the audio the VAD has judged), and the hold on audio it has
        not judged yet."""
        session = self._session
        fmt = session.format
        positioned = True  # the VAD's events say where in the audio they are
        async for ev in vad_stream:
            pos = fmt.position(ev.timestamp)
            if positioned:
                positioned = session.vad_progress(pos)
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
                session.flush(at=pos if positioned else None)
            self._drain()

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
                session.receive(p.parse_server_event(frame.data), now)
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
        """Turn the session's outputs into speech events, start a write if there is something
        to send, and wake the session loop on a decision."""
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

    def _on_output(self, out: r.Output) -> None:
        if isinstance(out, r.Transcript):
            timed = out.kind != "interim" and out.end > 0.0
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=_TRANSCRIPT_EVENTS[out.kind],
                    request_id=out.item_id,
                    alternatives=[
                        stt.SpeechData(
                            language=LanguageCode(out.language),
                            text=out.text,
                            start_time=self._time_offset + out.start if timed else 0.0,
                            end_time=self._time_offset + out.end if timed else 0.0,
                            confidence=out.confidence,
                        )
                    ],
                )
            )
        elif isinstance(out, r.UsageRecord):
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.RECOGNITION_USAGE,
                    request_id=out.item_id,
                    recognition_usage=TranscriptionUsage(
                        audio_duration=out.audio_seconds,
                        input_tokens=out.input_tokens,
                        output_tokens=out.output_tokens,
                        audio_tokens=out.audio_tokens,
                        text_tokens=out.text_tokens,
                    ),
                )
            )
        elif isinstance(out, r.SpeechStart):
            self._emit(stt.SpeechEventType.START_OF_SPEECH, speech_start_time=self._wall(out.at))
        elif isinstance(out, r.SpeechEnd):
            self._emit(stt.SpeechEventType.END_OF_SPEECH, speech_end_time=self._wall(out.at))
        elif isinstance(out, r.Replay):
            self._configured = True

    def _emit(self, kind: stt.SpeechEventType, **fields: Any) -> None:
        self._event_ch.send_nowait(stt.SpeechEvent(type=kind, **fields))

    def _wall(self, stream_seconds: float) -> float:
        """Wall clock of a point of the stream's audio, assuming it is fed in real time."""
        return (self._first_audio_wall or time.time()) + stream_seconds

    def _extra(self, **more: object) -> dict[str, object]:
        return {"session_id": self._session.session_id, "model": self._opts.model, **more}


_TRANSCRIPT_EVENTS = {
    "interim": stt.SpeechEventType.INTERIM_TRANSCRIPT,
    "preflight": stt.SpeechEventType.PREFLIGHT_TRANSCRIPT,
    "final": stt.SpeechEventType.FINAL_TRANSCRIPT,
}


def connection_url(opts: STTOptions) -> str:
    """The URL of a transcription socket for ``opts`` (streams and the prewarmed session open
    the same; the headers come from the STT's credentials on each connect)."""
    return p.realtime_url(opts.base_url, model=opts.model, model_in_url=opts.model_in_url)


def _api_error(failure: r.Failure) -> APIError:
    """The LiveKit exception for a session failure: retryable unless it is fatal."""
    retryable = failure.action is not Action.FATAL
    if failure.kind == "timeout":
        return APITimeoutError(failure.message, retryable=retryable)
    if failure.kind == "connection":
        return APIConnectionError(failure.message, retryable=retryable)
    return APIError(failure.message, body=dict(failure.body), retryable=retryable)


def _downmix(frame: rtc.AudioFrame) -> rtc.AudioFrame:
    """Average the channels of an interleaved int16 frame into one."""
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    mono = samples.mean(axis=1).round().astype(np.int16)
    return rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, frame.samples_per_channel)
