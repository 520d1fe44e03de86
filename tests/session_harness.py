"""The harness around a sans-I/O session core, transcription or translation: a fake clock, a
socket that records what the session sends, and the server's answers fed in by hand."""

from __future__ import annotations

import json
from typing import Any, Generic, TypeVar

from livekit.plugins.openai_rt import protocol as p, records as r

WALL0 = 1_700_000_000.0
"""The wall clock when the harness's fake clock reads 0."""

OutputT = TypeVar("OutputT")


class SessionHarness(Generic[OutputT]):
    """A session, a clock and a socket that records what the session sends."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.now = 0.0
        self.sent: list[dict[str, Any]] = []
        self.outputs: list[OutputT] = []

    def configure(self, updated: p.SessionUpdated, *, expires_in: float | None = None) -> None:
        """Connect, open, and have the server create the session and answer ``updated``."""
        self.session.connecting()
        self.session.socket_opened(self.now, wall=WALL0 + self.now)
        assert [m["type"] for m in self.flush_socket()] == ["session.update"]
        expires = WALL0 + self.now + expires_in if expires_in is not None else None
        self.server(p.SessionCreated("sess_1", expires))
        self.server(updated)

    def server(self, ev: Any) -> None:
        """The server sends ``ev`` now."""
        self.session.receive(ev, self.now)

    def flush_socket(self) -> list[dict[str, Any]]:
        """Send everything the session has; returns the decoded messages."""
        out = []
        while (msg := self.session.data_to_send(self.now)) is not None:
            self.session.sent()
            out.append(json.loads(msg))
        self.sent += out
        return out

    def lose_socket(self, code: int | None = None, reason: str = "") -> r.Ending | None:
        """The socket closes (``code`` None: dropped); a session that goes on releases it."""
        self.session.socket_closed(self.now, code=code, reason=reason)
        ending = self.session.ending
        if ending is not None and not isinstance(ending, r.Fail | r.Finish):
            self.session.socket_released()
        return ending

    def tick(self, seconds: float) -> None:
        """``seconds`` pass."""
        self.now += seconds
        self.session.tick(self.now)

    def take(self) -> list[OutputT]:
        """The session's new outputs (also kept in :attr:`outputs`)."""
        out: list[OutputT] = self.session.take_outputs()
        self.outputs += out
        return out
