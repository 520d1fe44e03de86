"""A warm first turn over the emulator: ``STT.prewarm()`` opens and configures a session, the
first stream takes it over (no handshake, no configuration round trip on the first turn), an
unused one is closed after ``prewarm_ttl``, and nothing changes what is transcribed."""

from __future__ import annotations

import asyncio
import time

import pytest

from livekit.agents import stt
from livekit.agents.metrics import STTMetrics
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import Emulator, FaultPlan, RefuseHandshake
from livekit.plugins.openai_rt.testing.routing import AzureMode
from tests.conftest import (
    INTERIM,
    KEY,
    MakeSTT,
    assert_exactly_once,
    azure_stt,
    drive,
    frames,
)

HANDSHAKE = 0.3
"""A distant server: seconds the websocket upgrade takes."""


def configured(emu: Emulator) -> int:
    """Sessions that received a transcription configuration."""
    return sum(1 for s in emu.sessions if s.transcription_model)


async def transcribed_exactly_once(emu: Emulator, stream: stt.RecognizeStream, pcm: bytes) -> None:
    """Drive ``stream`` with ``pcm`` (no flush) and check its finals against ``emu``'s items."""
    events = await drive(stream, pcm)
    assert_exactly_once(events, emu.committed_items(), pcm)


async def first_audio_to_interim(stt_: openai_rt.STT, pcm: bytes) -> tuple[float, float]:
    """Open a stream, push ``pcm`` in real time; (stream start -> its session ready, first
    audio -> first INTERIM), seconds."""
    started = time.monotonic()
    stream = stt_.stream()
    first_audio = 0.0
    interim_at = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async for ev in stream:
            if ev.type == INTERIM and not interim_at.done():
                interim_at.set_result(time.monotonic())

    reader = asyncio.create_task(read())
    for frame in frames(pcm):
        stream.push_frame(frame)
        if not first_audio:
            first_audio = time.monotonic()
        if interim_at.done():
            break
        await asyncio.sleep(frame.duration)
    interim = await asyncio.wait_for(interim_at, 5.0)
    ready = stream.session.configured_at
    await stream.aclose()
    reader.cancel()
    assert ready is not None
    return max(0.0, ready - started), interim - first_audio


async def test_the_first_stream_takes_over_the_prewarmed_session(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY, handshake_delay=HANDSHAKE) as emu:
        warm = make_stt(emu)
        warm.prewarm()
        await emu.wait_for(lambda: configured(emu) == 1)
        metrics: list[STTMetrics] = []
        warm.on("metrics_collected", metrics.append)
        stream = warm.stream()
        events = await drive(stream, sample_pcm, flush_at=(4.7, 10.0))
        items = emu.committed_items()
        assert emu.handshakes == 1 and len(emu.sessions) == 1
        # the session.update went out once, at prewarm time
        updates = [e for e in emu.events if e.event["type"] == "session.update"]
        assert len(updates) == 1
        # the framework's connection metric says so (recognition metrics carry a request id)
        assert [m.connection_reused for m in metrics if not m.request_id] == [True]
    assert_exactly_once(events, items, sample_pcm, every_item=True)


async def test_the_first_turn_is_warm_a_cold_one_waits_for_the_handshake(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    speech = sample_pcm[28800:76800]  # 1 s of the first word, in real time
    async with Emulator(api_key=KEY, handshake_delay=HANDSHAKE) as emu:
        cold_ready, cold_interim = await first_audio_to_interim(make_stt(emu), speech)
        warm = make_stt(emu)
        warm.prewarm()
        await emu.wait_for(lambda: configured(emu) == 2)
        warm_ready, warm_interim = await first_audio_to_interim(warm, speech)
    # cold: the handshake and the configuration round trip come first
    assert cold_ready >= HANDSHAKE and cold_interim >= HANDSHAKE
    # warm: ready as the stream starts; the first interim comes with 100 ms of audio
    assert warm_ready < 0.05
    assert warm_interim < HANDSHAKE < cold_interim


async def test_a_stream_opened_while_prewarming_waits_for_that_session(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY, handshake_delay=HANDSHAKE) as emu:
        stt_ = make_stt(emu)
        stt_.prewarm()
        stream = stt_.stream()  # the prewarmed handshake is still under way
        await transcribed_exactly_once(emu, stream, sample_pcm[:96000])
        assert emu.handshakes == 1


async def test_an_unused_prewarmed_session_is_closed_after_its_ttl(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, prewarm_ttl=0.2)
        stt_.prewarm()
        await emu.wait_for(lambda: configured(emu) == 1)
        await emu.wait_for(lambda: emu.sessions[0].closed, timeout=2.0)
        assert emu.sessions[0].close_code == 1000  # closed by the client
        await transcribed_exactly_once(emu, stt_.stream(), sample_pcm[:96000])  # connects afresh
        assert emu.handshakes == 2


async def test_a_stream_with_another_configuration_does_not_take_it(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu)
        stt_.prewarm()
        await emu.wait_for(lambda: configured(emu) == 1)
        await drive(stt_.stream(language="fr"), sample_pcm[:96000])
        assert emu.handshakes == 2
        assert emu.sessions[0].items == [] and not emu.sessions[0].closed  # still waiting
        await stt_.aclose()
        await emu.wait_for(lambda: emu.sessions[0].closed)


async def test_a_failed_prewarm_leaves_the_stream_to_connect_itself(
    sample_pcm: bytes, make_stt: MakeSTT, caplog: pytest.LogCaptureFixture
) -> None:
    faults = FaultPlan(refuse_handshake=RefuseHandshake(status=503, times=1))
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stt_ = make_stt(emu)
        stt_.prewarm()
        await transcribed_exactly_once(emu, stt_.stream(), sample_pcm[:96000])
        assert emu.handshakes == 2
    assert any("prewarming a session failed" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


async def test_prewarm_does_nothing_while_a_stream_is_open(make_stt: MakeSTT) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu)
        stream = stt_.stream()
        await emu.wait_for(lambda: configured(emu) == 1)
        stt_.prewarm()  # an agent handoff: the stream goes on, its session is warm
        stt_.prewarm()
        await asyncio.sleep(0.1)
        assert emu.handshakes == 1
        await stream.aclose()


async def test_an_azure_stt_prewarms_with_its_credentials(sample_pcm: bytes) -> None:
    tokens: list[str] = []

    def provider() -> str:
        tokens.append(f"{KEY}-entra-{len(tokens) + 1}")
        return tokens[-1]

    mode = AzureMode(deployments={"team-whisper": "gpt-realtime-whisper"})
    async with Emulator(api_key=KEY, azure=mode) as emu:
        async with azure_stt(emu, "team-whisper", azure_ad_token_provider=provider) as stt_:
            stt_.prewarm()
            await emu.wait_for(lambda: configured(emu) == 1)
            await transcribed_exactly_once(emu, stt_.stream(), sample_pcm[:96000])
        # one connect, one token: the prewarmed session was taken over
        assert tokens == [f"{KEY}-entra-1"] and emu.handshakes == 1


async def test_an_input_that_ends_empty_while_the_warm_session_opens_ends_cleanly(
    make_stt: MakeSTT,
) -> None:
    # the stream waits for the warm session, whose handshake takes a second; the input ends,
    # with no audio, before it is ready
    async with Emulator(api_key=KEY, handshake_delay=1.0) as emu:
        stt_ = make_stt(emu)
        stt_.prewarm()
        stream = stt_.stream()
        await emu.wait_for(lambda: emu.handshakes >= 1)
        stream.end_input()
        events = [ev async for ev in stream]
    assert events == []
    assert stream.session.state.value == "finished"
