"""The session core's voice and telephony decisions, without a socket: units of the input
format (G.711), silence cleared instead of committed, the hold on audio the stream's VAD has
not judged, and taking over a prewarmed session."""

from __future__ import annotations

import logging

import pytest

from livekit.plugins.openai_rt import protocol as p, records as r, session as s
from livekit.plugins.openai_rt.speech import SILENCE_DBFS
from tests.session_harness import WALL0
from tests.test_session import Harness, completed, pcm, segments_of

LOUD = -20.0  # dBFS: speech
HUSH = -80.0  # dBFS: silence


def sent(h: Harness) -> list[str]:
    """What the session sent, appends left out."""
    return [m["type"] for m in h.sent if m["type"] != "input_audio_buffer.append"]


def transcripts(h: Harness) -> list[tuple[str, str]]:
    h.take()
    return [(o.kind, o.text) for o in h.outputs if isinstance(o, r.Transcript)]


# -- G.711 units -----------------------------------------------------------------------------


def test_g711_counts_one_byte_per_8_khz_sample() -> None:
    h = Harness(audio_format=p.PCMU)
    h.open()
    assert h.sent[0]["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    h.session.audio(pcm(799, 1))
    assert not h.session.flush()  # 99.9 ms: under the 100 ms minimum of 800 bytes
    h.session.audio(pcm(1, 2))
    assert h.session.flush()
    h.session.audio(pcm(1_000, 3))
    h.session.end_input()  # 125 ms: committed as it is
    h.flush_socket()
    assert [len(a) for a in segments_of(h)] == [800, 1_000]
    appends = [m for m in h.sent if m["type"] == "input_audio_buffer.append"]
    assert max(len(m["audio"]) for m in appends) <= 4 * 400 // 3 + 4  # 50 ms appends: 400 B
    h.server(p.Committed("a", None))
    h.server(completed("a"))
    assert [u.audio_seconds for u in h.usage()] == [0.1]


def test_g711_pads_a_short_tail_with_its_own_silence() -> None:
    for fmt in (p.PCMU, p.PCMA):
        h = Harness(audio_format=fmt)
        h.open()
        h.session.audio(pcm(300, 1))
        h.session.end_input()
        h.flush_socket()
        assert segments_of(h) == [pcm(300, 1) + bytes([fmt.silence_byte]) * 500]


def test_g711_server_times_are_8_bytes_per_ms() -> None:
    h = Harness(
        "gpt-4o-mini-transcribe", turn_detection={"type": "server_vad"}, audio_format=p.PCMA
    )
    h.open()
    h.session.audio(pcm(8_000, 1))  # 1 s
    h.flush_socket()
    h.server(p.SpeechStarted("a", 250))
    h.server(p.SpeechStopped("a", 750))
    h.take()
    assert [o.at for o in h.outputs if isinstance(o, r.SpeechStart | r.SpeechEnd)] == [0.25, 0.75]


# -- no billed silence -------------------------------------------------------------------------


def test_a_silent_flush_is_cleared_answered_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(skip_silence=True)
    h.open()
    speech, hush = pcm(9_600, 1), pcm(9_600, 2)
    h.session.audio(speech, level=LOUD)
    assert h.session.flush()
    h.session.audio(hush, level=HUSH)
    h.flush_socket()  # the silence went out before the flush
    assert not h.session.flush()
    h.session.audio(speech, level=LOUD)
    h.session.flush()
    h.flush_socket()
    # the server's buffer held the silence: a clear, then the next audio, then its commit
    assert sent(h) == [
        "session.update",
        "input_audio_buffer.commit",
        "input_audio_buffer.clear",
        "input_audio_buffer.commit",
    ]
    assert segments_of(h) == [speech, speech]
    # the silent flush is answered by an empty final, after the final of the turn before it
    assert transcripts(h) == []
    h.server(p.Committed("a", None))
    h.server(completed("a", "first"))
    assert transcripts(h) == [("final", "first"), ("final", "")]
    assert h.session.skipped_seconds == 0.2
    (line,) = [rec for rec in caplog.records if "no speech" in rec.getMessage()]
    assert line.levelno == logging.DEBUG and "0.20 s" in line.getMessage()
    assert "-80 dBFS" in line.getMessage()


def test_silence_never_sent_needs_no_clear() -> None:
    h = Harness(skip_silence=True)
    h.session.audio(pcm(9_600, 1), level=HUSH)
    h.session.flush()  # before any socket: dropped before it could be sent
    h.open()
    h.session.audio(pcm(9_600, 2), level=LOUD)
    h.session.flush()
    h.flush_socket()
    assert sent(h) == ["session.update", "input_audio_buffer.commit"]
    assert h.appended() == pcm(9_600, 2)


def test_only_audio_that_may_hold_speech_counts() -> None:
    h = Harness(skip_silence=True)
    h.open()
    assert h.session.wants_level
    h.session.audio(pcm(4_800, 1), level=SILENCE_DBFS)  # at the gate: silence
    assert h.session.wants_level
    h.session.audio(pcm(4_800, 2), level=SILENCE_DBFS + 1)  # over it: may be speech
    assert not h.session.wants_level  # known to hold speech: no need to measure more
    h.session.audio(pcm(4_800, 3))  # not measured: counted as speech anyway
    assert h.session.flush()
    assert h.session.wants_level  # the next turn is measured again
    h.session.audio(pcm(4_800, 4))  # level unknown: may hold speech
    assert h.session.flush()
    assert h.session.skipped_seconds == 0.0


def test_a_silent_tail_at_the_end_of_input_is_cleared_not_padded() -> None:
    h = Harness(skip_silence=True)
    h.open()
    h.session.audio(pcm(9_600, 1), level=LOUD)
    h.session.flush()
    h.session.audio(pcm(1_000, 2), level=HUSH)
    h.session.end_input()
    h.flush_socket()
    assert segments_of(h) == [pcm(9_600, 1)]
    h.server(p.Committed("a", None))
    h.server(completed("a"))
    assert h.session.state is s.State.FINISHED


def test_skip_silence_off_commits_silence() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(9_600, 1), level=HUSH)
    assert h.session.flush()
    h.flush_socket()
    assert segments_of(h) == [pcm(9_600, 1)]


def test_a_refused_commit_keeps_its_audio_on_the_server_no_clear() -> None:
    # the server keeps a refused commit's audio (§3.3): the next commit carries it, so the
    # sender must not think the buffer starts anywhere else and clear it
    h = Harness(skip_silence=True)
    h.open()
    h.session.audio(pcm(6_000, 1), level=LOUD)
    h.session.flush()
    h.flush_socket()
    h.server(p.ServerError("input_audio_buffer_commit_empty", None, "too small", None, "commit_0"))
    h.session.audio(pcm(6_000, 2), level=LOUD)
    h.session.flush()
    h.flush_socket()
    assert "input_audio_buffer.clear" not in sent(h)


def test_server_vad_commits_move_the_buffer_without_a_clear() -> None:
    h = Harness("gpt-4o-mini-transcribe", turn_detection={"type": "server_vad"}, skip_silence=True)
    h.open()
    h.session.audio(pcm(48_000, 1))
    h.flush_socket()
    h.server(p.SpeechStarted("a", 100))
    h.server(p.SpeechStopped("a", 500))
    h.server(p.Committed("a", None))
    h.session.audio(pcm(9_600, 2))
    h.flush_socket()
    assert "input_audio_buffer.clear" not in sent(h)


# -- the stream's VAD --------------------------------------------------------------------------


def test_audio_the_vad_has_not_judged_is_held_and_its_end_of_speech_cuts_there() -> None:
    h = Harness(local_vad=True, skip_silence=True)
    h.open()
    h.session.audio(pcm(24_000, 1))  # 0.5 s, none of it judged yet
    assert h.flush_socket() == []
    h.session.vad_progress(4_800)
    h.session.set_speaking(True)
    h.session.vad_progress(14_400)
    h.flush_socket()
    assert h.appended() == pcm(24_000, 1)[:14_400]
    h.session.set_speaking(False)
    assert h.session.flush(at=14_400)  # end of speech at 0.3 s
    h.session.vad_progress(24_000)
    h.flush_socket()
    assert segments_of(h) == [pcm(24_000, 1)[:14_400]]
    assert h.appended() == pcm(24_000, 1)  # the rest went out as it was judged


def test_a_flush_waits_until_the_vad_has_judged_its_audio() -> None:
    h = Harness(local_vad=True, skip_silence=True)
    h.open()
    audio = pcm(24_000, 1)
    h.session.audio(audio)
    h.session.vad_progress(1_536)  # the VAD's window: 32 ms
    h.session.set_speaking(True)
    assert not h.session.flush()  # the VAD is 0.47 s behind: the flush waits
    h.session.vad_progress(9_216)
    h.session.set_speaking(False)
    h.session.flush(at=9_216)  # an end of speech before the flush still cuts there
    h.session.vad_progress(23_040)  # less than a window short of the flush: judged
    h.flush_socket()
    assert segments_of(h) == [audio[:9_216]]  # the rest held no speech: cleared
    assert h.session.skipped_seconds == pytest.approx((24_000 - 9_216) / 48_000)


def test_a_lost_vad_releases_the_hold_and_every_later_byte_may_be_speech() -> None:
    h = Harness(local_vad=True, skip_silence=True)
    h.open()
    h.session.audio(pcm(9_600, 1))
    h.session.vad_progress(1_536)
    assert not h.session.flush()
    h.session.vad_lost()
    h.flush_socket()
    assert segments_of(h) == [pcm(9_600, 1)]


# -- a prewarmed session ---------------------------------------------------------------------


def adopt(h: Harness, configured: p.SessionConfig, *, opened_ago: float = 5.0) -> None:
    h.session.connecting()
    h.session.socket_adopted(
        h.now,
        wall=WALL0 + h.now,
        opened_at=h.now - opened_ago,
        created=p.SessionCreated("sess_w", WALL0 + h.now - opened_ago + 100.0),
        configured=configured,
    )


def test_a_prewarmed_session_is_live_at_once_and_sends_no_configuration() -> None:
    h = Harness()
    adopt(h, h.session.config)
    assert h.session.state is s.State.LIVE
    assert h.session.session_id == "sess_w"
    h.session.audio(pcm(9_600, 1))
    h.session.flush()
    h.flush_socket()
    assert sent(h) == ["input_audio_buffer.commit"]
    assert h.appended() == pcm(9_600, 1)


def test_a_prewarmed_session_configured_otherwise_gets_an_update() -> None:
    h = Harness()
    adopt(h, p.SessionConfig(model="gpt-realtime-whisper", language="fr"))
    h.flush_socket()
    assert sent(h) == ["session.update"]
    assert h.sent[0]["session"]["audio"]["input"]["transcription"]["language"] == "en"


def test_a_prewarmed_sessions_lifetime_counts_from_when_it_opened() -> None:
    h = Harness(rollover_margin=10.0, result_timeout=1000.0)
    adopt(h, h.session.config, opened_ago=80.0)  # 100 s sessions, opened 80 s ago
    h.tick(9.0)
    assert h.session.ending is None
    h.tick(2.0)  # 91 s after it opened: 10 s before it expires
    assert isinstance(h.session.ending, r.RollOver)


def test_a_vad_that_does_not_say_where_it_is_falls_back_to_commits_at_the_flush() -> None:
    # a VAD whose events carry no audio position (timestamp 0, or a wall clock)
    for bogus in (0, 10**12):
        h = Harness(local_vad=True, skip_silence=True)
        h.open()
        h.session.audio(pcm(9_600, 1))
        assert h.flush_socket() == []  # held until the VAD says anything
        assert not h.session.vad_progress(bogus)
        h.flush_socket()
        assert h.appended() == pcm(9_600, 1)  # nothing held back any more
        h.session.set_speaking(True)
        h.session.audio(pcm(4_800, 2))
        assert h.session.flush()  # its end of speech: everything so far, never cleared
        h.flush_socket()
        assert segments_of(h) == [pcm(9_600, 1) + pcm(4_800, 2)]
