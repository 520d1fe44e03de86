"""The package logger, and the bound on server text before it reaches a log line."""

import logging

logger = logging.getLogger("livekit.plugins.openai_rt")

MAX_SERVER_TEXT = 200
"""Longest server-provided text (an error message, a parse error) kept for log lines and
exceptions: a server can send megabytes."""

MAX_SERVER_NAME = 64
"""Longest server-provided name (a session id, an error code, type or param) kept for log lines
and exceptions (OpenAI's are under 40 characters)."""


def clip(text: str, limit: int = MAX_SERVER_TEXT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: the one place server text
    is bounded before it reaches a log line or an exception."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"
