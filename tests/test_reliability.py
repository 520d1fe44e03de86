"""Speech is never lost or merged: a flush while the server stopped reading, a replay on a slow
uplink, the end of input on a half-open socket, stereo input, and stray transcript deltas.

Each test drives ``openai_rt.STT`` through its public API against the emulator over loopback
(through :mod:`tests.netproxy` where the network must misbehave exactly) and proves its outcome
from the emulator's transcripts, which are a pure function of the exact audio bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from livekit import rtc
from livekit.agents import stt, vad
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import (
    Emulator,
    FaultPlan,
    Stall,
    expected_transcript,
)
from tests.conftest import (
    CONN,
    FINAL,
    FLUSH_POINTS,
    INTERIM,
    KEY,
    MakeSTT,
    assert_exactly_once,
    collect,
    drive,
    error_records,
    feed,
    final_texts,
    frames,
    of_type,
)
from tests.netproxy import Proxy, small_buffer_session

BYTES_PER_SECOND = 48000


def frame(pcm: bytes, rate: int = 24000, channels: int = 1) -> rtc.AudioFrame:
    """One frame holding all of ``pcm`` (interleaved when ``channels`` > 1)."""
    return rtc.AudioFrame(pcm, rate, channels, len(pcm) // 2 // channels)


@contextlib.asynccontextmanager
async def through_proxy(
    make_stt: MakeSTT, emu: Emulator, proxy: Proxy, **options: Any
) -> AsyncIterator[openai_rt.STT]:
    """An STT that reaches ``emu`` through ``proxy`` on sockets with small buffers (their
    session closed on leaving the block), with no heartbeat: only the timers in ``options``
    notice a silent server."""
    http = small_buffer_session()
    try:
        yield make_stt(emu, base_url=proxy.base_url, http_session=http, heartbeat=None, **options)
    finally:
        await http.close()


# -- 1. a flush taken while the server stopped reading ------------------------------------------

WRITER_LIMIT = 2**18
"""aiohttp's websocket writer waits for the transport to drain only when its output counter
passes this (``DEFAULT_CHUNK_SIZE``, 256 KiB), then starts the count over: between two such
points every send returns at once, and a send can only block at one of them."""

_APPEND_HEAD = len(b'{"type":"input_audio_buffer.append","audio":"')


def _append_wire(raw: int) -> int:
    """Bytes on the wire of one masked text frame appending ``raw`` bytes of audio."""
    payload = _APPEND_HEAD + 4 * math.ceil(raw / 3) + 2
    return payload + (2 if payload < 126 else 4 if payload < 65536 else 10) + 4


class _EndOfSpeechAt(vad.VAD):
    """A VAD that hears speech from the first frame and ends it on the frame of ``samples``
    samples per channel (the stream's own VAD, ``vad=``, scripted)."""

    def __init__(self, samples: int) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.02))
        self.samples = samples

    def stream(self) -> vad.VADStream:
        return _EndOfSpeechStream(self)


class _EndOfSpeechStream(vad.VADStream):
    async def _main_task(self) -> None:
        vad_ = self._vad
        assert isinstance(vad_, _EndOfSpeechAt)
        started = False
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):
                continue
            kind = None
            if not started:
                started, kind = True, vad.VADEventType.START_OF_SPEECH
            elif item.samples_per_channel == vad_.samples:
                kind = vad.VADEventType.END_OF_SPEECH
            if kind is not None:
                self._event_ch.send_nowait(
                    vad.VADEvent(
                        type=kind,
                        samples_index=0,
                        timestamp=0.0,
                        speech_duration=0.0,
                        silence_duration=0.0,
                    )
                )


@pytest.mark.parametrize("commit_by", ["flush", "vad"])
async def test_an_utterance_ended_while_the_server_stopped_reading_is_neither_lost_nor_merged(
    commit_by: str, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # The server stops reading (a proxy that stops forwarding, small socket buffers: the
    # client's sends really block) while the first utterance is on its way, and the utterance
    # ends (flush() or the stream's VAD) exactly when a client that sends each frame as it is
    # pushed would be blocked sending the flush's last audio, before its commit. The stream
    # gives up on the socket and replays: the two utterances must come back as two finals.
    big = sample_pcm[:200_000]  # one message over WRITER_LIMIT: the count starts over after it
    rest = sample_pcm[200_000:]
    fill = [rest[i * 48_000 : (i + 1) * 48_000] for i in range(4)]  # up to just under the limit
    near = rest[192_000:195_000]
    last = rest[195_000:197_000]  # 1000 samples, smaller than a send: it goes with the flush
    first_utterance = big + b"".join(fill) + near + last
    second_utterance = rest[197_000:245_000]
    sent_before_last = sum(_append_wire(len(x)) for x in (*fill, near))
    assert sent_before_last <= WRITER_LIMIT < sent_before_last + _append_wire(len(last))

    options: dict[str, Any] = {"vad": _EndOfSpeechAt(len(last) // 2)}
    if commit_by == "flush":
        options = {}
    async with (
        Emulator(api_key=KEY) as emu,
        Proxy(emu.port, hold_after={0: len(big)}) as proxy,
        through_proxy(make_stt, emu, proxy, result_timeout=1.0, **options) as stt_,
    ):
        stream = stt_.stream(conn_options=CONN)
        events: list[stt.SpeechEvent] = []
        collecting = asyncio.ensure_future(collect(stream, events))
        await emu.wait_for(lambda: emu.sessions and emu.sessions[0].config.get("audio"))
        stream.push_frame(frame(big))
        await asyncio.wait_for(proxy.connections[0].held.wait(), 10)
        for pcm in (*fill, near, last):
            stream.push_frame(frame(pcm))
        if commit_by == "flush":
            stream.flush()
        # the first utterance is committed on the next socket; a stream that lost the end
        # of the utterance commits nothing until the end of the input
        with contextlib.suppress(TimeoutError):
            await emu.wait_for(emu.committed_items, timeout=8.0)
        # (a stream that already failed refuses input: its error is what the test reports)
        with contextlib.suppress(RuntimeError):
            for f in frames(second_utterance):
                stream.push_frame(f)
            stream.end_input()
        await asyncio.wait_for(collecting, 20)
    items = emu.committed_items()
    assert [len(i.audio) for i in items] == [len(first_utterance), len(second_utterance)]
    assert [i.audio for i in items] == [first_utterance, second_utterance]
    assert final_texts(events) == [
        expected_transcript(first_utterance),
        expected_transcript(second_utterance),
    ]
    # the first socket stopped before the utterance's commit reached the server
    assert proxy.connections[0].audio_bytes == len(big) and proxy.connections[0].commits == 0
    assert len(emu.sessions) == 2
    assert not error_records(caplog)


# -- 2. a replay on a slow uplink is contiguous, and its loss is reported exactly ---------------


async def test_a_replay_on_a_slow_uplink_has_no_holes_and_reports_exactly_what_it_lost(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # The uplink carries 3x real time and the audio comes at 6x: a backlog builds up under real
    # TCP backpressure. The first socket drops after 4.5 s of audio; by the time the next one is
    # configured more than replay_seconds (4.2 s) is owed, so the bound lets the oldest go, and
    # the replay itself runs on the slow link while audio keeps coming.
    faults = FaultPlan(drop_after_bytes=216_000, connections={0})
    async with (
        Emulator(api_key=KEY, faults=faults) as emu,
        Proxy(emu.port, upload_rate=3 * BYTES_PER_SECOND * 4 / 3) as proxy,
        through_proxy(make_stt, emu, proxy, replay_seconds=4.2) as stt_,
    ):
        events = await drive(
            stt_.stream(conn_options=CONN), sample_pcm, flush_at=FLUSH_POINTS, realtime=6.0
        )
    by_id = {item.item_id: item for item in emu.committed_items()}
    finals = of_type(events, FINAL)
    # every final is the transcript of exactly its item's audio, and that audio is one
    # contiguous slice of what was pushed: no hole inside a replayed utterance
    spans: list[tuple[int, int]] = []
    for ev in finals:
        item = by_id[ev.request_id]
        assert ev.alternatives[0].text == expected_transcript(item.audio)
        start = sample_pcm.find(item.audio)
        assert start >= 0, f"item {item.item_id} is not a contiguous slice of the audio"
        spans.append((start, start + len(item.audio)))
    # the finals follow the audio in order, and what lies between them is what was let go
    assert spans == sorted(spans) and spans[-1][1] == len(sample_pcm)
    edges = [0] + [edge for span in spans for edge in span] + [len(sample_pcm)]
    gaps = [b - a for a, b in zip(edges[::2], edges[1::2], strict=True)]
    assert all(gap >= 0 for gap in gaps)
    missing = sum(gaps)
    assert missing > 0, "the replay bound should have bitten"
    warnings = [r for r in caplog.records if "could not be replayed" in r.getMessage()]
    assert len(warnings) == 1
    assert f"{missing / BYTES_PER_SECOND:.2f} s older than the replay bound" in (
        warnings[0].getMessage()
    )
    assert getattr(warnings[0], "lost_bytes", None) == missing
    assert len(emu.sessions) == 2 and len(proxy.connections) == 2
    assert not error_records(caplog)


# -- 3. the end of input on a half-open socket ---------------------------------------------------


@pytest.mark.parametrize(
    ("final_timeout", "result_timeout"),
    [(1.0, 1.0), (0.6, 2.0)],
    ids=["equal timers (the default relation)", "final_timeout shorter"],
)
async def test_the_last_utterance_on_a_half_open_socket_is_replayed_not_dropped(
    final_timeout: float,
    result_timeout: float,
    sample_pcm: bytes,
    caplog: pytest.LogCaptureFixture,
    make_stt: MakeSTT,
) -> None:
    # the server takes the last audio and then goes silent: it reads nothing more (the final
    # commit is never read) and sends nothing; no heartbeat, so only the timers can notice
    faults = FaultPlan(
        stall=Stall(after_bytes=len(sample_pcm), read=True, answer=True, connections={0})
    )
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stt_ = make_stt(
            emu, heartbeat=None, final_timeout=final_timeout, result_timeout=result_timeout
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        events = await drive(
            stt_.stream(conn_options=CONN), sample_pcm, flush_at=FLUSH_POINTS, realtime=20.0
        )
        elapsed = loop.time() - started
        items = emu.committed_items()
    assert_exactly_once(events, items, sample_pcm)
    assert len(of_type(events, FINAL)) == 3
    assert len(emu.sessions) == 2
    stall = min(final_timeout, result_timeout)
    assert elapsed < 0.75 + stall + 2.0  # the audio, the stall, the replay
    reconnects = [
        r.getMessage()
        for r in caplog.records
        if r.name == "livekit.plugins.openai_rt" and r.getMessage().startswith("reconnecting")
    ]
    assert len(reconnects) == 1 and f"no transcription result within {stall:g} s" in reconnects[0]
    assert not error_records(caplog)


# -- 4. stereo input -----------------------------------------------------------------------------


def _interleave(left: np.ndarray, right: np.ndarray) -> bytes:
    return np.stack([left, right], axis=1).astype(np.int16).tobytes()


async def _committed_audio(
    emu: Emulator, make_stt: MakeSTT, frames_: list[rtc.AudioFrame]
) -> bytes:
    """The audio one stream commits for ``frames_`` (end of input only: one item)."""
    stream = make_stt(emu).stream()
    events: list[stt.SpeechEvent] = []
    collecting = asyncio.ensure_future(collect(stream, events))
    for f in frames_:
        stream.push_frame(f)
    stream.end_input()
    await asyncio.wait_for(collecting, 10)
    items = emu.sessions[-1].items
    assert [ev.alternatives[0].text for ev in of_type(events, FINAL)] == [
        expected_transcript(item.audio) for item in items
    ]
    return b"".join(item.audio for item in items)


def _cut(pcm: bytes, rate: int, channels: int, frame_ms: int = 20) -> list[rtc.AudioFrame]:
    step = rate * frame_ms // 1000 * 2 * channels
    return [frame(pcm[i : i + step], rate, channels) for i in range(0, len(pcm), step)]


@pytest.mark.parametrize("rate", [24000, 48000])
async def test_stereo_is_downmixed_before_it_is_resampled(
    rate: int, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    mono = np.frombuffer(sample_pcm[: 2 * BYTES_PER_SECOND], dtype=np.int16).astype(np.int32)
    if rate == 48000:
        mono = np.repeat(mono, 2)  # the same speech at 48 kHz
    mono = mono // 2  # headroom for the second channel below
    other = np.random.default_rng(7).integers(-2000, 2000, mono.size)
    async with Emulator(api_key=KEY) as emu:
        expected = await _committed_audio(
            emu, make_stt, _cut(mono.astype(np.int16).tobytes(), rate, 1)
        )
        same = await _committed_audio(emu, make_stt, _cut(_interleave(mono, mono), rate, 2))
        # two different channels whose average is exactly the mono signal
        averaged = await _committed_audio(
            emu, make_stt, _cut(_interleave(mono - other, mono + other), rate, 2)
        )
    assert len(expected) == len(same) == len(averaged) == 2 * BYTES_PER_SECOND  # 2 s at 24 kHz
    if rate == 24000:
        assert same == expected
        assert averaged == expected
    else:
        # the framework's resampler dithers: two runs on the same mono audio differ by up to
        # 2 LSB, so 48 kHz input is compared sample by sample within that
        ref = np.frombuffer(expected, dtype=np.int16).astype(np.int32)
        for got in (same, averaged):
            assert np.abs(np.frombuffer(got, dtype=np.int16) - ref).max() <= 2


# -- deltas for item ids the stream never committed ----------------------------------------------


@pytest.mark.parametrize(
    "model", ["gpt-4o-mini-transcribe", "gpt-realtime-whisper"], ids=["after commit", "streaming"]
)
async def test_deltas_for_items_the_stream_never_committed_change_nothing(
    model: str, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # after every item's completion the emulator streams a delta for an item id it never
    # commits (a phantom)
    async with Emulator(api_key=KEY, faults=FaultPlan(stray_deltas=True)) as emu:
        stt_ = make_stt(emu, model=model)
        stream = stt_.stream(conn_options=CONN)
        held: list[int] = []
        events: list[stt.SpeechEvent] = []

        async def watch() -> None:
            async for ev in stream:
                events.append(ev)
                if model == "gpt-realtime-whisper":
                    # interim texts held beyond the items in flight (the server answers 0.3 s
                    # after each commit, so several items may be in flight at once)
                    session = stream.session
                    held.append(session.results.held_texts - len(session.ledger.in_flight))

        watching = asyncio.ensure_future(watch())
        flush_at = FLUSH_POINTS if model == "gpt-realtime-whisper" else ()
        await feed(stream, sample_pcm, flush_at=flush_at)
        await asyncio.wait_for(watching, 20)
        items = emu.committed_items()
        phantoms = {
            e.event["item_id"]
            for e in emu.events
            if e.direction == "out" and e.event["type"].endswith("transcription.delta")
        } - {item.item_id for item in items}
    assert len(phantoms) == len(items) >= 3
    assert_exactly_once(events, items, sample_pcm, every_item=True)
    stray = [ev for ev in of_type(events, INTERIM) if ev.request_id in phantoms]
    if model == "gpt-4o-mini-transcribe":
        # its deltas come after the commit that names their item: a phantom is never shown
        assert not stray
    else:
        # a streaming model's deltas come before the commit that names their item, so the
        # stream cannot tell the open item from a phantom (docs/protocol.md §4.3): the phantom
        # holds the one open slot until the real item's next delta replaces it. The interim
        # state stays the items in flight and that one slot, whatever arrives.
        assert len(stray) <= len(phantoms)
        assert held and max(held) <= 1
    assert not error_records(caplog)
