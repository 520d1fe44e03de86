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
from .lifecycle import SessionLifecycle
from .log import logger
from .records import Ending, Fail, Failure, Finish, Replay, RollOver
from .states import SOCKET_STATES, State, Timers
from .translation_ledger import TranslationLedger
from .translation_records import ConfigureTranslation, TranslationOutput

FRAME = tp.FRAME_BYTES


class TranslationSession(SessionLifecycle[tp.TranslationConfig, TranslationOutput]):
    """One stream's translation, across as many server sessions as it takes.

    The states, socket inputs, shared timers and ending decisions are the
    :class:`~.lifecycle.SessionLifecycle`'s; this class adds the frames, segments and the close.

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

    _noun = "translation session"

    def __init__(
        self,
        config: tp.TranslationConfig,
        *,
        timers: Timers,
        replay_limit_bytes: int,
        segment_timeout: float,
    ) -> None:
        super().__init__(config, timers=timers)
        self.ledger = TranslationLedger(
            replay_limit_bytes=replay_limit_bytes,
            segment_timeout=segment_timeout,
            emit=self._emit,
            source_enabled=config.source_transcription is not None,
            language=config.target_language,
        )
        self._pending = bytearray()  # appended audio short of a whole frame
        self._control: deque[bytes] = deque()  # session.update, before any audio
        self._close_sent_at: float | None = None  # session.close went out on this socket

    # -- reading -----------------------------------------------------------------------------------

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

    def socket_released(self) -> None:
        """The adapter closed the socket after an ending decision: what it was owed is owed to
        the next one (see :meth:`.SessionLifecycle.socket_released`)."""
        self.ledger.end_socket()
        super().socket_released()

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
            self._on_created(ev)
        elif isinstance(ev, p.SessionUpdated):
            self._on_updated(ev, now)
        else:
            self._skip(ev)

    # -- the lifecycle's hooks ----------------------------------------------------------------------

    def _tick_live(self, now: float) -> None:
        """A blocked send, the held frame and the segments' finals, the wait for
        ``session.closed``, and the roll-over."""
        if self._send_blocked(now):
            return
        self.ledger.tick(now)
        if (
            self._close_sent_at is not None
            and now - self._close_sent_at >= self.timers.final_timeout
        ):
            self._give_up_waiting()
            return
        self._check_finished()
        self._roll_over_if_due(now)

    def _live_deadlines(self) -> list[float | None]:
        closing = (
            self._close_sent_at + self.timers.final_timeout
            if self._close_sent_at is not None
            else None
        )
        return [closing, self.ledger.next_deadline()]

    def _nothing_in_flight(self) -> bool:
        return not self.ledger.closed

    def _configure_record(self) -> TranslationOutput:
        return ConfigureTranslation(self.config)

    def _reset_sending(self) -> None:
        self._control.clear()
        self._close_sent_at = None

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
        if not self._going_live(now):
            return
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

    def _fail(self, failure: Failure) -> None:
        self.ledger.release_all()
        self.ledger.bill("translation_end")
        super()._fail(failure)

    def _end(self, decision: Ending) -> None:
        if not isinstance(decision, Fail | Finish):
            self.ledger.bill(f"translation_{self.session_id or 'session'}")
        super()._end(decision)
