"""A faithful local emulator of OpenAI's Realtime API transcription server, for tests and demos.

Point a client (this plugin, the OpenAI SDK, or your own) at an :class:`Emulator` instead of
``wss://api.openai.com`` and test it offline, deterministically, including the failures the real
service produces::

    from livekit.plugins.openai_rt.testing import Emulator, FaultPlan, expected_transcript

    async with Emulator(api_key="test-key") as emu:
        # emu.base_url == "http://127.0.0.1:<port>/v1"  (OpenAI-SDK style)
        # emu.ws_url   == "ws://127.0.0.1:<port>/v1/realtime?intent=transcription"
        ...  # run the client against it
        item = (await emu.wait_for(emu.committed_items))[0]
        assert item.transcript == expected_transcript(item.audio)

What it reproduces (each behaviour cites its source in ``emulator.py``): routing and auth at the
upgrade (``?model=`` on a transcription URL fails with ``invalid_model`` and close 4000; the beta
protocol is refused), session configuration with per-model rules (``turn_detection`` and ``prompt``
rejected for ``gpt-realtime-whisper``, ``delay`` values, unknown parameters), the audio buffer (the
100 ms commit minimum, a deterministic server VAD), per-model transcription output (deltas before
or after the commit, duration or token usage, logprobs, diarization segments) and session expiry.
:class:`FaultPlan` injects refused handshakes, dropped or stalled connections, close frames,
server errors, failed items and out-of-order completions.

Transcripts come from a :class:`Transcriber`: by default :class:`BlockCrcTranscriber`, whose
transcript is a pure function of the exact audio bytes (see :func:`expected_transcript`), or
:class:`ScriptTranscriber` for readable demo text.

Run it standalone with ``python -m livekit.plugins.openai_rt.testing --port 8765``.
"""

from __future__ import annotations

from .emulator import (
    MODEL_RULES,
    EmulatedItem,
    EmulatedSession,
    Emulator,
    LoggedEvent,
    ModelRules,
)
from .faults import (
    UNKNOWN_EVENT_TYPE,
    CloseWith,
    FaultPlan,
    RandomDrop,
    RefuseHandshake,
    SendError,
    Stall,
)
from .transcribers import (
    BlockCrcTranscriber,
    ScriptTranscriber,
    Transcriber,
    TranscriberItem,
    expected_transcript,
)

__all__ = [
    "MODEL_RULES",
    "UNKNOWN_EVENT_TYPE",
    "BlockCrcTranscriber",
    "CloseWith",
    "EmulatedItem",
    "EmulatedSession",
    "Emulator",
    "FaultPlan",
    "LoggedEvent",
    "ModelRules",
    "RandomDrop",
    "RefuseHandshake",
    "ScriptTranscriber",
    "SendError",
    "Stall",
    "Transcriber",
    "TranscriberItem",
    "expected_transcript",
]
