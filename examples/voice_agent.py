"""A minimal LiveKit room voice agent that hears users through ``openai_rt.STT``.

It also uses ``livekit-plugins-openai`` (LLM and TTS), which the plugin does not depend on:
install the package with its ``examples`` extra, or let nox do it::

    pip install "./livekit-plugins-openai-rt[examples]"      # from a clone of the repository
    python examples/voice_agent.py dev

    nox -s example -- examples/voice_agent.py dev             # the same, in nox's virtualenv

It needs these environment variables:

* ``LIVEKIT_URL``, ``LIVEKIT_API_KEY``, ``LIVEKIT_API_SECRET``: the LiveKit server or Cloud
  project the worker registers with (``dev`` also takes ``--url``, ``--api-key``,
  ``--api-secret``);
* ``OPENAI_API_KEY``: used by the STT (``gpt-realtime-whisper`` over the Realtime API), the LLM
  and the TTS.

The session's own VAD (the default ``inference.VAD``) decides when each user utterance ends and
flushes the STT stream, which commits the audio to OpenAI; no second VAD runs in the plugin.
When the job ends, the STT audio the session committed and its estimated price are logged.

(livekit-agents 1.8.9 marks its built-in ``dev`` command deprecated in favour of the LiveKit CLI,
``lk agent dev``; both run the ``server`` defined here.)
"""

from __future__ import annotations

import logging

from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli
from livekit.agents.metrics.usage import STTModelUsage
from livekit.plugins import openai_rt

try:
    from livekit.plugins import openai
except ImportError:  # not a dependency of the plugin
    raise SystemExit(
        "voice_agent.py also needs livekit-plugins-openai (LLM, TTS): "
        'pip install "./livekit-plugins-openai-rt[examples]"'
    ) from None

logger = logging.getLogger("voice-agent")

server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    """Run one voice session in the room the job was dispatched to."""
    stt = openai_rt.STT(model="gpt-realtime-whisper", language="en")
    session: AgentSession[None] = AgentSession(
        stt=stt,
        llm=openai.LLM(model="gpt-4.1-mini"),
        tts=openai.TTS(),
    )

    async def log_usage() -> None:
        for usage in session.usage.model_usage:
            if isinstance(usage, STTModelUsage) and usage.model == stt.model:
                cost = openai_rt.estimate_cost_usd(
                    usage.model,
                    audio_seconds=usage.audio_duration,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                )
                price = "unknown" if cost is None else f"${cost:.4f}"
                logger.info(
                    "STT %s: %.1f s of audio transcribed, estimated %s",
                    usage.model,
                    usage.audio_duration,
                    price,
                )
        await stt.aclose()

    ctx.add_shutdown_callback(log_usage)

    await session.start(
        agent=Agent(
            instructions=(
                "You are a friendly voice assistant. Keep answers short and conversational; "
                "your replies are spoken aloud, so avoid lists and formatting."
            )
        ),
        room=ctx.room,
    )
    session.generate_reply(instructions="Greet the user and offer your help.")


if __name__ == "__main__":
    cli.run_app(server)
