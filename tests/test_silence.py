"""No billed silence, over the emulator: audio to commit that holds no speech is cleared
(``input_audio_buffer.clear``) instead of committed, the flush is answered by an empty final,
one DEBUG line says what was skipped, and the stream counts the seconds; audio that may hold
speech (a quiet syllable, a noisy line) is always committed; ``skip_silence=False`` commits
everything."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from livekit.plugins.openai_rt.testing import Emulator, expected_transcript
from tests.conftest import KEY, MakeSTT, drive, final_texts, usage_seconds

SENTENCE = slice(28800, 225600)  # the sample's first sentence (0.6-4.7 s): 4.1 s
SILENCE = bytes(2 * 48000)  # 2 s of digital silence


def quiet(pcm: bytes, db: float) -> bytes:
    """``pcm`` attenuated by ``db`` decibels."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) * 10 ** (-db / 20)
    return np.round(x).astype("<i2").tobytes()


def soft_syllable(sample_pcm: bytes) -> bytes:
    """The start of the sample's "Hello" (0.68-0.98 s) 40 dB down: -57 dBFS at its loudest,
    a syllable said under the breath at the end of a turn (a VAD misses it)."""
    return quiet(sample_pcm[32640:47040], 40)


def sent_types(emu: Emulator) -> list[str]:
    """What the client sent, appends left out."""
    return [
        e.event["type"]
        for e in emu.events
        if e.direction == "in" and e.event["type"] != "input_audio_buffer.append"
    ]


def skip_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "with no speech in it" in r.getMessage()]


async def test_a_silent_turn_is_cleared_not_committed(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT, caplog: pytest.LogCaptureFixture
) -> None:
    sentence = sample_pcm[SENTENCE]
    stream = make_stt(emulator).stream()
    events = await drive(stream, sentence + SILENCE, flush_at=(4.1, 6.1))
    (item,) = emulator.committed_items()
    assert item.audio == sentence
    assert sent_types(emulator) == [
        "session.update",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
    ]
    # the second flush is answered: an empty final (what lets an AgentSession close at once)
    assert final_texts(events) == [expected_transcript(sentence), ""]
    assert usage_seconds(events) == pytest.approx(4.1)
    assert stream.skipped_silence_seconds == pytest.approx(2.0)
    (line,) = skip_lines(caplog)
    assert line.levelno == logging.DEBUG
    assert line.getMessage() == (
        "not committing 2.00 s of audio with no speech in it (loudest 10 ms at -inf dBFS, "
        "gate -60 dBFS): cleared instead"
    )


async def test_skip_silence_false_commits_silence_too(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT, caplog: pytest.LogCaptureFixture
) -> None:
    sentence = sample_pcm[SENTENCE]
    stream = make_stt(emulator, skip_silence=False).stream()
    events = await drive(stream, sentence + SILENCE, flush_at=(4.1, 6.1))
    assert [item.audio for item in emulator.committed_items()] == [sentence, SILENCE]
    assert usage_seconds(events) == pytest.approx(6.1)
    assert stream.skipped_silence_seconds == 0.0
    assert skip_lines(caplog) == []


async def test_a_soft_final_syllable_is_committed(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT, caplog: pytest.LogCaptureFixture
) -> None:
    sentence = sample_pcm[SENTENCE]
    tail = SILENCE[:48000] + soft_syllable(sample_pcm) + SILENCE[:24000]
    stream = make_stt(emulator).stream()
    events = await drive(stream, sentence + tail, flush_at=(4.1,))
    items = emulator.committed_items()
    assert [item.audio for item in items] == [sentence, tail]
    assert final_texts(events) == [expected_transcript(sentence), expected_transcript(tail)]
    assert stream.skipped_silence_seconds == 0.0
    assert skip_lines(caplog) == []


async def test_a_noise_floor_above_the_gate_may_hold_speech_and_is_committed(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    sentence = sample_pcm[SENTENCE]
    hiss = np.random.default_rng(7).normal(0, 60, 48000).astype("<i2").tobytes()  # -55 dBFS
    stream = make_stt(emulator).stream()
    await drive(stream, sentence + hiss, flush_at=(4.1, 6.1))
    assert [item.audio for item in emulator.committed_items()] == [sentence, hiss]
    assert stream.skipped_silence_seconds == 0.0


async def test_silence_dropped_before_it_was_sent_is_never_sent(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    # the silence is fed and flushed while the socket is still opening (a slow handshake):
    # it is dropped before it could go out, so no clear is needed and the server never hears it
    sentence = sample_pcm[SENTENCE]
    async with Emulator(api_key=KEY, handshake_delay=0.5) as emu:
        stream = make_stt(emu).stream()
        await drive(stream, SILENCE + sentence, flush_at=(2.0,))
    (item,) = emu.committed_items()
    assert item.audio == sentence
    assert sent_types(emu) == ["session.update", "input_audio_buffer.commit"]
    assert emu.sessions[0].appended_bytes == len(sentence)
