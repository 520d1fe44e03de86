"""Transcribe everyone in a LiveKit room, with no LLM and no TTS: a bot that only listens.

Each participant who publishes a microphone gets a stream of its own (``openai_rt.STT`` with
``vad=``: the stream's VAD commits at each end of speech, and silence is not billed); its
interim and final transcripts are published to the room on the ``lk.transcription`` text
stream topic, attributed to the speaker and their track, which is what LiveKit's client SDKs
show as transcriptions. A participant's stream is closed when they leave (or unpublish).

Run it like ``voice_agent.py`` (it needs no ``livekit-plugins-openai``)::

    python examples/room_transcriber.py dev
    nox -s example -- examples/room_transcriber.py dev

It needs ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET`` and ``OPENAI_API_KEY``.

:class:`RoomTranscriber` holds the logic (streams per participant, what is published, when
streams close) and does not depend on a live room: ``tests/test_room_transcriber.py`` drives it
with the emulator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext, cli, inference, stt, utils
from livekit.agents.types import (
    ATTRIBUTE_TRANSCRIPTION_FINAL,
    ATTRIBUTE_TRANSCRIPTION_SEGMENT_ID,
    ATTRIBUTE_TRANSCRIPTION_TRACK_ID,
    TOPIC_TRANSCRIPTION,
)
from livekit.plugins import openai_rt

logger = logging.getLogger("room-transcriber")

SHOWN = {
    stt.SpeechEventType.INTERIM_TRANSCRIPT: False,
    stt.SpeechEventType.PREFLIGHT_TRANSCRIPT: False,
    stt.SpeechEventType.FINAL_TRANSCRIPT: True,
}
"""The transcript events published, and whether each is final."""


@dataclass(frozen=True)
class Segment:
    """One published transcription: the whole text so far of one utterance of one speaker."""

    speaker: str
    track_sid: str
    segment_id: str
    text: str
    final: bool


class Publisher(Protocol):
    """Where transcriptions go (the room, or a test's list)."""

    async def publish(self, segment: Segment) -> None:
        """Publish ``segment``; a later one with the same ``segment_id`` replaces it."""
        ...


class TextStreamWriter(Protocol):
    """What :class:`RoomPublisher` needs of ``rtc.TextStreamWriter``."""

    async def write(self, text: str) -> None:
        """Send ``text``."""
        ...

    async def aclose(self) -> None:
        """End the stream."""
        ...


class TextStreamSender(Protocol):
    """What :class:`RoomPublisher` needs of ``rtc.LocalParticipant``."""

    async def stream_text(
        self,
        *,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        sender_identity: str | None = None,
    ) -> TextStreamWriter:
        """Open a text stream."""
        ...


class RoomPublisher:
    """Publishes each segment as an ``lk.transcription`` text stream, as LiveKit agents do:
    sent on behalf of the speaker, tagged with their track, the segment id and finality."""

    def __init__(self, sender: TextStreamSender) -> None:
        """Publish through ``sender`` (the room's local participant)."""
        self._sender = sender

    async def publish(self, segment: Segment) -> None:
        """Publish ``segment`` as one text stream."""
        writer = await self._sender.stream_text(
            topic=TOPIC_TRANSCRIPTION,
            sender_identity=segment.speaker,
            attributes={
                ATTRIBUTE_TRANSCRIPTION_FINAL: "true" if segment.final else "false",
                ATTRIBUTE_TRANSCRIPTION_SEGMENT_ID: segment.segment_id,
                ATTRIBUTE_TRANSCRIPTION_TRACK_ID: segment.track_sid,
            },
        )
        await writer.write(segment.text)
        await writer.aclose()


class RoomTranscriber:
    """One stream per speaker: opened when they start publishing audio, closed when they
    leave; every transcript published as it comes.

    Args:
        stt_: the STT that opens the streams (give it ``vad=`` so each stream commits at its
            speaker's ends of speech).
        publisher: where the transcriptions go.
    """

    def __init__(self, stt_: stt.STT, publisher: Publisher) -> None:
        self._stt = stt_
        self._publisher = publisher
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def speakers(self) -> list[str]:
        """Identities being transcribed now."""
        return [identity for identity, task in self._tasks.items() if not task.done()]

    def add(self, speaker: str, track_sid: str, frames: AsyncIterable[rtc.AudioFrame]) -> None:
        """Transcribe ``speaker``'s ``frames`` (their track ``track_sid``) until they end or
        :meth:`remove` is called; a speaker already transcribed is switched to these frames."""
        self.remove(speaker)
        self._tasks[speaker] = asyncio.create_task(
            self._transcribe(speaker, track_sid, frames), name=f"transcribe {speaker}"
        )

    def remove(self, speaker: str) -> None:
        """Stop transcribing ``speaker`` (left, or unpublished): their stream closes."""
        task = self._tasks.pop(speaker, None)
        if task is not None:
            task.cancel()

    async def aclose(self) -> None:
        """Stop every stream."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _transcribe(
        self, speaker: str, track_sid: str, frames: AsyncIterable[rtc.AudioFrame]
    ) -> None:
        stream = self._stt.stream()

        async def feed() -> None:
            async for frame in frames:
                stream.push_frame(frame)
            stream.end_input()

        feeder = asyncio.create_task(feed())
        try:
            async for ev in stream:
                final = SHOWN.get(ev.type)
                if final is None or not ev.alternatives[0].text:
                    continue
                await self._publisher.publish(
                    Segment(speaker, track_sid, ev.request_id, ev.alternatives[0].text, final)
                )
        except Exception:
            logger.exception("transcribing %s failed", speaker)
        finally:
            await utils.aio.cancel_and_wait(feeder)
            await stream.aclose()


async def track_frames(track: rtc.Track) -> AsyncIterator[rtc.AudioFrame]:
    """The audio frames of a remote track."""
    audio = rtc.AudioStream(track)
    try:
        async for event in audio:
            yield event.frame
    finally:
        await audio.aclose()


server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    """Transcribe the room the job was dispatched to until the job ends."""
    transcriber = RoomTranscriber(
        openai_rt.STT(vad=inference.VAD()), RoomPublisher(ctx.room.local_participant)
    )
    ctx.add_shutdown_callback(transcriber.aclose)

    @ctx.room.on("track_subscribed")
    def _on_track(
        track: rtc.Track, publication: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            logger.info("transcribing %s", who.identity)
            transcriber.add(who.identity, track.sid, track_frames(track))

    @ctx.room.on("track_unsubscribed")
    def _on_untrack(
        track: rtc.Track, publication: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
    ) -> None:
        if track.kind == rtc.TrackKind.KIND_AUDIO:
            transcriber.remove(who.identity)

    @ctx.room.on("participant_disconnected")
    def _on_left(who: rtc.RemoteParticipant) -> None:
        transcriber.remove(who.identity)

    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)


if __name__ == "__main__":
    cli.run_app(server)
