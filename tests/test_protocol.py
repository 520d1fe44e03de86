"""The sans-I/O protocol core: client events per model, server event parsing, error
classification. No sockets."""

from __future__ import annotations

import base64
import json

import pytest

from livekit.plugins.openai_rt import protocol as p
from livekit.plugins.openai_rt.connection import auth_headers, realtime_url
from livekit.plugins.openai_rt.models import estimate_cost_usd, model_spec


def _input(event: dict) -> dict:
    return event["session"]["audio"]["input"]


def test_session_update_for_gpt_realtime_whisper_turns_server_vad_off() -> None:
    ev = p.session_update(p.SessionConfig(model="gpt-realtime-whisper", language="en", delay="low"))
    assert ev["type"] == "session.update"
    assert ev["session"]["type"] == "transcription"
    assert "model" not in ev["session"]  # the model lives in transcription (§2.1)
    audio = _input(ev)
    assert audio["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio["transcription"] == {
        "model": "gpt-realtime-whisper",
        "language": "en",
        "delay": "low",
    }
    # explicit null: sessions start with server VAD on, and this model refuses it
    assert "turn_detection" in audio and audio["turn_detection"] is None
    assert "prompt" not in audio["transcription"]
    assert "include" not in ev["session"]


def test_session_update_for_a_server_vad_model() -> None:
    td = {
        "type": "server_vad",
        "threshold": 0.4,
        "prefix_padding_ms": 200,
        "silence_duration_ms": 300,
    }
    ev = p.session_update(
        p.SessionConfig(
            model="gpt-4o-mini-transcribe",
            language=None,
            prompt="names: Aoife",
            turn_detection=td,
            noise_reduction="far_field",
            logprobs=True,
        )
    )
    audio = _input(ev)
    assert audio["transcription"] == {"model": "gpt-4o-mini-transcribe", "prompt": "names: Aoife"}
    assert audio["turn_detection"] == td
    assert audio["noise_reduction"] == {"type": "far_field"}
    assert ev["session"]["include"] == ["item.input_audio_transcription.logprobs"]


def test_append_message_is_the_json_the_server_expects() -> None:
    pcm = bytes(range(256)) * 10
    msg = p.append_message(pcm)
    decoded = json.loads(msg)
    assert decoded == {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    assert json.loads(p.commit_message("commit_3")) == {
        "type": "input_audio_buffer.commit",
        "event_id": "commit_3",
    }


def test_url_never_carries_the_model_unless_asked() -> None:
    url = realtime_url(
        "https://api.openai.com/v1", model="gpt-realtime-whisper", model_in_url=False
    )
    assert url == "wss://api.openai.com/v1/realtime?intent=transcription"
    gw = realtime_url("http://gw.local:4000/v1/", model="gpt-realtime-whisper", model_in_url=True)
    assert gw == "ws://gw.local:4000/v1/realtime?intent=transcription&model=gpt-realtime-whisper"
    with pytest.raises(ValueError, match="base_url"):
        realtime_url("api.openai.com/v1", model="m", model_in_url=False)


def test_auth_headers_have_no_beta_header() -> None:
    headers = auth_headers("sk-test")
    assert headers["Authorization"] == "Bearer sk-test"
    assert not any(k.lower() == "openai-beta" for k in headers)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"type": "session.created", "session": {"id": "sess_1", "expires_at": 1756310470}},
            p.SessionCreated("sess_1", 1756310470.0),
        ),
        (
            {"type": "input_audio_buffer.committed", "item_id": "item_2", "previous_item_id": None},
            p.Committed("item_2", None),
        ),
        (
            {"type": "input_audio_buffer.speech_started", "audio_start_ms": 1012, "item_id": "i"},
            p.SpeechStarted("i", 1012),
        ),
        (
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 2080, "item_id": "i"},
            p.SpeechStopped("i", 2080),
        ),
        (
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": "i",
                "content_index": 0,
                "delta": "Hello,",
            },
            p.TranscriptDelta("i", "Hello,"),
        ),
        ({"type": "conversation.item.added", "item": {}}, p.Ignored("conversation.item.added")),
        ({"type": "brand.new.event"}, p.Unknown("brand.new.event")),
    ],
)
def test_parse_server_events(raw: dict, expected: p.ServerEvent) -> None:
    assert p.parse_server_event(json.dumps(raw)) == expected


def test_parse_completed_with_each_usage_kind_logprobs_and_language() -> None:
    duration = p.parse_server_event(
        json.dumps(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "i",
                "content_index": 0,
                "transcript": "hi",
                "usage": {"type": "duration", "seconds": 2.4},
                "languages": [{"code": "fr"}],
            }
        )
    )
    assert duration == p.TranscriptCompleted(
        "i", "hi", p.Usage(kind="duration", seconds=2.4), None, "fr"
    )
    tokens = p.parse_server_event(
        json.dumps(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": "i",
                "content_index": 0,
                "transcript": "Hello",
                "usage": {
                    "type": "tokens",
                    "input_tokens": 71,
                    "output_tokens": 8,
                    "total_tokens": 79,
                    "input_token_details": {"audio_tokens": 64, "text_tokens": 7},
                },
                "logprobs": [{"token": "Hello", "logprob": -0.5, "bytes": [72]}],
            }
        )
    )
    assert isinstance(tokens, p.TranscriptCompleted)
    assert tokens.usage == p.Usage(kind="tokens", input_tokens=71, output_tokens=8, audio_tokens=64)
    assert tokens.logprobs == [-0.5]
    assert p.confidence(tokens.logprobs) == pytest.approx(0.6065, abs=1e-4)
    assert p.confidence(None) == 0.0


def test_parse_error_and_failed_item() -> None:
    err = p.parse_server_event(
        json.dumps(
            {
                "type": "error",
                "event_id": "event_1",
                "error": {
                    "type": "invalid_request_error",
                    "code": "input_audio_buffer_commit_empty",
                    "message": "buffer too small",
                    "param": None,
                    "event_id": "commit_4",
                },
            }
        )
    )
    assert err == p.ServerError(
        "input_audio_buffer_commit_empty",
        "invalid_request_error",
        "buffer too small",
        None,
        "commit_4",
    )
    failed = p.parse_server_event(
        json.dumps(
            {
                "type": "conversation.item.input_audio_transcription.failed",
                "item_id": "item_9",
                "content_index": 0,
                "error": {"type": "server_error", "code": None, "message": "failed", "param": None},
            }
        )
    )
    assert failed == p.TranscriptFailed("item_9", p.ServerError(None, "server_error", "failed"))


@pytest.mark.parametrize("raw", ["not json", "[1,2]", '{"no_type": 1}', '{"type": 5}', b"\xff\xfe"])
def test_malformed_frames_never_raise(raw: str | bytes) -> None:
    assert isinstance(p.parse_server_event(raw), p.Malformed)


def test_a_known_type_with_missing_fields_is_malformed_not_a_crash() -> None:
    ev = p.parse_server_event('{"type": "input_audio_buffer.committed"}')
    assert isinstance(ev, p.Malformed)


@pytest.mark.parametrize(
    ("code", "type_", "configuring", "action"),
    [
        ("input_audio_buffer_commit_empty", "invalid_request_error", False, p.ErrorAction.IGNORE),
        ("session_expired", "invalid_request_error", False, p.ErrorAction.RECONNECT),
        (None, "server_error", False, p.ErrorAction.RECONNECT),
        ("invalid_model", "invalid_request_error", False, p.ErrorAction.FATAL),
        ("invalid_value", "invalid_request_error", True, p.ErrorAction.FATAL),
        ("unknown_parameter", "invalid_request_error", False, p.ErrorAction.FATAL),
        ("insufficient_quota", "insufficient_quota", False, p.ErrorAction.FATAL),
        ("invalid_api_key", "invalid_request_error", False, p.ErrorAction.FATAL),
        ("never_seen_before", "invalid_request_error", False, p.ErrorAction.IGNORE),
        ("never_seen_before", "invalid_request_error", True, p.ErrorAction.FATAL),
    ],
)
def test_error_classification(
    code: str | None, type_: str, configuring: bool, action: p.ErrorAction
) -> None:
    verdict = p.classify_error(p.ServerError(code, type_, "m"), configuring=configuring)
    assert verdict.action is action
    assert verdict.hint


@pytest.mark.parametrize(
    ("code", "reason", "action"),
    [
        (4000, "invalid_request_error.invalid_model", p.ErrorAction.FATAL),
        (4000, "invalid_request_error.beta_api_shape_disabled", p.ErrorAction.FATAL),
        (4000, "invalid_request_error.something_new", p.ErrorAction.FATAL),
        (1000, "invalid_request_error.session_expired", p.ErrorAction.RECONNECT),
        (1006, "", p.ErrorAction.RECONNECT),
        (1011, "", p.ErrorAction.RECONNECT),
        (1001, "", p.ErrorAction.RECONNECT),
    ],
)
def test_close_classification(code: int, reason: str, action: p.ErrorAction) -> None:
    assert p.classify_close(code, reason).action is action


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (401, p.ErrorAction.FATAL),
        (403, p.ErrorAction.FATAL),
        (404, p.ErrorAction.FATAL),
        (429, p.ErrorAction.RECONNECT),
        (500, p.ErrorAction.RECONNECT),
        (503, p.ErrorAction.RECONNECT),
    ],
)
def test_handshake_status_classification(status: int, action: p.ErrorAction) -> None:
    assert p.classify_http_status(status).action is action


def test_model_table_rules() -> None:
    whisper = model_spec("gpt-realtime-whisper")
    assert (whisper.server_vad, whisper.prompt, whisper.delay) == (False, False, True)
    assert whisper.usd_per_minute == 0.017
    assert model_spec("gpt-4o-mini-transcribe").server_vad
    unknown = model_spec("gpt-next-transcribe")
    assert not unknown.known and not unknown.server_vad


def test_cost_estimates() -> None:
    assert estimate_cost_usd("gpt-realtime-whisper", audio_seconds=60) == pytest.approx(0.017)
    assert estimate_cost_usd(
        "gpt-4o-transcribe", input_tokens=1_000_000, output_tokens=100_000
    ) == (pytest.approx(2.5 + 1.0))
    assert estimate_cost_usd("gpt-4o-transcribe-diarize", input_tokens=10) is None
