"""Fault injection: refused handshakes, drops, close frames, injected errors, stalls, failed and
reordered items, junk frames, a late or missing ``session.updated``, binary frames, phantom
deltas (``FaultPlan``)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from livekit.plugins.openai_rt.testing import (
    UNKNOWN_EVENT_TYPE,
    CloseWith,
    FaultPlan,
    RandomDrop,
    RefuseHandshake,
    SendError,
    Stall,
)
from livekit.plugins.openai_rt.testing.faults import DelaySessionUpdated, SendBinary
from tests.emulator.helpers import AUTH, BPMS, MakeEmu, connect, noise


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
    assert emu.handshakes == len(emu.handshake_times) == 5
    assert emu.handshake_times == sorted(emu.handshake_times)
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
        await c.commit(noise(400))
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
        await c.commit(noise(300))
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
            await c.commit(noise(150, seed=n))
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
            await c.commit(noise(150, seed=n))
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


async def test_delay_session_updated_holds_it_and_what_follows_but_answers_pings(
    make_emu: MakeEmu,
) -> None:
    emu = await make_emu(faults=FaultPlan(delay_session_updated=DelaySessionUpdated(0.3)))
    async with connect(emu) as c:
        t0 = time.monotonic()
        await c.update({"transcription": {"model": "gpt-realtime-whisper"}, "turn_detection": None})
        await c.update({"transcription": {"model": "gpt-realtime-whisper", "language": "fr"}})
        await c.ws.ping()  # answered while session.updated waits
        first = await c.until("session.updated")
        assert time.monotonic() - t0 >= 0.3
        second = await c.until("session.updated", timeout=0.2)  # the next one is not held
        assert "language" not in first["session"]["audio"]["input"]["transcription"]
        assert second["session"]["audio"]["input"]["transcription"]["language"] == "fr"
    emu.faults.delay_session_updated = DelaySessionUpdated(None, connections={1})
    async with connect(emu) as c:
        await c.update({"transcription": {"model": "gpt-realtime-whisper"}, "turn_detection": None})
        with pytest.raises(asyncio.TimeoutError):
            await c.until("session.updated", timeout=0.3)
        assert emu.sessions[1].transcription_model == "gpt-realtime-whisper"  # applied


async def test_send_binary_once_per_connection(make_emu: MakeEmu) -> None:
    emu = await make_emu(
        faults=FaultPlan(send_binary=SendBinary(size=1000, after_bytes=100 * BPMS))
    )
    async with connect(emu) as c:
        await c.configure("gpt-realtime-whisper")
        await c.append(noise(300))
        msg = await c.ws.receive(timeout=2.0)
        while msg.type == aiohttp.WSMsgType.TEXT:  # the deltas streamed meanwhile
            msg = await c.ws.receive(timeout=2.0)
        assert msg.type == aiohttp.WSMsgType.BINARY and msg.data == bytes(1000)
        await c.send({"type": "input_audio_buffer.commit"})
        await c.until("conversation.item.input_audio_transcription.completed")
    assert [e.event for e in emu.events if e.event["type"] == "<binary>"] == [
        {"type": "<binary>", "bytes": 1000}
    ]


async def test_stray_deltas_name_items_never_committed(make_emu: MakeEmu) -> None:
    emu = await make_emu(faults=FaultPlan(stray_deltas=True))
    async with connect(emu) as c:
        await c.configure("gpt-4o-mini-transcribe")
        await c.commit(noise(300))
        await c.until("conversation.item.input_audio_transcription.completed")
        stray = await c.until("conversation.item.input_audio_transcription.delta")
    assert stray["item_id"] not in {item.item_id for item in emu.committed_items()}
    assert stray["delta"] == "phantom"
