"""``openai_rt.STT`` inside a real ``AgentSession``, end to end, offline.

A real session (default session VAD, VAD turn detection, no room, no LiveKit server) hears
``examples/sample.wav`` in real time through the plugin, which talks to the bundled emulator.
The emulator transcribes the i-th committed item as the i-th line of ``examples/sample.txt``, so
the test checks what a user of the session sees (interim and final transcripts, committed user
turns, usage) and what OpenAI would have received (one client commit per utterance, carrying
exactly the audio the session was given).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from livekit.agents import (
    Agent,
    AgentSession,
    SessionUsageUpdatedEvent,
    UserInputTranscribedEvent,
)
from livekit.agents.metrics.usage import AgentSessionUsage, STTModelUsage
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import Emulator, ScriptTranscriber
from tests.agent_fakes import (
    API_KEY,
    TURNS_TIMEOUT,
    EchoLLM,
    WavInput,
    listen,
    read_wav_pcm,
    voice_session,
    wait_until,
)
from tests.conftest import SAMPLE_WAV, write_wav

SAMPLE_TXT = SAMPLE_WAV.with_suffix(".txt")
BYTES_PER_SECOND = 24000 * 2  # pcm16 mono at 24 kHz, in and out: nothing is resampled


@dataclass
class Transcript:
    """One ``user_input_transcribed`` event, in arrival order."""

    text: str
    is_final: bool


def speech_spans(pcm: bytes, sample_rate: int) -> list[tuple[int, int]]:
    """Byte ranges of the utterances in 16-bit mono ``pcm``: 20 ms frames louder than the
    dither, merged across gaps shorter than 0.5 s."""
    frame = sample_rate // 50
    samples = np.frombuffer(pcm, dtype=np.int16)[: len(pcm) // 2 // frame * frame]
    loud = np.flatnonzero(np.abs(samples.reshape(-1, frame).astype(np.int32)).max(axis=1) > 100)
    spans: list[tuple[int, int]] = []
    for i in loud.tolist():
        if spans and i - spans[-1][1] < 25:
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
    return [(start * frame * 2, end * frame * 2) for start, end in spans]


def first_difference(a: bytes, b: bytes) -> int | None:
    """The first byte offset where ``a`` and ``b`` differ (or where the shorter one ends)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return None if len(a) == len(b) else n
    return int(np.argmax(np.frombuffer(a[:n], np.uint8) != np.frombuffer(b[:n], np.uint8)))


def stt_usage(usage: AgentSessionUsage) -> list[STTModelUsage]:
    """The STT entries of a session usage summary."""
    return [u for u in usage.model_usage if isinstance(u, STTModelUsage)]


async def test_each_utterance_is_committed_on_the_session_flush_and_becomes_a_user_turn() -> None:
    lines = [line for line in SAMPLE_TXT.read_text().splitlines() if line.strip()]
    assert len(lines) == 3
    wav_pcm, wav_rate = read_wav_pcm(SAMPLE_WAV)
    assert wav_rate == 24000
    utterances = speech_spans(wav_pcm, wav_rate)
    assert len(utterances) == 3

    async with Emulator(api_key=API_KEY, transcriber=ScriptTranscriber(lines)) as emu:
        stt = openai_rt.STT(api_key=API_KEY, base_url=emu.base_url)
        session = voice_session(stt)
        mic = WavInput(SAMPLE_WAV)
        session.input.audio = mic

        heard = listen(session)
        user_turns, errors = heard.user_turns, heard.errors
        transcripts: list[Transcript] = []
        usage_updates: list[AgentSessionUsage] = []

        @session.on("user_input_transcribed")
        def _on_transcribed(ev: UserInputTranscribedEvent) -> None:
            transcripts.append(Transcript(ev.transcript, ev.is_final))

        @session.on("session_usage_updated")
        def _on_usage(ev: SessionUsageUpdatedEvent) -> None:
            usage_updates.append(ev.usage)

        await session.start(Agent(instructions="Repeat what the user says."))
        try:
            await wait_until(
                lambda: len(user_turns) >= 3,
                TURNS_TIMEOUT,
                lambda: (
                    f"three user turns (got {user_turns!r}; finals "
                    f"{[t.text for t in transcripts if t.is_final]!r}; "
                    f"{len(transcripts)} transcripts; emulator items "
                    f"{len(emu.committed_items())})"
                ),
            )
            items = emu.committed_items()
            committed_seconds = sum(len(item.audio) for item in items) / BYTES_PER_SECOND

            def usage_settled() -> bool:
                entries = stt_usage(session.usage)
                return bool(entries) and entries[0].audio_duration >= committed_seconds - 1e-3

            await wait_until(
                usage_settled,
                2.0,
                lambda: f"STT usage of {committed_seconds:.3f} s (have {stt_usage(session.usage)})",
            )
            # snapshot before closing: closing the session flushes the trailing silence too
            finals = [t.text for t in transcripts if t.is_final]
            interims = [t for t in transcripts if not t.is_final]
            turns = list(user_turns)
            items = emu.committed_items()
            events = list(emu.events)
            usage_now = stt_usage(session.usage)
            usage_events = [stt_usage(u) for u in usage_updates]
            pushed = bytes(mic.pushed)
        finally:
            await session.aclose()
            await stt.aclose()

    # what the user of the session sees
    assert finals == lines
    assert turns == lines
    assert not errors, [e.error for e in errors]

    # interims are the whole hypothesis so far of their item (not deltas), one per delta the
    # server sent, in order (a preflight transcript at the commit repeats the item's text); with
    # the server's completion delay the next utterance's interims may come before the previous
    # final
    assert interims, "no interim transcripts: the model streams deltas while audio arrives"
    hypothesis: dict[str, str] = {}
    expected_interims: list[str] = []
    item_ids = {item.item_id for item in items}
    for e in events:
        if e.direction == "out" and e.event["type"].endswith("input_audio_transcription.delta"):
            item_id = e.event["item_id"]
            assert item_id in item_ids  # the script's three lines are the only speech
            hypothesis[item_id] = hypothesis.get(item_id, "") + e.event["delta"]
            expected_interims.append(hypothesis[item_id])
    assert list(dict.fromkeys(t.text for t in interims)) == expected_interims
    assert all(any(line.startswith(t.text) for line in lines) for t in interims)

    # what OpenAI received: one session, one client commit per utterance, none refused
    assert len(emu.sessions) == 1
    sent = [e.event["type"] for e in events if e.direction == "in"]
    answered = [e.event for e in events if e.direction == "out"]
    assert sent.count("input_audio_buffer.commit") == 3
    assert [e for e in answered if e["type"] == "error"] == []
    assert [item.committed_by for item in items] == ["client"] * 3
    assert [item.status for item in items] == ["completed"] * 3
    assert [item.transcript for item in items] == lines

    # the committed audio is exactly the audio the session was given, from its first byte
    committed = b"".join(item.audio for item in items)
    assert len(committed) <= len(pushed)
    for name, reference in (("pushed", pushed), ("WAV + silence", wav_pcm + bytes(len(pushed)))):
        at = first_difference(committed, reference[: len(committed)])
        assert at is None, (
            f"committed audio differs from the {name} audio at {at / BYTES_PER_SECOND:.3f} s"
        )
    # ... cut at the ends of speech: each item holds one whole utterance
    bounds: list[tuple[int, int]] = []
    start = 0
    for item in items:
        bounds.append((start, start + len(item.audio)))
        start += len(item.audio)
    for (item_start, item_end), (speech_start, speech_end) in zip(bounds, utterances, strict=True):
        assert item_start <= speech_start and speech_end <= item_end

    # usage: the committed seconds, as the session reports them
    assert len(usage_now) == 1
    assert usage_now[0].model == "gpt-realtime-whisper"
    assert usage_now[0].audio_duration == pytest.approx(committed_seconds, abs=1e-4)
    assert usage_events and usage_events[-1] == usage_now


# -- a voice agent: preflight, and no billed silence when the session closes -----------------

COMPLETED_DELAY = 0.4
"""Seconds from a commit to its ``completed``: a realistic figure, set here explicitly."""


def make_session(emu: Emulator, llm_: EchoLLM) -> tuple[AgentSession[None], openai_rt.STT]:
    stt = openai_rt.STT(api_key=API_KEY, base_url=emu.base_url)
    return voice_session(stt, llm_, preemptive=True), stt


def emulator_sent(emu: Emulator, etype: str) -> list[float]:
    """When the emulator sent each event of type ``etype`` (monotonic)."""
    return [e.t for e in emu.events if e.direction == "out" and e.event["type"] == etype]


async def test_preflight_starts_the_reply_before_completed_and_close_bills_no_silence(
    tmp_path: Path,
) -> None:
    wav_pcm, _ = read_wav_pcm(SAMPLE_WAV)
    line = SAMPLE_TXT.read_text().splitlines()[0]
    first_sentence = wav_pcm[: int(4.7 * 24000) * 2]
    llm_ = EchoLLM()
    async with Emulator(
        api_key=API_KEY, transcriber=ScriptTranscriber([line]), completed_delay=COMPLETED_DELAY
    ) as emu:
        session, stt = make_session(emu, llm_)
        mic = WavInput(write_wav(tmp_path / "turn.wav", first_sentence))
        session.input.audio = mic
        user_turns = listen(session).user_turns
        await session.start(Agent(instructions="Repeat what the user says."))
        try:
            await wait_until(lambda: bool(user_turns), 10.0, lambda: "the user turn")
            # about 2 s of silence after the turn, then the session closes (it flushes)
            await wait_until(
                lambda: len(mic.pushed) >= len(first_sentence) + 2 * BYTES_PER_SECOND,
                5.0,
                lambda: "2 s of silence",
            )
            closing = asyncio.get_running_loop().time()
            await session.aclose()
            closed_in = asyncio.get_running_loop().time() - closing
            usage = stt_usage(session.usage)
        finally:
            await stt.aclose()

    (item,) = emu.committed_items()
    completed_at = emulator_sent(emu, "conversation.item.input_audio_transcription.completed")
    # the reply was asked for on the preflight transcript, before the server completed the item,
    # with the text that became final: kept, not asked for again
    replies_for_line = [t for t, said in llm_.requests if said == line]
    assert replies_for_line and replies_for_line[0] < completed_at[0]
    assert len(replies_for_line) == 1
    assert user_turns == [line]
    # closing flushed the trailing silence: cleared, not committed, answered at once
    sent = [e.event["type"] for e in emu.events if e.direction == "in"]
    assert sent.count("input_audio_buffer.commit") == 1
    assert sent.count("input_audio_buffer.clear") == 1
    assert closed_in < 1.5  # no wait for a final that would never come
    assert len(item.audio) < len(first_sentence)
    assert usage[0].audio_duration == pytest.approx(len(item.audio) / BYTES_PER_SECOND, abs=1e-4)


async def test_closing_keeps_a_soft_final_syllable_the_session_vad_missed(tmp_path: Path) -> None:
    wav_pcm, _ = read_wav_pcm(SAMPLE_WAV)
    lines = SAMPLE_TXT.read_text().splitlines()[:1] + ["hm"]
    first_sentence = wav_pcm[: int(4.7 * 24000) * 2]
    # "hel..." said 40 dB softer: -57 dBFS, under what the session's VAD hears as speech
    x = np.frombuffer(wav_pcm[32640:47040], dtype="<i2").astype(np.float64) / 100
    syllable = np.round(x).astype("<i2").tobytes()
    audio = first_sentence + bytes(BYTES_PER_SECOND) + syllable + bytes(BYTES_PER_SECOND // 2)
    async with Emulator(api_key=API_KEY, transcriber=ScriptTranscriber(lines)) as emu:
        session, stt = make_session(emu, EchoLLM())
        mic = WavInput(write_wav(tmp_path / "soft.wav", audio))
        session.input.audio = mic
        await session.start(Agent(instructions="Repeat what the user says."))
        try:
            await wait_until(lambda: mic.wav_done, 10.0, lambda: "the end of the recording")
            await wait_until(lambda: len(emu.committed_items()) == 1, 2.0, lambda: "the first turn")
            await session.aclose()  # the flush on close commits the syllable
        finally:
            await stt.aclose()
    items = emu.committed_items()
    assert len(items) == 2
    assert syllable in items[1].audio
    assert [i.transcript for i in items] == lines
