"""Fixtures of the emulator tests (helpers are in ``helpers.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from livekit.plugins.openai_rt.testing import Emulator
from tests.emulator.helpers import KEY, MakeEmu, validate_out_events


@pytest_asyncio.fixture
async def make_emu() -> AsyncIterator[MakeEmu]:
    """Start emulators on demand; close them and validate all their output at teardown."""
    started: list[Emulator] = []

    async def make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("api_key", KEY)
        emu = Emulator(**kwargs)
        await emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        await emu.aclose()
        validate_out_events(emu)
