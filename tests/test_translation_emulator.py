"""The emulator's translation sessions (docs/protocol.md §7 F): the sans-I/O server session and
its routing driven directly, then the websocket endpoint with a raw client. Every event the
emulator sends is validated against the OpenAI SDK's translation server-event types."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import numpy as np
import pytest
from openai.types.realtime import RealtimeTranslationServerEvent
from pydantic import TypeAdapter

from livekit.plugins.openai_rt.testing import (
    Emulator,
    FaultPlan,
    FrameCrcTranslator,
    ScriptTranslator,
    TranslationServerSession,
    TranslationSettings,
    expected_source_transcript,
    expected_translation,
)
from livekit.plugins.openai_rt.testing.outbox import Close
from livekit.plugins.openai_rt.testing.records import EmulatedSession
from livekit.plugins.openai_rt.testing.routing import (
    RejectedRoute,
    TranslationRoute,
    translation_route,
)

FRAME = 9600
KEY = "test-key"
SERVER_EVENTS: TypeAdapter[Any] = TypeAdapter(RealtimeTranslationServerEvent)
Json = dict[str, Any]


def validate(events: list[Any]) -> list[Json]:
    """Validate every event against the SDK's translation server events; return the events."""
    out = []
    for ev in events:
        if isinstance(ev, Close):
            continue
        parsed = SERVER_EVENTS.validate_python(ev)
        assert parsed.type == ev["type"]
        out.append(ev)
    return out


def make_session(
    route: TranslationRoute | RejectedRoute | None = None, **settings: Any
) -> TranslationServerSession:
    record = EmulatedSession(
        index=0, query={}, headers={}, max_session_seconds=3600.0, created_at=1_700_000_000.0
    )
    return TranslationServerSession(
        record,
        route or TranslationRoute("gpt-realtime-translate"),
        TranslationSettings(**settings),
        now=0.0,
    )


def append(audio: bytes) -> Json:
    return {"type": "session.input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}


def noise(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(-3000, 3000, n // 2, dtype=np.int16).tobytes()


def update(**audio: Any) -> Json:
    return {"type": "session.update", "session": {"audio": audio}}


# -- routing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"model": "gpt-realtime-translate"}, None),
        ({}, "missing_required_parameter"),
        ({"model": "gpt-realtime-whisper"}, "invalid_model"),
        ({"model": "gpt-realtime-translate", "intent": "translation"}, "unknown_parameter"),
    ],
)
def test_routing_needs_a_translation_model_and_no_intent(query: dict[str, str], code: str) -> None:
    route = translation_route(query)
    if code is None:
        assert route == TranslationRoute("gpt-realtime-translate")
    else:
        assert isinstance(route, RejectedRoute) and route.error.code == code


# -- the session, sans I/O --------------------------------------------------------------------


def test_session_created_carries_the_default_translation_session() -> None:
    session = make_session()
    (created,) = validate(session.open())
    assert created["type"] == "session.created"
    assert created["session"]["type"] == "translation"
    assert created["session"]["model"] == "gpt-realtime-translate"
    assert created["session"]["audio"] == {
        "input": {"noise_reduction": None, "transcription": None},
        "output": {"language": "en"},
    }
    assert session.record.kind == "translation"


def test_a_refused_route_sends_the_error_and_closes_4000() -> None:
    session = make_session(translation_route({}))
    out = session.open()
    assert out[0]["error"]["code"] == "missing_required_parameter"
    assert out[-1] == Close(4000, "invalid_request_error.missing_required_parameter")


def test_session_update_merges_the_three_fields_and_answers_the_whole_session() -> None:
    session = make_session()
    session.open()
    (updated,) = validate(
        session.handle(
            update(
                input={
                    "transcription": {"model": "gpt-realtime-whisper"},
                    "noise_reduction": {"type": "near_field"},
                },
                output={"language": "es"},
            ),
            0.0,
        )
    )
    assert updated["type"] == "session.updated"
    assert updated["session"]["audio"] == {
        "input": {
            "noise_reduction": {"type": "near_field", "strength": 1},
            "transcription": {"model": "gpt-realtime-whisper"},
        },
        "output": {"language": "es"},
    }
    # strength kept when omitted; null turns a field off; other fields untouched
    session.handle(update(input={"noise_reduction": {"type": "near_field", "strength": 0.5}}), 0.0)
    (again,) = session.handle(
        update(input={"transcription": None, "noise_reduction": {"type": "far_field"}}), 0.0
    )
    assert again["session"]["audio"] == {
        "input": {"noise_reduction": {"type": "far_field", "strength": 0.5}, "transcription": None},
        "output": {"language": "es"},
    }


@pytest.mark.parametrize(
    ("session_obj", "code", "param"),
    [
        ({"type": "transcription"}, "invalid_value", "session.type"),
        ({"model": "gpt-realtime"}, "invalid_value", "session.model"),
        ({"instructions": "x"}, "unknown_parameter", "session.instructions"),
        ({"audio": {"input": {"format": {}}}}, "unknown_parameter", "session.audio.input.format"),
        ({"audio": {"output": {"language": 5}}}, "invalid_type", "session.audio.output.language"),
        (
            {"audio": {"input": {"transcription": {"model": "nope"}}}},
            "invalid_value",
            "session.audio.input.transcription.model",
        ),
        (
            {"audio": {"input": {"noise_reduction": {"type": "near_field", "strength": 2}}}},
            "invalid_value",
            "session.audio.input.noise_reduction.strength",
        ),
    ],
)
def test_session_update_refuses_what_a_translation_session_does_not_take(
    session_obj: Json, code: str, param: str
) -> None:
    session = make_session()
    session.open()
    (err,) = validate(session.handle({"type": "session.update", "session": session_obj}, 0.0))
    assert (err["type"], err["error"]["code"], err["error"]["param"]) == ("error", code, param)
    assert not session.closing


def test_audio_is_consumed_in_200_ms_frames_with_elapsed_ms_at_each_frame_end() -> None:
    session = make_session()
    session.open()
    session.handle(update(output={"language": "es"}), 0.0)
    audio = noise(3 * FRAME)
    assert session.handle(append(audio[: FRAME // 2]), 0.0) == []  # buffered
    out = validate(session.handle(append(audio[FRAME // 2 :]), 0.0))  # split into two frames
    assert [(e["type"], e["elapsed_ms"]) for e in out] == [
        ("session.output_transcript.delta", 200),
        ("session.output_audio.delta", 200),
        ("session.output_transcript.delta", 400),
        ("session.output_audio.delta", 400),
        ("session.output_transcript.delta", 600),
        ("session.output_audio.delta", 600),
    ]
    texts = "".join(e["delta"] for e in out if e["type"] == "session.output_transcript.delta")
    assert texts == expected_translation(audio, "es")
    speech = b"".join(
        base64.b64decode(e["delta"]) for e in out if e["type"] == "session.output_audio.delta"
    )
    assert speech == audio
    assert {(e.get("sample_rate"), e.get("channels")) for e in out if "format" in e} == {(24000, 1)}
    assert session.record.appended_bytes == len(audio)


def test_source_text_only_when_transcription_is_on() -> None:
    session = make_session()
    session.open()
    session.handle(update(input={"transcription": {"model": "gpt-realtime-whisper"}}), 0.0)
    audio = noise(FRAME)
    out = validate(session.handle(append(audio), 0.0))
    assert out[0] == {
        "type": "session.input_transcript.delta",
        "event_id": out[0]["event_id"],
        "delta": expected_source_transcript(audio),
        "elapsed_ms": 200,
    }


def test_close_pads_the_last_frame_then_closed_and_close_1000() -> None:
    session = make_session()
    session.open()
    audio = noise(FRAME + 100)
    session.handle(append(audio), 0.0)
    out = session.handle({"type": "session.close"}, 0.0)
    assert [e["elapsed_ms"] for e in validate(out)] == [400, 400]
    assert session.next_deadline() == 0.0
    closed = session.poll(0.0)
    assert [e["type"] for e in validate(closed)] == ["session.closed"]
    assert closed[-1] == Close(1000, "")
    assert session.handle(append(audio), 0.0) == []  # closing: ignored


def test_events_after_close_are_refused() -> None:
    session = make_session(translation_delay=1.0)
    session.open()
    session.handle(append(noise(FRAME)), 0.0)
    session.handle({"type": "session.close"}, 0.0)
    (err,) = validate(session.handle(append(noise(FRAME)), 0.1))
    assert err["error"]["code"] == "session_closing"


def test_translation_delay_holds_outputs_in_order_and_closed_comes_last() -> None:
    session = make_session(translation_delay=0.5)
    session.open()
    assert session.handle(append(noise(2 * FRAME)), 0.0) == []
    session.handle({"type": "session.close"}, 0.1)
    assert session.next_deadline() == 0.5
    out = session.poll(0.5)
    assert [e["type"] for e in validate(out)] == [
        "session.output_transcript.delta",
        "session.output_audio.delta",
        "session.output_transcript.delta",
        "session.output_audio.delta",
        "session.closed",
    ]


def test_unknown_events_and_bad_audio_are_errors_and_the_session_stays_open() -> None:
    session = make_session()
    session.open()
    codes = [
        session.handle(ev, 0.0)[0]["error"]["code"]
        for ev in (
            {"type": "input_audio_buffer.commit"},
            {"type": "session.input_audio_buffer.append", "audio": "***"},
            append(b"\x00"),
            {"type": "session.input_audio_buffer.append"},
        )
    ]
    assert codes == ["invalid_value", "invalid_value", "invalid_value", "invalid_type"]
    assert session.handle_invalid_frame(binary=True)[0]["error"]["code"] == "invalid_json"
    assert not session.closing


def test_expiry_sends_session_expired_then_closes_1001() -> None:
    session = make_session(max_session_seconds=2.0)
    session.open()
    assert session.next_deadline() == 2.0
    out = session.poll(2.0)
    assert validate(out)[0]["error"]["code"] == "session_expired"
    message = "Your session hit the maximum duration of 0.0333 minutes."
    assert out[0]["error"]["message"] == message
    assert out[-1] == Close(1001, message)


# -- translators ------------------------------------------------------------------------------


def test_frame_crc_translator_is_a_pure_function_of_the_frame() -> None:
    frame = noise(FRAME)
    one, two = (
        FrameCrcTranslator().translate(frame, "es"),
        FrameCrcTranslator().translate(frame, "es"),
    )
    assert one == two and one.audio == frame and one.text.startswith("es:")
    assert (
        expected_translation(frame[:100], "fr")
        == FrameCrcTranslator().translate(frame[:100] + bytes(FRAME - 100), "fr").text
    )


def test_script_translator_releases_a_line_per_utterance() -> None:
    tr = ScriptTranslator(["uno dos tres", "cuatro"], source_lines=["one two three", "four"])
    loud, quiet = noise(FRAME), bytes(FRAME)
    texts = [tr.translate(f, "es") for f in (quiet, loud, loud, loud, loud, quiet, loud, quiet)]
    assert "".join(t.text for t in texts[:6]) == "uno dos tres "
    assert texts[5].text == "tres "  # the last word waits for the end of the utterance
    assert "".join(t.source for t in texts[:6]) == "one two three "
    assert "".join(t.text for t in texts[6:]) == "cuatro "
    assert all(t.audio for t in texts)


# -- over a websocket -------------------------------------------------------------------------


async def _connect(
    emu: Emulator, query: str = "model=gpt-realtime-translate", key: str | None = KEY
) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    http = aiohttp.ClientSession()
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    ws = await http.ws_connect(
        f"ws://127.0.0.1:{emu.port}/v1/realtime/translations?{query}", headers=headers
    )
    return http, ws


async def _receive_until(ws: aiohttp.ClientWebSocketResponse, kind: str) -> list[Json]:
    got = []
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type != aiohttp.WSMsgType.TEXT:
            return got
        got.append(json.loads(msg.data))
        if got[-1]["type"] == kind:
            return got


async def test_the_endpoint_translates_over_a_websocket_and_closes_cleanly() -> None:
    async with Emulator(api_key=KEY) as emu:
        http, ws = await _connect(emu)
        try:
            created = await _receive_until(ws, "session.created")
            await ws.send_str(json.dumps(update(output={"language": "de"})))
            await _receive_until(ws, "session.updated")
            audio = noise(2 * FRAME + 10)
            await ws.send_str(json.dumps(append(audio)))
            await ws.send_str(json.dumps({"type": "session.close"}))
            events = await _receive_until(ws, "session.closed")
            closing = await ws.receive(timeout=5)
        finally:
            await ws.close()
            await http.close()
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.data == 1000
        texts = "".join(
            e["delta"] for e in events if e["type"] == "session.output_transcript.delta"
        )
        assert texts == expected_translation(audio, "de")
        validate(created + events)
        logged = [e.event for e in emu.events if e.direction == "in"]
        assert {"type": "session.input_audio_buffer.append", "audio_bytes": len(audio)} in logged
        assert emu.sessions[0].kind == "translation" and emu.sessions[0].close_code == 1000


async def test_the_endpoint_authenticates_and_refuses_an_intent() -> None:
    async with Emulator(api_key=KEY) as emu:
        http = aiohttp.ClientSession()
        try:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(
                    f"ws://127.0.0.1:{emu.port}/v1/realtime/translations?model=gpt-realtime-translate"
                )
            assert refused.value.status == 401
        finally:
            await http.close()
        http, ws = await _connect(emu, "model=gpt-realtime-translate&intent=translation")
        try:
            (err,) = await _receive_until(ws, "error")
            closing = await ws.receive(timeout=5)
        finally:
            await ws.close()
            await http.close()
        assert err["error"]["code"] == "unknown_parameter"
        assert closing.data == 4000


async def test_connection_faults_apply_to_translation_sessions() -> None:
    async with Emulator(api_key=KEY, faults=FaultPlan(drop_after_bytes=FRAME)) as emu:
        http, ws = await _connect(emu)
        try:
            await _receive_until(ws, "session.created")
            await ws.send_str(json.dumps(append(noise(FRAME))))
            msg = await ws.receive(timeout=5)
            while msg.type == aiohttp.WSMsgType.TEXT:
                msg = await ws.receive(timeout=5)
        finally:
            await ws.close()
            await http.close()
        assert msg.type in (
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
            aiohttp.WSMsgType.CLOSE,
        )
        assert emu.sessions[0].close_code == 1006
