"""``examples/room_transcriber.py`` and ``examples/phone_agent.py``, the parts that hold logic:
one stream per speaker with every transcript published (final ones exactly the server's),
streams closed when speakers leave, the ``lk.transcription`` shape of what is published, and
the phone agent's choice of G.711 for SIP callers."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

from livekit import rtc
from livekit.plugins.openai_rt.testing import Emulator, expected_transcript
from tests.agent_fakes import EnergyVAD
from tests.conftest import KEY, MakeSTT, frames

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rt = load("room_transcriber")
phone = load("phone_agent")


class Collected:
    """A publisher that keeps what it is given."""

    def __init__(self) -> None:
        self.segments: list[rt.Segment] = []

    async def publish(self, segment: rt.Segment) -> None:
        self.segments.append(segment)


async def microphone(pcm: bytes, *, then_silence: bool = False) -> AsyncIterator[rtc.AudioFrame]:
    """A track's frames: ``pcm`` (fast), then silence forever (paced) if ``then_silence``."""
    for frame in frames(pcm):
        yield frame
        await asyncio.sleep(0)
    while then_silence:
        yield rtc.AudioFrame(bytes(960), 24000, 1, 480)
        await asyncio.sleep(0.02)


async def test_each_speaker_is_transcribed_and_published(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    published = Collected()
    transcriber = rt.RoomTranscriber(make_stt(emulator, vad=EnergyVAD()), published)
    alice, bob = sample_pcm[:225600], sample_pcm[225600:480000]  # one sentence each
    transcriber.add("alice", "TR_a", microphone(alice))
    transcriber.add("bob", "TR_b", microphone(bob))
    assert sorted(transcriber.speakers) == ["alice", "bob"]
    await emulator.wait_for(lambda: not transcriber.speakers, timeout=10.0)  # tracks ended
    await transcriber.aclose()

    by_session = {s.id: s for s in emulator.sessions}
    items = {i.item_id: i for i in emulator.committed_items()}
    for speaker, track in (("alice", "TR_a"), ("bob", "TR_b")):
        mine = [seg for seg in published.segments if seg.speaker == speaker]
        finals = [seg for seg in mine if seg.final]
        assert finals and all(seg.track_sid == track for seg in mine)
        assert any(not seg.final for seg in mine)  # interims show while they speak
        for seg in finals:
            assert seg.text == expected_transcript(items[seg.segment_id].audio)
        # each speaker's audio went to a session of their own
        sessions = {items[seg.segment_id].session_id for seg in finals}
        assert len(sessions) == 1
    assert len(by_session) == 2


async def test_a_speaker_who_leaves_has_their_stream_closed(
    emulator: Emulator, sample_pcm: bytes, make_stt: MakeSTT
) -> None:
    transcriber = rt.RoomTranscriber(make_stt(emulator, vad=EnergyVAD()), Collected())
    transcriber.add("carol", "TR_c", microphone(sample_pcm[:48000], then_silence=True))
    await emulator.wait_for(lambda: emulator.sessions and emulator.sessions[0].appended_bytes)
    transcriber.remove("carol")  # left the room
    await emulator.wait_for(lambda: emulator.sessions[0].closed)
    assert transcriber.speakers == []
    await transcriber.aclose()


class FakeWriter:
    def __init__(self, sent: list[tuple[dict[str, object], str]], header: dict[str, object]):
        self._sent, self._header = sent, header

    async def write(self, text: str) -> None:
        self._sent.append((self._header, text))

    async def aclose(self) -> None:
        self._sent.append((self._header, "<closed>"))


class FakeParticipant:
    def __init__(self) -> None:
        self.sent: list[tuple[dict[str, object], str]] = []

    async def stream_text(
        self,
        *,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        sender_identity: str | None = None,
    ) -> FakeWriter:
        header = {"topic": topic, "attributes": attributes, "sender": sender_identity}
        return FakeWriter(self.sent, header)


async def test_segments_are_published_as_livekit_transcriptions() -> None:
    local = FakeParticipant()
    await rt.RoomPublisher(local).publish(rt.Segment("dave", "TR_d", "item_1", "hi there", True))
    header = {
        "topic": "lk.transcription",
        "sender": "dave",
        "attributes": {
            "lk.transcription_final": "true",
            "lk.segment_id": "item_1",
            "lk.transcribed_track_id": "TR_d",
        },
    }
    assert local.sent == [(header, "hi there"), (header, "<closed>")]


@pytest.mark.parametrize(
    ("kind", "fmt"),
    [
        (rtc.ParticipantKind.PARTICIPANT_KIND_SIP, "pcmu"),
        (rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD, "pcm16"),
    ],
)
def test_the_phone_agent_hears_sip_callers_in_g711(
    kind: rtc.ParticipantKind.ValueType, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)

    class Caller:
        pass

    caller = Caller()
    caller.kind = kind  # type: ignore[attr-defined]
    stt_ = phone.make_stt(caller)
    assert stt_.options.audio_format == fmt
    assert phone.AGENT_NAME == "phone-agent"
