"""The plugin inside LiveKit's STT adapters: ``stt.FallbackAdapter`` moves to the next STT on
our fatal errors and back to ours once it recovers; ``stt.MultiSpeakerAdapter`` needs a
diarizing STT, which this one is not."""

from __future__ import annotations

import asyncio

import pytest

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    LanguageCode,
    NotGivenOr,
    stt,
)
from livekit.agents.stt import AvailabilityChangedEvent
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import (
    Emulator,
    FaultPlan,
    RefuseHandshake,
    expected_transcript,
)
from tests.conftest import FINAL, KEY, MakeSTT, error_records, frames


class BackupSTT(stt.STT):
    """Another streaming STT: one final, ``"backup <n>"``, per flush that followed audio."""

    def __init__(self) -> None:
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True, interim_results=False, offline_recognize=False, manual_flush=True
            )
        )
        self.finals = 0

    async def _recognize_impl(self, *args: object, **kwargs: object) -> stt.SpeechEvent:
        raise NotImplementedError

    def stream(
        self,
        *,
        language: NotGivenOr[str] = "",
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> stt.RecognizeStream:
        return _BackupStream(self, conn_options)


class _BackupStream(stt.RecognizeStream):
    def __init__(self, owner: BackupSTT, conn_options: APIConnectOptions) -> None:
        super().__init__(stt=owner, conn_options=conn_options, sample_rate=24000)
        self._owner = owner

    async def _run(self) -> None:
        heard = False
        async for item in self._input_ch:
            if isinstance(item, rtc.AudioFrame):
                heard = True
            elif heard:
                heard = False
                self._owner.finals += 1
                self._event_ch.send_nowait(
                    stt.SpeechEvent(
                        type=FINAL,
                        alternatives=[
                            stt.SpeechData(
                                language=LanguageCode("en"), text=f"backup {self._owner.finals}"
                            )
                        ],
                    )
                )


async def say(stream: stt.RecognizeStream, pcm: bytes, finals: list[str], want: int) -> None:
    """Push an utterance, flush, and wait until ``want`` finals were read."""
    for frame in frames(pcm):
        stream.push_frame(frame)
    stream.flush()
    for _ in range(500):
        if len(finals) >= want:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no final {want} (have {finals})")


async def test_fallback_moves_on_our_fatal_error_and_comes_back_when_we_recover(
    sample_pcm: bytes, make_stt: MakeSTT, caplog: pytest.LogCaptureFixture
) -> None:
    utterance = sample_pcm[28800:76800]
    # the key is refused once (401: fatal), then accepted again
    faults = FaultPlan(refuse_handshake=RefuseHandshake(status=401, times=1))
    async with Emulator(api_key=KEY, faults=faults) as emu:
        ours, backup = make_stt(emu), BackupSTT()
        adapter = stt.FallbackAdapter([ours, backup])
        changes: list[tuple[str, bool]] = []

        @adapter.on("stt_availability_changed")
        def _changed(ev: AvailabilityChangedEvent) -> None:
            changes.append((ev.stt.label, ev.available))

        first = adapter.stream()
        finals: list[str] = []

        async def read(stream: stt.RecognizeStream) -> None:
            async for ev in stream:
                if ev.type == FINAL:
                    finals.append(ev.alternatives[0].text)

        reader = asyncio.create_task(read(first))
        # ours fails at once and fatally: it is marked unavailable and the backup takes over
        await emu.wait_for(lambda: changes)
        assert changes == [(ours.label, False)]
        await say(first, utterance, finals, 1)
        assert finals == ["backup 1"]
        # the adapter tries ours again on the audio that follows; once a final comes back,
        # ours is available again
        await say(first, utterance, finals, 2)
        await emu.wait_for(lambda: (ours.label, True) in changes)
        await first.aclose()
        reader.cancel()

        # the next stream is ours again
        second = adapter.stream()
        finals.clear()
        reader = asyncio.create_task(read(second))
        await say(second, utterance, finals, 1)
        await second.aclose()
        reader.cancel()
        await adapter.aclose()
    items = emu.committed_items()
    assert finals == [expected_transcript(items[-1].audio)]
    assert backup.finals == 2
    # our fatal failure was reported once, at ERROR, by us
    assert len(error_records(caplog)) == 1


def test_multi_speaker_adapter_needs_diarization_which_we_do_not_claim() -> None:
    with pytest.raises(ValueError, match="diarization"):
        stt.MultiSpeakerAdapter(stt=openai_rt.STT(api_key=KEY))
