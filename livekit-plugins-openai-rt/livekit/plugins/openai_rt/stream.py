"""``SpeechStream``: the asyncio adapter around the sans-I/O :class:`~.session.TranscriptionSession`.

The tasks, sockets, retries and the writer are the :class:`~.adapter.RealtimeStream`'s; this
class adds what transcription does: the input pump (G.711 encoding, levels for the energy
gate), the stream's VAD (commits where speech ends, the hold on audio it has not judged),
taking over a prewarmed session, and the ``SpeechEvent``\\ s of transcripts, usage and speech
boundaries. Every decision (what to send, when to commit, reconnect, roll over, finish or fail)
is the session's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import aiohttp

from livekit import rtc
from livekit.agents import (
    NOT_GIVEN,
    APIConnectOptions,
    LanguageCode,
    NotGivenOr,
    stt,
    vad as vad_mod,
)

from . import protocol as p, records as r, session as s
from .adapter import RealtimeStream
from .audio import G711Encoder, level_dbfs
from .auth import Credentials
from .log import logger
from .models import DelayValue, NoiseReduction
from .options import STTOptions
from .prewarm import WarmSession, adopt
from .usage import TranscriptionUsage

if TYPE_CHECKING:
    from .stt import STT


class SpeechStream(RealtimeStream[s.TranscriptionSession, STTOptions]):
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
        session = s.TranscriptionSession(
            opts.session_config(),
            timers=opts.timers(configure_timeout=conn_options.timeout),
            replay_limit_bytes=int(opts.replay_seconds * fmt.bytes_per_second),
            local_vad=vad is not None,
            skip_silence=opts.skip_silence,
        )
        # the framework resamples every pushed frame to the format's rate
        super().__init__(
            stt=stt,
            conn_options=conn_options,
            sample_rate=fmt.sample_rate,
            opts=opts,
            session=session,
            http_session=http_session,
            vad=vad,
        )
        self._credentials = credentials
        self._warm = warm  # a prewarmed session to take over first (see prewarm.py)
        self._encoder = G711Encoder(fmt) if fmt.sample_bytes == 1 else None
        self._first_audio_wall: float | None = None

    @property
    def skipped_silence_seconds(self) -> float:
        """Seconds of audio this stream cleared instead of committing because they held no
        speech (``skip_silence``): audio not billed and not transcribed."""
        return self._session.skipped_seconds

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

    # -- the adapter's hooks ------------------------------------------------------------------------

    def _url(self) -> str:
        return connection_url(self._opts)

    async def _headers(self) -> dict[str, str]:
        return await self._credentials.headers()

    def _credentials_note(self) -> str:
        return f" (credentials: {self._credentials.kind})"

    def _receive_text(self, data: str, now: float) -> None:
        self._session.receive(p.parse_server_event(data), now)

    async def _serve_warm(self) -> r.Ending | None:
        """Serve the prewarmed session, once it is ready (None without one, or if it failed:
        the stream connects itself)."""
        warm = await self._adopt() if self._warm is not None else None
        if warm is None:
            return None
        return await self._serve(warm.conn, lambda: self._take_over(warm))

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

    def _take_over(self, warm: WarmSession) -> None:
        self._session.socket_adopted(
            time.monotonic(),
            wall=time.time(),
            opened_at=warm.opened_at,
            created=warm.created,
            configured=warm.config,
        )

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
            if self._vad_speech(ev):
                session.flush(at=pos if positioned else None)
            self._drain()

    # -- outputs -------------------------------------------------------------------------------

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

    def _wall(self, stream_seconds: float) -> float:
        """Wall clock of a point of the stream's audio, assuming it is fed in real time."""
        return (self._first_audio_wall or time.time()) + stream_seconds


_TRANSCRIPT_EVENTS = {
    "interim": stt.SpeechEventType.INTERIM_TRANSCRIPT,
    "preflight": stt.SpeechEventType.PREFLIGHT_TRANSCRIPT,
    "final": stt.SpeechEventType.FINAL_TRANSCRIPT,
}


def connection_url(opts: STTOptions) -> str:
    """The URL of a transcription socket for ``opts`` (streams and the prewarmed session open
    the same; the headers come from the STT's credentials on each connect)."""
    return p.realtime_url(opts.base_url, model=opts.model, model_in_url=opts.model_in_url)
