"""The package logger."""

import logging

logger = logging.getLogger("livekit.plugins.openai_rt")
