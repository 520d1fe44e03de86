"""The public ``TranslationSTT``: live translation as a LiveKit STT, with validated options."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
    vad as vad_mod,
)
from livekit.agents.utils import is_given

from .log import logger
from .models import MODELS, NOISE_REDUCTION_VALUES
from .options import SessionTiming, check_number, check_timing
from .stt_base import RealtimeSTT, openai_key
from .translation_protocol import TranslationConfig
from .translation_stream import TranslationStream
from .urls import check_api_key, translation_url

DEFAULT_TRANSLATION_MODEL = "gpt-realtime-translate"

_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")
"""A BCP-47 style language code: ISO 639 letters, optional subtags (``es``, ``pt-BR``)."""


@dataclass(frozen=True)
class TranslationOptions(SessionTiming):
    """Validated options of a :class:`TranslationSTT` (and of each stream it opens)."""

    model: str
    target_language: str
    source_transcription: str | None
    noise_reduction: str | None
    base_url: str
    replay_seconds: float
    segment_timeout: float
    final_timeout: float
    result_timeout: float
    rollover_margin: float
    heartbeat: float | None

    def replace(self, **changes: NotGivenOr[Any]) -> TranslationOptions:
        """A validated copy with the given (non-``NOT_GIVEN``) fields changed."""
        new = dataclasses.replace(self, **{k: v for k, v in changes.items() if is_given(v)})
        validate_translation(new)
        return new

    def config(self) -> TranslationConfig:
        """What ``session.update`` sends."""
        return TranslationConfig(
            model=self.model,
            target_language=self.target_language,
            source_transcription=self.source_transcription,
            noise_reduction=self.noise_reduction,
        )


_warned_unknown: set[str] = set()


def validate_translation(opts: TranslationOptions) -> None:
    """Raise ``ValueError`` naming the option to change when the combination is invalid."""
    if not opts.model:
        raise ValueError(
            f"model must be a translation model name, e.g. {DEFAULT_TRANSLATION_MODEL!r}"
        )
    spec = MODELS.get(opts.model)
    if spec is not None and not spec.translation:
        raise ValueError(
            f"{opts.model} is a transcription model: TranslationSTT takes a translation model "
            f"such as {DEFAULT_TRANSLATION_MODEL!r} (for transcription use openai_rt.STT)"
        )
    if spec is None and opts.model not in _warned_unknown:
        _warned_unknown.add(opts.model)
        logger.warning(
            "unknown translation model %r: forwarded unchecked, no price",
            opts.model,
            extra={"model": opts.model},
        )
    if not isinstance(opts.target_language, str) or not _LANGUAGE_CODE.fullmatch(
        opts.target_language
    ):
        raise ValueError(
            "target_language must be a language code such as 'es', 'en' or 'pt-BR'; "
            f"got {opts.target_language!r}"
        )
    if opts.source_transcription is not None:
        known = [name for name, s in MODELS.items() if not s.translation]
        if opts.source_transcription not in known:
            raise ValueError(
                "source_transcription must be None or a transcription model for the source "
                f"transcript, one of {', '.join(known)}; got {opts.source_transcription!r}"
            )
    if opts.noise_reduction is not None and opts.noise_reduction not in NOISE_REDUCTION_VALUES:
        raise ValueError(
            f"noise_reduction must be None, 'near_field' or 'far_field'; got {opts.noise_reduction!r}"
        )
    check_number("replay_seconds", opts.replay_seconds, minimum=0.0)
    check_number("segment_timeout", opts.segment_timeout, minimum=0.0, inclusive=False)
    check_timing(opts)
    translation_url(opts.base_url, model=opts.model)  # raises ValueError for a bad base_url


class TranslationSTT(RealtimeSTT[TranslationOptions]):
    """Live translation over OpenAI's Realtime translation sessions (``gpt-realtime-translate``),
    as a LiveKit STT.

    Each stream sends its audio to a translation session and emits the translation as speech
    events: an INTERIM_TRANSCRIPT on every translated-text delta (the whole segment so far) and a
    FINAL_TRANSCRIPT per segment, with ``language`` set to the target language and the
    framework's translation fields filled (``target_languages``/``target_texts``, and
    ``source_texts`` when ``source_transcription`` is set). Segments end where a transcription
    stream would commit: at ``flush()`` (inside an ``AgentSession`` its VAD calls it: this STT
    declares ``manual_flush``), at the stream's own VAD end of speech (``vad=``), and at the end
    of input. The translated speech is on ``stream.translated_audio()``.

    So ``AgentSession(stt=openai_rt.TranslationSTT(target_language="en"), ...)`` lets an
    English-speaking agent serve a caller who speaks any language.
    """

    def __init__(
        self,
        *,
        target_language: str = "es",
        model: str = DEFAULT_TRANSLATION_MODEL,
        source_transcription: str | None = None,
        noise_reduction: str | None = None,
        vad: NotGivenOr[vad_mod.VAD | None] = NOT_GIVEN,
        api_key: str | None = None,
        base_url: str = "https://api.openai.com/v1",
        http_session: aiohttp.ClientSession | None = None,
        replay_seconds: float = 30.0,
        segment_timeout: float = 2.0,
        final_timeout: float = 10.0,
        result_timeout: float = 10.0,
        rollover_margin: float = 60.0,
        heartbeat: float | None = 10.0,
    ) -> None:
        """Create the STT. Invalid options raise ``ValueError`` here, before any socket.

        Args:
            target_language: the language to translate into (``audio.output.language``), e.g.
                ``"es"``.
            model: the translation model.
            source_transcription: a transcription model (e.g. ``"gpt-realtime-whisper"``) for
                the source-language transcript, which finals carry in ``source_texts``; None:
                off.
            noise_reduction: ``"near_field"`` or ``"far_field"``.
            vad: a VAD each stream runs to end segments at its end of speech and emit
                START/END_OF_SPEECH (standalone use). Default: none; ``flush()`` ends segments.
            api_key: defaults to ``OPENAI_API_KEY``.
            base_url: OpenAI-SDK style base URL; ``http(s)`` becomes ``ws(s)``.
            http_session: aiohttp session to use; default: the job's, else one of our own.
            replay_seconds: most audio whose translation has not arrived, kept to replay after a
                lost socket.
            segment_timeout: longest a segment's final waits for the translation of its audio
                after its last frame was sent.
            final_timeout: how long ``end_input()`` waits for the session to close.
            result_timeout: a send blocked this long means a dead socket: reconnect and replay.
            rollover_margin: move to a new session this long before the server's
                ``expires_at``, at a pause.
            heartbeat: websocket ping interval in seconds; a missed pong means a dead socket
                (None: off).
        """
        resolved_key = openai_key(api_key, owner="openai_rt.TranslationSTT")
        check_api_key(resolved_key)
        opts = TranslationOptions(
            model=model,
            target_language=target_language,
            source_transcription=source_transcription,
            noise_reduction=noise_reduction,
            base_url=base_url,
            replay_seconds=replay_seconds,
            segment_timeout=segment_timeout,
            final_timeout=final_timeout,
            result_timeout=result_timeout,
            rollover_margin=rollover_margin,
            heartbeat=heartbeat,
        )
        validate_translation(opts)
        super().__init__(opts=opts, vad=vad, http_session=http_session, offline_recognize=False)
        self._api_key = resolved_key

    def update_options(
        self,
        *,
        target_language: NotGivenOr[str] = NOT_GIVEN,
        source_transcription: NotGivenOr[str | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[str | None] = NOT_GIVEN,
    ) -> None:
        """Change options for new streams and every open one, live (a ``session.update``:
        docs/protocol.md §5.2). Invalid values raise ``ValueError`` and change nothing."""
        self._update_options(
            {
                "target_language": target_language,
                "source_transcription": source_transcription,
                "noise_reduction": noise_reduction,
            }
        )

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> TranslationStream:
        """Open a streaming translation (see :class:`TranslationStream`); ``language``, when
        given, is this stream's target language."""
        opts = self._opts
        if is_given(language):
            opts = opts.replace(target_language=language)
        stream = TranslationStream(
            stt=self,
            opts=opts,
            conn_options=conn_options,
            api_key=self._api_key,
            http_session=self._ensure_session(),
            vad=self._vad,
        )
        self._streams.add(stream)
        return stream
