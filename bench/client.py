"""One plugin's benchmark client: a pre-imported "zygote" that forks a fresh process per run.

``python bench/client.py --plugin ours|incumbent`` imports that plugin (and nothing of the
other; of the bench, only ``stats.py``, which is standard library only), prints ``ready``, then reads one JSON run spec per stdin line. For each it forks: the
child opens N streams against the emulator, measures, writes its result JSON to ``spec["out"]``
and exits; the parent prints one JSON status line. A fork keeps the ~4 s of imports out of
every run while each run still starts from a clean process (no event loop, no allocations of an
earlier run, its own CPU and peak-RSS counters).

What a run measures (``run_job``): RSS before and after opening N idle connected streams; then,
over the streaming phase only (first frame pushed to last final received), the process CPU time
(all threads, so a VAD's executor threads count), the peak RSS, the bytes on each websocket
(``TCP_INFO``), the feeder's lag behind the audio clock, and every speech event with its
``time.monotonic()`` receive time, for the driver to match against the emulator's log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import cProfile
import gc
import json
import os
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback
import tracemalloc
from dataclasses import dataclass, field
from typing import Any, cast

import aiohttp
from stats import maximum, percentile

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    LanguageCode,
    inference,
    stt,
    vad as vad_mod,
)

Feedable = stt.RecognizeStream | vad_mod.VADStream
"""What the feeders push frames into: a plugin's stream, or a bare VAD stream (VAD alone)."""

STREAM_INDEX: contextvars.ContextVar[int] = contextvars.ContextVar("bench_stream", default=-1)
"""Set around ``stt.stream()``: the stream's tasks inherit it, so its VAD stream knows whose it is."""

TICK = 0.010
"""Real-time feeder resolution: streams are spread over phases of this size."""

QUIET = 0.5
"""After its last end of speech, a stream whose commit count is unknown (a VAD in fast mode)
is done once it got no event for this long."""

TRANSLATING = ("translate", "interpret")
"""Configurations of ours that translate (``TranslationSTT``, flush-driven like ours/flush):
``translate`` reads the text only (the STT of an agent), ``interpret`` also reads every frame of
the translated speech (the live interpreter)."""

TARGET_LANGUAGE = "es"
"""What the translation streams translate into (``analysis.TRANSLATION_LANGUAGE``, which checks
the emulator's tokens)."""

QUIET_NOVAD = 1.5
"""The incumbent with ``vad=None`` never commits and sends an INTERIM at most every 0.5 s:
it is done once no INTERIM came for this long (its deltas have stopped)."""

FLUSH_CONFIGS = ("session", "pcmu", "cold", "warm")
"""Configurations of ours that commit on ``flush()`` (the AgentSession configuration):
``pcmu`` sends G.711 instead of 24 kHz PCM16; ``cold`` and ``warm`` open each stream only when
its audio starts, ``warm`` after ``STT.prewarm()`` (one STT per stream, as one per session)."""

LATE_OPEN = ("cold", "warm")
"""Configurations whose streams open when their audio starts (what a first turn sees)."""


# ----------------------------------------------------------------------------------------------
# per-stream record


@dataclass
class StreamRecord:
    """What one stream saw, with ``time.monotonic()`` stamps."""

    index: int
    expected: int
    t0: float = 0.0
    fed: bool = False
    done: bool = False
    last_event: float = 0.0
    eos: list[float] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)
    interims: list[tuple[float, str, int]] = field(default_factory=list)
    preflights: list[tuple[float, str, int]] = field(default_factory=list)
    finals: list[tuple[float, str, str]] = field(default_factory=list)
    error: str | None = None
    speech_bytes: int = 0
    eos_signal: asyncio.Event = field(default_factory=asyncio.Event)
    started: float | None = None  # the stream was opened (late-open configurations)
    ready: float | None = None  # its session went live (late-open configurations)
    first_audio: float | None = None  # its first frame was pushed

    def to_json(self) -> dict[str, Any]:
        """Compact form for the result file."""
        return {
            "t0": self.t0,
            "eos": self.eos,
            "commits": self.commits,
            "interims": self.interims,
            "preflights": self.preflights,
            "finals": self.finals,
            "error": self.error,
            "done": self.done,
            "speech_bytes": self.speech_bytes,
            "started": self.started,
            "ready": self.ready,
            "first_audio": self.first_audio,
        }


class Tracker:
    """Knows when every stream is done, so the measured window ends right there."""

    def __init__(
        self,
        records: list[StreamRecord],
        quiet_rule: bool,
        segments: int,
        count_eos: bool,
        quiet: float = QUIET,
    ) -> None:
        self.records = records
        self.quiet_rule = quiet_rule
        self.quiet = quiet
        self.segments = segments
        self.count_eos = count_eos
        self.remaining = len(records)
        self.all_done = asyncio.Event()

    def check(self, rec: StreamRecord, now: float) -> None:
        """Mark ``rec`` done if it is."""
        if rec.done or not rec.fed:
            return
        progress = len(rec.eos) if self.count_eos else len(rec.finals)
        done = rec.error is not None or progress >= rec.expected
        if not done and self.quiet_rule:
            heard = rec.last_event > 0.0  # something came back: the stream is working
            done = heard and len(rec.eos) >= self.segments and now - rec.last_event > self.quiet
        if done:
            rec.done = True
            self.remaining -= 1
            if self.remaining == 0:
                self.all_done.set()

    async def watch(self, deadline: float) -> None:
        """The timers: quiet streams and the run's deadline (rarely, when no quiet rule: the
        harness's own wake-ups count in the CPU figure)."""
        period = 0.1 if self.quiet_rule else 0.5
        while not self.all_done.is_set():
            await asyncio.sleep(period)
            now = time.monotonic()
            for rec in self.records:
                self.check(rec, now)
            if now > deadline:
                self.all_done.set()


# ----------------------------------------------------------------------------------------------
# a VAD that stamps its END_OF_SPEECH events as the plugin receives them


class _TimedVADStream:
    """Delegates to a real VAD stream; stamps each END_OF_SPEECH the plugin iterates to."""

    def __init__(self, inner: vad_mod.VADStream, sink: StreamRecord | None) -> None:
        self._inner = inner
        self._sink = sink

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        self._inner.push_frame(frame)

    def flush(self) -> None:
        self._inner.flush()

    def end_input(self) -> None:
        self._inner.end_input()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _TimedVADStream:
        return self

    async def __anext__(self) -> vad_mod.VADEvent:
        ev = await self._inner.__anext__()
        if ev.type is vad_mod.VADEventType.END_OF_SPEECH and self._sink is not None:
            self._sink.eos.append(time.monotonic())
            self._sink.eos_signal.set()
        return ev


class TimedVAD(vad_mod.VAD):
    """The same ``inference.VAD`` for both plugins, with end-of-speech time stamps."""

    def __init__(self, inner: vad_mod.VAD, sinks: list[StreamRecord]) -> None:
        super().__init__(capabilities=inner.capabilities)
        self._inner = inner
        self._sinks = sinks

    @property
    def model(self) -> str:
        return self._inner.model

    @property
    def provider(self) -> str:
        return self._inner.provider

    def stream(self) -> vad_mod.VADStream:
        i = STREAM_INDEX.get()
        sink = self._sinks[i] if 0 <= i < len(self._sinks) else None
        return cast(vad_mod.VADStream, _TimedVADStream(self._inner.stream(), sink))


def instrument_commits(records: list[StreamRecord]) -> None:
    """Stamp each ``input_audio_buffer.commit`` once aiohttp has written it to the socket.

    The incumbent sends through ``ClientWebSocketResponse.send_str`` (via ``send_json``), ours
    through ``send_frame`` with a pre-encoded payload; neither calls the other, so wrapping both
    stamps every commit once. Both run from tasks created inside the stream, which inherit
    ``STREAM_INDEX``. The wrappers cost both plugins the same (~1 us per message sent).
    """
    original_str = aiohttp.ClientWebSocketResponse.send_str
    original_frame = aiohttp.ClientWebSocketResponse.send_frame

    def stamp(data: str | bytes) -> None:
        marker = (
            "input_audio_buffer.commit" if isinstance(data, str) else b"input_audio_buffer.commit"
        )
        if len(data) < 200 and marker in data:  # type: ignore[operator]
            i = STREAM_INDEX.get()
            if 0 <= i < len(records):
                records[i].commits.append(time.monotonic())

    async def send_str(
        self: aiohttp.ClientWebSocketResponse, data: str, compress: int | None = None
    ) -> None:
        await original_str(self, data, compress)
        stamp(data)

    async def send_frame(
        self: aiohttp.ClientWebSocketResponse,
        message: bytes,
        opcode: aiohttp.WSMsgType,
        compress: int | None = None,
    ) -> None:
        await original_frame(self, message, opcode, compress)
        stamp(message)

    aiohttp.ClientWebSocketResponse.send_str = send_str  # type: ignore[method-assign,assignment]
    aiohttp.ClientWebSocketResponse.send_frame = send_frame  # type: ignore[method-assign,assignment]


# ----------------------------------------------------------------------------------------------
# process measurements


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss() -> int:
    """Current resident set size, bytes."""
    return _status_kib("VmRSS") * 1024


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS counter (VmHWM) from the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss() -> int:
    """Peak resident set size since :func:`reset_peak_rss`, bytes."""
    return _status_kib("VmHWM") * 1024


_TCPI_BYTES_ACKED = 120  # struct tcp_info: u64 tcpi_bytes_acked, then u64 tcpi_bytes_received


def wire_bytes(port: int) -> tuple[int, int, int]:
    """(bytes sent and acknowledged, bytes received, sockets) over this process's TCP
    connections to ``port``, from the kernel's ``TCP_INFO``: websocket frames as sent,
    handshake included."""
    sent = received = n = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        try:
            if sock.type != socket.SOCK_STREAM or sock.family not in (
                socket.AF_INET,
                socket.AF_INET6,
            ):
                continue
            if sock.getpeername()[1] != port:
                continue
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
            acked, recv = struct.unpack_from("QQ", info, _TCPI_BYTES_ACKED)
            sent += acked
            received += recv
            n += 1
        except OSError:
            continue
        finally:
            sock.close()
    return sent, received, n


class GcWatch:
    """Collections and their pauses during the window (gc.callbacks; cheap)."""

    def __init__(self) -> None:
        self.start = 0.0
        self.pauses: list[list[float]] = [[], [], []]

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.start = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self.start)

    def summary(self) -> dict[str, Any]:
        """Count, total and longest pause per generation."""
        return {f"gen{g}": [len(p), sum(p), max(p, default=0.0)] for g, p in enumerate(self.pauses)}


# ----------------------------------------------------------------------------------------------
# building the plugin under test


class NullSTT(stt.STT):
    """The harness alone: a stream that only drains its input (the framework's
    ``push_frame`` and channel, the feeder, the event loop), then emits one empty FINAL."""

    def __init__(self, n_frames: int) -> None:
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True, interim_results=False, offline_recognize=False
            )
        )
        self._n_frames = n_frames

    async def _recognize_impl(self, *args: Any, **kwargs: Any) -> stt.SpeechEvent:
        raise NotImplementedError

    def stream(self, **kwargs: Any) -> stt.RecognizeStream:
        return _NullStream(self, self._n_frames)


class _NullStream(stt.RecognizeStream):
    def __init__(self, owner: NullSTT, n_frames: int) -> None:
        super().__init__(stt=owner, conn_options=DEFAULT_API_CONNECT_OPTIONS, sample_rate=24000)
        self._n_frames = n_frames

    async def _run(self) -> None:
        seen = 0
        async for item in self._input_ch:
            if isinstance(item, rtc.AudioFrame):
                seen += 1
                if seen == self._n_frames:
                    self._event_ch.send_nowait(
                        stt.SpeechEvent(
                            type=stt.SpeechEventType.FINAL_TRANSCRIPT,
                            alternatives=[stt.SpeechData(language=LanguageCode(""), text="")],
                        )
                    )


def make_stt(
    plugin: str, config: str, base_url: str, http: aiohttp.ClientSession, sinks: list[StreamRecord]
) -> stt.STT:
    """The STT under test, in the given configuration (``novad``: the incumbent with
    ``vad=None``, which then never commits: its transport cost alone)."""
    vad: vad_mod.VAD | None = None
    if config == "vad" or (plugin == "incumbent" and config != "novad"):
        # the incumbent builds exactly this one by default for gpt-realtime-whisper
        vad = TimedVAD(inference.VAD(model="silero"), sinks)
    if plugin == "ours" and config in TRANSLATING:
        from livekit.plugins import openai_rt

        return openai_rt.TranslationSTT(
            target_language=TARGET_LANGUAGE,
            api_key="bench-key",
            base_url=base_url,
            http_session=http,
        )
    if plugin == "ours":
        from livekit.plugins import openai_rt

        return openai_rt.STT(
            api_key="bench-key",
            base_url=base_url,
            vad=vad,
            http_session=http,
            audio_format="pcmu" if config == "pcmu" else "pcm16",
        )
    from livekit.plugins import openai as lk_openai

    inc = lk_openai.STT(
        model="gpt-realtime-whisper",
        use_realtime=True,
        api_key="bench-key",
        base_url=base_url,
        vad=vad,
    )
    # no http_session parameter (its weakness W13); its default, the job context's session, has
    # limit_per_host=50, which would cap a one-process test at 50 sockets: give it the same
    # unlimited session as ours
    inc._session = http
    return inc


# ----------------------------------------------------------------------------------------------
# the run


async def _wait_configured(http: aiohttp.ClientSession, control: str, n: int) -> None:
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        async with http.get(f"{control}/stats") as resp:
            stats = await resp.json()
        if stats["configured"] >= n:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"only {stats['configured']} of {n} sessions configured after 60 s")


async def _wait_live(streams: list[Feedable]) -> None:
    """Translation streams: wait until every session is configured (the emulator's ``/stats``
    counts transcription sessions)."""
    from livekit.plugins.openai_rt import TranslationStream
    from livekit.plugins.openai_rt.session import State

    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        live = sum(
            isinstance(s, TranslationStream) and s.session.state is State.LIVE for s in streams
        )
        if live == len(streams):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"only {live} of {len(streams)} translation sessions configured after 60 s")


async def _listen(stream: Feedable, rec: StreamRecord) -> None:
    """The live interpreter's side: read every frame of the translated speech."""
    from livekit.plugins.openai_rt import TranslationStream

    assert isinstance(stream, TranslationStream)
    async for frame in stream.translated_audio():
        rec.speech_bytes += frame.data.nbytes


async def _consume(stream: stt.RecognizeStream, rec: StreamRecord, tracker: Tracker) -> None:
    interim = stt.SpeechEventType.INTERIM_TRANSCRIPT
    preflight = stt.SpeechEventType.PREFLIGHT_TRANSCRIPT
    final = stt.SpeechEventType.FINAL_TRANSCRIPT
    try:
        async for ev in stream:
            t = time.monotonic()
            rec.last_event = t
            if ev.type is interim:
                rec.interims.append((t, ev.request_id, len(ev.alternatives[0].text)))
            elif ev.type is preflight:
                rec.preflights.append((t, ev.request_id, len(ev.alternatives[0].text)))
            elif ev.type is final:
                rec.finals.append((t, ev.request_id, ev.alternatives[0].text))
                tracker.check(rec, t)
    except Exception as e:  # noqa: BLE001 - recorded, the driver reports it
        rec.error = f"{type(e).__name__}: {e}"
        rec.fed = True
        tracker.check(rec, time.monotonic())


async def _consume_vad(stream: vad_mod.VADStream, rec: StreamRecord, tracker: Tracker) -> None:
    eos = vad_mod.VADEventType.END_OF_SPEECH
    try:
        async for ev in stream:
            if ev.type is eos:
                t = time.monotonic()
                rec.last_event = t
                rec.eos.append(t)
                tracker.check(rec, t)
    except Exception as e:  # noqa: BLE001 - recorded, the driver reports it
        rec.error = f"{type(e).__name__}: {e}"
        rec.fed = True
        tracker.check(rec, time.monotonic())


def _push(stream: Feedable, rec: StreamRecord, frame: rtc.AudioFrame, flush: bool) -> bool:
    """Push a frame (and flush after it); False if the stream already ended (an error)."""
    try:
        stream.push_frame(frame)
        if rec.first_audio is None:
            rec.first_audio = time.monotonic()
        if flush:
            rec.eos.append(time.monotonic())
            stream.flush()
        return True
    except RuntimeError as e:  # "... is closed": the plugin ended the stream on an error
        rec.error = rec.error or f"{type(e).__name__}: {e}"
        rec.fed = True
        return False


async def _feed_realtime(
    streams: list[Feedable],
    records: list[StreamRecord],
    frames: list[rtc.AudioFrame],
    flush_after: set[int],
    frame_s: float,
    stagger: float,
    tracker: Tracker,
) -> list[float]:
    """Push each stream's frame k at its start + (k+1) frames, like a microphone; streams are
    spread over ``stagger`` seconds in ``TICK`` phases. Returns each tick's lag (s)."""
    n = len(streams)
    slots = max(1, round(frame_s / TICK))
    offsets = [int(i * stagger / TICK / n) for i in range(n)]
    groups: dict[int, list[int]] = {}
    for i, off in enumerate(offsets):
        groups.setdefault(off % slots, []).append(i)
    phases = sorted(groups)
    n_frames = len(frames)
    last_tick = max(offsets) + n_frames * slots
    start = time.monotonic()
    for i, off in enumerate(offsets):
        records[i].t0 = start + off * TICK
    lags: list[float] = []
    base = 0
    while base <= last_tick:
        for phase in phases:
            tick = base + phase
            target = start + tick * TICK
            now = time.monotonic()
            if target > now:
                await asyncio.sleep(target - now)
                now = time.monotonic()
            lags.append(now - target)
            for i in groups[phase]:
                k = (tick - offsets[i]) // slots - 1
                if k < 0 or k >= n_frames or records[i].fed:
                    continue
                if not _push(streams[i], records[i], frames[k], k in flush_after):
                    continue
                if k == n_frames - 1:
                    records[i].fed = True
                    tracker.check(records[i], now)
        base += slots
    return lags


async def _feed_fast(
    streams: list[Feedable],
    records: list[StreamRecord],
    frames: list[rtc.AudioFrame],
    flush_after: set[int],
    vad_stops: list[int],
    tracker: Tracker,
) -> None:
    """No clock: push as fast as the plugin takes it.

    Flush-driven: everything at once, flushes in place (the queues absorb it). With a VAD:
    each utterance at once up to just past where the VAD ends it, then wait for that end of
    speech before the next; otherwise the plugin would have sent later utterances' audio
    before the VAD got to the first end of speech, and one commit would take it all.
    """

    async def one(stream: Feedable, rec: StreamRecord) -> None:
        rec.t0 = time.monotonic()
        pos = 0
        for stop in [*vad_stops, len(frames) - 1]:
            for k in range(pos, min(stop, len(frames) - 1) + 1):
                if not _push(stream, rec, frames[k], k in flush_after):
                    return
            pos = stop + 1
            if stop < len(frames) - 1 and len(rec.eos) < len(vad_stops):
                want = vad_stops.index(stop) + 1
                while len(rec.eos) < want and rec.error is None:
                    rec.eos_signal.clear()
                    try:
                        await asyncio.wait_for(rec.eos_signal.wait(), timeout=60.0)
                    except asyncio.TimeoutError:
                        break
        rec.fed = True
        tracker.check(rec, time.monotonic())

    await asyncio.gather(*(one(s, r) for s, r in zip(streams, records, strict=True)))


async def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration at N streams and return its measurements."""
    n: int = spec["n"]
    plugin: str = spec["plugin"]
    config: str = spec["config"]
    mode: str = spec["mode"]
    with open(spec["pcm_path"], "rb") as src:
        pcm = src.read()
    frame_bytes = 48 * spec["frame_ms"]
    frame_s = spec["frame_ms"] / 1000
    frames = [
        rtc.AudioFrame(pcm[o : o + frame_bytes], 24000, 1, frame_bytes // 2)
        for o in range(0, len(pcm) - frame_bytes + 1, frame_bytes)
    ]
    audio_s = len(frames) * frame_s
    flushing = plugin == "ours" and config in (*FLUSH_CONFIGS, *TRANSLATING)
    flush_after = set(spec["flush_frames"]) if flushing else set()
    expected = len(spec["flush_frames"]) if flushing else spec["segments"]
    if plugin == "null":
        expected = 1
    elif config == "novad":
        expected = 1 << 30  # never commits, so never a final: done once quiet

    result: dict[str, Any] = {"spec": spec, "audio_seconds": audio_s, "ok": False}
    connector = aiohttp.TCPConnector(limit=0)
    http = aiohttp.ClientSession(connector=connector)
    records = [StreamRecord(index=i, expected=expected) for i in range(n)]
    gc.collect()
    if spec.get("tracemalloc"):
        tracemalloc.start()
    result["rss_base"] = rss()
    vad_alone = plugin == "vad"
    tracker = Tracker(
        records,
        quiet_rule=config == "novad" or (mode == "fast" and config == "vad" and not vad_alone),
        segments=0 if config == "novad" else expected,
        count_eos=vad_alone,
        quiet=QUIET_NOVAD if config == "novad" else QUIET,
    )
    streams: list[Feedable] = []
    consumers: list[asyncio.Task[None]] = []
    late: list[stt.STT] = []  # the STTs of a late-open configuration, one per stream
    t_open = time.monotonic()
    model: stt.STT | vad_mod.VAD
    if vad_alone:
        # the VAD's own cost, fed exactly like the plugins feed it: no STT, no socket
        model = inference.VAD(model="silero")
        for i in range(n):
            vstream = model.stream()
            streams.append(vstream)
            consumers.append(asyncio.create_task(_consume_vad(vstream, records[i], tracker)))
    elif plugin == "null":
        model = NullSTT(len(frames))
        for i in range(n):
            nstream = model.stream()
            streams.append(nstream)
            consumers.append(asyncio.create_task(_consume(nstream, records[i], tracker)))
    elif config in LATE_OPEN:
        # one STT per stream (as one per AgentSession); the streams open at the run's start
        instrument_commits(records)
        late += [make_stt(plugin, config, spec["base_url"], http, records) for _ in range(n)]
        model = late[0]
        if config == "warm":
            for one_stt in late:
                one_stt.prewarm()
            await _wait_configured(http, spec["control_url"], n)
    else:
        instrument_commits(records)
        model = make_stt(plugin, config, spec["base_url"], http, records)
        for i in range(n):
            token = STREAM_INDEX.set(i)
            try:
                stream = model.stream()
            finally:
                STREAM_INDEX.reset(token)
            streams.append(stream)
            consumers.append(asyncio.create_task(_consume(stream, records[i], tracker)))
            if config == "interpret":
                consumers.append(asyncio.create_task(_listen(stream, records[i])))
        if config in TRANSLATING:
            await _wait_live(streams)
        else:
            await _wait_configured(http, spec["control_url"], n)
    result["connect_seconds"] = time.monotonic() - t_open
    await asyncio.sleep(0.3)  # let the last session.updated be read everywhere
    gc.collect()
    result["rss_idle"] = rss()
    if spec.get("tracemalloc"):
        result["traced_idle"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()

    if mode != "idle":
        profiler = cProfile.Profile() if spec.get("profile") else None
        result["peak_reset"] = reset_peak_rss()
        rss_start = rss()
        # real time: a stream whose last final is this late is long past "behind" (1 s)
        deadline_extra = 4.0 if mode == "realtime" else 120.0
        gc_watch = GcWatch()
        gc.callbacks.append(gc_watch)
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        cpu0 = time.process_time()
        t0 = time.monotonic()
        if profiler is not None:
            profiler.enable()
        watcher = asyncio.create_task(
            tracker.watch(t0 + audio_s + spec["stagger"] + deadline_extra)
        )
        if config in LATE_OPEN:
            for i, one_stt in enumerate(late):
                token = STREAM_INDEX.set(i)
                try:
                    records[i].started = time.monotonic()
                    stream = one_stt.stream()
                finally:
                    STREAM_INDEX.reset(token)
                streams.append(stream)
                consumers.append(asyncio.create_task(_consume(stream, records[i], tracker)))
        lags: list[float] = []
        if mode == "realtime":
            lags = await _feed_realtime(
                streams, records, frames, flush_after, frame_s, spec["stagger"], tracker
            )
        else:
            vad_stops = spec["vad_stop_frames"] if config == "vad" and not vad_alone else []
            await _feed_fast(streams, records, frames, flush_after, vad_stops, tracker)
        await tracker.all_done.wait()
        t1 = time.monotonic()
        cpu1 = time.process_time()
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        gc.callbacks.remove(gc_watch)
        result["gc"] = gc_watch.summary()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(spec["profile"])
        watcher.cancel()
        result["cpu"] = cpu1 - cpu0
        result["wall"] = t1 - t0
        result["t_end"] = t1
        result["user"] = ru1.ru_utime - ru0.ru_utime
        result["sys"] = ru1.ru_stime - ru0.ru_stime
        result["minflt"] = ru1.ru_minflt - ru0.ru_minflt
        result["ctxsw"] = ru1.ru_nvcsw - ru0.ru_nvcsw + ru1.ru_nivcsw - ru0.ru_nivcsw
        result["rss_start"] = rss_start
        result["peak_rss"] = peak_rss()
        result["rss_end"] = rss()
        result["timed_out"] = tracker.remaining > 0
        if config in LATE_OPEN:
            for rec, stream in zip(records, streams, strict=True):
                session = getattr(stream, "session", None)  # ours: the sans-I/O core
                rec.ready = session.configured_at if session is not None else None
        result["feed_lag_max"] = maximum(lags, empty=0.0)
        result["feed_lag_p95"] = percentile(lags, 95, empty=0.0)
        local = plugin in ("vad", "null")
        sent, received, socks = (0, 0, 0) if local else wire_bytes(spec["emu_port"])
        result["wire"] = {"sent": sent, "received": received, "sockets": socks}
        result["streams"] = [r.to_json() for r in records]
    result["threads"] = threading.active_count()
    result["ok"] = True
    with open(spec["out"], "w") as f:
        json.dump(result, f)

    # teardown, not measured; the result is already written in case it hangs
    async def close() -> None:
        await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)
        for c in consumers:
            c.cancel()
        if config in LATE_OPEN:
            await asyncio.gather(*(one.aclose() for one in late), return_exceptions=True)
        elif isinstance(model, stt.STT):
            await model.aclose()
        await http.close()

    try:
        await asyncio.wait_for(close(), timeout=10.0)
    except (asyncio.TimeoutError, Exception):  # noqa: BLE001
        pass
    return result


async def calibrate(spec: dict[str, Any]) -> dict[str, Any]:
    """Where ``inference.VAD`` ends speech in the recording (its segment count is what a VAD
    configuration should commit)."""
    with open(spec["pcm_path"], "rb") as src:
        pcm = src.read()
    frame_bytes = 48 * spec["frame_ms"]
    stream = inference.VAD(model="silero").stream()
    eos: list[float] = []

    async def consume() -> None:
        async for ev in stream:
            if ev.type is vad_mod.VADEventType.END_OF_SPEECH:
                eos.append(ev.timestamp)

    task = asyncio.create_task(consume())
    for o in range(0, len(pcm) - frame_bytes + 1, frame_bytes):
        stream.push_frame(rtc.AudioFrame(pcm[o : o + frame_bytes], 24000, 1, frame_bytes // 2))
    stream.end_input()
    await task
    await stream.aclose()
    result = {"ok": True, "eos": eos}
    with open(spec["out"], "w") as f:
        json.dump(result, f)
    return result


def _child(spec: dict[str, Any]) -> None:
    try:
        if spec.get("calibrate"):
            asyncio.run(calibrate(spec))
        else:
            asyncio.run(run_job(spec))
        code = 0
    except BaseException:  # noqa: BLE001 - reported through the result file
        with open(spec["out"], "w") as f:
            json.dump({"ok": False, "spec": spec, "error": traceback.format_exc()}, f)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main() -> None:
    """The zygote loop: import the plugin, then fork one child per spec line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plugin", choices=("ours", "incumbent", "base"), required=True)
    parser.add_argument("--run", default=None, help="run this spec file in this process, no fork")
    args = parser.parse_args()
    if args.run:
        with open(args.run) as f:
            _child(json.load(f))
    if args.plugin == "ours":
        from livekit.plugins import openai_rt  # noqa: F401
    elif args.plugin == "incumbent":
        from livekit.plugins import openai as lk_openai  # noqa: F401
    gc.collect()
    gc.freeze()  # keep the imported objects out of the children's collections
    tasks = len(os.listdir("/proc/self/task"))
    print(json.dumps({"ready": True, "threads": tasks}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        if spec.get("spawn"):
            # a fresh interpreter instead of a fork (slower: imports again; for checking that
            # forking changes no figure)
            path = spec["out"] + ".spec"
            with open(path, "w") as f:
                json.dump(spec, f)
            argv = [sys.executable, __file__, "--plugin", args.plugin, "--run", path]
            code = subprocess.run(argv, stdin=subprocess.DEVNULL).returncode
            print(json.dumps({"status": code}), flush=True)
            continue
        pid = os.fork()
        if pid == 0:
            _child(spec)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"status": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
