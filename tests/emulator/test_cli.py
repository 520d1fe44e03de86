"""The standalone server: ``python -m livekit.plugins.openai_rt.testing``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys

import aiohttp

from tests.emulator.helpers import AUTH, KEY


async def test_cli_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livekit.plugins.openai_rt.testing",
            "--port",
            "0",
            "--api-key",
            KEY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, proc.stdout.readline)
        base_url = line.strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url), line
        url = base_url.replace("http://", "ws://") + "/realtime?intent=transcription"
        async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=AUTH) as ws:
            assert json.loads((await ws.receive(timeout=2)).data)["type"] == "session.created"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
