"""The public ``STT``: options, validation, live streams."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import aiohttp

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    LanguageCode,
    NotGivenOr,
    stt,
    utils,
    vad as vad_mod,
)
from livekit.agents.utils import AudioBuffer

from .auth import AzureADTokenProvider, AzureKey, BearerKey, Credentials, TokenProvider
from .formats import AudioFormatName
from .log import logger
from .models import DEFAULT_MODEL, DelayValue, NoiseReduction, TranscriptionModel, model_spec
from .options import DEFAULT_SERVER_VAD, STTOptions, as_tuple, validate
from .prewarm import Prewarmer, WarmSession, open_warm
from .protocol import TurnDetection
from .stream import SpeechStream, connection_url
from .stt_base import RealtimeSTT, openai_key
from .urls import azure_base_url
from .usage import TranscriptionUsage


class STT(RealtimeSTT[STTOptions]):
    """Streaming speech-to-text over OpenAI's Realtime API in transcription mode.

    ``gpt-realtime-whisper`` (the default) has no server VAD: something must commit the audio
    buffer to get a final transcript. Inside an ``AgentSession`` the session's VAD / turn
    detector does, through ``flush()`` (this STT declares ``manual_flush``). Standalone, pass
    ``vad=`` to let each stream run a VAD of its own, or call ``flush()`` yourself.
    """

    def __init__(
        self,
        *,
        model: TranscriptionModel | str = DEFAULT_MODEL,
        language: NotGivenOr[str | None] = NOT_GIVEN,
        languages: Sequence[str] | None = None,
        keywords: Sequence[str] | None = None,
        delay: DelayValue | None = None,
        prompt: str | None = None,
        turn_detection: NotGivenOr[TurnDetection | None] = NOT_GIVEN,
        noise_reduction: NoiseReduction | None = None,
        logprobs: bool = False,
        vad: NotGivenOr[vad_mod.VAD | None] = NOT_GIVEN,
        api_key: str | None = None,
        base_url: str = "https://api.openai.com/v1",
        model_in_url: bool = False,
        model_family: str | None = None,
        http_session: aiohttp.ClientSession | None = None,
        replay_seconds: float = 30.0,
        final_timeout: float = 10.0,
        result_timeout: float = 10.0,
        rollover_margin: float = 60.0,
        heartbeat: float | None = 10.0,
        audio_format: AudioFormatName = "pcm16",
        skip_silence: bool = True,
        prewarm_ttl: float = 60.0,
        _credentials: Credentials | None = None,
    ) -> None:
        """Create the STT. Invalid combinations raise ``ValueError`` here, before any socket.

        Args:
            model: transcription model; known ones are listed in ``models.MODELS`` (any other
                name is forwarded, with conservative defaults).
            language: ISO-639-1 hint (``"en"``; case and region tags are normalized, names such
                as ``"english"`` are refused with the code to use), or None to let the model
                detect the language. Default ``"en"``, unless ``languages`` is given. Models
                that take a ``languages`` list get it as a one-entry list.
            languages: possible languages, a list of ISO-639-1 codes (gpt-live-transcribe and
                gpt-transcribe only).
            keywords: words or phrases to guide transcription (gpt-live-transcribe and
                gpt-transcribe only).
            delay: ``"minimal"`` … ``"xhigh"``: latency/accuracy trade (gpt-realtime-whisper).
            prompt: context text, for models that take one (not gpt-realtime-whisper).
            turn_detection: server VAD config for models that have one; None turns it off and
                the client commits. Default: OpenAI's server VAD where the model has one.
            noise_reduction: ``"near_field"`` or ``"far_field"``.
            logprobs: request logprobs (they become ``SpeechData.confidence``).
            vad: a VAD each stream runs to commit at end of speech and emit START/END_OF_SPEECH
                (standalone use, ``turn_detection="stt"``). Default: none; the session commits.
            api_key: defaults to ``OPENAI_API_KEY``.
            base_url: OpenAI-SDK style base URL; ``http(s)`` becomes ``ws(s)``.
            model_in_url: put ``?model=`` on the URL, only for gateways that route on it.
            model_family: the known model whose rules apply when ``model`` is an alias (a
                gateway's model name); None: ``model`` itself. Azure: see :meth:`with_azure`.
            http_session: aiohttp session to use; default: the job's, else one of our own.
            replay_seconds: most untranscribed audio kept to replay after a reconnect.
            final_timeout: how long ``end_input()`` waits for the last transcripts.
            result_timeout: a commit with no server answer for this long (or a send blocked
                this long) means a dead socket: reconnect and replay.
            rollover_margin: move to a new session this long before the server's
                ``expires_at``, at an utterance boundary.
            heartbeat: websocket ping interval in seconds; a missed pong means a dead socket
                (None: off).
            audio_format: what goes on the wire: ``"pcm16"`` (24 kHz PCM), or G.711
                ``"pcmu"`` / ``"pcma"`` at 8 kHz (6x fewer bytes; for phone calls, whose audio
                is 8 kHz already). Frames of any rate are resampled to the format's rate.
            skip_silence: audio to commit that holds no speech (by ``vad=`` when given, else a
                conservative energy gate) is cleared instead of committed: not billed, and
                nothing for the model to invent words from. See
                ``SpeechStream.skipped_silence_seconds``.
            prewarm_ttl: seconds a session opened by :meth:`prewarm` waits for a stream before
                it is closed.
            _credentials: internal; :meth:`with_azure` passes Azure's credentials here.
        """
        credentials = _credentials or BearerKey(openai_key(api_key, owner="openai_rt.STT"))
        spec = model_spec(model_family or model)
        if utils.is_given(vad) and vad is not None and turn_detection:
            raise ValueError(
                "pass either vad= (the stream commits at its end of speech) or a server "
                "turn_detection=, not both"
            )
        if not utils.is_given(turn_detection):
            use_server_vad = spec.server_vad and not (utils.is_given(vad) and vad is not None)
            turn_detection = dict(DEFAULT_SERVER_VAD) if use_server_vad else None
        if not utils.is_given(language):
            language = None if languages is not None else "en"
        opts = STTOptions(
            model=model,
            language=language or None,
            languages=as_tuple(languages, option="languages"),
            keywords=as_tuple(keywords, option="keywords"),
            delay=delay,
            prompt=prompt,
            turn_detection=turn_detection,
            noise_reduction=noise_reduction,
            logprobs=logprobs,
            base_url=base_url,
            model_in_url=model_in_url,
            replay_seconds=replay_seconds,
            final_timeout=final_timeout,
            result_timeout=result_timeout,
            rollover_margin=rollover_margin,
            heartbeat=heartbeat,
            model_family=model_family,
            audio_format=audio_format,
            skip_silence=skip_silence,
            prewarm_ttl=prewarm_ttl,
        )
        validate(opts)
        super().__init__(opts=opts, vad=vad, http_session=http_session, offline_recognize=True)
        # recognize() runs a stream, whose RECOGNITION_USAGE already reports the exact usage
        # as metrics: the base class's own recognize metrics would count the audio twice
        self._recognize_metrics_needed = False
        self._credentials = credentials
        self._prewarmer = Prewarmer(opts.prewarm_ttl)

    @classmethod
    def with_azure(
        cls,
        *,
        azure_deployment: str,
        model_family: str,
        azure_endpoint: str | None = None,
        api_version: str | None = None,
        api_key: str | None = None,
        azure_ad_token: str | None = None,
        azure_ad_token_provider: AzureADTokenProvider | None = None,
        **options: Any,
    ) -> STT:
        """An STT on an Azure OpenAI resource.

        The socket is Azure's v1 API, ``{endpoint}/openai/v1/realtime?intent=transcription``,
        unless ``api_version`` names a dated version: then it is
        ``{endpoint}/openai/realtime?api-version=…&deployment=…&intent=transcription``. The
        deployment name is sent as the transcription model, as Azure wants it
        (docs/protocol.md §1.1).

        Args:
            azure_deployment: the deployment of a transcription model on the resource.
            model_family: the model the deployment runs (``"gpt-4o-transcribe"``, …): its row
                of the model table decides which options are valid, since a deployment's
                name says nothing about its model.
            azure_endpoint: ``https://<resource>.openai.azure.com``; default:
                ``AZURE_OPENAI_ENDPOINT``.
            api_version: a dated API version, or ``"v1"``; default: ``OPENAI_API_VERSION``,
                else the v1 API.
            api_key: the resource key, sent as ``api-key``.
            azure_ad_token: a fixed Entra ID token, sent as ``Authorization: Bearer``.
            azure_ad_token_provider: a callable (sync or async) returning an Entra ID token;
                called on every connect, so reconnects and roll-overs get a fresh token.
            **options: any other option of :class:`STT` (``language``, ``delay``, ``vad``, …).

        Pass at most one of ``api_key``, ``azure_ad_token`` and ``azure_ad_token_provider``;
        with none, ``AZURE_OPENAI_AD_TOKEN`` then ``AZURE_OPENAI_API_KEY`` are read, as the
        OpenAI SDK's Azure client reads them. Raises ``ValueError`` for a missing or
        conflicting setting.
        """
        for name in ("model", "base_url", "model_in_url", "model_family", "_credentials"):
            if name in options:
                raise ValueError(
                    f"STT.with_azure() takes no {name}=: the URL and the model come from "
                    "azure_endpoint=, azure_deployment= and api_version="
                )
        endpoint = azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ValueError(
                "Azure endpoint is required: pass azure_endpoint= or set AZURE_OPENAI_ENDPOINT"
            )
        base_url = azure_base_url(
            endpoint,
            deployment=azure_deployment,
            api_version=api_version or os.environ.get("OPENAI_API_VERSION"),
        )
        credentials = _azure_credentials(api_key, azure_ad_token, azure_ad_token_provider)
        return cls(
            model=azure_deployment,
            model_family=model_family,
            base_url=base_url,
            _credentials=credentials,
            **options,
        )

    def update_options(
        self,
        *,
        model: NotGivenOr[TranscriptionModel | str] = NOT_GIVEN,
        language: NotGivenOr[str | None] = NOT_GIVEN,
        languages: NotGivenOr[Sequence[str] | None] = NOT_GIVEN,
        keywords: NotGivenOr[Sequence[str] | None] = NOT_GIVEN,
        delay: NotGivenOr[DelayValue | None] = NOT_GIVEN,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        turn_detection: NotGivenOr[TurnDetection | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[NoiseReduction | None] = NOT_GIVEN,
    ) -> None:
        """Change options for new streams and every open one (see
        ``SpeechStream.update_options``). Invalid combinations raise ``ValueError`` and change
        nothing. A new ``language`` replaces ``languages`` and the other way round."""
        self._update_options(
            {
                "model": model,
                "language": language,
                "languages": languages,
                "keywords": keywords,
                "delay": delay,
                "prompt": prompt,
                "turn_detection": turn_detection,
                "noise_reduction": noise_reduction,
            }
        )

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        """Transcribe ``buffer`` in a short-lived session: the audio (resampled and downmixed
        like a stream's) is appended, committed once, and the final transcript returned, with
        the session's usage in ``recognition_usage``. Server VAD is off for it: the one commit
        covers the whole buffer. The call's session is its own: option updates made meanwhile do
        not reach it. Failures raise the same typed ``APIError`` exceptions as a stream."""
        opts = self._opts.replace(turn_detection=None)
        if utils.is_given(language):
            opts = opts.replace(language=language or None)
        stream = self._open_stream(opts, conn_options)
        finals: list[stt.SpeechData] = []
        usage = TranscriptionUsage(audio_duration=0.0)
        request_id = ""
        async with stream:
            frames = buffer if isinstance(buffer, list) else [buffer]
            for frame in frames:
                stream.push_frame(frame)
            stream.end_input()
            async for ev in stream:
                if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                    finals.append(ev.alternatives[0])
                    request_id = request_id or ev.request_id
                elif ev.type == stt.SpeechEventType.RECOGNITION_USAGE:
                    _add_usage(usage, ev.recognition_usage)
        # times are seconds of the buffer: the one commit starts at its first byte
        offset = finals[0].start_time if finals else 0.0
        if len(finals) == 1:
            final = dataclasses.replace(
                finals[0], start_time=0.0, end_time=finals[0].end_time - offset
            )
        else:  # nothing was said (or, defensively, several items): one joined transcript
            final = stt.SpeechData(
                language=LanguageCode(opts.session_config().hint_language),
                text=" ".join(f.text for f in finals),
                start_time=0.0,
                end_time=finals[-1].end_time - offset if finals else 0.0,
            )
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
            request_id=request_id,
            alternatives=[final],
            recognition_usage=usage,
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechStream:
        """Open a streaming recognition (see :class:`SpeechStream`). ``language`` overrides
        the STT's language hint for this stream only."""
        opts = self._opts
        if utils.is_given(language):
            opts = opts.replace(language=language or None)
        stream = self._open_stream(
            opts,
            conn_options,
            vad=self._vad,
            warm=self._prewarmer.take(connection_url(opts), opts.session_config()),
        )
        self._streams.add(stream)  # option updates and aclose() reach it
        return stream

    def _open_stream(
        self,
        opts: STTOptions,
        conn_options: APIConnectOptions,
        *,
        vad: vad_mod.VAD | None = None,
        warm: asyncio.Task[WarmSession | None] | None = None,
    ) -> SpeechStream:
        return SpeechStream(
            stt=self,
            opts=opts,
            conn_options=conn_options,
            credentials=self._credentials,
            http_session=self._ensure_session(),
            vad=vad,
            warm=warm,
        )

    def prewarm(self) -> None:
        """Open and configure a transcription session now, for the next :meth:`stream` to take
        over: its first audio then goes to a ready session instead of waiting for the
        handshake and the configuration round trip. LiveKit calls this when an agent activity
        starts. Does nothing while a stream of this STT is open (its session is warm) or a
        prewarmed session waits; a prewarmed session no stream takes within ``prewarm_ttl``
        seconds is closed. Needs a running event loop."""
        if self._prewarmer.pending or any(True for _ in self._streams):
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            logger.debug("prewarm() outside an event loop: nothing to do")
            return
        opts = self._opts
        url = connection_url(opts)
        http = self._ensure_session()
        config = opts.session_config()
        self._prewarmer.start(
            url,
            config,
            lambda: open_warm(
                http,
                url,
                credentials=self._credentials,
                config=config,
                timeout=DEFAULT_API_CONNECT_OPTIONS.timeout,
                heartbeat=opts.heartbeat,
            ),
        )

    async def aclose(self) -> None:
        """Close the streams still open, the prewarmed session, and the aiohttp session this
        STT created, if any."""
        await self._prewarmer.aclose()
        await super().aclose()


def _add_usage(total: TranscriptionUsage, usage: stt.RecognitionUsage | None) -> None:
    """Add one RECOGNITION_USAGE event's figures to ``total``."""
    if usage is None:
        return
    total.audio_duration += usage.audio_duration
    total.input_tokens += usage.input_tokens
    total.output_tokens += usage.output_tokens
    if isinstance(usage, TranscriptionUsage):
        total.audio_tokens += usage.audio_tokens
        total.text_tokens += usage.text_tokens


def _azure_credentials(
    api_key: str | None,
    azure_ad_token: str | None,
    azure_ad_token_provider: AzureADTokenProvider | None,
) -> Credentials:
    """One credential, explicit or from the environment, as the SDK's Azure client picks it."""
    given = [v is not None for v in (api_key, azure_ad_token, azure_ad_token_provider)]
    if sum(given) > 1:
        raise ValueError("pass only one of api_key=, azure_ad_token= and azure_ad_token_provider=")
    if azure_ad_token_provider is not None:
        return TokenProvider(azure_ad_token_provider)
    if sum(given) == 0:
        azure_ad_token = os.environ.get("AZURE_OPENAI_AD_TOKEN")
        if azure_ad_token is None:
            api_key = os.environ.get("AZURE_OPENAI_API_KEY")
    if azure_ad_token is not None:
        return BearerKey(azure_ad_token, kind="azure_ad_token")
    if api_key is not None:
        return AzureKey(api_key)
    raise ValueError(
        "Azure credentials are required: pass api_key=, azure_ad_token= or "
        "azure_ad_token_provider=, or set AZURE_OPENAI_API_KEY or AZURE_OPENAI_AD_TOKEN"
    )
