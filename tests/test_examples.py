"""The example programs fail fast and clearly, and read any WAV file.

``examples/transcribe_file.py`` runs as a user would run it, in a subprocess of this interpreter:
a bad input file or a refused key ends it at once with one line on stderr and a non-zero status.
Its WAV reader is also tested directly, for the encodings a user may hand it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import struct
import sys
import time
import wave
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from livekit.plugins.openai_rt.testing import Emulator, expected_transcript
from tests.conftest import read_pcm

ROOT = Path(__file__).resolve().parents[1]
TRANSCRIBE_FILE = ROOT / "examples" / "transcribe_file.py"
BAD_FILE_EXIT_SECONDS = 1.0
"""A bad input file is reported before the framework is imported (measured: 0.10 s idle)."""
FAST_EXIT_SECONDS = 5.0
"""Upper bound for a failure the server reports (measured idle: 1.25-1.31 s for a refused key,
of which importing livekit-agents is 1.15 s); generous for a loaded CI machine."""


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("transcribe_file_example", TRANSCRIBE_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


example = _load_example()


def _env_without_key() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    return env


async def _run_example(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30.0
) -> tuple[int, str, str, float]:
    """Run transcribe_file.py; return its status, stdout, stderr and how long it took."""
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(TRANSCRIBE_FILE),
        *args,
        env=env if env is not None else _env_without_key(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"transcribe_file.py {' '.join(args)} still running after {timeout} s")
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - start


def _wav_bytes(
    tag: int, channels: int, rate: int, bits: int, data: bytes, *, extensible: bool = False
) -> bytes:
    """A RIFF/WAVE file, written by hand so that any encoding can be built."""
    block_align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block_align, block_align, bits)
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = (
            struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * block_align, block_align, bits)
            + struct.pack("<HHIH", 22, bits, 0, tag)
            + guid_tail
        )
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    chunks += b"data" + struct.pack("<I", len(data)) + data + b"\x00" * (len(data) & 1)
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


# -- failures: one line on stderr, non-zero status, at once ------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, r"no such file"),
        (lambda p: p.write_bytes(b""), r"empty file \(0 bytes\)"),
        (lambda p: p.write_text("not audio\n" * 100), r"not a WAV file"),
        (lambda p: p.write_bytes(_wav_bytes(1, 1, 24000, 16, b"")), r"holds no audio"),
    ],
    ids=["missing", "empty", "not-wav", "no-samples"],
)
async def test_bad_input_file_fails_at_once(
    tmp_path: Path, make: Callable[[Path], object], message: str
) -> None:
    path = tmp_path / "input.wav"
    make(path)
    status, _, err, elapsed = await _run_example(str(path))
    assert status == example.EXIT_BAD_INPUT
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert re.search(message, err) and str(path) in err, err
    assert elapsed < BAD_FILE_EXIT_SECONDS


def _tone_wav(tmp_path: Path, samples: int) -> Path:
    """A 24 kHz 16-bit mono WAV of ``samples`` samples at one constant level (256)."""
    path = tmp_path / "tone.wav"
    path.write_bytes(_wav_bytes(1, 1, 24000, 16, b"\x00\x01" * samples))
    return path


async def _run_on_emulator(path: Path, key: str, *args: str) -> tuple[int, str, str, float]:
    """Run the example on ``path`` against an emulator that accepts only "right-key", with
    ``OPENAI_API_KEY`` = ``key``."""
    async with Emulator(api_key="right-key") as emu:
        env = _env_without_key() | {"OPENAI_API_KEY": key}
        return await _run_example(str(path), "--base-url", emu.base_url, *args, env=env)


async def test_refused_key_fails_with_the_plugins_message(tmp_path: Path) -> None:
    status, out, err, elapsed = await _run_on_emulator(_tone_wav(tmp_path, 24000), "wrong-key")
    assert status == example.EXIT_FAILURE
    assert err.count("\n") == 1, err
    assert err.startswith("error: ") and "401" in err and "key was refused" in err, err
    assert "wrong-key" not in err + out
    assert elapsed < FAST_EXIT_SECONDS


async def test_unknown_model_fails_in_one_line(tmp_path: Path) -> None:
    status, _, err, elapsed = await _run_on_emulator(
        _tone_wav(tmp_path, 24000), "right-key", "--model", "no-such-model"
    )
    assert status == example.EXIT_FAILURE
    assert err.count("\n") == 1 and err.startswith("error: ") and "no-such-model" in err, err
    assert elapsed < FAST_EXIT_SECONDS


async def test_base_url_without_a_key_is_refused(tmp_path: Path) -> None:
    path = _tone_wav(tmp_path, 2400)
    status, _, err, _ = await _run_example(str(path), "--base-url", "http://127.0.0.1:9/v1")
    assert status == example.EXIT_BAD_INPUT
    assert err.count("\n") == 1 and "OPENAI_API_KEY" in err, err


# -- success: other encodings are converted -----------------------------------------------------


async def test_stereo_wav_is_downmixed_and_transcribed(tmp_path: Path) -> None:
    # 24 kHz, the wire rate: the plugin does not resample, so the emulator's checksum transcript
    # must be exactly that of the downmix
    path = tmp_path / "stereo.wav"
    # 0.6 s of the sample's first word: speech, which the example's VAD keeps (a tone it would
    # rightly clear as no speech)
    left = np.frombuffer(read_pcm()[28800:57600], dtype="<i2")
    right = left // 2
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(np.stack([left, right], axis=1).tobytes())
    mono = np.round((left.astype(np.int32) + right) / 2).astype("<i2")
    status, out, err, _ = await _run_example(str(path))
    assert status == 0, err
    assert "24000 Hz stereo 16-bit PCM (downmixed to mono)" in out
    assert "checksum of the audio" in out  # the banner says what the emulator returns
    finals = re.findall(r"^FINAL \[.*\] (.*)$", out, re.M)
    assert finals == [expected_transcript(mono.tobytes())], out
    assert "0.60 s sent, 0.60 s committed" in out
    assert err == ""


async def test_trailing_silence_is_reported_cleared_not_shown_as_an_empty_final(
    tmp_path: Path,
) -> None:
    """End of input flushes; a silent tail is cleared and answered by an empty final, which the
    example does not print: it says how much audio was cleared instead."""
    path = tmp_path / "word-then-silence.wav"
    speech = read_pcm()[28800:57600]  # 0.6 s of the sample's first word
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(speech + bytes(48000))  # then 1 s of digital silence
    status, out, err, _ = await _run_example(str(path))
    assert status == 0, err
    finals = re.findall(r"^FINAL \[.*\] ?(.*)$", out, re.M)
    assert len(finals) == 1 and finals[0], out
    m = re.search(r"1\.60 s sent, ([\d.]+) s committed .*\(([\d.]+) s without speech cleared", out)
    assert m is not None, out
    committed, cleared = float(m[1]), float(m[2])
    assert cleared >= 0.5 and abs(committed + cleared - 1.60) <= 0.011, out


async def test_help_says_what_audio_it_takes() -> None:
    status, out, _, _ = await _run_example("--help")
    assert status == 0
    assert "any WAV file" in out and "--debug" in out and "--base-url" in out


# -- the WAV reader ------------------------------------------------------------------------------


def test_reads_8_bit_stereo(tmp_path: Path) -> None:
    data = bytes([128 + 64, 128 + 64, 128 - 64, 128 - 64, 128 + 64, 128 - 64])
    audio = _read(tmp_path, _wav_bytes(1, 2, 8000, 8, data))
    assert np.frombuffer(audio.pcm, "<i2").tolist() == [16384, -16384, 0]
    assert audio.sample_rate == 8000
    assert audio.description == "8000 Hz stereo 8-bit PCM (downmixed to mono, converted to 16-bit)"


def test_reads_24_and_32_bit_and_float(tmp_path: Path) -> None:
    s24 = b"".join(v.to_bytes(3, "little", signed=True) for v in (-1, 0x7FFFFF, -(1 << 23)))
    assert np.frombuffer(_read(tmp_path, _wav_bytes(1, 1, 16000, 24, s24)).pcm, "<i2").tolist() == [
        -1,
        32767,
        -32768,
    ]
    s32 = struct.pack("<3i", 0x7FFFFFFF, -(1 << 31), 1 << 16)
    assert np.frombuffer(_read(tmp_path, _wav_bytes(1, 1, 16000, 32, s32)).pcm, "<i2").tolist() == [
        32767,
        -32768,
        1,
    ]
    f32 = struct.pack("<4f", 1.0, -1.0, 2.0, 0.0)
    assert np.frombuffer(_read(tmp_path, _wav_bytes(3, 1, 16000, 32, f32)).pcm, "<i2").tolist() == [
        32767,
        -32767,
        32767,
        0,
    ]


def test_reads_wave_format_extensible(tmp_path: Path) -> None:
    data = struct.pack("<4h", 1, 2, 3, 4)
    audio = _read(tmp_path, _wav_bytes(1, 2, 44100, 16, data, extensible=True))
    assert np.frombuffer(audio.pcm, "<i2").tolist() == [2, 4]  # means of 1,2 and 3,4, rounded


def test_refuses_compressed_wav_with_a_conversion_hint(tmp_path: Path) -> None:
    with pytest.raises(example.InputError, match=r"unsupported WAV encoding.*ffmpeg"):
        _read(tmp_path, _wav_bytes(6, 1, 8000, 8, b"\xd5" * 800))  # A-law


def _read(tmp_path: Path, wav: bytes) -> Any:
    """The example's ``read_wav`` on ``wav``, written to a file."""
    path = tmp_path / "in.wav"
    path.write_bytes(wav)
    return example.read_wav(path)


# -- the README's test command is what CI runs ---------------------------------------------------


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [
        line.split("#")[0].strip() for line in readme.splitlines() if "nox -s tests" in line
    ]
    assert commands, "the README shows no test command"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[0] in [line.strip() for line in ci], (commands[0], ci)
