"""Transcription output per model: deltas, completed, usage, logprobs, segments (docs/protocol.md
§7 D), and the transcribers."""

from __future__ import annotations

import dataclasses
import math
import re
import time

import pytest

from livekit.plugins.openai_rt.testing import (
    MODEL_RULES,
    BlockCrcTranscriber,
    ScriptTranscriber,
    expected_transcript,
)
from tests.emulator.helpers import MakeEmu, connect, noise

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
    # diarize is refused in realtime sessions (docs/protocol.md §7 B.44); a rules table that
    # lets it run shows its segment events
    rules = {**MODEL_RULES, model: dataclasses.replace(MODEL_RULES[model], realtime=True)}
    emu = await make_emu(model_rules=rules)
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
            await c.commit(noise(200))
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
        await c.commit(noise(150))
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
        await c.commit(noise(300))
        await c.until("input_audio_buffer.committed")
        t0 = time.monotonic()
        await c.commit(noise(300, seed=1))
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
            await c.commit(noise(250))
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
