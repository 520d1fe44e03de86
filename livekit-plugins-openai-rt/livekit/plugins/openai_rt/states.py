"""The session core's states, their allowed transitions, and its timers.

Part of the sans-I/O session core; :mod:`.session` re-exports every name here (``session.State``,
``session.TRANSITIONS``, ``session.Timers``).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

QUICK_FAILURE_SECONDS = 5.0
"""A session that fails this soon after it was configured counts as an instant failure."""

MAX_QUICK_FAILURES = 3
"""Instant failures in a row after which the stream stops instead of reconnecting again."""


class State(enum.Enum):
    """Where a :class:`TranscriptionSession` is in its life."""

    IDLE = "idle"
    """No socket. Audio collects in the ledger; the adapter should connect."""
    CONNECTING = "connecting"
    """The adapter is opening a socket."""
    CONFIGURING = "configuring"
    """The socket is open and ``session.update`` sent; waiting for ``session.updated``."""
    LIVE = "live"
    """Configured: audio and commits flow."""
    FINISHED = "finished"
    """The input ended and every result was released. Terminal."""
    FAILED = "failed"
    """A failure retrying cannot fix. Terminal."""


TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.IDLE: frozenset({State.CONNECTING, State.FINISHED, State.FAILED}),
    State.CONNECTING: frozenset({State.CONFIGURING, State.IDLE, State.FINISHED, State.FAILED}),
    State.CONFIGURING: frozenset({State.LIVE, State.IDLE, State.FINISHED, State.FAILED}),
    State.LIVE: frozenset({State.IDLE, State.FINISHED, State.FAILED}),
    State.FINISHED: frozenset(),
    State.FAILED: frozenset(),
}
"""Every allowed state change; anything else is a bug and raises ``RuntimeError``."""

SOCKET_STATES = frozenset({State.CONFIGURING, State.LIVE})
"""States in which the session owns a socket."""


@dataclass(frozen=True)
class Timers:
    """The session's timers, in seconds (validated by the options)."""

    configure_timeout: float = 10.0
    """How long ``session.updated`` may take after the socket opened."""
    result_timeout: float = 10.0
    """A result owed for this long with no word from the server (or a send blocked this
    long) means the socket is dead: reconnect and replay."""
    final_timeout: float = 10.0
    """After the end of input, the same watchdog with this bound if it is shorter."""
    rollover_margin: float = 60.0
    """Move to a new session this long before the server's ``expires_at``, at a pause."""
