"""What the session core produces: records for the stream to emit, and decisions.

Small immutable records, as :class:`~.session.TranscriptionSession.take_outputs` returns them:
transcripts, usage and speech boundaries (what a LiveKit stream turns into ``SpeechEvent`` objects),
and the decisions that steer the I/O adapter (configure, replay, roll over, reconnect, finish,
fail).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from . import protocol as p
from .errors import Action
from .ledger import ReplayPlan


@dataclass(frozen=True, slots=True)
class Transcript:
    """A transcript for the stream to emit.

    ``kind``: ``"interim"`` (the text so far of audio not committed yet, or of a model that
    answers after the commit), ``"preflight"`` (the text so far of a committed item of a model
    that streams before the commit: stable enough to start an answer on), ``"final"``.
    ``start``/``end`` are seconds of the stream's audio (0 = its first byte), 0.0 when unknown
    (an interim before its commit).
    """

    kind: Literal["interim", "preflight", "final"]
    item_id: str
    text: str
    language: str
    start: float = 0.0
    end: float = 0.0
    confidence: float = 0.0


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What one committed item cost: audio seconds committed (or the server's own figure for
    duration-billed models) and tokens for token-billed ones."""

    item_id: str
    audio_seconds: float
    input_tokens: int = 0
    output_tokens: int = 0
    audio_tokens: int = 0
    text_tokens: int = 0


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """The server's VAD heard speech start, ``at`` seconds into the stream's audio."""

    at: float


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    """The server's VAD heard speech end, ``at`` seconds into the stream's audio."""

    at: float


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a session ended other than by finishing.

    Attributes:
        message: one line for the log and the exception.
        action: ``RECONNECT``, ``ROLL_OVER`` or ``FATAL``.
        kind: ``"server"`` (an error event or a close the server chose), ``"connection"`` (the
            socket broke) or ``"timeout"`` (the server stopped answering).
        body: structured details (code, type, param, close code) for the exception.
    """

    message: str
    action: Action
    kind: Literal["server", "connection", "timeout"] = "server"
    body: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Configure:
    """Decision: the socket is open; ``session.update`` goes out with ``config``."""

    config: p.SessionConfig


@dataclass(frozen=True, slots=True)
class Replay:
    """Decision: the session is configured; the audio still owed a transcript goes out again
    from ``plan.start`` (``plan.lost_bytes`` of it went past the replay bound)."""

    plan: ReplayPlan


@dataclass(frozen=True, slots=True)
class RollOver:
    """Decision: close this socket and go on in a new session (planned: no retry budget)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Decision: this socket is gone or useless; open a new one (a retry)."""

    failure: Failure


@dataclass(frozen=True, slots=True)
class Finish:
    """Decision: the input ended and every result was released; close the socket."""


@dataclass(frozen=True, slots=True)
class Fail:
    """Decision: stop the stream with ``failure``."""

    failure: Failure


Ending = RollOver | Reconnect | Finish | Fail
"""The decisions that end a socket's part in the session."""

Output = Transcript | UsageRecord | SpeechStart | SpeechEnd | Configure | Replay | Ending
"""Everything :meth:`~.session.TranscriptionSession.take_outputs` returns."""
