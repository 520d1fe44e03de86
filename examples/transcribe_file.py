"""Transcribe (or translate) a WAV file with ``openai_rt.STT`` (``openai_rt.TranslationSTT``)
and print what a voice agent would receive.

Run it from a clone of the repository (nox installs the plugin in its own virtualenv)::

    nox -s demo                                                   # the bundled sample
    nox -s demo -- --translate es                                 # ... translated into Spanish
    nox -s example -- examples/transcribe_file.py talk.wav --delay low
    nox -s example -- examples/transcribe_file.py talk.wav --translate fr --save-audio fr.wav

or with ``python examples/transcribe_file.py`` in an environment where the plugin is installed
(``pip install ./livekit-plugins-openai-rt``): plain ``python`` without it fails with
``No module named 'livekit'``.

Where the audio goes:

* ``OPENAI_API_KEY`` set: OpenAI transcribes it (and bills the key).
* ``OPENAI_API_KEY`` not set: the bundled emulator (``livekit.plugins.openai_rt.testing``) starts
  on a loopback port. It does no speech recognition: for the bundled sample it returns the
  sample's script (``examples/sample.txt``), one line per utterance; for any other file each
  transcript is a checksum of the exact audio bytes it received (one CRC-32 token per 100 ms),
  which shows that no byte was lost, not what was said.
* ``--base-url URL``: another server speaking the same protocol (an emulator started with
  ``nox -s emulator``, a gateway), with the key in ``OPENAI_API_KEY``.

With ``--translate LANG`` the file goes to a translation session (``gpt-realtime-translate``)
instead: it prints the translated text as it comes (with the source-language transcript) and
how much translated speech came back; ``--save-audio out.wav`` writes that speech. The emulator
translates the bundled sample into Spanish with a script (``examples/sample.es.txt``); anything
else becomes one checksum token per 200 ms frame, and its "translated speech" is the input itself.

The audio is fed in real time, as a microphone would deliver it: the stream's own VAD commits
each utterance when it hears the end of speech, as in a standalone program (inside an
``AgentSession`` the session's VAD does that).

A failure (missing or unreadable file, refused key, unknown model) prints one line on stderr and
exits non-zero: 2 for a bad input file, 1 for anything else; ``--debug`` shows debug logs and
the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import struct
import sys
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from livekit import rtc
    from livekit.agents import stt
    from livekit.plugins.openai_rt.testing import Emulator

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "sample.wav"
SAMPLE_SCRIPT = HERE / "sample.txt"
SAMPLE_TRANSLATIONS = {"es": HERE / "sample.es.txt"}
"""Scripted translations of the bundled sample, for the emulator (which does not translate)."""
OPENAI_BASE_URL = "https://api.openai.com/v1"
FRAME_MS = 20

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

# WAVE format tags (RIFF fmt chunk); WAVE_FORMAT_EXTENSIBLE carries the real tag in its GUID.
WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def convert_hint(path: Path) -> str:
    """How to make a file this program reads."""
    return f"convert it first, e.g. ffmpeg -i {path} -c:a pcm_s16le {path.stem}-pcm.wav"


class InputError(Exception):
    """The input file cannot be used; the message is one line that names the file."""


@dataclass(frozen=True)
class Audio:
    """Decoded audio: 16-bit mono PCM at the file's sample rate."""

    pcm: bytes
    """Little-endian signed 16-bit samples, one channel."""
    sample_rate: int
    description: str
    """What the file held and what was converted, for the user."""

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / 2 / self.sample_rate


def _to_int16(raw: bytes, tag: int, bits: int, channels: int) -> np.ndarray:
    """Decode interleaved samples of any supported encoding to int16, downmixed to mono."""
    width = bits // 8
    frames = len(raw) // (width * channels)
    raw = raw[: frames * width * channels]
    samples: np.ndarray
    if tag == WAVE_FORMAT_IEEE_FLOAT and bits in (32, 64):
        floats = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8")
        samples = np.clip(floats, -1.0, 1.0) * 32767.0
    elif tag == WAVE_FORMAT_PCM and bits == 8:  # unsigned, centred on 128
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif tag == WAVE_FORMAT_PCM and bits == 16:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int32)
    elif tag == WAVE_FORMAT_PCM and bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        samples = np.where(value >= 1 << 23, value - (1 << 24), value) >> 8
    elif tag == WAVE_FORMAT_PCM and bits == 32:
        samples = np.frombuffer(raw, dtype="<i4") >> 16
    else:
        raise ValueError(f"{bits}-bit samples of format {tag:#06x}")
    mono = samples.reshape(frames, channels).mean(axis=1) if channels > 1 else samples
    return np.asarray(np.clip(np.round(mono), -32768, 32767), dtype="<i2")


def read_wav(path: Path) -> Audio:
    """Read any PCM (8/16/24/32-bit) or float (32/64-bit) WAV, any rate and channel count.

    Returns 16-bit mono audio at the file's rate (the plugin's stream resamples). Raises
    :class:`InputError` with a one-line message when the file is missing, empty, not a WAV file
    or holds no audio.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a WAV file") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    if not data:
        raise InputError(f"{path}: empty file (0 bytes), expected a WAV file")
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InputError(f"{path}: not a WAV file (no RIFF/WAVE header); {convert_hint(path)}")

    fmt: tuple[int, int, int, int] | None = None  # tag, channels, rate, bits
    raw: bytes | None = None
    offset = 12
    while offset + 8 <= len(data) and (fmt is None or raw is None):
        chunk_id = data[offset : offset + 4]
        (size,) = struct.unpack_from("<I", data, offset + 4)
        body = data[offset + 8 : offset + 8 + size]  # a truncated last chunk is read as is
        if chunk_id == b"fmt " and len(body) >= 16:
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                (tag,) = struct.unpack_from("<H", body, 24)  # first bytes of the sub-format
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            raw = body
        offset += 8 + size + (size & 1)
    if fmt is None or raw is None:
        missing = "fmt" if fmt is None else "data"
        raise InputError(f"{path}: not a valid WAV file (no {missing} chunk)")
    tag, channels, rate, bits = fmt
    if channels < 1 or rate < 1 or bits < 8 or bits % 8:
        raise InputError(
            f"{path}: not a valid WAV file ({channels} channels, {rate} Hz, {bits} bits)"
        )
    try:
        pcm = _to_int16(raw, tag, bits, channels)
    except ValueError as e:
        raise InputError(f"{path}: unsupported WAV encoding ({e}); {convert_hint(path)}") from None
    if not len(pcm):
        raise InputError(f"{path}: the WAV file holds no audio")

    kind = "float" if tag == WAVE_FORMAT_IEEE_FLOAT else "PCM"
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")
    description = f"{rate} Hz {layout} {bits}-bit {kind}"
    conversions = []
    if channels > 1:
        conversions.append("downmixed to mono")
    if (tag, bits) != (WAVE_FORMAT_PCM, 16):
        conversions.append("converted to 16-bit")
    if conversions:
        description += f" ({', '.join(conversions)})"
    return Audio(pcm=pcm.tobytes(), sample_rate=rate, description=description)


async def paced_frames(audio: Audio) -> AsyncIterator[rtc.AudioFrame]:
    """Yield 20 ms frames of ``audio``, paced in real time."""
    from livekit import rtc

    step = audio.sample_rate * FRAME_MS // 1000 * 2
    start = time.monotonic()
    for i, off in enumerate(range(0, len(audio.pcm), step)):
        chunk = audio.pcm[off : off + step]
        yield rtc.AudioFrame(chunk, audio.sample_rate, 1, len(chunk) // 2)
        await asyncio.sleep(max(0.0, start + (i + 1) * FRAME_MS / 1000 - time.monotonic()))


async def first_failure(*aws: Awaitable[None]) -> None:
    """Run ``aws`` concurrently until all are done; the first to fail cancels the others and its
    exception propagates (so a failing feeder cannot leave the reader waiting forever)."""
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            exc = None if task.cancelled() else task.exception()
            if exc is not None:
                raise exc
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def print_event(ev: stt.SpeechEvent, totals: dict[str, float]) -> None:
    """Print one speech event; add its usage to ``totals``."""
    from livekit.agents import stt

    if ev.type == stt.SpeechEventType.INTERIM_TRANSCRIPT:
        print(f"  ... {ev.alternatives[0].text}", flush=True)
    elif ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT and ev.alternatives[0].text:
        # (an empty final answers a flush whose audio held no speech: nothing to show)
        alt = ev.alternatives[0]
        print(f"FINAL [{alt.start_time:6.2f}-{alt.end_time:6.2f} s] {alt.text}", flush=True)
    elif ev.type == stt.SpeechEventType.RECOGNITION_USAGE and ev.recognition_usage is not None:
        totals["audio_seconds"] += ev.recognition_usage.audio_duration
        totals["input_tokens"] += ev.recognition_usage.input_tokens
        totals["output_tokens"] += ev.recognition_usage.output_tokens


@dataclass
class Server:
    """Where the audio goes: OpenAI, another server, or the bundled emulator (started by the
    caller, which then sets ``base_url``)."""

    api_key: str
    base_url: str
    emulator: Emulator | None


def choose_server(
    args: argparse.Namespace, model: str, make_emulator: Callable[[str], Emulator]
) -> Server:
    """OpenAI with ``OPENAI_API_KEY``, the server of ``--base-url``, or else an emulator."""
    api_key = os.environ.get("OPENAI_API_KEY")
    base_url: str = args.base_url or OPENAI_BASE_URL
    if args.base_url:
        print(f"using the server at {base_url} (model {model})")
    elif api_key:
        print(f"using OpenAI at {base_url} (model {model})")
    else:
        return Server("emulator-key", base_url, make_emulator("emulator-key"))
    assert api_key is not None
    return Server(api_key, base_url, None)


async def start_emulator(
    stack: contextlib.AsyncExitStack, server: Server, what_it_does: str, verb: str
) -> None:
    """Start ``server``'s emulator, if it has one, and say so: ``what_it_does`` instead of
    speech recognition, and that a key would ``verb`` with OpenAI instead."""
    if server.emulator is None:
        return
    await stack.enter_async_context(server.emulator)
    server.base_url = server.emulator.base_url
    print(f"OPENAI_API_KEY is not set: using the bundled emulator at {server.base_url}.")
    print(what_it_does)
    print(f"Set OPENAI_API_KEY to {verb} with OpenAI.")


async def stream_file(
    stream: stt.RecognizeStream,
    audio: Audio,
    on_transcript: Callable[[], None],
    show: Callable[[stt.SpeechEvent], None],
    *alongside: Awaitable[None],
) -> None:
    """Feed ``audio`` to ``stream`` in real time and read its events until it ends: each is
    shown with ``show``, and each transcript calls ``on_transcript``; ``alongside`` runs too."""
    from livekit.agents import stt

    async def feed() -> None:
        async for frame in paced_frames(audio):
            stream.push_frame(frame)
        stream.end_input()

    async def read() -> None:
        transcripts = (stt.SpeechEventType.INTERIM_TRANSCRIPT, stt.SpeechEventType.FINAL_TRANSCRIPT)
        async for ev in stream:
            if ev.type in transcripts:
                on_transcript()
            show(ev)

    await first_failure(feed(), read(), *alongside)


async def transcribe(
    args: argparse.Namespace, audio: Audio, on_transcript: Callable[[], None] = lambda: None
) -> None:
    """Run one stream over ``audio`` and print interims, finals, audio seconds and cost;
    ``on_transcript`` is called at each transcript."""
    from livekit.agents import inference
    from livekit.plugins import openai_rt
    from livekit.plugins.openai_rt.testing import BlockCrcTranscriber, Emulator, ScriptTranscriber

    model: str = args.model or openai_rt.DEFAULT_MODEL
    is_sample = args.file.resolve() == SAMPLE
    server = choose_server(
        args,
        model,
        lambda key: Emulator(
            api_key=key,
            transcriber=(
                ScriptTranscriber(SAMPLE_SCRIPT.read_text(encoding="utf-8").splitlines())
                if is_sample
                else BlockCrcTranscriber()
            ),
        ),
    )
    print(f"{args.file}: {audio.duration:.2f} s, {audio.description}")

    async with contextlib.AsyncExitStack() as stack:
        await start_emulator(
            stack,
            server,
            (
                "It does no speech recognition: its transcripts are the sample's script "
                f"({SAMPLE_SCRIPT.name}), one line per utterance."
            )
            if is_sample
            else (
                "It does no speech recognition: each transcript is a checksum of the audio "
                "it received (one CRC-32 token per 100 ms, then +<bytes>:<CRC-32> for the "
                "rest), which shows that every byte arrived, not what was said."
            ),
            "transcribe",
        )
        openai_stt = openai_rt.STT(
            model=model,
            language=None if args.language == "auto" else args.language,
            delay=args.delay,
            vad=inference.VAD(),
            api_key=server.api_key,
            base_url=server.base_url,
        )
        stack.push_async_callback(openai_stt.aclose)
        totals = {"audio_seconds": 0.0, "input_tokens": 0.0, "output_tokens": 0.0}
        stream = openai_stt.stream()
        async with stream:
            await stream_file(stream, audio, on_transcript, lambda ev: print_event(ev, totals))
        skipped = stream.skipped_silence_seconds

    cost = openai_rt.estimate_cost_usd(
        model,
        audio_seconds=totals["audio_seconds"],
        input_tokens=int(totals["input_tokens"]),
        output_tokens=int(totals["output_tokens"]),
    )
    price = "unknown price" if cost is None else f"estimated cost ${cost:.5f}"
    print(
        f"audio: {audio.duration:.2f} s sent, {totals['audio_seconds']:.2f} s committed for "
        f"transcription ({skipped:.2f} s without speech cleared, not billed); {price}"
    )


def print_translation(ev: stt.SpeechEvent, totals: dict[str, float]) -> None:
    """Print one speech event of a translation stream; add its usage to ``totals``."""
    from livekit.agents import stt

    if ev.type == stt.SpeechEventType.INTERIM_TRANSCRIPT:
        print(f"  ... {ev.alternatives[0].text}", flush=True)
    elif ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
        alt = ev.alternatives[0]
        print(
            f"FINAL [{alt.start_time:6.2f}-{alt.end_time:6.2f} s] {alt.language}: {alt.text}",
            flush=True,
        )
        if alt.source_texts:
            print(f"      source: {alt.source_texts[0]}", flush=True)
    elif ev.type == stt.SpeechEventType.RECOGNITION_USAGE and ev.recognition_usage is not None:
        totals["audio_seconds"] += ev.recognition_usage.audio_duration


async def translate(
    args: argparse.Namespace, audio: Audio, on_transcript: Callable[[], None] = lambda: None
) -> None:
    """Run one translation stream over ``audio``: print the translated text, the translated
    speech received (written to ``--save-audio``), the audio seconds billed and the cost;
    ``on_transcript`` is called at each translation."""
    from livekit.agents import inference
    from livekit.plugins import openai_rt
    from livekit.plugins.openai_rt.testing import Emulator, ScriptTranslator

    target: str = args.translate
    model: str = args.model or openai_rt.DEFAULT_TRANSLATION_MODEL
    script = SAMPLE_TRANSLATIONS.get(target) if args.file.resolve() == SAMPLE else None
    server = choose_server(
        args,
        model,
        lambda key: Emulator(
            api_key=key,
            translator=(
                ScriptTranslator(
                    script.read_text(encoding="utf-8").splitlines(),
                    source_lines=SAMPLE_SCRIPT.read_text(encoding="utf-8").splitlines(),
                )
                if script is not None
                else None
            ),
        ),
    )
    print(f"{args.file}: {audio.duration:.2f} s, {audio.description}; translating into {target}")
    speech = bytearray()
    rate = 24000

    async with contextlib.AsyncExitStack() as stack:
        await start_emulator(
            stack,
            server,
            (
                "It does no translation: its translations are the sample's scripted "
                f"translation ({script.name}), one line per utterance, and its translated "
                "speech is the input audio."
            )
            if script is not None
            else (
                "It does no translation: each translation is one checksum token per 200 ms "
                "frame of the audio it received (<language>:<CRC-32>), which shows that "
                "every frame was translated once, and its translated speech is the input."
            ),
            "translate",
        )
        translator = openai_rt.TranslationSTT(
            target_language=target,
            model=model,
            source_transcription="gpt-realtime-whisper",
            vad=inference.VAD(),
            api_key=server.api_key,
            base_url=server.base_url,
        )
        stack.push_async_callback(translator.aclose)
        totals = {"audio_seconds": 0.0}
        stream = translator.stream()
        async with stream:

            async def listen() -> None:
                nonlocal rate
                async for frame in stream.translated_audio():
                    rate = frame.sample_rate
                    speech.extend(frame.data)

            await stream_file(
                stream, audio, on_transcript, lambda ev: print_translation(ev, totals), listen()
            )

    seconds = len(speech) / 2 / rate
    saved = ""
    if args.save_audio is not None:
        write_wav(args.save_audio, bytes(speech), rate)
        saved = f", written to {args.save_audio}"
    print(f"translated speech: {seconds:.2f} s received{saved}")
    cost = openai_rt.estimate_cost_usd(model, audio_seconds=totals["audio_seconds"])
    price = "unknown price" if cost is None else f"estimated cost ${cost:.5f}"
    print(
        f"audio: {audio.duration:.2f} s sent, {totals['audio_seconds']:.2f} s billed for "
        f"translation; {price}"
    )


def write_wav(path: Path, pcm: bytes, rate: int) -> None:
    """Write 16-bit mono ``pcm`` at ``rate`` as a WAV file."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)


class OneLineLogHandler(logging.Handler):
    """Without ``--debug``, log records become one line each on stderr.

    Until the first transcript arrives they are held: a run that fails before it is reported by
    the exit line alone (its warnings, such as an unknown model's, and the logged error that the
    exit line repeats add nothing; ``--debug`` shows them). Once transcripts flow, warnings are
    printed as they come; errors wait for the end and are dropped when the exit line says them.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.held: list[logging.LogRecord] = []
        self.live = False

    def emit(self, record: logging.LogRecord) -> None:
        """Print a warning once transcripts flow; hold anything else."""
        if self.live and record.levelno < logging.ERROR:
            self._print(record)
        else:
            self.held.append(record)

    def go_live(self) -> None:
        """A transcript arrived: print the warnings held so far, and later ones as they come."""
        if self.live:
            return
        self.live = True
        for record in [r for r in self.held if r.levelno < logging.ERROR]:
            self._print(record)
            self.held.remove(record)

    def finish(self, final_message: str | None) -> None:
        """Print what is held and not said by ``final_message``, the exit line of a failure."""
        for record in self.held:
            text = record.getMessage()
            if final_message and (not self.live or text in final_message or final_message in text):
                continue
            self._print(record)
        self.held.clear()

    @staticmethod
    def _print(record: logging.LogRecord) -> None:
        text = " ".join(record.getMessage().split())
        print(f"{record.levelname.lower()}: {text}", file=sys.stderr, flush=True)


def describe_failure(exc: BaseException) -> str:
    """One line for a failure: the plugin's message, with the cause when retries ran out."""
    from livekit.agents import APIError

    if isinstance(exc, APIError):
        text = exc.message
        cause = exc.__cause__
        if isinstance(cause, APIError) and cause.message not in text:
            text = f"{text}: {cause.message}"
    elif isinstance(exc, ValueError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="transcribe_file.py",
        description=(
            "Transcribe a WAV file with openai_rt.STT, in real time, and print interim and final "
            "transcripts, the audio seconds committed and the estimated cost. With "
            "OPENAI_API_KEY set it uses OpenAI; without it, the bundled emulator, which returns "
            "the script of the bundled sample or, for other files, checksums of the audio (it "
            "does no speech recognition). With --translate LANG it translates instead "
            "(gpt-realtime-translate) and prints the translated text as it comes."
        ),
        epilog=(
            "Exit status: 0 on success, 2 for an unusable input file, 1 for any other failure "
            "(refused key, unknown model, connection), reported in one line on stderr."
        ),
    )
    parser.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=SAMPLE,
        help=(
            "the audio to transcribe: any WAV file, PCM 8/16/24/32-bit or float, any sample rate, "
            "mono or more channels (downmixed to mono); default: the bundled sample "
            f"({SAMPLE.name}, 14.7 s, three sentences)"
        ),
    )
    parser.add_argument(
        "--model",
        default=None,
        help="transcription model (default gpt-realtime-whisper), or translation model with "
        "--translate (default gpt-realtime-translate)",
    )
    parser.add_argument(
        "--language", default="en", help="ISO-639-1 code, or 'auto' to let the model detect (en)"
    )
    parser.add_argument(
        "--delay", default=None, help="minimal|low|medium|high|xhigh (gpt-realtime-whisper only)"
    )
    parser.add_argument(
        "--translate",
        metavar="LANG",
        default=None,
        help="translate into LANG (e.g. es) with gpt-realtime-translate instead of transcribing",
    )
    parser.add_argument(
        "--save-audio",
        metavar="WAV",
        type=Path,
        default=None,
        help="with --translate: write the translated speech to this WAV file",
    )
    parser.add_argument(
        "--base-url",
        default=None,
        help="an OpenAI-compatible server instead of OpenAI or the bundled emulator, e.g. "
        "http://127.0.0.1:8765/v1 for nox -s emulator (key from OPENAI_API_KEY)",
    )
    parser.add_argument(
        "--debug",
        "-v",
        "--verbose",
        action="store_true",
        help="debug logs, and the traceback of a failure",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, read the file, transcribe it; return the exit status."""
    args = parse_args(argv)
    handler: OneLineLogHandler | None = None
    if args.debug:
        logging.basicConfig(
            level=logging.DEBUG,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    else:
        handler = OneLineLogHandler()
        logging.basicConfig(level=logging.WARNING, handlers=[handler])

    def fail(message: str, status: int) -> int:
        if handler is not None:
            handler.finish(message)
        print(f"error: {message}", file=sys.stderr, flush=True)
        return status

    if args.translate is None and args.save_audio is not None:
        return fail("--save-audio goes with --translate LANG", EXIT_BAD_INPUT)
    if args.translate is not None and args.delay is not None:
        return fail("--delay is a transcription option; remove it with --translate", EXIT_BAD_INPUT)
    if args.base_url and not os.environ.get("OPENAI_API_KEY"):
        message = (
            "--base-url needs OPENAI_API_KEY (an emulator started without --api-key takes any)"
        )
        return fail(message, EXIT_BAD_INPUT)
    try:
        audio = read_wav(args.file)
    except InputError as e:
        return fail(str(e), EXIT_BAD_INPUT)
    try:
        on_transcript = handler.go_live if handler else lambda: None
        run = translate if args.translate else transcribe
        asyncio.run(run(args, audio, on_transcript))
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except Exception as e:
        if args.debug:
            raise
        return fail(describe_failure(e), EXIT_FAILURE)
    if handler is not None:
        handler.finish(None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
