"""The fault matrix: every fault the emulator can inject, for a client-commit model
(gpt-realtime-whisper, flush-driven) and a server-VAD model (gpt-4o-mini-transcribe).

Each run proves from the emulator's transcripts that every byte of audio was transcribed exactly
once and in order, that finals came once each in order, that the stream ended normally (or, for
fatal faults, failed fast with a non-retryable ``APIError`` and one ERROR line), and (through the
autouse fixture in conftest) that no log line carried the API key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from livekit.agents import APIError, APIStatusError, stt
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import (
    CloseWith,
    Emulator,
    FaultPlan,
    RandomDrop,
    RefuseHandshake,
    SendError,
    Stall,
)
from tests.conftest import (
    CONN,
    FINAL,
    FLUSH_POINTS,
    KEY,
    MakeSTT,
    assert_exactly_once,
    drive,
    drive_and_change,
    error_records,
    of_type,
)

log = logging.getLogger("tests.resilience")
MODELS = ["gpt-realtime-whisper", "gpt-4o-mini-transcribe"]


@dataclass
class Run:
    events: list[stt.SpeechEvent]
    emu: Emulator


FAST_TIMERS: dict[str, object] = {"heartbeat": 0.6, "result_timeout": 1.5, "final_timeout": 8.0}
"""Short liveness timers, so faults are detected within a test's time."""


async def run(
    make_stt: MakeSTT,
    pcm: bytes,
    model: str,
    faults: FaultPlan | None,
    *,
    realtime: float = 20.0,
    emulator_kwargs: dict[str, object] | None = None,
    **stt_kwargs: object,
) -> Run:
    async with Emulator(api_key=KEY, faults=faults, **(emulator_kwargs or {})) as emu:  # type: ignore[arg-type]
        stt_ = make_stt(emu, model=model, **{**FAST_TIMERS, **stt_kwargs})
        flush_at = FLUSH_POINTS if model == "gpt-realtime-whisper" else ()
        events = await drive(
            stt_.stream(conn_options=CONN), pcm, flush_at=flush_at, realtime=realtime
        )
        log_reconnects(emu)
        return Run(events, emu)


def log_reconnects(emu: Emulator) -> None:
    """Log (INFO) how long each reconnect took: last event of a session -> next session
    configured. Run with ``--log-cli-level=INFO`` to see the figures."""
    by_session: dict[str, list[float]] = {}
    updated: dict[str, float] = {}
    for ev in emu.events:
        by_session.setdefault(ev.session_id, []).append(ev.t)
        if ev.direction == "out" and ev.event["type"] == "session.updated":
            updated.setdefault(ev.session_id, ev.t)
    ids = [s.id for s in emu.sessions]
    for prev, nxt in zip(ids, ids[1:], strict=False):
        if prev in by_session and nxt in updated:
            gap = updated[nxt] - by_session[prev][-1]
            log.info("reconnect %s -> %s took %.1f ms", prev[-6:], nxt[-6:], gap * 1000)


def assert_run_exactly_once(result: Run, pcm: bytes) -> None:
    assert_exactly_once(result.events, result.emu.committed_items(), pcm)


# -- recoverable faults: the stream reconnects, replays, and loses nothing ---------------------

RECOVERABLE = {
    "abnormal close (TCP drop)": FaultPlan(drop_after_bytes=250_000, connections={0}),
    "close 1011": FaultPlan(
        close_with=CloseWith(1011, "internal error", after_bytes=250_000, connections={0})
    ),
    "close 1001": FaultPlan(
        close_with=CloseWith(1001, "going away", after_bytes=250_000, connections={0})
    ),
    "server_error event": FaultPlan(send_error=SendError(after_bytes=250_000, connections={0})),
    "half-open socket (missed heartbeat)": FaultPlan(
        stall=Stall(after_bytes=250_000, read=True, answer=True, connections={0})
    ),
    "handshake 500 then ok": FaultPlan(refuse_handshake=RefuseHandshake(500, times=1)),
    "handshake 429 then ok": FaultPlan(refuse_handshake=RefuseHandshake(429, times=2)),
    "reordered completions": FaultPlan(reorder_completed=True, reorder_hold_seconds=0.3),
    "malformed JSON and unknown events": FaultPlan(
        malformed_json_after_bytes=100_000, unknown_event_after_bytes=200_000
    ),
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("fault", list(RECOVERABLE))
async def test_recoverable_fault_loses_nothing(
    fault: str, model: str, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    result = await run(make_stt, sample_pcm, model, RECOVERABLE[fault])
    assert_run_exactly_once(result, sample_pcm)
    assert not error_records(caplog)
    if "handshake" in fault or "reordered" in fault or "malformed" in fault:
        return
    assert len(result.emu.sessions) >= 2, "the fault should have forced a new session"


async def test_silent_server_is_caught_by_the_result_watchdog(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # the server keeps reading audio and answering pings but never answers a commit
    faults = FaultPlan(stall=Stall(after_bytes=250_000, read=False, answer=True, connections={0}))
    result = await run(make_stt, sample_pcm, "gpt-realtime-whisper", faults, heartbeat=None)
    assert_run_exactly_once(result, sample_pcm)
    assert len(result.emu.sessions) == 2
    assert any("result_timeout" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("model", MODELS)
async def test_failed_item_is_a_warning_and_later_items_still_arrive(
    model: str, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    result = await run(make_stt, sample_pcm, model, FaultPlan(fail_items={0}))
    items = result.emu.committed_items()
    assert items[0].status == "failed"
    finals = of_type(result.events, FINAL)
    assert [ev.request_id for ev in finals] == [i.item_id for i in items[1:]]
    assert not error_records(caplog)
    assert len(result.emu.sessions) == 1


# -- fatal faults: fail fast, non-retryable, one ERROR line -------------------------------------

FATAL = {
    "close 4000 invalid_request_error": FaultPlan(
        close_with=CloseWith(4000, "invalid_request_error.invalid_value", after_bytes=100_000)
    ),
    "invalid_api_key error": FaultPlan(
        send_error=SendError(
            code="invalid_api_key",
            type="invalid_request_error",
            message="Incorrect API key provided.",
            after_bytes=100_000,
            close_code=4000,
            close_reason="invalid_request_error.invalid_api_key",
        )
    ),
    "handshake 401": FaultPlan(refuse_handshake=RefuseHandshake(401, times=10)),
    "handshake 403": FaultPlan(refuse_handshake=RefuseHandshake(403, times=10)),
}


@pytest.mark.parametrize("fault", list(FATAL))
async def test_fatal_fault_fails_fast_with_one_error_line(
    fault: str, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    with pytest.raises(APIError) as info:
        await run(make_stt, sample_pcm, "gpt-realtime-whisper", FATAL[fault])
    assert info.value.retryable is False
    if "handshake" in fault:
        assert isinstance(info.value, APIStatusError)
        assert info.value.status_code == int(fault.split()[-1])
    assert len(error_records(caplog)) == 1


async def test_instant_failures_stop_instead_of_looping(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # every session is dropped the moment it opens, before it can transcribe anything
    faults = FaultPlan(drop_after_seconds=0.0)
    with pytest.raises(APIError) as info:
        await run(make_stt, sample_pcm, "gpt-realtime-whisper", faults)
    assert info.value.retryable is False
    assert "in a row" in info.value.message
    errors = error_records(caplog)
    assert len(errors) == 1 and "in a row" in errors[0].getMessage()
    # three attempts, not the whole retry budget on top of them
    assert len(caplog.records) < 200


# -- property: a drop anywhere in a multi-utterance recording loses nothing ----------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", range(8))
async def test_a_drop_at_a_random_point_loses_nothing(
    seed: int, model: str, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    faults = FaultPlan(
        drop_at_random=RandomDrop(seed=seed, min_bytes=20_000, max_bytes=700_000, connections={0})
    )
    result = await run(make_stt, sample_pcm, model, faults, realtime=30.0)
    assert_run_exactly_once(result, sample_pcm)


async def test_two_drops_in_one_call_lose_nothing(sample_pcm: bytes, make_stt: MakeSTT) -> None:
    faults = FaultPlan(
        drop_at_random=RandomDrop(seed=99, min_bytes=100_000, max_bytes=300_000, connections={0, 1})
    )
    result = await run(make_stt, sample_pcm, "gpt-realtime-whisper", faults)
    assert len(result.emu.sessions) >= 3
    assert_run_exactly_once(result, sample_pcm)


# -- long calls: planned roll-over before expiry -------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
async def test_long_call_rolls_over_sessions_without_loss(
    model: str, sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    pcm = sample_pcm * 2  # 29.5 s, fed at 6x: about 5 s of wall time
    result = await run(
        make_stt,
        pcm,
        model,
        None,
        realtime=6.0,
        emulator_kwargs={"max_session_seconds": 1.6},
        rollover_margin=0.6,
    )
    assert len(result.emu.sessions) >= 3
    assert_run_exactly_once(result, pcm)
    expired = [
        ev for ev in result.emu.events if ev.direction == "out" and ev.event.get("type") == "error"
    ]
    assert not expired, "roll-over should happen before the server expires the session"
    assert not [
        r
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("livekit.plugins")
    ]


async def test_session_expired_anyway_moves_on_without_loss(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # roll-over disabled in effect (margin 0): the server's session_expired ends each session
    result = await run(
        make_stt,
        sample_pcm,
        "gpt-realtime-whisper",
        None,
        realtime=5.0,
        emulator_kwargs={"max_session_seconds": 1.0},
        rollover_margin=0.0,
    )
    assert_run_exactly_once(result, sample_pcm)
    assert len(result.emu.sessions) >= 2
    assert not error_records(caplog)


# -- backpressure ------------------------------------------------------------------------------


async def test_replay_bound_applies_and_says_how_much_was_not_replayed(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # the server stops reading; with a 2 s replay bound the oldest audio cannot be replayed
    faults = FaultPlan(stall=Stall(after_bytes=50_000, read=True, answer=True, connections={0}))
    result = await run(
        make_stt,
        sample_pcm,
        "gpt-realtime-whisper",
        faults,
        realtime=10.0,
        replay_seconds=2.0,
        heartbeat=None,
        result_timeout=0.8,
    )
    warnings = [r.getMessage() for r in caplog.records if "could not be replayed" in r.getMessage()]
    assert len(warnings) == 1
    finals = of_type(result.events, FINAL)
    assert finals, "the stream went on after the stall"


# -- live option updates -----------------------------------------------------------------------


async def test_language_update_applies_in_place(sample_pcm: bytes, make_stt: MakeSTT) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, **FAST_TIMERS)
        events = await drive_and_change(
            emu,
            stt_.stream(conn_options=CONN),
            sample_pcm,
            when=emu.committed_items,
            change=lambda: stt_.update_options(language="fr", delay="high"),
            realtime=15.0,
        )
        assert len(emu.sessions) == 1
        updates = [
            e.event
            for e in emu.events
            if e.direction == "in" and e.event["type"] == "session.update"
        ]
        assert len(updates) == 2
        assert emu.sessions[0].config["audio"]["input"]["transcription"]["language"] == "fr"
        assert_exactly_once(events, emu.committed_items(), sample_pcm)


async def test_model_change_moves_to_a_new_session_without_loss(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, **FAST_TIMERS)
        stream = stt_.stream(conn_options=CONN)
        events = await drive_and_change(
            emu,
            stream,
            sample_pcm,
            when=emu.committed_items,
            change=lambda: stream.update_options(model="gpt-live-transcribe"),
            realtime=10.0,
        )
        models = [s.config["audio"]["input"]["transcription"]["model"] for s in emu.sessions]
        assert models[0] == "gpt-realtime-whisper" and models[-1] == "gpt-live-transcribe"
        assert_exactly_once(events, emu.committed_items(), sample_pcm)


def test_invalid_update_raises_and_changes_nothing() -> None:
    stt_ = openai_rt.STT(api_key=KEY)
    with pytest.raises(ValueError, match="does not accept a prompt"):
        stt_.update_options(prompt="hello")
    assert stt_.options.prompt is None
