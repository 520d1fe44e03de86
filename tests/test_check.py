"""``python -m livekit.plugins.openai_rt.check`` against the emulator: it passes on the
emulator's observed-behaviour defaults, reports "differs" (with the server's words) when the
emulator is switched to a deviating behaviour, asks before spending, and writes traces with the
key and audio redacted that replay through the session core."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from livekit.plugins.openai_rt.check import run_check
from livekit.plugins.openai_rt.check.assumptions import ASSUMPTIONS, PROBES
from livekit.plugins.openai_rt.check.cli import sample_pcm
from livekit.plugins.openai_rt.check.replay import expected_finals, replay
from livekit.plugins.openai_rt.check.trace import read_trace
from livekit.plugins.openai_rt.testing import MODEL_RULES, Emulator, FaultPlan
from livekit.plugins.openai_rt.testing.routing import AzureMode

from .conftest import KEY, ROOT

WHISPER = "gpt-realtime-whisper"
MINI = "gpt-4o-mini-transcribe"
FAST = ["--yes", "--pace", "0", "--timeout", "2"]


@pytest.fixture(autouse=True)
def openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPENAI_API_VERSION", raising=False)


async def _check(
    emu: Emulator, out: Path, *models: str, extra: list[str] | None = None
) -> tuple[int, str]:
    lines: list[str] = []
    argv = [*FAST, "--base-url", emu.base_url, "--out", str(out), "--models", ",".join(models)]
    status = await run_check(argv + (extra or []), write=lines.append)
    return status, "\n".join(lines)


def _rows(output: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(assumption name, model) -> (result, the server's words), from the printed table."""
    rows: dict[tuple[str, str], tuple[str, str]] = {}
    for line in output.splitlines():
        match = re.match(r"^(\S.*?\)) +(\S+) +(held|differs|not checked|seen) *(.*)$", line)
        if match:
            name = match.group(1).rsplit(" (", 1)[0]
            rows[(name, match.group(2))] = (match.group(3), match.group(4))
    return rows


async def test_the_check_passes_against_the_emulator(tmp_path: Path) -> None:
    async with Emulator(api_key=KEY) as emu:
        status, output = await _check(emu, tmp_path, WHISPER, MINI)
    rows = _rows(output)
    assert status == 0, output
    assert len(rows) == 2 * (len(ASSUMPTIONS) + len(PROBES))
    assert {result for result, _ in rows.values()} == {"held", "seen"}
    # the cost comes first, before any session
    assert output.index("estimated cost") < output.index("checking gpt-realtime-whisper")
    assert rows[("accepts prompt", WHISPER)] == (
        "held",
        "refused: invalid_value: Prompt is not supported for this transcription model.",
    )
    assert rows[("accepts server VAD", MINI)] == ("held", "accepted")
    # traces: one stream and one options session per model, key and audio redacted
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"{m}.{kind}.jsonl" for m in (MINI, WHISPER) for kind in ("options", "stream")]
    for path in tmp_path.iterdir():
        text = path.read_text()
        assert KEY not in text
        assert '"audio":"' not in text  # no base64 audio, only audio_bytes
    stream = read_trace(tmp_path / f"{WHISPER}.stream.jsonl")
    appended = sum(
        r.data.get("audio_bytes", 0)
        for r in stream.records
        if r.kind == "client" and r.data["type"] == "input_audio_buffer.append"
    )
    assert appended == len(sample_pcm())
    # a trace the check wrote replays through the core to the server's transcript
    result = replay(stream)
    assert result.finals == expected_finals(stream) and len(result.finals) == 1


@pytest.mark.parametrize(
    ("deviation", "assumption", "words"),
    [
        (
            {"faults": FaultPlan(committed_after_completed=True)},
            "committed before completed",
            "completed came before input_audio_buffer.committed",
        ),
        (
            {"faults": FaultPlan(null_error_event_ids=True)},
            "event_id echoed on errors",
            "error.event_id is None, the commit was 'check_commit_empty'",
        ),
        (
            {
                "model_rules": {
                    **MODEL_RULES,
                    WHISPER: dataclasses.replace(MODEL_RULES[WHISPER], delay=False),
                }
            },
            "accepts delay",
            "refused: invalid_value: Delay is not supported for this transcription model. "
            "(the model table says yes)",
        ),
    ],
    ids=["completed-before-committed", "no-event-id-on-errors", "model-refuses-delay"],
)
async def test_the_check_reports_a_deviating_server(
    tmp_path: Path, deviation: dict[str, object], assumption: str, words: str
) -> None:
    async with Emulator(api_key=KEY, **deviation) as emu:  # type: ignore[arg-type]
        status, output = await _check(emu, tmp_path, WHISPER)
    rows = _rows(output)
    assert status == 1, output
    assert rows[(assumption, WHISPER)] == ("differs", words)
    differing = [name for (name, _), (result, _) in rows.items() if result == "differs"]
    assert differing == [assumption]  # nothing else is blamed
    assert "1 differ" in output


async def test_without_yes_it_asks_and_sends_nothing_when_refused(tmp_path: Path) -> None:
    asked: list[str] = []
    async with Emulator(api_key=KEY) as emu:

        def ask(question: str) -> str:
            asked.append(question)
            return "n"

        lines: list[str] = []
        argv = ["--base-url", emu.base_url, "--out", str(tmp_path), "--models", WHISPER]
        status = await run_check(argv, write=lines.append, ask=ask)
        assert emu.handshakes == 0
    assert status == 2 and asked == ["run it? [y/N] "]
    assert any("about 0.108 cents" in line for line in lines)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


async def test_no_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    lines: list[str] = []
    assert await run_check(["--yes", "--models", WHISPER], write=lines.append) == 2
    assert lines == ["error: set OPENAI_API_KEY (the check takes no key on its command line)"]


async def test_missing_azure_settings_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    lines: list[str] = []
    argv = ["--yes", "--models", WHISPER, "--azure-deployment", "team-whisper"]
    assert await run_check(argv, write=lines.append) == 2
    assert lines == [
        "error: Azure endpoint is required: pass azure_endpoint= or set AZURE_OPENAI_ENDPOINT"
    ]


async def test_the_check_runs_against_an_azure_deployment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mode = AzureMode(deployments={"team-whisper": WHISPER})
    async with Emulator(api_key=KEY, azure=mode) as emu:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", emu.azure_endpoint)
        monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
        lines: list[str] = []
        argv = [*FAST, "--out", str(tmp_path), "--models", WHISPER]
        status = await run_check(argv + ["--azure-deployment", "team-whisper"], write=lines.append)
        assert {s.path for s in emu.sessions} == {"/openai/v1/realtime"}
    output = "\n".join(lines)
    assert status == 0, output
    assert "(Azure prices differ)" in output
    rows = _rows(output)
    assert rows[("session.updated shape", "team-whisper")] == ("held", "")
    header = read_trace(tmp_path / "team-whisper.stream.jsonl").header
    assert (header["model"], header["model_family"]) == ("team-whisper", WHISPER)


async def test_python_dash_m_runs_it(tmp_path: Path) -> None:
    """The documented command, in a subprocess, against an emulator of this process."""
    async with Emulator(api_key=KEY) as emu:
        env = {**os.environ, "OPENAI_API_KEY": KEY}
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "livekit.plugins.openai_rt.check",
            *FAST,
            "--base-url",
            emu.base_url,
            "--out",
            str(tmp_path),
            "--models",
            WHISPER,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode() + err.decode()
    assert "0 differ" in out.decode()
    assert KEY not in out.decode() + err.decode()


def test_each_assumption_cites_a_section_of_the_protocol_notes() -> None:
    notes = (ROOT / "docs" / "protocol.md").read_text()
    headings = set(re.findall(r"^#{2,4} (\d+(?:\.\d+)*)[. ]", notes, re.M))
    items = set(re.findall(r"^(\d+)\. ", notes.split("## 7.")[1], re.M))
    sections = [a.section for a in ASSUMPTIONS] + [p.section for p in PROBES]
    for cited in sections:
        for ref in cited.split(", "):
            number = ref.removeprefix("§")
            if number.startswith("7 "):
                assert number.split(".")[-1] in items, ref
            else:
                assert number in headings, ref


def test_the_package_ships_a_few_seconds_of_speech() -> None:
    samples = np.frombuffer(sample_pcm(), dtype=np.int16)
    assert 3.0 < len(samples) / 24000 < 5.0
    assert np.abs(samples).max() > 10_000  # speech, not silence


async def test_a_model_the_plugin_refuses_is_skipped_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from livekit.plugins.openai_rt.check import cli

    real = cli.build_stt

    def build(args: object, model: str) -> object:
        if model == MINI:
            raise ValueError(f"{model} works only in file transcription")
        return real(args, model)  # type: ignore[arg-type]

    monkeypatch.setattr(cli, "build_stt", build)
    async with Emulator(api_key=KEY) as emu:
        status, output = await _check(emu, tmp_path, WHISPER, MINI)
        assert {s.transcription_model for s in emu.sessions} == {WHISPER}
    assert status == 0
    assert f"{MINI:<36} skipped: {MINI} works only in file transcription" in output
    assert {model for _, model in _rows(output)} == {WHISPER}
