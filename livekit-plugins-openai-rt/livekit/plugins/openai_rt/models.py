"""The model table: what each realtime transcription model accepts, how it reports, what it costs.

Rules are data: every per-model difference the plugin cares about lives in :data:`MODELS`, and the
rest of the package asks :func:`model_spec` instead of comparing model names. Evidence for each row
is in ``docs/protocol.md`` (§2.3 model matrix, §6 prices).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from .log import logger

DelayValue = Literal["minimal", "low", "medium", "high", "xhigh"]
"""Allowed values of ``audio.input.transcription.delay`` (gpt-realtime-whisper only)."""

DELAY_VALUES: tuple[DelayValue, ...] = ("minimal", "low", "medium", "high", "xhigh")

NoiseReduction = Literal["near_field", "far_field"]
"""Allowed values of ``audio.input.noise_reduction.type``."""

NOISE_REDUCTION_VALUES: tuple[NoiseReduction, ...] = ("near_field", "far_field")

UsageKind = Literal["duration", "tokens"]


@dataclass(frozen=True)
class ModelSpec:
    """Capabilities and price of one transcription model.

    Attributes:
        name: the model id sent in ``session.update``.
        known: False for a model name the table does not list (conservative defaults).
        server_vad: the model accepts a non-null ``turn_detection``.
        prompt: the model accepts ``transcription.prompt``.
        delay: the model accepts ``transcription.delay``.
        streams_before_commit: deltas arrive while audio is appended, before any commit.
        logprobs: the server can attach logprobs (``include``) to its transcription events.
        usage_kind: the ``usage.type`` the server reports on ``…completed``.
        usd_per_minute: price per minute of audio, for duration-billed models.
        usd_per_million_input_tokens: input token price, for token-billed models.
        usd_per_million_output_tokens: output token price, for token-billed models.
        translation: a translation model (``/v1/realtime/translations``, ``TranslationSTT``),
            not a transcription one.
    """

    name: str
    known: bool = True
    server_vad: bool = False
    prompt: bool = False
    delay: bool = False
    streams_before_commit: bool = False
    logprobs: bool = False
    usage_kind: UsageKind = "duration"
    usd_per_minute: float | None = None
    usd_per_million_input_tokens: float | None = None
    usd_per_million_output_tokens: float | None = None
    translation: bool = False


DEFAULT_MODEL = "gpt-realtime-whisper"

MODELS: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # no server VAD, no prompt, takes delay, streams while audio arrives, $0.017/min
        # (OpenAI API reference; SDK audio_transcription.py; OpenAI model page)
        ModelSpec(
            "gpt-realtime-whisper", delay=True, streams_before_commit=True, usd_per_minute=0.017
        ),
        # turn_detection rejected (observed), prompt accepted (observed), $0.017/min (model page)
        ModelSpec(
            "gpt-live-transcribe", prompt=True, streams_before_commit=True, usd_per_minute=0.017
        ),
        # built for committed turns; $0.0045/min (model page)
        ModelSpec("gpt-transcribe", prompt=True, usd_per_minute=0.0045),
        # server VAD, free-text prompt, logprobs, token-billed (SDK; model pages)
        ModelSpec(
            "gpt-4o-transcribe",
            server_vad=True,
            prompt=True,
            logprobs=True,
            usage_kind="tokens",
            usd_per_million_input_tokens=2.5,
            usd_per_million_output_tokens=10.0,
        ),
        ModelSpec(
            "gpt-4o-mini-transcribe",
            server_vad=True,
            prompt=True,
            logprobs=True,
            usage_kind="tokens",
            usd_per_million_input_tokens=1.25,
            usd_per_million_output_tokens=5.0,
        ),
        ModelSpec(
            "gpt-4o-mini-transcribe-2025-12-15",
            server_vad=True,
            prompt=True,
            logprobs=True,
            usage_kind="tokens",
            usd_per_million_input_tokens=1.25,
            usd_per_million_output_tokens=5.0,
        ),
        # one delta with the whole text after the commit; $0.006/min (third-party figure)
        ModelSpec("whisper-1", server_vad=True, prompt=True, usd_per_minute=0.006),
        # no prompt for diarization models (REST docs); price unknown
        ModelSpec("gpt-4o-transcribe-diarize", server_vad=True, usage_kind="tokens"),
        # translation only, on its own endpoint (§5); $0.034 per minute of audio (OpenAI model
        # page developers.openai.com/api/docs/models/gpt-realtime-translate, read 2026, §6)
        ModelSpec("gpt-realtime-translate", translation=True, usd_per_minute=0.034),
    )
}

_warned_unknown: set[str] = set()


def model_spec(model: str) -> ModelSpec:
    """The table row for ``model``, or conservative defaults (and one warning) for an unknown one.

    An unknown model gets no server VAD (the client commits, which works on every model), and the
    server decides whether it takes a prompt or a delay: the plugin forwards what it is given.
    """
    spec = MODELS.get(model)
    if spec is not None:
        return spec
    if model not in _warned_unknown:
        _warned_unknown.add(model)
        logger.log(
            logging.WARNING,
            "unknown transcription model %r: using conservative defaults (client-side commits, "
            "options forwarded unchecked, no price)",
            model,
            extra={"model": model},
        )
    return ModelSpec(model, known=False, prompt=True, delay=True)


def estimate_cost_usd(
    model: str,
    *,
    audio_seconds: float = 0.0,
    input_tokens: int = 0,
    output_tokens: int = 0,
) -> float | None:
    """Estimated price in USD of transcribing with ``model``, or None when the price is unknown.

    Duration-billed models are priced by ``audio_seconds``; token-billed ones by tokens.
    """
    spec = model_spec(model)
    if spec.usd_per_minute is not None:
        return audio_seconds / 60.0 * spec.usd_per_minute
    if spec.usd_per_million_input_tokens is not None:
        out_price = spec.usd_per_million_output_tokens or 0.0
        return (
            input_tokens * spec.usd_per_million_input_tokens + output_tokens * out_price
        ) / 1_000_000
    return None
