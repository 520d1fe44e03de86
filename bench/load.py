"""``nox -s load``: many streams at the audio clock against the emulator, with random drops.

Every stream must end either with exactly its finals (each the server's transcript of its own
item, the items' audio exactly the stream's audio, in order: none merged, lost or repeated) or
with one typed, non-retryable ``APIError``, and there must be exactly one ERROR line per failed
stream. Afterwards the process must hold no more file descriptors and asyncio tasks than before
the streams were opened. The emulator runs in a process of its own (``emulator_server.py``), so
the CPU figures are the client's; it drops a random share of the connections after a random
amount of audio (``--drop-share`` of the first ``2 x --streams`` connections).

Prints the figures (``--json`` also writes them); exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
import wave
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, stt
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.audio import level_dbfs
from livekit.plugins.openai_rt.formats import SAMPLE_RATE
from livekit.plugins.openai_rt.speech import SILENCE_DBFS

HERE = Path(__file__).resolve().parent
SAMPLE = HERE.parent / "examples" / "sample.wav"
BYTES_PER_SECOND = 48000
FRAME_MS = 20
TICK = 0.010
SAMPLE_PAUSES = (4.7, 10.0, 14.7)
"""Seconds into the sample where a turn ends (its two pauses and its end): the flushes."""
MIN_COMMIT = 4800
"""The end of input pads a short tail with silence up to 100 ms."""


@dataclass
class Record:
    """What one stream produced."""

    finals: list[tuple[str, str]] = field(default_factory=list)
    error: APIError | None = None
    unexpected: str | None = None


def audio(seconds: float) -> tuple[bytes, list[float]]:
    """``seconds`` of the sample, repeated as needed, and the flush points within it."""
    with wave.open(str(SAMPLE), "rb") as w:
        sample = w.readframes(w.getnframes())
    length = int(seconds * BYTES_PER_SECOND) // 2 * 2
    pcm = (sample * (length // len(sample) + 1))[:length]
    period = len(sample) / BYTES_PER_SECOND
    flushes = [
        k * period + t
        for k in range(int(seconds / period) + 1)
        for t in SAMPLE_PAUSES
        if k * period + t < seconds - 0.2
    ]
    return pcm, flushes


def _control(url: str, method: str = "GET") -> Any:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


async def _consume(stream: stt.RecognizeStream, rec: Record) -> None:
    try:
        async for ev in stream:
            if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                rec.finals.append((ev.request_id, ev.alternatives[0].text))
    except APIError as e:
        rec.error = e
    except Exception as e:  # noqa: BLE001 - reported as a failed check
        rec.unexpected = f"{type(e).__name__}: {e}"


async def _feed(
    streams: list[stt.RecognizeStream], pcm: bytes, flushes: list[float], stagger: float
) -> float:
    """Push each stream's frame k at its start + (k + 1) frames, streams spread over
    ``stagger`` seconds; returns the feeder's worst lag behind the audio clock (s)."""
    step = BYTES_PER_SECOND * FRAME_MS // 1000
    frames = [
        rtc.AudioFrame(pcm[i : i + step], 24000, 1, step // 2) for i in range(0, len(pcm), step)
    ]
    flush_after = {int(t * 1000 / FRAME_MS) for t in flushes}
    slots = round(FRAME_MS / 1000 / TICK)
    n = len(streams)
    offsets = [int(i * stagger / TICK / n) for i in range(n)]
    by_tick: dict[int, list[int]] = {}
    for i, off in enumerate(offsets):
        by_tick.setdefault(off % slots, []).append(i)
    start = time.monotonic()
    worst = 0.0
    last = max(offsets) + len(frames) * slots
    for tick in range(last + 1):
        target = start + tick * TICK
        now = time.monotonic()
        if target > now:
            await asyncio.sleep(target - now)
        worst = max(worst, time.monotonic() - target)
        for i in by_tick.get(tick % slots, ()):
            k = (tick - offsets[i]) // slots - 1
            if not 0 <= k < len(frames):
                continue
            stream = streams[i]
            try:
                stream.push_frame(frames[k])
                if k in flush_after:
                    stream.flush()
                if k == len(frames) - 1:
                    stream.end_input()
            except RuntimeError:
                pass  # the stream already ended with an error; its consumer has it
    return worst


def _check(
    rec: Record, items: dict[str, dict[str, Any]], pcm: bytes, turns: list[int]
) -> str | None:
    """What is wrong with a stream's outcome, or None. ``turns``: where each item must end (the
    flushes, then the end of the audio): an item that ends elsewhere merged or split turns."""
    if rec.unexpected is not None:
        return rec.unexpected
    if rec.error is not None:
        return None if rec.error.retryable is False else f"retryable error: {rec.error}"
    ids = [item_id for item_id, _ in rec.finals]
    if len(ids) != len(set(ids)):
        return "a final came twice"
    offset = 0
    ends: list[int] = []
    for item_id, text in rec.finals:
        if not item_id and not text:
            # a flush whose audio held no speech (skip_silence): the turn was cleared, not
            # committed; it must be silence by the plugin's own gate
            end = next((t for t in turns if t > offset), len(pcm))
            if level_dbfs(pcm[offset:end], SAMPLE_RATE) > SILENCE_DBFS:
                return f"audio louder than the silence gate cleared at byte {offset}"
            offset = end
            ends.append(end)
            continue
        item = items.get(item_id)
        if item is None:
            return f"a final for an item the server never committed: {item_id}"
        if text != item["transcript"]:
            return f"final {item_id} is not its item's transcript"
        end = offset + item["len"]
        expected = pcm[offset:end] + bytes(max(0, end - len(pcm)))
        if end - len(pcm) >= MIN_COMMIT or zlib.crc32(expected) != item["crc"]:
            return f"item {item_id} is not the stream's audio at byte {offset}"
        offset = end
        ends.append(min(end, len(pcm)))
    if offset < len(pcm):
        return f"lost {len(pcm) - offset} bytes"
    if ends != turns:
        return f"turns merged or split: items end at {ends}, the turns at {turns}"
    return None


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def _settle(tasks: int, seconds: float = 5.0) -> int:
    """Tasks alive once closing is over (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while len(asyncio.all_tasks()) > tasks and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return len(asyncio.all_tasks())


async def run(args: argparse.Namespace, control: str) -> dict[str, Any]:
    """One load run against the emulator behind ``control``; returns its figures."""
    pcm, flushes = audio(args.seconds)
    pool = 2 * args.streams
    drops = f"{args.drop_share},{pool},{args.drop_min},{args.drop_max},{args.seed}"
    base_url = _control(f"{control}/start?drops={drops}", "POST")["base_url"]
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    fds0, tasks0 = len(os.listdir("/proc/self/fd")), len(asyncio.all_tasks())
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    stt_ = openai_rt.STT(api_key="load-key", base_url=base_url, http_session=http)
    conn = APIConnectOptions(max_retry=args.max_retry, retry_interval=1.0, timeout=10.0)
    streams = [stt_.stream(conn_options=conn) for _ in range(args.streams)]
    records = [Record() for _ in streams]
    consumers = [
        asyncio.ensure_future(_consume(s, r)) for s, r in zip(streams, records, strict=True)
    ]
    cpu0, wall0 = time.process_time(), time.monotonic()
    lag = await _feed(streams, pcm, flushes, args.stagger)
    _, pending = await asyncio.wait(consumers, timeout=60.0)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    for task in pending:
        task.cancel()
    await stt_.aclose()
    await http.close()
    tasks1 = await _settle(tasks0)
    fds1 = len(os.listdir("/proc/self/fd"))
    logging.getLogger().removeHandler(errors)
    dump = _control(f"{control}/dump")
    items = {it["item_id"]: it for s in dump["sessions"].values() for it in s["items"]}
    step = BYTES_PER_SECOND * FRAME_MS // 1000
    turns = [(int(t * 1000 / FRAME_MS) + 1) * step for t in flushes] + [len(pcm)]
    problems = [p for r in records if (p := _check(r, items, pcm, turns)) is not None]
    problems += ["no outcome (still running after the audio + 60 s)"] * len(pending)
    failed = sum(1 for r in records if r.error is not None)
    if len(errors.lines) != failed:
        problems.append(f"{len(errors.lines)} ERROR lines for {failed} failed streams")
    sessions = dump["sessions"].values()
    return {
        "streams": args.streams,
        "audio_seconds": len(pcm) / BYTES_PER_SECOND,
        "wall_seconds": round(wall, 2),
        "client_cpu_seconds": round(cpu, 2),
        "client_cpu_ms_per_audio_second": round(cpu * 1000 / args.streams / args.seconds, 2),
        "emulator_cpu_seconds": round(dump["emulator_cpu"], 2),
        "feeder_worst_lag_ms": round(lag * 1000, 1),
        "sessions": len(dump["sessions"]),
        "dropped_sessions": sum(1 for s in sessions if s["close_code"] == 1006),
        "exact": sum(
            1 for r in records if r.error is None and _check(r, items, pcm, turns) is None
        ),
        "failed_loudly": failed,
        "error_lines": len(errors.lines),
        "errors": sorted({line[:160] for line in errors.lines}),
        "problems": problems,
        "fds": {"before": fds0, "after": fds1},
        "tasks": {"before": tasks0, "after": tasks1},
    }


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream")
    parser.add_argument("--drop-share", type=float, default=0.3)
    parser.add_argument("--drop-min", type=int, default=50_000, help="audio bytes")
    parser.add_argument("--drop-max", type=int, default=900_000, help="audio bytes")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stagger", type=float, default=1.0, help="seconds to open streams")
    parser.add_argument("--max-retry", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    emulator = subprocess.Popen(
        [sys.executable, str(HERE / "emulator_server.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert emulator.stdout is not None
        control = emulator.stdout.readline().strip()
        if not control:
            sys.exit("the emulator server did not start")
        figures = asyncio.run(run(args, control))
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    ok = (
        not figures["problems"]
        and figures["fds"]["after"] <= figures["fds"]["before"]
        and figures["tasks"]["after"] <= figures["tasks"]["before"]
    )
    for key, value in figures.items():
        if key != "problems":
            print(f"{key:34} {value}")
    for problem in figures["problems"][:20]:
        print(f"PROBLEM {problem}")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
