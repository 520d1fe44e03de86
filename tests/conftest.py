"""Shared fixtures: the bundled sample audio, a stream driver (feed, collect, drive), the
connect options of the tests that reconnect, an STT factory that closes what it made, the one
"exactly once" checker, and a check that the API key never reaches a log line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import wave
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from livekit import rtc
from livekit.agents import APIConnectOptions, stt
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.audio import level_dbfs
from livekit.plugins.openai_rt.speech import SILENCE_DBFS
from livekit.plugins.openai_rt.testing import EmulatedItem, Emulator, expected_transcript

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SAMPLE_WAV = EXAMPLES / "sample.wav"
SAMPLE_LINES = (EXAMPLES / "sample.txt").read_text().splitlines()
KEY = "sk-test-0123456789-do-not-log-me"
FLUSH_POINTS = (4.7, 10.0)
"""Seconds into the sample that fall in the silences between its three sentences."""
MIN_COMMIT = 4800
"""Bytes in the server's 100 ms commit minimum (24 kHz pcm16)."""
FINAL = stt.SpeechEventType.FINAL_TRANSCRIPT
INTERIM = stt.SpeechEventType.INTERIM_TRANSCRIPT
USAGE = stt.SpeechEventType.RECOGNITION_USAGE
CONN = APIConnectOptions(max_retry=3, retry_interval=0.2, timeout=3.0)
"""The connect options of the tests that reconnect: three retries, 0.2 s apart, 3 s to connect."""


def read_pcm(path: Path = SAMPLE_WAV) -> bytes:
    """The PCM bytes of a 24 kHz mono 16-bit WAV."""
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        return w.readframes(w.getnframes())


def write_wav(path: Path, pcm: bytes) -> Path:
    """``pcm`` (16-bit mono, 24 kHz) as a WAV file at ``path``."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(pcm)
    return path


@pytest.fixture(scope="session")
def sample_pcm() -> bytes:
    """The bundled sample recording (three spoken sentences, 14.7 s)."""
    return read_pcm()


def frames(pcm: bytes, *, frame_ms: int = 20, rate: int = 24000) -> Iterator[rtc.AudioFrame]:
    """Cut PCM into frames the way a room or file source delivers them."""
    step = rate * frame_ms // 1000 * 2
    for off in range(0, len(pcm), step):
        chunk = pcm[off : off + step]
        yield rtc.AudioFrame(chunk, rate, 1, len(chunk) // 2)


async def feed(
    stream: stt.RecognizeStream,
    pcm: bytes,
    *,
    flush_at: Sequence[float] = (),
    realtime: float = 0.0,
    end: bool = True,
) -> None:
    """Push ``pcm`` in 20 ms frames (flushing at the given seconds), then end the input unless
    ``end`` is false. ``realtime`` > 0 paces the feed at that multiple of real time. Stops early
    when the stream has failed (iterating it raises its error)."""
    sent = 0
    pending = sorted(int(t * 48000) // 2 * 2 for t in flush_at)
    for frame in frames(pcm):
        if stream._event_ch.closed:  # the stream failed: iteration raises its error
            return
        stream.push_frame(frame)
        sent += len(frame.data) * 2
        while pending and sent >= pending[0]:
            pending.pop(0)
            stream.flush()
        if realtime:
            await asyncio.sleep(frame.duration / realtime)
        else:
            await asyncio.sleep(0)
    if end:
        stream.end_input()


async def collect(stream: stt.RecognizeStream, into: list[stt.SpeechEvent]) -> None:
    """Every event of ``stream`` until it ends, appended to ``into`` as they come."""
    async for ev in stream:
        into.append(ev)


async def drive(
    stream: stt.RecognizeStream,
    pcm: bytes,
    *,
    flush_at: Sequence[float] = (),
    realtime: float = 0.0,
    end: bool = True,
) -> list[stt.SpeechEvent]:
    """Push ``pcm`` (flushing at the given seconds), end the input, and collect every event until
    the stream ends. ``realtime`` > 0 paces the feed at that multiple of real time."""
    events: list[stt.SpeechEvent] = []
    feeder = asyncio.create_task(feed(stream, pcm, flush_at=flush_at, realtime=realtime, end=end))
    try:
        await collect(stream, events)
    finally:
        await feeder
    return events


async def drive_and_change(
    emu: Emulator,
    stream: stt.RecognizeStream,
    pcm: bytes,
    *,
    when: Callable[[], object],
    change: Callable[[], None],
    realtime: float,
) -> list[stt.SpeechEvent]:
    """:func:`drive` ``stream`` at ``realtime`` with the sample's flushes, and call ``change``
    (a live option update) once ``when()`` holds on ``emu``, while the audio goes on."""
    task = asyncio.ensure_future(drive(stream, pcm, flush_at=FLUSH_POINTS, realtime=realtime))
    await emu.wait_for(when, timeout=5.0)
    change()
    return await task


def of_type(events: Sequence[stt.SpeechEvent], kind: stt.SpeechEventType) -> list[stt.SpeechEvent]:
    """The events of one type, in order."""
    return [ev for ev in events if ev.type == kind]


def final_texts(events: Sequence[stt.SpeechEvent]) -> list[str]:
    """The text of every FINAL_TRANSCRIPT, in order."""
    return [ev.alternatives[0].text for ev in of_type(events, stt.SpeechEventType.FINAL_TRANSCRIPT)]


def usage_seconds(events: Sequence[stt.SpeechEvent]) -> float:
    """Audio seconds reported by the RECOGNITION_USAGE events."""
    return sum(
        ev.recognition_usage.audio_duration for ev in of_type(events, USAGE) if ev.recognition_usage
    )


def assert_exactly_once(
    events: Sequence[stt.SpeechEvent],
    items: Sequence[EmulatedItem],
    pcm: bytes,
    *,
    every_item: bool = False,
    skipped_seconds: float = 0.0,
) -> None:
    """Nothing lost, duplicated or reordered, proven by the emulator's transcripts.

    Every FINAL is the transcript of its own server item's audio, each item at most once, in
    order; the audio of those items concatenates to exactly ``pcm`` followed by end-of-input
    padding (silence, under 100 ms); and usage adds up to exactly that audio. Items a dropped
    socket left without an answer are ignored (their audio must come back in later items),
    unless ``every_item``: then every committed item produced exactly one final.
    ``skipped_seconds``: that much of ``pcm`` (the stream's ``skipped_silence_seconds``) was
    cleared instead of committed; it must be silent stretches between the items' audio.
    """
    by_id = {item.item_id: item for item in items}
    finals = [ev for ev in of_type(events, FINAL) if ev.request_id or ev.alternatives[0].text]
    ids = [ev.request_id for ev in finals]
    assert len(ids) == len(set(ids)), "a final was emitted twice"
    for ev in finals:
        assert ev.request_id in by_id, f"a final for an item the server never committed: {ev}"
        assert ev.alternatives[0].text == expected_transcript(by_id[ev.request_id].audio)
    audio = b"".join(by_id[i].audio for i in ids)
    if skipped_seconds:
        pcm = without_silent_gaps(pcm, [by_id[i].audio for i in ids], skipped_seconds)
    assert len(audio) >= len(pcm), f"lost {len(pcm) - len(audio)} bytes"
    assert audio[: len(pcm)] == pcm, "audio reordered or corrupted"
    padding = audio[len(pcm) :]
    assert padding == bytes(len(padding)) and len(padding) < MIN_COMMIT
    assert usage_seconds(events) == pytest.approx(len(audio) / 48000)
    if every_item:
        assert ids == [item.item_id for item in items]


def without_silent_gaps(pcm: bytes, pieces: Sequence[bytes], skipped_seconds: float) -> bytes:
    """``pcm`` without the stretches between ``pieces`` (found in order); every stretch left out
    must be silent (under the energy gate) and they must add up to ``skipped_seconds``."""
    kept = bytearray()
    offset = gaps = 0
    for piece in pieces:
        body = piece
        while body and pcm.find(body, offset) < 0 and body.endswith(b"\0\0"):
            body = body[:-2]  # end-of-input padding is not in pcm
        at = pcm.find(body, offset)
        assert at >= 0, "an item's audio is not the next part of the input"
        gaps += check_silent(pcm[offset:at])
        kept += pcm[at : at + len(body)]
        offset = at + len(body)
    gaps += check_silent(pcm[offset:])
    assert gaps == round(skipped_seconds * 48000 / 2) * 2, (gaps, skipped_seconds)
    return bytes(kept)


def check_silent(pcm: bytes) -> int:
    """Assert ``pcm`` holds no speech by the energy gate; returns its length."""
    if pcm:
        assert level_dbfs(pcm, 24000) <= SILENCE_DBFS, "audio with speech in it was skipped"
    return len(pcm)


MakeSTT = Callable[..., openai_rt.STT]


@pytest.fixture
async def make_stt() -> AsyncIterator[MakeSTT]:
    """``make_stt(emu, **options)``: an STT with the test key pointed at ``emu`` (or at the
    ``base_url`` given, e.g. a proxy in front of it); every STT made is closed when the test
    ends."""
    made: list[openai_rt.STT] = []

    def factory(emu: Emulator, **options: Any) -> openai_rt.STT:
        options.setdefault("api_key", KEY)
        options.setdefault("base_url", emu.base_url)
        stt_ = openai_rt.STT(**options)
        made.append(stt_)
        return stt_

    yield factory
    for stt_ in made:
        await stt_.aclose()


@contextlib.asynccontextmanager
async def azure_stt(emu: Emulator, deployment: str, **options: Any) -> AsyncIterator[openai_rt.STT]:
    """An Azure STT of the gpt-realtime-whisper family for ``deployment`` at ``emu``'s endpoint
    (credentials in ``options``), closed on leaving the block."""
    stt_ = openai_rt.STT.with_azure(
        azure_endpoint=emu.azure_endpoint,
        azure_deployment=deployment,
        model_family="gpt-realtime-whisper",
        **options,
    )
    try:
        yield stt_
    finally:
        await stt_.aclose()


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """An emulator on a loopback port that accepts only :data:`KEY`."""
    async with Emulator(api_key=KEY) as emu:
        yield emu


@pytest.fixture(autouse=True)
def key_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test runs with DEBUG logging captured; none may log the API key."""
    caplog.set_level(logging.DEBUG)
    yield
    for record in caplog.records:
        text = record.getMessage() + repr(record.__dict__)
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1]) + str(record.exc_info[1])
        assert KEY not in text, f"API key leaked in a log record: {record.getMessage()[:200]}"


def error_records(
    caplog: pytest.LogCaptureFixture, name: str = "livekit.plugins.openai_rt"
) -> list[logging.LogRecord]:
    """ERROR records of the plugin's logger."""
    return [r for r in caplog.records if r.name == name and r.levelno >= logging.ERROR]
