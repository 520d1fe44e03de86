"""Construction-time validation: bad options fail before any socket, saying what to change;
language hints as the API takes them; live option updates."""

from __future__ import annotations

import asyncio
import logging
import typing

import pytest

from livekit.agents import stt as agents_stt
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt import protocol
from livekit.plugins.openai_rt.testing import Emulator
from tests.conftest import FLUSH_POINTS, KEY, MakeSTT, assert_exactly_once, drive


def test_defaults_are_gpt_realtime_whisper_with_client_commits() -> None:
    s = openai_rt.STT(api_key="k")
    assert s.model == "gpt-realtime-whisper"
    assert s.provider == "api.openai.com"
    assert s.options.turn_detection is None
    caps = s.capabilities
    assert isinstance(caps, agents_stt.STTCapabilities)
    assert (caps.streaming, caps.interim_results, caps.manual_flush) == (True, True, True)
    assert caps.offline_recognize is True


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


# -- language hints --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "sent"), [("EN", "en"), (" fr ", "fr"), ("en-US", "en"), ("pt_BR", "pt")]
)
def test_language_codes_are_normalized(given: str, sent: str) -> None:
    assert openai_rt.STT(language=given, api_key="k").options.language == sent


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("english", "language='english' is not an ISO-639-1 language code: use language='en'"),
        ("English", "language='English' is not an ISO-639-1 language code: use language='en'"),
        ("eng", "language='eng' is not an ISO-639-1 language code: use language='en'"),
        ("Japanese", "use language='ja'"),
        ("klingon", "pass a two-letter code such as 'en', 'fr' or 'ja' \\(or None"),
        ("xx", "language='xx' is not an ISO-639-1 language code"),
    ],
)
def test_a_language_that_is_not_a_code_is_refused_with_the_code_to_use(
    given: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        openai_rt.STT(language=given, api_key="k")


def test_a_bad_language_update_changes_nothing() -> None:
    stt_ = openai_rt.STT(api_key="k")
    with pytest.raises(ValueError, match="use language='de'"):
        stt_.update_options(language="German")
    assert stt_.options.language == "en"
    stt_.update_options(language="DE")
    assert stt_.options.language == "de"


def test_languages_models_get_a_list_and_never_the_singular_field() -> None:
    live = openai_rt.STT(model="gpt-live-transcribe", language="EN", api_key="k")
    transcription = _transcription(live.options)
    assert transcription == {"model": "gpt-live-transcribe", "languages": ["en"]}
    several = openai_rt.STT(
        model="gpt-transcribe",
        languages=["en", "FR", "en-GB"],
        keywords=["LiveKit", "Aoife"],
        api_key="k",
    )
    assert several.options.language is None  # languages= replaces the default "en"
    assert _transcription(several.options) == {
        "model": "gpt-transcribe",
        "languages": ["en", "fr"],
        "keywords": ["LiveKit", "Aoife"],
    }
    assert "language" not in _transcription(
        openai_rt.STT(model="gpt-live-transcribe", language=None, api_key="k").options
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"languages": ["en", "fr"]},
            "gpt-realtime-whisper takes one language hint: pass language='en'",
        ),
        ({"model": "whisper-1", "keywords": ["LiveKit"]}, "whisper-1 does not take keywords="),
        ({"model": "gpt-transcribe", "languages": []}, "languages must name at least one"),
        ({"model": "gpt-transcribe", "languages": "en"}, "languages must be a list of strings"),
        ({"model": "gpt-transcribe", "languages": ["english"]}, "use languages entry='en'"),
        (
            {"model": "gpt-transcribe", "language": "en", "languages": ["fr"]},
            "pass either language= \\(one code\\) or languages= \\(a list\\), not both",
        ),
        ({"model": "gpt-transcribe", "keywords": [""]}, "keywords must be non-empty strings"),
        ({"model": "gpt-transcribe", "keywords": "LiveKit"}, "keywords must be a list of strings"),
        (
            {"model": "gpt-transcribe", "turn_detection": {"type": "semantic_vad"}},
            "gpt-transcribe takes turn_detection of type 'server_vad', not 'semantic_vad'",
        ),
        (
            {"model": "gpt-live-transcribe", "turn_detection": {"type": "server_vad"}},
            "gpt-live-transcribe has no server VAD",
        ),
    ],
)
def test_hints_a_model_does_not_take_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        openai_rt.STT(api_key="k", **kwargs)


def test_server_vad_per_model() -> None:
    assert openai_rt.STT(model="gpt-transcribe", api_key="k").options.turn_detection == (
        openai_rt.DEFAULT_SERVER_VAD
    )
    semantic = {"type": "semantic_vad", "eagerness": "low"}
    gpt4o = openai_rt.STT(model="gpt-4o-transcribe", turn_detection=semantic, api_key="k")
    assert gpt4o.options.turn_detection == semantic


def test_a_later_language_hint_replaces_the_other_kind() -> None:
    stt_ = openai_rt.STT(model="gpt-live-transcribe", api_key="k")
    stt_.update_options(languages=["fr", "de"])
    assert (stt_.options.language, stt_.options.languages) == (None, ("fr", "de"))
    stt_.update_options(language="es")
    assert (stt_.options.language, stt_.options.languages) == ("es", None)
    assert _transcription(stt_.options)["languages"] == ["es"]


def test_clearing_a_hint_needs_a_new_session_and_replacing_it_does_not() -> None:
    stt_ = openai_rt.STT(model="gpt-live-transcribe", keywords=["a"], api_key="k")
    opts = stt_.options
    assert not opts.replace(languages=["fr", "en"]).needs_new_session(opts)
    assert not opts.replace(keywords=["b"]).needs_new_session(opts)
    assert opts.replace(keywords=None).needs_new_session(opts)
    assert opts.replace(language=None).needs_new_session(opts)


def test_fixed_value_options_are_literals_for_editors() -> None:
    hints = typing.get_type_hints(openai_rt.STT.__init__)
    model_args = typing.get_args(hints["model"])
    assert str in model_args  # new model names still pass
    literal = next(a for a in model_args if typing.get_origin(a) is typing.Literal)
    assert set(typing.get_args(literal)) == {
        name for name, spec in openai_rt.MODELS.items() if not spec.refused and not spec.translation
    }
    delay = next(a for a in typing.get_args(hints["delay"]) if a is not type(None))
    assert typing.get_args(delay) == ("minimal", "low", "medium", "high", "xhigh")
    noise = next(a for a in typing.get_args(hints["noise_reduction"]) if a is not type(None))
    assert typing.get_args(noise) == ("near_field", "far_field")


def _transcription(opts: openai_rt.STTOptions) -> dict:
    """The ``audio.input.transcription`` object ``session.update`` carries for ``opts``."""
    update = protocol.session_update(opts.session_config())
    return dict(update["session"]["audio"]["input"]["transcription"])


async def test_live_hint_updates_go_in_place_and_never_send_language(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    # the emulator refuses the singular `language` for gpt-live-transcribe, as observed: a
    # single one on the wire would fail the stream (docs/protocol.md §2.2, §7 B.46)
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, model="gpt-live-transcribe", language="en")
        stream = stt_.stream()
        task = asyncio.ensure_future(
            drive(stream, sample_pcm, flush_at=FLUSH_POINTS, realtime=10.0)
        )
        await emu.wait_for(lambda: emu.committed_items(), timeout=5.0)
        stt_.update_options(languages=["en", "FR"], keywords=["LiveKit"])
        await emu.wait_for(
            lambda: emu.sessions[0].config["audio"]["input"]["transcription"].get("keywords")
        )
        stream.update_options(language="de")
        events = await task
        updates = [
            e.event["session"]["audio"]["input"]["transcription"]
            for e in emu.events
            if e.direction == "in" and e.event["type"] == "session.update"
        ]
        items = emu.committed_items()
    assert len(emu.sessions) == 1
    assert updates == [
        {"model": "gpt-live-transcribe", "languages": ["en"]},
        {"model": "gpt-live-transcribe", "languages": ["en", "fr"], "keywords": ["LiveKit"]},
        {"model": "gpt-live-transcribe", "languages": ["de"], "keywords": ["LiveKit"]},
    ]
    assert_exactly_once(events, items, sample_pcm, every_item=True)
