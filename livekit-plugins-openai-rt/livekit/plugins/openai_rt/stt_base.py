"""``RealtimeSTT``: what the public ``STT`` and ``TranslationSTT`` share.

The validated options and their updates (fanned out to every open stream), the registry of open
streams, the aiohttp session (the job's, else one of its own, closed by :meth:`aclose`), the
host it talks to, the OpenAI key from the environment, and the warning about a key sent in
plain text.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

import aiohttp
from typing_extensions import Self

from livekit.agents import NOT_GIVEN, APIConnectOptions, NotGivenOr, stt, utils, vad as vad_mod
from livekit.agents.utils import AudioBuffer

from .log import logger
from .urls import is_loopback_host, is_plaintext


class STTOptionsLike(Protocol):
    """What :class:`RealtimeSTT` reads of its options."""

    @property
    def model(self) -> str:
        """The model name."""
        ...

    @property
    def base_url(self) -> str:
        """The OpenAI-SDK style base URL."""
        ...

    def replace(self, **changes: NotGivenOr[Any]) -> Self:
        """A validated copy with the given fields changed (``ValueError`` when invalid)."""
        ...


_OptionsT = TypeVar("_OptionsT", bound=STTOptionsLike)


class RealtimeSTT(stt.STT, Generic[_OptionsT]):
    """A LiveKit STT of Realtime sessions: options, open streams and the aiohttp session.

    Args:
        opts: the validated options.
        vad: a VAD each stream runs (``NOT_GIVEN`` or None: none).
        http_session: aiohttp session to use; None: the job's, else one of its own.
        offline_recognize: whether ``recognize()`` works (the capability LiveKit reads).
    """

    def __init__(
        self,
        *,
        opts: _OptionsT,
        vad: NotGivenOr[vad_mod.VAD | None],
        http_session: aiohttp.ClientSession | None,
        offline_recognize: bool,
    ) -> None:
        warn_if_plaintext(opts.base_url)
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True,
                interim_results=True,
                offline_recognize=offline_recognize,
                manual_flush=True,
            )
        )
        self._opts = opts
        self._vad = vad if utils.is_given(vad) else None
        self._session = http_session
        self._owned_session: aiohttp.ClientSession | None = None
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def model(self) -> str:
        """The model of the STT's sessions."""
        return self._opts.model

    @property
    def provider(self) -> str:
        """The host the STT talks to (``api.openai.com`` by default)."""
        return urlsplit(self._opts.base_url).netloc

    @property
    def options(self) -> _OptionsT:
        """The current, validated options."""
        return self._opts

    def _update_options(self, changes: dict[str, NotGivenOr[Any]]) -> None:
        """Apply ``changes`` to the options (``ValueError`` changes nothing), then to every
        open stream."""
        self._opts = self._opts.replace(**changes)
        for stream in list(self._streams):
            stream.update_options(**changes)

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        """An STT without ``offline_recognize`` is streaming-only."""
        raise NotImplementedError(
            f"openai_rt.{type(self).__name__} is streaming-only (offline_recognize=False): "
            "use stt.stream()"
        )

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

    async def aclose(self) -> None:
        """Close the streams still open and the aiohttp session this STT created, if any."""
        for stream in list(self._streams):
            await stream.aclose()
        if self._owned_session is not None:
            await self._owned_session.close()
            self._owned_session = None
            self._session = None


def openai_key(api_key: str | None, *, owner: str) -> str:
    """``api_key``, else ``OPENAI_API_KEY``; ``ValueError`` saying how to give one to ``owner``
    (the class the user is creating) when there is neither."""
    resolved = api_key or os.environ.get("OPENAI_API_KEY")
    if not resolved:
        raise ValueError(
            f"OpenAI API key is required: set OPENAI_API_KEY or pass api_key= to {owner}"
        )
    return resolved


_warned_plaintext: set[str] = set()


def warn_if_plaintext(base_url: str) -> None:
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
