"""What the plugin assumes about the service, as data: one list, each with the section of
docs/protocol.md it checks, each judged from the recorded traces of one model.

:data:`ASSUMPTIONS` are judged on the stream session's trace, :data:`PROBES` on the options
session's. A judgement is ``held``, ``differs`` (with the server's words), ``not checked`` (an
earlier step failed; that step's row says why) or ``seen`` (the model table does not say what
to expect: the server's answer is reported as it is).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ..models import ModelSpec
from ..options import DEFAULT_SERVER_VAD
from .probe import COMMIT_ID, EMPTY_COMMIT_ID, PROBE_ID_PREFIX, UPDATE_ID, Event, OptionProbe
from .replay import expected_finals, replay
from .trace import Trace

Status = Literal["held", "differs", "not checked", "seen"]
"""A judgement (see the module's docstring)."""

_DELTA = "conversation.item.input_audio_transcription.delta"
_COMPLETED = "conversation.item.input_audio_transcription.completed"
_FAILED = "conversation.item.input_audio_transcription.failed"
WORDS_LIMIT = 160
"""Longest quote of the server's words in a row of the table."""


@dataclass(frozen=True)
class Outcome:
    """A judgement, and the server's words behind it."""

    status: Status
    words: str = ""


@dataclass(frozen=True)
class Observation:
    """What was recorded for one model."""

    model: str
    spec: ModelSpec
    stream: Trace
    options: Trace


@dataclass(frozen=True)
class Assumption:
    """Something the plugin relies on, the section of docs/protocol.md that states it, and how
    a recorded stream session shows whether it holds."""

    name: str
    section: str
    claim: str
    judge: Callable[[Observation], Outcome]


def held(words: str = "") -> Outcome:
    """The assumption held."""
    return Outcome("held", words)


def differs(words: str) -> Outcome:
    """The assumption did not hold; ``words`` are the server's (quoted, bounded)."""
    return Outcome("differs", quote(words))


def quote(text: str) -> str:
    """``text`` on one line, at most :data:`WORDS_LIMIT` characters."""
    text = " ".join(text.split())
    return text if len(text) <= WORDS_LIMIT else text[: WORDS_LIMIT - 1] + "…"


def _compact(event: Any) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def _error_words(event: Event) -> str:
    err = event.get("error") or {}
    return f"{err.get('code')}: {err.get('message')}"


# -- reading a stream trace ------------------------------------------------------------------


def _server(trace: Trace, start: int = 0) -> Iterator[tuple[int, Event]]:
    for i, rec in enumerate(trace.records[start:], start):
        if rec.kind == "server":
            yield i, rec.data


def _client_index(trace: Trace, event_id: str) -> int | None:
    for i, rec in enumerate(trace.records):
        if rec.kind == "client" and rec.data.get("event_id") == event_id:
            return i
    return None


def _answer(trace: Trace, event_id: str) -> tuple[int, Event] | None:
    """The server's answer to the client event ``event_id``: ``session.updated``, or an error
    naming it (or nothing), whichever comes first after it."""
    start = _client_index(trace, event_id)
    if start is None:
        return None
    for i, event in _server(trace, start):
        err = event.get("error")
        if event.get("type") == "session.updated" or (
            event.get("type") == "error"
            and isinstance(err, dict)
            and err.get("event_id") in (event_id, None)
        ):
            return i, event
    return None


def _closed_after(trace: Trace, index: int) -> str | None:
    for rec in trace.records[index:]:
        if rec.kind == "close" and rec.data.get("by") == "server":
            return f"closed {rec.data.get('code')} {rec.data.get('reason')!r}"
    return None


@dataclass(frozen=True)
class _Item:
    """The committed item of the stream session, as recorded."""

    commit_at: int  # record index of the client's commit
    committed: tuple[int, Event] | None
    result: tuple[int, Event] | None


def _item(trace: Trace) -> _Item | None:
    commit_at = _client_index(trace, COMMIT_ID)
    if commit_at is None:
        return None
    committed = next(
        (
            (i, e)
            for i, e in _server(trace, commit_at)
            if e.get("type") == "input_audio_buffer.committed"
        ),
        None,
    )
    item_id = committed[1].get("item_id") if committed else None
    result = next(
        (
            (i, e)
            for i, e in _server(trace, commit_at)
            if e.get("type") in (_COMPLETED, _FAILED)
            and (item_id is None or e.get("item_id") == item_id)
        ),
        None,
    )
    return _Item(commit_at, committed, result)


# -- the judgements --------------------------------------------------------------------------


def _session_created(obs: Observation) -> Outcome:
    first = next(_server(obs.stream), None)
    if first is None:
        return differs(_no_answer(obs.stream))
    event = first[1]
    session = event.get("session") or {}
    if event.get("type") != "session.created" or session.get("type") != "transcription":
        return differs(_compact(event))
    if not isinstance(session.get("expires_at"), (int, float)):
        return differs(f"session.created has no expires_at: {_compact(session)}")
    return held()


def _session_updated(obs: Observation) -> Outcome:
    answer = _answer(obs.stream, UPDATE_ID)
    if answer is None:
        return differs(_no_answer(obs.stream))
    event = answer[1]
    if event.get("type") == "error":
        return differs(_error_words(event))
    inp = ((event.get("session") or {}).get("audio") or {}).get("input") or {}
    model = (inp.get("transcription") or {}).get("model")
    if model != obs.model:
        return differs(f"transcription.model is {model!r}, sent {obs.model!r}")
    if inp.get("turn_detection") is not None:
        return differs(f"turn_detection is {_compact(inp.get('turn_detection'))}, sent null")
    return held()


def _pre_commit_deltas(obs: Observation) -> Outcome:
    item = _item(obs.stream)
    if item is None or item.committed is None:
        return Outcome("not checked", "no committed item")
    committed = item.committed[1]
    pre = [e for i, e in _server(obs.stream) if i < item.commit_at and e.get("type") == _DELTA]
    if not obs.spec.streams_before_commit:
        if pre:
            return differs(f"{len(pre)} delta(s) before the commit: {_compact(pre[0])}")
        return held("no delta before the commit")
    if not pre:
        return differs("no delta before the commit")
    ids = {e.get("item_id") for e in pre}
    if ids != {committed.get("item_id")}:
        return differs(
            f"pre-commit deltas on {sorted(map(str, ids))}, committed {committed.get('item_id')!r}"
        )
    return held(f"{len(pre)} delta(s) on the item committed next")


def _committed_first(obs: Observation) -> Outcome:
    item = _item(obs.stream)
    if item is None:
        return Outcome("not checked", "the audio was not committed")
    if item.result is None:
        return differs(f"no completed after the commit ({_no_answer(obs.stream)})")
    if item.result[1].get("type") == _FAILED:
        return differs(_error_words(item.result[1]))
    if item.committed is None:
        return differs("completed without any input_audio_buffer.committed")
    if item.committed[0] > item.result[0]:
        return differs("completed came before input_audio_buffer.committed")
    return held()


def _deltas_add_up(obs: Observation) -> Outcome:
    item = _item(obs.stream)
    if item is None or item.result is None or item.result[1].get("type") != _COMPLETED:
        return Outcome("not checked", "no completed")
    completed = item.result[1]
    item_id = completed.get("item_id")
    text = "".join(
        str(e.get("delta") or "")
        for _, e in _server(obs.stream)
        if e.get("type") == _DELTA and e.get("item_id") == item_id
    )
    transcript = str(completed.get("transcript") or "")
    if text != transcript:
        return differs(f"deltas {text!r} != transcript {transcript!r}")
    return held(quote(repr(transcript)))


def _usage_kind(obs: Observation) -> Outcome:
    item = _item(obs.stream)
    if item is None or item.result is None or item.result[1].get("type") != _COMPLETED:
        return Outcome("not checked", "no completed")
    usage = item.result[1].get("usage")
    kind = usage.get("type") if isinstance(usage, dict) else None
    if kind != obs.spec.usage_kind:
        return differs(f"usage {_compact(usage)}, the model table says {obs.spec.usage_kind}")
    return held(str(kind))


def _empty_commit_refused(obs: Observation) -> Outcome:
    answer = _answer(obs.stream, EMPTY_COMMIT_ID)
    if _client_index(obs.stream, EMPTY_COMMIT_ID) is None:
        return Outcome("not checked", "the stream ended before it")
    if answer is None or answer[1].get("type") != "error":
        return differs(f"no error for a commit of an empty buffer ({_no_answer(obs.stream)})")
    event = answer[1]
    if (event.get("error") or {}).get("code") != "input_audio_buffer_commit_empty":
        return differs(_error_words(event))
    closed = _closed_after(obs.stream, answer[0])
    if closed is not None:
        return differs(f"{_error_words(event)}; then {closed}")
    return held()


def _error_event_id(obs: Observation) -> Outcome:
    answer = _answer(obs.stream, EMPTY_COMMIT_ID)
    if answer is None or answer[1].get("type") != "error":
        return Outcome("not checked", "no error to look at")
    named = (answer[1].get("error") or {}).get("event_id")
    if named != EMPTY_COMMIT_ID:
        return differs(f"error.event_id is {named!r}, the commit was {EMPTY_COMMIT_ID!r}")
    return held()


def _finals_through_the_core(obs: Observation) -> Outcome:
    expected = expected_finals(obs.stream)
    if not expected:
        return Outcome("not checked", "no transcript to expect")
    result = replay(obs.stream)
    if result.failure is not None:
        return differs(f"the core failed: {result.failure}")
    if result.finals != expected:
        return differs(f"finals {result.finals} != {expected}")
    return held()


def _no_answer(trace: Trace) -> str:
    for rec in reversed(trace.records):
        if rec.kind == "refused":
            return f"HTTP {rec.data.get('status')}: {rec.data.get('body')}"
        if rec.kind == "close":
            return f"closed {rec.data.get('code')} {rec.data.get('reason')!r}"
    return "no answer in time"


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "session.created",
        "§7 A.2, §6",
        "the first event is session.created of a transcription session, with expires_at",
        _session_created,
    ),
    Assumption(
        "session.updated shape",
        "§4.1.2",
        "the plugin's session.update is answered by session.updated with the full session: "
        "its model, turn_detection null",
        _session_updated,
    ),
    Assumption(
        "item ids on pre-commit deltas",
        "§4.3",
        "streaming models send deltas before the commit, on the id the commit then names; "
        "others send none",
        _pre_commit_deltas,
    ),
    Assumption(
        "committed before completed",
        "§4.3, §7 C.20",
        "input_audio_buffer.committed comes before the item's completed",
        _committed_first,
    ),
    Assumption(
        "deltas add up",
        "§4.1.4",
        "the item's deltas concatenate to completed.transcript",
        _deltas_add_up,
    ),
    Assumption(
        "usage kind",
        "§4.1.5",
        "completed.usage.type is the model table's (duration or tokens)",
        _usage_kind,
    ),
    Assumption(
        "refused empty commit",
        "§3.3",
        "a commit of an empty buffer gets input_audio_buffer_commit_empty; the session stays open",
        _empty_commit_refused,
    ),
    Assumption(
        "event_id echoed on errors",
        "§4.1.9",
        "error.event_id names the client event that caused it",
        _error_event_id,
    ),
    Assumption(
        "finals through the core",
        "§4.1.5",
        "replayed through the plugin's session core, the session gives each transcript once",
        _finals_through_the_core,
    ),
)
"""What the stream session checks, in the order the table shows it."""


# -- what each model accepts --------------------------------------------------------------


def _set(key: str, value: Any) -> Callable[[Event], None]:
    def apply(audio_input: Event) -> None:
        audio_input["transcription"][key] = value

    return apply


def _languages(audio_input: Event) -> None:
    transcription = audio_input["transcription"]
    transcription.pop("language", None)
    transcription["languages"] = ["en"]


def _server_vad(audio_input: Event) -> None:
    audio_input["turn_detection"] = dict(DEFAULT_SERVER_VAD)


PROBES: tuple[OptionProbe, ...] = (
    OptionProbe("languages", "§2.2, §2.3", _languages, lambda spec: None),
    OptionProbe("delay", "§2.3", _set("delay", "low"), lambda spec: spec.delay),
    OptionProbe(
        "prompt", "§2.3", _set("prompt", "Names: Aoife, Saoirse."), lambda spec: spec.prompt
    ),
    # last: once accepted, server VAD stays on in that session
    OptionProbe("server VAD", "§2.3, §3.4", _server_vad, lambda spec: spec.server_vad),
)
"""The options probed, one ``session.update`` each, in this order."""


def judge_probe(probe: OptionProbe, obs: Observation) -> Outcome:
    """Whether the server took the option as the model table says."""
    event_id = PROBE_ID_PREFIX + probe.name
    if _client_index(obs.options, event_id) is None:
        return Outcome("not checked", _no_answer(obs.options))
    answer = _answer(obs.options, event_id)
    if answer is None:
        return differs(f"no answer ({_no_answer(obs.options)})")
    accepted = answer[1].get("type") == "session.updated"
    words = "accepted" if accepted else f"refused: {_error_words(answer[1])}"
    closed = _closed_after_answer(obs.options, answer[0])
    if closed:
        words += f"; then {closed}"
    expected = probe.expected(obs.spec)
    if expected is None:
        return Outcome("seen", quote(words))
    if accepted != expected:
        return differs(words + f" (the model table says {'yes' if expected else 'no'})")
    return held(quote(words))


def _closed_after_answer(trace: Trace, index: int) -> str | None:
    """A server close right after the answer (before the next client event)."""
    for rec in trace.records[index + 1 :]:
        if rec.kind in ("client", "open"):
            return None
        if rec.kind == "close" and rec.data.get("by") == "server":
            return f"closed {rec.data.get('code')} {rec.data.get('reason')!r}"
    return None
