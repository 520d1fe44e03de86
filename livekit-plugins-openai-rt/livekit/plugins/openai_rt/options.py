"""Validated STT options: one frozen record, checked once, shared by the STT and its streams."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from livekit.agents import NotGivenOr
from livekit.agents.utils import is_given

from .connection import realtime_url
from .models import DELAY_VALUES, NOISE_REDUCTION_VALUES, ModelSpec, model_spec
from .protocol import TURN_DETECTION_TYPES, SessionConfig, TurnDetection

DEFAULT_SERVER_VAD: TurnDetection = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
"""Server VAD used when a model has one and ``turn_detection`` is not given (OpenAI's own
defaults, §3.4)."""


@dataclass(frozen=True)
class STTOptions:
    """Validated options of an :class:`STT` (and of each stream it opens)."""

    model: str
    language: str | None
    delay: str | None
    prompt: str | None
    turn_detection: TurnDetection | None
    noise_reduction: str | None
    logprobs: bool
    base_url: str
    model_in_url: bool
    replay_seconds: float
    final_timeout: float
    result_timeout: float
    rollover_margin: float
    heartbeat: float | None

    @property
    def spec(self) -> ModelSpec:
        """The model's row in the model table."""
        return model_spec(self.model)

    @property
    def server_commits(self) -> bool:
        """The server's VAD commits turns (else the client commits on flush / its VAD)."""
        return self.turn_detection is not None

    def replace(self, **changes: NotGivenOr[Any]) -> STTOptions:
        """A validated copy with the given (non-``NOT_GIVEN``) fields changed."""
        new = dataclasses.replace(self, **{k: v for k, v in changes.items() if is_given(v)})
        validate(new)
        return new

    def session_config(self) -> SessionConfig:
        """What ``session.update`` sends."""
        return SessionConfig(
            model=self.model,
            language=self.language,
            delay=self.delay,
            prompt=self.prompt,
            turn_detection=self.turn_detection,
            noise_reduction=self.noise_reduction,
            logprobs=self.logprobs,
        )


def validate(opts: STTOptions) -> None:
    """Raise ``ValueError`` naming the option to change when the combination is invalid."""
    spec = opts.spec
    if not opts.model:
        raise ValueError("model must be a non-empty model name, e.g. 'gpt-realtime-whisper'")
    if opts.delay is not None:
        if opts.delay not in DELAY_VALUES:
            raise ValueError(f"delay must be one of {', '.join(DELAY_VALUES)}; got {opts.delay!r}")
        if not spec.delay:
            raise ValueError(
                f"{opts.model} does not take delay= (only gpt-realtime-whisper does); remove delay="
            )
    if opts.prompt is not None and not spec.prompt:
        raise ValueError(
            f"{opts.model} does not accept a prompt; remove prompt= "
            "(for gpt-realtime-whisper, delay= trades latency for accuracy)"
        )
    if opts.turn_detection is not None:
        td_type = opts.turn_detection.get("type")
        if td_type not in TURN_DETECTION_TYPES:
            raise ValueError(
                f"turn_detection must be None or a dict with type in {TURN_DETECTION_TYPES}; "
                f"got type {td_type!r}"
            )
        if not spec.server_vad:
            raise ValueError(
                f"{opts.model} has no server VAD: pass turn_detection=None (the default for it) "
                "and let the session's VAD, flush() or vad= commit the audio"
            )
    if opts.noise_reduction is not None and opts.noise_reduction not in NOISE_REDUCTION_VALUES:
        raise ValueError(
            f"noise_reduction must be None, 'near_field' or 'far_field'; got {opts.noise_reduction!r}"
        )
    if opts.logprobs and not spec.logprobs:
        raise ValueError(
            f"{opts.model} does not report logprobs; remove logprobs=True "
            "(gpt-4o-transcribe and gpt-4o-mini-transcribe do)"
        )
    if opts.replay_seconds < 0:
        raise ValueError(f"replay_seconds must be >= 0; got {opts.replay_seconds}")
    for name in ("final_timeout", "result_timeout"):
        if getattr(opts, name) <= 0:
            raise ValueError(f"{name} must be > 0 seconds; got {getattr(opts, name)}")
    if opts.rollover_margin < 0:
        raise ValueError(f"rollover_margin must be >= 0 seconds; got {opts.rollover_margin}")
    if opts.heartbeat is not None and opts.heartbeat <= 0:
        raise ValueError(f"heartbeat must be None or > 0 seconds; got {opts.heartbeat}")
    realtime_url(opts.base_url, model=opts.model, model_in_url=opts.model_in_url)
