"""G.711 input (docs/protocol.md §2.2, §3.1, §7 B.15, C.18-C.19, C.22): the emulator counts it
in 8 kHz one-byte samples, decodes it for its VAD and its records, and keeps transcripts exact
(BlockCrc over the bytes received)."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from livekit.plugins.openai_rt.testing import expected_transcript
from tests.emulator.helpers import Client, Json, MakeEmu, connect

ULAW_SILENCE = b"\xff"  # mu-law code of a zero sample
ALAW_SILENCE = b"\xd5"


def ulaw_square(ms: int, code: int) -> bytes:
    """8 kHz mu-law audio alternating between a code and its negative (the sign bit)."""
    return bytes([code, code ^ 0x80]) * (ms * 4)


async def g711_session(
    c: Client, fmt: str, model: str = "gpt-realtime-whisper", turn_detection: Json | None = None
) -> None:
    await c.update(
        {
            "format": {"type": fmt},
            "transcription": {"model": model},
            "turn_detection": turn_detection,
        }
    )
    await c.until("session.updated")


async def send_audio(c: Client, audio: bytes, chunk: int = 400) -> None:
    """Append G.711 ``audio`` in 50 ms pieces."""
    for i in range(0, len(audio), chunk):
        await c.send(
            {
                "type": "input_audio_buffer.append",
                "audio": base64.b64encode(audio[i : i + chunk]).decode(),
            }
        )


@pytest.mark.parametrize("fmt", ["audio/pcmu", "audio/pcma"])
async def test_the_commit_minimum_is_800_bytes_and_usage_counts_8000_per_second(
    make_emu: MakeEmu, fmt: str
) -> None:
    emu = await make_emu()
    silence = ULAW_SILENCE if fmt == "audio/pcmu" else ALAW_SILENCE
    async with connect(emu) as c:
        await g711_session(c, fmt)
        audio = bytes(range(256)) * 3 + silence * 31  # 799 bytes: 99.875 ms
        await send_audio(c, audio)
        await c.send({"type": "input_audio_buffer.commit"})
        err = (await c.until("error"))["error"]
        assert err["code"] == "input_audio_buffer_commit_empty"
        assert err["message"].endswith("but buffer only has 99.88ms of audio.")
        await send_audio(c, silence)  # 800 bytes: 100 ms
        await c.send({"type": "input_audio_buffer.commit"})
        completed = await c.until("conversation.item.input_audio_transcription.completed")
    (item,) = emu.committed_items()
    assert item.format == fmt
    assert item.audio == audio + silence
    assert completed["transcript"] == expected_transcript(item.audio)
    assert completed["usage"] == {"type": "duration", "seconds": 0.1}


async def test_records_decode_g711_with_the_itu_tables(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await g711_session(c, "audio/pcmu")
        await send_audio(c, bytes(range(256)) * 4)
        await c.send({"type": "input_audio_buffer.commit"})
        await c.until("input_audio_buffer.committed")
    (item,) = emu.committed_items()
    pcm = np.frombuffer(item.pcm16(), dtype="<i2")
    # mu-law: 0x00 is the most negative level, 0x80 the most positive, 0xff and 0x7f zero
    assert (pcm[0x00], pcm[0x80], pcm[0xFF], pcm[0x7F]) == (-32124, 32124, 0, 0)
    assert len(pcm) == 1024


async def test_the_server_vad_hears_g711_speech_at_8000_bytes_per_second(
    make_emu: MakeEmu,
) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await g711_session(
            c,
            "audio/pcmu",
            model="gpt-4o-transcribe",
            turn_detection={"type": "server_vad", "silence_duration_ms": 300},
        )
        # 500 ms of silence, 400 ms of a loud tone (mu-law 0x9f: about +/-4000), 600 ms silence
        await send_audio(c, ULAW_SILENCE * 4000 + ulaw_square(400, 0x9F) + ULAW_SILENCE * 4800)
        started = await c.until("input_audio_buffer.speech_started")
        stopped = await c.until("input_audio_buffer.speech_stopped")
    assert started["audio_start_ms"] == 500 - 300  # onset minus the default prefix padding
    assert stopped["audio_end_ms"] == 900 + 300
