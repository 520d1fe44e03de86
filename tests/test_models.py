"""The model table: its evidence, prices, deprecations, the README's Models table, and every
accepted model run end to end against the emulator ("proven offline")."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from livekit.agents import stt
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt import models
from livekit.plugins.openai_rt.models import (
    CAPABILITIES,
    MODELS,
    estimate_cost_usd,
    model_spec,
    models_markdown,
)
from livekit.plugins.openai_rt.testing import STRICT_LANGUAGE_RULES, Emulator
from tests.conftest import FLUSH_POINTS, KEY, MakeSTT, assert_exactly_once, drive, of_type

README = Path(__file__).resolve().parent.parent / "README.md"
TAG = re.compile(r"\[[VOCI]\]")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_capability_of_a_row_carries_its_evidence(name: str) -> None:
    spec = MODELS[name]
    assert set(spec.evidence) == set(CAPABILITIES)
    for capability, evidence in spec.evidence.items():
        if evidence.startswith("not applicable") or (spec.refused and evidence == "unknown"):
            continue
        # a section of docs/protocol.md and an evidence tag
        assert "§" in evidence and TAG.search(evidence), (name, capability, evidence)
    if spec.usd_per_minute is not None or spec.usd_per_million_audio_tokens is not None:
        assert spec.price_source.startswith("§6 [") and "recorded 20" in spec.price_source


def test_rows_say_what_each_model_takes() -> None:
    whisper = model_spec("gpt-realtime-whisper")
    assert (whisper.server_vad, whisper.prompt, whisper.delay) == (False, False, True)
    assert whisper.language_hint == "language" and not whisper.keywords
    for name in ("gpt-live-transcribe", "gpt-transcribe"):
        spec = model_spec(name)
        assert (spec.language_hint, spec.keywords, spec.prompt) == ("languages", True, True)
    assert model_spec("gpt-live-transcribe").turn_detection == ()
    assert model_spec("gpt-transcribe").turn_detection == ("server_vad",)
    assert model_spec("whisper-1").turn_detection == ("server_vad",)
    assert model_spec("gpt-4o-mini-transcribe").turn_detection == ("server_vad", "semantic_vad")
    assert model_spec("gpt-4o-transcribe-diarize").refused
    unknown = model_spec("gpt-next-transcribe")
    assert not unknown.known and not unknown.server_vad


def test_the_readme_models_table_is_the_model_table() -> None:
    readme = README.read_text()
    start = readme.index("<!-- models-table:")
    start = readme.index("\n", start) + 1
    end = readme.index("<!-- /models-table -->")
    assert readme[start:end].strip() == models_markdown(), (
        "README.md's Models table differs from models.MODELS; replace it with "
        "livekit.plugins.openai_rt.models.models_markdown()"
    )


def test_the_readme_table_rows_follow_the_table() -> None:
    rows = models_markdown().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == list(MODELS)
    live = rows[list(MODELS).index("gpt-live-transcribe")]
    assert "the client (no server VAD)" in live and "`languages` (list), `keywords`" in live
    diarize = rows[list(MODELS).index("gpt-4o-transcribe-diarize")]
    assert "refused: file transcription only" in diarize
    whisper1 = rows[list(MODELS).index("whisper-1")]
    assert "deprecated: shutdown 2027-02-26" in whisper1


# -- prices ------------------------------------------------------------------------------------


def test_duration_billed_models_are_priced_by_the_minute() -> None:
    assert estimate_cost_usd("gpt-realtime-whisper", audio_seconds=60) == pytest.approx(0.017)
    assert estimate_cost_usd("gpt-transcribe", audio_seconds=120) == pytest.approx(0.009)


def test_token_billed_models_price_audio_and_text_input_apart() -> None:
    cost = estimate_cost_usd(
        "gpt-4o-transcribe",
        input_tokens=1_100_000,
        audio_tokens=1_000_000,
        text_tokens=100_000,
        output_tokens=100_000,
    )
    assert cost == pytest.approx(6.0 + 0.25 + 1.0)
    mini = estimate_cost_usd(
        "gpt-4o-mini-transcribe",
        input_tokens=2_000_000,
        audio_tokens=1_000_000,
        text_tokens=1_000_000,
    )
    assert mini == pytest.approx(3.0 + 1.25)
    # input tokens without a split are priced at the audio rate: an upper bound
    assert estimate_cost_usd(
        "gpt-4o-transcribe", input_tokens=1_000_000, output_tokens=100_000
    ) == pytest.approx(6.0 + 1.0)
    assert estimate_cost_usd("gpt-4o-transcribe-diarize", input_tokens=10) is None
    assert estimate_cost_usd("gpt-next-transcribe", audio_seconds=60) is None


async def test_usage_events_carry_the_audio_and_text_tokens_the_server_reports(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, model="gpt-4o-mini-transcribe", prompt="names: Aoife, Siobhan")
        events = await drive(stt_.stream(), sample_pcm)
        items = emu.committed_items()
    usages = [ev.recognition_usage for ev in of_type(events, stt.SpeechEventType.RECOGNITION_USAGE)]
    assert usages and all(isinstance(u, openai_rt.TranscriptionUsage) for u in usages)
    reported = [item.usage for item in items]
    assert [(u.audio_tokens, u.text_tokens) for u in usages if u is not None] == [
        (r["input_token_details"]["audio_tokens"], r["input_token_details"]["text_tokens"])
        for r in reported
        if r is not None
    ]
    assert all(u.text_tokens > 0 for u in usages if u is not None)  # the prompt is text input


# -- deprecations and refusals --------------------------------------------------------------


def test_a_deprecated_model_warns_once_per_process(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "_warned_deprecated", set())
    with caplog.at_level(logging.WARNING, logger="livekit.plugins.openai_rt"):
        openai_rt.STT(model="whisper-1", api_key="k")
        openai_rt.STT(model="whisper-1", api_key="k")
        stt_ = openai_rt.STT(api_key="k")
        stt_.update_options(model="gpt-4o-mini-transcribe", turn_detection=None)
        openai_rt.STT(model="gpt-live-transcribe", api_key="k")
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert warnings == [
        "whisper-1 is deprecated: OpenAI shuts it down on 2027-02-26; the recommended "
        "replacement is gpt-live-transcribe (streaming) or gpt-transcribe (committed turns)",
        "gpt-4o-mini-transcribe is deprecated: OpenAI shuts it down on 2027-02-26; the "
        "recommended replacement is gpt-live-transcribe (streaming) or gpt-transcribe "
        "(committed turns)",
    ]


def test_diarize_is_refused_with_where_it_works() -> None:
    with pytest.raises(ValueError, match=r"does not run in realtime sessions; it works in file"):
        openai_rt.STT(model="gpt-4o-transcribe-diarize", api_key="k")
    stt_ = openai_rt.STT(api_key="k")
    with pytest.raises(ValueError, match="POST /v1/audio/transcriptions"):
        stt_.update_options(model="gpt-4o-transcribe-diarize")
    assert stt_.model == "gpt-realtime-whisper"


# -- proven offline ----------------------------------------------------------------------------

ACCEPTED = [name for name, spec in MODELS.items() if not spec.refused and not spec.translation]


@pytest.mark.parametrize("name", ACCEPTED)
async def test_every_accepted_model_runs_end_to_end_with_its_defaults(
    name: str, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    # the emulator applies each model's rules (singular `language` refused by both
    # languages-list models here, server VAD where the model has it)
    async with Emulator(api_key=KEY, model_rules=STRICT_LANGUAGE_RULES) as emu:
        stt_ = make_stt(emu, model=name)
        events = await drive(stt_.stream(), sample_pcm, flush_at=FLUSH_POINTS)
        items = emu.committed_items()
        transcription = emu.sessions[0].config["audio"]["input"]["transcription"]
    errors = [e.event for e in emu.events if e.direction == "out" and e.event["type"] == "error"]
    assert errors == []
    assert_exactly_once(events, items, sample_pcm, every_item=True)
    if model_spec(name).language_hint == "languages":
        assert transcription == {"model": name, "languages": ["en"]}
    else:
        assert transcription == {"model": name, "language": "en"}
