"""The server session without a server: client events in, exact server events out, no socket.

Time is whatever the test says it is (``now``); timed output comes out of ``poll``.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from multidict import CIMultiDict

from livekit.plugins.openai_rt.testing import EmulatedSession, FaultPlan, expected_transcript
from livekit.plugins.openai_rt.testing.outbox import Close, Outgoing
from livekit.plugins.openai_rt.testing.routing import (
    ConversationRoute,
    RejectedRoute,
    Route,
    TranscriptionRoute,
    route,
)
from livekit.plugins.openai_rt.testing.rules import MODEL_RULES
from livekit.plugins.openai_rt.testing.schema import ApiError
from livekit.plugins.openai_rt.testing.server_session import ServerSession
from livekit.plugins.openai_rt.testing.settings import SessionSettings
from tests.emulator.helpers import BPMS, Json, noise, validate_event

_COMPLETED = "conversation.item.input_audio_transcription.completed"
_DELTA = "conversation.item.input_audio_transcription.delta"


def new_session(
    route: Route | None = None, *, now: float = 0.0, **settings: Any
) -> tuple[ServerSession, list[Json]]:
    """A session opened at ``now``; returns it and its opening events (without event ids)."""
    record = EmulatedSession(
        index=0, query={}, headers={}, max_session_seconds=3600.0, created_at=1_000_000.0
    )
    host = SessionSettings(**settings)
    session = ServerSession(record, route or TranscriptionRoute(), host, now=now)
    return session, events(session.open())


def events(outgoing: list[Outgoing]) -> list[Json]:
    """The events of ``outgoing`` without their random ``event_id`` (a Close as ``{"close": …}``).

    Each event must be a valid server event of the SDK, with an ``event_…`` id.
    """
    out: list[Json] = []
    for item in outgoing:
        if isinstance(item, Close):
            out.append({"close": (item.code, item.reason)})
            continue
        validate_event(item)
        assert re.fullmatch(r"event_[0-9A-Za-z]{21}", item["event_id"])
        out.append({k: v for k, v in item.items() if k != "event_id"})
    return out


def append(audio: bytes) -> Json:
    """An ``input_audio_buffer.append`` of ``audio``."""
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}


def configure(model: str) -> Json:
    """A ``session.update`` turning transcription on with ``model`` and the VAD off."""
    return {
        "type": "session.update",
        "session": {
            "type": "transcription",
            "audio": {"input": {"transcription": {"model": model}, "turn_detection": None}},
        },
    }


COMMIT: Json = {"type": "input_audio_buffer.commit"}


def test_open_sends_session_created_with_the_defaults() -> None:
    session, opened = new_session()
    (created,) = opened
    assert created["type"] == "session.created"
    assert created["session"] == session.record.config
    assert created["session"]["expires_at"] == 1_000_000 + 3600
    assert created["session"]["audio"]["input"]["transcription"] is None
    assert session.next_deadline() == 3600.0  # the expiry


def test_commit_under_100_ms_is_refused_and_keeps_the_buffer() -> None:
    session, _ = new_session()
    assert events(session.handle(configure("whisper-1"), 0.0))[0]["type"] == "session.updated"
    audio = noise(99)
    assert session.handle(append(audio), 0.0) == []
    assert events(session.handle({**COMMIT, "event_id": "evt_1"}, 0.0)) == [
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "input_audio_buffer_commit_empty",
                "message": "Error committing input audio buffer: buffer too small. Expected at "
                "least 100ms of audio, but buffer only has 99.00ms of audio.",
                "param": None,
                "event_id": "evt_1",
            },
        }
    ]
    assert session.record.buffer_bytes == 99 * BPMS
    assert not session.closing
    more = noise(1, seed=1)
    session.handle(append(more), 0.0)
    committed = events(session.handle(COMMIT, 0.0))
    assert committed[0]["type"] == "input_audio_buffer.committed"
    assert session.record.items[0].audio == audio + more
    assert session.record.buffer_bytes == 0


def test_the_default_completion_delay_is_realistic() -> None:
    session, _ = new_session(now=0.0, emit_item_added=False)
    session.handle(configure("whisper-1"), 0.0)
    session.handle(append(noise(150)), 0.0)
    assert [e["type"] for e in events(session.handle(COMMIT, 0.0))] == [
        "input_audio_buffer.committed"
    ]
    # whisper-1's one delta halfway through the delay, completed at its end
    assert session.poll(0.149) == []
    assert [e["type"] for e in events(session.poll(0.15))] == [_DELTA]
    assert session.poll(0.299) == []
    assert [e["type"] for e in events(session.poll(0.3))] == [_COMPLETED]


def test_an_omitted_committed_leaves_the_transcription_events() -> None:
    session, _ = new_session(faults=FaultPlan(omit_committed={1}), completed_delay=0.0)
    session.handle(configure("whisper-1"), 0.0)
    out = []
    for n in range(3):
        session.handle(append(noise(150, seed=n)), 0.0)
        out += events(session.handle(COMMIT, 0.0))
    first, second, third = session.record.items
    committed = [e["item_id"] for e in out if e["type"] == "input_audio_buffer.committed"]
    completed = [e["item_id"] for e in out if e["type"] == _COMPLETED]
    assert committed == [first.item_id, third.item_id]
    assert completed == [first.item_id, second.item_id, third.item_id]
    assert third.previous_item_id == second.item_id


def test_commits_chain_previous_item_id() -> None:
    session, _ = new_session(completed_delay=0.0)
    session.handle(configure("whisper-1"), 0.0)
    previous: str | None = None
    for n in range(3):
        audio = noise(150, seed=n)
        session.handle(append(audio), 0.0)
        out = events(session.handle(COMMIT, 0.0))
        item_id = out[0]["item_id"]
        assert re.fullmatch(r"item_[0-9A-Za-z]{21}", item_id)
        transcript = expected_transcript(audio)
        item_done = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": transcript}],
        }
        item_added = {**item_done, "content": [{"type": "input_audio", "transcript": None}]}
        assert out == [
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            },
            {"type": "conversation.item.added", "previous_item_id": previous, "item": item_added},
            {"type": _DELTA, "item_id": item_id, "content_index": 0, "delta": transcript},
            {
                "type": _COMPLETED,
                "item_id": item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": {"type": "duration", "seconds": 0.15},
            },
            {"type": "conversation.item.done", "previous_item_id": previous, "item": item_done},
        ]
        previous = item_id
    assert [i.previous_item_id for i in session.record.items[1:]] == [
        i.item_id for i in session.record.items[:-1]
    ]
    assert [i.index for i in session.record.items] == [0, 1, 2]


def test_completed_delay_comes_out_of_poll_in_commit_order() -> None:
    session, _ = new_session(now=10.0, completed_delay=1.0, emit_item_added=False)
    session.handle(configure("whisper-1"), 10.0)
    session.handle(append(noise(150)), 10.0)
    assert [e["type"] for e in events(session.handle(COMMIT, 10.0))] == [
        "input_audio_buffer.committed"
    ]
    session.handle(append(noise(150, seed=1)), 10.2)
    session.handle(COMMIT, 10.2)
    first, second = session.record.items
    # whisper-1 sends one delta: halfway through the delay, then completed at the end.
    assert session.next_deadline() == 10.5
    assert session.poll(10.49) == []
    assert [e["type"] for e in events(session.poll(10.5))] == [_DELTA]
    assert first.status == "committed"  # the record follows what was sent
    out = events(session.poll(11.2))
    assert [(e["type"], e["item_id"]) for e in out] == [
        (_COMPLETED, first.item_id),
        (_DELTA, second.item_id),
        (_COMPLETED, second.item_id),
    ]
    assert (first.status, second.status) == ("completed", "completed")
    assert session.next_deadline() == 3610.0  # only the expiry is left


def test_reorder_holds_a_completion_until_the_next_one() -> None:
    plan = FaultPlan(reorder_completed=True, reorder_hold_seconds=0.3)
    session, _ = new_session(faults=plan, emit_item_added=False, completed_delay=0.0)
    session.handle(configure("whisper-1"), 0.0)
    session.handle(append(noise(150)), 0.0)
    assert [e["type"] for e in events(session.handle(COMMIT, 0.0))] == [
        "input_audio_buffer.committed",
        _DELTA,
    ]
    assert session.next_deadline() == 0.3  # the held completion's deadline
    session.handle(append(noise(150, seed=1)), 0.1)
    out = events(session.handle(COMMIT, 0.1))
    first, second = session.record.items
    assert [(e["type"], e["item_id"]) for e in out] == [
        ("input_audio_buffer.committed", second.item_id),
        (_DELTA, second.item_id),
        (_COMPLETED, second.item_id),
        (_COMPLETED, first.item_id),
    ]
    assert session.next_deadline() == 3600.0  # the hold was cancelled
    # With no follower, a held completion goes out alone after the hold.
    session.handle(append(noise(150, seed=2)), 1.0)
    session.handle(COMMIT, 1.0)
    assert session.poll(1.29) == []
    assert [e["type"] for e in events(session.poll(1.3))] == [_COMPLETED]


def test_expiry_is_due_after_max_session_seconds() -> None:
    session, _ = new_session(now=5.0, max_session_seconds=60.0)
    assert session.next_deadline() == 65.0
    assert session.poll(64.9) == []
    assert events(session.poll(65.0)) == [
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "session_expired",
                "message": "Your session hit the maximum duration of 1 minutes.",
                "param": None,
                "event_id": None,
            },
        },
        {"close": (1001, "Your session hit the maximum duration of 1 minutes.")},
    ]
    assert session.closing
    assert session.handle(COMMIT, 66.0) == []  # a closing session ignores the client


def test_expiry_can_close_without_the_error_event() -> None:
    session, _ = new_session(now=0.0, max_session_seconds=3600.0, expiry_error_event=False)
    assert events(session.poll(3600.0)) == [
        {"close": (1001, "Your session hit the maximum duration of 60 minutes.")}
    ]


def test_rejected_route_sends_the_error_and_closes() -> None:
    error = ApiError("invalid_model", 'Model "x" is not supported in realtime mode.', fatal=True)
    session, opened = new_session(RejectedRoute(error))
    assert opened == [
        {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_model",
                "message": 'Model "x" is not supported in realtime mode.',
                "param": None,
                "event_id": None,
            },
        },
        {"close": (4000, "invalid_request_error.invalid_model")},
    ]
    assert session.record.kind == "rejected"


def test_routing_decisions() -> None:
    plain = CIMultiDict[str]()
    beta = CIMultiDict[str]({"OpenAI-Beta": "realtime=v1"})

    def decide(
        query: dict[str, str], gateway: bool = False, headers: CIMultiDict[str] = plain
    ) -> Route:
        return route(query, headers, MODEL_RULES, gateway_mode=gateway)

    assert decide({"intent": "transcription"}) == TranscriptionRoute()
    assert decide({"intent": "transcription", "model": "whisper-1"}) == TranscriptionRoute(
        url_model="whisper-1"
    )
    assert decide({"intent": "transcription", "model": "whisper-1"}, gateway=True) == (
        TranscriptionRoute(model="whisper-1")
    )
    assert decide({"model": "gpt-realtime"}) == ConversationRoute("gpt-realtime")
    for query, code in [
        ({"model": "whisper-1"}, "invalid_model"),
        ({}, "missing_required_parameter"),
        ({"intent": "translation"}, "invalid_value"),
    ]:
        decision = decide(query)
        assert isinstance(decision, RejectedRoute) and decision.error.code == code
        assert decision.error.fatal
    decision = decide({"intent": "transcription"}, headers=beta)
    assert isinstance(decision, RejectedRoute)
    assert decision.error.code == "beta_api_shape_disabled"
