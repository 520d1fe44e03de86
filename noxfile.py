"""Developer sessions: ``nox -s demo``, ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``,
``nox -s bench``. Each installs what it needs into its own virtualenv."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = False

PACKAGE = "livekit-plugins-openai-rt"
TEST_DEPS = ["pytest>=8", "pytest-asyncio>=0.24", "openai>=3.28,<4"]
LINT_DEPS = ["ruff>=0.8"]
TYPING_DEPS = ["mypy>=1.13"]


@nox.session
def demo(session: nox.Session) -> None:
    """Transcribe the bundled sample: on OpenAI with OPENAI_API_KEY, else on the emulator."""
    session.install("-e", PACKAGE)
    session.run("python", "examples/transcribe_file.py", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """The offline test suite (the emulator stands in for OpenAI)."""
    session.install("-e", PACKAGE, *TEST_DEPS)
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", PACKAGE, *TYPING_DEPS)
    session.run("mypy", "-p", "livekit.plugins.openai_rt")


@nox.session
def bench(session: nox.Session) -> None:
    """This plugin side by side with livekit-plugins-openai 1.8.9 on the emulator: prints one
    table and writes bench-results.json (``-- --quick`` for a smoke run, ``-- --help``)."""
    session.install("-e", PACKAGE, "livekit-plugins-openai==1.8.9")
    session.run("python", "bench/run.py", *session.posargs)
