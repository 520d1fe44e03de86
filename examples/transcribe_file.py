"""Transcribe a WAV file with ``openai_rt.STT`` and print what a voice agent would receive.

    python examples/transcribe_file.py [file.wav] [--model gpt-realtime-whisper] [--delay low]

With ``OPENAI_API_KEY`` set it talks to OpenAI; without it, it starts the bundled emulator
(``livekit.plugins.openai_rt.testing``) on a loopback port and says so. Audio is fed in real time,
as a microphone would deliver it: the stream's own VAD commits each utterance when it hears the
end of speech, as it would in a standalone program (inside an ``AgentSession`` the session's VAD
does that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

from livekit import rtc
from livekit.agents import inference, stt
from livekit.plugins import openai_rt

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "sample.wav"
SAMPLE_SCRIPT = HERE / "sample.txt"
FRAME_MS = 20


async def wav_frames(path: Path) -> AsyncIterator[rtc.AudioFrame]:
    """Yield 20 ms frames of a 16-bit mono WAV, paced in real time."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SystemExit(f"{path}: expected 16-bit mono PCM")
        rate = w.getframerate()
        pcm = w.readframes(w.getnframes())
    step = rate * FRAME_MS // 1000 * 2
    start = time.monotonic()
    for i, off in enumerate(range(0, len(pcm), step)):
        chunk = pcm[off : off + step]
        yield rtc.AudioFrame(chunk, rate, 1, len(chunk) // 2)
        await asyncio.sleep(max(0.0, start + (i + 1) * FRAME_MS / 1000 - time.monotonic()))


async def transcribe(args: argparse.Namespace) -> None:
    """Run one stream over the file and print interims, finals, audio seconds and cost."""
    emulator_cm: contextlib.AbstractAsyncContextManager[object | None]
    api_key = os.environ.get("OPENAI_API_KEY")
    base_url = args.base_url
    if api_key:
        print(f"using OpenAI at {base_url} (model {args.model})")
        emulator_cm = contextlib.nullcontext()
    else:
        from livekit.plugins.openai_rt.testing import (
            BlockCrcTranscriber,
            Emulator,
            ScriptTranscriber,
        )

        transcriber = (
            ScriptTranscriber(SAMPLE_SCRIPT.read_text().splitlines())
            if args.file == SAMPLE
            else BlockCrcTranscriber()
        )
        api_key = "emulator-key"
        emulator_cm = Emulator(api_key=api_key, transcriber=transcriber)

    async with emulator_cm as emu:
        if emu is not None:
            base_url = emu.base_url  # type: ignore[attr-defined]
            print(f"OPENAI_API_KEY is not set: using the bundled emulator at {base_url}")
            print("(its transcripts are scripted; set OPENAI_API_KEY to hear from OpenAI)")
        openai_stt = openai_rt.STT(
            model=args.model,
            language=args.language,
            delay=args.delay,
            vad=inference.VAD(),
            api_key=api_key,
            base_url=base_url,
        )
        billed = 0.0
        input_tokens = output_tokens = 0
        sent = 0.0
        try:
            async with openai_stt.stream() as stream:

                async def feed() -> None:
                    nonlocal sent
                    async for frame in wav_frames(args.file):
                        stream.push_frame(frame)
                        sent += frame.duration
                    stream.end_input()

                feeder = asyncio.create_task(feed())
                async for ev in stream:
                    if ev.type == stt.SpeechEventType.INTERIM_TRANSCRIPT:
                        print(f"  ... {ev.alternatives[0].text}")
                    elif ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                        alt = ev.alternatives[0]
                        print(f"FINAL [{alt.start_time:6.2f}-{alt.end_time:6.2f} s] {alt.text}")
                    elif ev.type == stt.SpeechEventType.RECOGNITION_USAGE:
                        assert ev.recognition_usage is not None
                        billed += ev.recognition_usage.audio_duration
                        input_tokens += ev.recognition_usage.input_tokens
                        output_tokens += ev.recognition_usage.output_tokens
                await feeder
        finally:
            await openai_stt.aclose()

    cost = openai_rt.estimate_cost_usd(
        args.model,
        audio_seconds=billed,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
    price = "unknown price" if cost is None else f"estimated cost ${cost:.5f}"
    print(f"audio: {sent:.2f} s sent, {billed:.2f} s committed for transcription; {price}")


def main() -> None:
    """Parse the command line and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=SAMPLE)
    parser.add_argument("--model", default=openai_rt.DEFAULT_MODEL)
    parser.add_argument("--language", default="en")
    parser.add_argument("--delay", default=None, help="minimal|low|medium|high|xhigh")
    parser.add_argument("--base-url", default="https://api.openai.com/v1")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(transcribe(args))
    except ValueError as e:  # bad options: say what to change, no traceback
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    main()
