"""The translation examples: ``examples/live_interpreter.py``'s logic (a translation stream's
outputs -> audio frames and transcriptions) against the emulator, and
``examples/transcribe_file.py --translate`` run as a user runs it."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import wave
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from livekit import rtc
from livekit.agents import stt
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import Emulator, expected_translation
from tests.conftest import EXAMPLES, KEY, frames, write_wav

FRAME = 9600


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


interpreter = _load("live_interpreter")


class FakePublisher:
    """Records what the interpreter would publish into the room."""

    def __init__(self) -> None:
        self.speech = bytearray()
        self.rates: set[tuple[int, int]] = set()
        self.captions: list[interpreter.Caption] = []

    async def audio(self, frame: rtc.AudioFrame) -> None:
        self.rates.add((frame.sample_rate, frame.num_channels))
        self.speech.extend(frame.data)

    async def caption(self, caption: interpreter.Caption) -> None:
        self.captions.append(caption)


async def test_interpret_turns_a_stream_into_speech_and_transcriptions(sample_pcm: bytes) -> None:
    pcm = sample_pcm[: 4 * 48000]
    async with Emulator(api_key=KEY) as emu:
        translator = openai_rt.TranslationSTT(api_key=KEY, base_url=emu.base_url)
        stream = translator.stream(language="fr")
        publisher = FakePublisher()

        async def feed() -> None:
            for i, frame in enumerate(frames(pcm)):
                stream.push_frame(frame)
                if i == 99:  # 2 s in: the end of a segment
                    stream.flush()
                await asyncio.sleep(0)
            stream.end_input()

        await asyncio.gather(feed(), interpreter.interpret(stream, publisher))
        await translator.aclose()
    finals = [c for c in publisher.captions if c.final]
    assert [c.text for c in finals] == [
        expected_translation(pcm[: 10 * FRAME], "fr"),
        expected_translation(pcm[10 * FRAME :], "fr"),
    ]
    assert {c.language for c in publisher.captions} == {"fr"}
    assert len({c.segment_id for c in finals}) == 2
    interims = [c for c in publisher.captions if not c.final]
    assert len(interims) == 20  # one per translated frame, each the whole segment so far
    assert bytes(publisher.speech) == pcm  # the emulator's "translated speech" is the input
    assert publisher.rates == {(24000, 1)}


def test_captions_and_languages() -> None:
    data = stt.SpeechData(language="es", text="hola")
    final = stt.SpeechEvent(stt.SpeechEventType.FINAL_TRANSCRIPT, "seg_1", [data])
    assert interpreter.caption(final) == interpreter.Caption("seg_1", "hola", "es", True)
    interim = stt.SpeechEvent(stt.SpeechEventType.INTERIM_TRANSCRIPT, "seg_1", [data])
    assert interpreter.caption(interim).final is False
    assert interpreter.caption(stt.SpeechEvent(stt.SpeechEventType.RECOGNITION_USAGE)) is None
    assert interpreter.target_language({"interpreter.language": " de "}, "en") == "de"
    assert interpreter.target_language({"other": "x"}, "en") == "en"


def test_the_target_language_comes_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(interpreter.TARGET_ENV, raising=False)
    argv = ["live_interpreter.py", "dev", "--target", "ja"]
    interpreter.pop_target(argv)
    assert argv == ["live_interpreter.py", "dev"]
    assert os.environ[interpreter.TARGET_ENV] == "ja"
    with pytest.raises(SystemExit, match="--target needs a language code"):
        interpreter.pop_target(["x", "--target"])


# -- transcribe_file.py --translate -------------------------------------------------------------


async def _run(*args: str, timeout: float = 60.0) -> tuple[int, str, str]:
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "transcribe_file.py"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_translate_a_file_on_the_emulator_and_save_the_speech(tmp_path: Path) -> None:
    pcm = np.random.default_rng(3).integers(-2000, 2000, 24000, dtype=np.int16).tobytes()
    source, saved = tmp_path / "talk.wav", tmp_path / "out.wav"
    write_wav(source, pcm)
    status, out, err = await _run(str(source), "--translate", "fr", "--save-audio", str(saved))
    assert status == 0, err
    finals = [line for line in out.splitlines() if line.startswith("FINAL")]
    text = "".join(line.split("fr: ", 1)[1] for line in finals)
    assert text == expected_translation(pcm, "fr")  # one token per 200 ms frame, each once
    assert "translated speech: 1.00 s received, written to" in out
    assert "1.00 s billed for translation; estimated cost $0.00057" in out
    with wave.open(str(saved), "rb") as w:
        assert w.readframes(w.getnframes()) == pcm


async def test_the_demo_translates_the_bundled_sample_into_spanish() -> None:
    status, out, err = await _run("--translate", "es")
    assert status == 0, err
    finals = [
        line.split("es: ", 1)[1].strip() for line in out.splitlines() if line.startswith("FINAL")
    ]
    spanish = (EXAMPLES / "sample.es.txt").read_text(encoding="utf-8").splitlines()
    assert finals == spanish
    sources = [
        line.split("source: ", 1)[1].strip() for line in out.splitlines() if "source:" in line
    ]
    assert sources == (EXAMPLES / "sample.txt").read_text(encoding="utf-8").splitlines()
    assert "translated speech: 14.80 s received" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--save-audio", "x.wav"], "--save-audio goes with --translate LANG"),
        (["--translate", "es", "--delay", "low"], "--delay is a transcription option"),
    ],
)
async def test_translation_options_that_do_not_fit_fail_at_once(
    args: list[str], message: str
) -> None:
    status, _, err = await _run(*args)
    assert status == 2 and message in err
