"""The audio ledger without sockets: the held audio, commits, ordering, server-VAD splits,
replay plans and the replay bound."""

from __future__ import annotations

import tracemalloc

import pytest

from livekit.plugins.openai_rt.ledger import LOST_AUDIO, AudioLedger, AudioStore
from livekit.plugins.openai_rt.protocol import PCM16, ServerError, TranscriptCompleted

BYTES_PER_SECOND = PCM16.bytes_per_second
MIN_COMMIT_BYTES = PCM16.min_commit_bytes
CHUNK = 2400  # 50 ms


def tagged(n_chunks: int, tag: int) -> list[bytes]:
    """``n_chunks`` 50 ms chunks whose bytes say which chunk they are."""
    return [bytes([tag, i % 256]) * (CHUNK // 2) for i in range(n_chunks)]


def feed(ledger: AudioLedger, chunks: list[bytes]) -> None:
    for c in chunks:
        ledger.append(c)


def done(item: str, text: str = "x") -> TranscriptCompleted:
    return TranscriptCompleted(item_id=item, transcript=text)


def read_all(store: AudioStore, start: int, end: int) -> bytes:
    out = bytearray()
    pos = start
    while pos < end:
        chunk = store.read(pos, end - pos)
        out += chunk
        pos += len(chunk)
    return bytes(out)


def test_store_reads_across_chunks_and_drops_the_oldest() -> None:
    store = AudioStore()
    chunks = tagged(5, 1)
    for c in chunks:
        store.append(c)
    assert store.read(0, CHUNK) is chunks[0]  # a read at a chunk's start is the chunk
    assert read_all(store, 1000, 9000) == b"".join(chunks)[1000:9000]
    assert store.drop_before(3000) == 3000
    assert (store.start, store.end, store.nbytes) == (3000, 12000, 9000)
    assert read_all(store, 3000, 12000) == b"".join(chunks)[3000:]
    assert store.drop_before(2000) == 0  # already gone


def test_store_lets_go_of_dropped_audio_at_once() -> None:
    """Dropped audio is freed when it is dropped, not when the chunk list is next compacted:
    a long stream holds only the audio it may still send."""
    store = AudioStore()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(200):  # 10 s of 50 ms chunks, fewer than a compaction waits for
            store.append(bytes([i]) * CHUNK)
        full = tracemalloc.get_traced_memory()[0] - base
        store.drop_before(store.end - CHUNK)
        left = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert full >= 200 * CHUNK
    assert left < 2 * CHUNK + 200 * 64, (full, left)  # one chunk, and the list's slots
    assert store.read(store.end - CHUNK, CHUNK) == bytes([199]) * CHUNK


def test_store_compacts_without_losing_positions() -> None:
    store = AudioStore()
    data = b"".join(tagged(2000, 7))
    for i in range(0, len(data), CHUNK):
        store.append(data[i : i + CHUNK])
    for pos in range(0, len(data) - CHUNK, 7 * CHUNK + 13):
        store.drop_before(pos)
        assert read_all(store, pos, pos + 3 * CHUNK) == data[pos : pos + 3 * CHUNK]


def test_commit_needs_100_ms_and_keeps_short_audio_for_the_next_commit() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    ledger.append(b"\x01\x00" * 1000)  # 2000 bytes < 4800
    assert ledger.commit() is None
    assert ledger.open.nbytes == 2000
    ledger.append(b"\x02\x00" * 2000)
    seg = ledger.commit()
    assert seg is not None and (seg.start, seg.end) == (0, 6000)
    assert read_all(ledger.store, seg.start, seg.end) == b"\x01\x00" * 1000 + b"\x02\x00" * 2000
    assert (ledger.open.start, ledger.open.nbytes) == (6000, 0)


def test_padding_brings_a_short_tail_to_the_minimum() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    assert ledger.padding_needed() == 0
    ledger.append(b"\x01\x00" * 100)
    assert ledger.padding_needed() == MIN_COMMIT_BYTES - 200


def test_finals_are_released_in_commit_order() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    segs = []
    for tag in (1, 2, 3):
        feed(ledger, tagged(4, tag))
        seg = ledger.commit()
        assert seg is not None
        seg.commit_issued = True
        segs.append(seg)
    for seg, item in zip(segs, ("a", "b", "c"), strict=True):
        assert ledger.on_committed(item, end_pos=None) is seg
    assert ledger.on_committed("a", end_pos=None) is None  # a repeated committed
    segs[2].result = done("c")
    segs[1].result = done("b")
    assert ledger.release() == []  # a is not done: nothing jumps it
    segs[0].failure = ServerError(code=None, type="server_error", message="failed")
    assert ledger.release() == segs
    assert not ledger.owed()
    assert ledger.store.start == ledger.open.start  # released audio is let go


def test_server_vad_commit_splits_the_open_audio_at_its_end() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    feed(ledger, tagged(10, 1))
    seg = ledger.on_committed("i1", end_pos=12_000)
    assert seg is not None and seg.by_server and (seg.start, seg.end) == (0, 12_000)
    assert ledger.open.start == 12_000 and ledger.open.nbytes == 12_000
    assert ledger.owed()


def test_server_vad_commit_racing_a_client_commit_takes_its_head() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    feed(ledger, tagged(10, 1))
    client = ledger.commit()
    assert client is not None
    server = ledger.on_committed("v1", end_pos=9_600)
    assert server is not None and (server.start, server.end) == (0, 9_600)
    assert (client.start, client.end) == (9_600, 24_000)
    assert list(ledger.in_flight) == [server, client]


def test_replay_with_client_commits_recommits_undone_segments_only() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    segs = []
    for tag in (1, 2):
        feed(ledger, tagged(4, tag))
        seg = ledger.commit()
        assert seg is not None
        seg.commit_issued = True
        segs.append(seg)
    feed(ledger, tagged(2, 3))
    ledger.on_committed("a", end_pos=None)
    ledger.on_committed("b", end_pos=None)
    segs[1].result = done("b")  # b answered; a did not
    plan = ledger.reset_socket(server_commits=False)
    assert plan.start == 0 and plan.lost_bytes == 0
    assert plan.owed_bytes == segs[0].nbytes + ledger.open.nbytes
    assert all(s.item_id is None and not s.commit_issued for s in ledger.in_flight)
    assert segs[1].done  # not sent again


def test_replay_with_server_commits_merges_undone_audio_back_into_the_open_audio() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    feed(ledger, tagged(12, 1))
    ledger.on_committed("a", end_pos=9_600)
    second = ledger.on_committed("b", end_pos=19_200)
    assert second is not None
    second.result = done("b")  # b answered before a: it must not jump the order
    plan = ledger.reset_socket(server_commits=True)
    assert not ledger.in_flight
    assert (ledger.open.start, ledger.open.end) == (0, 28_800)
    assert plan.start == 0 and plan.owed_bytes == 28_800


def test_the_bound_never_lets_go_of_audio_the_live_socket_has_not_sent() -> None:
    ledger = AudioLedger(replay_limit_bytes=CHUNK * 4)
    ledger.send_cursor = 0  # a live socket that has sent nothing yet (a slow uplink)
    feed(ledger, tagged(10, 1))
    assert ledger.store.start == 0 and ledger.store.nbytes == 10 * CHUNK
    ledger.send_cursor = 7 * CHUNK  # it caught up to here
    ledger.append(tagged(1, 2)[0])
    assert ledger.store.start == 7 * CHUNK  # the bound applies up to the cursor, not past it


def test_replay_bound_lets_the_oldest_audio_go_and_reports_exactly_that() -> None:
    ledger = AudioLedger(replay_limit_bytes=CHUNK * 4)
    feed(ledger, tagged(3, 1))
    first = ledger.commit()
    assert first is not None
    first.commit_issued = True
    feed(ledger, tagged(3, 2))
    second = ledger.commit()
    assert second is not None
    second.commit_issued = True
    feed(ledger, tagged(2, 3))
    # no live socket: 8 chunks held with a bound of 4: the oldest 4 are let go
    assert ledger.store.start == 4 * CHUNK
    plan = ledger.reset_socket(server_commits=False)
    assert plan.lost_bytes == 4 * CHUNK
    assert plan.lost_segments == (first,) and first.failure is LOST_AUDIO
    assert (second.start, second.end) == (4 * CHUNK, 6 * CHUNK)  # its tail, contiguous
    assert plan.start == 4 * CHUNK
    assert plan.owed_bytes == 4 * CHUNK
    assert ledger.release() == [first]


def test_a_refused_commit_folds_its_audio_into_the_next_segment() -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    feed(ledger, tagged(4, 1))
    first = ledger.commit()
    feed(ledger, tagged(4, 2))
    second = ledger.commit()
    assert first is not None and second is not None
    first.commit_issued = second.commit_issued = True
    assert ledger.find_commit(first.commit_event_id) is first
    assert ledger.oldest_waiting_commit() is first and ledger.waiting_commits() == 2
    ledger.refuse(first)
    assert list(ledger.in_flight) == [second] and second.start == 0
    ledger.refuse(second)
    assert not ledger.in_flight and ledger.open.start == 0


@pytest.mark.parametrize("n", [0, 1, 4799])
def test_abandoning_the_open_audio_reports_its_size(n: int) -> None:
    ledger = AudioLedger(replay_limit_bytes=10 * BYTES_PER_SECOND)
    ledger.append(bytes(n))
    assert ledger.abandon_open() == n
    assert ledger.open.nbytes == 0 and ledger.store.nbytes == 0
