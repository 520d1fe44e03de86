"""Session configuration: session.update merging, per-model rules and errors (docs/protocol.md
§7 B)."""

from __future__ import annotations

import pytest

from livekit.plugins.openai_rt.testing import STRICT_LANGUAGE_RULES
from tests.emulator.helpers import Json, MakeEmu, connect


async def test_update_merges_and_reports_full_config(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.send(
            {
                "type": "session.update",
                "event_id": "evt_client",
                "session": {
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "transcription": {"model": "gpt-4o-transcribe", "language": "en"},
                            "noise_reduction": {"type": "far_field"},
                        }
                    },
                    "include": ["item.input_audio_transcription.logprobs"],
                },
            }
        )
        updated = await c.until("session.updated")
        assert updated["event_id"] != "evt_client"  # the client's event_id is not echoed
        inp = updated["session"]["audio"]["input"]
        assert inp["noise_reduction"] == {"type": "far_field", "strength": 1.0}
        assert inp["turn_detection"]["type"] == "server_vad"  # untouched
        assert updated["session"]["include"] == ["item.input_audio_transcription.logprobs"]

        # Only present fields change; the language stays; strength kept when omitted.
        await c.update(
            {
                "transcription": {"model": "whisper-1"},
                "noise_reduction": {"type": "near_field"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 200},
            }
        )
        inp = (await c.until("session.updated"))["session"]["audio"]["input"]
        assert inp["transcription"] == {"model": "whisper-1", "language": "en"}
        assert inp["noise_reduction"] == {"type": "near_field", "strength": 1.0}
        assert inp["turn_detection"] == {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 200,
        }

        # null clears.
        await c.update({"noise_reduction": None, "turn_detection": None, "transcription": None})
        inp = (await c.until("session.updated"))["session"]["audio"]["input"]
        assert inp["noise_reduction"] is None
        assert inp["turn_detection"] is None
        assert inp["transcription"] is None
        assert emu.sessions[0].config["audio"]["input"] == inp


@pytest.mark.parametrize("model", ["gpt-realtime-whisper", "gpt-live-transcribe"])
async def test_no_vad_models_reject_turn_detection(make_emu: MakeEmu, model: str) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        before = await c.configure("gpt-4o-transcribe")
        await c.send(
            {
                "type": "session.update",
                "event_id": "evt_td",
                "session": {
                    "type": "transcription",
                    "audio": {
                        "input": {
                            "transcription": {"model": model},
                            "turn_detection": {"type": "server_vad"},
                        }
                    },
                },
            }
        )
        err = await c.until("error")
        assert err["error"] == {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": "Turn detection is not supported for this transcription model.",
            "param": "session.audio.input.turn_detection",
            "event_id": "evt_td",
        }
        # Session open, previous config kept.
        assert emu.sessions[0].config == before["session"]
        # Omitting turn_detection is fine: the inherited default VAD is switched off.
        await c.update({"transcription": {"model": model}})
        updated = await c.until("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"] is None


async def test_turn_detection_error_can_close(make_emu: MakeEmu) -> None:
    emu = await make_emu(close_on_turn_detection_error=True)
    async with connect(emu) as c:
        await c.update(
            {
                "transcription": {"model": "gpt-realtime-whisper"},
                "turn_detection": {"type": "semantic_vad"},
            }
        )
        assert (await c.until("error"))["error"]["code"] == "invalid_value"
        assert await c.closed() == (4000, "invalid_request_error.invalid_value")


_T = "session.audio.input.transcription"
CONFIG_ERRORS: list[tuple[Json, str, str | None]] = [
    # (audio.input update, expected code, expected param)
    ({"transcription": {"model": "gpt-realtime-whisper", "prompt": "x"}}, "invalid_value",
     f"{_T}.prompt"),
    ({"transcription": {"model": "gpt-4o-transcribe-diarize"}}, "invalid_value", f"{_T}.model"),
    ({"transcription": {"model": "gpt-live-transcribe", "language": "en"}}, "invalid_value",
     f"{_T}.language"),
    ({"transcription": {"model": "gpt-transcribe"}, "turn_detection": {"type": "semantic_vad"}},
     "invalid_value", "session.audio.input.turn_detection.type"),
    ({"transcription": {"model": "whisper-1"}, "turn_detection": {"type": "semantic_vad"}},
     "invalid_value", "session.audio.input.turn_detection.type"),
    ({"transcription": {"model": "gpt-realtime-whisper", "delay": "fast"}}, "invalid_value",
     f"{_T}.delay"),
    ({"transcription": {"model": "gpt-4o-transcribe", "delay": "low"}}, "invalid_value",
     f"{_T}.delay"),
    ({"transcription": {"model": "gpt-live-transcribe", "delay": "low"}}, "invalid_value",
     f"{_T}.delay"),
    ({"transcription": {"model": "gpt-transcribe", "languages": []}}, "empty_array",
     f"{_T}.languages"),
    ({"transcription": {"model": "gpt-transcribe", "languages": None}}, "invalid_type",
     f"{_T}.languages"),
    ({"transcription": {"model": "gpt-4o-transcribe", "languages": ["en", "de"]}},
     "invalid_value", f"{_T}.languages"),
    ({"transcription": {"model": "whisper-1", "keywords": ["LiveKit"]}}, "invalid_value",
     f"{_T}.keywords"),
    ({"transcription": {"model": "gpt-5-transcribe"}}, "invalid_value", f"{_T}.model"),
    ({"transcription": {"language": "en"}}, "missing_required_parameter", f"{_T}.model"),
    ({"transcription": {"model": "whisper-1", "temperature": 0}}, "unknown_parameter",
     f"{_T}.temperature"),
    ({"format": {"type": "audio/pcm", "rate": 16000}}, "invalid_value",
     "session.audio.input.format.rate"),
    ({"format": {"type": "audio/wav"}}, "invalid_value", "session.audio.input.format.type"),
    ({"noise_reduction": {"type": "studio"}}, "invalid_value",
     "session.audio.input.noise_reduction.type"),
    ({"noise_reduction": {"type": "near_field", "strength": 2}}, "invalid_value",
     "session.audio.input.noise_reduction.strength"),
    ({"turn_detection": {"type": "server_vad", "threshold": "high"}}, "invalid_type",
     "session.audio.input.turn_detection.threshold"),
    ({"turn_detection": {"type": "server_vad", "eagerness": "low"}}, "unknown_parameter",
     "session.audio.input.turn_detection.eagerness"),
    ({"turn_detection": {"type": "semantic_vad", "eagerness": "eager"}}, "invalid_value",
     "session.audio.input.turn_detection.eagerness"),
    ({"turn_detection": {"threshold": 0.5}}, "missing_required_parameter",
     "session.audio.input.turn_detection.type"),
    ({"sample_rate": 24000}, "unknown_parameter", "session.audio.input.sample_rate"),
]  # fmt: skip


async def test_config_errors_keep_session_open(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        before = emu.sessions[0].config
        for i, (update, code, param) in enumerate(CONFIG_ERRORS):
            await c.send(
                {
                    "type": "session.update",
                    "event_id": f"evt_{i}",
                    "session": {"type": "transcription", "audio": {"input": update}},
                }
            )
            err = (await c.until("error"))["error"]
            assert (err["code"], err["param"], err["event_id"]) == (code, param, f"evt_{i}"), update
            assert err["type"] == "invalid_request_error"
        assert emu.sessions[0].config == before
        # Unknown fields elsewhere, with the dotted path.
        await c.send({"type": "session.update", "session": {"type": "transcription", "x": 1}})
        err = (await c.until("error"))["error"]
        assert err["message"] == "Unknown parameter: 'session.x'."
        await c.send(
            {"type": "session.update", "session": {"type": "transcription", "audio": {"out": 1}}}
        )
        assert (await c.until("error"))["error"]["param"] == "session.audio.out"
        await c.send({"type": "input_audio_buffer.commit", "item": 1})
        assert (await c.until("error"))["error"]["param"] == "item"


async def test_accepted_model_options(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    cases: list[tuple[str, Json]] = [
        ("gpt-realtime-whisper", {"delay": "xhigh", "language": "en"}),
        ("gpt-live-transcribe", {"keywords": ["LiveKit"], "languages": ["en", "fr"]}),
        ("gpt-transcribe", {"keywords": ["a"], "languages": ["en", "de"], "prompt": "p"}),
        ("gpt-4o-transcribe", {"languages": ["en"], "prompt": "tech"}),
        ("whisper-1", {"prompt": "LiveKit, OpenAI"}),
    ]
    async with connect(emu) as c:
        for model, options in cases:
            await c.update({"transcription": {"model": model, **options}, "turn_detection": None})
            updated = await c.until("session.updated")
            tr = updated["session"]["audio"]["input"]["transcription"]
            assert tr["model"] == model
            for key, value in options.items():
                assert tr[key] == value
            await c.update({"transcription": None})
            await c.until("session.updated")
        await c.update({"format": {"type": "audio/pcmu"}})
        updated = await c.until("session.updated")
        assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}


async def test_server_vad_per_model(make_emu: MakeEmu) -> None:
    # docs/protocol.md §2.3 / §7 B.45: server_vad for gpt-transcribe (public clients send it),
    # semantic_vad only where a source shows it (gpt-4o-*)
    emu = await make_emu()
    accepted = [
        ("gpt-transcribe", "server_vad"),
        ("whisper-1", "server_vad"),
        ("gpt-4o-transcribe", "semantic_vad"),
        ("gpt-4o-mini-transcribe", "semantic_vad"),
    ]
    async with connect(emu) as c:
        for model, td_type in accepted:
            await c.update({"transcription": {"model": model}, "turn_detection": {"type": td_type}})
            updated = await c.until("session.updated")
            assert updated["session"]["audio"]["input"]["turn_detection"]["type"] == td_type


async def test_singular_language_refusal_is_a_switch_for_gpt_transcribe(make_emu: MakeEmu) -> None:
    # refused for gpt-live-transcribe (observed); for gpt-transcribe only with the switch
    update = {"transcription": {"model": "gpt-transcribe", "language": "en"}}
    default = await make_emu()
    async with connect(default) as c:
        await c.update(update)
        tr = (await c.until("session.updated"))["session"]["audio"]["input"]["transcription"]
        assert tr == {"model": "gpt-transcribe", "language": "en"}
    strict = await make_emu(model_rules=STRICT_LANGUAGE_RULES)
    async with connect(strict) as c:
        await c.send({"type": "session.update", "event_id": "evt_lang", "session": {
            "type": "transcription", "audio": {"input": update}}})  # fmt: skip
        assert (await c.until("error"))["error"] == {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": "The 'language' parameter is not supported for this transcription model. "
            "Use 'languages' instead.",
            "param": f"{_T}.language",
            "event_id": "evt_lang",
        }
        await c.update({"transcription": {"model": "gpt-transcribe", "languages": ["en"]}})
        tr = (await c.until("session.updated"))["session"]["audio"]["input"]["transcription"]
        assert tr == {"model": "gpt-transcribe", "languages": ["en"]}


async def test_diarize_is_refused_in_realtime_sessions(make_emu: MakeEmu) -> None:
    emu = await make_emu()
    async with connect(emu) as c:
        await c.update({"transcription": {"model": "gpt-4o-transcribe-diarize"}})
        err = (await c.until("error"))["error"]
        model = '"gpt-4o-transcribe-diarize"'
        assert (
            err["message"] == f"Model {model} is not supported in realtime transcription sessions."
        )
        assert err["param"] == f"{_T}.model"
