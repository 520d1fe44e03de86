"""Recorded traces as fixtures: every ``tests/traces/*.jsonl`` is replayed through the sans-I/O
session core with its own clock, and must produce its finals (and, where its header says, the
core's decisions). A trace written by ``python -m livekit.plugins.openai_rt.check`` becomes a
test by copying it into ``tests/traces/`` (see docs/README.md). The format itself: redaction,
parsing, the lockstep replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livekit.plugins.openai_rt.check.replay import expected_finals, replay, session_config
from livekit.plugins.openai_rt.check.trace import TraceRecorder, parse_trace, read_trace

from .conftest import KEY

TRACES = sorted((Path(__file__).parent / "traces").glob("*.jsonl"))


def test_the_shipped_traces_are_there() -> None:
    names = {path.stem for path in TRACES}
    assert {
        "commit_empty_event_id_null",
        "completed_without_committed",
        "expiry_close_1001_after_error",
        "expiry_close_1001_alone",
    } <= names


@pytest.mark.parametrize("path", TRACES, ids=[p.stem for p in TRACES])
def test_a_trace_replays_to_its_finals(path: Path) -> None:
    trace = read_trace(path)
    assert trace.header.get("source"), "a trace says where its traffic comes from"
    assert isinstance(trace.header.get("reconstructed"), bool)
    result = replay(trace)
    assert result.failure is None and not result.owed
    assert result.finals == expected_finals(trace)
    expect = trace.header.get("expect") or {}
    if "endings" in expect:
        assert result.endings == expect["endings"]


def test_a_refused_commit_with_a_null_event_id_does_not_take_the_next_items_id() -> None:
    trace = read_trace(Path(__file__).parent / "traces" / "commit_empty_event_id_null.jsonl")
    result = replay(trace)
    commits = [ev for ev in result.sent if ev["type"] == "input_audio_buffer.commit"]
    assert len(commits) == 2  # the core sent both commits, as the recorded client did
    assert [item for item, _ in result.finals] == ["item_CeR1commitEmptyI001"]
    assert not result.skipped


def test_expiry_moves_to_a_new_session_and_replays_the_open_audio() -> None:
    trace = read_trace(Path(__file__).parent / "traces" / "expiry_close_1001_alone.jsonl")
    result = replay(trace)
    assert result.endings == ["roll_over"]
    updates = [i for i, ev in enumerate(result.sent) if ev["type"] == "session.update"]
    assert len(updates) == 2
    second = result.sent[updates[1] :]
    replayed = sum(ev.get("audio_bytes", 0) for ev in second)
    assert replayed == int(1.5 * 48000)  # 0.5 s replayed, 1 s new


def test_answers_to_events_this_plugin_never_sends_are_not_fed() -> None:
    """An empty commit and a probing session.update (what the live check sends) are skipped,
    with their answers; the rest of the session replays as usual."""
    lines = (Path(__file__).parent / "traces" / "completed_without_committed.jsonl").read_text()
    extra = [
        {"t": 3.0, "client": {"type": "input_audio_buffer.commit", "event_id": "probe_empty"}},
        {
            "t": 3.1,
            "server": {
                "type": "error",
                "error": {"code": "input_audio_buffer_commit_empty", "event_id": "probe_empty"},
            },
        },
        {
            "t": 3.2,
            "client": {
                "type": "session.update",
                "event_id": "probe_prompt",
                "session": {"type": "transcription"},
            },
        },
        {
            "t": 3.3,
            "server": {
                "type": "error",
                "error": {"code": "invalid_value", "message": "no", "event_id": "probe_prompt"},
            },
        },
    ]
    trace = parse_trace(lines.splitlines() + [json.dumps(e) for e in extra])
    result = replay(trace)
    assert result.failure is None and result.finals == expected_finals(trace)
    assert len(result.skipped) == 4


def test_the_configuration_comes_from_the_recorded_session_update() -> None:
    trace = read_trace(TRACES[0])
    config = session_config(trace)
    assert config.model == "gpt-realtime-whisper" and config.language == "en"
    assert config.turn_detection is None


def test_the_recorder_redacts_credentials_audio_and_query_values(tmp_path: Path) -> None:
    rec = TraceRecorder({"model": "m", "source": "test", "reconstructed": False}, secrets=[KEY])
    rec.add_secret("entra-token-2")
    rec.open(f"wss://gw.example/v1/realtime?intent=transcription&model=m&key={KEY}&team=a")
    rec.client({"type": "input_audio_buffer.append", "audio": "AAECAw=="})
    rec.server(
        json.dumps({"type": "error", "error": {"message": f"bad key {KEY} / entra-token-2"}})
    )
    rec.server("not json")
    rec.close(1001, "bye", by="server")
    path = rec.write(tmp_path / "t.jsonl")
    text = path.read_text()
    assert KEY not in text and "entra-token-2" not in text and "AAECAw" not in text
    trace = read_trace(path)
    assert trace.records[0].data["url"] == (
        "wss://gw.example/v1/realtime?intent=transcription&model=m&key=<redacted>&team=<redacted>"
    )
    assert trace.records[1].data == {"type": "input_audio_buffer.append", "audio_bytes": 4}
    assert trace.records[3].data["type"] == "<malformed>"
    assert [r.kind for r in trace.records] == ["open", "client", "server", "server", "close"]


@pytest.mark.parametrize(
    ("lines", "match"),
    [
        ([], "empty trace"),
        (['{"trace": "other", "version": 1}'], "not a livekit-plugins-openai-rt trace"),
        (['{"trace": "livekit-plugins-openai-rt", "version": 9}'], "version 9 unknown"),
        (['{"trace": "livekit-plugins-openai-rt", "version": 1}', "{nope"], "line 2: not JSON"),
        (
            ['{"trace": "livekit-plugins-openai-rt", "version": 1}', '{"t": 0, "what": {}}'],
            "line 2: expected",
        ),
    ],
)
def test_a_bad_trace_names_the_line_that_is_wrong(lines: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_trace(lines)
