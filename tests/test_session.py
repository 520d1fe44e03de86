"""The sans-I/O session core, driven without a socket: events and a fake clock in, messages,
records and decisions out. Every ordering, commit, replay, roll-over and error decision."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from livekit.plugins.openai_rt import protocol as p, records as r, session as s
from livekit.plugins.openai_rt.errors import Action
from tests.session_harness import WALL0, SessionHarness

BYTES_PER_SECOND = p.PCM16.bytes_per_second
MIN_COMMIT_BYTES = p.PCM16.min_commit_bytes
CHUNK_BYTES = p.PCM16.chunk_bytes


def pcm(n: int, tag: int) -> bytes:
    """``n`` bytes whose content says where they came from (tag and offset)."""
    return bytes((tag + i // 2) % 256 for i in range(n))


class Harness(SessionHarness[r.Output]):
    """A transcription session, a clock and a socket that records what the session sends."""

    def __init__(
        self,
        model: str = "gpt-realtime-whisper",
        *,
        turn_detection: p.TurnDetection | None = None,
        replay_limit: int = 30 * BYTES_PER_SECOND,
        local_vad: bool = False,
        skip_silence: bool = False,
        audio_format: p.AudioFormat = p.PCM16,
        **timers: float,
    ) -> None:
        super().__init__(
            s.TranscriptionSession(
                p.SessionConfig(
                    model=model,
                    language="en",
                    turn_detection=turn_detection,
                    audio_format=audio_format,
                ),
                timers=s.Timers(**timers),
                replay_limit_bytes=replay_limit,
                local_vad=local_vad,
                skip_silence=skip_silence,
            )
        )

    # -- driving ---------------------------------------------------------------------------

    def open(self, *, expires_in: float | None = None) -> None:
        """Connect, open, and have the server create and configure the session."""
        self.configure(p.SessionUpdated("sess_1", {}), expires_in=expires_in)

    # -- reading ---------------------------------------------------------------------------

    def appended(self, messages: list[dict[str, Any]] | None = None) -> bytes:
        msgs = self.sent if messages is None else messages
        return b"".join(
            base64.b64decode(m["audio"]) for m in msgs if m["type"] == "input_audio_buffer.append"
        )

    def commits(self, messages: list[dict[str, Any]] | None = None) -> list[str]:
        msgs = self.sent if messages is None else messages
        return [m["event_id"] for m in msgs if m["type"] == "input_audio_buffer.commit"]

    def finals(self) -> list[tuple[str, str]]:
        self.take()
        return [
            (o.item_id, o.text)
            for o in self.outputs
            if isinstance(o, r.Transcript) and o.kind == "final"
        ]

    def usage(self) -> list[r.UsageRecord]:
        self.take()
        return [o for o in self.outputs if isinstance(o, r.UsageRecord)]


def segments_of(h: Harness) -> list[bytes]:
    """The audio of each committed server item, in the order it was sent (appends between
    commits, since the last clear)."""
    out: list[bytes] = []
    current = bytearray()
    for m in h.sent:
        if m["type"] == "input_audio_buffer.append":
            current += base64.b64decode(m["audio"])
        elif m["type"] == "input_audio_buffer.commit":
            out.append(bytes(current))
            current.clear()
        elif m["type"] == "input_audio_buffer.clear":
            current.clear()
    return out


def completed(item: str, text: str = "t", usage: p.Usage | None = None) -> p.TranscriptCompleted:
    return p.TranscriptCompleted(item_id=item, transcript=text, usage=usage)


# -- states ---------------------------------------------------------------------------------


def test_states_follow_the_transition_table() -> None:
    h = Harness()
    assert h.session.state is s.State.IDLE
    with pytest.raises(RuntimeError, match="idle -> configuring"):
        h.session.socket_opened(0.0, wall=WALL0)
    h.session.connecting()
    h.session.connect_failed()
    assert h.session.state is s.State.IDLE
    h.open()
    assert h.session.state is s.State.LIVE
    for state, targets in s.TRANSITIONS.items():
        assert state not in targets
    assert not s.TRANSITIONS[s.State.FINISHED] and not s.TRANSITIONS[s.State.FAILED]


def test_nothing_but_the_configuration_goes_out_before_session_updated() -> None:
    h = Harness()
    h.session.connecting()
    h.session.audio(pcm(10_000, 1))  # audio before the socket is even open
    h.session.socket_opened(0.0, wall=WALL0)
    assert isinstance(h.take()[0], r.Configure)
    first = h.flush_socket()
    assert [m["type"] for m in first] == ["session.update"]
    h.session.audio(pcm(5_000, 2))
    assert h.flush_socket() == []  # still configuring: audio waits in the ledger
    h.server(p.SessionUpdated("sess_1", {}))
    replay = [o for o in h.take() if isinstance(o, r.Replay)]
    assert replay and replay[0].plan.start == 0
    sent = h.flush_socket()
    assert h.appended() == pcm(10_000, 1) + pcm(5_000, 2)
    assert all(len(base64.b64decode(m["audio"])) <= CHUNK_BYTES for m in sent)


# -- commits --------------------------------------------------------------------------------


def test_a_flush_commits_exactly_the_audio_before_it() -> None:
    h = Harness()
    h.open()
    a, b = pcm(7_000, 1), pcm(9_000, 2)
    h.session.audio(a)
    assert h.session.flush()
    h.session.audio(b)
    assert h.session.flush()
    h.flush_socket()
    assert segments_of(h) == [a, b]
    assert h.commits() == ["commit_0", "commit_1"]


def test_a_flush_under_100_ms_keeps_its_audio_for_the_next_commit() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(MIN_COMMIT_BYTES - 2, 1))
    assert not h.session.flush()
    h.session.audio(pcm(100, 2))
    assert h.session.flush()
    h.flush_socket()
    assert segments_of(h) == [pcm(MIN_COMMIT_BYTES - 2, 1) + pcm(100, 2)]


def test_server_vad_sessions_ignore_flushes() -> None:
    h = Harness("gpt-4o-mini-transcribe", turn_detection={"type": "server_vad"})
    h.open()
    h.session.audio(pcm(10_000, 1))
    assert not h.session.flush()
    h.flush_socket()
    assert h.commits() == []


def test_end_of_input_pads_a_short_tail_and_finishes_after_the_last_result() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(1_000, 1))
    h.session.end_input()
    h.flush_socket()
    assert segments_of(h) == [pcm(1_000, 1) + bytes(MIN_COMMIT_BYTES - 1_000)]
    assert h.session.state is s.State.LIVE
    h.server(p.Committed("i1", None))
    h.server(completed("i1", "hello"))
    assert h.finals() == [("i1", "hello")]
    assert h.session.state is s.State.FINISHED
    assert isinstance(h.session.ending, r.Finish)


def test_end_of_input_with_no_audio_finishes_without_a_socket() -> None:
    h = Harness()
    h.session.end_input()
    assert h.session.state is s.State.FINISHED
    assert isinstance(h.take()[-1], r.Finish)


# -- ordering --------------------------------------------------------------------------------


def three_commits(h: Harness) -> None:
    for tag in (1, 2, 3):
        h.session.audio(pcm(6_000, tag))
        h.session.flush()
    h.flush_socket()


def test_finals_come_in_commit_order_whatever_order_completions_arrive_in() -> None:
    h = Harness()
    h.open()
    three_commits(h)
    h.server(p.Committed("a", None))
    h.server(p.Committed("b", "a"))
    h.server(p.Committed("c", "b"))
    h.server(completed("c", "third"))
    h.server(completed("b", "second"))
    assert h.finals() == []
    h.server(completed("a", "first"))
    assert h.finals() == [("a", "first"), ("b", "second"), ("c", "third")]


def test_a_completion_before_its_committed_is_parked_until_it_arrives() -> None:
    h = Harness()
    h.open()
    three_commits(h)
    h.server(p.Committed("a", None))
    h.server(completed("b", "second"))  # two commits wait: b cannot be guessed
    h.server(completed("a", "first"))
    assert h.finals() == [("a", "first")]
    h.server(p.Committed("b", "a"))
    assert h.finals() == [("a", "first"), ("b", "second")]


def test_a_completion_for_an_unnamed_item_binds_to_the_only_waiting_commit() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()
    h.server(completed("x", "only"))  # its committed never came
    assert h.finals() == [("x", "only")]
    h.server(p.Committed("x", None))  # a late committed changes nothing
    assert h.finals() == [("x", "only")]


def test_a_late_delta_for_a_released_item_is_not_an_interim() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()
    h.server(p.Committed("a", None))
    h.server(completed("a", "done"))
    h.take()
    h.server(p.TranscriptDelta("a", " late"))
    assert interims(h.take()) == []


# -- interims -------------------------------------------------------------------------------


def interims(outputs: list[r.Output]) -> list[tuple[str, str]]:
    return [(o.item_id, o.text) for o in outputs if isinstance(o, r.Transcript)]


def transcripts(outputs: list[r.Output]) -> list[tuple[str, str, str]]:
    return [(o.kind, o.item_id, o.text) for o in outputs if isinstance(o, r.Transcript)]


def test_streaming_models_show_the_open_items_text_before_the_commit() -> None:
    h = Harness()
    h.open()
    h.server(p.TranscriptDelta("n1", "Hel"))
    h.server(p.TranscriptDelta("n1", "lo"))
    assert interims(h.take()) == [("n1", "Hel"), ("n1", "Hello")]


def test_a_commit_makes_the_streamed_text_a_preflight_and_the_final_equals_the_last_one() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.server(p.TranscriptDelta("n1", "Hello"))
    h.take()
    h.session.flush()
    # at the commit itself, before anything goes out: the text so far
    assert transcripts(h.take()) == [("preflight", "n1", "Hello")]
    h.flush_socket()
    h.server(p.TranscriptDelta("n1", " world"))  # the server's last delta, before committed
    h.server(p.Committed("n1", None))
    h.server(p.TranscriptDelta("n1", ""))  # a delta that changes nothing says nothing
    h.server(completed("n1", "Hello world"))
    assert transcripts(h.take()) == [
        ("preflight", "n1", "Hello world"),
        ("final", "n1", "Hello world"),
    ]
    preflight = next(o for o in h.outputs if isinstance(o, r.Transcript) and o.kind == "preflight")
    assert (preflight.start, preflight.end) == (0.0, 6_000 / BYTES_PER_SECOND)


def test_text_that_arrives_after_the_commit_is_a_preflight_from_its_committed_on() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.flush()  # no text yet: nothing to show at the commit
    h.flush_socket()
    h.server(p.TranscriptDelta("n1", "Hi"))  # which item? the committed one or the next
    h.server(p.Committed("n1", None))  # ... the committed one
    h.server(p.TranscriptDelta("n1", " there"))
    h.server(completed("n1", "Hi there"))
    assert transcripts(h.take()) == [
        ("interim", "n1", "Hi"),
        ("preflight", "n1", "Hi"),
        ("preflight", "n1", "Hi there"),
        ("final", "n1", "Hi there"),
    ]


def test_a_preflight_item_the_server_names_otherwise_keeps_its_text() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.server(p.TranscriptDelta("pre", "Good"))
    h.session.flush()
    h.flush_socket()
    h.server(p.Committed("item_1", None))
    h.server(p.TranscriptDelta("item_1", " day"))
    h.server(completed("item_1", "Good day"))
    assert transcripts(h.take()) == [
        ("interim", "pre", "Good"),
        ("preflight", "pre", "Good"),
        ("preflight", "item_1", "Good day"),
        ("final", "item_1", "Good day"),
    ]


def test_a_refused_commit_makes_its_item_the_open_one_again() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.server(p.TranscriptDelta("n1", "Wait"))
    h.session.flush()
    h.flush_socket()
    h.server(p.ServerError("input_audio_buffer_commit_empty", None, "too small", None, "commit_0"))
    h.take()
    h.server(p.TranscriptDelta("n1", " for it"))  # the user is still speaking
    assert transcripts(h.take()) == [("interim", "n1", "Wait for it")]


def test_models_that_answer_after_the_commit_show_interims_not_preflights() -> None:
    h = Harness("gpt-4o-mini-transcribe")
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()
    h.server(p.Committed("a", None))
    h.server(p.TranscriptDelta("a", "Hi"))
    h.server(completed("a", "Hi"))
    assert transcripts(h.take()) == [("interim", "a", "Hi"), ("final", "a", "Hi")]


def test_the_open_items_interim_state_is_one_slot() -> None:
    h = Harness()
    h.open()
    for i in range(100):
        h.server(p.TranscriptDelta(f"ghost{i}", "x"))
    assert interims(h.take())[-1] == ("ghost99", "x")
    assert h.session.results.held_texts == 1


def test_models_that_answer_after_the_commit_show_no_interim_for_an_uncommitted_item() -> None:
    h = Harness("gpt-4o-mini-transcribe")
    h.open()
    h.server(p.TranscriptDelta("never_committed", "ghost"))
    assert interims(h.take()) == []


# -- refused commits -------------------------------------------------------------------------


def test_a_refused_commit_goes_with_the_next_commit() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()
    h.server(p.ServerError("input_audio_buffer_commit_empty", None, "too small", None, "commit_0"))
    h.session.audio(pcm(6_000, 2))
    h.session.flush()
    h.flush_socket()
    assert h.commits() == ["commit_0", "commit_1"]
    h.server(p.Committed("b", None))
    h.server(completed("b", "both"))
    seg_usage = h.usage()
    assert h.finals() == [("b", "both")]
    assert seg_usage[0].audio_seconds == 12_000 / BYTES_PER_SECOND  # both halves, one item


def test_a_refused_commit_without_event_id_binds_to_the_oldest_unanswered_commit() -> None:
    h = Harness()
    h.open()
    three_commits(h)
    h.server(p.Committed("a", None))
    # the refusal names no commit: it is the oldest one no committed answered (the second),
    # never the third's, whose committed may still come
    h.server(p.ServerError("input_audio_buffer_commit_empty", None, "too small", None, None))
    h.server(p.Committed("c", "a"))
    h.server(completed("a", "first"))
    h.server(completed("c", "second and third"))
    assert h.finals() == [("a", "first"), ("c", "second and third")]
    seconds = [u.audio_seconds for u in h.usage()]
    assert seconds == [6_000 / BYTES_PER_SECOND, 12_000 / BYTES_PER_SECOND]


def test_a_refused_final_commit_is_retried_once_then_let_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.end_input()
    h.flush_socket()
    refused = p.ServerError("input_audio_buffer_commit_empty", None, "too small", None, None)
    h.server(refused)
    h.flush_socket()
    assert h.commits() == ["commit_0", "commit_1"]
    h.server(refused)
    assert h.session.state is s.State.FINISHED
    assert any("refused to commit the last 125 ms" in r.getMessage() for r in caplog.records)


# -- failures of one item ----------------------------------------------------------------------


def test_a_failed_item_is_a_warning_and_releases_the_ones_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    h.open()
    three_commits(h)
    for item, prev in (("a", None), ("b", "a"), ("c", "b")):
        h.server(p.Committed(item, prev))
    h.server(completed("c", "third"))
    h.server(p.TranscriptFailed("a", p.ServerError(None, "server_error", "failed")))
    h.server(completed("b", "second"))
    assert h.finals() == [("b", "second"), ("c", "third")]
    assert [u.item_id for u in h.usage()] == ["a", "b", "c"]
    assert [r.levelno for r in caplog.records if "failed for one item" in r.getMessage()] == [
        logging.WARNING
    ]
    assert h.session.ending is None


# -- reconnects and replay ---------------------------------------------------------------------


def test_a_lost_socket_replays_exactly_what_is_owed() -> None:
    h = Harness()
    h.open()
    a, b, c = pcm(6_000, 1), pcm(7_200, 2), pcm(4_800, 3)
    h.session.audio(a)
    h.session.flush()
    h.session.audio(b)
    h.session.flush()
    h.session.audio(c)
    h.flush_socket()
    h.server(p.Committed("a", None))
    h.server(completed("a", "first"))
    ending = h.lose_socket()
    assert isinstance(ending, r.Reconnect) and ending.failure.kind == "connection"
    assert h.session.state is s.State.IDLE
    h.sent.clear()
    h.open()
    h.flush_socket()
    assert segments_of(h) == [b]
    assert h.appended() == b + c
    h.server(p.Committed("b2", None))
    h.server(completed("b2", "second"))
    assert h.finals() == [("a", "first"), ("b2", "second")]


def test_a_flush_taken_while_the_socket_is_blocked_is_never_lost_or_merged() -> None:
    # the socket stopped reading: the commit is taken and never reported sent
    h = Harness()
    h.open()
    a, b = pcm(7_200, 1), pcm(7_200, 2)
    h.session.audio(a)
    h.session.flush()
    msg = h.session.data_to_send(h.now)  # the send that blocks
    assert msg is not None
    h.tick(h.session.timers.result_timeout)  # ... until the session gives up on the socket
    assert isinstance(h.session.ending, r.Reconnect)
    assert "blocked" in h.session.ending.failure.message
    h.session.socket_released()
    h.session.audio(b)  # the next utterance arrives while reconnecting
    h.session.flush()
    h.sent.clear()
    h.open()
    h.flush_socket()
    assert segments_of(h) == [a, b]


def test_a_replay_loses_exactly_what_the_bound_let_go(caplog: pytest.LogCaptureFixture) -> None:
    chunk = CHUNK_BYTES
    h = Harness(replay_limit=4 * chunk)
    h.open()
    first, second = pcm(3 * chunk, 1), pcm(3 * chunk, 2)
    h.session.audio(first)
    h.session.flush()
    h.session.audio(second)
    h.session.flush()
    h.flush_socket()
    h.lose_socket()
    tail = pcm(2 * chunk, 3)
    h.session.audio(tail)  # arrives while no socket is live: 8 chunks held, bound 4
    h.sent.clear()
    h.open()
    h.flush_socket()
    replays = [o for o in h.take() if isinstance(o, r.Replay)]
    assert replays[-1].plan.lost_bytes == 4 * chunk
    assert h.appended() == second[chunk:] + tail  # contiguous from the oldest byte kept
    assert segments_of(h) == [second[chunk:]]
    warnings = [r.getMessage() for r in caplog.records if "could not be replayed" in r.getMessage()]
    assert len(warnings) == 1 and "0.20 s older than the replay bound" in warnings[0]
    # the wholly lost utterance ends with no final and is not billed
    h.server(p.Committed("b", None))
    h.server(completed("b", "second"))
    assert h.finals() == [("b", "second")]
    assert [u.item_id for u in h.usage()] == ["b"]


def test_the_bound_never_cuts_audio_a_slow_socket_has_not_sent_yet() -> None:
    chunk = CHUNK_BYTES
    h = Harness(replay_limit=4 * chunk)
    h.open()
    audio = pcm(20 * chunk, 1)
    h.session.audio(audio)  # 5x the bound arrives before the socket sends any of it
    h.session.flush()
    h.flush_socket()
    assert segments_of(h) == [audio]


def test_server_vad_replay_merges_undone_audio_and_maps_server_time() -> None:
    h = Harness("gpt-4o-mini-transcribe", turn_detection={"type": "server_vad"})
    h.open()
    h.session.audio(pcm(48_000, 1))  # 1 s
    h.flush_socket()
    h.server(p.SpeechStarted("a", 100))
    h.server(p.SpeechStopped("a", 500))
    h.server(p.Committed("a", None))
    h.server(completed("a", "first"))
    h.server(p.SpeechStarted("b", 600))
    h.lose_socket(1011, "internal error")
    h.sent.clear()
    h.open()
    h.flush_socket()
    assert h.appended() == pcm(48_000, 1)[24_000:]  # the server finds the turn again
    # the new socket's audio clock starts at 0.5 s of the stream
    h.server(p.SpeechStarted("b2", 100))
    h.server(p.SpeechStopped("b2", 400))
    h.server(p.Committed("b2", None))
    h.server(completed("b2", "second"))
    h.take()
    starts = [o.at for o in h.outputs if isinstance(o, r.SpeechStart)]
    ends = [o.at for o in h.outputs if isinstance(o, r.SpeechEnd)]
    assert starts == [0.1, 0.6] and ends == [0.5, 0.9]
    finals = [o for o in h.outputs if isinstance(o, r.Transcript) and o.kind == "final"]
    assert [(f.start, f.end) for f in finals] == [(0.0, 0.5), (0.5, 0.9)]


def test_a_stream_vad_silences_the_servers_speech_events() -> None:
    h = Harness("gpt-4o-mini-transcribe", turn_detection={"type": "server_vad"}, local_vad=True)
    h.open()
    h.session.audio(pcm(48_000, 1))
    h.server(p.SpeechStarted("a", 100))
    h.server(p.SpeechStopped("a", 500))
    assert not [o for o in h.take() if isinstance(o, r.SpeechStart | r.SpeechEnd)]


# -- timers ---------------------------------------------------------------------------------


def test_set_up_has_an_absolute_deadline() -> None:
    h = Harness(configure_timeout=3.0)
    h.session.connecting()
    h.session.socket_opened(0.0, wall=WALL0)
    for _ in range(5):  # whatever else arrives (pongs, unknown events) does not restart it
        h.tick(0.5)
        h.server(p.Unknown("x"))
    assert h.session.ending is None
    h.tick(0.5)
    assert isinstance(h.session.ending, r.Reconnect)
    assert h.session.ending.failure.kind == "timeout"
    assert "no session.updated within 3 s" in h.session.ending.failure.message


def test_the_watchdog_replaces_a_session_that_owes_a_result_and_says_nothing() -> None:
    h = Harness(result_timeout=2.0)
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()
    h.tick(1.5)
    h.server(p.Committed("a", None))  # word from the server restarts the watchdog
    h.tick(1.5)
    assert h.session.ending is None
    h.tick(0.5)
    assert isinstance(h.session.ending, r.Reconnect)
    assert "result_timeout=2 s" in h.session.ending.failure.message


@pytest.mark.parametrize(("final_timeout", "result_timeout"), [(10.0, 10.0), (2.0, 10.0)])
def test_end_of_input_on_a_stalled_session_reconnects_rather_than_losing_the_last_final(
    final_timeout: float, result_timeout: float
) -> None:
    h = Harness(final_timeout=final_timeout, result_timeout=result_timeout)
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.end_input()
    h.flush_socket()
    h.tick(min(final_timeout, result_timeout))
    assert isinstance(h.session.ending, r.Reconnect)  # not a Finish with a final missing
    h.session.socket_released()
    h.sent.clear()
    h.open()
    h.flush_socket()
    assert segments_of(h) == [pcm(6_000, 1)]
    h.server(p.Committed("a2", None))
    h.server(completed("a2", "last"))
    assert h.finals() == [("a2", "last")]
    assert h.session.state is s.State.FINISHED


def test_next_timer_is_the_earliest_deadline() -> None:
    h = Harness(result_timeout=4.0, rollover_margin=10.0)
    assert h.session.next_timer(0.0) is None
    h.open(expires_in=100.0)
    assert h.session.next_timer(h.now) == pytest.approx(90.0)
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()
    assert h.session.next_timer(h.now) == pytest.approx(4.0)


# -- roll-over and expiry ---------------------------------------------------------------------


def test_roll_over_waits_for_a_pause_and_goes_anyway_at_the_hard_deadline() -> None:
    h = Harness(rollover_margin=20.0, result_timeout=1000.0)
    h.open(expires_in=100.0)
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()  # a result is owed
    h.tick(85.0)
    assert h.session.ending is None
    h.server(p.Committed("a", None))
    h.server(completed("a", "x"))
    h.session.set_speaking(True)
    h.tick(1.0)
    assert h.session.ending is None  # speech in progress
    h.tick(9.0)  # hard deadline: 5 s before expiry
    assert isinstance(h.session.ending, r.RollOver)
    assert h.session.ending.reason == "session about to expire"


def test_roll_over_at_a_pause_replays_the_open_audio_whole() -> None:
    h = Harness(rollover_margin=20.0)
    h.open(expires_in=100.0)
    h.session.audio(pcm(7_200, 1))
    h.flush_socket()
    h.tick(81.0)
    assert isinstance(h.session.ending, r.RollOver)
    h.session.socket_released()
    h.sent.clear()
    h.open(expires_in=100.0)
    h.session.flush()
    h.flush_socket()
    assert segments_of(h) == [pcm(7_200, 1)]


@pytest.mark.parametrize(
    "end",
    [
        ("error", p.ServerError("session_expired", "invalid_request_error", "Your session hit")),
        ("close", 1001, "Your session hit the maximum duration of 60 minutes."),
    ],
)
def test_expiry_is_a_planned_roll_over_not_a_retry(end: tuple[Any, ...]) -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()
    if end[0] == "error":
        h.server(end[1])
    else:
        h.session.socket_closed(h.now, code=end[1], reason=end[2])
    assert isinstance(h.session.ending, r.RollOver)
    h.session.socket_released()
    h.sent.clear()
    h.open()
    h.flush_socket()
    assert segments_of(h) == [pcm(6_000, 1)]


# -- failures -------------------------------------------------------------------------------


def test_sessions_that_fail_right_after_opening_stop_the_stream() -> None:
    h = Harness()
    for _ in range(2):
        h.open()
        assert isinstance(h.lose_socket(1011, "boom"), r.Reconnect)
    h.open()
    ending = h.lose_socket(1011, "boom")
    assert isinstance(ending, r.Fail) and "3 sessions in a row" in ending.failure.message
    assert ending.failure.action is Action.FATAL
    assert h.session.state is s.State.FAILED


def test_a_session_that_lived_resets_the_count_of_instant_failures() -> None:
    h = Harness()
    for _ in range(5):
        h.open()
        h.tick(s.QUICK_FAILURE_SECONDS + 1)
        assert isinstance(h.lose_socket(1011, "boom"), r.Reconnect)


def test_a_configuration_error_while_configuring_is_fatal_with_advice() -> None:
    h = Harness()
    h.session.connecting()
    h.session.socket_opened(0.0, wall=WALL0)
    h.server(p.ServerError("invalid_model", "invalid_request_error", "Model not supported"))
    ending = h.session.ending
    assert isinstance(ending, r.Fail)
    assert "model_in_url" in ending.failure.message
    assert ending.failure.body["code"] == "invalid_model"


def test_an_unknown_error_once_live_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness()
    h.open()
    h.server(p.ServerError("brand_new_code", "invalid_request_error", "hmm"))
    assert h.session.ending is None
    assert any("brand_new_code" in r.getMessage() for r in caplog.records)


def test_a_close_4000_is_fatal_and_names_the_error() -> None:
    h = Harness()
    h.open()
    ending = h.lose_socket(4000, "invalid_request_error.invalid_value")
    assert isinstance(ending, r.Fail)
    assert ending.failure.body == {
        "close_code": 4000,
        "reason": "invalid_request_error.invalid_value",
    }


def test_frames_that_cannot_be_used_are_counted() -> None:
    h = Harness()
    h.open()
    h.server(p.Malformed("not JSON"))
    h.server(p.Unknown("brand.new"))
    h.session.binary_frame(2_000_000)
    assert h.session.skipped_frames == 3
    assert h.session.ending is None


# -- options --------------------------------------------------------------------------------


def test_an_option_change_during_set_up_reaches_the_server() -> None:
    h = Harness()
    h.session.connecting()
    h.session.socket_opened(0.0, wall=WALL0)
    h.flush_socket()
    h.session.update_config(
        p.SessionConfig(model="gpt-realtime-whisper", language="fr"), new_session=False
    )
    assert h.flush_socket() == []  # not before the first update is answered
    h.server(p.SessionUpdated("sess_1", {}))
    updates = [m for m in h.flush_socket() if m["type"] == "session.update"]
    assert [u["session"]["audio"]["input"]["transcription"]["language"] for u in updates] == ["fr"]


def test_a_live_option_change_is_one_update_and_a_model_change_a_new_session() -> None:
    h = Harness()
    h.open()
    h.session.update_config(
        p.SessionConfig(model="gpt-realtime-whisper", language="de"), new_session=False
    )
    assert [m["type"] for m in h.flush_socket()] == ["session.update"]
    h.session.update_config(p.SessionConfig(model="gpt-live-transcribe"), new_session=True)
    h.session.audio(pcm(6_000, 1))
    h.session.flush()
    h.flush_socket()
    h.tick(1.0)
    assert h.session.ending is None  # a result is owed: wait for the boundary
    h.server(p.Committed("a", None))
    h.server(completed("a", "x"))
    h.tick(1.0)
    assert isinstance(h.session.ending, r.RollOver)
    h.session.socket_released()
    h.session.connecting()
    h.session.socket_opened(h.now, wall=WALL0)
    update = h.flush_socket()[0]
    assert update["session"]["audio"]["input"]["transcription"]["model"] == "gpt-live-transcribe"


# -- usage ----------------------------------------------------------------------------------


def test_usage_is_the_servers_duration_or_the_committed_audio_and_its_tokens() -> None:
    h = Harness()
    h.open()
    three_commits(h)
    for item, prev in (("a", None), ("b", "a"), ("c", "b")):
        h.server(p.Committed(item, prev))
    h.server(completed("a", usage=p.Usage("duration", seconds=0.2)))
    h.server(
        completed(
            "b",
            usage=p.Usage(
                "tokens", input_tokens=10, output_tokens=3, audio_tokens=8, text_tokens=2
            ),
        )
    )
    h.server(completed("c"))
    usage = h.usage()
    assert [u.audio_seconds for u in usage] == [0.2, 0.125, 0.125]
    assert (usage[1].input_tokens, usage[1].audio_tokens, usage[1].text_tokens) == (10, 8, 2)
