"""``stt.recognize(buffer)``: one short-lived session per call, against the emulator over a loopback
websocket. Transcripts are the emulator's (a pure function of the exact audio it received)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from livekit import rtc
from livekit.agents import APIConnectOptions, APIStatusError, stt
from livekit.agents.metrics import STTMetrics
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import Emulator, expected_transcript
from tests.conftest import KEY, MakeSTT, frames

SECONDS = 48000  # bytes per second of 24 kHz pcm16


def frame(pcm: bytes, rate: int = 24000, channels: int = 1) -> rtc.AudioFrame:
    """One frame of interleaved int16 ``pcm``."""
    return rtc.AudioFrame(pcm, rate, channels, len(pcm) // 2 // channels)


async def test_recognize_returns_the_final_of_the_whole_buffer(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    pcm = sample_pcm[: 3 * SECONDS]
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu)
        assert stt_.capabilities.offline_recognize
        event = await stt_.recognize(list(frames(pcm)))
        (item,) = emu.committed_items()
        session = emu.sessions[0]
        await emu.wait_for(lambda: session.closed)
    assert item.audio == pcm and item.committed_by == "client"
    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    assert event.request_id == item.item_id
    (alt,) = event.alternatives
    assert alt.text == expected_transcript(pcm)
    assert (alt.language, alt.start_time, alt.end_time) == ("en", 0.0, 3.0)
    assert event.recognition_usage is not None
    assert event.recognition_usage.audio_duration == pytest.approx(3.0)
    assert len(emu.sessions) == 1


async def test_a_short_buffer_is_padded_to_the_commit_minimum(make_stt: MakeSTT) -> None:
    pcm = np.full(1200, 3000, dtype="<i2").tobytes()  # 25 ms
    async with Emulator(api_key=KEY) as emu:
        event = await make_stt(emu).recognize(frame(pcm))
        (item,) = emu.committed_items()
    assert item.audio == pcm + bytes(4800 - len(pcm))
    assert event.alternatives[0].text == expected_transcript(item.audio)


async def test_stereo_is_downmixed_like_a_stream(make_stt: MakeSTT) -> None:
    rng = np.random.default_rng(3)
    left, right = rng.integers(-3000, 3000, (2, 24000), dtype=np.int16)
    stereo = np.stack([left, right], axis=1).astype("<i2").tobytes()  # interleaved
    async with Emulator(api_key=KEY) as emu:
        event = await make_stt(emu).recognize(frame(stereo, channels=2))
        (item,) = emu.committed_items()
    mono = ((left.astype(np.int32) + right) / 2).round().astype("<i2").tobytes()
    assert item.audio == mono
    assert event.alternatives[0].text == expected_transcript(mono)


async def test_other_rates_are_resampled_like_a_stream(make_stt: MakeSTT) -> None:
    rng = np.random.default_rng(4)
    pcm = rng.integers(-3000, 3000, 48000, dtype=np.int16).astype("<i2").tobytes()
    async with Emulator(api_key=KEY) as emu:
        event = await make_stt(emu).recognize(frame(pcm, rate=48000))  # 1 s at 48 kHz
        (item,) = emu.committed_items()
    assert len(item.audio) == SECONDS  # 1 s at 24 kHz
    assert event.alternatives[0].text == expected_transcript(item.audio)


async def test_recognize_commits_once_even_for_a_server_vad_model(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, model="gpt-4o-mini-transcribe")
        assert stt_.options.turn_detection is not None  # streams use the server's VAD
        event = await stt_.recognize(list(frames(sample_pcm)))
        config = emu.sessions[0].config
        (item,) = emu.committed_items()
    assert config["audio"]["input"]["turn_detection"] is None
    assert item.committed_by == "client" and item.audio == sample_pcm
    assert event.alternatives[0].text == expected_transcript(sample_pcm)
    usage = event.recognition_usage
    assert isinstance(usage, openai_rt.TranscriptionUsage)
    details = item.usage["input_token_details"] if item.usage else {}
    assert (usage.audio_tokens, usage.text_tokens) == (details["audio_tokens"], 0)
    assert stt_.options.turn_detection is not None  # the STT's own options are unchanged


async def test_a_language_for_one_call_leaves_the_stt_options_alone(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, model="gpt-live-transcribe")
        event = await stt_.recognize(frame(sample_pcm[:SECONDS]), language="FR")
        transcription = emu.sessions[0].config["audio"]["input"]["transcription"]
    assert transcription == {"model": "gpt-live-transcribe", "languages": ["fr"]}
    assert event.alternatives[0].language == "fr"
    assert stt_.options.language == "en"


async def test_usage_is_reported_once(sample_pcm: bytes, make_stt: MakeSTT) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu)
        metrics: list[STTMetrics] = []
        stt_.on("metrics_collected", metrics.append)
        await stt_.recognize(frame(sample_pcm[: 2 * SECONDS]))
    usage = [m for m in metrics if m.audio_duration]
    assert [m.audio_duration for m in usage] == [pytest.approx(2.0)]


async def test_a_refused_key_raises_the_typed_error_of_a_stream(make_stt: MakeSTT) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, api_key="sk-wrong")
        with pytest.raises(APIStatusError) as raised:
            await stt_.recognize(
                frame(np.full(4800, 3000, dtype="<i2").tobytes()),  # speech, so a session opens
                conn_options=APIConnectOptions(max_retry=0, timeout=3.0),
            )
    assert raised.value.status_code == 401
    assert not raised.value.retryable


async def test_an_empty_buffer_gives_an_empty_final_without_a_commit(make_stt: MakeSTT) -> None:
    async with Emulator(api_key=KEY) as emu:
        event = await make_stt(emu).recognize([])
    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    assert [(a.text, a.language) for a in event.alternatives] == [("", "en")]
    assert emu.committed_items() == []
    assert event.recognition_usage is not None
    assert event.recognition_usage.audio_duration == 0.0


async def test_option_updates_do_not_reach_a_call_in_flight(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY) as emu:  # completions 0.3 s after the commit
        stt_ = make_stt(emu)
        call = asyncio.ensure_future(stt_.recognize(frame(sample_pcm[:SECONDS])))
        await emu.wait_for(emu.committed_items)
        stt_.update_options(language="fr")  # for later streams and calls
        event = await call
        updates = [e.event for e in emu.events if e.event["type"] == "session.update"]
    assert len(updates) == 1
    assert updates[0]["session"]["audio"]["input"]["transcription"]["language"] == "en"
    assert event.alternatives[0].language == "en"
