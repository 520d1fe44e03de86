"""The emulator in a process of its own, with a small control API for the benchmark driver.

The driver starts this once; before each client run it asks for a fresh emulator
(``POST /start``), the client polls ``GET /stats`` until its streams are configured, and
after the run the driver fetches the server-side record (``GET /dump``): the send time of
every transcript delta and ``completed``, the receive time of every commit, and each
committed item's audio length, CRC and transcript.

``LoggedEvent.t`` is ``time.monotonic()`` (CLOCK_MONOTONIC, comparable across processes). The
emulator logs an outgoing event right after ``ws.send_str`` returned, i.e. once the frame was
handed to the kernel; an incoming one as soon as it was read and parsed.

Usage: ``python bench/emulator_server.py`` prints the control URL on its first stdout line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import time
import zlib
from typing import Any

from aiohttp import web

from livekit.plugins.openai_rt.testing import Emulator, FaultPlan, RandomDrop

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"
COMMITTED = "input_audio_buffer.committed"
COMMIT = "input_audio_buffer.commit"


class Control:
    """Holds the current emulator and answers the driver's and clients' requests."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.emu: Emulator | None = None
        self.cpu0 = 0.0

    async def start(self, request: web.Request) -> web.Response:
        """Replace the emulator by a fresh one (``?gateway=1`` for the incumbent's ``?model=``;
        ``?drops=share,pool,min_bytes,max_bytes,seed``: that share of the first ``pool``
        connections, chosen at random, drop after a random count of audio bytes;
        ``completed_delay`` and ``handshake_delay``, seconds, when a run sets them)."""
        await self._stop()
        gateway = request.query.get("gateway", "0") == "1"
        faults = FaultPlan()
        if "drops" in request.query:
            share, pool, low, high, seed = request.query["drops"].split(",")
            chosen = random.Random(int(seed)).sample(
                range(int(pool)), int(float(share) * int(pool))
            )
            faults.drop_at_random = RandomDrop(int(seed), int(low), int(high), set(chosen))
        delays = {
            name: float(request.query[name])
            for name in ("completed_delay", "handshake_delay")
            if name in request.query
        }
        emu = Emulator(
            host=self.host,
            port=0,
            gateway_mode=gateway,
            record_events=True,
            faults=faults,
            **delays,
        )
        await emu.start()
        self.emu = emu
        self.cpu0 = time.process_time()
        return web.json_response({"base_url": emu.base_url, "port": emu.port})

    async def stop(self, request: web.Request) -> web.Response:
        """Close the current emulator."""
        await self._stop()
        return web.json_response({"ok": True})

    async def _stop(self) -> None:
        emu, self.emu = self.emu, None
        if emu is not None:
            await emu.aclose()

    async def stats(self, request: web.Request) -> web.Response:
        """Live and configured (transcription model set) sessions."""
        emu = self.emu
        if emu is None:
            return web.json_response({"live": 0, "configured": 0})
        live = [s for s in emu.sessions if not s.closed]
        configured = sum(1 for s in live if s.transcription_model)
        return web.json_response({"live": len(live), "configured": configured})

    async def dump(self, request: web.Request) -> web.Response:
        """The server-side record of the run, per session."""
        emu = self.emu
        if emu is None:
            return web.json_response({"sessions": {}})
        sessions: dict[str, dict[str, Any]] = {}
        for s in emu.sessions:
            sessions[s.id] = {
                "items": [
                    {
                        "item_id": it.item_id,
                        "len": it.audio_bytes,
                        "crc": zlib.crc32(it.audio),
                        "transcript": it.transcript,
                        "status": it.status,
                    }
                    for it in s.items
                ],
                "deltas": [],
                "completed": {},
                "committed": {},
                "commits_in": [],
                "errors": [],
                "close_code": s.close_code,
            }
        for ev in emu.events:
            rec = sessions.get(ev.session_id)
            if rec is None:
                continue
            etype = ev.event.get("type")
            if ev.direction == "out":
                if etype == DELTA:
                    rec["deltas"].append([ev.t, ev.event["item_id"], len(ev.event["delta"])])
                elif etype in (COMPLETED, FAILED):
                    rec["completed"][ev.event["item_id"]] = ev.t
                elif etype == COMMITTED:
                    rec["committed"][ev.event["item_id"]] = ev.t
                elif etype == "error":
                    rec["errors"].append([ev.t, ev.event.get("error", {}).get("code")])
            elif etype == COMMIT:
                rec["commits_in"].append(ev.t)
        return web.json_response(
            {"sessions": sessions, "emulator_cpu": time.process_time() - self.cpu0}
        )


async def serve(host: str, port: int) -> None:
    """Serve the control API until SIGTERM / SIGINT."""
    control = Control(host)
    app = web.Application(client_max_size=1024**2)
    app.router.add_post("/start", control.start)
    app.router.add_post("/stop", control.stop)
    app.router.add_get("/stats", control.stats)
    app.router.add_get("/dump", control.dump)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    real_port = int(runner.addresses[0][1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(f"http://{host}:{real_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await control._stop()
        await runner.cleanup()


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
