"""``openai_rt.TranslationSTT`` against the emulator over loopback.

The emulator's default translator is a pure function of each 200 ms frame
(:func:`~livekit.plugins.openai_rt.testing.expected_translation`), and its "translated speech" is
the frame itself, so the finals prove which audio was translated (every frame once, in order,
in the right segment) and the translated audio can be compared with the input byte for byte,
across drops, server errors and roll-overs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from openai.types.realtime import RealtimeTranslationClientEvent, RealtimeTranslationServerEvent
from pydantic import TypeAdapter

from livekit.agents import APIError, APIStatusError, stt
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import (
    Emulator,
    FaultPlan,
    RandomDrop,
    SendError,
    expected_source_transcript,
    expected_translation,
)
from tests.conftest import (
    CONN,
    FINAL,
    FLUSH_POINTS,
    INTERIM,
    KEY,
    drive,
    drive_and_change,
    error_records,
    of_type,
    usage_seconds,
)

FRAME = 9600
BPS = 48000
FAST = {"heartbeat": 0.6, "result_timeout": 1.5, "final_timeout": 8.0}

MakeTranslation = Callable[..., openai_rt.TranslationSTT]


@pytest.fixture
async def make_translation() -> AsyncIterator[MakeTranslation]:
    """``make_translation(emu, **options)``: a TranslationSTT with the test key pointed at
    ``emu``; every one made is closed when the test ends."""
    made: list[openai_rt.TranslationSTT] = []

    def factory(emu: Emulator, **options: Any) -> openai_rt.TranslationSTT:
        options.setdefault("api_key", KEY)
        tstt = openai_rt.TranslationSTT(base_url=emu.base_url, **options)
        made.append(tstt)
        return tstt

    yield factory
    for tstt in made:
        await tstt.aclose()


def padded(pcm: bytes) -> bytes:
    """The input as translated: the last frame completed with silence."""
    return pcm + bytes(-len(pcm) % FRAME)


def assert_translated_once(
    events: Sequence[stt.SpeechEvent], pcm: bytes, language: str = "es", *, source: bool = False
) -> list[tuple[int, int]]:
    """Every frame of ``pcm`` translated exactly once, in order: each final is the translation
    of its own segment's audio, the segments tile the (padded) input from its first byte, and
    their texts concatenate to the translation of the whole input. Returns the segments."""
    audio = padded(pcm)
    finals = of_type(events, FINAL)
    ids = [ev.request_id for ev in finals]
    assert len(ids) == len(set(ids)), "a final was emitted twice"
    segments = []
    for ev in finals:
        alt = ev.alternatives[0]
        start, end = round(alt.start_time * BPS), round(alt.end_time * BPS)
        assert start % FRAME == 0 and end % FRAME == 0, (start, end)
        segments.append((start, end))
        assert alt.text == expected_translation(audio[start:end], language), ev.request_id
        assert alt.language == language
        assert alt.target_texts == [alt.text] and alt.target_languages == [language]
        if source:
            assert alt.source_texts == [expected_source_transcript(audio[start:end])]
            assert alt.source_languages == ["und"]
        else:
            assert alt.source_texts is None
    assert [s for s, _ in segments] == [0] + [e for _, e in segments[:-1]], "gap or overlap"
    assert segments[-1][1] == len(audio)
    text = "".join(ev.alternatives[0].text for ev in finals)
    assert text == expected_translation(pcm, language)
    return segments


@dataclass
class Run:
    events: list[stt.SpeechEvent]
    audio: bytes
    emu: Emulator


async def run(
    make_translation: MakeTranslation,
    pcm: bytes,
    *,
    faults: FaultPlan | None = None,
    flush_at: Sequence[float] = FLUSH_POINTS,
    realtime: float = 20.0,
    emulator_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> Run:
    """Translate ``pcm`` on a fresh emulator, reading the translated audio as it comes."""
    async with Emulator(api_key=KEY, faults=faults, **(emulator_kwargs or {})) as emu:
        stream = make_translation(emu, **{**FAST, **options}).stream(conn_options=CONN)
        audio = bytearray()

        async def listen() -> None:
            async for frame in stream.translated_audio():
                assert (frame.sample_rate, frame.num_channels) == (24000, 1)
                audio.extend(frame.data)

        listener = asyncio.ensure_future(listen())
        events = await drive(stream, pcm, flush_at=flush_at, realtime=realtime)
        await asyncio.wait_for(listener, 5.0)
        return Run(events, bytes(audio), emu)


# -- the happy path ---------------------------------------------------------------------------


async def test_finals_per_segment_in_order_with_source_and_target_texts(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    result = await run(make_translation, sample_pcm, source_transcription="gpt-realtime-whisper")
    segments = assert_translated_once(result.events, sample_pcm, source=True)
    # cut at the last frame boundary before each flush, and at the end of the input
    assert segments == [(0, 23 * FRAME), (23 * FRAME, 50 * FRAME), (50 * FRAME, 74 * FRAME)]
    # an INTERIM per translated-text delta (one per frame here), each the whole segment so far
    finals = {ev.request_id: ev.alternatives[0].text for ev in of_type(result.events, FINAL)}
    interims = of_type(result.events, INTERIM)
    assert len(interims) == 74
    for ev in interims:
        assert finals[ev.request_id].startswith(ev.alternatives[0].text)
    session = result.emu.sessions[0]
    assert session.config["audio"]["input"]["transcription"] == {"model": "gpt-realtime-whisper"}
    assert len(result.emu.sessions) == 1 and session.close_code == 1000


async def test_translated_audio_arrives_in_order_and_adds_up_to_the_input(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    result = await run(make_translation, sample_pcm)
    assert abs(len(result.audio) - len(sample_pcm)) < FRAME  # within one frame of the input
    assert result.audio == padded(sample_pcm)  # the emulator's "translation" is the frame itself


async def test_usage_equals_the_audio_sent(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    result = await run(make_translation, sample_pcm)
    received = sum(s.appended_bytes for s in result.emu.sessions)
    assert received == len(padded(sample_pcm))
    assert usage_seconds(result.events) == pytest.approx(received / BPS)
    cost = openai_rt.estimate_cost_usd("gpt-realtime-translate", audio_seconds=received / BPS)
    assert cost == pytest.approx(received / BPS / 60 * 0.034)


async def test_end_input_alone_is_one_segment(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    result = await run(make_translation, sample_pcm[: 3 * FRAME + 96], flush_at=())
    assert assert_translated_once(result.events, sample_pcm[: 3 * FRAME + 96]) == [(0, 4 * FRAME)]


async def test_the_streams_own_vad_ends_segments_at_end_of_speech(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    from livekit.agents import inference

    result = await run(make_translation, sample_pcm, flush_at=(), realtime=8.0, vad=inference.VAD())
    segments = assert_translated_once(result.events, sample_pcm)
    assert len(segments) == 4  # three sentences, then the trailing silence at end of input
    kinds = [
        ev.type
        for ev in result.events
        if ev.type in (stt.SpeechEventType.START_OF_SPEECH, stt.SpeechEventType.END_OF_SPEECH)
    ]
    assert kinds == [stt.SpeechEventType.START_OF_SPEECH, stt.SpeechEventType.END_OF_SPEECH] * 3


async def test_finals_wait_for_a_slow_translation(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    result = await run(make_translation, sample_pcm, emulator_kwargs={"translation_delay": 0.4})
    assert len(assert_translated_once(result.events, sample_pcm)) == 3
    assert result.audio == padded(sample_pcm)


async def test_junk_from_the_server_is_counted_not_fatal(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    faults = FaultPlan(malformed_json_after_bytes=100_000, unknown_event_after_bytes=200_000)
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stream = make_translation(emu).stream()
        events = await drive(stream, sample_pcm, flush_at=FLUSH_POINTS, realtime=20.0)
    assert stream.session.skipped_frames == 2
    assert_translated_once(events, sample_pcm)


# -- resilience -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
async def test_a_drop_at_a_random_point_translates_every_frame_once(
    seed: int, sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    faults = FaultPlan(
        drop_at_random=RandomDrop(seed=seed, min_bytes=20_000, max_bytes=600_000, connections={0})
    )
    result = await run(make_translation, sample_pcm, faults=faults, realtime=30.0)
    assert len(result.emu.sessions) == 2
    assert_translated_once(result.events, sample_pcm)
    assert result.audio == padded(sample_pcm), "translated audio repeated or skipped a frame"
    # replays are billed: at least every byte once, and never less than the server received
    received = sum(s.appended_bytes for s in result.emu.sessions)
    assert usage_seconds(result.events) >= max(received, len(padded(sample_pcm))) / BPS - 1e-6


async def test_a_server_error_moves_to_a_new_session_without_loss(
    sample_pcm: bytes, make_translation: MakeTranslation, caplog: pytest.LogCaptureFixture
) -> None:
    faults = FaultPlan(send_error=SendError(after_bytes=200_000, connections={0}))
    result = await run(make_translation, sample_pcm, faults=faults)
    assert len(result.emu.sessions) == 2
    assert_translated_once(result.events, sample_pcm)
    assert result.audio == padded(sample_pcm)
    assert any(
        "reconnecting: OpenAI error on translation session" in r.getMessage()
        for r in caplog.records
    )
    assert not error_records(caplog)


async def test_a_long_call_rolls_over_before_expiry_without_loss(
    sample_pcm: bytes, make_translation: MakeTranslation, caplog: pytest.LogCaptureFixture
) -> None:
    pcm = sample_pcm * 2  # 29.5 s at 6x: about 5 s of wall time
    result = await run(
        make_translation,
        pcm,
        flush_at=(4.7, 10.0, 19.4, 24.7),
        realtime=6.0,
        emulator_kwargs={"max_session_seconds": 1.6},
        rollover_margin=0.6,
    )
    assert len(result.emu.sessions) >= 3
    assert_translated_once(result.events, pcm)
    assert result.audio == padded(pcm)
    out = [e.event for e in result.emu.events if e.direction == "out"]
    assert not [e for e in out if e["type"] == "error"], "rolled over after the server expired it"
    assert not [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("livekit.plugins")
    ]


async def test_drops_and_a_roll_over_in_one_call_translate_every_frame_once(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    pcm = sample_pcm * 2
    faults = FaultPlan(
        drop_at_random=RandomDrop(seed=7, min_bytes=50_000, max_bytes=250_000, connections={0, 2})
    )
    result = await run(
        make_translation,
        pcm,
        faults=faults,
        flush_at=(4.7, 10.0, 19.4, 24.7),
        realtime=6.0,
        emulator_kwargs={"max_session_seconds": 2.0},
        rollover_margin=0.8,
    )
    assert len(result.emu.sessions) >= 4
    assert_translated_once(result.events, pcm)
    assert result.audio == padded(pcm)


async def test_a_refused_key_fails_fast_with_one_error(
    sample_pcm: bytes, make_translation: MakeTranslation, caplog: pytest.LogCaptureFixture
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stream = make_translation(emu, api_key="sk-wrong").stream(conn_options=CONN)
        with pytest.raises(APIStatusError) as failed:
            await drive(stream, sample_pcm[:FRAME])
        assert failed.value.status_code == 401 and not failed.value.retryable
        assert len(error_records(caplog)) == 1


async def test_an_unknown_model_is_a_clear_fatal_error(
    sample_pcm: bytes, make_translation: MakeTranslation, caplog: pytest.LogCaptureFixture
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stream = make_translation(emu, model="gpt-realtime-translate-9").stream(conn_options=CONN)
        with pytest.raises(APIError) as failed:
            await drive(stream, sample_pcm[:FRAME])
        assert not failed.value.retryable
        assert "invalid_model" in failed.value.message
        assert len(error_records(caplog)) == 1


# -- options ----------------------------------------------------------------------------------


async def test_the_target_language_changes_live(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    async with Emulator(api_key=KEY) as emu:
        tstt = make_translation(emu, **FAST)
        events = await drive_and_change(
            emu,
            tstt.stream(conn_options=CONN),
            sample_pcm,
            when=lambda: len(emu.events) > 40,
            change=lambda: tstt.update_options(target_language="fr"),
            realtime=15.0,
        )
    assert len(emu.sessions) == 1 and emu.sessions[0].config["audio"]["output"]["language"] == "fr"
    finals = [ev.alternatives[0] for ev in of_type(events, FINAL)]
    text = "".join(alt.text for alt in finals)
    tokens = text.split()
    switch = next(i for i, t in enumerate(tokens) if t.startswith("fr:"))
    assert all(t.startswith("es:") for t in tokens[:switch])
    assert all(t.startswith("fr:") for t in tokens[switch:])
    expected = expected_translation(padded(sample_pcm), "es").split()
    assert [t[3:] for t in tokens] == [t[3:] for t in expected]  # every frame once, in order
    mixed = [alt for alt in finals if len(alt.target_languages or []) == 2]
    if mixed:  # the change fell inside a segment: two runs, one per language
        (alt,) = mixed
        assert alt.target_languages == ["es", "fr"] and "".join(alt.target_texts or []) == alt.text
    assert finals[-1].language == "fr"


def test_bad_options_fail_at_construction_with_what_to_change() -> None:
    with pytest.raises(ValueError, match="target_language must be a language code"):
        openai_rt.TranslationSTT(api_key=KEY, target_language="Spanish")
    with pytest.raises(ValueError, match="source_transcription must be None or a transcription"):
        openai_rt.TranslationSTT(api_key=KEY, source_transcription="whisper-2")
    with pytest.raises(ValueError, match="is a transcription model"):
        openai_rt.TranslationSTT(api_key=KEY, model="gpt-realtime-whisper")
    with pytest.raises(ValueError, match="noise_reduction"):
        openai_rt.TranslationSTT(api_key=KEY, noise_reduction="loud")
    with pytest.raises(ValueError, match="segment_timeout"):
        openai_rt.TranslationSTT(api_key=KEY, segment_timeout=0)
    with pytest.raises(ValueError, match="base_url"):
        openai_rt.TranslationSTT(api_key=KEY, base_url="ftp://x")
    with pytest.raises(ValueError, match="use openai_rt.TranslationSTT"):
        openai_rt.STT(api_key=KEY, model="gpt-realtime-translate")
    tstt = openai_rt.TranslationSTT(api_key=KEY)
    with pytest.raises(ValueError, match="target_language"):
        tstt.update_options(target_language="")
    assert tstt.options.target_language == "es"
    assert tstt.capabilities.manual_flush and tstt.capabilities.streaming
    assert (tstt.model, tstt.provider) == ("gpt-realtime-translate", "api.openai.com")


# -- conformance ------------------------------------------------------------------------------


async def test_every_event_both_ways_is_a_valid_translation_event(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    async with Emulator(api_key=KEY) as emu:
        tstt = make_translation(
            emu, source_transcription="gpt-realtime-whisper", noise_reduction="near_field"
        )
        stream = tstt.stream()
        task = asyncio.ensure_future(drive(stream, sample_pcm[: 5 * BPS], flush_at=(2.0,)))
        await emu.wait_for(lambda: len(emu.events) > 10)
        stream.update_options(target_language="de", source_transcription=None)
        await task
    client_events = TypeAdapter(RealtimeTranslationClientEvent)
    server_events = TypeAdapter(RealtimeTranslationServerEvent)
    sent = [ev.event for ev in emu.events if ev.direction == "in"]
    assert {e["type"] for e in sent} == {
        "session.update",
        "session.input_audio_buffer.append",
        "session.close",
    }
    for ev in sent:
        if ev["type"] == "session.input_audio_buffer.append":
            assert ev["audio_bytes"] == FRAME  # whole 200 ms frames (§5.2)
            ev = {"type": ev["type"], "audio": "AAAA"}  # the log keeps the size, not the payload
        client_events.validate_python(ev)
    received = [ev.event for ev in emu.events if ev.direction == "out"]
    assert {e["type"] for e in received} >= {
        "session.created",
        "session.updated",
        "session.input_transcript.delta",
        "session.output_transcript.delta",
        "session.output_audio.delta",
        "session.closed",
    }
    for ev in received:
        server_events.validate_python(ev)


async def test_a_stream_whose_audio_is_not_read_keeps_none(
    sample_pcm: bytes, make_translation: MakeTranslation
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stream = make_translation(emu).stream()
        await drive(stream, sample_pcm[: 2 * BPS])
        frames = [f async for f in stream.translated_audio()]  # the stream ended: nothing kept
    assert frames == []
