"""Preflight transcripts over the emulator: at the commit the stream already holds the item's
streamed text and says so (``PREFLIGHT_TRANSCRIPT``) without waiting for ``completed``; a later
delta of the same item updates it; the final equals the last preflight."""

from __future__ import annotations

import asyncio
import time

from livekit.agents import stt
from livekit.plugins.openai_rt.testing import Emulator
from tests.conftest import FINAL, INTERIM, KEY, USAGE, MakeSTT, frames

PREFLIGHT = stt.SpeechEventType.PREFLIGHT_TRANSCRIPT
COMPLETED_DELAY = 0.4
"""Seconds from a commit to its ``completed``: a realistic figure, set here explicitly."""


async def test_the_commit_gives_a_preflight_well_before_the_final_which_equals_it(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    utterance = sample_pcm[28800:225600]  # the first sentence, 4.1 s
    async with Emulator(api_key=KEY, completed_delay=COMPLETED_DELAY) as emu:
        stream = make_stt(emu).stream()
        seen: list[tuple[float, stt.SpeechEvent]] = []
        final_seen = asyncio.Event()

        async def read() -> None:
            async for ev in stream:
                seen.append((time.monotonic(), ev))
                if ev.type == FINAL:
                    final_seen.set()

        reader = asyncio.create_task(read())
        for frame in frames(utterance):
            stream.push_frame(frame)
        # the server streamed its text for every 100 ms of the audio sent so far (the audio
        # goes out in ~50 ms appends; what is left goes with the commit): then commit
        await emu.wait_for(
            lambda: emu.sessions and emu.sessions[0].appended_bytes > len(utterance) - 2400
        )
        blocks = emu.sessions[0].appended_bytes // 4800
        await emu.wait_for(
            lambda: any(ev.alternatives[0].text.count(" ") >= blocks for _, ev in seen)
        )
        flushed_at = time.monotonic()
        stream.flush()
        await asyncio.wait_for(final_seen.wait(), 5.0)
        stream.end_input()
        await reader

    (item,) = emu.committed_items()
    completed_at = next(
        e.t
        for e in emu.events
        if e.event["type"] == "conversation.item.input_audio_transcription.completed"
    )
    item_events = [(t, ev) for t, ev in seen if ev.request_id == item.item_id and ev.type != USAGE]
    kinds = [ev.type for _, ev in item_events]
    preflights = [(t, ev) for t, ev in item_events if ev.type == PREFLIGHT]
    final_t, final = item_events[-1]
    assert kinds[-1] == FINAL
    # interims while the audio arrives, then preflights only: an interim after a preflight
    # would tell the framework the user went on speaking
    first_preflight = kinds.index(PREFLIGHT)
    assert set(kinds[:first_preflight]) == {INTERIM}
    assert set(kinds[first_preflight:-1]) == {PREFLIGHT}
    # the first preflight comes with the commit, with the text streamed so far
    assert preflights[0][0] - flushed_at < 0.05
    assert preflights[0][1].alternatives[0].text.count(" ") == blocks
    assert preflights[0][0] < completed_at - COMPLETED_DELAY / 2
    # the server's last delta completes it; the final equals the last preflight
    assert preflights[-1][1].alternatives[0].text == final.alternatives[0].text == item.transcript
    assert final_t >= completed_at
    # preflights carry the item's place in the audio, like the final
    assert preflights[0][1].alternatives[0].end_time == final.alternatives[0].end_time > 0


async def test_models_that_answer_after_the_commit_send_no_preflight(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator, model="gpt-4o-mini-transcribe", turn_detection=None)
    stream = stt_.stream()
    for frame in frames(sample_pcm[28800:76800]):
        stream.push_frame(frame)
    stream.end_input()
    kinds = [ev.type async for ev in stream]
    assert PREFLIGHT not in kinds and FINAL in kinds and INTERIM in kinds
