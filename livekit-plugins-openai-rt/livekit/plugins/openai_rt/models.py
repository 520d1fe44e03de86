"""The model table: what each realtime transcription model accepts, how it reports, what it costs.

Rules are data: every per-model difference the plugin cares about lives in :data:`MODELS`, and the
rest of the package asks :func:`model_spec` instead of comparing model names. Each row carries its
evidence (:attr:`ModelSpec.evidence`): the ``docs/protocol.md`` section and the public source of
every capability, with the evidence tag of ``docs/README.md`` ([V] verified, [O] observed, [C] a
client's claim, [I] inferred).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from .log import logger

TranscriptionModel = Literal[
    "gpt-realtime-whisper",
    "gpt-live-transcribe",
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "whisper-1",
]
"""The models this plugin runs in a realtime transcription session (any other name is accepted,
with conservative defaults and one warning)."""

DelayValue = Literal["minimal", "low", "medium", "high", "xhigh"]
"""Allowed values of ``audio.input.transcription.delay`` (gpt-realtime-whisper only)."""

DELAY_VALUES: tuple[DelayValue, ...] = ("minimal", "low", "medium", "high", "xhigh")

NoiseReduction = Literal["near_field", "far_field"]
"""Allowed values of ``audio.input.noise_reduction.type``."""

NOISE_REDUCTION_VALUES: tuple[NoiseReduction, ...] = ("near_field", "far_field")

TurnDetectionType = Literal["server_vad", "semantic_vad"]
"""The ``turn_detection.type`` values of the protocol (docs/protocol.md §2.2)."""

UsageKind = Literal["duration", "tokens"]

LanguageHint = Literal["language", "languages"]
"""How a model takes its language hint: one ``language`` code, or a ``languages`` list."""

CAPABILITIES = (
    "turn_detection",
    "prompt",
    "delay",
    "language",
    "keywords",
    "deltas",
    "usage",
    "price",
    "status",
)
"""The capabilities whose evidence every known row names (:attr:`ModelSpec.evidence`)."""

SHUTDOWN_2027 = "2027-02-26"
"""Announced shutdown of whisper-1 and the gpt-4o transcription models (docs/protocol.md §2.2 [V]
SDK ``AudioTranscription.model``)."""

REPLACEMENT_2027 = "gpt-live-transcribe (streaming) or gpt-transcribe (committed turns)"
"""OpenAI's recommended replacement for each of them (docs/protocol.md §2.3 [O] deprecations page
as quoted by developersdigest.tech)."""


@dataclass(frozen=True)
class ModelSpec:
    """Capabilities and price of one transcription model.

    Attributes:
        name: the model id sent in ``session.update``.
        known: False for a model name the table does not list (conservative defaults).
        turn_detection: the server turn detection types the model accepts (empty: the client
            commits every turn).
        prompt: the model accepts ``transcription.prompt``.
        delay: the model accepts ``transcription.delay``.
        language_hint: ``"language"`` (one ISO-639-1 code) or ``"languages"`` (a list; the
            singular field is refused, so a ``language=`` option is sent as a one-entry list).
        keywords: the model accepts ``transcription.keywords``.
        streams_before_commit: deltas arrive while audio is appended, before any commit.
        logprobs: the server can attach logprobs (``include``) to its transcription events.
        usage_kind: the ``usage.type`` the server reports on ``…completed``.
        usd_per_minute: price per minute of audio, for duration-billed models.
        usd_per_million_audio_tokens: audio input token price, for token-billed models.
        usd_per_million_text_tokens: text input token price (the prompt), for token-billed models.
        usd_per_million_output_tokens: output token price, for token-billed models.
        price_source: where the prices come from, and when they were recorded.
        shutdown: the announced shutdown date (``YYYY-MM-DD``), for deprecated models.
        replacement: the model(s) OpenAI recommends instead, for deprecated models.
        refused: why the plugin refuses the model in a realtime session (and where it works).
        seen_live: public reports of the model working in realtime transcription sessions.
        evidence: for each capability of :data:`CAPABILITIES`, the docs/protocol.md section and
            the public source, with its evidence tag.
        translation: a translation model (``/v1/realtime/translations``, ``TranslationSTT``),
            not a transcription one.
    """

    name: str
    known: bool = True
    turn_detection: tuple[TurnDetectionType, ...] = ()
    prompt: bool = False
    delay: bool = False
    language_hint: LanguageHint = "language"
    keywords: bool = False
    streams_before_commit: bool = False
    logprobs: bool = False
    usage_kind: UsageKind = "duration"
    usd_per_minute: float | None = None
    usd_per_million_audio_tokens: float | None = None
    usd_per_million_text_tokens: float | None = None
    usd_per_million_output_tokens: float | None = None
    price_source: str = ""
    shutdown: str | None = None
    replacement: str | None = None
    refused: str | None = None
    seen_live: str | None = None
    evidence: Mapping[str, str] = field(default_factory=dict)
    translation: bool = False

    @property
    def server_vad(self) -> bool:
        """The model has a server VAD (it accepts a non-null ``turn_detection``)."""
        return bool(self.turn_detection)


DEFAULT_MODEL: TranscriptionModel = "gpt-realtime-whisper"

_MODEL_PAGE = "https://developers.openai.com/api/docs/models/"
_RECORDED = "recorded 2026-12-01"
_GPT_4O_EVIDENCE = {
    "turn_detection": "§2.3: server_vad [V] Transcription guide (2025) and [O] forum flows; "
    "semantic_vad [V] SDK RealtimeTranscriptionSessionAudioInputTurnDetection and [O] "
    "livekit/agents#3331 (gpt-4o-mini-transcribe, tested by a maintainer)",
    "prompt": "§2.2 [V] SDK AudioTranscription.prompt (free text)",
    "delay": '§2.2 [V] SDK AudioTranscription.delay ("Only supported with gpt-realtime-whisper")',
    "language": "§2.2 [V] SDK AudioTranscription.language",
    "keywords": "§2.2 [V] SDK AudioTranscription.keywords; [O] refused on gpt-4o-* (§2.2)",
    "deltas": "§2.3 [V] Transcription guide (2025): incremental deltas after the commit",
    "usage": "§4.1.5 [V] SDK usage variants; tokens for gpt-4o-* [I] (token-priced)",
    "status": "§1.2 [O] crmitchelmore/justspeaktoit#427 (live over ?intent=transcription); "
    "deprecated §2.2 [V] SDK",
}


def _gpt_4o_mini(name: str, seen_live: str | None) -> ModelSpec:
    """A gpt-4o-mini-transcribe row (the alias and its dated snapshot share everything)."""
    return ModelSpec(
        name,
        turn_detection=("server_vad", "semantic_vad"),
        prompt=True,
        logprobs=True,
        usage_kind="tokens",
        usd_per_million_audio_tokens=3.0,
        usd_per_million_text_tokens=1.25,
        usd_per_million_output_tokens=5.0,
        price_source="§6 [O] OpenAI pricing page as quoted by halfpower.work/?p=3800 (audio in "
        f"$3, text in $1.25, text out $5 per 1M); {_RECORDED}",
        shutdown=SHUTDOWN_2027,
        replacement=REPLACEMENT_2027,
        seen_live=seen_live,
        evidence={**_GPT_4O_EVIDENCE, "price": "§6 [O] OpenAI pricing page, quoted"},
    )


MODELS: Mapping[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "gpt-realtime-whisper",
            delay=True,
            streams_before_commit=True,
            usd_per_minute=0.017,
            price_source=f"§6 [V] {_MODEL_PAGE}gpt-realtime-whisper; {_RECORDED}",
            seen_live="livekit/agents-js#1581, livekit/agents#5779",
            evidence={
                "turn_detection": "§2.3 [V] API reference (must be null) and [O] the observed "
                '"Turn detection is not supported for this transcription model."',
                "prompt": "§2.2 [V] SDK AudioTranscription.prompt (not supported); [O] Illospace#155",
                "delay": "§2.2 [V] SDK AudioTranscription.delay",
                "language": "§2.1 [V] Transcription guide example (language: en)",
                "keywords": '§2.2 [V] SDK ("Supported by gpt-transcribe and gpt-live-transcribe")',
                "deltas": "§2.3 [V] Transcription guide; [O] livekit/agents-js#1581",
                "usage": "§7 D.26 [I] duration (priced per minute)",
                "price": "§6 [V] model page",
                "status": "§2.3 [O] livekit/agents-js#1581, livekit/agents#5779",
            },
        ),
        ModelSpec(
            "gpt-live-transcribe",
            prompt=True,
            language_hint="languages",
            keywords=True,
            streams_before_commit=True,
            usd_per_minute=0.017,
            price_source=f"§6 [V] {_MODEL_PAGE}gpt-live-transcribe; {_RECORDED}",
            seen_live="livekit/agents#6705, goodroot/hyprwhspr#226",
            evidence={
                "turn_detection": "§2.3 [O] invalid_value on turn_detection (several public "
                'repositories); [V] Korean-locale guide: "does not support server_vad or '
                'semantic_vad"',
                "prompt": "§2.2 [O] a public project's capability table",
                "delay": '§2.2 [V] SDK ("Only supported with gpt-realtime-whisper")',
                "language": "§2.2 [V] Transcription guide (these models use languages instead "
                "of language); singular refused [C][O] livekit/agents#6613",
                "keywords": '§2.2 [V] SDK ("Supported by gpt-transcribe and gpt-live-transcribe")',
                "deltas": "§2.3 [V] Transcription guide (streams like gpt-realtime-whisper)",
                "usage": "§7 D.26 [I] duration (priced per minute)",
                "price": "§6 [V] model page",
                "status": "§2.3 [C] livekit/agents#6705, goodroot/hyprwhspr#226",
            },
        ),
        ModelSpec(
            "gpt-transcribe",
            turn_detection=("server_vad",),
            prompt=True,
            language_hint="languages",
            keywords=True,
            usd_per_minute=0.0045,
            price_source=f"§6 [V] {_MODEL_PAGE}gpt-transcribe; {_RECORDED}",
            seen_live="livekit/agents#6705, goodroot/hyprwhspr#228",
            evidence={
                "turn_detection": "§2.3 [C] server_vad sent by public clients (pipecat's "
                "docstring, livekit-plugins-openai and agents-js); semantic_vad: no source, "
                "refused [I]",
                "prompt": "§2.2 [V] Transcription guide (unstructured context)",
                "delay": '§2.2 [V] SDK ("Only supported with gpt-realtime-whisper")',
                "language": "§2.2 [V] Transcription guide (languages instead of language); "
                "singular refused on REST [O] NousResearch/hermes-agent#73853",
                "keywords": '§2.2 [V] SDK ("Supported by gpt-transcribe and gpt-live-transcribe")',
                "deltas": "§7 D.25 [I] after the commit (built for committed turns [V])",
                "usage": "§7 D.26 [I] duration (priced per minute)",
                "price": "§6 [V] model page",
                "status": "§2.3 [C] livekit/agents#6705, goodroot/hyprwhspr#228",
            },
        ),
        ModelSpec(
            "gpt-4o-transcribe",
            turn_detection=("server_vad", "semantic_vad"),
            prompt=True,
            logprobs=True,
            usage_kind="tokens",
            usd_per_million_audio_tokens=6.0,
            usd_per_million_text_tokens=2.5,
            usd_per_million_output_tokens=10.0,
            price_source="§6 [V] OpenAI cookbook (audio in $6, text in $2.50, text out $10 per "
            f"1M); the model page lists $2.5 / $10 only; {_RECORDED}",
            shutdown=SHUTDOWN_2027,
            replacement=REPLACEMENT_2027,
            seen_live="crmitchelmore/justspeaktoit#427",
            evidence={**_GPT_4O_EVIDENCE, "price": "§6 [V] OpenAI cookbook"},
        ),
        _gpt_4o_mini("gpt-4o-mini-transcribe", "crmitchelmore/justspeaktoit#427"),
        _gpt_4o_mini("gpt-4o-mini-transcribe-2025-12-15", None),
        ModelSpec(
            "whisper-1",
            turn_detection=("server_vad",),
            prompt=True,
            usd_per_minute=0.006,
            price_source=f"§6 [O] a third-party figure, not re-verified; {_RECORDED}",
            shutdown=SHUTDOWN_2027,
            replacement=REPLACEMENT_2027,
            seen_live="crmitchelmore/justspeaktoit#427",
            evidence={
                "turn_detection": "§2.3 [O] server_vad; semantic_vad: no source, refused [I]",
                "prompt": "§2.2 [V] SDK AudioTranscription.prompt (a list of keywords)",
                "delay": '§2.2 [V] SDK ("Only supported with gpt-realtime-whisper")',
                "language": "§2.2 [V] SDK AudioTranscription.language",
                "keywords": '§2.2 [V] SDK ("Supported by gpt-transcribe and gpt-live-transcribe")',
                "deltas": "§2.3 [V] Transcription guide (2025): one delta with the whole turn",
                "usage": "§7 D.26 [I] duration",
                "price": "§6 [O] third party",
                "status": "§1.2 [O] crmitchelmore/justspeaktoit#427; deprecated §2.2 [V] SDK",
            },
        ),
        ModelSpec(
            "gpt-4o-transcribe-diarize",
            usage_kind="tokens",
            shutdown=SHUTDOWN_2027,
            replacement=REPLACEMENT_2027,
            refused="gpt-4o-transcribe-diarize does not run in realtime sessions; it works in "
            "file transcription (POST /v1/audio/transcriptions with "
            "response_format='diarized_json'). Pick another model for streaming, e.g. "
            "model='gpt-live-transcribe'",
            evidence={
                "turn_detection": "not applicable (refused)",
                "prompt": '§2.2 [V] REST docs ("Prompt is not supported for diarization models")',
                "delay": "not applicable (refused)",
                "language": "not applicable (refused)",
                "keywords": "not applicable (refused)",
                "deltas": "§4.1.8 [V] SDK segment events (typed, never observed in realtime)",
                "usage": "not applicable (refused)",
                "price": "unknown",
                "status": "§2.3 [O] not available over the Realtime API: ndurner.github.io "
                "(2025-10-24), Arturo-Quiroga-MSFT/GPT-4o-Transcribe-Diarize",
            },
        ),
        ModelSpec(
            "gpt-realtime-translate",
            translation=True,
            usd_per_minute=0.034,
            price_source=f"§6 [V] {_MODEL_PAGE}gpt-realtime-translate; {_RECORDED}",
            evidence={
                **dict.fromkeys(CAPABILITIES, "not applicable (a translation model, §5)"),
                "price": "§6 [V] model page",
                "status": "§5 [V] API reference and SDK (its own endpoint, "
                "/v1/realtime/translations)",
            },
        ),
    )
}
"""The known transcription models, keyed by name."""

_warned_unknown: set[str] = set()
_warned_deprecated: set[str] = set()


def model_spec(model: str) -> ModelSpec:
    """The table row for ``model``, or conservative defaults (and one warning) for an unknown one.

    An unknown model gets no server VAD (the client commits, which works on every model), and the
    server decides whether it takes a prompt, a delay or keywords: the plugin forwards what it is
    given.
    """
    spec = MODELS.get(model)
    if spec is not None:
        return spec
    if model not in _warned_unknown:
        _warned_unknown.add(model)
        logger.warning(
            "unknown transcription model %r: using conservative defaults (client-side commits, "
            "options forwarded unchecked, no price)",
            model,
            extra={"model": model},
        )
    return ModelSpec(model, known=False, prompt=True, delay=True, keywords=True)


def warn_if_deprecated(model: str) -> None:
    """Log one WARNING per process and model when ``model`` has an announced shutdown date."""
    spec = MODELS.get(model)
    if spec is None or spec.shutdown is None or model in _warned_deprecated:
        return
    _warned_deprecated.add(model)
    logger.warning(
        "%s is deprecated: OpenAI shuts it down on %s; the recommended replacement is %s",
        model,
        spec.shutdown,
        spec.replacement,
        extra={"model": model, "shutdown": spec.shutdown},
    )


def estimate_cost_usd(
    model: str,
    *,
    audio_seconds: float = 0.0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    audio_tokens: int = 0,
    text_tokens: int = 0,
) -> float | None:
    """Estimated price in USD of transcribing with ``model``, or None when the price is unknown.

    Duration-billed models are priced by ``audio_seconds``. Token-billed ones price audio input
    tokens and text input tokens (the prompt) at their own rates, and output tokens at the output
    rate. Input tokens the usage did not split (``input_tokens`` beyond ``audio_tokens +
    text_tokens``, as in LiveKit's ``STTModelUsage``) are priced at the audio rate, the higher
    one, so the estimate is an upper bound rather than a guess.
    """
    spec = model_spec(model)
    if spec.usd_per_minute is not None:
        return audio_seconds / 60.0 * spec.usd_per_minute
    audio_rate = spec.usd_per_million_audio_tokens
    if audio_rate is None:
        return None
    text_rate = spec.usd_per_million_text_tokens or 0.0
    out_rate = spec.usd_per_million_output_tokens or 0.0
    unsplit = max(0, input_tokens - audio_tokens - text_tokens)
    return (
        (audio_tokens + unsplit) * audio_rate + text_tokens * text_rate + output_tokens * out_rate
    ) / 1_000_000


def models_markdown() -> str:
    """The README's "Models" table, generated from :data:`MODELS` (a test keeps them equal)."""
    rows = [
        "| Model | Commits by | Takes (language hint, keywords, delay, prompt) | Billed by | Status |",
        "|---|---|---|---|---|",
    ]
    for spec in MODELS.values():
        rows.append(
            f"| `{spec.name}` | {_commits_by(spec)} | {_takes(spec)} | {_billed_by(spec)} "
            f"| {_status(spec)} |"
        )
    return "\n".join(rows)


def _commits_by(spec: ModelSpec) -> str:
    if spec.refused or spec.translation:
        return "n/a"
    if not spec.turn_detection:
        return "the client (no server VAD)"
    types = ", ".join(f"`{t}`" for t in spec.turn_detection)
    return f"server VAD ({types}) or the client"


def _takes(spec: ModelSpec) -> str:
    if spec.refused or spec.translation:
        return "n/a"
    taken = ["`languages` (list)" if spec.language_hint == "languages" else "`language`"]
    taken += [f"`{name}`" for name in ("keywords", "delay", "prompt") if getattr(spec, name)]
    return ", ".join(taken)


def _billed_by(spec: ModelSpec) -> str:
    if spec.usd_per_minute is not None:
        return f"audio duration, ${spec.usd_per_minute:g}/min"
    if spec.usd_per_million_audio_tokens is not None:
        return (
            f"tokens per 1M: audio in ${spec.usd_per_million_audio_tokens:g}, "
            f"text in ${spec.usd_per_million_text_tokens:g}, "
            f"out ${spec.usd_per_million_output_tokens:g}"
        )
    return "unknown"


def _status(spec: ModelSpec) -> str:
    if spec.refused:
        status = ["refused: file transcription only"]
    elif spec.translation:
        status = ["translation: `openai_rt.TranslationSTT`", "proven offline"]
    else:
        status = ["proven offline"]
        if spec.seen_live:
            status.append(f"seen live by public clients ({spec.seen_live})")
    if spec.shutdown:
        status.append(f"deprecated: shutdown {spec.shutdown}")
    return "; ".join(status)
