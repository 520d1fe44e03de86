"""``TranslationStream``: the asyncio adapter around the sans-I/O
:class:`~.translation_session.TranslationSession`.

The translation counterpart of :class:`~.stream.SpeechStream`, with the same shape: it owns the
tasks (the input pump, the optional VAD loop, the timers, one receiver per socket), opens sockets
through :class:`~.connection.Connection`, retries within the connect options' budget, and turns
the session's records into LiveKit ``SpeechEvent``\\ s and translated-audio frames. Every
decision is the session's.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import AsyncIterator, Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp

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
    utils,
    vad as vad_mod,
)

from . import (
    protocol as p,
    records as r,
    session as s,
    translation_protocol as tp,
    translation_records as tr,
)
from .connection import Binary, Closed, Connection, HandshakeRefused, Text, TransportError
from .errors import Action, classify_http_status
from .log import logger
from .stream import BACKOFF_CAP_SECONDS, TIMER_TICK, _api_error, _downmix
from .translation_session import TranslationSession

if TYPE_CHECKING:
    from .translation_stt import TranslationOptions, TranslationSTT

UNKNOWN_SOURCE_LANGUAGE = LanguageCode("und")
"""``SpeechData.source_languages`` of a translation: the service does not say which language it
heard, so the source is "undetermined" (BCP-47 ``und``)."""


class TranslationStream(stt.RecognizeStream):
    """A streaming translation over one or more Realtime translation sessions.

    Push audio with ``push_frame`` (any rate; stereo is downmixed); ``flush()`` ends the current
    segment (the session's VAD calls it at end of speech), and its FINAL_TRANSCRIPT comes once
    its translation arrived; ``end_input()`` ends the last one, and iteration ends after its
    final. :meth:`translated_audio` yields the translated speech.
    """

    def __init__(
        self,
        *,
        stt: TranslationSTT,
        opts: TranslationOptions,
        conn_options: APIConnectOptions,
        api_key: str,
        http_session: aiohttp.ClientSession,
        vad: vad_mod.VAD | None,
    ) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=tp.SAMPLE_RATE)
        self._opts = opts
        self._api_key = api_key
        self._http = http_session
        self._vad = vad
        self._session = TranslationSession(
            opts.config(),
            timers=opts.timers(configure_timeout=conn_options.timeout),
            replay_limit_bytes=int(opts.replay_seconds * p.BYTES_PER_SECOND),
            segment_timeout=opts.segment_timeout,
        )
        self._conn: Connection | None = None
        self._ended = asyncio.Event()
        self._writing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._task_error: BaseException | None = None
        self._time_offset = 0.0
        self._configured = False
        self._sessions_task: asyncio.Future[None] | None = None
        self._audio_ch: utils.aio.Chan[rtc.AudioFrame] | None = None
        self._audio_done = False

    @property
    def session(self) -> TranslationSession:
        """The sans-I/O session this stream drives (its state, ledger and counters)."""
        return self._session

    def translated_audio(self) -> AsyncIterator[rtc.AudioFrame]:
        """The translated speech, as mono ``rtc.AudioFrame``\\ s at the server's rate (24 kHz),
        in order, until the stream ends.

        Audio is kept from the first call on (a stream used only for its text decodes none);
        every call returns the same iterator, for one reader.
        """
        if self._audio_ch is None:
            self._audio_ch = utils.aio.Chan[rtc.AudioFrame]()
            if self._audio_done:
                self._audio_ch.close()
        return self._audio_ch

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        """Push audio: any sample rate (resampled to 24 kHz), mono or multi-channel
        (downmixed)."""
        if frame.num_channels > 1:
            frame = _downmix(frame)
        super().push_frame(frame)

    def update_options(
        self,
        *,
        target_language: NotGivenOr[str] = NOT_GIVEN,
        source_transcription: NotGivenOr[str | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[str | None] = NOT_GIVEN,
    ) -> None:
        """Change the target language, the source transcription or the noise reduction of this
        live stream (a ``session.update``, also while the session is being set up). Raises
        ``ValueError`` for an invalid value, changing nothing."""
        self._opts = self._opts.replace(
            target_language=target_language,
            source_transcription=source_transcription,
            noise_reduction=noise_reduction,
        )
        self._session.update_config(self._opts.config())
        self._drain()

    # -- lifecycle -------------------------------------------------------------------------------

    async def _run(self) -> None:
        self._time_offset = self.start_time_offset
        vad_stream = self._vad.stream() if self._vad is not None else None
        self._spawn(self._pump(vad_stream), "pump")
        if vad_stream is not None:
            self._spawn(self._vad_loop(vad_stream), "vad")
        self._spawn(self._timers(), "timers")
        self._sessions_task = asyncio.ensure_future(self._sessions())
        try:
            await self._sessions_task
        except asyncio.CancelledError:
            if self._task_error is None:
                raise
            raise APIError(
                f"openai_rt internal error: {self._task_error!r}", retryable=False
            ) from None
        except APIError:
            raise
        except Exception as e:
            logger.exception(
                "openai_rt translation stream failed unexpectedly", extra=self._extra()
            )
            raise APIError(f"openai_rt internal error: {e!r}", retryable=False) from e
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
            self._audio_done = True
            if self._audio_ch is not None:
                self._audio_ch.close()

    async def _sessions(self) -> None:
        """Open sessions one after another until the session core finishes or fails."""
        session = self._session
        attempts = 0
        while True:
            if session.state is s.State.FINISHED:
                return
            if session.state is s.State.FAILED:
                raise self._fatal(session.ending)
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
            attempts = (0 if self._configured else attempts) + 1
            error = _api_error(decision.failure)
            self._check_budget(attempts, error)
            logger.warning(
                "reconnecting: %s", decision.failure.message, extra=self._extra(attempt=attempts)
            )
            self._emit_error(error, recoverable=True)
            await self._backoff(attempts, None)

    async def _open(self, attempts: int) -> Connection | None:
        """Open a socket; None after a retryable failure (already waited out), raising when the
        failure is fatal or the budget is spent."""
        session = self._session
        url = tp.translation_url(self._opts.base_url, model=self._opts.model)
        session.connecting()
        started = time.perf_counter()
        try:
            conn = await Connection.open(
                self._http,
                url,
                headers=p.auth_headers(self._api_key),
                timeout=self._conn_options.timeout,
                heartbeat=self._opts.heartbeat,
            )
        except HandshakeRefused as e:
            session.connect_failed()
            if session.state is s.State.FINISHED:
                return None
            verdict = classify_http_status(e.status)
            error = APIStatusError(
                f"{e.message}: {verdict.hint}",
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
            await conn.close()  # the input ended with nothing to translate meanwhile
            return None
        self._report_connection_acquired(time.perf_counter() - started, False)
        return conn

    async def _serve(self, conn: Connection) -> r.Ending:
        """Run one socket until the session decides it is done with it."""
        session = self._session
        self._conn = conn
        self._configured = False
        self._ended.clear()
        session.socket_opened(time.monotonic(), wall=time.time())
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
            f"gave up after {attempts} failed attempt(s) to keep a translation session open "
            f"(max_retry={budget}); last: {error.message}"
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
        """Wait before the next attempt, as :class:`~.stream.SpeechStream` does."""
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
        """Start a task the stream keeps and watches: one that dies with an exception stops
        the stream loudly."""
        task = asyncio.create_task(coro, name=f"openai_rt.translation.{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None or self._task_error is not None:
            return
        self._task_error = task.exception()
        logger.error(
            "openai_rt translation %s task failed",
            task.get_name(),
            exc_info=task.exception(),
            extra=self._extra(),
        )
        if self._sessions_task is not None:
            self._sessions_task.cancel()

    async def _pump(self, vad_stream: vad_mod.VADStream | None) -> None:
        """Input channel -> session (and the stream's VAD). Audio is in the session before
        anything awaits."""
        session = self._session
        async for item in self._input_ch:
            if isinstance(item, rtc.AudioFrame):
                session.audio(item.data)
                if vad_stream is not None:
                    try:
                        vad_stream.push_frame(item)
                    except RuntimeError:
                        vad_stream = None  # the VAD stream closed: its own task reports why
            elif not (self._input_ch.closed and self._input_ch.empty()):
                # (the flush of end_input() is skipped: the end of input ends the last
                # segment itself, its padded tail included, rather than leave a sliver)
                session.flush(time.monotonic())
            await self._write()
        session.end_input(time.monotonic())
        self._drain()

    async def _vad_loop(self, vad_stream: vad_mod.VADStream) -> None:
        """The stream's own VAD: START/END_OF_SPEECH, and a segment end at each end of speech."""
        session = self._session
        async for ev in vad_stream:
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
                session.flush(time.monotonic())
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
                session.receive(tp.parse_server_event(frame.data), now)
            elif isinstance(frame, Binary):
                session.binary_frame(frame.size)
            else:
                assert isinstance(frame, Closed)
                session.socket_closed(now, code=frame.code, reason=frame.reason)
                self._drain()
                return
            self._drain()

    async def _write(self) -> None:
        """Send what the session has for the socket, in order; one writer at a time."""
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
        """Turn the session's outputs into speech events and audio frames, start a write if
        there is something to send, and wake the session loop on a decision."""
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

    def _on_output(self, out: tr.TranslationOutput) -> None:
        if isinstance(out, tr.Translation):
            final = out.kind == "final"
            has_source = out.source_text is not None
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=(
                        stt.SpeechEventType.FINAL_TRANSCRIPT
                        if final
                        else stt.SpeechEventType.INTERIM_TRANSCRIPT
                    ),
                    request_id=out.segment_id,
                    alternatives=[
                        stt.SpeechData(
                            language=LanguageCode(out.language),
                            text=out.text,
                            start_time=self._time_offset + out.start,
                            end_time=self._time_offset + out.end if final else 0.0,
                            target_languages=[LanguageCode(lang) for lang, _ in out.runs],
                            target_texts=[text for _, text in out.runs],
                            source_languages=[UNKNOWN_SOURCE_LANGUAGE] if has_source else None,
                            source_texts=[out.source_text or ""] if has_source else None,
                        )
                    ],
                )
            )
        elif isinstance(out, tr.TranslatedAudio):
            if self._audio_ch is not None and not self._audio_ch.closed:
                self._audio_ch.send_nowait(_audio_frame(out))
        elif isinstance(out, r.UsageRecord):
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.RECOGNITION_USAGE,
                    request_id=out.item_id,
                    recognition_usage=stt.RecognitionUsage(audio_duration=out.audio_seconds),
                )
            )
        elif isinstance(out, r.Replay):
            self._configured = True

    def _emit(self, kind: stt.SpeechEventType, **fields: Any) -> None:
        self._event_ch.send_nowait(stt.SpeechEvent(type=kind, **fields))

    def _extra(self, **more: object) -> dict[str, object]:
        return {"session_id": self._session.session_id, "model": self._opts.model, **more}


def _audio_frame(out: tr.TranslatedAudio) -> rtc.AudioFrame:
    """A translated-audio chunk as a mono frame (multi-channel chunks are downmixed)."""
    data = base64.b64decode(out.audio)
    data = data[: len(data) - len(data) % (2 * out.channels)]
    frame = rtc.AudioFrame(data, out.sample_rate, out.channels, len(data) // (2 * out.channels))
    return _downmix(frame) if out.channels > 1 else frame
