"""A faithful local emulator of OpenAI's Realtime API transcription and translation server, for
tests and demos.

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

What it reproduces: routing and auth at the upgrade (``?model=`` on a transcription URL fails
with ``invalid_model`` and close 4000; the beta protocol is refused), session configuration with
per-model rules (``turn_detection`` and ``prompt`` rejected for ``gpt-realtime-whisper``, the
singular ``language`` for ``gpt-live-transcribe``, ``delay`` values, unknown parameters), the
audio buffer (the 100 ms commit minimum, a
deterministic server VAD), per-model transcription output (deltas before or after the commit,
duration or token usage, logprobs, completions a realistic 0.3 s after the commit), session
expiry (close 1001), and, as a mode, Azure
OpenAI's URL and auth shapes (``Emulator(azure=AzureMode(...))``), as specified by
docs/protocol.md §7 A-E; and translation sessions on ``/v1/realtime/translations`` (docs/protocol.md
§7 F: the 200 ms frame model, per-frame translated text, source text and speech stamped with
``elapsed_ms``, ``session.close`` -> ``session.closed``). REST client secrets (docs/protocol.md
§7 G) are not emulated. Each behaviour cites its section
of docs/protocol.md where it is implemented, with the evidence tag defined in docs/README.md.
:class:`FaultPlan` injects refused handshakes, dropped or stalled connections, close frames,
server errors, failed items and out-of-order completions.

Transcripts come from a :class:`Transcriber`: by default :class:`BlockCrcTranscriber`, whose
transcript is a pure function of the exact audio bytes (see :func:`expected_transcript`), or
:class:`ScriptTranscriber` for readable demo text. Translations come from a :class:`Translator`:
by default :class:`FrameCrcTranslator`, a pure function of each 200 ms frame (see
:func:`expected_translation`), or :class:`ScriptTranslator` for demos.

Where things are:

* ``server.py``: :class:`Emulator`, the aiohttp server: the upgrade, reading and writing frames,
  the event log; ``connection.py``: one live websocket's output queue and timer;
  ``injection.py``: the fault plan applied to live connections.
* ``routing.py``: authentication and routing of the websocket upgrade.
* ``server_session.py``: one connection's protocol state machine, sans I/O (client events in,
  server events out); ``lifecycle.py``: what it shares with a translation session (open,
  errors, close, expiry).
* ``schema.py``: the session configuration and the validation of ``session.update``.
* ``rules.py``: per-model rules and protocol limits, as data; ``settings.py``: the server-wide
  settings a session reads.
* ``output.py``: the transcription events per model and when they go out; ``vad.py``: the
  energy VAD; ``outbox.py``: how a session hands events and timed work to the server.
* ``translation_session.py``: one translation connection's state machine, sans I/O;
  ``translation_translators.py``: what each 200 ms frame "says" once translated.
* ``records.py``: what tests inspect (sessions, items, logged events); ``faults.py``: the fault
  plan; ``transcribers.py``: what text the audio "says"; ``audio.py``: G.711, energy, base64, ids.

Run it standalone with ``python -m livekit.plugins.openai_rt.testing --port 8765``.
"""

from __future__ import annotations

from .faults import (
    UNKNOWN_EVENT_TYPE,
    CloseWith,
    FaultPlan,
    RandomDrop,
    RefuseHandshake,
    SendError,
    Stall,
)
from .records import EmulatedItem, EmulatedSession, LoggedEvent
from .routing import AzureMode
from .rules import MODEL_RULES, STRICT_LANGUAGE_RULES, ModelRules
from .server import Emulator
from .transcribers import (
    BlockCrcTranscriber,
    ScriptTranscriber,
    Transcriber,
    TranscriberItem,
    expected_transcript,
)
from .translation_session import TranslationServerSession, TranslationSettings
from .translation_translators import (
    FrameCrcTranslator,
    FrameTranslation,
    ScriptTranslator,
    Translator,
    expected_source_transcript,
    expected_translation,
)

__all__ = [
    "MODEL_RULES",
    "STRICT_LANGUAGE_RULES",
    "UNKNOWN_EVENT_TYPE",
    "AzureMode",
    "BlockCrcTranscriber",
    "CloseWith",
    "EmulatedItem",
    "EmulatedSession",
    "Emulator",
    "FaultPlan",
    "FrameCrcTranslator",
    "FrameTranslation",
    "LoggedEvent",
    "ModelRules",
    "RandomDrop",
    "RefuseHandshake",
    "ScriptTranscriber",
    "ScriptTranslator",
    "SendError",
    "Stall",
    "Transcriber",
    "TranscriberItem",
    "TranslationServerSession",
    "TranslationSettings",
    "Translator",
    "expected_source_transcript",
    "expected_transcript",
    "expected_translation",
]
