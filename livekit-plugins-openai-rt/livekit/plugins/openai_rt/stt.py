"""The public ``STT``: options, validation, live streams."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import weakref
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
    stt,
    utils,
    vad as vad_mod,
)
from livekit.agents.utils import AudioBuffer

from .log import logger
from .models import DEFAULT_MODEL, model_spec
from .options import DEFAULT_SERVER_VAD, STTOptions, validate
from .prewarm import Prewarmer, open_warm
from .protocol import AudioFormatName, TurnDetection, check_api_key, is_loopback_host, is_plaintext
from .stream import SpeechStream, connection_target


class STT(stt.STT):
    """Streaming speech-to-text over OpenAI's Realtime API in transcription mode.

    ``gpt-realtime-whisper`` (the default) has no server VAD: something must commit the audio
    buffer to get a final transcript. Inside an ``AgentSession`` the session's VAD / turn
    detector does, through ``flush()`` (this STT declares ``manual_flush``). Standalone, pass
    ``vad=`` to let each stream run a VAD of its own, or call ``flush()`` yourself.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        language: str | None = "en",
        delay: str | None = None,
        prompt: str | None = None,
        turn_detection: NotGivenOr[TurnDetection | None] = NOT_GIVEN,
        noise_reduction: str | None = None,
        logprobs: bool = False,
        vad: NotGivenOr[vad_mod.VAD | None] = NOT_GIVEN,
        api_key: str | None = None,
        base_url: str = "https://api.openai.com/v1",
        model_in_url: bool = False,
        http_session: aiohttp.ClientSession | None = None,
        replay_seconds: float = 30.0,
        final_timeout: float = 10.0,
        result_timeout: float = 10.0,
        rollover_margin: float = 60.0,
        heartbeat: float | None = 10.0,
        audio_format: AudioFormatName = "pcm16",
        skip_silence: bool = True,
        prewarm_ttl: float = 60.0,
    ) -> None:
        """Create the STT. Invalid combinations raise ``ValueError`` here, before any socket.

        Args:
            model: transcription model; known ones are listed in ``models.MODELS``.
            language: ISO-639-1 hint, or None to let the model detect the language.
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
        """
        resolved_key = api_key or os.environ.get("OPENAI_API_KEY")
        if not resolved_key:
            raise ValueError(
                "OpenAI API key is required: set OPENAI_API_KEY or pass api_key= to openai_rt.STT"
            )
        check_api_key(resolved_key)
        spec = model_spec(model)
        if utils.is_given(vad) and vad is not None and turn_detection:
            raise ValueError(
                "pass either vad= (the stream commits at its end of speech) or a server "
                "turn_detection=, not both"
            )
        if not utils.is_given(turn_detection):
            use_server_vad = spec.server_vad and not (utils.is_given(vad) and vad is not None)
            turn_detection = dict(DEFAULT_SERVER_VAD) if use_server_vad else None
        opts = STTOptions(
            model=model,
            language=language or None,
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
            audio_format=audio_format,
            skip_silence=skip_silence,
            prewarm_ttl=prewarm_ttl,
        )
        validate(opts)
        _warn_if_plaintext(base_url)
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True,
                interim_results=True,
                offline_recognize=False,
                manual_flush=True,
            )
        )
        self._opts = opts
        self._api_key = resolved_key
        self._vad = vad if utils.is_given(vad) else None
        self._session = http_session
        self._owned_session: aiohttp.ClientSession | None = None
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()
        self._prewarmer = Prewarmer(opts.prewarm_ttl)

    @property
    def model(self) -> str:
        """The transcription model."""
        return self._opts.model

    @property
    def provider(self) -> str:
        """The host the STT talks to (``api.openai.com`` by default)."""
        return urlsplit(self._opts.base_url).netloc

    @property
    def options(self) -> STTOptions:
        """The current, validated options."""
        return self._opts

    def update_options(
        self,
        *,
        model: NotGivenOr[str] = NOT_GIVEN,
        language: NotGivenOr[str | None] = NOT_GIVEN,
        delay: NotGivenOr[str | None] = NOT_GIVEN,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        turn_detection: NotGivenOr[TurnDetection | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[str | None] = NOT_GIVEN,
    ) -> None:
        """Change options for new streams and every open one (see
        ``SpeechStream.update_options``). Invalid combinations raise ``ValueError`` and change
        nothing."""
        changes: dict[str, NotGivenOr[object]] = {
            "model": model,
            "language": language,
            "delay": delay,
            "prompt": prompt,
            "turn_detection": turn_detection,
            "noise_reduction": noise_reduction,
        }
        new = self._opts.replace(**changes)
        self._opts = new
        for stream in list(self._streams):
            stream.update_options(**changes)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is not None:
            return self._session
        try:
            self._session = utils.http_context.http_session()
        except RuntimeError:
            # outside a LiveKit job (scripts, tests): own a session, closed by aclose()
            self._owned_session = aiohttp.ClientSession()
            self._session = self._owned_session
        return self._session

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        raise NotImplementedError(
            "openai_rt.STT is streaming-only (offline_recognize=False): use stt.stream()"
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechStream:
        """Open a streaming recognition (see :class:`SpeechStream`)."""
        opts = self._opts
        if utils.is_given(language):
            opts = dataclasses.replace(opts, language=language or None)
        url, _ = connection_target(opts, self._api_key)
        stream = SpeechStream(
            stt=self,
            opts=opts,
            conn_options=conn_options,
            api_key=self._api_key,
            http_session=self._ensure_session(),
            vad=self._vad,
            warm=self._prewarmer.take(url, opts.session_config()),
        )
        self._streams.add(stream)
        return stream

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
        url, headers = connection_target(opts, self._api_key)
        http = self._ensure_session()
        config = opts.session_config()
        self._prewarmer.start(
            url,
            config,
            lambda: open_warm(
                http,
                url,
                headers=headers,
                config=config,
                timeout=DEFAULT_API_CONNECT_OPTIONS.timeout,
                heartbeat=opts.heartbeat,
            ),
        )

    async def aclose(self) -> None:
        """Close the streams still open, the prewarmed session, and the aiohttp session this
        STT created, if any."""
        await self._prewarmer.aclose()
        for stream in list(self._streams):
            await stream.aclose()
        if self._owned_session is not None:
            await self._owned_session.close()
            self._owned_session = None
            self._session = None


_warned_plaintext: set[str] = set()


def _warn_if_plaintext(base_url: str) -> None:
    """Warn once per host when the key would travel unencrypted to another machine."""
    if not is_plaintext(base_url) or is_loopback_host(base_url):
        return
    host = urlsplit(base_url).netloc
    if host in _warned_plaintext:
        return
    _warned_plaintext.add(host)
    logger.warning(
        "base_url %s is plain http/ws: the API key will cross the network unencrypted; "
        "use https:// unless the link is private",
        f"{urlsplit(base_url).scheme}://{host}",
        extra={"host": host},
    )
