"""The server-wide settings a server session obeys: which models, which transcriber, which faults.

:class:`~.server.Emulator` carries them as its public attributes and hands itself to each session
as a :class:`SessionHost`, so the sessions read them live (tests may change the fault plan between
phases). :class:`SessionSettings` is a plain holder with the same defaults, for driving a
:class:`~.server_session.ServerSession` without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .faults import FaultPlan
from .rules import MODEL_RULES, ModelRules
from .transcribers import BlockCrcTranscriber, Transcriber

__all__ = ["COMPLETED_DELAY", "SessionHost", "SessionSettings"]

COMPLETED_DELAY = 0.3
"""Default seconds between a commit and its ``completed`` (docs/protocol.md §7 D.47 [I]: no
public measurement; hundreds of milliseconds, as a model that transcribes a whole turn takes)."""


class SessionHost(Protocol):
    """What a server session reads from the server that hosts it, at the moment it needs it."""

    @property
    def model_rules(self) -> Mapping[str, ModelRules]:
        """The per-model rules, keyed by transcription model."""
        ...

    @property
    def transcriber(self) -> Transcriber:
        """Turns each item's audio into text."""
        ...

    @property
    def faults(self) -> FaultPlan:
        """The fault plan; sessions apply its item faults (``fail_items``, ``reorder_*``)."""
        ...

    @property
    def record_audio(self) -> bool:
        """Keep each item's audio in ``EmulatedItem.audio``."""
        ...

    @property
    def emit_item_added(self) -> bool:
        """Send ``conversation.item.added`` and ``conversation.item.done``."""
        ...

    @property
    def close_on_turn_detection_error(self) -> bool:
        """Close (4000) after a ``turn_detection`` the model refuses."""
        ...

    @property
    def completed_delay(self) -> float:
        """Seconds between a commit and its ``completed``."""
        ...

    @property
    def max_session_seconds(self) -> float:
        """Sessions expire (closed 1001) after this long."""
        ...

    @property
    def expiry_error_event(self) -> bool:
        """Send the ``session_expired`` error before the expiry's close."""
        ...


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
