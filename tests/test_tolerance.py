"""Where the service may differ from its documentation, end to end against the emulator's switches.

Each case is one the documentation leaves open and a public capture or report shows
(docs/protocol.md §3.3, §4.3, §1.7): a refused commit whose ``error.event_id`` is null, a
``completed`` for an item whose ``committed`` never came, and an expiry that is only a close 1001
naming the maximum duration. Each run proves, from the emulator's transcripts, that every byte was
transcribed exactly once and in order, in one session (no reconnect, nothing replayed).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from livekit.agents import APIConnectOptions, stt
from livekit.plugins.openai_rt import protocol as p
from livekit.plugins.openai_rt.protocol import BYTES_PER_SECOND
from livekit.plugins.openai_rt.testing import CloseWith, Emulator, FaultPlan
from tests.conftest import (
    FLUSH_POINTS,
    KEY,
    MakeSTT,
    assert_exactly_once,
    drive,
    error_records,
)
from tests.test_session import Harness, completed, three_commits

TIMERS: dict[str, object] = {"result_timeout": 2.0, "final_timeout": 4.0, "heartbeat": None}
"""A dead socket is declared after 2 s: a client that waits for an answer that never comes
reconnects within the test's time instead of hanging."""


async def transcribe(
    make_stt: MakeSTT,
    pcm: bytes,
    faults: FaultPlan,
    *,
    realtime: float = 0.0,
    **stream_options: Any,
) -> tuple[Emulator, list[stt.SpeechEvent]]:
    """Drive ``pcm`` with the sample's flushes through one stream (:data:`TIMERS`, then
    ``stream_options``) on a fresh emulator with ``faults``; the emulator (closed, its records
    kept) and the stream's events."""
    async with Emulator(api_key=KEY, faults=faults) as emu:
        stream = make_stt(emu, **TIMERS).stream(**stream_options)
        events = await drive(stream, pcm, flush_at=FLUSH_POINTS, realtime=realtime)
    return emu, events


async def test_a_refused_commit_whose_error_names_no_commit(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # the server refuses the second commit and keeps its buffer; its error's event_id is null,
    # as in the public capture (docs/protocol.md §3.3, §7 C.53, H.52)
    faults = FaultPlan(refuse_commits={1}, null_error_event_ids=True)
    emu, events = await transcribe(make_stt, sample_pcm, faults, realtime=20.0)
    items = emu.committed_items()
    refusals = [
        e.event["error"] for e in emu.events if e.direction == "out" and e.event["type"] == "error"
    ]
    assert [r["event_id"] for r in refusals] == [None]
    assert len(emu.sessions) == 1
    # the refused commit's audio went with the next one: two items for three commits
    assert len(items) == 2
    assert_exactly_once(events, items, sample_pcm, every_item=True)
    assert not error_records(caplog)
    assert any("refused a commit" in r.getMessage() for r in caplog.records)


async def test_a_completion_whose_committed_never_came(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # the last item's committed is left out: its completed names an item the stream never saw
    # committed, while its commit is the only one waiting (docs/protocol.md §4.3, §7 D.48)
    emu, events = await transcribe(
        make_stt, sample_pcm, FaultPlan(omit_committed={2}), realtime=20.0
    )
    items = emu.committed_items()
    committed = [
        e.event["item_id"]
        for e in emu.events
        if e.direction == "out" and e.event["type"] == "input_audio_buffer.committed"
    ]
    assert committed == [items[0].item_id, items[1].item_id]
    assert len(emu.sessions) == 1
    assert_exactly_once(events, items, sample_pcm, every_item=True)
    assert not error_records(caplog)


async def test_a_committed_after_a_missing_one_does_not_take_its_commit(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # all three commits go out at once; the second item's committed is left out, so the third's
    # committed arrives while two commits wait: its previous_item_id names the missing item,
    # which answers the older commit (docs/protocol.md §4.1.5: previous_item_id orders items)
    emu, events = await transcribe(make_stt, sample_pcm, FaultPlan(omit_committed={1}))
    items = emu.committed_items()
    assert len(emu.sessions) == 1
    assert_exactly_once(events, items, sample_pcm, every_item=True)
    assert not error_records(caplog)


async def test_an_expiry_that_is_only_a_close_1001(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture, make_stt: MakeSTT
) -> None:
    # observed: close 1001 "Your session hit the maximum duration of 60 minutes." with no error
    # event before it (docs/protocol.md §1.7, §7 E.33), here before the client's own roll-over
    # (as when the server's limit comes before the session's expires_at). It is a planned move
    # to a new session: no retry budget is spent (max_retry=0 ends the stream on any retry),
    # nothing is lost.
    reason = "Your session hit the maximum duration of 60 minutes."
    faults = FaultPlan(close_with=CloseWith(1001, reason, after_seconds=1.0, connections={0}))
    emu, events = await transcribe(
        make_stt,
        sample_pcm,
        faults,
        realtime=5.0,
        conn_options=APIConnectOptions(max_retry=0, timeout=3.0),
    )
    items = emu.committed_items()
    assert (emu.sessions[0].close_code, emu.sessions[0].close_reason) == (1001, reason)
    assert len(emu.sessions) == 2
    assert_exactly_once(events, items, sample_pcm)
    assert not error_records(caplog)
    moves = [r for r in caplog.records if "continuing in a new session" in r.getMessage()]
    assert [r.levelno for r in moves] == [logging.WARNING]


# -- the same, in the session core (no socket) ---------------------------------------------------


@pytest.mark.parametrize("completed_first", [False, True])
def test_the_core_gives_a_missing_committed_item_the_older_commit(completed_first: bool) -> None:
    h = Harness()
    h.open()
    three_commits(h)
    h.server(p.Committed("a", None))
    if completed_first:  # two commits wait: the result for "b" is parked
        h.server(completed("b", "second"))
    h.server(p.Committed("c", "b"))  # "b"'s committed never came
    if not completed_first:
        h.server(completed("b", "second"))
    h.server(completed("c", "third"))
    h.server(completed("a", "first"))
    assert h.finals() == [("a", "first"), ("b", "second"), ("c", "third")]
    assert [u.audio_seconds for u in h.usage()] == [6_000 / BYTES_PER_SECOND] * 3
