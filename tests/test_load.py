"""Many streams at once with random drops, at the audio clock: every stream ends with exactly its
finals, or with one typed non-retryable error and one ERROR line; no file descriptor or task is
left behind. The full size (300 streams of 20 s) is ``nox -s load`` (``bench/load.py``)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random

import aiohttp
import pytest

from livekit.agents import APIConnectOptions, APIError, stt
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import Emulator, FaultPlan, RandomDrop
from tests.conftest import FINAL, KEY, assert_exactly_once, drive, of_type

STREAMS = 24
SECONDS = 4.0
FLUSH_AT = (1.4, 2.9)
"""Seconds into the sample that fall in its quiet between words (any point would do)."""


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _settled(baseline_tasks: int) -> int:
    """Tasks alive once closing is over (a closed socket's last callbacks run on the loop)."""
    for _ in range(100):
        count = len(asyncio.all_tasks())
        if count <= baseline_tasks:
            return count
        await asyncio.sleep(0.01)
    return len(asyncio.all_tasks())


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts file descriptors in /proc")
async def test_many_streams_with_random_drops_end_exactly_or_fail_loudly(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    pcm = sample_pcm[: int(SECONDS * 48000)]
    # a third of the first 2 * STREAMS connections drop after a random 0.4 s to 3 s of audio
    dropped = set(random.Random(3).sample(range(2 * STREAMS), 2 * STREAMS // 3))
    faults = FaultPlan(
        drop_at_random=RandomDrop(seed=3, min_bytes=20_000, max_bytes=150_000, connections=dropped)
    )
    fds0, tasks0 = _open_fds(), len(asyncio.all_tasks())
    async with Emulator(api_key=KEY, faults=faults) as emu:
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        stt_ = openai_rt.STT(api_key=KEY, base_url=emu.base_url, http_session=http, heartbeat=2.0)
        conn = APIConnectOptions(max_retry=3, retry_interval=0.2, timeout=5.0)

        async def one(i: int) -> list[stt.SpeechEvent] | APIError:
            await asyncio.sleep(i / STREAMS)  # streams spread over a second
            try:
                return await drive(
                    stt_.stream(conn_options=conn), pcm, flush_at=FLUSH_AT, realtime=1.0
                )
            except APIError as e:
                return e

        try:
            results = await asyncio.gather(*(one(i) for i in range(STREAMS)))
            items = emu.committed_items()
            drops = sum(1 for s in emu.sessions if s.close_code == 1006)
        finally:
            await stt_.aclose()
            await http.close()
    failed = [r for r in results if isinstance(r, APIError)]
    by_id = {item.item_id: item for item in items}
    frame = 960  # drive() pushes 20 ms frames and flushes after the one that reaches the point
    turns = [-(-int(t * 48000) // frame) * frame for t in FLUSH_AT] + [len(pcm)]
    for result in results:
        if isinstance(result, APIError):
            assert result.retryable is False
            continue
        assert_exactly_once(result, items, pcm)
        # one final per turn: none merged or split by a drop
        ends = itertools.accumulate(
            len(by_id[ev.request_id].audio) for ev in of_type(result, FINAL)
        )
        assert [min(end, len(pcm)) for end in ends] == turns
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == len(failed)
    assert drops >= STREAMS // 4, "the drops should have hit a good share of the streams"
    assert len(failed) <= STREAMS // 8
    assert _open_fds() <= fds0
    assert await _settled(tasks0) <= tasks0
