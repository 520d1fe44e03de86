"""``TranslationStream``: the asyncio adapter around the sans-I/O
:class:`~.translation_session.TranslationSession`.

The translation counterpart of :class:`~.stream.SpeechStream`: the tasks, sockets, retries and
the writer are the :class:`~.adapter.RealtimeStream`'s; this class adds the input pump (whole
segments, the end of input), the stream's VAD (a segment end at each end of speech), and what
the session's records become: LiveKit ``SpeechEvent``\\ s and translated-audio frames. Every
decision is the session's.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp

from livekit import rtc
from livekit.agents import (
    NOT_GIVEN,
    APIConnectOptions,
    LanguageCode,
    NotGivenOr,
    stt,
    utils,
    vad as vad_mod,
)

from . import protocol as p, records as r, translation_protocol as tp, translation_records as tr
from .adapter import RealtimeStream
from .audio import downmix
from .translation_session import TranslationSession

if TYPE_CHECKING:
    from .translation_stt import TranslationOptions, TranslationSTT

UNKNOWN_SOURCE_LANGUAGE = LanguageCode("und")
"""``SpeechData.source_languages`` of a translation: the service does not say which language it
heard, so the source is "undetermined" (BCP-47 ``und``)."""


class TranslationStream(RealtimeStream[TranslationSession, "TranslationOptions"]):
    """A streaming translation over one or more Realtime translation sessions.

    Push audio with ``push_frame`` (any rate; stereo is downmixed); ``flush()`` ends the current
    segment (the session's VAD calls it at end of speech), and its FINAL_TRANSCRIPT comes once
    its translation arrived; ``end_input()`` ends the last one, and iteration ends after its
    final. :meth:`translated_audio` yields the translated speech.
    """

    _log_name = "openai_rt translation"
    _session_kind = "translation"

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
        session = TranslationSession(
            opts.config(),
            timers=opts.timers(configure_timeout=conn_options.timeout),
            replay_limit_bytes=int(opts.replay_seconds * p.BYTES_PER_SECOND),
            segment_timeout=opts.segment_timeout,
        )
        super().__init__(
            stt=stt,
            conn_options=conn_options,
            sample_rate=tp.SAMPLE_RATE,
            opts=opts,
            session=session,
            http_session=http_session,
            vad=vad,
        )
        self._api_key = api_key
        self._audio_ch: utils.aio.Chan[rtc.AudioFrame] | None = None
        self._audio_done = False

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

    # -- the adapter's hooks ------------------------------------------------------------------------

    def _url(self) -> str:
        return tp.translation_url(self._opts.base_url, model=self._opts.model)

    async def _headers(self) -> dict[str, str]:
        return p.auth_headers(self._api_key)

    def _receive_text(self, data: str, now: float) -> None:
        self._session.receive(tp.parse_server_event(data), now)

    def _stream_done(self) -> None:
        self._audio_done = True
        if self._audio_ch is not None:
            self._audio_ch.close()

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
            if self._vad_speech(ev):
                session.flush(time.monotonic())
                self._drain()

    # -- outputs -------------------------------------------------------------------------------

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


def _audio_frame(out: tr.TranslatedAudio) -> rtc.AudioFrame:
    """A translated-audio chunk as a mono frame (multi-channel chunks are downmixed)."""
    data = base64.b64decode(out.audio)
    data = data[: len(data) - len(data) % (2 * out.channels)]
    frame = rtc.AudioFrame(data, out.sample_rate, out.channels, len(data) // (2 * out.channels))
    return downmix(frame) if out.channels > 1 else frame
