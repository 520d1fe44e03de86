"""The bench's latency definitions, on hand-made records: what each figure counts."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))  # the bench's modules import each other by name, as run.py does

import analysis  # noqa: E402


def _view(interims: list[list[object]], preflights: list[list[object]]) -> analysis.StreamView:
    """One stream whose session sent deltas of 5 and 3 characters at t = 1.0 and 2.0."""
    return analysis.StreamView(
        stream={"interims": interims, "preflights": preflights},
        sessions=[{"deltas": [[1.0, "item_1", 5], [2.0, "item_1", 3]]}],
        finals={"item_1": [(2.5, "12345678")]},
        mode="realtime",
        audio=analysis.Audio(pcm=b"", frame_bytes=2400, frame_s=0.05, flush_frames=[]),
        counts=collections.Counter(),
    )


def test_delta_to_interim_counts_a_preflight_as_showing_the_text() -> None:
    """A delta that arrives after the commit is shown by a PREFLIGHT, not an INTERIM: it is
    timed to that PREFLIGHT, not to the FINAL half a second later."""
    view = _view(interims=[[1.001, "item_1", 5]], preflights=[[2.002, "item_1", 8]])
    got = analysis._delta_interim(view)
    assert [round(x, 6) for x in got] == [0.001, 0.002]
    assert view.counts["deltas_not_in_interim"] == 0


def test_delta_to_interim_falls_back_to_the_final_when_nothing_shows_it() -> None:
    view = _view(interims=[[1.001, "item_1", 5]], preflights=[])
    assert [round(x, 6) for x in analysis._delta_interim(view)] == [0.001, 0.5]
    assert view.counts["deltas_not_in_interim"] == 1
