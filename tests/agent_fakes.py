"""Small stand-ins for running a real ``AgentSession`` offline: no room, no server, no models.

* :class:`WavInput` plays a 16-bit mono WAV file as a microphone would: 20 ms frames in real
  time, then endless silence, and records every byte it handed to the session.
* :class:`EchoLLM` answers each user turn with ``"you said: <text>"``.
* :class:`SilentTTS` "speaks" any text as a short stretch of silence (non-streaming).
* :class:`FakeOutput` plays audio on a virtual clock and reports playback like a real sink.
* :class:`EnergyVAD` is a deterministic VAD (``inference.VAD`` is not: its internal resampler
  dithers, so its decisions can move by a window from one run to the next).
* :func:`voice_session` is the ``AgentSession`` the tests run: the STT under test, these stand-ins
  and the session's default VAD with VAD turn detection; :func:`listen` records its chat
  messages and errors, and :func:`wait_until` waits on it.

Only the STT under test is real; everything around it is as small as the framework allows.
"""

from __future__ import annotations

import asyncio
import math
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livekit import rtc
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    AgentSession,
    APIConnectOptions,
    ConversationItemAddedEvent,
    ErrorEvent,
    NotGivenOr,
    inference,
    llm,
    stt,
    tts,
    utils,
    vad,
)
from livekit.agents.voice.io import AudioInput, AudioOutput, AudioOutputCapabilities

FRAME_MS = 20
"""Duration of each frame :class:`WavInput` yields."""
API_KEY = "test-key"
"""The key the agent tests' emulators accept."""
TURNS_TIMEOUT = 22.0
"""Seconds to wait for the sample's three user turns: the WAV lasts 14.74 s, its last utterance
ends at 13.46 s."""


def voice_session(
    stt_: stt.STT, llm_: llm.LLM | None = None, *, preemptive: bool = False
) -> AgentSession[None]:
    """An ``AgentSession`` around ``stt_``: ``llm_`` (an :class:`EchoLLM` by default),
    :class:`SilentTTS`, the session's default VAD made explicit, VAD turn detection (with
    preemptive generation when ``preemptive``), no AEC warm-up or away timer, and a
    :class:`FakeOutput`. The caller sets its audio input."""
    turn_handling: dict[str, Any] = {"turn_detection": "vad"}
    if preemptive:
        turn_handling["preemptive_generation"] = {"enabled": True}
    session: AgentSession[None] = AgentSession(
        stt=stt_,
        llm=llm_ if llm_ is not None else EchoLLM(),
        tts=SilentTTS(),
        vad=inference.VAD(),
        turn_handling=turn_handling,
        aec_warmup_duration=None,
        user_away_timeout=None,
    )
    session.output.audio = FakeOutput()
    return session


@dataclass
class Heard:
    """What an ``AgentSession`` added to its chat and reported as errors, in order."""

    user_turns: list[str] = field(default_factory=list)
    """The text of each user message."""
    replies: list[str] = field(default_factory=list)
    """The text of every other chat message (the agent's replies)."""
    errors: list[ErrorEvent] = field(default_factory=list)


def listen(session: AgentSession[None]) -> Heard:
    """Record ``session``'s chat messages and errors as they come."""
    heard = Heard()

    @session.on("conversation_item_added")
    def _on_item(ev: ConversationItemAddedEvent) -> None:
        if isinstance(ev.item, llm.ChatMessage):
            target = heard.user_turns if ev.item.role == "user" else heard.replies
            target.append(ev.item.text_content or "")

    @session.on("error")
    def _on_error(ev: ErrorEvent) -> None:
        heard.errors.append(ev)

    return heard


async def wait_until(
    predicate: Callable[[], bool], timeout: float, what: Callable[[], str]
) -> None:
    """Poll ``predicate`` every 50 ms; fail the test, saying ``what()``, if it stays false."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what()}")
        await asyncio.sleep(0.05)


def read_wav_pcm(path: Path) -> tuple[bytes, int]:
    """The PCM bytes and sample rate of a 16-bit mono WAV file."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        return w.readframes(w.getnframes()), w.getframerate()


class WavInput(AudioInput):
    """A microphone that says the contents of a WAV file, then stays silent forever.

    Frames are 20 ms long and paced in real time from the first read; ``pushed`` holds every
    byte handed out so far (the WAV's PCM, then zeros), so a test can compare what a server
    received with what the session was given.
    """

    def __init__(self, path: Path) -> None:
        """Load ``path`` (16-bit mono WAV, any sample rate)."""
        super().__init__(label="WavInput")
        self.pcm, self.sample_rate = read_wav_pcm(path)
        self.pushed = bytearray()
        self._frame_bytes = self.sample_rate * FRAME_MS // 1000 * 2
        self._frames_out = 0
        self._started_at: float | None = None

    @property
    def wav_done(self) -> bool:
        """Whether the whole WAV has been handed out (only silence follows)."""
        return len(self.pushed) >= len(self.pcm)

    async def __anext__(self) -> rtc.AudioFrame:
        now = time.monotonic()
        if self._started_at is None:
            self._started_at = now
        self._frames_out += 1
        # a frame is available once it has been "recorded": frame i at (i + 1) * 20 ms
        due = self._started_at + self._frames_out * FRAME_MS / 1000
        if due > now:
            await asyncio.sleep(due - now)
        offset = len(self.pushed)
        chunk = self.pcm[offset : offset + self._frame_bytes]
        chunk += bytes(self._frame_bytes - len(chunk))
        self.pushed += chunk
        return rtc.AudioFrame(chunk, self.sample_rate, 1, len(chunk) // 2)


class EchoLLM(llm.LLM):
    """An LLM that replies ``"you said: <last user message>"`` in a single chunk.

    ``requests`` records each request as it starts: ``(time.monotonic(), the user's text)``
    (a preemptive generation is a request too, started before the user turn is committed).
    """

    def __init__(self) -> None:
        """An echo LLM with no requests yet."""
        super().__init__()
        self.requests: list[tuple[float, str]] = []

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, object]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        """Start a reply to ``chat_ctx``."""
        return _EchoStream(self, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options)


class _EchoStream(llm.LLMStream):
    async def _run(self) -> None:
        said = ""
        for item in reversed(self.chat_ctx.items):
            if isinstance(item, llm.ChatMessage) and item.role == "user":
                said = item.text_content or ""
                break
        assert isinstance(self._llm, EchoLLM)
        self._llm.requests.append((time.monotonic(), said))
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=utils.shortuuid("echo_"),
                delta=llm.ChoiceDelta(role="assistant", content=f"you said: {said}"),
            )
        )


class SilentTTS(tts.TTS):
    """A non-streaming TTS that renders any text as ``duration`` seconds of silence."""

    def __init__(self, *, duration: float = 0.3, sample_rate: int = 24000) -> None:
        """Produce ``duration`` seconds of 16-bit mono silence at ``sample_rate`` per request."""
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=sample_rate,
            num_channels=1,
        )
        self.duration = duration

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        """Synthesize ``text`` (as silence)."""
        return _SilentStream(tts=self, input_text=text, conn_options=conn_options)


class _SilentStream(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        silent = self._tts
        assert isinstance(silent, SilentTTS)
        output_emitter.initialize(
            request_id=utils.shortuuid("silence_"),
            sample_rate=silent.sample_rate,
            num_channels=1,
            mime_type="audio/pcm",
        )
        output_emitter.push(bytes(int(silent.sample_rate * silent.duration) * 2))
        output_emitter.flush()


class FakeOutput(AudioOutput):
    """An audio sink that "plays" what it is given in real time, without a device."""

    def __init__(self) -> None:
        """Create a sink that accepts any sample rate and cannot pause."""
        super().__init__(label="FakeOutput", capabilities=AudioOutputCapabilities(pause=False))
        self._started_at = 0.0
        self._pushed = 0.0
        self._finish: asyncio.TimerHandle | None = None

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        """Queue ``frame`` for playback."""
        await super().capture_frame(frame)
        if not self._pushed:
            self._started_at = time.time()
            self.on_playback_started(created_at=self._started_at)
        self._pushed += frame.duration

    def flush(self) -> None:
        """End the current segment; it finishes once its audio has had time to play."""
        super().flush()
        if not self._pushed:
            return
        if self._finish is not None:
            self._finish.cancel()
        remaining = self._pushed - (time.time() - self._started_at)
        self._finish = asyncio.get_running_loop().call_later(
            max(0.0, remaining), self._finished, False
        )

    def clear_buffer(self) -> None:
        """Stop playback now (the agent was interrupted)."""
        if not self._pushed:
            return
        if self._finish is not None:
            self._finish.cancel()
        self._finished(True)

    def _finished(self, interrupted: bool) -> None:
        played = min(self._pushed, time.time() - self._started_at)
        self._finish = None
        self._pushed = 0.0
        self.on_playback_finished(playback_position=played, interrupted=interrupted)


class EnergyVAD(vad.VAD):
    """A deterministic VAD with the event shape of LiveKit's: 32 ms windows, a window is speech
    when its RMS is over ``threshold_dbfs``; speech starts after ``min_speech`` seconds of it
    and ends after ``min_silence`` seconds without it. Every event's ``timestamp`` is the audio
    judged so far. Each window takes ``window_delay`` seconds to judge, so a file pushed at
    full speed is judged later than it arrives, as with a real model."""

    def __init__(
        self,
        *,
        threshold_dbfs: float = -45.0,
        min_speech: float = 0.064,
        min_silence: float = 0.256,
        window_delay: float = 0.001,
    ) -> None:
        """Create the VAD (thresholds in dBFS and seconds)."""
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.032))
        self.threshold_dbfs = threshold_dbfs
        self.min_speech = min_speech
        self.min_silence = min_silence
        self.window_delay = window_delay

    def stream(self) -> vad.VADStream:
        """A stream of this VAD."""
        return _EnergyVADStream(self)


class _EnergyVADStream(vad.VADStream):
    def __init__(self, owner: EnergyVAD) -> None:
        super().__init__(owner)
        self._owner = owner

    async def _main_task(self) -> None:
        opts = self._owner
        pending = bytearray()
        judged = 0  # samples
        speaking = False
        run = 0.0  # seconds of the current speech (or silence) run
        async for item in self._input_ch:
            if not isinstance(item, rtc.AudioFrame):
                continue
            rate = item.sample_rate
            pending += item.data
            window = rate * 32 // 1000 * 2
            while len(pending) >= window:
                chunk = np.frombuffer(bytes(pending[:window]), dtype="<i2").astype(np.float64)
                del pending[:window]
                await asyncio.sleep(opts.window_delay)
                judged += window // 2
                now = judged / rate
                rms = math.sqrt(float(np.mean(chunk * chunk)))
                loud = rms > 0 and 20 * math.log10(rms / 32768) > opts.threshold_dbfs
                self._send(vad.VADEventType.INFERENCE_DONE, judged, now, speaking)
                if loud != speaking:
                    run += 0.032
                    if run >= (opts.min_speech if loud else opts.min_silence) - 1e-9:
                        speaking, run = loud, 0.0
                        kind = (
                            vad.VADEventType.START_OF_SPEECH
                            if loud
                            else vad.VADEventType.END_OF_SPEECH
                        )
                        self._send(kind, judged, now, speaking)
                else:
                    run = 0.0

    def _send(self, kind: vad.VADEventType, samples: int, now: float, speaking: bool) -> None:
        self._event_ch.send_nowait(
            vad.VADEvent(
                type=kind,
                samples_index=samples,
                timestamp=now,
                speech_duration=0.0,
                silence_duration=0.0,
                speaking=speaking,
            )
        )
