"""The transcription session as a sans-I/O state machine.

A :class:`TranscriptionSession` is fed what happens to a stream (audio appended, a flush, the
end of input, a parsed server event, a socket opened or lost, the passage of time) and answers
with what to do: the next message to send (:meth:`~TranscriptionSession.data_to_send`), the
records the stream emits (interim and final transcripts, usage, speech start and end), and
explicit decisions (configure, replay, roll over, reconnect, finish, fail), all drained with
:meth:`~TranscriptionSession.take_outputs`. It never opens a socket, awaits, or reads a clock:
every input carries ``now`` (monotonic seconds). The asyncio adapter (:mod:`.stream`) does the
I/O; tests drive this class directly with a fake clock.

States (:class:`State`, in :mod:`.states`) and their transitions (``socket_adopted()``, a
prewarmed session already configured, goes through CONFIGURING to LIVE at once)::

    IDLE ──connecting()──> CONNECTING ──socket_opened()──> CONFIGURING ──session.updated──> LIVE
     ^                        │                                │                             │
     └──── connect_failed() ──┘                                └──── socket lost, ───────────┤
     └──────────────── a reconnect or roll-over decision (socket_released()) ────────────────┘
    any live state ──end of input and every result released──> FINISHED
    any state ──fatal error──> FAILED

Audio never waits for a socket: it goes into the :class:`~.ledger.AudioLedger` at once, and a
send cursor walks the ledger while the session is LIVE. A flush is recorded in the ledger the
moment it is taken, so losing a socket (or a send) can never lose or merge an utterance: the
next socket's cursor starts at the oldest audio still owed a transcript (the replay).

No billed silence (``skip_silence``): audio to commit that holds no speech (by the stream's VAD
when it runs one, else by a conservative energy gate on the levels the adapter measures) is
cleared instead of committed. With a VAD, open audio the VAD has not seen yet is held back
(:meth:`TranscriptionSession.vad_progress`), so its end of speech commits exactly there, however
fast the audio arrives.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import protocol as p
from .errors import Action
from .intake import CloseResult, Intake
from .ledger import AudioLedger
from .lifecycle import SessionLifecycle
from .log import logger
from .models import model_spec
from .records import Configure, Failure, Finish, Output, Replay, SpeechEnd, SpeechStart
from .results import Results
from .sender import Sender
from .states import (  # re-exported: session.State, session.TRANSITIONS, session.Timers
    MAX_QUICK_FAILURES as MAX_QUICK_FAILURES,
    QUICK_FAILURE_SECONDS as QUICK_FAILURE_SECONDS,
    SOCKET_STATES as SOCKET_STATES,
    TRANSITIONS as TRANSITIONS,
    State as State,
    Timers as Timers,
)

# ------------------------------------------------------------------------------------------------
# the session


class TranscriptionSession(SessionLifecycle[p.SessionConfig, Output]):
    """One stream's transcription, across as many server sessions as it takes.

    The states, socket inputs, shared timers and ending decisions are the
    :class:`~.lifecycle.SessionLifecycle`'s; this class adds the ledger, commits and results.

    Args:
        config: what ``session.update`` sends.
        timers: the watchdog and roll-over timers.
        replay_limit_bytes: most untranscribed audio kept to replay after a reconnect.
        local_vad: the stream runs a VAD of its own, so the server's speech events are not
            reported (one source of speech start/end), and that VAD says where speech is.
        skip_silence: clear audio to commit that holds no speech instead of committing it.
    """

    def __init__(
        self,
        config: p.SessionConfig,
        *,
        timers: Timers,
        replay_limit_bytes: int,
        local_vad: bool = False,
        skip_silence: bool = False,
    ) -> None:
        super().__init__(config, timers=timers)
        self.format = config.audio_format
        """The input audio format: the units of every position and length."""
        self.ledger = AudioLedger(replay_limit_bytes=replay_limit_bytes, audio_format=self.format)
        self.local_vad = local_vad
        self._sender = Sender(self.ledger)
        self._owed_since: float | None = None
        self._final_retried = False
        self._stopped_at: dict[str, int] = {}  # server-VAD item -> stream position of its end
        self._results = Results(self.ledger, self._emit)
        self._intake = Intake(
            self.ledger,
            self._results,
            self._sender,
            skip_silence=skip_silence,
            local_vad=local_vad,
            extra=self._extra,
        )
        self._apply_config(config)

    # -- reading -----------------------------------------------------------------------------------

    @property
    def server_commits(self) -> bool:
        """The server's VAD commits turns (else flushes, the stream's VAD and the end of input
        do)."""
        return self.config.turn_detection is not None

    @property
    def results(self) -> Results:
        """The answers side: interim texts, parked results, released items."""
        return self._results

    def data_to_send(self, now: float) -> bytes | None:
        """The next message for the socket, or None when there is nothing to send now.

        The caller sends it and then calls :meth:`sent`; a message not reported sent for
        ``result_timeout`` means the server stopped reading. Audio and commits come out only
        while LIVE, in stream order (see :class:`~.sender.Sender`).
        """
        sender = self._sender
        msg = sender.next_control()
        if msg is None:
            if self.state is not State.LIVE:
                return None
            issued = sender.commits_issued
            msg = sender.next_audio()
            if msg is None:
                return None
            if sender.commits_issued != issued and self._owed_since is None:
                self._owed_since = now
        self._taken_at = now
        return msg

    def wants_to_send(self) -> bool:
        """Whether :meth:`data_to_send` has a message now (a cheap check)."""
        return self._sender.has_control() or (self.state is State.LIVE and self._sender.has_audio())

    # -- inputs: audio -------------------------------------------------------------------------------

    @property
    def skipped_seconds(self) -> float:
        """Seconds of audio cleared instead of committed because they held no speech."""
        return self._intake.skipped_seconds

    @property
    def wants_level(self) -> bool:
        """Whether the next :meth:`audio` should carry its level: the energy gate is on and
        the open audio is not yet known to hold speech (so loud audio costs no measuring)."""
        return self._intake.wants_level

    def audio(self, data: bytes | memoryview, *, level: float | None = None) -> None:
        """Audio appended by the user, in the session's format. ``level`` is its loudest 10 ms
        RMS in dBFS, for the energy gate (None: not measured, so it may hold speech)."""
        self._intake.audio(data, level)

    def flush(self, at: int | None = None) -> bool:
        """Commit the audio so far (the session's VAD ended a turn), or up to stream position
        ``at`` (where the stream's VAD ended speech). Recorded at once; the commit goes out
        when the socket has sent the audio before it. Audio that holds no speech is cleared
        instead (``skip_silence``; an empty final answers the flush). When the stream's VAD
        has not judged the audio up to a flush yet, the flush waits for it (so an end of
        speech before it still cuts there). Returns False when no commit was made now (the
        server's VAD commits, the flush waits for the VAD, the audio held no speech, or less
        than 100 ms is open: that audio goes with the next commit)."""
        if self.server_commits:
            self._intake.seal()
            logger.debug("flush ignored: the server's VAD commits", extra=self._extra())
            return False
        return self._answer_flushes([self._intake.flush(at)])

    def end_input(self) -> None:
        """No more audio: commit what is left (a short tail padded to the 100 ms minimum, or
        cleared when it holds no speech), and finish once every result is released."""
        self.input_ended = True
        self._intake.end()
        self._check_finished()

    def set_speaking(self, speaking: bool) -> None:
        """The stream's own VAD says whether speech is in progress (roll-over waits for a
        pause; the audio it has seen since is speech)."""
        super().set_speaking(speaking)
        self._intake.speech.set_speaking(speaking)

    def vad_progress(self, pos: int) -> bool:
        """The stream's VAD has judged the audio up to stream position ``pos``: it may go out
        (later audio is held back, so a later end of speech can still cut there). False when
        ``pos`` is not a position in the audio (a VAD that does not report one): the VAD is then
        treated as lost (see :meth:`vad_lost`), and its ends of speech commit all audio so far."""
        positioned, flushes = self._intake.vad_progress(pos, input_ended=self.input_ended)
        self._answer_flushes(flushes)
        return positioned

    def vad_lost(self) -> None:
        """The stream's VAD stopped: nothing is held back any more, and every later byte may
        hold speech."""
        self._answer_flushes(self._intake.vad_lost())

    def update_config(self, config: p.SessionConfig, *, new_session: bool) -> None:
        """Options changed. In place with a ``session.update`` when the server allows it; with
        ``new_session`` (a new model, a value an update cannot clear) by moving to a new session
        at the next pause."""
        if config == self.config:
            return
        if config.audio_format != self.format:
            raise ValueError("a stream's audio format cannot change; open a new stream")
        self.config = config
        self._apply_config(config)
        if new_session:
            self._new_session_wanted = True
        elif self.state is State.LIVE:
            self._send_config()
        # CONNECTING or CONFIGURING: sent when session.updated arrives (see _on_updated)

    # -- inputs: the socket ------------------------------------------------------------------------

    def socket_adopted(
        self,
        now: float,
        *,
        wall: float,
        opened_at: float,
        created: p.SessionCreated,
        configured: p.SessionConfig,
    ) -> None:
        """The adapter took over a socket that was opened at ``opened_at`` and already
        configured with ``configured`` (a prewarmed session): the session is LIVE at once, and
        sends a ``session.update`` only if its own configuration differs."""
        self._begin_socket(now, wall=wall, opened_at=opened_at)
        self._config_sent = configured
        self._on_created(created)
        self._on_updated(now)

    # -- inputs: server events ---------------------------------------------------------------------

    def receive(self, ev: p.ServerEvent, now: float) -> None:
        """A parsed server event."""
        if self.state not in SOCKET_STATES or self.ending is not None:
            return
        if isinstance(ev, p.TranscriptDelta):
            self._on_delta(ev, now)
        elif isinstance(ev, p.TranscriptCompleted | p.TranscriptFailed):
            self._on_result(ev, now)
        elif isinstance(ev, p.Committed):
            self._on_committed(ev, now)
        elif isinstance(ev, p.SpeechStarted):
            self._on_speech_started(ev)
        elif isinstance(ev, p.SpeechStopped):
            self._on_speech_stopped(ev)
        elif isinstance(ev, p.ServerError):
            self._on_error(ev, now)
        elif isinstance(ev, p.SessionCreated):
            self._on_created(ev)
        elif isinstance(ev, p.SessionUpdated):
            self._on_updated(now)
        elif isinstance(ev, p.Malformed | p.Unknown):
            self._skip(ev)

    # -- the lifecycle's hooks ----------------------------------------------------------------------

    def _tick_live(self, now: float) -> None:
        """The result watchdog, a blocked send, and the moment to roll over."""
        stall = self._stall_timeout()
        if self._owed_since is not None and now - self._owed_since >= stall:
            self._reconnect(
                now,
                Failure(
                    f"no transcription result within {stall:g} s of a commit on session "
                    f"{self.session_id}: the socket looks stalled "
                    f"(result_timeout={self.timers.result_timeout:g} s)",
                    Action.RECONNECT,
                    "timeout",
                ),
            )
            return
        if self._send_blocked(now):
            return
        self._roll_over_if_due(now)

    def _live_deadlines(self) -> list[float | None]:
        return [self._owed_since + self._stall_timeout() if self._owed_since is not None else None]

    def _nothing_in_flight(self) -> bool:
        return not self.ledger.in_flight

    def _configure_record(self) -> Output:
        return Configure(self.config)

    def _reset_sending(self) -> None:
        self._sender.reset()
        self._owed_since = None

    # -- internals: audio out ------------------------------------------------------------------------

    def _answer_flushes(self, results: Sequence[CloseResult | None]) -> bool:
        """A flush that cleared its audio is answered with an empty final (so a framework
        waiting on it goes on at once). True when one committed."""
        for result in results:
            if result == "cleared":
                self._results.empty_final()
        return "committed" in results

    def _apply_config(self, config: p.SessionConfig) -> None:
        self._results.language = config.hint_language
        self._results.preflight = model_spec(config.family).streams_before_commit

    def _send_config(self) -> None:
        update = p.session_update(self.config, event_id="session_update")
        self._sender.control(p.encode(update))
        self._config_sent = self.config

    # -- internals: server events --------------------------------------------------------------------

    def _on_updated(self, now: float) -> None:
        if not self._going_live(now):
            return
        plan = self.ledger.reset_socket(server_commits=self.server_commits)
        self._results.new_socket()  # the old socket's item ids can no longer match
        self._stopped_at.clear()
        self._sender.start(plan.start)
        self._owed_since = None
        self._emit(Replay(plan))
        if plan.lost_bytes:
            logger.warning(
                "replaying %.2f s of audio to the new session; %.2f s older than the replay "
                "bound could not be replayed%s",
                self.format.seconds(plan.owed_bytes),
                self.format.seconds(plan.lost_bytes),
                f" ({len(plan.lost_segments)} utterance(s) lost)" if plan.lost_segments else "",
                extra={**self._extra(), "lost_bytes": plan.lost_bytes},
            )
        elif plan.owed_bytes:
            logger.debug(
                "replaying %.2f s of audio",
                self.format.seconds(plan.owed_bytes),
                extra=self._extra(),
            )
        if plan.lost_segments:
            self._results.release()
        if self.input_ended:
            # the end-of-input commit went back into the open audio with the old socket
            self._intake.commit_tail()
        self._check_finished()

    def _on_delta(self, ev: p.TranscriptDelta, now: float) -> None:
        owed = self._results.delta(ev)
        if owed and self._owed_since is not None:
            self._owed_since = now  # the server is working on what it owes

    def _on_committed(self, ev: p.Committed, now: float) -> None:
        end_pos = self._stopped_at.pop(ev.item_id, None)
        if self._results.committed(
            ev.item_id,
            previous_item_id=ev.previous_item_id,
            end_pos=end_pos,
            server_commits=self.server_commits,
        ):
            seg = self.ledger.find(ev.item_id)
            if seg is not None and seg.by_server:
                self._sender.server_committed(seg.end)
            self._after_results(now)

    def _on_result(self, ev: p.TranscriptCompleted | p.TranscriptFailed, now: float) -> None:
        if self._results.result(ev, server_commits=self.server_commits):
            self._quick_failures = 0
        self._after_results(now)

    def _after_results(self, now: float) -> None:
        self._owed_since = now if self.ledger.owed() else None
        self._check_finished()

    def _on_speech_started(self, ev: p.SpeechStarted) -> None:
        self._stopped_at.pop(ev.item_id, None)
        if self.local_vad or self.speaking:
            return
        self.speaking = True
        self._emit(SpeechStart(self.format.seconds(self._sender.stream_pos(ev.audio_start_ms))))

    def _on_speech_stopped(self, ev: p.SpeechStopped) -> None:
        pos = self._sender.stream_pos(ev.audio_end_ms)
        self._stopped_at[ev.item_id] = pos
        if self.local_vad or not self.speaking:
            return
        self.speaking = False
        self._emit(SpeechEnd(self.format.seconds(pos)))

    def _on_refused_commit(self, err: p.ServerError, now: float) -> None:
        """The server kept its buffer (§3.3). The refused commit is the one the error names,
        or, when it names none (``event_id`` null, as observed), the oldest commit no
        ``committed`` answered: never the next item's."""
        seg = (
            self.ledger.find_commit(err.event_id)
            if err.event_id
            else self.ledger.oldest_waiting_commit()
        )
        extra = {**self._extra(), "code": err.code}
        if seg is None or seg.item_id is not None:
            logger.warning("server warning (%s): %s", err.code, err.message, extra=extra)
            return
        logger.warning(
            "the server refused a commit (%s: %s); its audio goes with the next one",
            err.code,
            err.message,
            extra=extra,
        )
        self.ledger.refuse(seg)
        self._sender.refused(seg)
        self._results.refused(seg)
        self._owed_since = now if self.ledger.owed() else None
        if not self.input_ended:
            return
        # after the end of input there is no next commit: retry once, then let that audio go
        # (the server had less than we sent, e.g. its VAD already committed it)
        if not self._final_retried:
            self._final_retried = True
            self._intake.commit_tail()
            return
        dropped = self.ledger.abandon_open()
        logger.warning(
            "end of input: the server refused to commit the last %.0f ms of audio twice; "
            "not waiting for it",
            self.format.seconds(dropped) * 1000,
            extra=self._extra(),
        )
        self._check_finished()

    # -- internals: decisions ------------------------------------------------------------------------

    def _check_finished(self) -> None:
        if not self.input_ended or self.ending is not None or self.state is State.FAILED:
            return
        if self.ledger.in_flight or self.ledger.open.nbytes or self._intake.pending:
            return
        self._set_state(State.FINISHED)
        self._end(Finish())

    def _stall_timeout(self) -> float:
        if self.input_ended:
            return min(self.timers.result_timeout, self.timers.final_timeout)
        return self.timers.result_timeout
