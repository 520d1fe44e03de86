"""Developer sessions. Each installs what it needs into its own virtualenv under ``.nox/``.

``nox -s demo`` (``nox -s demo -- --translate es``: live translation), ``nox -s tests``,
``nox -s lint``, ``nox -s typecheck``, ``nox -s package``, ``nox -s pythons``, ``nox -s bench``,
``nox -s load``; ``nox -s example -- examples/<name>.py [args]`` runs an example,
``nox -s emulator -- --port 8765`` the emulator. ``nox -l`` lists them.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = False

PACKAGE = "livekit-plugins-openai-rt"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.24", "pytest-xdist>=3.5", "openai>=3.28,<4"]
TEST_WORKERS = "4"
"""Test processes: most tests wait on real time (audio paced as it would be spoken, server
delays), not on the CPU, so four workers finish in a third of the time even on two cores."""
LINT_DEPS = ["ruff>=0.8"]
TYPING_DEPS = ["mypy>=1.13"]
PACKAGING_DEPS = ["build>=1.2", "twine>=6.1"]

OLDEST_AND_NEWEST_PYTHON = ["3.10", "3.13"]
"""The ends of the supported range (the package's classifiers list 3.10 to 3.13)."""
FAST_TESTS = [
    "tests/test_protocol.py",
    "tests/test_options.py",
    "tests/test_ledger.py",
    "tests/test_stream.py",
    "tests/test_examples.py",
]
"""A subset of the suite that runs in seconds and still drives a stream against the emulator."""

DIST = Path("dist")
SDIST_TOP_LEVEL = {"PKG-INFO", "pyproject.toml", ".gitignore", "README.md", "LICENSE", "livekit"}
"""All the sdist may hold: metadata, build configuration (hatchling always ships the .gitignore it
built with, so that a wheel built from the sdist leaves out the same files), README, license and
the code."""


@nox.session
def demo(session: nox.Session) -> None:
    """Transcribe the bundled sample (``-- --translate es``: translate it live into Spanish):
    on OpenAI with OPENAI_API_KEY, else on the emulator."""
    session.install("-e", PACKAGE)
    session.run("python", "examples/transcribe_file.py", *session.posargs)


@nox.session
def example(session: nox.Session) -> None:
    """Run an example with the plugin and the examples' extras installed:
    ``nox -s example -- examples/transcribe_file.py talk.wav`` or
    ``nox -s example -- examples/voice_agent.py dev`` or
    ``nox -s example -- examples/live_interpreter.py dev --target es``."""
    if not session.posargs:
        session.error(
            "which example? nox -s example -- examples/transcribe_file.py [file.wav] [options]"
            " | examples/voice_agent.py dev | examples/live_interpreter.py dev --target es"
            " | examples/phone_agent.py dev | examples/room_transcriber.py dev"
        )
    session.install("-e", f"{PACKAGE}[examples]")
    session.run("python", *session.posargs)


@nox.session
def emulator(session: nox.Session) -> None:
    """Serve the emulator of OpenAI's transcription endpoint until Ctrl-C:
    ``nox -s emulator -- --port 8765`` (``-- --help`` for its options)."""
    session.install("-e", PACKAGE)
    session.run("python", "-m", "livekit.plugins.openai_rt.testing", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The offline test suite (the emulator stands in for OpenAI). The examples are tested too,
    so their extra is installed."""
    session.install("-e", f"{PACKAGE}[examples]", *TEST_DEPS)
    session.run("pytest", *(session.posargs or ["-q", "-n", TEST_WORKERS]))


@nox.session(python=OLDEST_AND_NEWEST_PYTHON)
def pythons(session: nox.Session) -> None:
    """The fast tests against the built package (not an editable install) on the oldest and
    newest supported Python; an interpreter that is not on PATH is skipped (with pyenv, list the
    versions in ``pyenv global`` or ``PYENV_VERSION``)."""
    session.install(f"./{PACKAGE}", *TEST_DEPS)  # pip rebuilds a local folder every time
    session.run("pytest", "-q", *(session.posargs or FAST_TESTS))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the examples."""
    session.install("-e", f"{PACKAGE}[examples]", *TYPING_DEPS)
    session.run("mypy", "-p", "livekit.plugins.openai_rt")
    session.run("mypy", "examples")


@nox.session
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel into dist/, check them with ``twine check --strict`` (the
    long description renders) and check that they carry the license and nothing else."""
    shutil.rmtree(DIST, ignore_errors=True)
    session.install(*PACKAGING_DEPS)
    session.run("python", "-m", "build", "--outdir", str(DIST), PACKAGE)
    session.run("twine", "check", "--strict", *sorted(str(p) for p in DIST.iterdir()))
    problems = _sdist_problems(next(DIST.glob("*.tar.gz"))) + _wheel_problems(
        next(DIST.glob("*.whl"))
    )
    if problems:
        session.error("; ".join(problems))
    session.log(f"{DIST}/: " + ", ".join(sorted(p.name for p in DIST.iterdir())))


def _sdist_problems(sdist: Path) -> list[str]:
    """What is wrong with the sdist's file list (empty when nothing is)."""
    with tarfile.open(sdist) as tar:
        names = [m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name]
    problems = [
        f"{sdist.name} holds {name}"
        for name in names
        if name.split("/", 1)[0] not in SDIST_TOP_LEVEL or "__pycache__" in name
    ]
    if "LICENSE" not in names:
        problems.append(f"{sdist.name} has no LICENSE")
    return problems


def _wheel_problems(wheel: Path) -> list[str]:
    """What is wrong with the wheel's file list (empty when nothing is)."""
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
    problems = [f"{wheel.name} holds {name}" for name in names if "__pycache__" in name]
    if not any(name.endswith(".dist-info/licenses/LICENSE") for name in names):
        problems.append(f"{wheel.name} has no dist-info/licenses/LICENSE")
    if "livekit/plugins/openai_rt/py.typed" not in names:
        problems.append(f"{wheel.name} has no py.typed")
    if "livekit/plugins/openai_rt/check/sample.wav" not in names:
        problems.append(f"{wheel.name} has no check/sample.wav (the live check's audio)")
    return problems


@nox.session
def bench(session: nox.Session) -> None:
    """This plugin side by side with livekit-plugins-openai 1.8.9 on the emulator: prints one
    table and writes bench-results.json (``-- --quick`` for a smoke run, ``-- --help``)."""
    session.install("-e", PACKAGE, "livekit-plugins-openai==1.8.9")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session
def load(session: nox.Session) -> None:
    """300 streams of 20 s at the audio clock against the emulator, with random drops: every
    stream ends with exactly its finals or one loud non-retryable error, and no file descriptor
    or task is left (``-- --help`` for the sizes)."""
    session.install("-e", PACKAGE)
    session.run("python", "bench/load.py", *session.posargs)
