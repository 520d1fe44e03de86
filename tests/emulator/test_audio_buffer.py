"""The audio buffer: appends, commits, clears and the server VAD (docs/protocol.md §7 C)."""

from __future__ import annotations

import base64
import re

from livekit.plugins.openai_rt.testing import expected_transcript
from tests.emulator.helpers import BPMS, MakeEmu, connect, noise, square, types


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
        await c.commit(audio)
        err = (await c.until("error"))["error"]
        assert err["message"].endswith("but buffer only has 61.04ms of audio.")
        assert emu.sessions[0].buffer_bytes == len(audio)
        more = noise(40, seed=2)
        await c.commit(more)
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
            await c.commit(audio)
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
        # ...and the next one lands on an empty buffer (docs/protocol.md §7 C.24).
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
        await c.commit(noise(200))
        events = await c.collect_until("conversation.item.added")
        assert types(events) == ["input_audio_buffer.committed", "conversation.item.added"]
        await c.send({"type": "input_audio_buffer.clear"})
        assert types(await c.collect_until("input_audio_buffer.cleared")) == [
            "input_audio_buffer.cleared"
        ]
        (item,) = emu.committed_items()
        assert item.status == "committed" and item.transcript is None
