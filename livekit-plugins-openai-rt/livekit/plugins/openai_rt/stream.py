"""``SpeechStream``: audio pump, commit policy, socket lifecycle, speech events, usage.

One stream owns one :class:`~.ledger.AudioLedger`. The pump moves audio from the input channel
into the ledger and, when a session is ready, onto the socket; the receive loop turns server
events into LiveKit speech events in commit order. Audio never waits for the socket: while a
socket is being (re)opened it collects in the ledger and is replayed once the new session is
configured, so nothing sent before ``session.updated`` or around a drop is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

import aiohttp

from livekit import rtc
from livekit.agents import (
    NOT_GIVEN,
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APITimeoutError,
    LanguageCode,
    NotGivenOr,
    stt,
    vad as vad_mod,
)

from . import protocol as p
from .connection import connect, realtime_url
from .ledger import AudioLedger, Segment
from .log import logger
from .options import STTOptions

if TYPE_CHECKING:
    from .stt import STT

TEXT = aiohttp.WSMsgType.TEXT

CHUNK_BYTES = p.BYTES_PER_SECOND // 20
"""Audio goes out in ~50 ms appends: small enough for prompt interims, few enough messages."""

QUICK_FAILURE_SECONDS = 5.0
"""A session that fails this soon after it was configured counts as an instant failure."""

MAX_QUICK_FAILURES = 3
"""Instant failures in a row after which the stream stops instead of reconnecting again."""

SUPERVISE_TICK = 1.0
"""How often a live session checks its timers (final wait, watchdog, roll-over). Finishing is
event-driven; these timers all count in seconds, and every wake-up costs loop time at scale."""


class SpeechStream(stt.RecognizeStream):
    """A streaming recognition over one or more Realtime transcription sessions.

    Push audio with ``push_frame``; ``flush()`` commits the audio so far (the session's VAD
    calls it at end of speech); ``end_input()`` commits the rest, and iteration ends after the
    last final transcript (or ``final_timeout``).
    """

    def __init__(
        self,
        *,
        stt: STT,
        opts: STTOptions,
        conn_options: APIConnectOptions,
        api_key: str,
        http_session: aiohttp.ClientSession,
        vad: vad_mod.VAD | None,
    ) -> None:
        super().__init__(stt=stt, conn_options=conn_options, sample_rate=p.SAMPLE_RATE)
        self._opts = opts
        self._api_key = api_key
        self._http = http_session
        self._vad = vad
        self._ledger = AudioLedger(replay_limit_bytes=int(opts.replay_seconds * p.BYTES_PER_SECOND))
        self._chunk = bytearray()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ready = False
        self._session_id = ""
        self._finished = asyncio.Event()
        self._interims: dict[str, str] = {}
        self._early: dict[str, p.TranscriptCompleted | p.TranscriptFailed] = {}
        self._stopped_ms: dict[str, int] = {}
        self._speaking = False
        self._time_offset: float | None = None
        self._first_audio_wall: float | None = None
        self._quick_failures = 0
        self._ignored_events = 0
        self._background: set[asyncio.Future[bool]] = set()
        self._input_ended_at: float | None = None
        self._owed_since: float | None = None
        self._send_started: float | None = None
        self._rollover_at: float | None = None
        self._hard_deadline: float | None = None
        self._needs_new_session = False
        self._expired = False
        self._final_retried = False
        self._helper_error: BaseException | None = None

    @property
    def ignored_server_events(self) -> int:
        """Server frames this stream could not use: malformed JSON or unknown event types
        (each logged; none stops the stream)."""
        return self._ignored_events

    # ------------------------------------------------------------------------------------------
    # lifecycle

    async def _run(self) -> None:
        if self._time_offset is None:
            self._time_offset = self.start_time_offset
        vad_stream = self._vad.stream() if self._vad is not None else None
        tasks = [asyncio.create_task(self._pump(vad_stream), name="openai_rt.pump")]
        if vad_stream is not None:
            tasks.append(asyncio.create_task(self._vad_loop(vad_stream), name="openai_rt.vad"))
        sessions = asyncio.create_task(self._sessions(), name="openai_rt.sessions")
        for task in tasks:
            task.add_done_callback(lambda t: self._on_helper_done(t, sessions))
        try:
            await sessions
        except asyncio.CancelledError:
            if self._helper_error is None:
                raise
            raise APIError(
                f"openai_rt internal error: {self._helper_error!r}", retryable=False
            ) from self._helper_error
        except APIError:
            raise
        except Exception as e:
            logger.exception("openai_rt stream failed unexpectedly", extra=self._extra())
            raise APIError(f"openai_rt internal error: {e!r}", retryable=False) from e
        finally:
            self._ready = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if vad_stream is not None:
                await vad_stream.aclose()
            if self._speaking:
                self._end_of_speech(time.time())
            await self._close_ws()

    async def _sessions(self) -> None:
        """One session after another until the stream is finished."""
        while not self._finished.is_set():
            if await self._session():
                return

    def _on_helper_done(self, task: asyncio.Task[None], sessions: asyncio.Task[None]) -> None:
        """A pump or VAD task that dies would stop audio without a word: fail the stream."""
        if task.cancelled() or task.exception() is None or self._helper_error is not None:
            return
        self._helper_error = task.exception()
        logger.error(
            "openai_rt %s task failed",
            task.get_name(),
            exc_info=task.exception(),
            extra=self._extra(),
        )
        sessions.cancel()

    async def _session(self) -> bool:
        """Run one websocket session. True when the stream is finished, False to go on in a
        new session (roll-over, model change); raises ``APIError`` on failure."""
        url = realtime_url(
            self._opts.base_url, model=self._opts.model, model_in_url=self._opts.model_in_url
        )
        started = time.perf_counter()
        try:
            ws = await connect(
                self._http,
                url,
                api_key=self._api_key,
                timeout=self._conn_options.timeout,
                heartbeat=self._opts.heartbeat,
            )
        except APIError as e:
            if not e.retryable:
                logger.error(e.message, extra=self._extra())
            raise
        self._ws = ws
        self._report_connection_acquired(time.perf_counter() - started, False)
        self._expired = self._needs_new_session = False
        configured_at = 0.0
        try:
            try:
                await self._configure(ws)
                configured_at = time.monotonic()
                # a session that configured is a successful reconnect: the retry budget starts
                # over (instant failures are caught by the quick-failure count instead)
                self._num_retries = 0
                await self._replay(ws)
            except (aiohttp.ClientError, ConnectionError) as e:
                raise APIConnectionError(
                    f"connection lost while setting up session {self._session_id}: {e!r}"
                ) from None
            receiver = asyncio.create_task(self._receive(ws), name="openai_rt.receive")
            supervisor = asyncio.create_task(self._supervise(), name="openai_rt.supervise")
            try:
                done, _ = await asyncio.wait(
                    {receiver, supervisor}, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                for task in (receiver, supervisor):
                    task.cancel()
                await asyncio.gather(receiver, supervisor, return_exceptions=True)
            if self._finished.is_set():
                return True
            return done.pop().result()
        except APIError as e:
            if self._finished.is_set():
                return True
            if e.retryable:
                self._count_quick_failure(configured_at, e)
            raise
        finally:
            self._ready = False
            self._owed_since = None
            await self._close_ws()

    def _count_quick_failure(self, configured_at: float, e: APIError) -> None:
        """Stop looping on a server that accepts sessions and drops them at once."""
        if configured_at and time.monotonic() - configured_at > QUICK_FAILURE_SECONDS:
            self._quick_failures = 0
            return
        self._quick_failures += 1
        if self._quick_failures >= MAX_QUICK_FAILURES:
            msg = (
                f"{self._quick_failures} sessions in a row failed right after opening "
                f"(last: {e.message}); giving up instead of reconnecting again"
            )
            logger.error(msg, extra=self._extra())
            raise APIConnectionError(msg, retryable=False) from e

    async def _close_ws(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await ws.close()

    async def _supervise(self) -> bool:
        """Timers of a live session: the final wait after end of input, the result watchdog,
        a blocked send, and the moment to roll over to a new session.

        Returns True when the stream is finished, False to move to a new session; raises a
        retryable ``APIError`` when the socket looks dead (the ledger replays what it owes).
        """
        opts = self._opts
        while True:
            await asyncio.sleep(self._tick())
            now = time.monotonic()
            if self._input_ended_at is not None and not self._finished.is_set():
                if now - self._input_ended_at > opts.final_timeout:
                    logger.warning(
                        "end of input: %d transcript(s) did not arrive within final_timeout=%g s",
                        len(self._ledger.in_flight),
                        opts.final_timeout,
                        extra=self._extra(),
                    )
                    self._finished.set()
            if self._finished.is_set():
                return True
            if self._owed_since is not None and now - self._owed_since > opts.result_timeout:
                raise APIConnectionError(
                    f"no transcription result within result_timeout={opts.result_timeout:g} s "
                    f"of a commit on session {self._session_id}: the socket looks stalled"
                )
            if self._send_started is not None and now - self._send_started > opts.result_timeout:
                raise APIConnectionError(
                    f"sending audio blocked for over {opts.result_timeout:g} s on session "
                    f"{self._session_id}: the server stopped reading"
                )
            switch = self._switch_reason(now)
            if switch is not None:
                logger.info(
                    "moving to a new session (%s)",
                    switch,
                    extra={**self._extra(), "reason": switch},
                )
                return False

    def _tick(self) -> float:
        """Timer resolution: a fraction of the shortest timer in force, at most a second."""
        tick = min(SUPERVISE_TICK, self._opts.result_timeout / 4, self._opts.final_timeout / 4)
        if self._rollover_at is not None and self._hard_deadline is not None:
            tick = min(tick, (self._hard_deadline - self._rollover_at) / 4)
        return max(tick, 0.01)

    def _switch_reason(self, now: float) -> str | None:
        """Why the stream should move to a new session now, if it should.

        A planned switch waits for a boundary: no result owed by this socket and no speech
        in progress, so no utterance straddles two sessions (the open audio moves whole, by
        replay). Past the hard deadline it goes anyway; the replay still loses nothing.
        """
        if self._rollover_at is None and not self._needs_new_session:
            return None
        if self._hard_deadline is not None and now >= self._hard_deadline:
            return "session about to expire"
        at_boundary = not self._ledger.in_flight and not self._speaking
        if self._needs_new_session and at_boundary:
            return "model or language change"
        if self._rollover_at is not None and now >= self._rollover_at and at_boundary:
            return "session roll-over before expiry"
        return None

    def _plan_rollover(self, expires_at: float | None) -> None:
        """Schedule the roll-over ahead of ``expires_at`` (unix seconds, from session.created)."""
        self._rollover_at = self._hard_deadline = None
        if expires_at is None:
            return
        lifetime = expires_at - time.time()
        if lifetime <= 0:
            return
        now = time.monotonic()
        margin = min(self._opts.rollover_margin, lifetime * 0.3)
        self._rollover_at = now + lifetime - margin
        self._hard_deadline = now + lifetime - min(5.0, lifetime * 0.1)

    def update_options(
        self,
        *,
        model: NotGivenOr[str] = NOT_GIVEN,
        language: NotGivenOr[str | None] = NOT_GIVEN,
        delay: NotGivenOr[str | None] = NOT_GIVEN,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        turn_detection: NotGivenOr[p.TurnDetection | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[str | None] = NOT_GIVEN,
    ) -> None:
        """Change options of this live stream.

        Language, delay, prompt, noise reduction and turn detection apply in place with a
        ``session.update``. A new model (or clearing a language or prompt, which an update
        cannot do) moves the stream to a new session at the next commit boundary, without
        losing audio. Raises ``ValueError`` for an invalid combination, changing nothing.
        """
        new = self._opts.replace(
            model=model,
            language=language,
            delay=delay,
            prompt=prompt,
            turn_detection=turn_detection,
            noise_reduction=noise_reduction,
        )
        self._apply_options(new)

    def _apply_options(self, new: STTOptions) -> None:
        old, self._opts = self._opts, new
        if new == old:
            return
        cleared = (old.language and not new.language) or (old.prompt and not new.prompt)
        if new.model != old.model or cleared or (old.delay and not new.delay):
            self._needs_new_session = True
            return
        if self._ready and self._ws is not None:
            update = p.session_update(new.session_config(), event_id="session_update")
            task = asyncio.ensure_future(self._send(p.encode(update)))
            self._background.add(task)  # keep a reference until the send is done
            task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------------------------------
    # session set-up

    async def _configure(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send ``session.update`` and wait for ``session.updated``; audio meanwhile queues."""
        deadline = time.monotonic() + self._conn_options.timeout
        update = p.session_update(self._opts.session_config(), event_id="session_update")
        await ws.send_frame(p.encode(update), TEXT)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise APITimeoutError(
                    f"no session.updated within {self._conn_options.timeout:g} s "
                    f"(session {self._session_id or '?'})"
                )
            try:
                msg = await ws.receive(timeout=remaining)
            except asyncio.TimeoutError:
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                self._on_socket_end(ws, msg)
                raise APIConnectionError(f"socket closed during set-up: {msg.type!r}")
            ev = p.parse_server_event(msg.data)
            if isinstance(ev, p.SessionCreated):
                self._on_session_created(ev)
            elif isinstance(ev, p.SessionUpdated):
                logger.debug("session configured", extra=self._extra())
                return
            elif isinstance(ev, p.ServerError):
                self._on_error(ev, configuring=True)
            else:
                self._handle(ev)

    def _on_session_created(self, ev: p.SessionCreated) -> None:
        self._session_id = ev.session_id
        self._plan_rollover(ev.expires_at)
        logger.debug(
            "session created",
            extra={**self._extra(), "expires_at": ev.expires_at},
        )

    async def _replay(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send the new session what the ledger holds: untranscribed commits, then open audio.

        Audio keeps arriving while this awaits; the loop runs until it has caught up, and
        ``_ready`` is set with no await in between, so the pump takes over seamlessly.
        """
        ledger = self._ledger
        replay = ledger.reset_socket(server_commits=self._opts.server_commits)
        lost = ledger.take_unheld()
        self._interims.clear()
        self._stopped_ms.clear()
        self._early.clear()  # results for the old socket's item ids can no longer match
        resent = 0
        sent_segments: set[int] = set()
        open_seg: Segment | None = None
        open_sent = 0
        while True:
            progressed = False
            for seg in [*replay, *ledger.in_flight]:
                if seg.seq in sent_segments or seg.done or seg.commit_sent:
                    continue
                start = open_sent if seg is open_seg else 0
                for chunk in seg.chunks[start:]:
                    await ws.send_frame(p.append_message(chunk), TEXT)
                    resent += len(chunk)
                await ws.send_frame(p.commit_message(seg.commit_event_id), TEXT)
                seg.commit_sent = True
                self._owed_since = time.monotonic()
                sent_segments.add(seg.seq)
                progressed = True
            if ledger.open is not open_seg:
                open_seg, open_sent = ledger.open, 0
            while open_sent < len(open_seg.chunks):
                chunk = open_seg.chunks[open_sent]
                await ws.send_frame(p.append_message(chunk), TEXT)
                resent += len(chunk)
                open_sent += 1
                progressed = True
            if not progressed:
                break
        self._ready = True
        if self._input_ended_at is not None and self._ledger.open.nbytes:
            # the end-of-input commit went back into the open audio with the old socket
            await self._final_commit()
        if lost:
            logger.warning(
                "replayed %.2f s of audio to the new session; %.2f s older than the replay "
                "bound (replay_seconds=%g) could not be replayed",
                resent / p.BYTES_PER_SECOND,
                lost / p.BYTES_PER_SECOND,
                self._opts.replay_seconds,
                extra=self._extra(),
            )
        elif resent:
            logger.debug(
                "replayed %.2f s of audio", resent / p.BYTES_PER_SECOND, extra=self._extra()
            )
        self._check_finished()

    # ------------------------------------------------------------------------------------------
    # audio

    async def _pump(self, vad_stream: vad_mod.VADStream | None) -> None:
        """Move input into the ledger (and onto the socket when ready). Never waits on the
        server: a socket that is down just means the audio is replayed later."""
        async for item in self._input_ch:
            if isinstance(item, rtc.AudioFrame):
                if self._first_audio_wall is None:
                    self._first_audio_wall = time.time() - item.duration
                self._chunk += item.data
                if len(self._chunk) >= CHUNK_BYTES:
                    await self._append_chunk()
                if vad_stream is not None:
                    try:
                        vad_stream.push_frame(item)
                    except RuntimeError:
                        # the VAD stream closed under us: its own task reports why
                        vad_stream = None
            else:
                await self._append_chunk()
                if self._opts.server_commits:
                    logger.debug("flush ignored: the server's VAD commits", extra=self._extra())
                else:
                    await self._commit()
        self._input_ended_at = time.monotonic()
        await self._final_commit()
        self._check_finished()

    async def _final_commit(self) -> None:
        """End of input: commit what is left, a short tail padded to the 100 ms minimum."""
        await self._append_chunk()
        pad = self._ledger.pad_open()
        if pad:
            self._chunk += pad
            await self._append_chunk()
        await self._commit()

    async def _append_chunk(self) -> None:
        if not self._chunk:
            return
        chunk = bytes(self._chunk)
        self._chunk.clear()
        self._ledger.append(chunk)
        if self._ready:
            await self._send(p.append_message(chunk))

    async def _commit(self) -> None:
        seg = self._ledger.commit()
        if seg is not None and self._ready:
            seg.commit_sent = await self._send(p.commit_message(seg.commit_event_id))
            if seg.commit_sent and self._owed_since is None:
                self._owed_since = time.monotonic()

    async def _send(self, message: bytes) -> bool:
        """Send on the live socket; False (and not ready) when it is going away. The receive
        loop sees the close and the ledger replays what did not make it."""
        ws = self._ws
        if ws is None:
            return False
        self._send_started = time.monotonic()
        try:
            await ws.send_frame(message, TEXT)
            return True
        except (ConnectionError, aiohttp.ClientError, RuntimeError):
            self._ready = False
            return False
        finally:
            self._send_started = None

    async def _vad_loop(self, vad_stream: vad_mod.VADStream) -> None:
        """The stream's own VAD: START/END_OF_SPEECH, and a commit at each end of speech."""
        async for ev in vad_stream:
            if ev.type == vad_mod.VADEventType.START_OF_SPEECH:
                self._start_of_speech(time.time() - ev.speech_duration)
            elif ev.type == vad_mod.VADEventType.END_OF_SPEECH:
                self._end_of_speech(time.time() - ev.silence_duration)
                await self._append_chunk()
                await self._commit()

    # ------------------------------------------------------------------------------------------
    # server events

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Handle server events until the socket ends; True when the stream is finished."""
        while True:
            msg = await ws.receive()
            if msg.type == aiohttp.WSMsgType.TEXT:
                self._handle(p.parse_server_event(msg.data))
                if self._expired:
                    return False
            else:
                self._on_socket_end(ws, msg)
                return True

    def _on_socket_end(self, ws: aiohttp.ClientWebSocketResponse, msg: aiohttp.WSMessage) -> None:
        """The socket closed or failed: return when the stream is finished (we closed it),
        else raise the classified ``APIError``."""
        if self._finished.is_set():
            return
        code = ws.close_code
        reason = msg.extra if isinstance(msg.extra, str) else ""
        if msg.type == aiohttp.WSMsgType.ERROR or code is None:
            raise APIConnectionError(
                f"connection lost ({ws.exception() or msg.data!r}) on session {self._session_id}"
            )
        verdict = p.classify_close(code, reason)
        if verdict.action is p.ErrorAction.FATAL:
            message = (
                f"OpenAI closed session {self._session_id} with {code} {reason!r}: {verdict.hint}"
            )
            logger.error(message, extra={**self._extra(), "close_code": code})
            raise APIError(message, body={"close_code": code, "reason": reason}, retryable=False)
        raise APIConnectionError(f"session {self._session_id} closed with code {code} {reason!r}")

    def _handle(self, ev: p.ServerEvent) -> None:
        if isinstance(ev, p.TranscriptDelta):
            self._on_delta(ev)
        elif isinstance(ev, p.TranscriptCompleted):
            self._on_result(ev.item_id, ev)
        elif isinstance(ev, p.Committed):
            self._on_committed(ev)
        elif isinstance(ev, p.TranscriptFailed):
            logger.warning(
                "transcription failed for one item (%s); the stream goes on",
                ev.error.message,
                extra={**self._extra(), "item_id": ev.item_id, "code": ev.error.code},
            )
            self._on_result(ev.item_id, ev)
        elif isinstance(ev, p.SpeechStarted):
            self._stopped_ms.pop(ev.item_id, None)
            if self._vad is None:
                self._start_of_speech(self._wall_at(ev.audio_start_ms))
        elif isinstance(ev, p.SpeechStopped):
            self._stopped_ms[ev.item_id] = ev.audio_end_ms
            if self._vad is None:
                self._end_of_speech(self._wall_at(ev.audio_end_ms))
        elif isinstance(ev, p.ServerError):
            self._on_error(ev, configuring=False)
        elif isinstance(ev, p.SessionCreated):
            self._on_session_created(ev)
        elif isinstance(ev, p.Malformed):
            self._ignored_events += 1
            logger.warning("ignoring a malformed server event: %s", ev.reason, extra=self._extra())
        elif isinstance(ev, p.Unknown):
            self._ignored_events += 1
            logger.debug("ignoring unknown server event %r", ev.type, extra=self._extra())

    def _on_delta(self, ev: p.TranscriptDelta) -> None:
        if self._owed_since is not None:
            self._owed_since = time.monotonic()  # the server is working on it
        seg = self._ledger.find(ev.item_id)
        if seg is not None and seg.done:
            return
        text = self._interims.get(ev.item_id, "") + ev.delta
        self._interims[ev.item_id] = text
        if text.strip():
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.INTERIM_TRANSCRIPT,
                    request_id=ev.item_id,
                    alternatives=[
                        stt.SpeechData(
                            language=LanguageCode(self._opts.language or ""),
                            text=text,
                            confidence=p.confidence(ev.logprobs),
                        )
                    ],
                )
            )

    def _on_committed(self, ev: p.Committed) -> None:
        seg = self._ledger.on_committed(ev.item_id, end_ms=self._stopped_ms.pop(ev.item_id, None))
        if seg is None:
            return
        self._owed_since = time.monotonic()
        early = self._early.pop(ev.item_id, None)
        if early is not None:
            self._on_result(ev.item_id, early)

    def _on_result(self, item_id: str, ev: p.TranscriptCompleted | p.TranscriptFailed) -> None:
        seg = self._ledger.find(item_id)
        if seg is None:
            # a result may race ahead of its ``committed``; keep it until the commit shows up
            if len(self._early) < 64:
                self._early[item_id] = ev
            return
        if seg.done:
            return
        if isinstance(ev, p.TranscriptCompleted):
            seg.result = ev
        else:
            seg.failure = ev.error
        self._interims.pop(item_id, None)
        for ready in self._ledger.release():
            self._emit_final(ready)
        self._quick_failures = 0
        owed = any(s.commit_sent and not s.done for s in self._ledger.in_flight)
        self._owed_since = time.monotonic() if owed else None
        self._check_finished()

    def _emit_final(self, seg: Segment) -> None:
        assert self._time_offset is not None
        result = seg.result
        item_id = seg.item_id or ""
        if result is not None and result.transcript.strip():
            self._event_ch.send_nowait(
                stt.SpeechEvent(
                    type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                    request_id=item_id,
                    alternatives=[
                        stt.SpeechData(
                            language=LanguageCode(result.language or self._opts.language or ""),
                            text=result.transcript,
                            start_time=self._time_offset + seg.start_seconds,
                            end_time=self._time_offset + seg.end_seconds,
                            confidence=p.confidence(result.logprobs),
                        )
                    ],
                )
            )
        usage = result.usage if result is not None else None
        seconds = usage.seconds if usage is not None and usage.kind == "duration" else seg.seconds
        self._event_ch.send_nowait(
            stt.SpeechEvent(
                type=stt.SpeechEventType.RECOGNITION_USAGE,
                request_id=item_id,
                recognition_usage=stt.RecognitionUsage(
                    audio_duration=seconds,
                    input_tokens=usage.input_tokens if usage is not None else 0,
                    output_tokens=usage.output_tokens if usage is not None else 0,
                ),
            )
        )

    def _on_error(self, err: p.ServerError, *, configuring: bool) -> None:
        verdict = p.classify_error(err, configuring=configuring)
        extra = {**self._extra(), "code": err.code, "param": err.param}
        if err.code == "input_audio_buffer_commit_empty" and err.event_id:
            # the server kept its buffer: that audio goes with the next commit
            if self._ledger.commit_refused(err.event_id) is not None:
                self._after_refused_commit()
        if verdict.action is p.ErrorAction.FATAL:
            message = f"OpenAI refused the session ({err.code}): {err.message} -> {verdict.hint}"
            logger.error(message, extra=extra)
            raise APIError(
                message,
                body={"code": err.code, "type": err.type, "param": err.param},
                retryable=False,
            )
        if err.code == "session_expired":
            # planned for (roll-over) but reached anyway: go on in a new session, by replay
            logger.warning(
                "session expired before it could roll over; continuing in a new session",
                extra=extra,
            )
            self._expired = True
            return
        if verdict.action is p.ErrorAction.RECONNECT:
            raise APIError(
                f"server error {err.code or err.type} on session {self._session_id}: {err.message}",
                body={"code": err.code, "type": err.type},
                retryable=True,
            )
        logger.warning("server warning (%s): %s", err.code, err.message, extra=extra)

    # ------------------------------------------------------------------------------------------
    # end of stream

    def _after_refused_commit(self) -> None:
        """After the input ended there is no next commit: retry the final commit once (padded),
        then give up on audio the server will not take (its buffer had less than we sent,
        e.g. its VAD committed the same audio)."""
        if self._input_ended_at is None:
            return
        if not self._final_retried:
            self._final_retried = True
            asyncio.ensure_future(self._final_commit())
            return
        dropped = self._ledger.abandon_open()
        logger.warning(
            "end of input: the server refused to commit the last %.0f ms of audio twice; "
            "not waiting for it",
            dropped / p.BYTES_PER_SECOND * 1000,
            extra=self._extra(),
        )
        self._check_finished()

    def _check_finished(self) -> None:
        """Finish once the input ended and every segment was released; closing the socket
        wakes the receive loop at once."""
        if self._finished.is_set() or self._input_ended_at is None:
            return
        if not self._ledger.in_flight and self._ledger.open.nbytes == 0:
            self._finished.set()
            if self._ws is not None:
                asyncio.ensure_future(self._ws.close())

    # ------------------------------------------------------------------------------------------
    # speech events

    def _start_of_speech(self, wall: float) -> None:
        if self._speaking:
            return
        self._speaking = True
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH, speech_start_time=wall)
        )

    def _end_of_speech(self, wall: float) -> None:
        if not self._speaking:
            return
        self._speaking = False
        self._event_ch.send_nowait(
            stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH, speech_end_time=wall)
        )

    def _wall_at(self, server_ms: int) -> float:
        """Wall clock of a server audio timestamp, assuming audio is fed in real time."""
        base = self._first_audio_wall or time.time()
        return base + (self._ledger.socket_origin + server_ms * 48) / p.BYTES_PER_SECOND

    def _extra(self) -> dict[str, Any]:
        return {"session_id": self._session_id, "model": self._opts.model}
