"""Tests of the Realtime transcription emulator itself, over a real loopback websocket.

The client here is a raw aiohttp websocket (not the plugin), so these tests pin the emulator's
protocol behaviour (protocol reference §7 A-E) and its fault injection. Every event the emulator
sends in every test is validated against the OpenAI SDK's server-event types.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, get_args

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from openai.types.realtime.realtime_transcription_session_create_response import (
    RealtimeTranscriptionSessionCreateResponse,
)
from pydantic import BaseModel, TypeAdapter

from livekit.plugins.openai_rt.testing import (
    UNKNOWN_EVENT_TYPE,
    BlockCrcTranscriber,
    CloseWith,
    Emulator,
    FaultPlan,
    RandomDrop,
    RefuseHandshake,
    ScriptTranscriber,
    SendError,
    Stall,
    expected_transcript,
)

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
BPMS = 48  # bytes per ms of pcm16 24 kHz
Json = dict[str, Any]

# ---------------------------------------------------------------------------------------------
# SDK validation of everything the emulator sends
# ---------------------------------------------------------------------------------------------

_ADAPTER: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
_EVENT_MODELS: dict[str, type[BaseModel]] = {}
for _cls in get_args(get_args(RealtimeServerEvent)[0]):
    _EVENT_MODELS[get_args(_cls.model_fields["type"].annotation)[0]] = _cls
_SESSION_RESPONSE = TypeAdapter(RealtimeTranscriptionSessionCreateResponse)


def validate_event(event: Json) -> None:
    """Validate one server event against the SDK's RealtimeServerEvent union, strictly by type."""
    model = _EVENT_MODELS.get(event["type"])
    assert model is not None, f"not a RealtimeServerEvent type: {event['type']}"
    model.model_validate(event)
    parsed = _ADAPTER.validate_python(event)
    assert parsed.type == event["type"]
    if event["type"] in ("session.created", "session.updated"):
        if event["session"]["type"] == "transcription":
            _SESSION_RESPONSE.validate_python(event["session"])


def validate_out_events(emu: Emulator) -> int:
    """Validate every event the emulator sent (fault-injected junk excepted); return the count."""
    n = 0
    for logged in emu.events:
        if logged.direction != "out":
            continue
        if logged.event["type"] in ("<malformed>", UNKNOWN_EVENT_TYPE):
            continue
        validate_event(logged.event)
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Fixtures and helpers
# ---------------------------------------------------------------------------------------------

MakeEmu = Callable[..., Awaitable[Emulator]]


@pytest_asyncio.fixture
async def make_emu() -> AsyncIterator[MakeEmu]:
    """Start emulators on demand; close them and validate all their output at teardown."""
    started: list[Emulator] = []

    async def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("api_key", KEY)
        emu = Emulator(**kwargs)
        await emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        await emu.aclose()
        validate_out_events(emu)


class Client:
    """A raw websocket client speaking JSON events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        self.ws = ws
        self.received: list[Json] = []

    async def send(self, event: Json) -> None:
        await self.ws.send_str(json.dumps(event))

    async def recv(self, timeout: float = 2.0) -> Json:
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, self.ws.close_code)
        event: Json = json.loads(msg.data)
        self.received.append(event)
        return event

    async def until(self, etype: str, timeout: float = 2.0) -> Json:
        while True:
            event = await self.recv(timeout)
            if event["type"] == etype:
                return event

    async def collect_until(self, etype: str, timeout: float = 2.0) -> list[Json]:
        events: list[Json] = []
        while True:
            event = await self.recv(timeout)
            events.append(event)
            if event["type"] == etype:
                return events

    async def update(self, input: Json | None = None, **session: Any) -> None:
        body: Json = {"type": "transcription", **session}
        if input is not None:
            body["audio"] = {"input": input}
        await self.send({"type": "session.update", "session": body})

    async def configure(self, model: str, **transcription: Any) -> Json:
        await self.update(
            {"transcription": {"model": model, **transcription}, "turn_detection": None}
        )
        return await self.until("session.updated")

    async def append(self, audio: bytes, chunk_ms: int = 50) -> None:
        step = chunk_ms * BPMS
        for i in range(0, len(audio), step):
            await self.send(
                {
                    "type": "input_audio_buffer.append",
                    "audio": base64.b64encode(audio[i : i + step]).decode(),
                }
            )

    async def closed(self, timeout: float = 2.0) -> tuple[int | None, str]:
        """Read until the socket closes; return (close code, reason)."""
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.received.append(json.loads(msg.data))
                continue
            reason = msg.extra if msg.type == aiohttp.WSMsgType.CLOSE else ""
            return self.ws.close_code, reason or ""


@contextlib.asynccontextmanager
async def connect(
    emu: Emulator,
    query: str = "intent=transcription",
    headers: dict[str, str] | None = None,
    first: str | None = "session.created",
    **kwargs: Any,
) -> AsyncIterator[Client]:
    url = f"ws://127.0.0.1:{emu.port}/v1/realtime" + (f"?{query}" if query else "")
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(url, headers=AUTH if headers is None else headers, **kwargs) as ws,
    ):
        client = Client(ws)
        if first is not None:
            event = await client.recv()
            assert event["type"] == first
        yield client


def noise(ms: int, seed: int = 0, amp: int = 300) -> bytes:
    """Quiet random audio (RMS ~170, below the VAD threshold), unique per seed."""
    rng = np.random.default_rng(seed)
    return rng.integers(-amp, amp, ms * 24, dtype=np.int16).astype("<i2").tobytes()


def square(ms: int, amp: int) -> bytes:
    """A square wave of RMS exactly ``amp`` (VAD speech when amp > threshold * 2000)."""
    samples = np.full(ms * 24, amp, dtype=np.int16)
    samples[1::2] = -amp
    return samples.astype("<i2").tobytes()


def types(events: list[Json]) -> list[str]:
    return [e["type"] for e in events]


# ---------------------------------------------------------------------------------------------
# A. Connection and routing
# ---------------------------------------------------------------------------------------------


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
    # seed001: ?intent=transcription&model=... -> invalid_model on the update, close 4000.
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


# ---------------------------------------------------------------------------------------------
# B. Session configuration
# ---------------------------------------------------------------------------------------------


async def test_update_merges_and_reports_full_config(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.send(
            {
                "type": "session.update",
                "event_id": "evt_client",
                "session": {
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                            "noise_reduction": {"type": "far_field"},
                        }
                    },
                    "include": ["item.input_audio_transcription.logprobs"],
                },
            }
        )
        updated = await c.until("session.updated")
        assert updated["event_id"] != "evt_client"  # the client's event_id is not echoed
        inp = updated["session"]["audio"]["input"]
        assert inp["noise_reduction"] == {"type": "far_field", "strength": 1.0}
        assert inp["turn_detection"]["type"] == "server_vad"  # untouched
        assert updated["session"]["include"] == ["item.input_audio_transcription.logprobs"]

        # Only present fields change; the language stays; strength kept when omitted.
        await c.update(
            {
                "transcription": {"model": "whisper-1"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
            }
        )
        inp = (await c.until("session.updated"))["session"]["audio"]["input"]
        assert inp["transcription"] == {"model": "whisper-1", "language": "en"}
        assert inp["noise_reduction"] == {"type": "near_field", "strength": 1.0}
        assert inp["turn_detection"] == {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 200,
        }

        # null clears.
        await c.update({"noise_reduction": None, "turn_detection": None, "transcription": None})
        inp = (await c.until("session.updated"))["session"]["audio"]["input"]
        assert inp["noise_reduction"] is None
        assert inp["turn_detection"] is None
        assert inp["transcription"] is None
        assert emu.sessions[0].config["audio"]["input"] == inp


@pytest.mark.parametrize("model", ["gpt-realtime-whisper", "gpt-live-transcribe"])
async def test_no_vad_models_reject_turn_detection(make_emu: MakeEmu, model: str) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        before = await c.configure("gpt-4o-transcribe")
        await c.send(
            {
                "type": "session.update",
                "event_id": "evt_td",
                "session": {
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "transcription": {"model": model},
                            "turn_detection": {"type": "server_vad"},
                        }
                    },
                },
            }
        )
        err = await c.until("error")
        assert err["error"] == {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": "Turn detection is not supported for this transcription model.",
            "param": "session.audio.input.turn_detection",
            "event_id": "evt_td",
        }
        # Session open, previous config kept.
        assert emu.sessions[0].config == before["session"]
        # Omitting turn_detection is fine: the inherited default VAD is switched off.
        await c.update({"transcription": {"model": model}})
        updated = await c.until("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"] is None


async def test_turn_detection_error_can_close(make_emu: MakeEmu) -> None:
    emu = await make_emu(close_on_turn_detection_error=True)
    async with connect(emu) as c:
        await c.update(
            {
                "transcription": {"model": "gpt-realtime-whisper"},
                "turn_detection": {"type": "semantic_vad"},
            }
        )
        assert (await c.until("error"))["error"]["code"] == "invalid_value"
        assert await c.closed() == (4000, "invalid_request_error.invalid_value")


_T = "session.audio.input.transcription"
CONFIG_ERRORS: list[tuple[Json, str, str | None]] = [
    # (audio.input update, expected code, expected param)
    ({"transcription": {"model": "gpt-realtime-whisper", "prompt": "x"}}, "invalid_value",
     f"{_T}.prompt"),
    ({"transcription": {"model": "gpt-4o-transcribe-diarize", "prompt": "x"}}, "invalid_value",
     f"{_T}.prompt"),
    ({"transcription": {"model": "gpt-realtime-whisper", "delay": "fast"}}, "invalid_value",
     f"{_T}.delay"),
    ({"transcription": {"model": "gpt-4o-transcribe", "delay": "low"}}, "invalid_value",
     f"{_T}.delay"),
    ({"transcription": {"model": "gpt-live-transcribe", "delay": "low"}}, "invalid_value",
     f"{_T}.delay"),
    ({"transcription": {"model": "gpt-transcribe", "languages": []}}, "empty_array",
     f"{_T}.languages"),
    ({"transcription": {"model": "gpt-transcribe", "languages": None}}, "invalid_type",
     f"{_T}.languages"),
    ({"transcription": {"model": "gpt-4o-transcribe", "languages": ["en", "de"]}},
     "invalid_value", f"{_T}.languages"),
    ({"transcription": {"model": "whisper-1", "keywords": ["LiveKit"]}}, "invalid_value",
     f"{_T}.keywords"),
    ({"transcription": {"model": "gpt-5-transcribe"}}, "invalid_value", f"{_T}.model"),
    ({"transcription": {"language": "en"}}, "missing_required_parameter", f"{_T}.model"),
    ({"transcription": {"model": "whisper-1", "temperature": 0}}, "unknown_parameter",
     f"{_T}.temperature"),
    ({"format": {"type": "audio/pcm", "rate": 16000}}, "invalid_value",
     "session.audio.input.format.rate"),
    ({"format": {"type": "audio/wav"}}, "invalid_value", "session.audio.input.format.type"),
    ({"noise_reduction": {"type": "studio"}}, "invalid_value",
     "session.audio.input.noise_reduction.type"),
    ({"noise_reduction": {"type": "near_field", "strength": 2}}, "invalid_value",
     "session.audio.input.noise_reduction.strength"),
    ({"turn_detection": {"type": "server_vad", "threshold": "high"}}, "invalid_type",
     "session.audio.input.turn_detection.threshold"),
    ({"turn_detection": {"type": "server_vad", "eagerness": "low"}}, "unknown_parameter",
     "session.audio.input.turn_detection.eagerness"),
    ({"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}, "invalid_value",
     "session.audio.input.turn_detection.eagerness"),
    ({"turn_detection": {"threshold": 0.5}}, "missing_required_parameter",
     "session.audio.input.turn_detection.type"),
    ({"sample_rate": 24000}, "unknown_parameter", "session.audio.input.sample_rate"),
]  # fmt: skip


async def test_config_errors_keep_session_open(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        before = emu.sessions[0].config
        for i, (update, code, param) in enumerate(CONFIG_ERRORS):
            await c.send(
                {
                    "type": "session.update",
                    "event_id": f"evt_{i}",
                    "session": {"type": "transcription", "audio": {"input": update}},
                }
            )
            err = (await c.until("error"))["error"]
            assert (err["code"], err["param"], err["event_id"]) == (code, param, f"evt_{i}"), update
            assert err["type"] == "invalid_request_error"
        assert emu.sessions[0].config == before
        # Unknown fields elsewhere, with the dotted path.
        await c.send({"type": "session.update", "session": {"type": "transcription", "x": 1}})
        err = (await c.until("error"))["error"]
        assert err["message"] == "Unknown parameter: 'session.x'."
        await c.send(
            {"type": "session.update", "session": {"type": "transcription", "audio": {"out": 1}}}
        )
        assert (await c.until("error"))["error"]["param"] == "session.audio.out"
        await c.send({"type": "input_audio_buffer.commit", "item": 1})
        assert (await c.until("error"))["error"]["param"] == "item"


async def test_accepted_model_options(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    cases: list[tuple[str, Json]] = [
        ("gpt-realtime-whisper", {"delay": "xhigh", "language": "en"}),
        ("gpt-live-transcribe", {"keywords": ["LiveKit"], "languages": ["en", "fr"]}),
        ("gpt-transcribe", {"keywords": ["a"], "languages": ["en", "de"], "prompt": "p"}),
        ("gpt-4o-transcribe", {"languages": ["en"], "prompt": "tech"}),
        ("whisper-1", {"prompt": "LiveKit, OpenAI"}),
    ]
    async with connect(emu) as c:
        for model, options in cases:
            await c.update({"transcription": {"model": model, **options}, "turn_detection": None})
            updated = await c.until("session.updated")
            tr = updated["session"]["audio"]["input"]["transcription"]
            assert tr["model"] == model
            for key, value in options.items():
                assert tr[key] == value
            await c.update({"transcription": None})
            await c.until("session.updated")
        await c.update({"format": {"type": "audio/pcmu"}})
        updated = await c.until("session.updated")
        assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}


# ---------------------------------------------------------------------------------------------
# C. Audio buffer
# ---------------------------------------------------------------------------------------------


async def test_commit_too_small_leaves_buffer(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.configure("gpt-4o-transcribe")
        await c.send({"type": "input_audio_buffer.commit", "event_id": "evt_c0"})
        err = (await c.until("error"))["error"]
        assert err == {
            "type": "invalid_request_error",
            "code": "input_audio_buffer_commit_empty",
            "message": "Error committing input audio buffer: buffer too small. Expected at least "
            "100ms of audio, but buffer only has 0.00ms of audio.",
            "param": None,
            "event_id": "evt_c0",
        }
        audio = noise(60) + noise(2, seed=1)[:50]  # 61.04 ms
        await c.append(audio)
        await c.send({"type": "input_audio_buffer.commit"})
        err = (await c.until("error"))["error"]
        assert err["message"].endswith("but buffer only has 61.04ms of audio.")
        assert emu.sessions[0].buffer_bytes == len(audio)
        more = noise(40, seed=2)
        await c.append(more)
        await c.send({"type": "input_audio_buffer.commit"})
        committed = await c.until("input_audio_buffer.committed")
        (item,) = emu.sessions[0].items
        assert item.audio == audio + more
        assert committed["item_id"] == item.item_id


async def test_commit_sequence_and_clear(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.configure("gpt-4o-mini-transcribe")
        await c.send({"type": "input_audio_buffer.clear"})
        await c.until("input_audio_buffer.cleared")  # even when empty
        ids: list[str | None] = [None]
        for n in range(3):
            audio = noise(150, seed=n)
            await c.append(audio)
            await c.send({"type": "input_audio_buffer.commit"})
            events = await c.collect_until("conversation.item.done")
            t = types(events)
            assert t[0] == "input_audio_buffer.committed"
            assert t[1] == "conversation.item.added"
            assert t[-2:] == [
                "conversation.item.input_audio_transcription.completed",
                "conversation.item.done",
            ]
            committed = events[0]
            assert committed["previous_item_id"] == ids[-1]
            assert re.fullmatch(r"item_[0-9A-Za-z]{21}", committed["item_id"])
            assert events[1]["item"]["id"] == committed["item_id"]
            ids.append(committed["item_id"])
            assert events[-2]["transcript"] == expected_transcript(audio)
        await c.append(noise(300, seed=9))
        await emu.wait_for(lambda: emu.sessions[0].buffer_bytes == 300 * BPMS)
        await c.send({"type": "input_audio_buffer.clear"})
        await c.until("input_audio_buffer.cleared")
        assert emu.sessions[0].buffer_bytes == 0
        assert emu.sessions[0].appended_bytes == 3 * 150 * BPMS + 300 * BPMS
        items = emu.committed_items()
        assert [i.item_id for i in items] == ids[1:]
        assert [i.committed_by for i in items] == ["client"] * 3
        assert all(i.status == "completed" for i in items)


async def test_append_errors(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.send(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}
        )
        assert (await c.until("error"))["error"]["param"] == "audio"
        await c.send({"type": "input_audio_buffer.append", "audio": "not base64!"})
        assert (await c.until("error"))["error"]["code"] == "invalid_value"
        big = base64.b64encode(bytes(15 * 1024 * 1024 + 2)).decode()
        await c.send({"type": "input_audio_buffer.append", "audio": big})
        assert "15 MiB" in (await c.until("error"))["error"]["message"]
        await c.send({"type": "input_audio_buffer.append", "audio": 5})
        assert (await c.until("error"))["error"]["code"] == "invalid_type"
        await c.ws.send_str("{not json")
        assert (await c.until("error"))["error"]["code"] == "invalid_json"
        await c.send({"type": "nonsense.event"})
        err = (await c.until("error"))["error"]
        assert (err["code"], err["param"]) == ("invalid_value", "type")
        assert emu.sessions[0].appended_bytes == 0
    logged = [e.event for e in emu.events if e.direction == "in"]
    assert logged[0] == {"type": "input_audio_buffer.append", "audio_bytes": 3}
    assert logged[4] == {"type": "<malformed>", "raw": "{not json"}


async def test_server_vad_auto_commit(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.update({"transcription": {"model": "gpt-4o-transcribe"}})  # default server_vad
        await c.until("session.updated")
        audio = noise(1000) + square(600, 5000) + noise(1000, seed=1)
        await c.append(audio)
        started = await c.until("input_audio_buffer.speech_started")
        stopped = await c.until("input_audio_buffer.speech_stopped")
        committed = await c.until("input_audio_buffer.committed")
        completed = await c.until("conversation.item.input_audio_transcription.completed")
        assert started["audio_start_ms"] == 1000 - 300  # onset minus prefix padding
        assert stopped["audio_end_ms"] == 1600 + 500  # end of the silence window
        assert started["item_id"] == stopped["item_id"] == committed["item_id"]
        (item,) = emu.sessions[0].items
        assert item.committed_by == "server_vad"
        assert item.audio == audio[: 2100 * BPMS]
        assert completed["transcript"] == expected_transcript(audio[: 2100 * BPMS])
        assert emu.sessions[0].buffer_bytes == 500 * BPMS  # the rest stays buffered
        # A client commit right after: the buffer holds 500 ms, so it commits those...
        await c.send({"type": "input_audio_buffer.commit"})
        await c.until("input_audio_buffer.committed")
        # ...and the next one lands on an empty buffer (reference §7 C.24).
        await c.send({"type": "input_audio_buffer.commit"})
        err = (await c.until("error"))["error"]
        assert err["code"] == "input_audio_buffer_commit_empty"


async def test_vad_threshold_mapping_and_padding_clamp(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.update(
            {
                "transcription": {"model": "whisper-1"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
            }
        )
        await c.until("session.updated")
        await c.append(square(500, 990) + noise(300))  # RMS 990 < 0.5 * 2000: not speech
        await c.append(square(100, 1010) + noise(300, seed=3))  # RMS 1010: speech at 800 ms
        started = await c.until("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 800 - 300
        stopped = await c.until("input_audio_buffer.speech_stopped")
        assert stopped["audio_end_ms"] == 900 + 200
        await c.until("conversation.item.input_audio_transcription.completed")
        # threshold 0.4 -> RMS 800; prefix larger than the onset clamps to 0.
        await c.update(
            {"turn_detection": {"type": "server_vad", "threshold": 0.4, "prefix_padding_ms": 5000}}
        )
        await c.until("session.updated")
        await c.append(square(100, 900) + noise(300, seed=4))
        started = await c.until("input_audio_buffer.speech_started")
        assert started["audio_start_ms"] == 0


async def test_semantic_vad_and_no_vad(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.update(
            {
                "transcription": {"model": "gpt-4o-transcribe"},
                "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
            }
        )
        await c.until("session.updated")
        await c.append(square(200, 4000) + noise(600))
        stopped = await c.until("input_audio_buffer.speech_stopped")
        assert stopped["audio_end_ms"] == 200 + 500
        await c.until("conversation.item.input_audio_transcription.completed")
        # turn_detection null: never speech_started/stopped, never an auto-commit.
        await c.update({"turn_detection": None})
        await c.until("session.updated")
        await c.append(square(300, 8000) + noise(1000))
        await c.send({"type": "input_audio_buffer.clear"})
        events = await c.collect_until("input_audio_buffer.cleared")
        assert types(events) == ["input_audio_buffer.cleared"]
        assert len(emu.sessions[0].items) == 1


async def test_commit_without_transcription_has_no_transcript(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.update({"turn_detection": None})
        await c.until("session.updated")
        await c.append(noise(200))
        await c.send({"type": "input_audio_buffer.commit"})
        events = await c.collect_until("conversation.item.added")
        assert types(events) == ["input_audio_buffer.committed", "conversation.item.added"]
        await c.send({"type": "input_audio_buffer.clear"})
        assert types(await c.collect_until("input_audio_buffer.cleared")) == [
            "input_audio_buffer.cleared"
        ]
        (item,) = emu.committed_items()
        assert item.status == "committed" and item.transcript is None


# ---------------------------------------------------------------------------------------------
# D. Transcription output
# ---------------------------------------------------------------------------------------------

MODEL_OUTPUT = {
    "gpt-realtime-whisper": ("stream", "duration"),
    "gpt-live-transcribe": ("stream", "duration"),
    "gpt-transcribe": ("several", "duration"),
    "gpt-4o-transcribe": ("several", "tokens"),
    "gpt-4o-mini-transcribe": ("several", "tokens"),
    "gpt-4o-mini-transcribe-2025-12-15": ("several", "tokens"),
    "whisper-1": ("single", "duration"),
    "gpt-4o-transcribe-diarize": ("several", "tokens"),
}


@pytest.mark.parametrize("model", list(MODEL_OUTPUT))
async def test_output_per_model(make_emu: MakeEmu, model: str) -> None:
    style, usage_type = MODEL_OUTPUT[model]
    emu = await make_emu()
    audio = noise(1050, seed=7)  # 10 full blocks and a 50 ms tail
    async with connect(emu) as c:
        await c.configure(model)
        await c.append(audio)
        if style == "stream":
            # Deltas arrive before any commit.
            first = await c.until("conversation.item.input_audio_transcription.delta")
            await emu.wait_for(lambda: emu.sessions[0].appended_bytes == len(audio))
        await c.send({"type": "input_audio_buffer.commit"})
        events = await c.collect_until("conversation.item.done")
    committed = next(e for e in c.received if e["type"] == "input_audio_buffer.committed")
    i_commit = c.received.index(committed)
    deltas = [
        (i, e)
        for i, e in enumerate(c.received)
        if e["type"] == "conversation.item.input_audio_transcription.delta"
    ]
    completed = events[-2]
    assert completed["type"] == "conversation.item.input_audio_transcription.completed"
    text = expected_transcript(audio)
    assert "".join(e["delta"] for _, e in deltas) == completed["transcript"] == text
    assert all(e["item_id"] == committed["item_id"] for _, e in deltas)
    assert all(e["content_index"] == 0 for _, e in deltas)
    assert completed["content_index"] == 0
    before = [e for i, e in deltas if i < i_commit]
    after = [e for i, e in deltas if i > i_commit]
    if style == "stream":
        assert first["item_id"] == committed["item_id"]
        assert len(before) == 10 and len(after) == 1
    elif style == "single":
        assert before == [] and len(after) == 1
    else:
        assert before == [] and len(after) == 11
    usage = completed["usage"]
    assert usage["type"] == usage_type
    if usage_type == "duration":
        assert usage["seconds"] == pytest.approx(1.05)
    else:
        assert usage["input_token_details"] == {"audio_tokens": 11, "text_tokens": 0}
        assert usage["input_tokens"] == 11
        assert usage["output_tokens"] == math.ceil(len(text) / 4)
        assert usage["total_tokens"] == 11 + usage["output_tokens"]
    assert ("languages" in completed) == (model == "gpt-transcribe")
    if model == "gpt-transcribe":
        assert completed["languages"] == [{"code": "en"}]
    segments = [
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.segment"
    ]
    if model == "gpt-4o-transcribe-diarize":
        (segment,) = segments
        assert segment["text"] == text and segment["end"] == pytest.approx(1.05)
        assert events.index(segment) < events.index(completed)
    else:
        assert segments == []
    assert "logprobs" not in completed
    (item,) = emu.committed_items()
    assert (item.status, item.transcript, item.usage) == ("completed", text, usage)
    assert item.model == model


async def test_logprobs_only_when_included_and_supported(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        for model, expect in [("gpt-4o-transcribe", True), ("whisper-1", False)]:
            await c.update(
                {"transcription": {"model": model}, "turn_detection": None},
                include=["item.input_audio_transcription.logprobs"],
            )
            await c.until("session.updated")
            await c.append(noise(200))
            await c.send({"type": "input_audio_buffer.commit"})
            events = await c.collect_until("conversation.item.done")
            for e in events:
                if e["type"].startswith("conversation.item.input_audio_transcription."):
                    assert ("logprobs" in e) == expect
                    if expect:
                        text = e.get("delta", e.get("transcript"))
                        assert "".join(lp["token"] for lp in e["logprobs"]) == text


async def test_gpt_transcribe_reports_configured_language(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.configure("gpt-transcribe", languages=["fr", "en"])
        await c.append(noise(150))
        await c.send({"type": "input_audio_buffer.commit"})
        completed = await c.until("conversation.item.input_audio_transcription.completed")
        assert completed["languages"] == [{"code": "fr"}]


async def test_response_create_is_an_error(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.send({"type": "response.create", "event_id": "evt_r"})
        err = (await c.until("error"))["error"]
        assert (err["code"], err["event_id"]) == ("invalid_value", "evt_r")
        await c.configure("whisper-1")
    assert not any(
        e.event["type"].startswith("response.") for e in emu.events if e.direction == "out"
    )


async def test_completed_delay_and_order(make_emu: MakeEmu) -> None:
    emu = await make_emu(completed_delay=0.2)
    async with connect(emu) as c:
        await c.configure("gpt-4o-transcribe")
        await c.append(noise(300))
        await c.send({"type": "input_audio_buffer.commit"})
        await c.until("input_audio_buffer.committed")
        t0 = time.monotonic()
        await c.append(noise(300, seed=1))
        await c.send({"type": "input_audio_buffer.commit"})
        first = await c.until("conversation.item.input_audio_transcription.completed")
        assert time.monotonic() - t0 >= 0.15
        second = await c.until("conversation.item.input_audio_transcription.completed")
        items = emu.committed_items()
        assert [first["item_id"], second["item_id"]] == [i.item_id for i in items]


async def test_script_transcriber(make_emu: MakeEmu) -> None:
    script = ScriptTranscriber(["hello there how are you", "second line"], word_ms=100)
    emu = await make_emu(transcriber=script)
    async with connect(emu) as c:
        await c.configure("gpt-realtime-whisper")
        await c.append(noise(250))
        await c.until("conversation.item.input_audio_transcription.delta")
        await c.send({"type": "input_audio_buffer.clear"})  # abandoned: its line is given back
        await c.until("input_audio_buffer.cleared")
        for expected in ["hello there how are you", "second line", ""]:  # "" past the script
            await c.append(noise(250))
            await c.send({"type": "input_audio_buffer.commit"})
            completed = await c.until("conversation.item.input_audio_transcription.completed")
            assert completed["transcript"] == expected
        streamed: dict[str, str] = {}
        for e in c.received:
            if e["type"] == "conversation.item.input_audio_transcription.delta":
                streamed[e["item_id"]] = streamed.get(e["item_id"], "") + e["delta"]
        for item in emu.committed_items():
            assert streamed.get(item.item_id, "") == item.transcript
    assert script.committed == 3


def test_expected_transcript_and_transcribers() -> None:
    audio = noise(250)
    text = expected_transcript(audio)
    assert re.fullmatch(r"([0-9a-f]{8} ){2}\+2400:[0-9a-f]{8}", text)
    assert expected_transcript(b"") == "+0:00000000"
    item = BlockCrcTranscriber().start_item()
    pieces = [item.feed(audio[i : i + 1000]) for i in range(0, len(audio), 1000)]
    assert "".join(pieces) + item.finish() == text
    assert expected_transcript(audio, block_ms=50).count(" ") == 5
    empty = ScriptTranscriber([]).start_item()
    assert empty.feed(audio) + empty.finish() == ""


# ---------------------------------------------------------------------------------------------
# E. Lifetime
# ---------------------------------------------------------------------------------------------


async def test_session_expires(make_emu: MakeEmu) -> None:
    emu = await make_emu(max_session_seconds=0.6)
    async with connect(emu) as c:
        t0 = time.monotonic()
        err = (await c.until("error"))["error"]
        assert time.monotonic() - t0 >= 0.4
        assert err["code"] == "session_expired"
        assert err["type"] == "invalid_request_error"
        assert err["message"] == "Your session hit the maximum duration of 0.01 minutes."
        assert await c.closed() == (1000, "invalid_request_error.session_expired")
    await emu.wait_for(lambda: emu.sessions[0].closed)
    assert emu.sessions[0].close_code == 1000


async def test_many_concurrent_sessions(make_emu: MakeEmu) -> None:
    emu = await make_emu(record_events=False)

    async def one(n: int) -> None:
        audio = noise(500, seed=n)
        async with connect(emu) as c:
            await c.configure("gpt-realtime-whisper")
            await c.append(audio, chunk_ms=20)
            await c.send({"type": "input_audio_buffer.commit"})
            completed = await c.until("conversation.item.input_audio_transcription.completed")
            assert completed["transcript"] == expected_transcript(audio)

    await asyncio.gather(*(one(n) for n in range(40)))
    assert len(emu.committed_items()) == 40
    assert emu.events == [] and emu.committed_items()[0].audio == b""


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------


async def test_refuse_handshake(make_emu: MakeEmu) -> None:
    emu = await make_emu(
        faults=FaultPlan(
            refuse_handshake=RefuseHandshake(429, times=2, headers={"Retry-After": "1"})
        )
    )
    url = f"ws://127.0.0.1:{emu.port}/v1/realtime?intent=transcription"
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.get(url, headers=AUTH) as r:
                assert r.status == 429
                assert r.headers["Retry-After"] == "1"
                assert (await r.json())["error"]["code"] == "rate_limit_exceeded"
        async with connect(emu):
            pass
        emu.faults.refuse_handshake = RefuseHandshake(
            500, body={"error": {"message": "boom", "type": "server_error", "code": None}}
        )
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await http.ws_connect(url, headers=AUTH)
        assert info.value.status == 500
        emu.faults.refuse_handshake = RefuseHandshake(403, connections={5})  # not this one
        async with connect(emu):
            pass
    assert emu.handshakes == 5
    assert len(emu.sessions) == 2


async def test_drop_after_bytes_only_on_chosen_connection(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    emu.faults.drop_after_bytes = 200 * BPMS
    emu.faults.connections = {0}
    async with connect(emu) as c:
        await c.configure("gpt-realtime-whisper")
        await c.append(noise(400))
        code, _ = await c.closed()
        assert code == 1006  # abnormal: no close frame
    await emu.wait_for(lambda: emu.sessions[0].closed)
    assert emu.sessions[0].close_code == 1006
    assert emu.sessions[0].appended_bytes == 200 * BPMS
    async with connect(emu) as c:  # connection 1 is not dropped
        await c.configure("gpt-realtime-whisper")
        await c.append(noise(400))
        await c.send({"type": "input_audio_buffer.commit"})
        await c.until("conversation.item.input_audio_transcription.completed")


async def test_drop_after_seconds(make_emu: MakeEmu) -> None:
    emu = await make_emu(faults=FaultPlan(drop_after_seconds=0.2))
    async with connect(emu) as c:
        t0 = time.monotonic()
        code, _ = await c.closed()
        assert code == 1006 and time.monotonic() - t0 >= 0.1


async def test_drop_at_random_is_seeded(make_emu: MakeEmu) -> None:
    emu = await make_emu(
        faults=FaultPlan(drop_at_random=RandomDrop(seed=42, min_bytes=4800, max_bytes=48000))
    )
    dropped_at: list[int] = []
    for _ in range(2):
        async with connect(emu) as c:
            await c.append(noise(2000), chunk_ms=10)
            assert (await c.closed())[0] == 1006
    await emu.wait_for(lambda: all(s.closed for s in emu.sessions))
    dropped_at = [s.appended_bytes for s in emu.sessions]
    assert all(4800 <= n <= 48000 + 480 for n in dropped_at)
    emu2 = await make_emu(faults=FaultPlan(drop_at_random=RandomDrop(42, 4800, 48000)))
    async with connect(emu2) as c:
        await c.append(noise(2000), chunk_ms=10)
        await c.closed()
    await emu2.wait_for(lambda: emu2.sessions[0].closed)
    assert emu2.sessions[0].appended_bytes == dropped_at[0]


async def test_close_with(make_emu: MakeEmu) -> None:
    emu = await make_emu(
        faults=FaultPlan(close_with=CloseWith(1011, "overloaded", after_bytes=4800))
    )
    async with connect(emu) as c:
        await c.append(noise(200))
        assert await c.closed() == (1011, "overloaded")
    emu.faults.close_with = CloseWith(1012, "restart", after_seconds=0.1)
    async with connect(emu) as c:
        assert await c.closed() == (1012, "restart")


async def test_send_error(make_emu: MakeEmu) -> None:
    emu = await make_emu(faults=FaultPlan(send_error=SendError(after_seconds=0.05)))
    async with connect(emu) as c:
        err = (await c.until("error"))["error"]
        assert (err["type"], err["code"]) == ("server_error", "server_error")
        await c.configure("whisper-1")  # still open
    emu.faults.send_error = SendError(
        code="invalid_api_key",
        type="invalid_request_error",
        message="Incorrect API key provided.",
        after_bytes=4800,
        close_code=4000,
    )
    async with connect(emu) as c:
        await c.append(noise(100))
        assert (await c.until("error"))["error"]["code"] == "invalid_api_key"
        assert await c.closed() == (4000, "invalid_request_error.invalid_api_key")


async def test_stall_read_leaves_pings_unanswered(make_emu: MakeEmu) -> None:
    emu = await make_emu(faults=FaultPlan(stall=Stall(after_bytes=4800)))
    async with connect(emu, autoping=False) as c:
        await c.ws.ping(b"1")
        msg = await c.ws.receive(timeout=1)
        assert msg.type == aiohttp.WSMsgType.PONG  # answered before the stall
        await c.configure("gpt-realtime-whisper")
        await c.append(noise(100))
        await emu.wait_for(lambda: emu.sessions[0].appended_bytes == 4800)
        await c.ws.ping(b"2")
        await c.append(noise(300))
        with pytest.raises(asyncio.TimeoutError):
            await c.ws.receive(timeout=0.3)
        assert emu.sessions[0].appended_bytes == 4800  # nothing more was read
        assert not emu.sessions[0].closed
    # The client dropped TCP: the half-open session ends as abnormal.
    await emu.wait_for(lambda: emu.sessions[0].closed)
    assert emu.sessions[0].close_code == 1006


async def test_stall_answer_only_keeps_reading(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu, autoping=False) as c:
        await c.configure("gpt-4o-transcribe")
        emu.faults.stall = Stall(read=False, answer=True)  # at once, picked up by the ticker
        await asyncio.sleep(0.05)
        await c.append(noise(300))
        await c.send({"type": "input_audio_buffer.commit"})
        await c.ws.ping(b"x")
        await emu.wait_for(lambda: emu.sessions[0].items)
        with pytest.raises(asyncio.TimeoutError):
            await c.ws.receive(timeout=0.3)
        assert emu.sessions[0].appended_bytes == 300 * BPMS


async def test_fail_items(make_emu: MakeEmu) -> None:
    emu = await make_emu(faults=FaultPlan(fail_items={1}))
    async with connect(emu) as c:
        await c.configure("gpt-4o-transcribe")
        results = []
        for n in range(3):
            await c.append(noise(150, seed=n))
            await c.send({"type": "input_audio_buffer.commit"})
            events = await c.collect_until("conversation.item.done")
            results.append(events)
    failed = [e for e in results[1] if e["type"].endswith(".failed")]
    (f,) = failed
    assert f["error"] == {
        "type": "server_error",
        "code": None,
        "message": f"Input transcription failed for item '{f['item_id']}'.",
        "param": None,
    }
    assert f["content_index"] == 0
    assert not any(e["type"].endswith((".completed", ".delta")) for e in results[1])
    assert [i.status for i in emu.committed_items()] == ["completed", "failed", "completed"]


async def test_reorder_completed(make_emu: MakeEmu) -> None:
    emu = await make_emu(faults=FaultPlan(reorder_completed=True, reorder_hold_seconds=0.3))
    async with connect(emu) as c:
        await c.configure("whisper-1")
        ids = []
        for n in range(3):
            await c.append(noise(150, seed=n))
            await c.send({"type": "input_audio_buffer.commit"})
            ids.append((await c.until("input_audio_buffer.committed"))["item_id"])
        while sum(e["type"].endswith(".completed") for e in c.received) < 3:
            await c.recv()
    done = [e["item_id"] for e in c.received if e["type"].endswith(".completed")]
    assert done == [ids[1], ids[0], ids[2]]  # the third had no follower: flushed after the hold


async def test_malformed_and_unknown_events_once(make_emu: MakeEmu) -> None:
    emu = await make_emu(
        faults=FaultPlan(malformed_json_after_bytes=4800, unknown_event_after_bytes=9600)
    )
    async with connect(emu) as c:
        await c.append(noise(400))
        msg = await c.ws.receive(timeout=1)
        with pytest.raises(ValueError):
            json.loads(msg.data)
        assert (await c.recv())["type"] == UNKNOWN_EVENT_TYPE
        await c.send({"type": "input_audio_buffer.clear"})
        assert (await c.recv())["type"] == "input_audio_buffer.cleared"  # once only
    assert sum(e.event["type"] == "<malformed>" for e in emu.events) == 1


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


async def test_cli_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livekit.plugins.openai_rt.testing",
            "--port",
            "0",
            "--api-key",
            KEY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        base_url = line.strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url), line
        url = base_url.replace("http://", "ws://") + "/realtime?intent=transcription"
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=AUTH) as ws:
            assert json.loads((await ws.receive(timeout=2)).data)["type"] == "session.created"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
