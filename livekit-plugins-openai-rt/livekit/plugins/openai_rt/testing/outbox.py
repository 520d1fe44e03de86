"""What a server session hands to the server: events to send now, and work that is due later.

The session never sleeps and never writes to a socket. It puts events and :class:`Close` into an
:class:`Outbox` and schedules timed work (a completion after ``completed_delay``, a held
out-of-order completion, the expiry) with :meth:`Outbox.at`; the server takes the output after
each call and calls the session's ``poll`` at :meth:`Outbox.next_deadline`.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass

from .audio import new_id
from .schema import Json

__all__ = ["Close", "Outbox", "Outgoing", "Timed", "server_event"]


@dataclass(frozen=True)
class Close:
    """Close the websocket with ``code`` and ``reason``, after the events that precede it."""

    code: int
    reason: str


Outgoing = Json | Close
"""What a session asks the server to do: send a server event, or close."""


def server_event(event: Json) -> Json:
    """``event`` as sent: ``type`` first, then a fresh ``event_id`` (docs/protocol.md §7 E.36)."""
    out: Json = {"type": event["type"], "event_id": new_id("event_")}
    out.update(event)
    return out


@dataclass(eq=False)
class Timed:
    """Work due at ``due`` (seconds of the server's monotonic clock); ``run(now)`` does it.

    ``done`` turns true once the work has been taken to run, or was cancelled.
    """

    due: float
    run: Callable[[float], None]
    done: bool = False


class Outbox:
    """The output of one session: events in order, and timed work in order of due time.

    Timed work with equal due times runs in the order it was scheduled, so events scheduled for
    the same moment keep their order.
    """

    def __init__(self) -> None:
        """An empty outbox."""
        self._out: list[Outgoing] = []
        self._timed: list[Timed] = []  # sorted by due, stable

    def emit(self, event: Json) -> None:
        """Send ``event`` now, stamped with a fresh ``event_id``."""
        self._out.append(server_event(event))

    def close(self, code: int, reason: str) -> None:
        """Close the socket after what was emitted so far."""
        self._out.append(Close(code, reason))

    def take(self) -> list[Outgoing]:
        """Everything emitted since the last call, in order."""
        out, self._out = self._out, []
        return out

    def at(self, due: float, run: Callable[[float], None]) -> Timed:
        """Schedule ``run`` for ``due``; the returned entry can be cancelled."""
        entry = Timed(due, run)
        bisect.insort_right(self._timed, entry, key=lambda e: e.due)
        return entry

    def cancel(self, entry: Timed) -> None:
        """Unschedule ``entry`` (which must be scheduled)."""
        self._timed.remove(entry)
        entry.done = True

    def clear(self) -> None:
        """Unschedule everything."""
        for entry in self._timed:
            entry.done = True
        self._timed.clear()

    def next_deadline(self) -> float | None:
        """The due time of the earliest scheduled work, or None."""
        return self._timed[0].due if self._timed else None

    def pop_due(self, now: float) -> Timed | None:
        """Unschedule and return the earliest work due at or before ``now``, if any."""
        if self._timed and self._timed[0].due <= now:
            entry = self._timed.pop(0)
            entry.done = True
            return entry
        return None
