"""Construction-time validation: bad options fail before any socket, saying what to change."""

from __future__ import annotations

import logging

import pytest

from livekit import rtc
from livekit.agents import stt as agents_stt
from livekit.plugins import openai_rt


def test_defaults_are_gpt_realtime_whisper_with_client_commits() -> None:
    s = openai_rt.STT(api_key="k")
    assert s.model == "gpt-realtime-whisper"
    assert s.provider == "api.openai.com"
    assert s.options.turn_detection is None
    caps = s.capabilities
    assert isinstance(caps, agents_stt.STTCapabilities)
    assert (caps.streaming, caps.interim_results, caps.manual_flush) == (True, True, True)
    assert caps.offline_recognize is False


def test_server_vad_model_gets_server_vad_by_default_and_can_turn_it_off() -> None:
    assert openai_rt.STT(model="gpt-4o-mini-transcribe", api_key="k").options.turn_detection
    off = openai_rt.STT(model="gpt-4o-mini-transcribe", turn_detection=None, api_key="k")
    assert off.options.turn_detection is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prompt": "names"}, "does not accept a prompt; remove prompt="),
        ({"delay": "fast"}, "delay must be one of minimal, low, medium, high, xhigh"),
        ({"model": "gpt-4o-transcribe", "delay": "low"}, "does not take delay="),
        ({"turn_detection": {"type": "server_vad"}}, "has no server VAD: pass turn_detection=None"),
        ({"model": "gpt-4o-transcribe", "turn_detection": {"type": "x"}}, "turn_detection must be"),
        ({"noise_reduction": "studio"}, "noise_reduction must be"),
        ({"logprobs": True}, "does not report logprobs"),
        ({"base_url": "api.openai.com/v1"}, "base_url must be an http"),
        ({"model": ""}, "model must be a non-empty"),
        ({"replay_seconds": -1}, "replay_seconds"),
        ({"audio_format": "g711"}, "audio_format must be one of 'pcm16', 'pcmu', 'pcma'"),
        ({"skip_silence": "yes"}, "skip_silence must be True or False"),
        ({"prewarm_ttl": 0}, "prewarm_ttl must be a finite number of seconds > 0"),
    ],
)
def test_invalid_combinations_raise_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        openai_rt.STT(api_key="k", **kwargs)


def test_missing_key_says_how_to_provide_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        openai_rt.STT()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert openai_rt.STT().model == "gpt-realtime-whisper"


def test_unknown_model_is_allowed_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="livekit.plugins.openai_rt"):
        openai_rt.STT(model="gpt-future-transcribe", api_key="k", delay="low")
        openai_rt.STT(model="gpt-future-transcribe", api_key="k")
    warnings = [r for r in caplog.records if "gpt-future-transcribe" in r.getMessage()]
    assert len(warnings) == 1


async def test_recognize_is_refused_clearly() -> None:
    s = openai_rt.STT(api_key="k")
    with pytest.raises(NotImplementedError, match="streaming-only"):
        await s.recognize(rtc.AudioFrame(bytes(4800), 24000, 1, 2400))
