"""Failures are loud, typed and bounded: a server that never finishes the set-up, exhausted
retries, an option change during the set-up, binary frames and oversized server text, and the
API key out of every exception the stream raises.

Each test drives ``openai_rt.STT`` through its public API against the emulator over loopback,
except the audit of server-provided text, which feeds hostile events to the session core.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import types
from collections.abc import Iterator
from typing import Any

import pytest

from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
)
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import (
    Emulator,
    FaultPlan,
    RefuseHandshake,
    SendError,
)
from livekit.plugins.openai_rt.testing.faults import DelaySessionUpdated, SendBinary
from tests.conftest import (
    FINAL,
    FLUSH_POINTS,
    KEY,
    MakeSTT,
    assert_exactly_once,
    drive,
    error_records,
    of_type,
)

LONGEST_LOG_LINE = 600
"""No log line (or exception message) may be longer than this, whatever the server sends."""


def _closed_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plugin_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "livekit.plugins.openai_rt" and r.levelno == level
    ]


# -- 5. a server that never finishes the set-up ---------------------------------------------------


async def test_a_server_that_answers_pings_but_never_configures_the_session_is_given_up_on(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # session.updated never comes; pings are answered, every 0.2 s, well inside the 1 s connect
    # timeout (a receive timeout that restarts on every pong would never expire)
    timeout, max_retry = 1.0, 2
    faults = FaultPlan(delay_session_updated=DelaySessionUpdated(seconds=None))
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stt_ = make_stt(emu, heartbeat=0.2)
        conn = APIConnectOptions(max_retry=max_retry, retry_interval=0.2, timeout=timeout)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(APIError) as info:
            await asyncio.wait_for(
                drive(stt_.stream(conn_options=conn), sample_pcm[:96000], realtime=1.0), 10.0
            )
        elapsed = loop.time() - started
    assert isinstance(info.value, APITimeoutError)
    assert info.value.retryable is False
    assert "no session.updated within 1 s" in info.value.message
    assert emu.handshakes == max_retry + 1
    # each attempt waited out its deadline, and no more: the backoffs add at most 0.3 s
    assert (max_retry + 1) * timeout <= elapsed < (max_retry + 1) * timeout + 1.5
    errors = error_records(caplog)
    assert len(errors) == 1 and "no session.updated" in errors[0].getMessage()


# -- 6. exhausted retries -----------------------------------------------------------------------


async def test_a_server_refusing_forever_gets_max_retry_plus_one_attempts_then_one_error(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    max_retry = 4
    faults = FaultPlan(refuse_handshake=RefuseHandshake(503, times=1000))
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stt_ = make_stt(emu)
        conn = APIConnectOptions(max_retry=max_retry, retry_interval=0.2, timeout=3.0)
        with pytest.raises(APIStatusError) as info:
            await drive(stt_.stream(conn_options=conn), sample_pcm[:48000])
        times = list(emu.handshake_times)
    assert info.value.status_code == 503
    assert info.value.retryable is False
    assert len(times) == max_retry + 1
    # exponential backoff from retry_interval with jitter (x0.5-1): a quick first retry, then
    # 0.2 s, 0.4 s, 0.8 s at most
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    bounds = [(0.05, 0.1), (0.1, 0.2), (0.2, 0.4), (0.4, 0.8)]
    for gap, (low, high) in zip(gaps, bounds, strict=True):
        assert low <= gap <= high + 0.1, (gaps, bounds)
    errors = error_records(caplog)
    assert len(errors) == 1
    assert "HTTP 503" in errors[0].getMessage()
    assert f"{max_retry + 1} failed attempt" in errors[0].getMessage()


async def test_a_refused_tcp_connection_is_retried_then_one_non_retryable_error(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    max_retry = 2
    stt_ = openai_rt.STT(api_key=KEY, base_url=f"http://127.0.0.1:{_closed_port()}/v1")
    try:
        conn = APIConnectOptions(max_retry=max_retry, retry_interval=0.1, timeout=3.0)
        with pytest.raises(APIConnectionError) as info:
            await drive(stt_.stream(conn_options=conn), sample_pcm[:48000])
    finally:
        await stt_.aclose()
    assert info.value.retryable is False
    errors = error_records(caplog)
    assert len(errors) == 1
    assert "cannot connect" in errors[0].getMessage()
    assert f"{max_retry + 1} failed attempt" in errors[0].getMessage()
    assert len(_plugin_lines(caplog, logging.WARNING)) == max_retry  # one per retry


async def test_retry_after_is_honoured(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    faults = FaultPlan(refuse_handshake=RefuseHandshake(429, times=1, headers={"Retry-After": "1"}))
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stt_ = make_stt(emu)
        events = await drive(stt_.stream(), sample_pcm[:96000], flush_at=(1.0,))
        first, second = emu.handshake_times
        assert_exactly_once(events, emu.committed_items(), sample_pcm[:96000], every_item=True)
    assert second - first >= 1.0
    assert not error_records(caplog)


async def test_a_long_retry_after_is_capped(
    sample_pcm: bytes, make_stt: MakeSTT, monkeypatch: pytest.MonkeyPatch
) -> None:
    from livekit.plugins.openai_rt import connection

    monkeypatch.setattr(connection, "RETRY_AFTER_MAX_SECONDS", 0.5)
    faults = FaultPlan(
        refuse_handshake=RefuseHandshake(503, times=1, headers={"Retry-After": "3600"})
    )
    async with Emulator(api_key=KEY, faults=faults) as emu:
        await drive(make_stt(emu).stream(), sample_pcm[:48000])
        first, second = emu.handshake_times
    assert 0.5 <= second - first < 1.5


# -- 7. an option change while the session is being set up --------------------------------------


async def test_a_language_change_during_set_up_reaches_the_server(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    faults = FaultPlan(delay_session_updated=DelaySessionUpdated(seconds=1.0))
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stt_ = make_stt(emu)
        stream = stt_.stream()
        driving = asyncio.ensure_future(drive(stream, sample_pcm, flush_at=FLUSH_POINTS))

        def configuring() -> bool:
            seen = [(e.direction, e.event["type"]) for e in emu.events]
            return ("in", "session.update") in seen and ("out", "session.updated") not in seen

        await emu.wait_for(configuring)
        stream.update_options(language="fr")
        assert configuring(), "the change must land while session.updated is held back"
        events = await driving
        items = emu.committed_items()
        session = emu.sessions[0]
    assert len(emu.sessions) == 1
    assert session.config["audio"]["input"]["transcription"]["language"] == "fr"
    assert_exactly_once(events, items, sample_pcm, every_item=True)
    assert {ev.alternatives[0].language for ev in of_type(events, FINAL)} == {"fr"}


# -- 8. binary frames and oversized server text -------------------------------------------------


def _assert_bounded(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        line = record.getMessage()
        assert len(line) <= LONGEST_LOG_LINE, f"{len(line)}-char log line: {line[:200]}"
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_RECORD_FIELDS}
        assert len(repr(extras)) <= LONGEST_LOG_LINE, f"oversized extras: {repr(extras)[:200]}"


_STANDARD_RECORD_FIELDS = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


async def test_a_2_mb_binary_frame_is_skipped_and_never_logged(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    faults = FaultPlan(send_binary=SendBinary(size=2_000_000, after_bytes=100_000))
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stream = make_stt(emu).stream()
        events = await drive(stream, sample_pcm, flush_at=FLUSH_POINTS)
        sent = [e for e in emu.events if e.event["type"] == "<binary>"]
        assert_exactly_once(events, emu.committed_items(), sample_pcm, every_item=True)
    assert len(sent) == 1
    assert len(emu.sessions) == 1
    assert stream.skipped_server_frames == 1
    assert not error_records(caplog)
    _assert_bounded(caplog)


HUGE = "x" * 100_000


@pytest.mark.parametrize("code", ["some_new_code", "server_error", "invalid_value"])
async def test_an_oversized_server_error_message_is_bounded_in_logs_and_exceptions(
    code: str, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # an unknown code is a warning, server_error a reconnect, invalid_value fatal
    faults = FaultPlan(
        send_error=SendError(
            code=code,
            type="invalid_request_error",
            message=HUGE,
            after_bytes=100_000,
            connections={0},
        )
    )
    async with Emulator(api_key=KEY, faults=faults) as emu:
        conn = APIConnectOptions(max_retry=3, retry_interval=0.1, timeout=3.0)
        stream = make_stt(emu, result_timeout=2.0).stream(conn_options=conn)
        try:
            await drive(stream, sample_pcm, flush_at=FLUSH_POINTS)
        except APIError as e:
            assert code == "invalid_value"
            assert e.retryable is False
            assert len(e.message) <= LONGEST_LOG_LINE
            assert len(str(e)) <= LONGEST_LOG_LINE
    _assert_bounded(caplog)


def test_server_text_is_bounded_wherever_it_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    # every field a server fills, oversized or of the wrong type: the session logs each bounded
    # and goes on (a wrong type used to escape the parser or break the bookkeeping)
    from livekit.plugins.openai_rt import protocol as p, session as s

    session = s.TranscriptionSession(
        p.SessionConfig(model="gpt-realtime-whisper", language="en"),
        timers=s.Timers(),
        replay_limit_bytes=48000,
    )
    session.connecting()
    session.socket_opened(0.0, wall=0.0)
    hostile: list[dict[str, Any] | str] = [
        {"type": "session.created", "session": {"id": HUGE}},
        {"type": "session.updated", "session": {"id": HUGE}},
        {"type": HUGE},
        {"type": "input_audio_buffer.committed", "item_id": {"x": HUGE}},
        {"type": "input_audio_buffer.speech_started", "item_id": HUGE, "audio_start_ms": HUGE},
        {"type": "conversation.item.input_audio_transcription.delta", "item_id": [HUGE]},
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": HUGE,
            "transcript": "t",
            "usage": {"type": "duration", "seconds": HUGE},
        },
        {
            "type": "conversation.item.input_audio_transcription.failed",
            "item_id": HUGE,
            "error": {"code": HUGE, "type": HUGE, "message": HUGE, "param": HUGE},
        },
        {"type": "error", "error": {"code": HUGE, "type": HUGE, "message": HUGE}},
        {"type": "error", "error": HUGE},
        {"type": "error", "error": {"code": {"x": HUGE}, "type": "server_error"}},
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_1",
            "transcript": "t",
            "languages": HUGE,
        },
        "{" + HUGE,
    ]
    for raw in hostile:
        session.receive(p.parse_server_event(raw if isinstance(raw, str) else json.dumps(raw)), 0.0)
    assert session.ending is None  # nothing of it ended the session
    session.socket_closed(0.0, code=4000, reason="invalid_request_error." + "y" * 100)
    ending = session.ending
    assert ending is not None
    _assert_bounded(caplog)
    assert len(ending.failure.message) <= LONGEST_LOG_LINE  # type: ignore[union-attr]


# -- 11. the API key is in no exception ---------------------------------------------------------

_LEAVES = (
    int,
    float,
    complex,
    bool,
    type(None),
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.TracebackType,
    types.FrameType,
    asyncio.AbstractEventLoop,
)


def _reachable_text(root: object, max_depth: int = 8) -> Iterator[str]:
    """Every string (and repr) reachable from an exception: its cause and context chain, its
    args, and every attribute of everything it holds, to ``max_depth`` references."""
    seen: set[int] = set()
    stack: list[tuple[object, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > max_depth or isinstance(obj, _LEAVES):
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            yield obj
            continue
        if isinstance(obj, bytes | bytearray | memoryview):
            yield bytes(obj).decode("latin-1")
            continue
        try:
            yield repr(obj)
        except Exception:  # noqa: S110 - a repr that fails holds nothing to find
            pass
        children: list[object] = []
        if isinstance(obj, BaseException):
            children += [obj.__cause__, obj.__context__, *obj.args]
        items = getattr(obj, "items", None)
        if callable(items):
            try:
                children += [x for kv in items() for x in kv]
            except Exception:  # noqa: S110
                pass
        if isinstance(obj, list | tuple | set | frozenset):
            children += list(obj)
        children += list(getattr(obj, "__dict__", {}).values())
        for cls in type(obj).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and hasattr(obj, slot):
                    children.append(getattr(obj, slot))
        stack += [(child, depth + 1) for child in children]


REFUSALS = {
    "401": RefuseHandshake(401, times=1000),
    "403": RefuseHandshake(403, times=1000),
    "500, retries exhausted": RefuseHandshake(500, times=1000),
}


@pytest.mark.parametrize("refusal", [*REFUSALS, "connection refused"])
async def test_no_exception_holds_the_key_anywhere_in_its_chain(
    refusal: str, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    # walked when the STT reports them (the framework later replaces the __context__ of the
    # exception that ends the iteration) and once more as raised
    texts: list[str] = []
    async with Emulator(api_key=KEY) as emu:
        if refusal == "connection refused":
            stt_ = make_stt(emu, base_url=f"http://127.0.0.1:{_closed_port()}/v1")
        else:
            emu.faults.refuse_handshake = REFUSALS[refusal]
            stt_ = make_stt(emu)
        stt_.on("error", lambda err: texts.extend(_reachable_text(err.error)))
        conn = APIConnectOptions(max_retry=2, retry_interval=0.05, timeout=3.0)
        with pytest.raises(APIError) as info:
            await drive(stt_.stream(conn_options=conn), sample_pcm[:48000])
    texts += _reachable_text(info.value)
    assert info.value.message in texts  # the walk saw what was raised
    assert not [t for t in texts if KEY in t], "the key is reachable from an exception"
    assert info.value.retryable is False
