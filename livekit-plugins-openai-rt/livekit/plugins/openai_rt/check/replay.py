"""Replay a recorded trace through the sans-I/O session core, with the trace's clock.

The core (:class:`~..session.TranscriptionSession`) is driven in lockstep with the trace: each
recorded client event is matched with the message the core sends in its place, feeding the core
the user's input only when it has nothing of its own to send (a new socket first replays what
is owed, as the trace shows), and each recorded server event is fed to it at its recorded time.
What the core then emits (finals, interims, decisions) is the plugin's answer to that traffic.

Client ids differ between the recorded client and the core: ``error.event_id`` is translated
from the recorded client's commit or ``session.update`` to the core's own. The answer to a client
event this plugin would never send (a commit of an empty buffer, a probing ``session.update``)
is not fed to the core, and is listed in :attr:`ReplayResult.skipped`.

A trace's header may say what the replay must produce::

    "expect": {"finals": [["item_1", "hello"]], "endings": ["roll_over"]}

``finals`` are ``[item_id, text]`` pairs in the order the stream must emit them; ``endings``
are the core's decisions to end a socket (``reconnect``, ``roll_over``, ``finish``, ``fail``),
in order. Without ``finals``, the expected finals are the server's non-empty ``completed``
transcripts of the committed items, in commit order (:func:`expected_finals`).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .. import protocol as p, records as r
from ..session import State, Timers, TranscriptionSession
from .trace import Trace, redact_audio

_ENDINGS: dict[type[r.Output], str] = {
    r.Reconnect: "reconnect",
    r.RollOver: "roll_over",
    r.Finish: "finish",
    r.Fail: "fail",
}

REPLAY_SECONDS = 30.0
"""The replay bound the core runs with (``STT(replay_seconds=...)``'s default)."""


@dataclass
class ReplayResult:
    """What the core did with a trace.

    Attributes:
        finals: ``(item_id, text)`` of every final transcript, in emission order.
        interims: ``(item_id, text)`` of every interim transcript.
        endings: the core's decisions to end a socket, in order.
        failure: the message of a ``fail`` decision, if any.
        sent: every message the core sent (appends recorded as ``audio_bytes``).
        skipped: server answers not fed to the core, and why.
        owed: at the end of the trace the core still waits for a result of a commit it sent.
    """

    finals: list[tuple[str, str]] = field(default_factory=list)
    interims: list[tuple[str, str]] = field(default_factory=list)
    endings: list[str] = field(default_factory=list)
    failure: str | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    owed: bool = False


def session_config(trace: Trace) -> p.SessionConfig:
    """The configuration of the trace's first ``session.update`` (what the core sends)."""
    update = next(
        (
            rec.data
            for rec in trace.records
            if rec.kind == "client" and rec.data.get("type") == "session.update"
        ),
        {},
    )
    session = update.get("session") or {}
    inp = (session.get("audio") or {}).get("input") or {}
    tr = inp.get("transcription") or {}
    noise = inp.get("noise_reduction") or {}
    return p.SessionConfig(
        model=tr.get("model") or trace.model,
        language=tr.get("language"),
        delay=tr.get("delay"),
        prompt=tr.get("prompt"),
        turn_detection=inp.get("turn_detection"),
        noise_reduction=noise.get("type"),
        logprobs=p.LOGPROBS_INCLUDE in (session.get("include") or ()),
        model_family=trace.header.get("model_family"),
    )


def expected_finals(trace: Trace) -> list[tuple[str, str]]:
    """The finals a trace must produce: its header's ``expect.finals``, else the server's
    non-empty ``completed`` transcripts of committed items, in commit order."""
    expect = trace.header.get("expect") or {}
    if "finals" in expect:
        return [(str(item), str(text)) for item, text in expect["finals"]]
    order: list[str] = []
    transcripts: dict[str, str] = {}
    for rec in trace.records:
        if rec.kind != "server":
            continue
        etype = rec.data.get("type")
        item = str(rec.data.get("item_id") or "")
        if etype == "input_audio_buffer.committed" and item not in order:
            order.append(item)
        elif etype == "conversation.item.input_audio_transcription.completed":
            transcripts.setdefault(item, rec.data.get("transcript") or "")
    return [(i, transcripts[i]) for i in order if transcripts.get(i, "").strip()]


def replay(trace: Trace, *, timers: Timers | None = None) -> ReplayResult:
    """Drive a fresh session core with ``trace`` and return what it did."""
    return _Replayer(trace, timers or Timers()).run()


class _Replayer:
    def __init__(self, trace: Trace, timers: Timers) -> None:
        self.trace = trace
        self.session = TranscriptionSession(
            session_config(trace),
            timers=timers,
            replay_limit_bytes=int(REPLAY_SECONDS * p.PCM16.bytes_per_second),
        )
        self.wall0 = float(trace.header.get("started_at") or 0.0)
        self.ids: dict[
            str, str | None
        ] = {}  # recorded client event id -> the core's (None: not sent)
        self.queue: deque[dict[str, Any]] = deque()  # the core's sent messages not matched yet
        self.fed = 0  # bytes of user audio fed to the core
        self.replay_left = 0  # bytes of the next recorded appends that the core replays
        self.result = ReplayResult()

    def run(self) -> ReplayResult:
        for rec in self.trace.records:
            self.session.tick(rec.t)
            self._collect()
            if rec.kind == "open":
                self._open(rec.t)
            elif rec.kind == "refused":
                self.session.connecting()
                self.session.connect_failed()
            elif rec.kind == "client":
                self._client(rec.data, rec.t)
            elif rec.kind == "server":
                self._server(rec.data, rec.t)
            else:
                self._close(rec.data, rec.t)
            self._collect()
        self.result.owed = self.session.ledger.owed()
        return self.result

    # -- the socket ---------------------------------------------------------------------------

    def _release(self) -> None:
        """The core ended its socket (a reconnect or a roll-over): let it go."""
        ending = self.session.ending
        if ending is not None and not isinstance(ending, r.Finish | r.Fail):
            self.session.socket_released()

    def _open(self, now: float) -> None:
        self._release()
        if self.session.state is not State.IDLE:
            return
        self.queue.clear()
        self.session.connecting()
        self.session.socket_opened(now, wall=self.wall0 + now)
        self._pull(now)

    def _close(self, data: dict[str, Any], now: float) -> None:
        if data.get("by") == "server":
            code = data.get("code")
            self.session.socket_closed(
                now, code=code if isinstance(code, int) else None, reason=str(data.get("reason"))
            )
            self._collect()
        self._release()

    # -- client events: lockstep with the core ----------------------------------------------------

    def _pull(self, now: float) -> None:
        """Take every message the core has for the socket."""
        while (msg := self.session.data_to_send(now)) is not None:
            self.session.sent()
            event = redact_audio(json.loads(msg))
            self.result.sent.append(event)
            if event["type"] != "input_audio_buffer.append":
                self.queue.append(event)

    def _match(self, etype: str) -> dict[str, Any] | None:
        for event in self.queue:
            if event["type"] == etype:
                self.queue.remove(event)
                return event
        return None

    def _client(self, event: dict[str, Any], now: float) -> None:
        etype = str(event.get("type"))
        event_id = event.get("event_id")
        core: dict[str, Any] | None = None
        if etype == "input_audio_buffer.append":
            size = int(event.get("audio_bytes") or 0)
            replayed = min(size, self.replay_left)
            self.replay_left -= replayed
            if size > replayed:
                self.session.audio(bytes(size - replayed))
                self.fed += size - replayed
            self._pull(now)
            return
        self._pull(now)
        if etype == "input_audio_buffer.commit":
            core = self._match(etype)
            if core is None and self.session.flush():
                self._pull(now)
                core = self._match(etype)
        elif etype == "session.update":
            core = self._match(etype)
        if isinstance(event_id, str):
            self.ids[event_id] = core.get("event_id") if core is not None else None
        if core is None:
            self.result.skipped.append(f"client {etype} {event_id or ''}: this plugin sends none")

    # -- server events ------------------------------------------------------------------------

    def _server(self, event: dict[str, Any], now: float) -> None:
        err = event.get("error")
        if event.get("type") == "error" and isinstance(err, dict):
            named = err.get("event_id")
            if isinstance(named, str) and named in self.ids:
                core_id = self.ids[named]
                if core_id is None:
                    self.result.skipped.append(f"error {err.get('code')} answers {named}")
                    return
                event = {**event, "error": {**err, "event_id": core_id}}
        self.session.receive(p.parse_server_event(json.dumps(event)), now)
        self._collect()
        self._pull(now)

    # -- outputs ------------------------------------------------------------------------------

    def _collect(self) -> None:
        for out in self.session.take_outputs():
            if isinstance(out, r.Transcript):
                target = self.result.finals if out.kind == "final" else self.result.interims
                target.append((out.item_id, out.text))
            elif isinstance(out, r.Replay):
                # the new socket first gets the owed audio again, and then what was fed but not
                # sealed into the ledger yet
                unsealed = self.fed - self.session.ledger.position
                self.replay_left = out.plan.owed_bytes + max(0, unsealed)
            elif type(out) in _ENDINGS:
                self.result.endings.append(_ENDINGS[type(out)])
                if isinstance(out, r.Fail):
                    self.result.failure = out.failure.message
