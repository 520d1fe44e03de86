"""Session lifetime: expiry, and many concurrent sessions (docs/protocol.md §7 E)."""

from __future__ import annotations

import asyncio
import time

from livekit.plugins.openai_rt.testing import expected_transcript
from tests.emulator.helpers import MakeEmu, connect, noise


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
