"""The lifecycle every session core shares, as a sans-I/O base class.

:class:`SessionLifecycle` is what :class:`~.session.TranscriptionSession` and
:class:`~.translation_session.TranslationSession` do alike, whatever they do with their audio:
the states and their transitions (:mod:`.states`), the socket inputs (connecting, opened,
closed, released, a binary frame), the timers they share (the set-up deadline, a blocked send,
the roll-over ahead of the server's ``expires_at``), the error policy's verdicts
(:mod:`.errors`) and the decisions that end a socket's part (reconnect, giving up after quick
failures; roll over; finish; fail). Like its subclasses it never opens a socket, awaits, or
reads a clock: every input carries ``now``.

A subclass says what is its own: the ``session.update`` it sends and the record that announces
it, what it sends and owes on a socket, its live timers, and when it is at a pause.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar, Generic, Protocol, TypeVar

from . import protocol as p
from .errors import Action, Verdict, classify_close, classify_error
from .log import logger
from .records import Ending, Fail, Failure, Reconnect, RollOver
from .states import (
    MAX_QUICK_FAILURES,
    QUICK_FAILURE_SECONDS,
    SOCKET_STATES,
    TRANSITIONS,
    State,
    Timers,
)


class SessionConfigLike(Protocol):
    """What the lifecycle reads of a session's configuration."""

    @property
    def model(self) -> str:
        """The model the session runs (for log lines)."""
        ...


_ConfigT = TypeVar("_ConfigT", bound=SessionConfigLike)
_OutputT = TypeVar("_OutputT")


class SessionLifecycle(ABC, Generic[_ConfigT, _OutputT]):
    """The states, socket inputs, shared timers and ending decisions of a session core.

    Args:
        config: what ``session.update`` sends.
        timers: the set-up, blocked-send, result and roll-over timers.
    """

    _noun: ClassVar[str] = "session"
    """How log lines and failure messages name this kind of session."""

    def __init__(self, config: _ConfigT, *, timers: Timers) -> None:
        self.config = config
        self.timers = timers
        self.state = State.IDLE
        self.session_id = ""
        """The server's id of the current session (empty before ``session.created``)."""
        self.skipped_frames = 0
        """Server frames that could not be used (malformed, unknown type, binary)."""
        self.speaking = False
        """Speech is in progress (the server's VAD, or the stream's via :meth:`set_speaking`):
        no roll-over now."""
        self.input_ended = False
        self.ending: Ending | None = None
        """The decision that ended the current socket's part, until :meth:`socket_released`."""
        self._outputs: list[_OutputT | Ending] = []
        self._taken_at: float | None = None  # a message handed out and not yet reported sent
        self._opened_at = 0.0
        self._configured_at: float | None = None
        self._wall_offset = 0.0  # wall clock minus monotonic clock, at socket open
        self._config_sent: _ConfigT | None = None
        self._new_session_wanted = False
        self._rollover_at: float | None = None
        self._hard_deadline: float | None = None
        self._quick_failures = 0

    # -- reading -----------------------------------------------------------------------------------

    @property
    def configured_at(self) -> float | None:
        """When (the ``now`` given) the current socket's session went LIVE; None before."""
        return self._configured_at

    def take_outputs(self) -> list[_OutputT | Ending]:
        """The records and decisions produced since the last call, in order."""
        out, self._outputs = self._outputs, []
        return out

    def has_outputs(self) -> bool:
        """Whether :meth:`take_outputs` has anything."""
        return bool(self._outputs)

    @abstractmethod
    def data_to_send(self, now: float) -> bytes | None:
        """The next message for the socket, or None when there is nothing to send now. The
        caller sends it and then calls :meth:`sent`; a message not reported sent for
        ``result_timeout`` means the server stopped reading."""

    @abstractmethod
    def wants_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has a message now (a cheap check)."""

    def sent(self) -> None:
        """The message last handed out by :meth:`data_to_send` went out."""
        self._taken_at = None

    def next_timer(self, now: float) -> float | None:
        """Seconds until the next timer is due, or None when no timer runs."""
        due = [d for d in self._deadlines() if d is not None]
        return max(0.0, min(due) - now) if due else None

    # -- inputs ------------------------------------------------------------------------------------

    def set_speaking(self, speaking: bool) -> None:
        """The stream's own VAD says whether speech is in progress (roll-over waits for a
        pause)."""
        self.speaking = speaking

    def connecting(self) -> None:
        """The adapter starts opening a socket."""
        self._set_state(State.CONNECTING)

    def connect_failed(self) -> None:
        """The socket could not be opened (the adapter decides about retrying)."""
        if self.state is State.CONNECTING:
            self._set_state(State.IDLE)

    def socket_opened(self, now: float, *, wall: float) -> None:
        """The socket is open: configure the session (``wall`` is the wall clock at ``now``,
        to read the server's ``expires_at``)."""
        self._begin_socket(now, wall=wall, opened_at=now)
        self._send_config()
        self._emit(self._configure_record())

    def socket_closed(self, now: float, *, code: int | None, reason: str) -> None:
        """The server closed the socket (``code`` None when it just broke)."""
        if self.state not in SOCKET_STATES or self.ending is not None:
            return
        if code is None:
            self._reconnect(
                now, Failure(reason or "connection lost", Action.RECONNECT, "connection")
            )
            return
        verdict = classify_close(code, reason)
        message = f"OpenAI closed {self._noun} {self.session_id or '?'} with {code} {reason!r}"
        self._on_verdict(now, verdict, message, {"close_code": code, "reason": reason})

    def socket_released(self) -> None:
        """The adapter closed the socket after an ending decision: back to IDLE (unless the
        session finished or failed), ready for the next socket."""
        self._reset_sending()
        self._taken_at = None
        self._rollover_at = self._hard_deadline = None
        if isinstance(self.ending, RollOver):
            self._new_session_wanted = False
        if self.state in SOCKET_STATES or self.state is State.CONNECTING:
            self._set_state(State.IDLE)
        self.ending = None

    def binary_frame(self, size: int) -> None:
        """The server sent a binary frame, which the protocol does not use: counted, skipped."""
        self.skipped_frames += 1
        logger.debug("ignoring a binary frame of %d bytes", size, extra=self._extra())

    def tick(self, now: float) -> None:
        """Check the timers: the set-up deadline, then (while LIVE) a blocked send, the
        session's own timers, and the moment to roll over to a new session."""
        if self.ending is not None:
            return
        if self.state is State.CONFIGURING:
            if now - self._opened_at >= self.timers.configure_timeout:
                self._reconnect(
                    now,
                    Failure(
                        f"no session.updated within {self.timers.configure_timeout:g} s "
                        f"({self._noun} {self.session_id or '?'})",
                        Action.RECONNECT,
                        "timeout",
                    ),
                )
            return
        if self.state is State.LIVE:
            self._tick_live(now)

    # -- for subclasses ----------------------------------------------------------------------------

    @abstractmethod
    def _send_config(self) -> None:
        """Queue a ``session.update`` with :attr:`config` (and note it as sent)."""

    @abstractmethod
    def _configure_record(self) -> _OutputT:
        """The record that announces the ``session.update`` of a new socket."""

    @abstractmethod
    def _reset_sending(self) -> None:
        """Forget what was queued or sent on the socket that is gone (a new one starts)."""

    @abstractmethod
    def _tick_live(self, now: float) -> None:
        """The timers of a LIVE session (see :meth:`_send_blocked`, :meth:`_roll_over_if_due`)."""

    @abstractmethod
    def _live_deadlines(self) -> list[float | None]:
        """When the session's own LIVE timers are due."""

    @abstractmethod
    def _nothing_in_flight(self) -> bool:
        """No result is owed now: a planned switch to a new session may happen."""

    def _begin_socket(self, now: float, *, wall: float, opened_at: float) -> None:
        """A socket (opened at ``opened_at``) starts its part: CONFIGURING, nothing sent."""
        self._set_state(State.CONFIGURING)
        self.session_id = ""
        self.ending = None
        self._opened_at = opened_at
        self._configured_at = None
        self._wall_offset = wall - now
        self._rollover_at = self._hard_deadline = None
        self._reset_sending()
        self._taken_at = None

    def _on_created(self, ev: p.SessionCreated) -> None:
        self.session_id = ev.session_id
        self._plan_rollover(ev.expires_at)
        logger.debug("%s created", self._noun, extra={**self._extra(), "expires_at": ev.expires_at})

    def _going_live(self, now: float) -> bool:
        """``session.updated``: the session goes LIVE (False when it was already: options were
        updated in place). Options changed while it was being set up go out now."""
        if self.state is State.LIVE:
            logger.debug("%s options updated", self._noun, extra=self._extra())
            return False
        self._set_state(State.LIVE)
        self._configured_at = now
        if self._config_sent != self.config:
            # options changed while the session was being set up: they must reach it too
            self._send_config()
        return True

    def _skip(self, ev: p.Malformed | p.Unknown) -> None:
        """A server event the session cannot use: counted, logged, skipped."""
        self.skipped_frames += 1
        if isinstance(ev, p.Malformed):
            logger.warning("ignoring a malformed server event: %s", ev.reason, extra=self._extra())
        else:
            logger.debug("ignoring unknown server event %r", ev.type, extra=self._extra())

    def _on_error(self, err: p.ServerError, now: float) -> None:
        verdict = classify_error(err.code, err.type, configuring=self.state is State.CONFIGURING)
        if verdict.action is Action.REFUSED_COMMIT:
            self._on_refused_commit(err, now)
            return
        if verdict.action is Action.WARN:
            self._server_warning(err)
            return
        message = (
            f"OpenAI error on {self._noun} {self.session_id or '?'} ({err.code}): {err.message}"
        )
        body = {"code": err.code, "type": err.type, "param": err.param}
        self._on_verdict(now, verdict, message, body)

    def _on_refused_commit(self, err: p.ServerError, now: float) -> None:
        """The server refused a commit (§3.3); a session that makes none only warns."""
        self._server_warning(err)

    def _server_warning(self, err: p.ServerError) -> None:
        extra = {**self._extra(), "code": err.code, "param": err.param}
        logger.warning("server warning (%s): %s", err.code, err.message, extra=extra)

    def _on_verdict(
        self, now: float, verdict: Verdict, message: str, body: Mapping[str, object]
    ) -> None:
        failure = Failure(f"{message} -> {verdict.hint}", verdict.action, "server", body)
        if verdict.action is Action.FATAL:
            self._fail(failure)
        elif verdict.action is Action.ROLL_OVER:
            logger.warning(
                "%s ended by the server (%s); continuing in a new session",
                self._noun,
                verdict.hint,
                extra=self._extra(),
            )
            self._end(RollOver(verdict.hint))
        else:
            self._reconnect(now, failure)

    # -- decisions ---------------------------------------------------------------------------------

    def _send_blocked(self, now: float) -> bool:
        """A message handed out ``result_timeout`` ago was not reported sent: the server stopped
        reading, so reconnect (True when it did)."""
        if self._taken_at is None or now - self._taken_at < self.timers.result_timeout:
            return False
        self._reconnect(
            now,
            Failure(
                f"sending audio blocked for {self.timers.result_timeout:g} s on {self._noun} "
                f"{self.session_id}: the server stopped reading",
                Action.RECONNECT,
                "timeout",
            ),
        )
        return True

    def _roll_over_if_due(self, now: float) -> None:
        reason = self._switch_reason(now)
        if reason is not None and self.ending is None:
            logger.info("moving to a new %s (%s)", self._noun, reason, extra=self._extra())
            self._end(RollOver(reason))

    def _reconnect(self, now: float, failure: Failure) -> None:
        """Reconnect, unless sessions keep failing right after they open."""
        quick = self._configured_at is None or now - self._configured_at < QUICK_FAILURE_SECONDS
        self._quick_failures = self._quick_failures + 1 if quick else 0
        if self._quick_failures >= MAX_QUICK_FAILURES:
            self._fail(
                Failure(
                    f"{self._quick_failures} {self._noun}s in a row failed right after opening "
                    f"(last: {failure.message}); giving up instead of reconnecting again",
                    Action.FATAL,
                    failure.kind,
                    failure.body,
                )
            )
            return
        self._end(Reconnect(failure))

    def _fail(self, failure: Failure) -> None:
        self._set_state(State.FAILED)
        self._end(Fail(failure))

    def _end(self, decision: Ending) -> None:
        self.ending = decision
        self._emit(decision)

    def _deadlines(self) -> list[float | None]:
        if self.ending is not None:
            return []
        if self.state is State.CONFIGURING:
            return [self._opened_at + self.timers.configure_timeout]
        if self.state is not State.LIVE:
            return []
        blocked = (
            self._taken_at + self.timers.result_timeout if self._taken_at is not None else None
        )
        return [blocked, self._rollover_at, self._hard_deadline, *self._live_deadlines()]

    def _plan_rollover(self, expires_at: float | None) -> None:
        """Schedule the roll-over ahead of ``expires_at`` (unix seconds)."""
        self._rollover_at = self._hard_deadline = None
        if expires_at is None:
            return
        expires = expires_at - self._wall_offset  # on the monotonic clock
        lifetime = expires - self._opened_at
        if lifetime <= 0:
            return
        margin = min(self.timers.rollover_margin, lifetime * 0.3)
        self._rollover_at = expires - margin
        self._hard_deadline = expires - min(5.0, lifetime * 0.1)

    def _switch_reason(self, now: float) -> str | None:
        """Why the stream should move to a new session now, if it should.

        A planned switch waits for a boundary: no result owed and no speech in progress, so no
        utterance straddles two sessions (what is owed moves whole, by replay). Past the hard
        deadline it goes anyway; the replay still loses nothing.
        """
        if self._rollover_at is None and not self._new_session_wanted:
            return None
        if self._hard_deadline is not None and now >= self._hard_deadline:
            return "session about to expire"
        at_boundary = self._nothing_in_flight() and not self.speaking
        if self._new_session_wanted and at_boundary:
            return "model or language change"
        if self._rollover_at is not None and now >= self._rollover_at and at_boundary:
            return "session roll-over before expiry"
        return None

    def _set_state(self, new: State) -> None:
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"session state {self.state.value} -> {new.value} is not allowed")
        self.state = new

    def _emit(self, output: _OutputT | Ending) -> None:
        self._outputs.append(output)

    def _extra(self) -> dict[str, object]:
        return {"session_id": self.session_id, "model": self.config.model}
