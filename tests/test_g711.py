"""Phone-call audio: G.711 at 8 kHz (``audio_format="pcmu"`` / ``"pcma"``), end to end against
the emulator. The bytes the server receives are exactly the G.711 encoding of what the stream
was given (resampled by the framework's resampler), every final is the transcript of exactly
its item's bytes, and every count (the 100 ms minimum, padding, usage) is in G.711 units."""

from __future__ import annotations

import asyncio
import importlib
import warnings
from collections.abc import Sequence

import numpy as np
import pytest

from livekit import rtc
from livekit.agents import stt
from livekit.plugins.openai_rt import protocol as p
from livekit.plugins.openai_rt.audio import G711Encoder
from livekit.plugins.openai_rt.testing import Emulator, expected_transcript
from tests.conftest import FINAL, MakeSTT, of_type, usage_seconds

FORMATS = {"pcmu": p.PCMU, "pcma": p.PCMA}


def reference_encoder(name: str) -> object:
    """``audioop``'s encoder, where Python still has it (it was removed in 3.13)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            audioop = importlib.import_module("audioop")
        except ImportError:
            pytest.skip("audioop is gone from this Python")
    return audioop.lin2ulaw if name == "pcmu" else audioop.lin2alaw


def frames_at(pcm: bytes, rate: int, frame_ms: int = 20) -> list[rtc.AudioFrame]:
    step = rate * frame_ms // 1000 * 2
    return [
        rtc.AudioFrame(pcm[i : i + step], rate, 1, len(pcm[i : i + step]) // 2)
        for i in range(0, len(pcm), step)
    ]


async def run(
    stream: stt.RecognizeStream, frames: Sequence[rtc.AudioFrame], flush_after: int
) -> list[stt.SpeechEvent]:
    """Push the frames (flush after frame ``flush_after``), end the input, collect events."""

    async def feed() -> None:
        for i, frame in enumerate(frames):
            stream.push_frame(frame)
            if i == flush_after:
                stream.flush()
            await asyncio.sleep(0)
        stream.end_input()

    feeder = asyncio.create_task(feed())
    events = [ev async for ev in stream]
    await feeder
    return events


def speech_at(rate: int, sample_pcm: bytes) -> bytes:
    """3 s of the sample's first sentence (0.6-3.6 s) at ``rate`` (8 or 48 kHz)."""
    x = np.frombuffer(sample_pcm[28800:172800], dtype="<i2")
    return (x[::3] if rate == 8000 else x.repeat(2)).astype("<i2").tobytes()


def check_items(
    events: list[stt.SpeechEvent], emu: Emulator, fmt: p.AudioFormat, sent: bytes
) -> None:
    """Exactly once, in G.711: items concatenate to ``sent`` then silence padding under 100 ms;
    each final is its item's transcript; usage is the committed bytes at 8,000 per second."""
    items = emu.committed_items()
    assert len(items) == 2
    assert all(item.format == fmt.type for item in items)
    finals = of_type(events, FINAL)
    assert [ev.request_id for ev in finals] == [item.item_id for item in items]
    for ev, item in zip(finals, items, strict=True):
        assert ev.alternatives[0].text == expected_transcript(item.audio)
    audio = b"".join(item.audio for item in items)
    assert audio[: len(sent)] == sent
    padding = audio[len(sent) :]
    assert padding == fmt.silence(len(padding)) and len(padding) < 800
    assert usage_seconds(events) == pytest.approx(len(audio) / 8000)
    update = next(e.event for e in emu.events if e.event["type"] == "session.update")
    assert update["session"]["audio"]["input"]["format"] == {"type": fmt.type}


@pytest.mark.parametrize("name", ["pcmu", "pcma"])
async def test_8khz_input_reaches_the_server_as_exactly_its_g711_encoding(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT, name: str
) -> None:
    fmt = FORMATS[name]
    pcm = speech_at(8000, sample_pcm)
    stream = make_stt(emulator, audio_format=name).stream()
    events = await run(stream, frames_at(pcm, 8000), flush_after=80)
    sent = G711Encoder(fmt).encode(pcm)
    check_items(events, emulator, fmt, sent)
    assert sent == reference_encoder(name)(pcm, 2)  # type: ignore[operator]
    # what the server hears is the input within G.711's quantization
    heard = np.frombuffer(b"".join(i.pcm16() for i in emulator.committed_items()), "<i2")
    assert snr_db(np.frombuffer(pcm, "<i2"), heard) > 30
    # one byte per 8 kHz sample (6x fewer than pcm16 at 24 kHz), nothing else appended
    assert emulator.sessions[0].appended_bytes == sum(
        len(i.audio) for i in emulator.committed_items()
    )
    assert len(sent) == len(pcm) // 2


class EncoderSpy:
    """Records the 16-bit audio a stream's G.711 encoder is given (after the resampler)."""

    def __init__(self, inner: G711Encoder) -> None:
        self.inner = inner
        self.pcm = bytearray()

    def encode(self, pcm16: bytes | memoryview) -> bytes:
        self.pcm += pcm16
        return self.inner.encode(pcm16)


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    x = reference.astype(np.float64)
    noise = other[: len(x)].astype(np.float64) - x
    return float(10 * np.log10(np.sum(x * x) / np.sum(noise * noise)))


async def test_48khz_input_is_resampled_by_the_framework_then_encoded(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    fmt = p.PCMU
    pcm = speech_at(48000, sample_pcm)
    frames = frames_at(pcm, 48000)
    stream = make_stt(emulator, audio_format="pcmu").stream()
    spy = EncoderSpy(G711Encoder(fmt))
    stream._encoder = spy  # type: ignore[assignment]
    events = await run(stream, frames, flush_after=80)
    # exactly the encoding of the 8 kHz audio the framework's resampler produced
    check_items(events, emulator, fmt, reference_encoder("pcmu")(bytes(spy.pcm), 2))  # type: ignore[operator]
    # ... which is the input at 8 kHz: another resampler (the same kind, fed the same frames)
    # differs only in its least significant bits
    resampler = rtc.AudioResampler(48000, 8000, quality=rtc.AudioResamplerQuality.HIGH)
    resampled = bytearray()
    for i, frame in enumerate(frames):
        resampled += b"".join(bytes(f.data) for f in resampler.push(frame))
        if i == 80:
            resampled += b"".join(bytes(f.data) for f in resampler.flush())
    resampled += b"".join(bytes(f.data) for f in resampler.flush())
    assert len(spy.pcm) == len(resampled)
    assert snr_db(np.frombuffer(resampled, "<i2"), np.frombuffer(bytes(spy.pcm), "<i2")) > 40


def test_the_tables_invert_the_itu_expansion_the_emulator_decodes_with() -> None:
    from livekit.plugins.openai_rt.testing.audio import decode_pcm16

    codes = bytes(range(256))
    for fmt in (p.PCMU, p.PCMA):
        back = G711Encoder(fmt).encode(decode_pcm16(codes, fmt.type))
        # every code comes back, except mu-law's "negative zero" 0x7f, which is zero: 0xff
        expected = codes.replace(b"\x7f", b"\xff") if fmt is p.PCMU else codes
        assert back == expected, fmt.name
        assert G711Encoder(fmt).encode(bytes(2)) == fmt.silence(1)


def test_the_tables_match_audioop_on_every_sample() -> None:
    every = np.arange(-32768, 32768, dtype="<i2").tobytes()
    for name, fmt in FORMATS.items():
        assert G711Encoder(fmt).encode(every) == reference_encoder(name)(every, 2)  # type: ignore[operator]
