"""Run the OpenAI Realtime transcription and translation emulator as a standalone server.

Usage::

    python -m livekit.plugins.openai_rt.testing --host 127.0.0.1 --port 8765 \\
        [--max-session-seconds N] [--api-key KEY] [--gateway-mode] \\
        [--completed-delay S] [--handshake-delay S] [--script FILE] [--no-record-events]

Prints the OpenAI-style base URL (``http://<host>:<port>/v1``) on the first line of stdout, then
serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

from .server import Emulator
from .settings import COMPLETED_DELAY
from .transcribers import BlockCrcTranscriber, ScriptTranscriber, Transcriber


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m livekit.plugins.openai_rt.testing",
        description="A local emulator of OpenAI's Realtime API transcription and translation server.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="TCP port, 0 = ephemeral (8765)")
    parser.add_argument(
        "--max-session-seconds",
        type=float,
        default=3600.0,
        help="expire sessions (close 1001) after this many seconds (3600)",
    )
    parser.add_argument(
        "--api-key", default=None, help="the only accepted API key (default: accept any key)"
    )
    parser.add_argument(
        "--gateway-mode",
        action="store_true",
        help="accept ?model= as the transcription model, like LiteLLM/speaches gateways",
    )
    parser.add_argument(
        "--completed-delay",
        type=float,
        default=COMPLETED_DELAY,
        help=f"seconds between a commit and its completed event ({COMPLETED_DELAY:g})",
    )
    parser.add_argument(
        "--handshake-delay",
        type=float,
        default=0.0,
        help="seconds each websocket upgrade takes before it is accepted (0)",
    )
    parser.add_argument(
        "--script",
        default=None,
        help="a text file: transcribe the i-th committed item as its i-th non-empty line "
        "(default: CRC tokens of the audio)",
    )
    parser.add_argument(
        "--no-record-events",
        action="store_true",
        help="do not keep events and audio in memory (long runs, benchmarks)",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    transcriber: Transcriber
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            transcriber = ScriptTranscriber([line.strip() for line in f if line.strip()])
    else:
        transcriber = BlockCrcTranscriber()
    emulator = Emulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        transcriber=transcriber,
        max_session_seconds=args.max_session_seconds,
        gateway_mode=args.gateway_mode,
        record_events=not args.no_record_events,
        completed_delay=args.completed_delay,
        handshake_delay=args.handshake_delay,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not available on Windows
            loop.add_signal_handler(sig, stop.set)
    async with emulator:
        print(emulator.base_url, flush=True)
        print(f"websocket: {emulator.ws_url}", file=sys.stderr, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: parse arguments and serve until interrupted."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
