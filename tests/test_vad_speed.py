"""With ``vad=``, commits land exactly where the stream's VAD ends speech, however fast the
audio comes: open audio the VAD has not judged yet is held back, so a file fed at full speed
gives the same items and the same finals as the same file in real time.

The exact comparison uses a deterministic VAD: ``inference.VAD`` resamples its input with
``rtc.AudioResampler``, whose output dithers from one instance to the next (a few LSBs on
~40 % of samples), so its end of speech can move by a 32 ms window between two runs of the
same audio, at any speed. With it, the test checks the boundaries within that window."""

from __future__ import annotations

import asyncio

from livekit.agents import inference, vad
from livekit.plugins.openai_rt.testing import EmulatedItem, Emulator
from tests.agent_fakes import EnergyVAD
from tests.conftest import KEY, MakeSTT, assert_exactly_once, drive, final_texts, frames

TWO_SENTENCES = 9.5  # seconds of the sample: its first two sentences and the pause after


async def transcribe(
    make_stt: MakeSTT, pcm: bytes, realtime: float, vad_: vad.VAD
) -> tuple[list[str], list[EmulatedItem]]:
    async with Emulator(api_key=KEY) as emu:
        stream = make_stt(emu, vad=vad_).stream()
        events = await drive(stream, pcm, realtime=realtime)
        items = emu.committed_items()
    assert_exactly_once(
        events, items, pcm, every_item=True, skipped_seconds=stream.skipped_silence_seconds
    )
    return final_texts(events), items


async def test_a_file_fed_at_full_speed_gives_the_real_time_finals(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    pcm = sample_pcm[: int(TWO_SENTENCES * 24000) * 2]
    (real_finals, real_items), (fast_finals, fast_items) = await asyncio.gather(
        transcribe(make_stt, pcm, 1.0, EnergyVAD()), transcribe(make_stt, pcm, 0.0, EnergyVAD())
    )
    # one item per sentence, cut at the same byte by the VAD's end of speech
    assert len(real_items) == 2
    assert [len(i.audio) for i in fast_items] == [len(i.audio) for i in real_items]
    assert fast_finals == real_finals


async def test_at_full_speed_inference_vad_cuts_where_it_ends_speech(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    pcm = sample_pcm[: int(TWO_SENTENCES * 24000) * 2]
    ends = await vad_ends(pcm)
    _, items = await transcribe(make_stt, pcm, 0.0, inference.VAD())
    # the sentences are not merged: each item ends at the VAD's end of speech (within the
    # window its dithering resampler can move it by)
    assert len(items) == len(ends) == 2
    cuts = [sum(len(i.audio) for i in items[: k + 1]) for k in range(len(items))]
    window = 2 * 24000 * 32 // 1000
    assert abs(cuts[0] - ends[0]) <= window


async def vad_ends(pcm: bytes) -> list[int]:
    """Where ``inference.VAD`` alone ends speech in ``pcm`` (byte positions)."""
    stream = inference.VAD().stream()
    for frame in frames(pcm):
        stream.push_frame(frame)
    stream.end_input()
    ends = [
        int(ev.timestamp * 24000) * 2
        async for ev in stream
        if ev.type == vad.VADEventType.END_OF_SPEECH
    ]
    await stream.aclose()
    return ends
