"""The server-wide settings a server session obeys: which models, which transcriber, which faults.

:class:`~.server.Emulator` carries them as its public attributes and hands itself to each session
as a :class:`SessionHost` (transcription) or a :class:`TranslationHost` (translation), so the
sessions read them live (tests may change the fault plan between phases).
:class:`SessionSettings` and :class:`TranslationSettings` are plain holders with the same
defaults, for driving a :class:`~.server_session.ServerSession` or a
:class:`~.translation_session.TranslationServerSession` without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .faults import FaultPlan
from .rules import MODEL_RULES, ModelRules
from .transcribers import BlockCrcTranscriber, Transcriber
from .translation_translators import FrameCrcTranslator, Translator

__all__ = [
    "COMPLETED_DELAY",
    "LifetimeHost",
    "SessionHost",
    "SessionSettings",
    "TranslationHost",
    "TranslationSettings",
]

COMPLETED_DELAY = 0.3
"""Default seconds between a commit and its ``completed`` (docs/protocol.md §7 D.47 [I]: no
public measurement; hundreds of milliseconds, as a model that transcribes a whole turn takes)."""


class LifetimeHost(Protocol):
    """What every session reads from the server that hosts it, at the moment it needs it."""

    model_rules: Mapping[str, ModelRules]
    """The per-model rules, keyed by transcription model (a translation session's source
    transcription must name one)."""
    max_session_seconds: float
    """Sessions get ``session_expired`` and are closed (1001) after this long."""


class SessionHost(LifetimeHost, Protocol):
    """What a transcription session reads from the server that hosts it."""

    transcriber: Transcriber
    """Turns each item's audio into text."""
    faults: FaultPlan
    """The fault plan; sessions apply its item faults (``fail_items``, ``reorder_*``)."""
    record_audio: bool
    """Keep each item's audio in ``EmulatedItem.audio``."""
    emit_item_added: bool
    """Send ``conversation.item.added`` and ``conversation.item.done``."""
    close_on_turn_detection_error: bool
    """Close (4000) after a ``turn_detection`` the model refuses."""
    completed_delay: float
    """Seconds between a commit and its ``completed``."""
    expiry_error_event: bool
    """Send the ``session_expired`` error before the expiry's close."""


class TranslationHost(LifetimeHost, Protocol):
    """What a translation session reads from the server that hosts it."""

    translator: Translator
    """Turns each 200 ms frame into its outputs."""
    translation_delay: float
    """Seconds between a frame's arrival and its outputs."""


@dataclass
class SessionSettings:
    """A :class:`SessionHost` holding the emulator's defaults (see ``Emulator`` for each field)."""

    model_rules: Mapping[str, ModelRules] = field(default_factory=lambda: MODEL_RULES)
    transcriber: Transcriber = field(default_factory=BlockCrcTranscriber)
    faults: FaultPlan = field(default_factory=FaultPlan)
    record_audio: bool = True
    emit_item_added: bool = True
    close_on_turn_detection_error: bool = False
    completed_delay: float = COMPLETED_DELAY
    max_session_seconds: float = 3600.0
    expiry_error_event: bool = True


@dataclass
class TranslationSettings:
    """A :class:`TranslationHost` with the emulator's defaults (see ``Emulator``)."""

    translator: Translator = field(default_factory=FrameCrcTranslator)
    translation_delay: float = 0.0
    model_rules: Mapping[str, ModelRules] = field(default_factory=lambda: MODEL_RULES)
    max_session_seconds: float = 3600.0
