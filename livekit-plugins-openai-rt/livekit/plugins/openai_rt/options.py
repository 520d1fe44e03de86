"""Validated STT options: one frozen record, checked once, shared by the STT and its streams."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from livekit.agents import NotGivenOr
from livekit.agents.utils import is_given

from .formats import AUDIO_FORMATS, AudioFormat, AudioFormatName
from .language import normalize_language, normalize_languages
from .models import (
    DELAY_VALUES,
    MODELS,
    NOISE_REDUCTION_VALUES,
    ModelSpec,
    model_spec,
    warn_if_deprecated,
)
from .protocol import TURN_DETECTION_TYPES, SessionConfig, TurnDetection
from .session import Timers
from .urls import realtime_url

DEFAULT_SERVER_VAD: TurnDetection = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
"""Server VAD used when a model has one and ``turn_detection`` is not given (OpenAI's own
defaults, §3.4)."""


class SessionTiming:
    """The timing options of both STTs' records (:class:`STTOptions`,
    ``TranslationOptions``): the replay bound, the watchdogs, the roll-over margin and the
    heartbeat, and the session timers they make."""

    replay_seconds: float
    final_timeout: float
    result_timeout: float
    rollover_margin: float
    heartbeat: float | None

    def timers(self, *, configure_timeout: float) -> Timers:
        """The session's timers (``configure_timeout`` comes from the connect options)."""
        return Timers(
            configure_timeout=configure_timeout,
            result_timeout=self.result_timeout,
            final_timeout=self.final_timeout,
            rollover_margin=self.rollover_margin,
        )


@dataclass(frozen=True)
class STTOptions(SessionTiming):
    """Validated options of an :class:`STT` (and of each stream it opens).

    Language hints are normalized when the record is made: codes lowered, regional tags cut to
    their language (``"EN-us"`` is ``"en"``), ``languages`` without repeats, ``keywords`` as a
    tuple; a value that is not a language code raises ``ValueError`` with the code to use.
    ``language`` and ``languages`` are never both set.
    """

    model: str
    language: str | None
    languages: tuple[str, ...] | None
    keywords: tuple[str, ...] | None
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
    model_family: str | None = None
    """The model whose rules apply when ``model`` is an alias (an Azure deployment name, a
    gateway's model name); None: ``model`` itself."""
    audio_format: AudioFormatName = "pcm16"
    skip_silence: bool = True
    prewarm_ttl: float = 60.0

    def __post_init__(self) -> None:
        language = normalize_language(self.language) if self.language else None
        languages = normalize_languages(self.languages) if self.languages is not None else None
        if language is not None and languages is not None:
            raise ValueError(
                "pass either language= (one code) or languages= (a list), not both; "
                f"e.g. languages={[language, *(c for c in languages if c != language)]!r}"
            )
        object.__setattr__(self, "language", language)
        object.__setattr__(self, "languages", languages)
        object.__setattr__(self, "keywords", _keywords(self.keywords))

    @property
    def spec(self) -> ModelSpec:
        """The model's row in the model table (the family's, for an alias)."""
        return model_spec(self.model_family or self.model)

    @property
    def format(self) -> AudioFormat:
        """The input audio format (what goes on the wire, and the core's units)."""
        return AUDIO_FORMATS[self.audio_format]

    @property
    def server_commits(self) -> bool:
        """The server's VAD commits turns (else the client commits on flush / its VAD)."""
        return self.turn_detection is not None

    def replace(self, **changes: NotGivenOr[Any]) -> STTOptions:
        """A validated copy with the given (non-``NOT_GIVEN``) fields changed.

        A new ``language`` replaces the ``languages`` list and the other way round (the later
        hint wins), unless both are given.
        """
        model = changes.get("model")
        if self.model_family is not None and is_given(model) and model != self.model:
            raise ValueError(
                f"this STT is bound to {self.model!r} (rules of {self.model_family}); "
                "create another STT for another deployment or model name"
            )
        given = {k: v for k, v in changes.items() if is_given(v)}
        for name in ("languages", "keywords"):
            if name in given:
                given[name] = as_tuple(given[name], option=name)
        if "language" in given and "languages" not in given:
            given["languages"] = None
        elif "languages" in given and "language" not in given:
            given["language"] = None
        new = dataclasses.replace(self, **given)
        validate(new)
        return new

    def needs_new_session(self, old: STTOptions) -> bool:
        """Whether moving from ``old`` to these options takes a new session: a new model, or a
        transcription field cleared, which a ``session.update`` cannot do (it only sets fields;
        ``languages`` can only be replaced, docs/protocol.md §2.2)."""
        before, after = old.session_config(), self.session_config()
        return before.model != after.model or any(
            getattr(before, name) is not None and getattr(after, name) is None
            for name in ("language", "languages", "keywords", "prompt", "delay")
        )

    def session_config(self) -> SessionConfig:
        """What ``session.update`` sends. A model that takes a ``languages`` list never gets
        the singular ``language`` (refused, docs/protocol.md §2.2): ``language="en"`` goes as
        ``languages: ["en"]``."""
        language, languages = self.language, self.languages
        if self.spec.language_hint == "languages" and language is not None:
            languages = (language,)
            language = None
        return SessionConfig(
            model=self.model,
            language=language,
            languages=languages,
            keywords=self.keywords,
            delay=self.delay,
            prompt=self.prompt,
            turn_detection=self.turn_detection,
            noise_reduction=self.noise_reduction,
            logprobs=self.logprobs,
            model_family=self.model_family,
            audio_format=self.format,
        )


def validate(opts: STTOptions) -> None:
    """Raise ``ValueError`` naming the option to change when the combination is invalid."""
    if not opts.model:
        raise ValueError("model must be a non-empty model name, e.g. 'gpt-realtime-whisper'")
    if opts.model_family is not None and opts.model_family not in MODELS:
        raise ValueError(
            f"model_family must be a known model ({', '.join(MODELS)}); got {opts.model_family!r}"
        )
    spec = opts.spec
    if spec.translation:
        raise ValueError(
            f"{opts.model} is a translation model: use openai_rt.TranslationSTT(model="
            f"{opts.model!r}) for it, or a transcription model here"
        )
    if spec.refused is not None:
        raise ValueError(spec.refused)
    warn_if_deprecated(spec.name)
    if opts.languages is not None and spec.known and spec.language_hint != "languages":
        raise ValueError(
            f"{opts.model} takes one language hint: pass language={opts.languages[0]!r} "
            "(languages= is for the models that take a list: gpt-live-transcribe, gpt-transcribe)"
        )
    if opts.keywords is not None and not spec.keywords:
        raise ValueError(
            f"{opts.model} does not take keywords=; remove it (gpt-live-transcribe and "
            "gpt-transcribe take keywords)"
        )
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
        if td_type not in spec.turn_detection:
            allowed = " or ".join(repr(t) for t in spec.turn_detection)
            raise ValueError(
                f"{opts.model} takes turn_detection of type {allowed}, not {td_type!r} "
                "(docs/protocol.md §2.3); pass {'type': 'server_vad'} or None"
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
    if opts.audio_format not in AUDIO_FORMATS:
        raise ValueError(
            f"audio_format must be one of {', '.join(map(repr, AUDIO_FORMATS))} "
            f"(pcm16: 24 kHz PCM; pcmu/pcma: G.711 at 8 kHz, for phone calls); "
            f"got {opts.audio_format!r}"
        )
    if not isinstance(opts.skip_silence, bool):
        raise ValueError(f"skip_silence must be True or False; got {opts.skip_silence!r}")
    check_number("prewarm_ttl", opts.prewarm_ttl, minimum=0.0, inclusive=False)
    check_number("replay_seconds", opts.replay_seconds, minimum=0.0)
    check_timing(opts)
    realtime_url(opts.base_url, model=opts.model, model_in_url=opts.model_in_url)


def as_tuple(value: Sequence[str] | None, *, option: str) -> tuple[str, ...] | None:
    """A list option (``languages``, ``keywords``) as a tuple; a bare string is refused (it
    would otherwise become a list of its characters)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValueError(f"{option} must be a list of strings, e.g. {option}=[{value!r}]")
    return tuple(value)


def _keywords(value: object) -> tuple[str, ...] | None:
    """``keywords`` as a tuple of non-empty strings (None for none)."""
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(
            f"keywords must be a list of words or phrases, e.g. ['LiveKit']; got {value!r}"
        )
    words = tuple(value)
    for word in words:
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"keywords must be non-empty strings; got {word!r}")
    return words or None


def check_timing(opts: SessionTiming) -> None:
    """Raise ``ValueError`` for a watchdog, roll-over margin or heartbeat that is not a finite
    number in range (``replay_seconds`` is checked by the caller, in its own order)."""
    check_number("final_timeout", opts.final_timeout, minimum=0.0, inclusive=False)
    check_number("result_timeout", opts.result_timeout, minimum=0.0, inclusive=False)
    check_number("rollover_margin", opts.rollover_margin, minimum=0.0)
    if opts.heartbeat is not None:
        check_number("heartbeat", opts.heartbeat, minimum=0.0, inclusive=False, none_ok=True)


def check_number(
    name: str,
    value: object,
    *,
    minimum: float,
    inclusive: bool = True,
    none_ok: bool = False,
) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number above ``minimum``, with a
    message that says what to pass (NaN compares false with everything, so it would pass a
    plain range check and disable a watchdog)."""
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"
    what = f"{name} must be {'None or ' if none_ok else ''}a finite number of seconds {bound}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what}; got {value!r} ({type(value).__name__})")
    if not math.isfinite(value) or value < minimum or (not inclusive and value == minimum):
        raise ValueError(f"{what}; got {value!r}")
