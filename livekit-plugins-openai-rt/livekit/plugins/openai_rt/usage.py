"""Usage as LiveKit reports it, with the split of input tokens the server gives.

LiveKit's :class:`~livekit.agents.stt.RecognitionUsage` has ``audio_duration``, ``input_tokens``
and ``output_tokens``. Token-billed models price audio input tokens and text input tokens (the
prompt) at different rates (docs/protocol.md §6), so the plugin's ``RECOGNITION_USAGE`` events
carry a subclass that adds both: everything that reads a ``RecognitionUsage`` (``session.usage``,
metrics) works unchanged, and :func:`~.models.estimate_cost_usd` can price the parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit.agents import stt


@dataclass
class TranscriptionUsage(stt.RecognitionUsage):
    """A :class:`~livekit.agents.stt.RecognitionUsage` with the input tokens split.

    Attributes:
        audio_tokens: input tokens of audio (``usage.input_token_details.audio_tokens``).
        text_tokens: input tokens of text, the prompt (``…text_tokens``).
    """

    audio_tokens: int = 0
    text_tokens: int = 0
