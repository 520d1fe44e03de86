"""An inbound phone agent: answers calls that reach LiveKit over SIP, hears the caller through
``openai_rt.STT`` with G.711 at 8 kHz.

A phone call's audio is 8 kHz G.711 from the carrier's side; LiveKit's SIP bridge hands it to
the room, and RoomIO gives it to the session at 24 kHz. Sending it to OpenAI as 24 kHz PCM16
spends 48,000 bytes a second on audio that holds no more than 8 kHz G.711 did: with
``audio_format="pcmu"`` the plugin resamples back to 8 kHz and sends mu-law, 8,000 bytes a
second, and nothing is lost that the call had. Participants that did not come over SIP (a
browser, the agents playground) keep 24 kHz PCM16.

The worker registers under the dispatch name ``phone-agent``: a SIP dispatch rule that puts
each caller in a room of their own and dispatches this agent there is in the README ("Phone
calls"). Run it like ``voice_agent.py``::

    pip install "./livekit-plugins-openai-rt[examples]"      # from a clone of the repository
    python examples/phone_agent.py dev

    nox -s example -- examples/phone_agent.py dev             # the same, in nox's virtualenv

It needs ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET`` (the project that owns
the SIP trunk) and ``OPENAI_API_KEY`` (STT, LLM and TTS).
"""

from __future__ import annotations

import logging

from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli
from livekit.agents.voice.room_io import RoomOptions
from livekit.plugins import openai_rt

try:
    from livekit.plugins import openai
except ImportError:  # not a dependency of the plugin
    raise SystemExit(
        "phone_agent.py also needs livekit-plugins-openai (LLM, TTS): "
        'pip install "./livekit-plugins-openai-rt[examples]"'
    ) from None

AGENT_NAME = "phone-agent"
"""The dispatch name the SIP dispatch rule names in ``roomConfig.agents``."""

logger = logging.getLogger("phone-agent")

server = AgentServer()


def audio_format_for(kind: rtc.ParticipantKind.ValueType) -> openai_rt.AudioFormatName:
    """G.711 mu-law for a caller on the phone network (a SIP participant), 24 kHz PCM16 for
    anyone else: the wire format that carries everything the participant's audio holds."""
    return "pcmu" if kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP else "pcm16"


def make_stt(participant: rtc.RemoteParticipant) -> openai_rt.STT:
    """The STT for ``participant``'s audio."""
    return openai_rt.STT(
        model="gpt-realtime-whisper",
        language="en",
        audio_format=audio_format_for(participant.kind),
    )


@server.rtc_session(agent_name=AGENT_NAME)
async def entrypoint(ctx: JobContext) -> None:
    """Answer the call in the room the dispatch rule created for it."""
    caller = await ctx.wait_for_participant()
    stt = make_stt(caller)
    logger.info(
        "answering %s over %s",
        "a phone call" if caller.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP else "WebRTC",
        stt.options.audio_format,
        extra={"participant": caller.identity},
    )
    session: AgentSession[None] = AgentSession(
        stt=stt,
        llm=openai.LLM(model="gpt-4.1-mini"),
        tts=openai.TTS(),
    )

    async def close_stt() -> None:
        await stt.aclose()

    ctx.add_shutdown_callback(close_stt)
    await session.start(
        agent=Agent(
            instructions=(
                "You answer the phone for a small business. Keep every answer to one or two "
                "short sentences; the caller hears you over a phone line."
            )
        ),
        room=ctx.room,
        room_options=RoomOptions(participant_identity=caller.identity),
    )
    session.generate_reply(instructions="Greet the caller and ask how you can help.")


if __name__ == "__main__":
    cli.run_app(server)
