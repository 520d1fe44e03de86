"""What the translation session core produces: translations, translated audio, and decisions.

The records of :class:`~.translation_session.TranslationSession` that have no transcription
counterpart; usage and the decisions that end a socket's part (roll over, reconnect, finish,
fail) and the replay are the shared ones of :mod:`.records`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .records import Ending, Replay, UsageRecord
from .translation_protocol import TranslationConfig


@dataclass(frozen=True, slots=True)
class Translation:
    """A segment's translation so far (``interim``) or complete (``final``).

    Attributes:
        kind: ``"interim"`` (the whole segment's text so far) or ``"final"``.
        segment_id: names the segment (the speech events' ``request_id``).
        text: the target-language text.
        language: the target language of its first run.
        runs: ``(language, text)`` per run of one target language (more than one when the
            target language changed during the segment); the texts concatenate to ``text``.
        source_text: the source-language transcript, or None when it is not enabled.
        start: seconds of the stream's audio where the segment starts.
        end: seconds of the stream's audio where it ends (0.0 for an interim of the segment
            still open).
    """

    kind: Literal["interim", "final"]
    segment_id: str
    text: str
    language: str
    runs: tuple[tuple[str, str], ...]
    source_text: str | None
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class TranslatedAudio:
    """A chunk of translated speech, base64 pcm16, in order (decoded only when read)."""

    audio: str
    sample_rate: int
    channels: int


@dataclass(frozen=True, slots=True)
class ConfigureTranslation:
    """Decision: the socket is open; ``session.update`` goes out with ``config``."""

    config: TranslationConfig


TranslationOutput = (
    Translation | TranslatedAudio | UsageRecord | ConfigureTranslation | Replay | Ending
)
"""Everything :meth:`~.translation_session.TranslationSession.take_outputs` returns."""
