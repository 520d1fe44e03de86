"""OpenAI Realtime transcription (``gpt-realtime-whisper`` and friends) and live translation
(``gpt-realtime-translate``) for LiveKit Agents.

```python
from livekit.plugins import openai_rt

session = AgentSession(stt=openai_rt.STT(), ...)
session = AgentSession(stt=openai_rt.TranslationSTT(target_language="en"), ...)
```

See ``openai_rt.STT`` and ``openai_rt.TranslationSTT`` for the options and
``openai_rt.testing`` for the bundled emulator.
"""

from livekit.agents import Plugin

from .formats import AudioFormatName
from .log import logger
from .models import (
    DEFAULT_MODEL,
    MODELS,
    DelayValue,
    ModelSpec,
    NoiseReduction,
    TranscriptionModel,
    estimate_cost_usd,
    model_spec,
)
from .options import DEFAULT_SERVER_VAD, STTOptions
from .stream import SpeechStream
from .stt import STT
from .translation_stream import TranslationStream
from .translation_stt import DEFAULT_TRANSLATION_MODEL, TranslationOptions, TranslationSTT
from .usage import TranscriptionUsage
from .version import __version__

__all__ = [
    "STT",
    "SpeechStream",
    "STTOptions",
    "TranscriptionUsage",
    "TranscriptionModel",
    "DelayValue",
    "NoiseReduction",
    "AudioFormatName",
    "TranslationSTT",
    "TranslationStream",
    "TranslationOptions",
    "DEFAULT_TRANSLATION_MODEL",
    "ModelSpec",
    "MODELS",
    "DEFAULT_MODEL",
    "DEFAULT_SERVER_VAD",
    "model_spec",
    "estimate_cost_usd",
    "__version__",
]


class OpenAIRealtimeSTTPlugin(Plugin):
    """Registers the plugin with LiveKit Agents (startup log, log levels)."""

    def __init__(self) -> None:
        super().__init__(__name__, __version__, __package__, logger)


Plugin.register_plugin(OpenAIRealtimeSTTPlugin())

# Cleanup docs of unexported modules
_module = dir()
NOT_IN_ALL = [m for m in _module if m not in __all__]

__pdoc__ = {}

for n in NOT_IN_ALL:
    __pdoc__[n] = False
