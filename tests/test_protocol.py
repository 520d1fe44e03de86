"""The sans-I/O protocol codec: the upgrade URL and headers, client events per model, server
event parsing. No sockets."""

from __future__ import annotations

import base64
import json

import pytest

from livekit.plugins.openai_rt import protocol as p


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
    url = p.realtime_url(
        "https://api.openai.com/v1", model="gpt-realtime-whisper", model_in_url=False
    )
    assert url == "wss://api.openai.com/v1/realtime?intent=transcription"
    gw = p.realtime_url("http://gw.local:4000/v1/", model="gpt-realtime-whisper", model_in_url=True)
    assert gw == "ws://gw.local:4000/v1/realtime?intent=transcription&model=gpt-realtime-whisper"
    with pytest.raises(ValueError, match="base_url"):
        p.realtime_url("api.openai.com/v1", model="m", model_in_url=False)


def test_url_keeps_the_base_urls_query_and_adds_intent() -> None:
    # Azure's api-version and a gateway's routing ride in the base URL's query
    url = p.realtime_url(
        "https://gw.example.com/openai/v1?api-version=2025-04-01&team=a%20b",
        model="gpt-realtime-whisper",
        model_in_url=True,
    )
    assert url == (
        "wss://gw.example.com/openai/v1/realtime?api-version=2025-04-01&team=a+b"
        "&intent=transcription&model=gpt-realtime-whisper"
    )
    # an intent or model already in the base URL is replaced, not doubled
    url = p.realtime_url(
        "https://h/v1?intent=x&model=old", model="gpt-realtime-whisper", model_in_url=True
    )
    assert url == "wss://h/v1/realtime?intent=transcription&model=gpt-realtime-whisper"


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("https://user:secret@api.openai.com/v1", "must not carry credentials"),
        ("https://api.openai.com/v1\r\nX-Evil: 1", "control characters"),
        ("ftp://api.openai.com/v1", "http"),
        ("https:///v1", "http"),
    ],
)
def test_unusable_base_urls_are_refused(base_url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        p.realtime_url(base_url, model="m", model_in_url=False)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("base_url", ["ftp://gw/v1?key=SECRET", "https://gw/v1?key=SECRET\n"])
def test_a_refused_base_url_never_repeats_its_query(base_url: str) -> None:
    with pytest.raises(ValueError) as info:
        p.realtime_url(base_url, model="m", model_in_url=False)
    assert "SECRET" not in str(info.value)


def test_a_key_with_a_newline_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValueError, match="control characters") as info:
        p.check_api_key("sk-abc123\n")
    assert "sk-abc123" not in str(info.value)
    p.check_api_key("sk-abc123")


def test_loopback_and_plaintext_detection() -> None:
    assert p.is_loopback_host("http://127.0.0.1:8080/v1")
    assert p.is_loopback_host("ws://localhost/v1")
    assert p.is_loopback_host("http://[::1]:80/v1")
    assert not p.is_loopback_host("http://10.0.0.5/v1")
    assert p.is_plaintext("http://h/v1") and p.is_plaintext("ws://h/v1")
    assert not p.is_plaintext("https://h/v1")


def test_auth_headers_have_no_beta_header() -> None:
    headers = p.auth_headers("sk-test")
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
    assert tokens.usage == p.Usage(
        kind="tokens", input_tokens=71, output_tokens=8, audio_tokens=64, text_tokens=7
    )
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
