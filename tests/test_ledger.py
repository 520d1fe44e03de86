"""The audio ledger without sockets: commits, ordering, server-VAD splits, replay plans."""

from __future__ import annotations

from livekit.plugins.openai_rt.ledger import AudioLedger
from livekit.plugins.openai_rt.protocol import (
    BYTES_PER_SECOND,
    MIN_COMMIT_BYTES,
    ServerError,
    TranscriptCompleted,
)

CHUNK = 2400  # 50 ms


def _audio(n_chunks: int, tag: int) -> list[bytes]:
    return [bytes([tag, i % 256]) * (CHUNK // 2) for i in range(n_chunks)]


def _feed(ledger: AudioLedger, chunks: list[bytes]) -> None:
    for c in chunks:
        ledger.append(c)


def _done(item: str, text: str = "x") -> TranscriptCompleted:
    return TranscriptCompleted(item_id=item, transcript=text)


def test_commit_needs_100_ms_and_keeps_short_audio_for_the_next_commit() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    ledger.append(b"\x01\x00" * 1000)  # 2000 bytes < 4800
    assert ledger.commit() is None
    assert ledger.open.nbytes == 2000
    ledger.append(b"\x02\x00" * 2000)
    seg = ledger.commit()
    assert seg is not None and seg.nbytes == 6000 and seg.start_pos == 0
    assert b"".join(seg.chunks) == b"\x01\x00" * 1000 + b"\x02\x00" * 2000
    assert ledger.open.start_pos == 6000 and ledger.open.nbytes == 0


def test_pad_brings_a_short_tail_to_the_minimum() -> None:
    ledger = AudioLedger(replay_limit_bytes=BYTES_PER_SECOND)
    assert ledger.pad_open() == b""
    ledger.append(b"\x00\x01" * 100)
    assert len(ledger.pad_open()) == MIN_COMMIT_BYTES - 200


def test_finals_are_released_in_commit_order() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    segs = []
    for tag in range(3):
        _feed(ledger, _audio(3, tag))
        seg = ledger.commit()
        assert seg is not None
        seg.commit_sent = True
        segs.append(seg)
    for i in range(3):
        assert ledger.on_committed(f"item_{i}", end_ms=None) is segs[i]
    # completions arrive 2, 0, 1
    segs[2].result = _done("item_2")
    assert ledger.release() == []
    segs[0].result = _done("item_0")
    assert ledger.release() == [segs[0]]
    segs[1].failure = ServerError(None, "server_error", "failed")
    assert ledger.release() == [segs[1], segs[2]]
    assert ledger.held == 0


def test_server_vad_commit_splits_the_open_audio_at_audio_end_ms() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    chunks = _audio(20, 7)  # 1 s
    _feed(ledger, chunks)
    seg = ledger.on_committed("item_a", end_ms=730)
    assert seg is not None and seg.by_server and seg.item_id == "item_a"
    assert seg.nbytes == 730 * 48
    assert b"".join(seg.chunks) == b"".join(chunks)[: 730 * 48]
    assert b"".join(ledger.open.chunks) == b"".join(chunks)[730 * 48 :]
    assert ledger.on_committed("item_a", end_ms=None) is None  # repeated event


def test_replay_with_client_commits_recommits_undone_segments_only() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    segs = []
    for tag in range(3):
        _feed(ledger, _audio(4, tag))
        seg = ledger.commit()
        assert seg is not None
        seg.commit_sent = True
        segs.append(seg)
        ledger.on_committed(f"old_{tag}", end_ms=None)
    segs[1].result = _done("old_1")  # done but held behind segs[0]
    _feed(ledger, _audio(2, 9))
    replay = ledger.reset_socket(server_commits=False)
    assert replay == [segs[0], segs[2]]
    assert all(s.item_id is None and not s.commit_sent for s in segs)
    assert ledger.socket_origin == segs[0].start_pos
    assert ledger.open.nbytes == 2 * CHUNK


def test_replay_with_server_commits_merges_everything_back_into_open_audio() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    first = _audio(10, 1)
    _feed(ledger, first)
    ledger.on_committed("a", end_ms=500)
    later = _audio(4, 2)
    _feed(ledger, later)
    assert ledger.reset_socket(server_commits=True) == []
    assert not ledger.in_flight
    assert b"".join(ledger.open.chunks) == b"".join(first + later)
    assert ledger.open.start_pos == 0 and ledger.socket_origin == 0


def test_replay_bound_lets_the_oldest_audio_go_and_counts_it() -> None:
    ledger = AudioLedger(replay_limit_bytes=5 * CHUNK)
    chunks = _audio(8, 3)
    _feed(ledger, chunks)
    assert ledger.held == 5 * CHUNK
    assert ledger.open.nbytes == 8 * CHUNK  # the span is intact; only replay is bounded
    assert ledger.open.chunks == chunks[3:]
    assert ledger.take_unheld() == 3 * CHUNK
    assert ledger.take_unheld() == 0


def test_refused_commit_folds_back_into_the_next_segment() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    _feed(ledger, _audio(3, 1))
    seg = ledger.commit()
    assert seg is not None
    seg.commit_sent = True
    _feed(ledger, _audio(1, 2))
    assert ledger.commit_refused(seg.commit_event_id) is seg
    assert not ledger.in_flight
    assert ledger.open.start_pos == 0 and ledger.open.nbytes == 4 * CHUNK
    assert ledger.held == 4 * CHUNK
