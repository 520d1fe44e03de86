"""Shared helpers of the emulator tests: a raw websocket client, test audio, SDK validation.

Every event an emulator sends is validated against the OpenAI SDK's server-event types (the
``make_emu`` fixture in ``conftest.py`` does it at teardown).
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, get_args

import aiohttp
import numpy as np
from openai.types.realtime.realtime_server_event import RealtimeServerEvent
from openai.types.realtime.realtime_transcription_session_create_response import (
    RealtimeTranscriptionSessionCreateResponse,
)
from pydantic import BaseModel, TypeAdapter

from livekit.plugins.openai_rt.testing import UNKNOWN_EVENT_TYPE, Emulator

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
        if logged.event["type"] in ("<malformed>", "<binary>", UNKNOWN_EVENT_TYPE):
            continue
        validate_event(logged.event)
        n += 1
    return n


# ---------------------------------------------------------------------------------------------
# Client and audio
# ---------------------------------------------------------------------------------------------

MakeEmu = Callable[..., Awaitable[Emulator]]


class Client:
    """A raw websocket client speaking JSON events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse[bool]) -> None:
        """Wrap an open websocket; every event read is kept in :attr:`received`."""
        self.ws = ws
        self.received: list[Json] = []

    async def send(self, event: Json) -> None:
        """Send one client event."""
        await self.ws.send_str(json.dumps(event))

    async def recv(self, timeout: float = 2.0) -> Json:
        """Read the next server event (a text frame is required)."""
        msg = await self.ws.receive(timeout=timeout)
        assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, self.ws.close_code)
        event: Json = json.loads(msg.data)
        self.received.append(event)
        return event

    async def until(self, etype: str, timeout: float = 2.0) -> Json:
        """Read events until one of type ``etype``; return it."""
        while True:
            event = await self.recv(timeout)
            if event["type"] == etype:
                return event

    async def collect_until(self, etype: str, timeout: float = 2.0) -> list[Json]:
        """Read events until one of type ``etype``; return all of them, that one last."""
        events: list[Json] = []
        while True:
            event = await self.recv(timeout)
            events.append(event)
            if event["type"] == etype:
                return events

    async def update(self, input: Json | None = None, **session: Any) -> None:
        """Send a transcription ``session.update`` with ``audio.input`` = ``input``."""
        body: Json = {"type": "transcription", **session}
        if input is not None:
            body["audio"] = {"input": input}
        await self.send({"type": "session.update", "session": body})

    async def configure(self, model: str, **transcription: Any) -> Json:
        """Turn transcription on with ``model`` and VAD off; return ``session.updated``."""
        await self.update(
            {"transcription": {"model": model, **transcription}, "turn_detection": None}
        )
        return await self.until("session.updated")

    async def append(self, audio: bytes, chunk_ms: int = 50) -> None:
        """Append pcm16 ``audio`` in ``chunk_ms`` pieces."""
        step = chunk_ms * BPMS
        for i in range(0, len(audio), step):
            await self.send(
                {
                    "type": "input_audio_buffer.append",
                    "audio": base64.b64encode(audio[i : i + step]).decode(),
                }
            )

    async def commit(self, audio: bytes, chunk_ms: int = 50) -> None:
        """Append pcm16 ``audio`` (in ``chunk_ms`` pieces) and commit the buffer."""
        await self.append(audio, chunk_ms)
        await self.send({"type": "input_audio_buffer.commit"})

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
    """Open a websocket to ``emu`` and read its first event, which must be of type ``first``."""
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
    """The ``type`` of each event."""
    return [e["type"] for e in events]
