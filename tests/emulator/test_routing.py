"""The upgrade: authentication, routing by URL and headers, the first event (docs/protocol.md
§7 A).

The client is a raw aiohttp websocket (not the plugin), so these tests pin the emulator's
protocol behaviour; every event the emulator sends is validated against the OpenAI SDK's
server-event types.
"""

from __future__ import annotations

import json
import re
import time

import aiohttp
import pytest

from tests.emulator.helpers import AUTH, KEY, MakeEmu, connect, validate_event


async def test_session_created_first_with_defaults(make_emu: MakeEmu) -> None:
    emu = await make_emu(max_session_seconds=120.0)
    assert emu.base_url == f"http://127.0.0.1:{emu.port}/v1"
    assert emu.ws_url == f"ws://127.0.0.1:{emu.port}/v1/realtime?intent=transcription"
    async with connect(emu, first=None) as c:
        created = await c.recv()
        assert created["type"] == "session.created"
        session = created["session"]
        assert session["type"] == "transcription"
        assert session["object"] == "realtime.transcription_session"
        assert re.fullmatch(r"sess_[0-9A-Za-z]{21}", session["id"])
        assert re.fullmatch(r"event_[0-9A-Za-z]{21}", created["event_id"])
        assert abs(session["expires_at"] - (time.time() + 120)) < 5
        assert session["audio"]["input"] == {
            "format": {"type": "audio/pcm", "rate": 24000},
            "noise_reduction": None,
            "transcription": None,
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
            },
        }
        assert session["include"] is None
        (s,) = emu.sessions
        assert s.id == session["id"] and s.config == session
        assert s.query == {"intent": "transcription"}
        assert s.headers["Authorization"] == "<redacted>"


async def test_auth_at_handshake(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    url = f"ws://127.0.0.1:{emu.port}/v1/realtime?intent=transcription"
    async with aiohttp.ClientSession() as http:
        for headers in ({"Authorization": "Bearer wrong-key-123456"}, {}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(url, headers=headers)
            assert info.value.status == 401
        async with http.get(url, headers={"Authorization": "Bearer wrong-key-123456"}) as r:
            body = await r.json()
            assert r.status == 401
            assert body["error"]["code"] == "invalid_api_key"
            assert body["error"]["type"] == "invalid_request_error"
            assert body["error"]["message"].startswith("Incorrect API key provided")
            assert "wrong-key-123456" not in body["error"]["message"]
        # Browser-style auth: the key in a subprotocol; `realtime` is echoed.
        protocols = ("realtime", f"openai-insecure-api-key.{KEY}")
        async with http.ws_connect(url, protocols=protocols) as ws:
            assert ws.protocol == "realtime"
            first = json.loads((await ws.receive(timeout=2)).data)
            assert first["type"] == "session.created"
    assert emu.handshakes == 4  # refused ones count too
    assert len(emu.sessions) == 1
    assert KEY not in emu.sessions[0].headers["Sec-WebSocket-Protocol"]


async def test_any_key_accepted_without_api_key(make_emu: MakeEmu) -> None:
    emu = await make_emu(api_key=None)
    async with connect(emu, headers={"Authorization": "Bearer anything"}) as c:
        await c.ws.close(code=1000)
    await emu.wait_for(lambda: emu.sessions[0].closed)
    assert emu.sessions[0].close_code == 1000  # the client's close


def test_validator_rejects_off_spec_events() -> None:
    validate_event({"type": "input_audio_buffer.cleared", "event_id": "event_1"})
    for bad in (
        {"type": "input_audio_buffer.cleared"},  # no event_id
        {"type": "input_audio_buffer.committed", "event_id": "e"},  # no item_id
        {"type": "transcription.done", "event_id": "e"},  # not a server event
    ):
        with pytest.raises((AssertionError, ValueError)):
            validate_event(bad)


async def test_url_model_on_transcription_url_is_fatal(make_emu: MakeEmu) -> None:
    # livekit/agents-js#1756: ?intent=transcription&model=... -> invalid_model on the update, close 4000.
    emu = await make_emu()
    async with connect(emu, "intent=transcription&model=gpt-4o-mini-transcribe") as c:
        await c.send(
            {
                "type": "session.update",
                "event_id": "evt_1",
                "session": {
                    "type": "transcription",
                    "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}},
                },
            }
        )
        err = await c.until("error")
        assert err["error"] == {
            "type": "invalid_request_error",
            "code": "invalid_model",
            "message": 'Model "gpt-4o-transcribe" is not supported in transcription mode.',
            "param": None,
            "event_id": "evt_1",
        }
        assert await c.closed() == (4000, "invalid_request_error.invalid_model")
    await emu.wait_for(lambda: emu.sessions[0].closed)
    assert emu.sessions[0].close_code == 4000


async def test_gateway_mode_takes_url_model(make_emu: MakeEmu) -> None:
    emu = await make_emu(gateway_mode=True)
    async with connect(emu, "intent=transcription&model=gpt-4o-mini-transcribe", first=None) as c:
        created = await c.recv()
        assert created["session"]["audio"]["input"]["transcription"] == {
            "model": "gpt-4o-mini-transcribe"
        }
        await c.update({"transcription": {"language": "de"}})
        updated = await c.until("session.updated")
        assert updated["session"]["audio"]["input"]["transcription"] == {
            "model": "gpt-4o-mini-transcribe",
            "language": "de",
        }


async def test_conversation_url_rejects_transcription_update(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu, "model=gpt-realtime", first=None) as c:
        created = await c.recv()
        assert created["session"]["type"] == "realtime"
        await c.update({"transcription": {"model": "gpt-4o-transcribe"}})
        err = await c.until("error")
        assert err["error"]["code"] == "invalid_parameter"
        assert err["error"]["message"] == (
            "Passing a transcription session update event to a realtime session is not allowed."
        )
        await c.send({"type": "input_audio_buffer.clear"})
        assert (await c.until("error"))["error"]["code"] == "not_implemented"  # still open


async def test_transcription_model_without_intent(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu, "model=whisper-1", first="error") as c:
        err = c.received[0]["error"]
        assert err["message"] == 'Model "whisper-1" is not supported in realtime mode.'
        assert err["code"] == "invalid_model"
        assert (await c.closed())[0] == 4000


async def test_no_intent_no_model_is_refused(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu, "", first="error") as c:
        assert c.received[0]["error"]["code"] == "missing_required_parameter"
        assert await c.closed() == (4000, "invalid_request_error.missing_required_parameter")


async def test_realtime_update_in_transcription_session(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.send({"type": "session.update", "session": {"type": "realtime"}})
        err = await c.until("error")
        assert err["error"]["message"] == (
            "Passing a realtime session update to a transcription session is not allowed."
        )
        await c.configure("gpt-realtime-whisper")  # the session is still usable


@pytest.mark.parametrize("variant", ["header", "event", "flat_fields"])
async def test_beta_shape_is_rejected(make_emu: MakeEmu, variant: str) -> None:
    emu = await make_emu()
    headers = {**AUTH, "OpenAI-Beta": "realtime=v1"} if variant == "header" else AUTH
    first = "error" if variant == "header" else "session.created"
    async with connect(emu, headers=headers, first=first) as c:
        if variant == "event":
            await c.send(
                {"type": "transcription_session.update", "session": {"input_audio_format": "x"}}
            )
        elif variant == "flat_fields":
            await c.send(
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "input_audio_transcription": {"model": "whisper-1"},
                    },
                }
            )
        err = c.received[0] if variant == "header" else await c.until("error")
        assert err["error"]["code"] == "beta_api_shape_disabled"
        assert err["error"]["message"] == (
            "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
        )
        assert await c.closed() == (4000, "invalid_request_error.beta_api_shape_disabled")
