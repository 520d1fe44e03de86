"""What the emulated server accepts and how it answers, as data: per-model rules, protocol limits.

Each value cites its source in ``docs/protocol.md`` by section, with the evidence tag defined in
``docs/README.md``: [V] verified from OpenAI's SDK or docs, [O] observed against the live API by a
third party, [C] claimed by client code, [I] inferred (the emulator's choice; it is configurable or
documented here). Where the real server's behaviour is unknown, the emulator is *at least as strict*
as the real server plausibly is, so a client that works here is not relying on leniency that may
not exist.

The emulator deliberately keeps its own model-rules table (:data:`MODEL_RULES`) rather than
importing the plugin's: it is an independent check of the client.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AUDIO_FORMATS",
    "BETA_SHAPE_MESSAGE",
    "DELAY_VALUES",
    "INCLUDE_LOGPROBS",
    "MAX_APPEND_BYTES",
    "MIN_COMMIT_MS",
    "MODEL_RULES",
    "SEMANTIC_VAD_SILENCE_MS",
    "STRICT_LANGUAGE_RULES",
    "VAD_FRAME_MS",
    "VAD_RMS_SCALE",
    "DeltaStyle",
    "ModelRules",
    "UsageKind",
]

# ---------------------------------------------------------------------------------------------
# Protocol limits and fixed values
# ---------------------------------------------------------------------------------------------

MAX_APPEND_BYTES = 15 * 1024 * 1024
"""Largest decoded ``input_audio_buffer.append`` payload: 15 MiB (docs/protocol.md §3.2 [V]
SDK)."""

MIN_COMMIT_MS = 100
"""Smallest committable buffer (docs/protocol.md §3.3 [O] betalgo/openai#674, speaches)."""

BETA_SHAPE_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)
"""Verbatim message of ``beta_api_shape_disabled`` (docs/protocol.md §2.4 / §4.4 [O]
pickle-com/glass#220, jsboige/CoursIA PR #13149)."""

INCLUDE_LOGPROBS = "item.input_audio_transcription.logprobs"
"""The one allowed ``session.include`` value (docs/protocol.md §2.2 [V] SDK)."""

DELAY_VALUES = ("minimal", "low", "medium", "high", "xhigh")
"""Allowed ``transcription.delay`` values (docs/protocol.md §2.2 [V] OpenAI API reference, SDK)."""

AUDIO_FORMATS: Mapping[str, tuple[int, int]] = {
    "audio/pcm": (48, 2),
    "audio/pcmu": (8, 1),
    "audio/pcma": (8, 1),
}
"""Bytes per millisecond and bytes per sample of each input format (docs/protocol.md §3.1: pcm16
at 24 kHz [V]; G.711 at 8 kHz, one byte per sample [I])."""

# ---------------------------------------------------------------------------------------------
# The energy VAD
# ---------------------------------------------------------------------------------------------
# OpenAI's VAD is a model; this deterministic mapping is the emulator's [I], so tests can build
# audio that is unambiguously speech (a tone) or silence (zeros).

VAD_RMS_SCALE = 2000.0
"""A 10 ms frame is speech when its RMS, in int16 units, exceeds ``threshold * VAD_RMS_SCALE`` (so
the default threshold 0.5 means RMS > 1000, about -30 dBFS)."""

VAD_FRAME_MS = 10
"""The VAD decides speech or silence per frame of this many milliseconds."""

SEMANTIC_VAD_SILENCE_MS = 500
"""``semantic_vad`` is approximated by the energy detector with this fixed silence [I]."""

# ---------------------------------------------------------------------------------------------
# Per-model rules
# ---------------------------------------------------------------------------------------------

DeltaStyle = Literal["single", "several", "stream"]
"""How a model sends transcript deltas (see :attr:`ModelRules.deltas`)."""

UsageKind = Literal["duration", "tokens"]
"""The ``usage.type`` a model reports in ``completed``."""


@dataclass(frozen=True)
class ModelRules:
    """What the emulated server accepts from, and how it answers for, one transcription model.

    Attributes:
        turn_detection: the ``turn_detection`` types accepted; a non-null ``turn_detection`` of
            another type is refused with ``invalid_value``.
        prompt: ``transcription.prompt`` is accepted.
        delay: ``transcription.delay`` is accepted.
        keywords_languages: ``keywords`` and a ``languages`` list of more than one entry are
            accepted.
        singular_language: ``transcription.language`` is accepted (models that take a
            ``languages`` list refuse it).
        realtime: the model runs in realtime sessions at all (otherwise ``invalid_value`` on the
            model).
        deltas: ``"single"`` (one delta with the whole text after the commit), ``"several"``
            (word deltas after the commit) or ``"stream"`` (deltas while audio is appended,
            before the commit, on the preallocated item id).
        usage: the ``usage.type`` of ``completed``.
        logprobs: logprobs are attached when ``include`` asks for them.
        reports_languages: ``completed`` carries ``languages: [{"code": ...}]``.
        diarize: ``…transcription.segment`` events precede ``completed``.
    """

    turn_detection: tuple[str, ...]
    prompt: bool
    delay: bool
    keywords_languages: bool
    deltas: DeltaStyle
    usage: UsageKind
    logprobs: bool = False
    reports_languages: bool = False
    diarize: bool = False
    singular_language: bool = True
    realtime: bool = True


_GPT_4O = ModelRules(
    # server_vad docs/protocol.md §2.3 [V][O]; semantic_vad §2.3 [V] SDK transcription-session
    # type and [O] livekit/agents#3331 (gpt-4o-mini-transcribe)
    turn_detection=("server_vad", "semantic_vad"),
    prompt=True,  # free-text prompt (docs/protocol.md §2.2 [V] SDK)
    delay=False,  # "Only supported with gpt-realtime-whisper" (docs/protocol.md §2.2 [V] SDK)
    keywords_languages=False,  # keywords rejected on gpt-4o-* (docs/protocol.md §2.2 [O])
    deltas="several",  # incremental deltas after commit (docs/protocol.md §7 D.25 [V] guide)
    usage="tokens",  # token-priced (docs/protocol.md §7 D.26 [I])
    # REST: logprobs only with gpt-4o(-mini)-transcribe (docs/protocol.md §2.3 [V]/[I])
    logprobs=True,
)

MODEL_RULES: Mapping[str, ModelRules] = {
    # No VAD, no prompt, takes delay, streams while audio arrives, billed per minute
    # (docs/protocol.md §0.4, §2.3: [V] OpenAI API reference, SDK; usage kind [I]).
    "gpt-realtime-whisper": ModelRules(
        turn_detection=(),
        prompt=False,
        delay=True,
        keywords_languages=False,
        deltas="stream",
        usage="duration",
    ),
    # turn_detection rejected [O]; prompt accepted [O]; keywords/languages [V] SDK; delay is
    # "only gpt-realtime-whisper" per the SDK [V], so rejected here (conservative [I]); the
    # singular `language` is refused (docs/protocol.md §2.2 [C][O] livekit/agents#6613).
    "gpt-live-transcribe": ModelRules(
        turn_detection=(),
        prompt=True,
        delay=False,
        keywords_languages=True,
        deltas="stream",
        usage="duration",
        singular_language=False,
    ),
    # Built for committed turns; server_vad accepted, as public clients send it
    # (docs/protocol.md §2.3 [C] pipecat, livekit-plugins-openai, agents-js), semantic_vad not
    # (no source [I]); keywords and languages [V] SDK; languages on completed [V] SDK;
    # per-minute price suggests duration [I]. Whether it refuses the singular `language` is not
    # observed in realtime sessions: accepted here, refused with STRICT_LANGUAGE_RULES.
    "gpt-transcribe": ModelRules(
        turn_detection=("server_vad",),
        prompt=True,
        delay=False,
        keywords_languages=True,
        deltas="several",
        usage="duration",
        reports_languages=True,
    ),
    "gpt-4o-transcribe": _GPT_4O,
    "gpt-4o-mini-transcribe": _GPT_4O,
    "gpt-4o-mini-transcribe-2025-12-15": _GPT_4O,
    # One delta holding the whole transcript (docs/protocol.md §7 D.25 [V] guide mirror); prompt
    # is a keyword list [V]; billed per minute (docs/protocol.md §7 D.26 [I]).
    "whisper-1": ModelRules(
        turn_detection=("server_vad",),  # semantic_vad: no source [I]
        prompt=True,
        delay=False,
        keywords_languages=False,
        deltas="single",
        usage="duration",
    ),
    # Not available over the Realtime API (docs/protocol.md §2.3 [O] ndurner.github.io,
    # Arturo-Quiroga-MSFT/GPT-4o-Transcribe-Diarize): refused. With realtime=True (a rules table
    # of one's own) it emits segments with speakers (docs/protocol.md §7 D.29 [V] SDK); no prompt
    # (docs/protocol.md §2.2 [V] REST docs); VAD presumably [I]; tokens [I].
    "gpt-4o-transcribe-diarize": ModelRules(
        turn_detection=("server_vad",),
        prompt=False,
        delay=False,
        keywords_languages=False,
        deltas="several",
        usage="tokens",
        diarize=True,
        realtime=False,
    ),
}
"""The emulator's per-model rules (docs/protocol.md §2.3), keyed by ``transcription.model``."""

STRICT_LANGUAGE_RULES: Mapping[str, ModelRules] = {
    **MODEL_RULES,
    "gpt-transcribe": dataclasses.replace(MODEL_RULES["gpt-transcribe"], singular_language=False),
}
""":data:`MODEL_RULES` with gpt-transcribe refusing the singular ``language`` like
gpt-live-transcribe (``Emulator(model_rules=STRICT_LANGUAGE_RULES)``): the transcription guide
says both models use ``languages`` instead, and the refusal is observed for gpt-live-transcribe
only (docs/protocol.md §2.2)."""
