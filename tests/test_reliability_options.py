"""Bad input fails at construction, saying what to change: numbers that are not finite or not
numbers, a base URL with credentials or control characters, a key with a newline; a key sent
in plain text to another machine is warned about once; a base URL's query reaches the server.
"""

from __future__ import annotations

import logging
import uuid

import pytest

from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import Emulator
from tests.conftest import KEY, MakeSTT, assert_exactly_once, drive

NUMERIC_OPTIONS = {
    "replay_seconds": ">= 0",
    "final_timeout": "> 0",
    "result_timeout": "> 0",
    "rollover_margin": ">= 0",
    "heartbeat": "> 0",
}
"""Every numeric option of ``openai_rt.STT`` and the range it takes."""

BAD_NUMBERS = {
    "NaN": float("nan"),
    "infinity": float("inf"),
    "negative": -1.0,
    "a string": "10",
    "a bool": True,
}


@pytest.mark.parametrize("bad", list(BAD_NUMBERS))
@pytest.mark.parametrize("option", list(NUMERIC_OPTIONS))
def test_a_numeric_option_must_be_a_finite_number_in_range(option: str, bad: str) -> None:
    value = BAD_NUMBERS[bad]
    with pytest.raises(ValueError) as info:
        openai_rt.STT(api_key=KEY, **{option: value})  # type: ignore[arg-type]
    message = str(info.value)
    # names the option, says what to pass, and shows what was passed
    assert message.startswith(f"{option} must be ")
    assert f"a finite number of seconds {NUMERIC_OPTIONS[option]}" in message
    assert repr(value) in message


def test_the_numeric_options_accept_their_bounds() -> None:
    stt_ = openai_rt.STT(
        api_key=KEY, replay_seconds=0, rollover_margin=0.0, heartbeat=None, final_timeout=1
    )
    assert stt_.options.replay_seconds == 0 and stt_.options.heartbeat is None


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("https://user:s3cret@api.openai.com/v1", "must not carry credentials"),
        ("https://api.openai.com/v1\r\nX-Injected: 1", "control characters"),
        ("https://api.openai.com/v1\x00", "control characters"),
    ],
)
def test_a_base_url_with_credentials_or_control_characters_is_refused(
    base_url: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        openai_rt.STT(api_key=KEY, base_url=base_url)
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("key", [KEY + "\n", KEY + "\r\nX-Injected: 1", "\t" + KEY])
def test_a_key_with_control_characters_is_refused_without_repeating_it(key: str) -> None:
    with pytest.raises(ValueError, match="api_key contains control characters") as info:
        openai_rt.STT(api_key=key)
    assert KEY not in str(info.value)


def test_a_key_sent_in_plain_text_to_another_machine_is_warned_about_once_per_host(
    caplog: pytest.LogCaptureFixture,
) -> None:
    host = f"gateway-{uuid.uuid4().hex[:8]}.example:8080"
    other = f"gateway-{uuid.uuid4().hex[:8]}.example"
    for base_url in (
        f"http://{host}/v1",
        f"ws://{host}/v1",  # the same host again: no second warning
        f"http://{other}/v1",
        f"https://{host}/v1",  # encrypted
        "http://127.0.0.1:8765/v1",  # this machine
        "http://localhost:8765/v1",
        "http://[::1]:8765/v1",
    ):
        openai_rt.STT(api_key=KEY, base_url=base_url)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "unencrypted" in r.getMessage()
    ]
    assert len(warnings) == 2
    assert host in warnings[0] and other in warnings[1]


async def test_a_base_url_query_reaches_the_server_with_intent_added(
    sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    async with Emulator(api_key=KEY) as emu:
        stt_ = make_stt(emu, base_url=f"{emu.base_url}?api-version=2025-08-28&deployment=rt")
        events = await drive(stt_.stream(), sample_pcm[:96000])
        assert_exactly_once(events, emu.committed_items(), sample_pcm[:96000], every_item=True)
    assert emu.sessions[0].query == {
        "api-version": "2025-08-28",
        "deployment": "rt",
        "intent": "transcription",
    }
