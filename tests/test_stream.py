"""The stream against the emulator over a loopback websocket: what a user of ``stt.stream()``
sees, and what reached the server."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import TypeAdapter

from livekit.agents import APIError, APIStatusError, inference, stt, vad
from livekit.plugins.openai_rt.testing import (
    Emulator,
    FaultPlan,
    SendError,
    expected_transcript,
)
from tests.conftest import (
    FINAL,
    FLUSH_POINTS,
    INTERIM,
    KEY,
    MIN_COMMIT,
    USAGE,
    MakeSTT,
    assert_exactly_once,
    drive,
    error_records,
    final_texts,
    of_type,
    usage_seconds,
)

SOS = stt.SpeechEventType.START_OF_SPEECH
EOS = stt.SpeechEventType.END_OF_SPEECH


async def test_flush_commits_each_utterance_and_nothing_is_lost(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator, delay="low")
    events = await drive(stt_.stream(), sample_pcm, flush_at=FLUSH_POINTS)
    items = emulator.committed_items()
    assert len(items) == 3
    assert all(item.committed_by == "client" and item.status == "completed" for item in items)
    assert_exactly_once(events, items, sample_pcm, every_item=True)
    # usage equals the committed seconds, item by item
    assert usage_seconds(events) == pytest.approx(sum(len(i.audio) for i in items) / 48000)
    assert len(of_type(events, USAGE)) == 3
    # interims are the whole current hypothesis of their item: each is a prefix of its final
    finals = {ev.request_id: ev.alternatives[0].text for ev in of_type(events, FINAL)}
    interims = of_type(events, INTERIM)
    assert interims, "gpt-realtime-whisper streams interim text while audio arrives"
    for ev in interims:
        assert finals[ev.request_id].startswith(ev.alternatives[0].text)
    # timestamps follow the audio: each final spans its item's audio, back to back
    spans = [
        (ev.alternatives[0].start_time, ev.alternatives[0].end_time)
        for ev in of_type(events, FINAL)
    ]
    for (s0, e0), (s1, _) in zip(spans, spans[1:], strict=False):
        assert s0 < e0 == pytest.approx(s1)
    # the session was configured as asked, and never with ?model=
    session = emulator.sessions[0]
    assert "model" not in session.query
    transcription = session.config["audio"]["input"]["transcription"]
    assert transcription["model"] == "gpt-realtime-whisper"
    assert transcription["delay"] == "low" and transcription["language"] == "en"
    assert session.config["audio"]["input"]["turn_detection"] is None


async def test_audio_waits_for_session_updated(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator)
    await drive(stt_.stream(), sample_pcm[: 48000 * 2])
    log = [(ev.direction, ev.event["type"]) for ev in emulator.events]
    first_append = log.index(("in", "input_audio_buffer.append"))
    assert log.index(("out", "session.updated")) < first_append
    assert log[:first_append].count(("in", "session.update")) == 1


async def test_end_input_alone_commits_everything(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator)
    events = await drive(stt_.stream(), sample_pcm)
    items = emulator.committed_items()
    assert len(items) == 1
    assert_exactly_once(events, items, sample_pcm, every_item=True)


async def test_short_flushes_are_never_committed_and_their_audio_is_kept(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    # the sample's first 60 ms are silent: keep them (and so the 100 ms rule in play)
    stt_ = make_stt(emulator, skip_silence=False)
    pcm = sample_pcm[: 48000 * 2]
    # a flush after 60 ms, then two flushes in a row: only the real segments are committed
    events = await drive(stt_.stream(), pcm, flush_at=(0.06, 1.0, 1.0))
    items = emulator.committed_items()
    assert [len(i.audio) for i in items] == [48000, 48000]
    assert not [e for e in emulator.events if e.event["type"] == "error"]
    assert_exactly_once(events, items, pcm, every_item=True)


async def test_a_short_tail_is_padded_not_dropped(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator)
    pcm = sample_pcm[28800:54000]  # 0.5 s of the first word, flushed, then a 25 ms tail of it
    events = await drive(stt_.stream(), pcm, flush_at=(0.5,))
    items = emulator.committed_items()
    assert [len(i.audio) for i in items] == [24000, MIN_COMMIT]
    assert_exactly_once(events, items, pcm, every_item=True)


async def test_own_vad_commits_at_end_of_speech_and_emits_speech_events(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator, vad=inference.VAD())
    stream = stt_.stream()
    events = await drive(stream, sample_pcm, realtime=8.0)
    items = emulator.committed_items()
    # one commit per sentence at its end of speech; the trailing silence is cleared, not
    # committed, at end_input()
    assert len(items) == 3
    assert 0.5 < stream.skipped_silence_seconds < 1.3
    assert_exactly_once(
        events, items, sample_pcm, every_item=True, skipped_seconds=stream.skipped_silence_seconds
    )
    speech = [ev.type for ev in events if ev.type in (SOS, EOS)]
    assert speech == [SOS, EOS] * 3
    for ev in of_type(events, EOS):
        assert ev.speech_end_time is not None
    for ev in of_type(events, SOS):
        assert ev.speech_start_time is not None


async def test_server_vad_model_commits_on_the_server(sample_pcm: bytes, make_stt: MakeSTT) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, model="gpt-4o-mini-transcribe", logprobs=True)
        events = await drive(stt_.stream(), sample_pcm, realtime=20.0)
        items = emu.committed_items()
        config = emu.sessions[0].config["audio"]["input"]
    assert config["turn_detection"]["type"] == "server_vad"
    assert [i.committed_by for i in items][:3] == ["server_vad"] * 3
    assert_exactly_once(events, items, sample_pcm, every_item=True)
    speech = [ev.type for ev in events if ev.type in (SOS, EOS)]
    assert speech == [SOS, EOS] * 3
    # token usage reaches RecognitionUsage, audio seconds stay the committed seconds
    usages = [ev.recognition_usage for ev in of_type(events, USAGE)]
    assert all(u is not None and u.input_tokens > 0 and u.output_tokens > 0 for u in usages)
    assert usage_seconds(events) == pytest.approx(sum(len(i.audio) for i in items) / 48000)
    # logprobs became confidence
    assert all(0 < ev.alternatives[0].confidence <= 1 for ev in of_type(events, FINAL))


async def test_detected_language_is_reported(sample_pcm: bytes, make_stt: MakeSTT) -> None:
    async with Emulator(api_key=KEY) as emu:
        # no language hint: the language on the final can only come from the server
        stt_ = make_stt(emu, model="gpt-transcribe", language=None)
        events = await drive(stt_.stream(), sample_pcm[:96000])
        completed = [
            e.event for e in emu.events if e.event["type"].endswith("transcription.completed")
        ]
    assert "language" not in emu.sessions[0].config["audio"]["input"]["transcription"]
    reported = completed[0]["languages"][0]["code"]
    assert reported
    assert [ev.alternatives[0].language for ev in of_type(events, FINAL)] == [reported]


async def test_refused_key_fails_fast_with_401(
    emulator: Emulator, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator, api_key="sk-wrong")
    with pytest.raises(APIStatusError) as info:
        await drive(stt_.stream(), sample_pcm[:48000])
    assert info.value.status_code == 401
    assert info.value.retryable is False
    assert emulator.handshakes == 1  # not retried
    errors = error_records(caplog)
    assert len(errors) == 1 and "OPENAI_API_KEY" in errors[0].getMessage()


async def test_model_in_url_on_the_native_endpoint_is_a_clear_fatal_error(
    emulator: Emulator, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator, model_in_url=True)
    with pytest.raises(APIError) as info:
        await drive(stt_.stream(), sample_pcm[:48000])
    assert info.value.retryable is False
    assert "invalid_model" in info.value.message
    errors = error_records(caplog)
    assert len(errors) == 1 and "model_in_url" in errors[0].getMessage()
    assert emulator.sessions[0].query.get("model") == "gpt-realtime-whisper"


async def test_gateway_mode_routes_on_model_in_url(sample_pcm: bytes, make_stt: MakeSTT) -> None:
    async with Emulator(api_key=KEY, gateway_mode=True) as emu:
        stt_ = make_stt(emu, model_in_url=True)
        events = await drive(stt_.stream(), sample_pcm[:48000])
        assert emu.sessions[0].query["model"] == "gpt-realtime-whisper"
        assert_exactly_once(events, emu.committed_items(), sample_pcm[:48000], every_item=True)


async def test_benign_server_errors_are_warnings_and_the_stream_goes_on(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    faults = FaultPlan(
        send_error=SendError(
            code="input_audio_buffer_commit_empty",
            type="invalid_request_error",
            message="Error committing input audio buffer: buffer too small.",
            after_bytes=100_000,
        ),
        fail_items={1},
    )
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stt_ = make_stt(emu)
        events = await drive(stt_.stream(), sample_pcm, flush_at=FLUSH_POINTS)
        items = emu.committed_items()
    assert [i.status for i in items] == ["completed", "failed", "completed"]
    # the failed item yields no final; the others do, in order
    assert final_texts(events) == [
        expected_transcript(items[0].audio),
        expected_transcript(items[2].audio),
    ]
    assert not error_records(caplog)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "livekit.plugins.openai_rt" and r.levelno == logging.WARNING
    ]
    assert any("input_audio_buffer_commit_empty" in w for w in warnings)
    assert any("transcription failed" in w for w in warnings)


async def test_every_client_event_is_a_valid_realtime_client_event(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent

    stt_ = make_stt(emulator, delay="minimal")
    stream = stt_.stream()
    events = drive(stream, sample_pcm[:96000], flush_at=(1.0,))
    stream.update_options(language="fr", delay="high")
    await events
    client_events = TypeAdapter(RealtimeClientEvent)
    server_events = TypeAdapter(RealtimeServerEvent)
    sent = [ev.event for ev in emulator.events if ev.direction == "in"]
    assert {e["type"] for e in sent} >= {
        "session.update",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
    }
    for ev in sent:
        if ev["type"] == "input_audio_buffer.append":
            ev = {**ev, "audio": "AAAA"}  # the log keeps the size, not the payload
            ev.pop("audio_bytes", None)
        client_events.validate_python(ev)
    for ev in emulator.events:
        if ev.direction == "out":
            server_events.validate_python(ev.event)


class _BrokenVADStream(vad.VADStream):
    async def _main_task(self) -> None:
        raise RuntimeError("vad model crashed")


class _BrokenVAD(vad.VAD):
    """A VAD whose every stream crashes: the STT must fail loudly, not go quiet."""

    def __init__(self) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.032))

    def stream(self) -> vad.VADStream:
        return _BrokenVADStream(self)


async def test_a_crashed_vad_fails_the_stream_loudly(
    emulator: Emulator, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    stt_ = make_stt(emulator, vad=_BrokenVAD())
    with pytest.raises(APIError) as info:
        # without the check the stream would wait forever for a VAD that is gone
        await asyncio.wait_for(drive(stt_.stream(), sample_pcm, realtime=10.0), 10.0)
    assert info.value.retryable is False
    assert "vad model crashed" in info.value.message
    assert any("task failed" in r.getMessage() for r in error_records(caplog))


async def test_malformed_and_unknown_server_events_are_counted_not_fatal(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    faults = FaultPlan(malformed_json_after_bytes=50_000, unknown_event_after_bytes=100_000)
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stt_ = make_stt(emu)
        stream = stt_.stream()
        events = await drive(stream, sample_pcm[:192000], flush_at=(2.0,))
        assert_exactly_once(events, emu.committed_items(), sample_pcm[:192000], every_item=True)
    assert stream.skipped_server_frames == 2
    assert any("malformed" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert not error_records(caplog)
