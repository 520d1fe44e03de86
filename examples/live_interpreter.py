"""A live interpreter for LiveKit rooms, on ``openai_rt.TranslationSTT`` (``gpt-realtime-translate``).

For each participant who publishes audio, the agent publishes their speech translated into the
room as an audio track (``<identity>-<language>``), with the translated text as LiveKit
transcriptions (``lk.transcription`` text streams: an update per translated fragment, a final
per segment). Each participant's target language is their ``interpreter.language`` attribute,
else the command line's ``--target`` (default ``en``); changing the attribute changes the
language live.

    python examples/live_interpreter.py dev --target es
    nox -s example -- examples/live_interpreter.py dev --target es

(``--target`` is kept in ``INTERPRETER_LANGUAGE`` for the job processes; setting that variable
does the same.) It needs ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET`` (the
LiveKit server the worker registers with) and ``OPENAI_API_KEY``. Each participant's stream runs
a VAD of its own (``inference.VAD``), so a transcription segment ends at each pause in their
speech; the translated speech flows continuously.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from livekit import rtc
from livekit.agents import AgentServer, AutoSubscribe, JobContext, cli, inference, stt
from livekit.agents.types import (
    ATTRIBUTE_TRANSCRIPTION_FINAL,
    ATTRIBUTE_TRANSCRIPTION_SEGMENT_ID,
    ATTRIBUTE_TRANSCRIPTION_TRACK_ID,
    TOPIC_TRANSCRIPTION,
)
from livekit.plugins import openai_rt

logger = logging.getLogger("live-interpreter")

LANGUAGE_ATTRIBUTE = "interpreter.language"
"""The participant attribute that names the language a participant is interpreted into."""

TARGET_ENV = "INTERPRETER_LANGUAGE"
"""The environment variable that carries the default target language to the job processes."""

SAMPLE_RATE = 24000
"""Translation sessions take and give 24 kHz mono audio."""


@dataclass(frozen=True)
class Caption:
    """One transcription update: the whole segment's text so far, or its final text."""

    segment_id: str
    text: str
    language: str
    final: bool


def caption(ev: stt.SpeechEvent) -> Caption | None:
    """The caption a speech event of a translation stream makes, if any."""
    if ev.type not in (
        stt.SpeechEventType.INTERIM_TRANSCRIPT,
        stt.SpeechEventType.FINAL_TRANSCRIPT,
    ):
        return None
    alt = ev.alternatives[0]
    final = ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    return Caption(ev.request_id, alt.text, str(alt.language), final)


def target_language(attributes: Mapping[str, str], default: str) -> str:
    """A participant's target language: their attribute, else the default."""
    return attributes.get(LANGUAGE_ATTRIBUTE, "").strip() or default


class Publisher(Protocol):
    """Where a participant's interpretation goes."""

    async def audio(self, frame: rtc.AudioFrame) -> None:
        """Play a frame of translated speech."""
        ...

    async def caption(self, caption: Caption) -> None:
        """Show a transcription update."""
        ...


async def interpret(stream: openai_rt.TranslationStream, publisher: Publisher) -> None:
    """Pump one translation stream's outputs to ``publisher`` until the stream ends: its
    translated speech, in order, and a caption for every translation event."""

    async def speech() -> None:
        async for frame in stream.translated_audio():
            await publisher.audio(frame)

    async def text() -> None:
        async for ev in stream:
            made = caption(ev)
            if made is not None:
                await publisher.caption(made)

    await asyncio.gather(speech(), text())


class RoomPublisher:
    """Publishes one participant's interpretation: an audio track and transcriptions."""

    def __init__(self, room: rtc.Room, name: str) -> None:
        self._room = room
        self._source = rtc.AudioSource(SAMPLE_RATE, 1)
        self._track = rtc.LocalAudioTrack.create_audio_track(name, self._source)
        self._track_sid = ""

    async def start(self) -> None:
        """Publish the track."""
        publication = await self._room.local_participant.publish_track(
            self._track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        )
        self._track_sid = publication.sid

    async def audio(self, frame: rtc.AudioFrame) -> None:
        """Play a frame of translated speech on the track."""
        await self._source.capture_frame(frame)

    async def caption(self, caption: Caption) -> None:
        """Send a transcription of the track (the segment's whole text, final or not)."""
        await self._room.local_participant.send_text(
            caption.text,
            topic=TOPIC_TRANSCRIPTION,
            attributes={
                ATTRIBUTE_TRANSCRIPTION_SEGMENT_ID: caption.segment_id,
                ATTRIBUTE_TRANSCRIPTION_FINAL: "true" if caption.final else "false",
                ATTRIBUTE_TRANSCRIPTION_TRACK_ID: self._track_sid,
            },
        )

    async def aclose(self) -> None:
        """Unpublish the track."""
        await self._room.local_participant.unpublish_track(self._track.sid)
        await self._source.aclose()


streams: dict[str, openai_rt.TranslationStream] = {}
"""The live translation stream of each participant being interpreted."""


async def interpret_participant(
    room: rtc.Room,
    participant: rtc.RemoteParticipant,
    track: rtc.Track,
    translator: openai_rt.TranslationSTT,
    default_language: str,
) -> None:
    """Interpret one participant's audio track until it ends."""
    language = target_language(participant.attributes, default_language)
    stream = translator.stream(language=language)
    publisher = RoomPublisher(room, f"{participant.identity}-{language}")
    await publisher.start()
    streams[participant.identity] = stream
    audio = rtc.AudioStream.from_track(track=track, sample_rate=SAMPLE_RATE, num_channels=1)

    async def feed() -> None:
        async for event in audio:
            stream.push_frame(event.frame)
        stream.end_input()

    try:
        await asyncio.gather(feed(), interpret(stream, publisher))
    finally:
        streams.pop(participant.identity, None)
        await audio.aclose()
        await stream.aclose()
        await publisher.aclose()


def pop_target(argv: list[str]) -> None:
    """Move ``--target LANG`` from ``argv`` (the LiveKit CLI does not know it) to the
    environment, where the job processes find it."""
    if "--target" not in argv:
        return
    i = argv.index("--target")
    if i + 1 >= len(argv):
        raise SystemExit("--target needs a language code, e.g. --target es")
    os.environ[TARGET_ENV] = argv[i + 1]
    del argv[i : i + 2]


server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    """Interpret every participant of the room the job was dispatched to."""
    await ctx.connect(auto_subscribe=AutoSubscribe.AUDIO_ONLY)
    default_language = os.environ.get(TARGET_ENV, "en")
    translator = openai_rt.TranslationSTT(target_language=default_language, vad=inference.VAD())
    tasks: set[asyncio.Task[None]] = set()

    @ctx.room.on("track_subscribed")
    def _on_track(
        track: rtc.Track, _: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO or participant.identity in streams:
            return
        if participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT:
            return  # do not interpret other agents (or their interpretations)
        task = asyncio.create_task(
            interpret_participant(ctx.room, participant, track, translator, default_language)
        )
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @ctx.room.on("participant_attributes_changed")
    def _on_attributes(changed: Mapping[str, str], participant: rtc.Participant) -> None:
        stream = streams.get(participant.identity)
        if stream is not None and LANGUAGE_ATTRIBUTE in changed:
            language = target_language(participant.attributes, default_language)
            try:
                stream.update_options(target_language=language)
            except ValueError as e:
                logger.warning("%s asked for an unusable language: %s", participant.identity, e)

    async def shutdown() -> None:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await translator.aclose()

    ctx.add_shutdown_callback(shutdown)


if __name__ == "__main__":
    pop_target(sys.argv)
    cli.run_app(server)
