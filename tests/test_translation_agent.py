"""``openai_rt.TranslationSTT`` inside a real ``AgentSession``, end to end, offline.

A real session (default session VAD, VAD turn detection, no room) hears ``examples/sample.wav``
in real time through the translation STT, which talks to the bundled emulator. The emulator
"translates" the i-th utterance as the i-th line of ``examples/sample.es.txt`` (with
``examples/sample.txt`` as the source transcript), so the test checks what the agent gets: its
user turns are the translated text, one per utterance, cut by the session's VAD flushes.
"""

from __future__ import annotations

from livekit.agents import (
    Agent,
    UserInputTranscribedEvent,
)
from livekit.agents.metrics.usage import STTModelUsage
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt.testing import Emulator, ScriptTranslator
from tests.agent_fakes import API_KEY, TURNS_TIMEOUT, WavInput, listen, voice_session, wait_until
from tests.conftest import EXAMPLES, SAMPLE_WAV

BYTES_PER_SECOND = 48000


def lines(name: str) -> list[str]:
    return [line for line in (EXAMPLES / name).read_text(encoding="utf-8").splitlines() if line]


async def test_the_agents_turns_receive_the_translated_text() -> None:
    spanish, english = lines("sample.es.txt"), lines("sample.txt")
    translator = ScriptTranslator(spanish, source_lines=english)
    async with Emulator(api_key=API_KEY, translator=translator) as emu:
        tstt = openai_rt.TranslationSTT(
            target_language="es",
            source_transcription="gpt-realtime-whisper",
            api_key=API_KEY,
            base_url=emu.base_url,
        )
        session = voice_session(tstt)
        session.input.audio = WavInput(SAMPLE_WAV)
        heard = listen(session)
        user_turns, replies, errors = heard.user_turns, heard.replies, heard.errors
        finals: list[UserInputTranscribedEvent] = []

        @session.on("user_input_transcribed")
        def _on_transcribed(ev: UserInputTranscribedEvent) -> None:
            if ev.is_final:
                finals.append(ev)

        await session.start(Agent(instructions="Repeat what the user says."))
        try:
            await wait_until(
                lambda: len(user_turns) >= 3 and len(replies) >= 3,
                TURNS_TIMEOUT,
                lambda: f"three user turns and replies (got {user_turns!r}, {replies!r})",
            )
            turns, said = list(user_turns), list(replies)
            usage = [u for u in session.usage.model_usage if isinstance(u, STTModelUsage)]
            received = sum(s.appended_bytes for s in emu.sessions) / BYTES_PER_SECOND
        finally:
            await session.aclose()
            await tstt.aclose()

    assert [t.strip() for t in turns] == spanish
    assert [r.strip() for r in said] == [f"you said: {line}" for line in spanish]
    assert [ev.language for ev in finals[:3]] == ["es"] * 3
    assert not errors, [e.error for e in errors]
    # one translation session; usage is the audio sent, billed as the finals came
    assert len(emu.sessions) == 1
    assert len(usage) == 1 and usage[0].model == "gpt-realtime-translate"
    assert 13.4 < usage[0].audio_duration <= received + 1e-6
