"""Session lifetime: expiry, and many concurrent sessions (docs/protocol.md §7 E)."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from livekit.plugins.openai_rt.testing import expected_transcript
from tests.emulator.helpers import MakeEmu, connect, noise


async def test_session_expires_as_observed(make_emu: MakeEmu) -> None:
    # docs/protocol.md §7 E.33: the session_expired error, then close 1001 with the message
    emu = await make_emu(max_session_seconds=0.6)
    message = "Your session hit the maximum duration of 0.01 minutes."
    async with connect(emu) as c:
        t0 = time.monotonic()
        err = (await c.until("error"))["error"]
        assert time.monotonic() - t0 >= 0.4
        assert err["code"] == "session_expired"
        assert err["type"] == "invalid_request_error"
        assert err["message"] == message
        assert await c.closed() == (1001, message)
    await emu.wait_for(lambda: emu.sessions[0].closed)
    assert emu.sessions[0].close_code == 1001


async def test_session_expiry_without_the_error_event(make_emu: MakeEmu) -> None:
    emu = await make_emu(max_session_seconds=0.3, expiry_error_event=False)
    async with connect(emu) as c:
        closed = await c.closed()
        assert closed == (1001, "Your session hit the maximum duration of 0.005 minutes.")
        assert [e["type"] for e in c.received] == ["session.created"]  # no error event


async def test_a_close_frame_without_a_status_code_is_recorded_as_1005(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        # a close frame with an empty payload: no status code (RFC 6455 §5.5.1)
        await c.ws._writer.send_frame(b"", aiohttp.WSMsgType.CLOSE)
        await c.closed()
    await emu.wait_for(lambda: emu.sessions[0].closed)
    assert emu.sessions[0].close_code == 1005


async def test_many_concurrent_sessions(make_emu: MakeEmu) -> None:
    emu = await make_emu(record_events=False)

    async def one(n: int) -> None:
        audio = noise(500, seed=n)
        async with connect(emu) as c:
            await c.configure("gpt-realtime-whisper")
            await c.commit(audio, chunk_ms=20)
            completed = await c.until("conversation.item.input_audio_transcription.completed")
            assert completed["transcript"] == expected_transcript(audio)

    await asyncio.gather(*(one(n) for n in range(40)))
    assert len(emu.committed_items()) == 40
    assert emu.events == [] and emu.committed_items()[0].audio == b""
