"""The translation session as a sans-I/O state machine.

A :class:`TranslationSession` is the translation counterpart of
:class:`~.session.TranscriptionSession`, with the same states (:class:`~.session.State` and its
transition table), timers (:class:`~.session.Timers`), error policy (:mod:`.errors`) and ending
decisions (:mod:`.records`). It is fed audio, segment ends (:meth:`~TranslationSession.flush`,
the stream's VAD, :meth:`~TranslationSession.end_input`), parsed server events, the socket
opening and closing, and the time; it answers with messages to send
(:meth:`~TranslationSession.data_to_send`: ``session.update``, whole 200 ms frames of audio,
``session.close``), records (interim and final translations, translated audio, usage) and
decisions (configure, replay, roll over, reconnect, finish, fail). It never opens a socket,
awaits, or reads a clock.

What differs from transcription (docs/protocol.md §5): there are no commits and no items. The
server translates 200 ms frames as they arrive, so audio goes out in whole frames; the segment
a final covers is cut by the client at a frame boundary; and what is owed after a lost socket is
every frame whose translation did not arrive (:class:`~.translation_ledger.TranslationLedger`),
replayed from the first such frame. At the end of input the session sends ``session.close`` and
finishes at ``session.closed`` (§5.2), or after ``final_timeout`` without it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from . import protocol as p, translation_protocol as tp
from .errors import Action, Verdict, classify_close, classify_error
from .log import logger
from .records import Ending, Fail, Failure, Finish, Reconnect, Replay, RollOver
from .session import (
    MAX_QUICK_FAILURES,
    QUICK_FAILURE_SECONDS,
    SOCKET_STATES,
    TRANSITIONS,
    State,
    Timers,
)
from .translation_ledger import TranslationLedger
from .translation_records import ConfigureTranslation, TranslationOutput

FRAME = tp.FRAME_BYTES


class TranslationSession:
    """One stream's translation, across as many server sessions as it takes.

    Args:
        config: what ``session.update`` sends.
        timers: the set-up, blocked-send, end-of-input and roll-over timers
            (``result_timeout`` bounds a blocked send; ``final_timeout`` the wait for
            ``session.closed``).
        replay_limit_bytes: most audio whose translation has not arrived, kept to replay after
            a lost socket.
        segment_timeout: seconds a segment's final waits for the translation of its audio
            after its last frame went out.
    """

    def __init__(
        self,
        config: tp.TranslationConfig,
        *,
        timers: Timers,
        replay_limit_bytes: int,
        segment_timeout: float,
    ) -> None:
        self.config = config
        self.timers = timers
        self.state = State.IDLE
        self.session_id = ""
        """The server's id of the current session (empty before ``session.created``)."""
        self.skipped_frames = 0
        """Server frames that could not be used (malformed, unknown type, binary)."""
        self.speaking = False
        """The stream's VAD hears speech: no roll-over now."""
        self.input_ended = False
        self.ending: Ending | None = None
        """The decision that ended the current socket's part, until :meth:`socket_released`."""
        self._outputs: list[TranslationOutput] = []
        self.ledger = TranslationLedger(
            replay_limit_bytes=replay_limit_bytes,
            segment_timeout=segment_timeout,
            emit=self._outputs.append,
            source_enabled=config.source_transcription is not None,
            language=config.target_language,
        )
        self._pending = bytearray()  # appended audio short of a whole frame
        self._control: deque[bytes] = deque()  # session.update, before any audio
        self._taken_at: float | None = None  # a message handed out and not yet reported sent
        self._close_sent_at: float | None = None  # session.close went out on this socket
        self._opened_at = 0.0
        self._configured_at: float | None = None
        self._wall_offset = 0.0
        self._config_sent: tp.TranslationConfig | None = None
        self._rollover_at: float | None = None
        self._hard_deadline: float | None = None
        self._quick_failures = 0

    # -- reading -----------------------------------------------------------------------------------

    def take_outputs(self) -> list[TranslationOutput]:
        """The records and decisions produced since the last call, in order."""
        out = self._outputs[:]
        self._outputs.clear()
        return out

    def has_outputs(self) -> bool:
        """Whether :meth:`take_outputs` has anything."""
        return bool(self._outputs)

    def data_to_send(self, now: float) -> bytes | None:
        """The next message for the socket, or None: ``session.update`` first, then (while
        LIVE) the audio in whole frames from the send cursor, then, once the input ended and
        everything went out, ``session.close`` (once per socket)."""
        msg = self._next_message(now)
        if msg is not None:
            self._taken_at = now
        return msg

    def wants_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has a message now (a cheap check)."""
        if self._control:
            return True
        if self.state is not State.LIVE or self.ending is not None:
            return False
        cursor = self.ledger.send_cursor
        return cursor is not None and (cursor < self.ledger.position or self._close_due())

    def sent(self) -> None:
        """The message last handed out by :meth:`data_to_send` went out."""
        self._taken_at = None

    def next_timer(self, now: float) -> float | None:
        """Seconds until the next timer is due, or None when no timer runs."""
        due = [d for d in self._deadlines() if d is not None]
        return max(0.0, min(due) - now) if due else None

    # -- inputs: audio -----------------------------------------------------------------------------

    def audio(self, pcm: bytes | memoryview) -> None:
        """Audio appended by the user (pcm16 mono, 24 kHz): kept at once, sealed into whole
        frames for sending."""
        self._pending += pcm
        if len(self._pending) >= FRAME:
            whole = len(self._pending) - len(self._pending) % FRAME
            self.ledger.append(bytes(self._pending[:whole]))
            del self._pending[:whole]

    def flush(self, now: float) -> bool:
        """End the segment at the last frame boundary (the session's VAD ended a turn): its
        final comes once its translation arrived. Returns False when no whole frame was
        appended since the last cut (that audio goes with the next segment)."""
        return self.ledger.cut(now) is not None

    def end_input(self, now: float) -> None:
        """No more audio: complete the last frame with silence, end the last segment, and
        close the session once everything went out (``session.close``)."""
        self.input_ended = True
        if self._pending:
            self.audio(bytes(-len(self._pending) % FRAME))
        self.ledger.cut(now)
        self._check_finished()

    def set_speaking(self, speaking: bool) -> None:
        """The stream's own VAD says whether speech is in progress (roll-over waits for a
        pause)."""
        self.speaking = speaking

    def update_config(self, config: tp.TranslationConfig) -> None:
        """Options changed: a ``session.update`` applies them in place (§5.2: the target
        language, the source transcription and the noise reduction can all change); while the
        session is being set up, they go out when it is configured."""
        if config == self.config:
            return
        self.config = config
        self.ledger.source_enabled = config.source_transcription is not None
        if self.state is State.LIVE and self.ending is None:
            self._send_config()

    # -- inputs: the socket ------------------------------------------------------------------------

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
        self._set_state(State.CONFIGURING)
        self.session_id = ""
        self.ending = None
        self._opened_at = now
        self._configured_at = None
        self._wall_offset = wall - now
        self._rollover_at = self._hard_deadline = None
        self._control.clear()
        self._taken_at = self._close_sent_at = None
        self._send_config()
        self._emit(ConfigureTranslation(self.config))

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
        message = (
            f"OpenAI closed translation session {self.session_id or '?'} with {code} {reason!r}"
        )
        self._on_verdict(now, verdict, message, {"close_code": code, "reason": reason})

    def socket_released(self) -> None:
        """The adapter closed the socket after an ending decision: back to IDLE (unless the
        session finished or failed), ready for the next socket."""
        self.ledger.end_socket()
        self._control.clear()
        self._taken_at = self._close_sent_at = None
        self._rollover_at = self._hard_deadline = None
        if self.state in SOCKET_STATES or self.state is State.CONNECTING:
            self._set_state(State.IDLE)
        self.ending = None

    def binary_frame(self, size: int) -> None:
        """The server sent a binary frame, which the protocol does not use: counted, skipped."""
        self.skipped_frames += 1
        logger.debug("ignoring a binary frame of %d bytes", size, extra=self._extra())

    # -- inputs: server events ---------------------------------------------------------------------

    def receive(self, ev: tp.ServerEvent, now: float) -> None:
        """A parsed server event."""
        if self.state not in SOCKET_STATES or self.ending is not None:
            return
        if isinstance(ev, tp.OutputTranscript | tp.OutputAudio | tp.InputTranscript):
            if self.state is State.LIVE:
                self.ledger.output(ev, now)
                self._check_finished()
        elif isinstance(ev, tp.SessionClosed):
            self._on_closed(now)
        elif isinstance(ev, p.ServerError):
            self._on_error(ev, now)
        elif isinstance(ev, p.SessionCreated):
            self.session_id = ev.session_id
            self._plan_rollover(ev.expires_at)
        elif isinstance(ev, p.SessionUpdated):
            self._on_updated(ev, now)
        elif isinstance(ev, p.Malformed):
            self.skipped_frames += 1
            logger.warning("ignoring a malformed server event: %s", ev.reason, extra=self._extra())
        else:
            self.skipped_frames += 1
            logger.debug("ignoring unknown server event %r", ev.type, extra=self._extra())

    # -- inputs: time --------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Check the timers: the set-up deadline, a blocked send, the held frame and the
        segments' finals, the wait for ``session.closed``, and the roll-over."""
        if self.ending is not None:
            return
        if self.state is State.CONFIGURING:
            if now - self._opened_at >= self.timers.configure_timeout:
                self._reconnect(
                    now,
                    Failure(
                        f"no session.updated within {self.timers.configure_timeout:g} s "
                        f"(translation session {self.session_id or '?'})",
                        Action.RECONNECT,
                        "timeout",
                    ),
                )
            return
        if self.state is not State.LIVE:
            return
        if self._taken_at is not None and now - self._taken_at >= self.timers.result_timeout:
            self._reconnect(
                now,
                Failure(
                    f"sending audio blocked for {self.timers.result_timeout:g} s on translation "
                    f"session {self.session_id}: the server stopped reading",
                    Action.RECONNECT,
                    "timeout",
                ),
            )
            return
        self.ledger.tick(now)
        if (
            self._close_sent_at is not None
            and now - self._close_sent_at >= self.timers.final_timeout
        ):
            self._give_up_waiting()
            return
        self._check_finished()
        reason = self._switch_reason(now)
        if reason is not None and self.ending is None:
            logger.info("moving to a new translation session (%s)", reason, extra=self._extra())
            self._end(RollOver(reason))

    # -- internals: sending --------------------------------------------------------------------------

    def _next_message(self, now: float) -> bytes | None:
        if self._control:
            return self._control.popleft()
        if self.state is not State.LIVE or self.ending is not None:
            return None
        ledger = self.ledger
        cursor = ledger.send_cursor
        if cursor is None:
            return None
        if cursor < ledger.position:
            frame = ledger.store.read(cursor, FRAME)
            ledger.sent(len(frame), now)
            return tp.append_message(frame)
        if self._close_due():
            self._close_sent_at = now
            return tp.CLOSE_MESSAGE
        return None

    def _close_due(self) -> bool:
        """The input ended, every frame went out and ``session.close`` did not yet."""
        return (
            self.input_ended
            and not self._pending
            and self._close_sent_at is None
            and self.ledger.send_cursor == self.ledger.position
            and self.ledger.owed()
        )

    def _send_config(self) -> None:
        self._control.append(p.encode(tp.session_update(self.config, event_id="session_update")))
        self._config_sent = self.config

    # -- internals: server events --------------------------------------------------------------------

    def _on_updated(self, ev: p.SessionUpdated, now: float) -> None:
        # the language the server confirms is the one text from now on is in (§5.3)
        audio = ev.session.get("audio")
        output = audio.get("output") if isinstance(audio, Mapping) else None
        language = output.get("language") if isinstance(output, Mapping) else None
        if not isinstance(language, str) or not language:
            language = self.config.target_language
        self.ledger.set_language(language)
        if self.state is State.LIVE:
            logger.debug("translation session options updated", extra=self._extra())
            return
        self._set_state(State.LIVE)
        self._configured_at = now
        if self._config_sent != self.config:
            self._send_config()  # options changed while the session was being set up
        plan = self.ledger.start_socket()
        self._emit(Replay(plan))
        if plan.lost_bytes:
            logger.warning(
                "replaying %.2f s of audio to the new translation session; %.2f s older than "
                "the replay bound could not be replayed and goes untranslated",
                plan.owed_bytes / p.BYTES_PER_SECOND,
                plan.lost_bytes / p.BYTES_PER_SECOND,
                extra={**self._extra(), "lost_bytes": plan.lost_bytes},
            )
        elif plan.owed_bytes:
            logger.debug(
                "sending %.2f s of audio not translated yet",
                plan.owed_bytes / p.BYTES_PER_SECOND,
                extra=self._extra(),
            )
        self.ledger.release_finals(now)
        self._check_finished()

    def _on_closed(self, now: float) -> None:
        """``session.closed``: every frame sent was translated (§5.2)."""
        self.ledger.closed_by_server(now)
        self._quick_failures = 0
        if self.input_ended:
            self._check_finished()
            if self.ending is None:  # audio arrived after the close went out: a new session
                self._end(RollOver("the session closed before the last audio"))
            return
        logger.warning("the server closed the translation session", extra=self._extra())
        self._end(RollOver("the server closed the session"))

    def _on_error(self, err: p.ServerError, now: float) -> None:
        verdict = classify_error(err.code, err.type, configuring=self.state is State.CONFIGURING)
        if verdict.action in (Action.WARN, Action.REFUSED_COMMIT):
            extra = {**self._extra(), "code": err.code, "param": err.param}
            logger.warning("server warning (%s): %s", err.code, err.message, extra=extra)
            return
        message = (
            f"OpenAI error on translation session {self.session_id or '?'} ({err.code}): "
            f"{err.message}"
        )
        body = {"code": err.code, "type": err.type, "param": err.param}
        self._on_verdict(now, verdict, message, body)

    def _on_verdict(
        self, now: float, verdict: Verdict, message: str, body: Mapping[str, object]
    ) -> None:
        failure = Failure(f"{message} -> {verdict.hint}", verdict.action, "server", body)
        if verdict.action is Action.FATAL:
            self._fail(failure)
        elif verdict.action is Action.ROLL_OVER:
            logger.warning(
                "translation session ended by the server (%s); continuing in a new session",
                verdict.hint,
                extra=self._extra(),
            )
            self._end(RollOver(verdict.hint))
        else:
            self._reconnect(now, failure)

    # -- internals: decisions ------------------------------------------------------------------------

    def _give_up_waiting(self) -> None:
        untranslated = self.ledger.position - self.ledger.confirmed_to
        logger.warning(
            "no session.closed within %g s of session.close; finishing with %.2f s of audio "
            "whose translation did not arrive",
            self.timers.final_timeout,
            untranslated / p.BYTES_PER_SECOND,
            extra=self._extra(),
        )
        self.ledger.release_all()
        self._finish()

    def _check_finished(self) -> None:
        if not self.input_ended or self.ending is not None or self.state is State.FAILED:
            return
        if self._pending or self.ledger.owed() or self.ledger.closed:
            return
        self._finish()

    def _finish(self) -> None:
        self.ledger.bill("translation_end")
        self._set_state(State.FINISHED)
        self._end(Finish())

    def _reconnect(self, now: float, failure: Failure) -> None:
        """Reconnect, unless sessions keep failing right after they open."""
        quick = self._configured_at is None or now - self._configured_at < QUICK_FAILURE_SECONDS
        self._quick_failures = self._quick_failures + 1 if quick else 0
        if self._quick_failures >= MAX_QUICK_FAILURES:
            self._fail(
                Failure(
                    f"{self._quick_failures} translation sessions in a row failed right after "
                    f"opening (last: {failure.message}); giving up instead of reconnecting again",
                    Action.FATAL,
                    failure.kind,
                    failure.body,
                )
            )
            return
        self._end(Reconnect(failure))

    def _fail(self, failure: Failure) -> None:
        self.ledger.release_all()
        self.ledger.bill("translation_end")
        self._set_state(State.FAILED)
        self._end(Fail(failure))

    def _end(self, decision: Ending) -> None:
        if not isinstance(decision, Fail | Finish):
            self.ledger.bill(f"translation_{self.session_id or 'session'}")
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
        closing = (
            self._close_sent_at + self.timers.final_timeout
            if self._close_sent_at is not None
            else None
        )
        return [
            blocked,
            closing,
            self.ledger.next_deadline(),
            self._rollover_at,
            self._hard_deadline,
        ]

    def _plan_rollover(self, expires_at: float | None) -> None:
        """Schedule the roll-over ahead of ``expires_at`` (unix seconds), as transcription
        sessions do."""
        self._rollover_at = self._hard_deadline = None
        if expires_at is None:
            return
        expires = expires_at - self._wall_offset
        lifetime = expires - self._opened_at
        if lifetime <= 0:
            return
        self._rollover_at = expires - min(self.timers.rollover_margin, lifetime * 0.3)
        self._hard_deadline = expires - min(5.0, lifetime * 0.1)

    def _switch_reason(self, now: float) -> str | None:
        """Why the stream should move to a new session now: at a pause (no segment waiting for
        its final, no speech in progress) past the roll-over time, or anyway past the hard
        deadline. What was not translated yet is replayed, so nothing is lost either way."""
        if self._rollover_at is None:
            return None
        if self._hard_deadline is not None and now >= self._hard_deadline:
            return "session about to expire"
        if now >= self._rollover_at and not self.ledger.closed and not self.speaking:
            return "session roll-over before expiry"
        return None

    def _set_state(self, new: State) -> None:
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"session state {self.state.value} -> {new.value} is not allowed")
        self.state = new

    def _emit(self, output: TranslationOutput) -> None:
        self._outputs.append(output)

    def _extra(self) -> dict[str, object]:
        return {"session_id": self.session_id, "model": self.config.model}
