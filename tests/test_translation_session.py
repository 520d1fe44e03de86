"""The translation core, driven without a socket: the protocol codec, and the
``TranslationSession`` fed events and a fake clock (messages, records and decisions out).

Frames, segments, the held frame, the replay after a drop, the replay bound, usage, option
updates, errors, roll-over and the end of input."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest

from livekit.plugins.openai_rt import (
    protocol as p,
    records as r,
    session as s,
    translation_protocol as tp,
    translation_records as tr,
)
from livekit.plugins.openai_rt.errors import Action
from livekit.plugins.openai_rt.translation_ledger import HOLD_SECONDS
from livekit.plugins.openai_rt.translation_session import TranslationSession
from tests.session_harness import WALL0, SessionHarness

FRAME = tp.FRAME_BYTES


def pcm(frames: float, tag: int) -> bytes:
    """``frames`` frames of audio whose bytes say where they came from."""
    return bytes((tag + i // 2) % 256 for i in range(int(frames * FRAME)))


def out_text(delta: str, frame: int) -> tp.OutputTranscript:
    """A translated-text delta of the session's ``frame`` (1-based: ``elapsed_ms`` = its end)."""
    return tp.OutputTranscript(delta, frame * tp.FRAME_MS)


def out_audio(frame: int, data: bytes = b"\x01\x00" * 4) -> tp.OutputAudio:
    return tp.OutputAudio(base64.b64encode(data).decode(), frame * tp.FRAME_MS, 24000, 1)


class Harness(SessionHarness[tr.TranslationOutput]):
    """A translation session, a clock and a socket that records what the session sends."""

    def __init__(
        self,
        *,
        source: str | None = None,
        replay_limit: int = 30 * p.BYTES_PER_SECOND,
        segment_timeout: float = 2.0,
        **timers: float,
    ) -> None:
        super().__init__(
            TranslationSession(
                tp.TranslationConfig("gpt-realtime-translate", "es", source_transcription=source),
                timers=s.Timers(**timers),
                replay_limit_bytes=replay_limit,
                segment_timeout=segment_timeout,
            )
        )

    def open(self, *, expires_in: float | None = None, language: str = "es") -> None:
        self.configure(
            p.SessionUpdated("sess_1", {"audio": {"output": {"language": language}}}),
            expires_in=expires_in,
        )

    def sent_audio(self, messages: list[dict[str, Any]]) -> list[bytes]:
        return [
            base64.b64decode(m["audio"])
            for m in messages
            if m["type"] == "session.input_audio_buffer.append"
        ]

    def finals(self) -> list[tr.Translation]:
        self.take()
        return [o for o in self.outputs if isinstance(o, tr.Translation) and o.kind == "final"]

    def interims(self) -> list[tr.Translation]:
        self.take()
        return [o for o in self.outputs if isinstance(o, tr.Translation) and o.kind == "interim"]

    def usage(self) -> float:
        self.take()
        return sum(o.audio_seconds for o in self.outputs if isinstance(o, r.UsageRecord))


# -- the codec -----------------------------------------------------------------------------------


def test_url_is_the_translations_path_with_the_model_and_no_intent() -> None:
    assert (
        tp.translation_url("https://api.openai.com/v1", model="gpt-realtime-translate")
        == "wss://api.openai.com/v1/realtime/translations?model=gpt-realtime-translate"
    )
    assert (
        tp.translation_url("http://127.0.0.1:9/v1/?intent=x&k=v&model=old", model="m")
        == "ws://127.0.0.1:9/v1/realtime/translations?k=v&model=m"
    )
    with pytest.raises(ValueError, match="credentials"):
        tp.translation_url("https://u:pw@host/v1", model="m")
    with pytest.raises(ValueError, match="http"):
        tp.translation_url("ftp://host/v1", model="m")


def test_session_update_names_only_the_translation_fields_and_sends_nulls_to_clear() -> None:
    on = tp.session_update(
        tp.TranslationConfig("gpt-realtime-translate", "fr", "gpt-realtime-whisper", "far_field"),
        event_id="u1",
    )
    assert on == {
        "type": "session.update",
        "event_id": "u1",
        "session": {
            "audio": {
                "input": {
                    "transcription": {"model": "gpt-realtime-whisper"},
                    "noise_reduction": {"type": "far_field"},
                },
                "output": {"language": "fr"},
            }
        },
    }
    off = tp.session_update(tp.TranslationConfig("gpt-realtime-translate", "fr"))
    assert off["session"]["audio"]["input"] == {"transcription": None, "noise_reduction": None}
    assert "type" not in off["session"] and "model" not in off["session"]


def test_append_and_close_messages() -> None:
    msg = json.loads(tp.append_message(b"\x01\x02\x03\x04"))
    assert msg == {"type": "session.input_audio_buffer.append", "audio": "AQIDBA=="}
    assert json.loads(tp.CLOSE_MESSAGE) == {"type": "session.close"}


def test_elapsed_ms_names_the_end_of_its_frame() -> None:
    assert tp.ELAPSED_MS_MARKS == "frame_end"
    assert [tp.frames_through(ms) for ms in (0, 1, 200, 201, 400, 1400)] == [0, 1, 1, 2, 2, 7]


def test_server_events_are_parsed_and_never_raise() -> None:
    parse = tp.parse_server_event
    assert parse('{"type":"session.output_transcript.delta","delta":"Hola","elapsed_ms":1400}') == (
        tp.OutputTranscript("Hola", 1400)
    )
    assert parse('{"type":"session.input_transcript.delta","delta":"Hi"}') == tp.InputTranscript(
        "Hi", None
    )
    assert parse(
        '{"type":"session.output_audio.delta","delta":"AAA=","format":"pcm16","elapsed_ms":200}'
    ) == tp.OutputAudio("AAA=", 200, 24000, 1)
    assert parse('{"type":"session.closed","event_id":"e"}') == tp.SessionClosed()
    assert parse('{"type":"session.created","session":{"id":"sess_1","expires_at":5}}') == (
        p.SessionCreated("sess_1", 5.0)
    )
    err = parse('{"type":"error","error":{"type":"server_error","code":"x","message":"m"}}')
    assert err == p.ServerError("x", "server_error", "m")
    assert parse('{"type":"response.done"}') == p.Unknown("response.done")
    assert isinstance(parse("{not json"), p.Malformed)
    assert isinstance(parse('{"type":"session.output_transcript.delta"}'), p.Malformed)
    bad_rate = '{"type":"session.output_audio.delta","delta":"","sample_rate":"fast"}'
    assert isinstance(parse(bad_rate), p.Malformed)
    assert isinstance(
        parse('{"type":"session.output_transcript.delta","delta":"a","elapsed_ms":"1"}'),
        p.Malformed,
    )
    for huge in ("1e999", "-1e999"):  # JSON numbers Python reads as infinities
        delta = '{"type":"session.output_transcript.delta","delta":"a","elapsed_ms":' + huge + "}"
        assert isinstance(parse(delta), p.Malformed)


# -- sending -------------------------------------------------------------------------------------


def test_audio_waits_for_session_updated_and_goes_out_in_whole_frames() -> None:
    h = Harness()
    h.session.audio(pcm(1.5, 1))
    h.session.connecting()
    h.session.socket_opened(h.now, wall=WALL0)
    assert [m["type"] for m in h.flush_socket()] == ["session.update"]
    h.server(p.SessionUpdated("sess_1", {}))
    assert h.sent_audio(h.flush_socket()) == [pcm(1.5, 1)[:FRAME]]
    h.session.audio(pcm(0.5, 9))  # completes the second frame
    assert h.sent_audio(h.flush_socket()) == [pcm(1.5, 1)[FRAME:] + pcm(0.5, 9)]


def test_end_input_pads_the_last_frame_then_closes_the_session() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(1.25, 1))
    h.session.end_input(h.now)
    msgs = h.flush_socket()
    assert [m["type"] for m in msgs][-1] == "session.close"
    audio = b"".join(h.sent_audio(msgs))
    assert audio == pcm(1.25, 1) + bytes(FRAME * 3 // 4)
    assert h.flush_socket() == []  # session.close goes out once


def test_no_audio_at_all_finishes_without_a_socket() -> None:
    h = Harness()
    h.session.end_input(h.now)
    assert isinstance(h.session.ending, r.Finish)
    assert h.session.state is s.State.FINISHED


# -- frames, segments, finals ----------------------------------------------------------------------


def test_a_segment_final_waits_for_the_translation_of_its_last_frame() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(2, 1))
    h.flush_socket()
    assert h.session.flush(h.now)
    h.session.audio(pcm(1, 2))
    h.flush_socket()
    h.server(out_text("uno ", 1))
    h.server(out_text("dos ", 2))
    # frame 2 may still bring more deltas: the final is not out yet, the interim shows it all
    assert h.finals() == []
    assert h.interims()[-1].text == "uno dos "
    h.server(out_text("tres ", 3))  # a later frame: frame 2 is complete
    (final,) = h.finals()
    assert (final.text, final.language, final.runs) == ("uno dos ", "es", (("es", "uno dos "),))
    assert (final.start, final.end) == (0.0, 2 * FRAME / p.BYTES_PER_SECOND)
    assert final.source_text is None
    assert h.interims()[-1].text == "tres "  # the next segment's text starts afresh


def test_several_deltas_of_one_frame_stay_together() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(2, 1))
    h.flush_socket()
    h.session.flush(h.now)
    for delta in ("a", "b", "c"):
        h.server(out_text(delta, 2))
    h.session.audio(pcm(1, 2))
    h.flush_socket()
    h.server(out_text("d", 3))
    assert [f.text for f in h.finals()] == ["abc"]


def test_a_flush_cuts_at_the_last_frame_boundary_and_short_ones_are_skipped() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(1.6, 1))
    assert h.session.flush(h.now)  # cut after frame 1; the 0.6 frame goes on
    assert not h.session.flush(h.now)  # nothing whole since the cut
    h.session.audio(pcm(1.4, 2))
    assert h.session.flush(h.now)
    h.flush_socket()
    for frame in (1, 2, 3):
        h.server(out_text(f"f{frame} ", frame))
    h.session.end_input(h.now)
    h.flush_socket()
    h.server(tp.SessionClosed())
    assert [(f.text, f.start, f.end) for f in h.finals()] == [
        ("f1 ", 0.0, 0.2),
        ("f2 f3 ", 0.2, 0.6),
    ]
    assert isinstance(h.session.ending, r.Finish)


def test_the_held_frame_is_released_after_a_short_wait_when_the_server_goes_quiet() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(1, 1))
    h.flush_socket()
    h.session.flush(h.now)
    h.server(out_text("hola", 1))
    h.server(out_audio(1))
    h.take()
    assert not [o for o in h.outputs if isinstance(o, tr.TranslatedAudio)]
    assert h.session.next_timer(h.now) == pytest.approx(HOLD_SECONDS)
    h.tick(HOLD_SECONDS)
    assert [f.text for f in h.finals()] == ["hola"]
    assert len([o for o in h.outputs if isinstance(o, tr.TranslatedAudio)]) == 1


def test_a_segment_with_no_translation_times_out_and_late_text_goes_to_the_next() -> None:
    h = Harness(segment_timeout=1.5)
    h.open()
    h.session.audio(pcm(2, 1))
    h.flush_socket()
    h.session.flush(h.now)
    h.server(out_text("uno ", 1))
    h.tick(1.5)  # nothing for frame 2: the segment's wait ends
    assert [f.text for f in h.finals()] == ["uno "]
    h.server(out_text("dos ", 2))  # late, for the released segment
    h.session.audio(pcm(1, 2))
    h.flush_socket()
    h.server(out_text("tres ", 3))
    h.session.end_input(h.now)
    h.flush_socket()
    h.server(tp.SessionClosed())
    assert [f.text for f in h.finals()] == ["uno ", "dos tres "]


def test_source_text_goes_with_its_segment() -> None:
    h = Harness(source="gpt-realtime-whisper")
    h.open()
    h.session.audio(pcm(1, 1))
    h.session.end_input(h.now)
    h.flush_socket()
    h.server(tp.InputTranscript("hello", 200))
    h.server(out_text("hola", 200 // tp.FRAME_MS))
    h.server(tp.SessionClosed())
    (final,) = h.finals()
    assert (final.text, final.source_text) == ("hola", "hello")


def test_usage_is_every_byte_sent_and_the_session_finishes_at_session_closed() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(3, 1))
    h.session.flush(h.now)
    h.session.audio(pcm(0.5, 2))
    h.session.end_input(h.now)
    msgs = h.flush_socket()
    assert msgs[-1]["type"] == "session.close"
    assert h.session.ending is None
    h.server(tp.SessionClosed())
    assert isinstance(h.session.ending, r.Finish)
    assert h.usage() == pytest.approx(4 * FRAME / p.BYTES_PER_SECOND)


def test_no_session_closed_finishes_after_final_timeout_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(final_timeout=3.0)
    h.open()
    h.session.audio(pcm(2, 1))
    h.session.end_input(h.now)
    h.flush_socket()
    h.server(out_text("uno", 1))
    h.tick(3.0)
    assert isinstance(h.session.ending, r.Finish)
    assert [f.text for f in h.finals()] == ["uno"]
    assert any("no session.closed within 3 s" in rec.getMessage() for rec in caplog.records)


# -- drops and replay ----------------------------------------------------------------------------


def test_a_drop_replays_from_the_first_frame_not_known_complete() -> None:
    h = Harness()
    h.open()
    audio = pcm(4, 1)
    h.session.audio(audio)
    h.flush_socket()
    h.server(out_text("f1 ", 1))
    h.server(out_audio(1, b"\x01\x00"))
    h.server(out_text("f2-half ", 2))  # frame 2 held: its second delta never comes
    h.server(out_audio(2, b"\x02\x00"))
    assert isinstance(h.lose_socket(), r.Reconnect)
    h.open()
    replayed = h.sent_audio(h.flush_socket())
    assert b"".join(replayed) == audio[FRAME:]  # frame 1 is done; frame 2 goes again
    for frame, text in ((1, "f2 "), (2, "f3 "), (3, "f4 ")):
        h.server(out_text(text, frame))
    h.session.end_input(h.now)
    h.flush_socket()
    h.server(tp.SessionClosed())
    assert "".join(f.text for f in h.finals()) == "f1 f2 f3 f4 "
    audio_out = [o.audio for o in h.outputs if isinstance(o, tr.TranslatedAudio)]
    assert audio_out == [base64.b64encode(b"\x01\x00").decode()]  # frame 2's was dropped
    assert h.usage() == pytest.approx(7 * FRAME / p.BYTES_PER_SECOND)  # replays are billed


def test_a_drop_with_nothing_heard_replays_everything_not_confirmed() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(2, 1))
    h.flush_socket()
    h.lose_socket()
    h.session.audio(pcm(1, 2))  # audio keeps coming while there is no socket
    h.open()
    assert b"".join(h.sent_audio(h.flush_socket())) == pcm(2, 1) + pcm(1, 2)


def test_the_replay_bound_lets_the_oldest_frames_go_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness(replay_limit=2 * FRAME)
    h.open()
    h.session.audio(pcm(1, 1))
    h.session.flush(h.now)
    h.flush_socket()
    h.lose_socket()
    h.session.audio(pcm(3, 2))  # no socket: only the last two frames are kept
    caplog.set_level(logging.WARNING)
    h.open()
    assert b"".join(h.sent_audio(h.flush_socket())) == pcm(3, 2)[FRAME:]
    plan = [o.plan for o in h.take() if isinstance(o, r.Replay)][-1]
    assert (plan.lost_bytes, plan.owed_bytes) == (2 * FRAME, 2 * FRAME)
    warnings = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 1 and "0.40 s older than the replay bound" in warnings[0]
    assert h.finals() == []  # the lost segment had no text: no final


def test_instant_failures_stop_instead_of_looping() -> None:
    h = Harness()
    for _ in range(2):
        h.open()
        assert isinstance(h.lose_socket(), r.Reconnect)
    h.open()
    ending = h.lose_socket()
    assert isinstance(ending, r.Fail) and ending.failure.action is Action.FATAL
    assert "3 translation sessions in a row failed" in ending.failure.message


# -- errors, timers, roll-over ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "configuring", "decision"),
    [
        (p.ServerError("invalid_value", "invalid_request_error", "bad language"), True, r.Fail),
        (p.ServerError("server_error", "server_error", "oops"), False, r.Reconnect),
        (p.ServerError("session_expired", "invalid_request_error", "60 min"), False, r.RollOver),
        (p.ServerError("invalid_api_key", "invalid_request_error", "bad key"), False, r.Fail),
    ],
)
def test_server_errors_get_the_policy_verdict(
    error: p.ServerError, configuring: bool, decision: type
) -> None:
    h = Harness()
    if configuring:
        h.session.connecting()
        h.session.socket_opened(h.now, wall=WALL0)
    else:
        h.open()
    h.server(error)
    assert isinstance(h.session.ending, decision)


def test_an_unknown_error_while_live_is_a_warning() -> None:
    h = Harness()
    h.open()
    h.server(p.ServerError("mystery", "invalid_request_error", "hm"))
    assert h.session.ending is None


def test_close_codes() -> None:
    h = Harness()
    h.open()
    ending = h.lose_socket(1001, "Your session hit the maximum duration of 60 minutes.")
    assert isinstance(ending, r.RollOver)
    h.open()
    assert isinstance(h.lose_socket(4000, "invalid_request_error.invalid_model"), r.Fail)


def test_configure_timeout_and_blocked_send_reconnect() -> None:
    h = Harness(configure_timeout=2.0, result_timeout=3.0)
    h.session.connecting()
    h.session.socket_opened(h.now, wall=WALL0)
    h.flush_socket()
    h.tick(2.0)
    assert isinstance(h.session.ending, r.Reconnect)
    h.session.socket_released()
    h.open()
    h.session.audio(pcm(1, 1))
    assert h.session.data_to_send(h.now) is not None  # handed out, never reported sent
    h.tick(3.0)
    ending = h.session.ending
    assert isinstance(ending, r.Reconnect) and "blocked" in ending.failure.message


def test_roll_over_waits_for_a_pause_before_expiry() -> None:
    h = Harness(rollover_margin=10.0)
    h.open(expires_in=100.0)
    h.session.audio(pcm(1, 1))
    h.flush_socket()
    h.session.flush(h.now)  # a segment waits for its final
    h.session.set_speaking(True)
    h.tick(91.0)
    assert h.session.ending is None
    h.server(out_text("a", 1))
    h.tick(HOLD_SECONDS)  # the segment's final is out
    assert h.session.ending is None  # still speaking
    h.session.set_speaking(False)
    h.tick(0.1)
    assert isinstance(h.session.ending, r.RollOver)


def test_roll_over_goes_anyway_at_the_hard_deadline() -> None:
    h = Harness(rollover_margin=10.0)
    h.open(expires_in=100.0)
    h.session.set_speaking(True)
    h.tick(95.0)
    ending = h.session.ending
    assert isinstance(ending, r.RollOver) and ending.reason == "session about to expire"


def test_unknown_and_malformed_events_are_counted() -> None:
    h = Harness()
    h.open()
    h.server(p.Unknown("response.done"))
    h.server(p.Malformed("not JSON"))
    h.session.binary_frame(10)
    assert h.session.skipped_frames == 3
    assert h.session.ending is None


# -- option updates --------------------------------------------------------------------------------


def test_a_new_target_language_is_sent_live_and_starts_a_new_run() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(2, 1))
    h.flush_socket()
    h.server(out_text("hola ", 1))
    h.session.update_config(tp.TranslationConfig("gpt-realtime-translate", "fr"))
    (update,) = h.flush_socket()
    assert update["session"]["audio"]["output"] == {"language": "fr"}
    h.server(p.SessionUpdated("sess_1", {"audio": {"output": {"language": "fr"}}}))
    h.server(out_text("bonjour ", 2))
    h.session.end_input(h.now)
    h.flush_socket()
    h.server(tp.SessionClosed())
    (final,) = h.finals()
    assert final.runs == (("es", "hola "), ("fr", "bonjour "))
    assert (final.text, final.language) == ("hola bonjour ", "es")


def test_options_changed_while_configuring_go_out_when_configured() -> None:
    h = Harness()
    h.session.connecting()
    h.session.socket_opened(h.now, wall=WALL0)
    h.flush_socket()
    h.session.update_config(tp.TranslationConfig("gpt-realtime-translate", "de"))
    assert h.flush_socket() == []
    h.server(p.SessionUpdated("sess_1", {}))
    (update,) = [m for m in h.flush_socket() if m["type"] == "session.update"]
    assert update["session"]["audio"]["output"] == {"language": "de"}


def test_an_output_without_elapsed_ms_belongs_to_the_newest_frame_heard() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(2, 1))
    h.flush_socket()
    h.session.flush(h.now)
    h.server(tp.OutputTranscript("a", None))  # nothing heard yet: the socket's first frame
    h.server(out_text("b", 2))
    h.server(tp.OutputTranscript("c", None))  # the newest frame heard: frame 2
    h.session.end_input(h.now)
    h.flush_socket()
    h.server(tp.SessionClosed())
    assert [f.text for f in h.finals()] == ["abc"]


def test_a_session_the_server_closes_on_its_own_moves_to_a_new_one() -> None:
    h = Harness()
    h.open()
    h.session.audio(pcm(2, 1))
    h.flush_socket()
    h.server(out_text("a", 1))
    h.server(tp.SessionClosed())  # no session.close was sent: every frame sent is translated
    ending = h.session.ending
    assert isinstance(ending, r.RollOver) and ending.reason == "the server closed the session"
    h.session.socket_released()
    h.session.audio(pcm(1, 2))
    h.open()
    assert b"".join(h.sent_audio(h.flush_socket())) == pcm(1, 2)  # nothing sent twice
