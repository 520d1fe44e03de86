"""A local emulator of OpenAI's Realtime API transcription WebSocket server.

Every behaviour cites its source in the protocol reference
(``shared/reference/openai-realtime-protocol.md`` beside this repository, "the reference" below)
by section, and carries the reference's evidence tag: [V] verified from OpenAI's SDK or docs,
[O] observed against the live API by a third party, [C] claimed by client code, [I] inferred (the
emulator's choice; it is configurable or documented here). Where the real server's behaviour is
unknown, the emulator is *at least as strict* as the real server plausibly is, so a client that
works here is not relying on leniency that may not exist.

Implemented: reference §7 A (connection and routing, except translation), B (session
configuration), C (audio buffer, with a deterministic energy VAD), D (transcription output) and E
(lifetime), plus fault injection (:mod:`.faults`). Not implemented: §7 F (translation sessions,
answered with HTTP 501) and G (REST client secrets).

The emulator deliberately keeps its own model-rules table (:data:`MODEL_RULES`) rather than
importing the plugin's: it is an independent check of the client.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import math
import random
import re
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
from aiohttp import WSMsgType, web

from .faults import (
    MALFORMED_FRAME,
    UNKNOWN_EVENT_TYPE,
    FaultPlan,
    RandomDrop,
    default_handshake_error_body,
)
from .transcribers import BlockCrcTranscriber, Transcriber, TranscriberItem

__all__ = [
    "BETA_SHAPE_MESSAGE",
    "DELAY_VALUES",
    "INCLUDE_LOGPROBS",
    "MODEL_RULES",
    "EmulatedItem",
    "EmulatedSession",
    "Emulator",
    "LoggedEvent",
    "ModelRules",
    "new_id",
]

Json = dict[str, Any]
T = TypeVar("T")

# ---------------------------------------------------------------------------------------------
# Constants (each with its source)
# ---------------------------------------------------------------------------------------------

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

MAX_APPEND_BYTES = 15 * 1024 * 1024
"""Largest decoded ``input_audio_buffer.append`` payload: 15 MiB (reference §3.2 [V] SDK)."""

MIN_COMMIT_MS = 100
"""Smallest committable buffer (reference §3.3 [O] betalgo/openai#674, speaches)."""

# Verbatim (reference §2.4 / §4.4 [O] pickle-com/glass#220, jsboige/CoursIA PR #13149).
BETA_SHAPE_MESSAGE = (
    "The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API."
)

INCLUDE_LOGPROBS = "item.input_audio_transcription.logprobs"
"""The one allowed ``session.include`` value (reference §2.2 [V] SDK)."""

DELAY_VALUES = ("minimal", "low", "medium", "high", "xhigh")
"""Allowed ``transcription.delay`` values (reference §2.2 [V] seed002, SDK)."""

# Bytes per millisecond and bytes per sample of each input format (reference §3.1: pcm16 24 kHz
# [V]; G.711 at 8 kHz, one byte per sample [I]).
_FORMATS: dict[str, tuple[int, int]] = {
    "audio/pcm": (48, 2),
    "audio/pcmu": (8, 1),
    "audio/pcma": (8, 1),
}

# Beta (flat) session fields: their presence means a beta-shaped update (reference §2.4 [V] SDK
# types/beta/realtime/transcription_session_update.py; rejection §7 A.7 [O]).
_BETA_FLAT_FIELDS = (
    "input_audio_format",
    "input_audio_transcription",
    "input_audio_noise_reduction",
    "turn_detection",
    "client_secret",
    "modalities",
)

# Field names of the GA transcription session (reference §2.2 [V] SDK
# realtime_transcription_session_create_request.py and the types it references).
_SESSION_KEYS = ("type", "audio", "include")
_AUDIO_KEYS = ("input",)
_INPUT_KEYS = ("format", "noise_reduction", "transcription", "turn_detection")
_FORMAT_KEYS = ("type", "rate")
_NOISE_KEYS = ("type", "strength")
_TRANSCRIPTION_KEYS = ("model", "language", "languages", "keywords", "prompt", "delay")
_SERVER_VAD_KEYS = (
    "type",
    "threshold",
    "prefix_padding_ms",
    "silence_duration_ms",
    "idle_timeout_ms",
    "create_response",
    "interrupt_response",
)
_SEMANTIC_VAD_KEYS = ("type", "eagerness", "create_response", "interrupt_response")

# Server VAD defaults: threshold 0.5, prefix 300 ms, silence 500 ms (reference §2.2 [V] SDK).
_SERVER_VAD_DEFAULTS: Json = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
_SEMANTIC_VAD_DEFAULTS: Json = {"type": "semantic_vad", "eagerness": "auto"}

# The energy VAD: a 10 ms frame is speech when its RMS, in int16 units, exceeds
# threshold * VAD_RMS_SCALE (so the default threshold 0.5 means RMS > 1000, about -30 dBFS).
# OpenAI's VAD is a model; this deterministic mapping is the emulator's [I] so tests can build
# audio that is unambiguously speech (a tone) or silence (zeros).
VAD_RMS_SCALE = 2000.0
VAD_FRAME_MS = 10
# semantic_vad is approximated by the energy detector with a fixed 500 ms silence [I].
_SEMANTIC_VAD_SILENCE_MS = 500

_CLIENT_EVENT_TYPES = (
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)
# Conversation-only client events (reference §4: response.* and conversation items belong to
# conversation sessions) get a dedicated error in a transcription session [I].
_CONVERSATION_EVENT_TYPES = (
    "response.create",
    "response.cancel",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "output_audio_buffer.clear",
)


# ---------------------------------------------------------------------------------------------
# Model rules
# ---------------------------------------------------------------------------------------------

DeltaStyle = Literal["single", "several", "stream"]
UsageKind = Literal["duration", "tokens"]


@dataclass(frozen=True)
class ModelRules:
    """What the emulated server accepts from, and how it answers for, one transcription model.

    Attributes:
        server_vad: a non-null ``turn_detection`` is accepted (otherwise ``invalid_value``).
        prompt: ``transcription.prompt`` is accepted.
        delay: ``transcription.delay`` is accepted.
        keywords_languages: ``keywords`` and a ``languages`` list of more than one entry are
            accepted.
        deltas: ``"single"`` (one delta with the whole text after the commit), ``"several"``
            (word deltas after the commit) or ``"stream"`` (deltas while audio is appended,
            before the commit, on the preallocated item id).
        usage: the ``usage.type`` of ``completed``.
        logprobs: logprobs are attached when ``include`` asks for them.
        reports_languages: ``completed`` carries ``languages: [{"code": ...}]``.
        diarize: ``…transcription.segment`` events precede ``completed``.
    """

    server_vad: bool
    prompt: bool
    delay: bool
    keywords_languages: bool
    deltas: DeltaStyle
    usage: UsageKind
    logprobs: bool = False
    reports_languages: bool = False
    diarize: bool = False


_GPT_4O = ModelRules(
    server_vad=True,  # reference §2.3 [V][O]
    prompt=True,  # free-text prompt (reference §2.2 [V] SDK)
    delay=False,  # "Only supported with gpt-realtime-whisper" (reference §2.2 [V] SDK)
    keywords_languages=False,  # keywords rejected on gpt-4o-* (reference §2.2 [O])
    deltas="several",  # incremental deltas after commit (reference §7 D.25 [V] guide)
    usage="tokens",  # token-priced (reference §7 D.26 [I])
    logprobs=True,  # REST: logprobs only with gpt-4o(-mini)-transcribe (reference §2.3 [V]/[I])
)

MODEL_RULES: Mapping[str, ModelRules] = {
    # No VAD, no prompt, takes delay, streams while audio arrives, billed per minute
    # (reference §0.4, §2.3: [V] seed002, SDK; usage kind [I]).
    "gpt-realtime-whisper": ModelRules(
        server_vad=False,
        prompt=False,
        delay=True,
        keywords_languages=False,
        deltas="stream",
        usage="duration",
    ),
    # turn_detection rejected [O]; prompt accepted [O]; keywords/languages [V] SDK; delay is
    # "only gpt-realtime-whisper" per the SDK [V], so rejected here (conservative [I]).
    "gpt-live-transcribe": ModelRules(
        server_vad=False,
        prompt=True,
        delay=False,
        keywords_languages=True,
        deltas="stream",
        usage="duration",
    ),
    # Built for committed turns; VAD not observed, so rejected (conservative [I]); keywords and
    # languages [V] SDK; languages on completed [V] SDK; per-minute price suggests duration [I].
    "gpt-transcribe": ModelRules(
        server_vad=False,
        prompt=True,
        delay=False,
        keywords_languages=True,
        deltas="several",
        usage="duration",
        reports_languages=True,
    ),
    "gpt-4o-transcribe": _GPT_4O,
    "gpt-4o-mini-transcribe": _GPT_4O,
    "gpt-4o-mini-transcribe-2025-12-15": _GPT_4O,
    # One delta holding the whole transcript (reference §7 D.25 [V] guide mirror); prompt is a
    # keyword list [V]; billed per minute (reference §7 D.26 [I]).
    "whisper-1": ModelRules(
        server_vad=True,
        prompt=True,
        delay=False,
        keywords_languages=False,
        deltas="single",
        usage="duration",
    ),
    # Segments with speakers (reference §7 D.29 [V] SDK); no prompt (reference §2.2 [V] REST
    # docs); VAD presumably [I]; tokens [I].
    "gpt-4o-transcribe-diarize": ModelRules(
        server_vad=True,
        prompt=False,
        delay=False,
        keywords_languages=False,
        deltas="several",
        usage="tokens",
        diarize=True,
    ),
}
"""The emulator's per-model rules (reference §2.3), keyed by ``transcription.model``."""


# ---------------------------------------------------------------------------------------------
# Public records
# ---------------------------------------------------------------------------------------------


# Random bytes map to base62 through a translation table (C speed; the slight bias of
# 256 % 62 does not matter for ids).
_ID_TABLE = bytes(ord(_BASE62[b % 62]) for b in range(256))


def new_id(prefix: str) -> str:
    """A fresh id: ``prefix`` + 21 base62 characters (reference §7 E.36 [O] examples)."""
    return prefix + secrets.token_bytes(21).translate(_ID_TABLE).decode("ascii")


def _b64decode(text: str) -> bytes:
    """Strict base64 decoding (invalid characters or padding raise ``binascii.Error``)."""
    if sys.version_info >= (3, 11):
        return binascii.a2b_base64(text, strict_mode=True)
    return base64.b64decode(text, validate=True)  # pragma: no cover - Python 3.10


@dataclass
class LoggedEvent:
    """One event in or out of the emulator, as recorded in :attr:`Emulator.events`.

    ``event`` is the event as a dict, except that an ``input_audio_buffer.append`` is stored as
    ``{"type": ..., "audio_bytes": N}`` (plus its ``event_id`` if any) instead of its base64, and
    a frame that is not a JSON object is stored as ``{"type": "<malformed>", "raw": <first 200
    characters>}`` (both directions: the fault plan can send malformed frames).
    """

    direction: Literal["in", "out"]
    session_id: str
    t: float
    event: dict[str, Any]


@dataclass
class EmulatedItem:
    """One committed item (a turn of input audio) and what the emulator answered for it.

    Attributes:
        item_id: the id sent in ``input_audio_buffer.committed``.
        previous_item_id: the previously committed item of the same session, or None.
        session_id: the session it belongs to.
        audio: exactly the committed audio bytes (empty if the emulator does not record audio).
        transcript: the final transcript once ``completed`` was sent, else None.
        status: ``"committed"``, then ``"completed"`` or ``"failed"`` (stays ``"committed"``
            when transcription is off).
        usage: the ``usage`` object of ``completed``.
        committed_by: ``"client"`` (``input_audio_buffer.commit``) or ``"server_vad"``.
        index: position among all items committed by this emulator (0-based).
        model: the transcription model at commit time, or None when transcription was off.
        audio_bytes: length of the committed audio (even when ``audio`` is not recorded).
    """

    item_id: str
    previous_item_id: str | None
    session_id: str
    audio: bytes
    transcript: str | None = None
    status: Literal["committed", "completed", "failed"] = "committed"
    usage: dict[str, Any] | None = None
    committed_by: Literal["client", "server_vad"] = "client"
    index: int = 0
    model: str | None = None
    audio_bytes: int = 0


class EmulatedSession:
    """The emulator's record of one accepted websocket connection.

    Attributes:
        id: the session id (``sess_…``).
        index: the connection index (0-based, in acceptance order; see :mod:`.faults`).
        kind: ``"transcription"``, ``"realtime"`` (a conversation session, not emulated beyond
            routing errors) or ``"rejected"`` (refused after the upgrade, e.g. a beta header).
        query: the upgrade URL's query parameters.
        headers: the upgrade request headers, with credentials replaced by ``"<redacted>"``.
        config: the effective session object, as last sent in ``session.created`` /
            ``session.updated``.
        items: the items committed in this session, in commit order.
        close_code: the websocket close code (the emulator's, the client's, or 1006 after an
            abrupt drop), None while open.
        close_reason: the close reason the emulator sent, if it closed the socket.
        closed: whether the connection has ended.
        appended_bytes: total decoded audio bytes received.
        created_at: unix time of acceptance.
        expires_at: unix time at which the session expires (``session_expired``).
    """

    def __init__(
        self,
        *,
        index: int,
        query: dict[str, str],
        headers: dict[str, str],
        max_session_seconds: float,
    ) -> None:
        """Create the record of a freshly accepted connection (done by the emulator)."""
        self.id = new_id("sess_")
        self.index = index
        self.kind: Literal["transcription", "realtime", "rejected"] = "transcription"
        self.query = query
        self.headers = headers
        self.config: dict[str, Any] = {}
        self.items: list[EmulatedItem] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = False
        self.appended_bytes = 0
        self.created_at = time.time()
        self.expires_at = int(self.created_at + max_session_seconds)
        self._buffer = bytearray()

    @property
    def buffer_bytes(self) -> int:
        """Bytes of audio currently in the input buffer (appended but not committed)."""
        return len(self._buffer)

    @property
    def transcription_model(self) -> str | None:
        """The configured ``audio.input.transcription.model``, or None."""
        transcription = self.config.get("audio", {}).get("input", {}).get("transcription")
        if isinstance(transcription, dict):
            model = transcription.get("model")
            return model if isinstance(model, str) else None
        return None

    def __repr__(self) -> str:
        return (
            f"EmulatedSession(id={self.id!r}, index={self.index}, kind={self.kind!r}, "
            f"items={len(self.items)}, closed={self.closed}, close_code={self.close_code})"
        )


# ---------------------------------------------------------------------------------------------
# Internals
# ---------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _ApiError(Exception):
    """A validation failure, to be sent as an ``error`` event."""

    code: str | None
    message: str
    param: str | None = None
    type: str = "invalid_request_error"
    # close the socket with 4000 "<type>.<code>" after sending (reference §1.7 [V]/[I])
    fatal: bool = False


@dataclass
class _CloseAction:
    code: int
    reason: str


@dataclass
class _RawFrame:
    text: str


_Outgoing = Json | _CloseAction | _RawFrame


@dataclass
class _Pending:
    """The transcription of the not-yet-committed item."""

    item: TranscriberItem
    streamed: list[str] = field(default_factory=list)  # text already sent as pre-commit deltas
    held: list[str] = field(default_factory=list)  # text recognised but not sent yet


def _ulaw_table() -> npt.NDArray[np.int16]:
    # ITU-T G.711 mu-law expansion.
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -sample, sample).astype(np.int16)


def _alaw_table() -> npt.NDArray[np.int16]:
    # ITU-T G.711 A-law expansion.
    a = np.arange(256, dtype=np.int32) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    sample = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(sign != 0, sample, -sample).astype(np.int16)


_G711_TABLES = {"audio/pcmu": _ulaw_table(), "audio/pcma": _alaw_table()}


def _frame_rms(audio: bytes, fmt: str, frame_bytes: int) -> npt.NDArray[np.float64]:
    """RMS (int16 units) of each complete frame of ``audio``."""
    n = len(audio) // frame_bytes
    if fmt == "audio/pcm":
        samples = np.frombuffer(audio, dtype="<i2", count=n * frame_bytes // 2)
    else:
        samples = _G711_TABLES[fmt][np.frombuffer(audio, dtype=np.uint8, count=n * frame_bytes)]
    x = samples.astype(np.float64).reshape(n, -1)
    return np.asarray(np.sqrt(np.mean(x * x, axis=1)), dtype=np.float64)


def _json_type(value: Any) -> str:
    """OpenAI's wording for a JSON value's type in ``invalid_type`` messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _invalid_type(path: str, expected: str, value: Any) -> _ApiError:
    # Wording of OpenAI's invalid_type errors, e.g. "Invalid type for 'x': expected a decimal, but
    # got a string instead." [I] (the REST API's style; the realtime server shares its validator).
    return _ApiError(
        "invalid_type",
        f"Invalid type for '{path}': expected {expected}, but got {_json_type(value)} instead.",
        path,
    )


def _invalid_enum(path: str, value: Any, allowed: tuple[str, ...]) -> _ApiError:
    # OpenAI's enum wording: "Invalid value: 'x'. Supported values are: 'a', 'b', and 'c'." [I]
    quoted = [f"'{a}'" for a in allowed]
    listed = quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", and " + quoted[-1]
    return _ApiError(
        "invalid_value", f"Invalid value: '{value}'. Supported values are: {listed}.", path
    )


def _check_keys(obj: Json, allowed: tuple[str, ...], path: str) -> None:
    # Unknown fields: "Unknown parameter: '<dotted.path>'." with param = the path, session stays
    # open (reference §7 B.16 [O] openai-realtime-api-beta#9).
    for key in obj:
        if key not in allowed:
            full = f"{path}.{key}" if path else key
            raise _ApiError("unknown_parameter", f"Unknown parameter: '{full}'.", full)


def _need_object(value: Any, path: str) -> Json:
    if not isinstance(value, dict):
        raise _invalid_type(path, "an object", value)
    return value


def _need_number(obj: Json, key: str, path: str, lo: float | None, hi: float | None) -> None:
    if key not in obj:
        return
    value = obj[key]
    full = f"{path}.{key}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _invalid_type(full, "a decimal", value)
    _check_range(full, value, lo, hi, "decimal")


def _need_int(obj: Json, key: str, path: str, lo: int | None) -> None:
    if key not in obj:
        return
    value = obj[key]
    full = f"{path}.{key}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid_type(full, "an integer", value)
    _check_range(full, value, lo, None, "integer")


def _check_range(path: str, value: float, lo: float | None, hi: float | None, kind: str) -> None:
    # OpenAI's range wording, e.g. "integer below minimum value" (reference §2.2 [O] a client saw
    # this for a 16 kHz rate); the code is invalid_value as for other bad values [I].
    if lo is not None and value < lo:
        raise _ApiError(
            "invalid_value",
            f"Invalid '{path}': {kind} below minimum value. Expected a value >= {lo:g}, "
            f"but got {value:g} instead.",
            path,
        )
    if hi is not None and value > hi:
        raise _ApiError(
            "invalid_value",
            f"Invalid '{path}': {kind} above maximum value. Expected a value <= {hi:g}, "
            f"but got {value:g} instead.",
            path,
        )


def _need_bool(obj: Json, key: str, path: str) -> None:
    if key in obj and not isinstance(obj[key], bool):
        raise _invalid_type(f"{path}.{key}", "a boolean", obj[key])


def _need_str(obj: Json, key: str, path: str, *, nullable: bool = True) -> None:
    if key not in obj:
        return
    value = obj[key]
    if value is None and nullable:
        return
    if not isinstance(value, str):
        raise _invalid_type(f"{path}.{key}", "a string", value)


def _need_str_list(obj: Json, key: str, path: str) -> None:
    if key not in obj:
        return
    value = obj[key]
    full = f"{path}.{key}"
    # `languages: null` is rejected (reference §7 B.14 [C] LK-stt), so is any non-array.
    if not isinstance(value, list):
        raise _invalid_type(full, "an array", value)
    for i, entry in enumerate(value):
        if not isinstance(entry, str):
            raise _invalid_type(f"{full}[{i}]", "a string", entry)


def _format_minutes(seconds: float) -> str:
    """Minutes for the session_expired message: "60", or "0.0333" for short test sessions."""
    minutes = seconds / 60.0
    if abs(minutes - round(minutes)) < 1e-9:
        return str(round(minutes))
    return f"{minutes:.3g}"


def _mask_key(token: str) -> str:
    # OpenAI shows a masked key in invalid_api_key messages ("sk-abc***wxyz") [I].
    if len(token) <= 8:
        return "*" * len(token)
    return f"{token[:3]}{'*' * min(len(token) - 7, 20)}{token[-4:]}"


def _redact_headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in request.headers.items():
        lower = key.lower()
        if lower in ("authorization", "api-key"):
            headers[key] = "<redacted>"
        elif lower == "sec-websocket-protocol":
            headers[key] = ", ".join(
                "openai-insecure-api-key.<redacted>"
                if p.strip().startswith("openai-insecure-api-key.")
                else p.strip()
                for p in value.split(",")
            )
        else:
            headers[key] = value
    return headers


def _request_token(request: web.Request) -> str | None:
    """The API key of an upgrade request, from any of the accepted places."""
    # Authorization: Bearer <key> (reference §1.3 [V] SDK _client_auth.py).
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    # Browsers: subprotocol "openai-insecure-api-key.<key>" (reference §1.4 [O] GA guide example).
    for header in request.headers.getall("Sec-WebSocket-Protocol", []):
        for proto in header.split(","):
            proto = proto.strip()
            if proto.startswith("openai-insecure-api-key.") and len(proto) > 24:
                return proto[len("openai-insecure-api-key.") :]
    # Azure's `api-key` header (reference §1.1 [V] SDK lib/azure.py), so Azure code paths can be
    # pointed at the emulator.
    api_key = request.headers.get("api-key", "").strip()
    return api_key or None


def _logprobs(text: str) -> list[Json]:
    # One deterministic entry per delta: {token, logprob, bytes} (reference §7 D.27 [V] SDK
    # log_prob_properties.py; values [I]).
    if not text:
        return []
    return [
        {
            "token": text,
            "logprob": -round(0.001 * len(text), 6),
            "bytes": list(text.encode("utf-8")),
        }
    ]


def _b64_len(audio: Any) -> int:
    """Decoded length of a base64 string, without decoding it (for cheap logging)."""
    if not isinstance(audio, str):
        return 0
    return max(0, len(audio) * 3 // 4 - (2 if audio.endswith("==") else audio.endswith("=")))


_WORD_RE = re.compile(r"\s*\S+\s*|\s+")


class _Conn:
    """Runtime state of one accepted websocket (the public part lives in EmulatedSession)."""

    def __init__(
        self,
        session: EmulatedSession,
        request: web.Request,
        ws: web.WebSocketResponse,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.session = session
        self.request = request
        self.ws = ws
        self.t0 = loop.time()
        self.out: asyncio.Queue[_Outgoing] = asyncio.Queue()
        self.writer: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.timers: list[asyncio.TimerHandle] = []
        self.closing = False  # a close was decided: ignore further client events
        self.finished = False
        self.dropped = False
        self.read_stalled = False
        self.answer_stalled = False
        self.close_in_progress = False
        self.url_model: str | None = None  # ?model= on a transcription URL (the seed001 trap)
        self.next_item_id: str | None = None  # preallocated id of the next item (reference §4.3)
        self.last_item_id: str | None = None
        self.pending: _Pending | None = None
        # VAD state (reference §7 C.22): stream offsets are in bytes since session start.
        self.vad_carry = b""
        self.vad_speaking = False
        self.vad_silence_ms = 0
        # completion chaining: each item's completion waits for the previous one [I]
        self.last_completion: asyncio.Task[None] | None = None
        # fault bookkeeping
        self.fired: list[object] = []
        self.random_drop_rule: RandomDrop | None = None
        self.random_drop_at = 0
        self.held_completion: list[Json] | None = None
        self.held_timer: asyncio.TimerHandle | None = None
        self.segment_counter = 0

    def take_item_id(self) -> str:
        """The preallocated id of the next item, allocating it on first use."""
        if self.next_item_id is None:
            self.next_item_id = new_id("item_")
        return self.next_item_id

    def was_fired(self, rule: object) -> bool:
        return any(r is rule for r in self.fired)


# ---------------------------------------------------------------------------------------------
# The emulator
# ---------------------------------------------------------------------------------------------


class Emulator:
    """A local OpenAI Realtime transcription server, for tests and demos.

    Use it as an async context manager (or call :meth:`start` / :meth:`aclose`)::

        async with Emulator(api_key="test-key") as emu:
            url = emu.ws_url      # ws://127.0.0.1:<port>/v1/realtime?intent=transcription
            ...
            await emu.wait_for(lambda: emu.committed_items())

    Args:
        host: interface to listen on.
        port: TCP port, 0 for an ephemeral one.
        api_key: the only accepted key; None accepts any non-empty key. A wrong key gets HTTP 401
            ``invalid_api_key`` at the handshake, a missing one HTTP 401 too.
        transcriber: turns item audio into text (default :class:`BlockCrcTranscriber`).
        max_session_seconds: sessions get ``session_expired`` and are closed after this long.
        gateway_mode: accept ``?model=`` as the transcription model, like LiteLLM or speaches,
            instead of the real server's ``invalid_model`` (reference §7 A.9).
        record_events: keep every event in :attr:`events` (turn off for benchmarks).
        faults: the fault plan (default: an empty :class:`FaultPlan`, which tests may fill later).
        completed_delay: seconds between a commit and its ``completed``; post-commit deltas are
            spread over that time.
        emit_item_added: send ``conversation.item.added`` after ``committed`` and
            ``conversation.item.done`` after ``completed`` (reference §4.1.6 [I], default on).
        close_on_turn_detection_error: close (4000) after the ``turn_detection`` ``invalid_value``
            error instead of keeping the session open (reference §7 B.11 [I]: one client saw the
            session aborted).
        record_audio: keep each item's audio in :attr:`EmulatedItem.audio` (default: the value of
            ``record_events``, so benchmarks do not hold all audio in memory).
        model_rules: replace :data:`MODEL_RULES` (e.g. to add a model or try a different rule).

    Attributes:
        sessions: one :class:`EmulatedSession` per accepted websocket, in connection order (the
            index in this list is the connection index that fault rules refer to).
        events: every event in and out, all sessions, in order (:class:`LoggedEvent`); ``out``
            events are logged when actually written to the socket.
        handshakes: upgrade attempts seen, including refused ones.
        faults: the :class:`FaultPlan` in force, read live: tests may change it between phases.
        port: the bound port once started.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        transcriber: Transcriber | None = None,
        max_session_seconds: float = 3600.0,
        gateway_mode: bool = False,
        record_events: bool = True,
        faults: FaultPlan | None = None,
        completed_delay: float = 0.0,
        emit_item_added: bool = True,
        close_on_turn_detection_error: bool = False,
        record_audio: bool | None = None,
        model_rules: Mapping[str, ModelRules] | None = None,
    ) -> None:
        """Configure the emulator; nothing listens until :meth:`start`."""
        self.host = host
        self.port = port
        self.api_key = api_key
        self.transcriber: Transcriber = transcriber or BlockCrcTranscriber()
        self.max_session_seconds = max_session_seconds
        self.gateway_mode = gateway_mode
        self.record_events = record_events
        self.faults: FaultPlan = faults if faults is not None else FaultPlan()
        self.completed_delay = completed_delay
        self.emit_item_added = emit_item_added
        self.close_on_turn_detection_error = close_on_turn_detection_error
        self.record_audio = record_events if record_audio is None else record_audio
        self.model_rules: Mapping[str, ModelRules] = (
            dict(model_rules) if model_rules is not None else MODEL_RULES
        )
        self.sessions: list[EmulatedSession] = []
        self.events: list[LoggedEvent] = []
        self.handshakes = 0
        self._committed: list[EmulatedItem] = []
        self._live: dict[str, _Conn] = {}
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (binds the port; :attr:`port` is then the real port)."""
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        self._loop = asyncio.get_running_loop()
        app = web.Application()
        app.router.add_get("/v1/realtime", self._handle_realtime)
        app.router.add_get("/v1/realtime/translations", self._handle_translations)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self._ticker = asyncio.create_task(self._tick(), name="openai-rt-emulator-faults")

    async def aclose(self) -> None:
        """Close every connection (1001) and stop listening."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        conns = list(self._live.values())
        await asyncio.gather(*(self._shutdown_conn(c) for c in conns), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def base_url(self) -> str:
        """OpenAI-SDK style base URL, ``http://<host>:<port>/v1``."""
        if self._runner is None:
            raise RuntimeError("emulator not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        """The transcription websocket URL, ``ws://<host>:<port>/v1/realtime?intent=transcription``."""
        if self._runner is None:
            raise RuntimeError("emulator not started")
        return f"ws://{self.host}:{self.port}/v1/realtime?intent=transcription"

    def committed_items(self) -> list[EmulatedItem]:
        """Every item committed by this emulator, over all sessions, in commit order."""
        return list(self._committed)

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0) -> T:
        """Poll ``predicate`` until it returns something truthy, and return that.

        Raises:
            TimeoutError: ``predicate`` stayed falsy for ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.005)

    # -- HTTP ----------------------------------------------------------------------------------

    async def _handle_translations(self, request: web.Request) -> web.StreamResponse:
        # Translation sessions (reference §7 F) are not emulated [I].
        self.handshakes += 1
        return web.json_response(
            {
                "error": {
                    "message": "Translation sessions are not implemented by this emulator.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "not_implemented",
                }
            },
            status=501,
        )

    async def _handle_realtime(self, request: web.Request) -> web.StreamResponse:
        self.handshakes += 1
        index = len(self.sessions)

        refusal = self.faults.refuse_handshake
        if (
            refusal is not None
            and refusal.used < refusal.times
            and self.faults.applies_to(refusal.connections, index)
        ):
            refusal.used += 1
            body = refusal.body or default_handshake_error_body(refusal.status)
            return web.json_response(body, status=refusal.status, headers=refusal.headers)

        # Authentication at the handshake: missing or wrong key -> HTTP 401 (reference §7 A.1
        # [I]); bodies are OpenAI's REST 401 bodies [I].
        token = _request_token(request)
        if token is None:
            return web.json_response(
                {
                    "error": {
                        "message": "You didn't provide an API key. You need to provide your API "
                        "key in an Authorization header using Bearer auth (i.e. Authorization: "
                        "Bearer YOUR_KEY). You can obtain an API key from "
                        "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=401,
            )
        if self.api_key is not None and token != self.api_key:
            return web.json_response(
                {
                    "error": {
                        "message": f"Incorrect API key provided: {_mask_key(token)}. You can "
                        "find your API key at https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
                status=401,
            )

        # Echo the `realtime` subprotocol when offered (reference §1.4 / §7 A.1 [I]). Pings and
        # close frames are answered by hand (autoping/autoclose off) so a stalled connection can
        # leave them unanswered (faults.Stall).
        ws = web.WebSocketResponse(
            autoping=False,
            autoclose=False,
            protocols=("realtime",),
            max_msg_size=24 * 1024 * 1024,  # room for a 15 MiB append in base64
            timeout=2.0,
        )
        if not ws.can_prepare(request).ok:
            return web.json_response(
                {
                    "error": {
                        "message": "This endpoint only accepts WebSocket upgrades.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=426,
            )
        await ws.prepare(request)

        session = EmulatedSession(
            index=index,
            query=dict(request.query.items()),
            headers=_redact_headers(request),
            max_session_seconds=self.max_session_seconds,
        )
        self.sessions.append(session)
        loop = asyncio.get_running_loop()
        conn = _Conn(session, request, ws, loop)
        self._live[session.id] = conn
        conn.writer = asyncio.create_task(self._writer(conn))
        try:
            self._open(conn)
            # Session expiry (reference §7 E.33 [O]).
            conn.timers.append(loop.call_later(self.max_session_seconds, self._expire, conn))
            self._check_faults(conn)
            await self._reader(conn)
        finally:
            await self._finish(conn)
        return ws

    # -- connection open / routing -----------------------------------------------------------

    def _open(self, conn: _Conn) -> None:
        """Route the new connection from its URL and headers; send session.created."""
        request = conn.request
        session = conn.session
        query = request.query
        intent = query.get("intent")
        model = query.get("model")

        # `OpenAI-Beta: realtime=v1` -> beta_api_shape_disabled, close 4000 (reference §7 A.7
        # [O]). Whether session.created precedes it is unknown; the emulator sends none [I].
        if "realtime" in request.headers.get("OpenAI-Beta", "").lower():
            session.kind = "rejected"
            self._fatal(
                conn,
                _ApiError("beta_api_shape_disabled", BETA_SHAPE_MESSAGE, fatal=True),
                None,
            )
            return

        if intent is not None and intent != "transcription":
            # Only intent=transcription exists (reference §1.2 [V]); the wording is OpenAI's enum
            # style [I].
            session.kind = "rejected"
            err = _invalid_enum("intent", intent, ("transcription",))
            err.fatal = True
            self._fatal(conn, err, None)
            return

        initial_model: str | None = None
        if intent == "transcription":
            if model is not None:
                if self.gateway_mode:
                    # Gateways take ?model= as the transcription model (reference §7 A.9 [C][V]);
                    # one the emulator does not know is refused like seed001's error [I].
                    if model not in self.model_rules:
                        session.kind = "rejected"
                        self._fatal(
                            conn,
                            _ApiError(
                                "invalid_model",
                                f'Model "{model}" is not supported in transcription mode.',
                                fatal=True,
                            ),
                            None,
                        )
                        return
                    initial_model = model
                else:
                    # Accepted now; the first transcription session.update fails (reference §7
                    # A.3 [V] seed001).
                    conn.url_model = model
        elif model is not None:
            if model in self.model_rules:
                if self.gateway_mode:
                    initial_model = model
                else:
                    # ?model=<transcription model> without intent (reference §7 A.5 [O]
                    # community 1366640; code and close [I]). No session is created [I].
                    session.kind = "rejected"
                    self._fatal(
                        conn,
                        _ApiError(
                            "invalid_model",
                            f'Model "{model}" is not supported in realtime mode.',
                            fatal=True,
                        ),
                        None,
                    )
                    return
            else:
                # A conversation session (reference §7 A.4 [V] guide); only its routing errors
                # are emulated.
                session.kind = "realtime"
                session.config = {
                    "id": session.id,
                    "object": "realtime.session",
                    "type": "realtime",
                    "model": model,
                    "expires_at": session.expires_at,
                    "output_modalities": ["audio"],
                }
                self._send(conn, {"type": "session.created", "session": session.config})
                return
        else:
            # Neither intent nor model: unknown upstream (reference §1.2 [I]); the emulator
            # refuses, which catches clients that forgot `intent=transcription`.
            session.kind = "rejected"
            self._fatal(
                conn,
                _ApiError(
                    "missing_required_parameter",
                    "Missing required parameter: 'model'. Use ?intent=transcription for "
                    "transcription sessions.",
                    "model",
                    fatal=True,
                ),
                None,
            )
            return

        # Transcription session: session.created immediately, with the defaults of reference
        # §7 B.17 [I] (server VAD on by default [V] guide) and expires_at = now + max duration.
        transcription: Json | None = {"model": initial_model} if initial_model else None
        session.config = {
            "id": session.id,
            "object": "realtime.transcription_session",
            "type": "transcription",
            "expires_at": session.expires_at,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "noise_reduction": None,
                    "transcription": transcription,
                    "turn_detection": dict(_SERVER_VAD_DEFAULTS),
                }
            },
            "include": None,
        }
        self._send(conn, {"type": "session.created", "session": session.config})

    # -- reader / writer ---------------------------------------------------------------------

    async def _reader(self, conn: _Conn) -> None:
        ws = conn.ws
        while True:
            if conn.read_stalled:
                await self._wait_transport_gone(conn)
                return
            msg = await ws.receive()
            if conn.read_stalled:
                # Stalled while waiting: the frame counts as never read.
                continue
            if msg.type == WSMsgType.TEXT:
                if not conn.closing:
                    self._on_text(conn, msg.data)
                    self._check_faults(conn)
            elif msg.type == WSMsgType.BINARY:
                if not conn.closing:
                    self._log_in(conn, {"type": "<malformed>", "raw": repr(msg.data[:200])})
                    # Binary frames are not part of the protocol (JSON text events only,
                    # reference §3.2 [V]); wording [I].
                    self._error(conn, _ApiError("invalid_json", "Binary frames are not supported."))
            elif msg.type == WSMsgType.PING:
                # Answer heartbeats unless the connection is stalled (faults.Stall).
                if not conn.answer_stalled:
                    try:
                        await ws.pong(msg.data)
                    except ConnectionError:
                        return
            elif msg.type == WSMsgType.PONG:
                continue
            elif msg.type == WSMsgType.CLOSE:
                # The client closes: answer its close frame unless sending is stalled.
                if conn.answer_stalled:
                    await self._wait_transport_gone(conn)
                    return
                if conn.session.close_code is None:
                    conn.session.close_code = int(msg.data)
                try:
                    await ws.close(code=int(msg.data) if msg.data else 1000)
                except ConnectionError:
                    pass
                return
            else:  # CLOSING (our own close in progress), CLOSED, ERROR
                return

    async def _wait_transport_gone(self, conn: _Conn) -> None:
        # A read-stalled connection ends when the client drops TCP or the emulator closes.
        while not conn.finished:
            transport = conn.request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(0.02)

    async def _writer(self, conn: _Conn) -> None:
        ws = conn.ws
        session = conn.session
        never = asyncio.Event()
        try:
            while True:
                item = await conn.out.get()
                if conn.answer_stalled:
                    await never.wait()  # half-open: nothing is ever sent again
                if isinstance(item, _CloseAction):
                    conn.close_in_progress = True
                    session.close_code = item.code
                    session.close_reason = item.reason
                    await ws.close(code=item.code, message=item.reason.encode())
                    return
                if isinstance(item, _RawFrame):
                    await ws.send_str(item.text)
                    self._log_out(conn, {"type": "<malformed>", "raw": item.text[:200]})
                    continue
                await ws.send_str(json.dumps(item, separators=(",", ":")))
                self._log_out(conn, item)
        except (ConnectionError, RuntimeError):
            # The client went away mid-send; the reader sees the end of the connection.
            return

    async def _finish(self, conn: _Conn) -> None:
        """Tear down a connection whose reader has ended."""
        session = conn.session
        if conn.close_in_progress and conn.writer is not None and not conn.writer.done():
            await asyncio.wait({conn.writer}, timeout=3.0)
        conn.finished = True
        for timer in conn.timers:
            timer.cancel()
        if conn.held_timer is not None:
            conn.held_timer.cancel()
        tasks = [*conn.tasks, *([conn.writer] if conn.writer is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._discard_pending(conn)
        if conn.dropped or conn.read_stalled:
            session.close_code = session.close_code or 1006  # abnormal closure, no close frame
        elif session.close_code is None:
            session.close_code = conn.ws.close_code
        session.closed = True
        self._live.pop(session.id, None)

    async def _shutdown_conn(self, conn: _Conn) -> None:
        if conn.read_stalled or conn.answer_stalled or conn.dropped:
            transport = conn.request.transport
            if transport is not None:
                transport.abort()
            return
        if conn.writer is not None:
            conn.writer.cancel()
        conn.closing = True
        try:
            await asyncio.wait_for(
                conn.ws.close(code=1001, message=b"emulator shutting down"), timeout=1.0
            )
        except (asyncio.TimeoutError, ConnectionError, RuntimeError):
            transport = conn.request.transport
            if transport is not None:
                transport.abort()

    # -- sending helpers ---------------------------------------------------------------------

    def _log_in(self, conn: _Conn, event: Json) -> None:
        if self.record_events:
            self.events.append(LoggedEvent("in", conn.session.id, time.monotonic(), event))

    def _log_out(self, conn: _Conn, event: Json) -> None:
        if self.record_events:
            self.events.append(LoggedEvent("out", conn.session.id, time.monotonic(), event))

    def _send(self, conn: _Conn, event: Json) -> None:
        """Queue a server event, stamping a fresh ``event_id`` (reference §7 E.36)."""
        if conn.finished:
            return
        out: Json = {"type": event["type"], "event_id": new_id("event_")}
        out.update(event)
        conn.out.put_nowait(out)

    def _error(self, conn: _Conn, err: _ApiError, client_event_id: str | None = None) -> None:
        # error.event_id carries the client's event_id (reference §4.1.9 [V] SDK realtime_error).
        self._send(
            conn,
            {
                "type": "error",
                "error": {
                    "type": err.type,
                    "code": err.code,
                    "message": err.message,
                    "param": err.param,
                    "event_id": client_event_id,
                },
            },
        )

    def _close(self, conn: _Conn, code: int, reason: str) -> None:
        if conn.closing:
            return
        conn.closing = True
        conn.out.put_nowait(_CloseAction(code, reason))

    def _fatal(self, conn: _Conn, err: _ApiError, client_event_id: str | None) -> None:
        """Send the error, then close 4000 "<type>.<code>" (reference §1.7 [V] seed001 / [I])."""
        self._error(conn, err, client_event_id)
        self._close(conn, 4000, f"{err.type}.{err.code}")

    def _expire(self, conn: _Conn) -> None:
        # session_expired with the configured duration, then close 1000 (reference §7 E.33: shape
        # [O] community 975036, 60-minute wording [O]; close code and reason [I]).
        if conn.closing or conn.finished:
            return
        minutes = _format_minutes(self.max_session_seconds)
        self._error(
            conn,
            _ApiError(
                "session_expired", f"Your session hit the maximum duration of {minutes} minutes."
            ),
        )
        self._close(conn, 1000, "invalid_request_error.session_expired")

    # -- client events -----------------------------------------------------------------------

    def _on_text(self, conn: _Conn, text: str) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._log_in(conn, {"type": "<malformed>", "raw": text[:200]})
            # Wording [I]; the session stays open.
            self._error(
                conn,
                _ApiError(
                    "invalid_json",
                    "The client event could not be parsed as a JSON object.",
                ),
            )
            return
        etype = event.get("type")
        if etype == "input_audio_buffer.append":
            audio = event.get("audio")
            logged: Json = {"type": etype, "audio_bytes": _b64_len(audio)}
            if "event_id" in event:
                logged["event_id"] = event["event_id"]
            self._log_in(conn, logged)
        else:
            self._log_in(conn, event)

        raw_event_id = event.get("event_id")
        event_id = raw_event_id if isinstance(raw_event_id, str) else None
        try:
            if raw_event_id is not None and not isinstance(raw_event_id, str):
                raise _invalid_type("event_id", "a string", raw_event_id)
            if not isinstance(etype, str):
                if etype is None:
                    raise _ApiError(
                        "missing_required_parameter", "Missing required parameter: 'type'.", "type"
                    )
                raise _invalid_type("type", "a string", etype)
            if etype == "transcription_session.update":
                # The beta event (reference §7 A.7 [O]).
                raise _ApiError("beta_api_shape_disabled", BETA_SHAPE_MESSAGE, fatal=True)
            if conn.session.kind == "realtime":
                self._on_realtime_event(conn, etype, event)
            elif etype == "session.update":
                self._on_session_update(conn, event)
            elif etype == "input_audio_buffer.append":
                self._on_append(conn, event)
            elif etype == "input_audio_buffer.commit":
                _check_keys(event, ("type", "event_id"), "")
                self._on_commit(conn, event_id)
            elif etype == "input_audio_buffer.clear":
                _check_keys(event, ("type", "event_id"), "")
                self._on_clear(conn)
            elif etype in _CONVERSATION_EVENT_TYPES:
                # No response.* in a transcription session (reference §7 D.32 [I]).
                raise _ApiError(
                    "invalid_value",
                    f"Invalid value: '{etype}'. This event is not supported in transcription "
                    "sessions.",
                    "type",
                )
            else:
                raise _invalid_enum("type", etype, _CLIENT_EVENT_TYPES)
        except _ApiError as err:
            if err.fatal:
                self._fatal(conn, err, event_id)
            else:
                self._error(conn, err, event_id)

    def _on_realtime_event(self, conn: _Conn, etype: str, event: Json) -> None:
        if etype == "session.update":
            sess = event.get("session")
            if isinstance(sess, dict) and sess.get("type") == "transcription":
                # Reference §7 A.4 [O] justspeaktoit PR #427, Microsoft Q&A 12820829.
                raise _ApiError(
                    "invalid_parameter",
                    "Passing a transcription session update event to a realtime session is not "
                    "allowed.",
                    "session.type",
                )
        if etype == "input_audio_buffer.append":
            audio = event.get("audio")
            conn.session.appended_bytes += _b64_len(audio)
            return
        raise _ApiError(
            "not_implemented",
            "The emulator implements transcription sessions only; conversation sessions are not "
            "emulated.",
        )

    # -- session.update ----------------------------------------------------------------------

    def _on_session_update(self, conn: _Conn, event: Json) -> None:
        _check_keys(event, ("type", "event_id", "session"), "")
        if "session" not in event:
            raise _ApiError(
                "missing_required_parameter", "Missing required parameter: 'session'.", "session"
            )
        sess = _need_object(event["session"], "session")

        # Beta flat fields (reference §7 A.7 [O]).
        if any(key in sess for key in _BETA_FLAT_FIELDS):
            raise _ApiError("beta_api_shape_disabled", BETA_SHAPE_MESSAGE, fatal=True)

        stype = sess.get("type")
        if stype is None:
            # `type` is required (reference §2.2 [V] SDK); wording [I].
            raise _ApiError(
                "missing_required_parameter",
                "Missing required parameter: 'session.type'.",
                "session.type",
            )
        if stype == "realtime":
            # Reference §7 A.6 [O]; code [I].
            raise _ApiError(
                "invalid_parameter",
                "Passing a realtime session update to a transcription session is not allowed.",
                "session.type",
            )
        if stype != "transcription":
            raise _invalid_enum("session.type", stype, ("realtime", "transcription"))

        if conn.url_model is not None:
            # seed001 (reference §7 A.3 [V]): ?model= on a transcription URL fails the first
            # transcription update, naming the session.update model [I] (else the URL's).
            named = conn.url_model
            audio = sess.get("audio")
            if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
                tr = audio["input"].get("transcription")
                if isinstance(tr, dict) and isinstance(tr.get("model"), str):
                    named = tr["model"]
            raise _ApiError(
                "invalid_model",
                f'Model "{named}" is not supported in transcription mode.',
                fatal=True,
            )

        self._validate_shape(sess)
        new_config, td_explicit = self._merge(conn.session.config, sess)
        try:
            self._validate_rules(new_config, sess, td_explicit)
        except _ApiError as err:
            if err.param == "session.audio.input.turn_detection" and (
                self.close_on_turn_detection_error
            ):
                err.fatal = True
            raise

        old_tr = conn.session.config["audio"]["input"]["transcription"]
        conn.session.config = new_config
        inp = new_config["audio"]["input"]
        if inp["transcription"] is None and old_tr is not None:
            self._discard_pending(conn)
        if inp["turn_detection"] is None:
            conn.vad_speaking = False
            conn.vad_silence_ms = 0
        # session.updated carries the full effective session, without the client's event_id
        # (reference §7 B.10 [V] SDK session_update_event.py).
        self._send(conn, {"type": "session.updated", "session": new_config})

    def _validate_shape(self, sess: Json) -> None:
        """Field names and JSON types of a transcription session update (reference §2.2 [V])."""
        _check_keys(sess, _SESSION_KEYS, "session")
        if "include" in sess and sess["include"] is not None:
            include = sess["include"]
            if not isinstance(include, list):
                raise _invalid_type("session.include", "an array", include)
            for i, entry in enumerate(include):
                if entry != INCLUDE_LOGPROBS:
                    raise _invalid_enum(f"session.include[{i}]", entry, (INCLUDE_LOGPROBS,))
        if "audio" not in sess or sess["audio"] is None:
            return
        audio = _need_object(sess["audio"], "session.audio")
        _check_keys(audio, _AUDIO_KEYS, "session.audio")
        if "input" not in audio or audio["input"] is None:
            return
        path = "session.audio.input"
        inp = _need_object(audio["input"], path)
        _check_keys(inp, _INPUT_KEYS, path)

        if inp.get("format") is not None:
            fpath = f"{path}.format"
            fmt = _need_object(inp["format"], fpath)
            _check_keys(fmt, _FORMAT_KEYS, fpath)
            ftype = fmt.get("type", "audio/pcm")
            if ftype not in _FORMATS:
                raise _invalid_enum(f"{fpath}.type", ftype, tuple(_FORMATS))
            if ftype != "audio/pcm" and "rate" in fmt:
                # G.711 formats have no rate field (reference §7 B.15 [V] SDK) [I].
                raise _ApiError(
                    "unknown_parameter", f"Unknown parameter: '{fpath}.rate'.", f"{fpath}.rate"
                )
            if "rate" in fmt:
                # Only 24 kHz (reference §7 B.15 [V] SDK; [O] "integer below minimum value").
                _need_int(fmt, "rate", fpath, None)
                _check_range(f"{fpath}.rate", fmt["rate"], 24000, 24000, "integer")

        if inp.get("noise_reduction") is not None:
            npath = f"{path}.noise_reduction"
            nr = _need_object(inp["noise_reduction"], npath)
            _check_keys(nr, _NOISE_KEYS, npath)
            if "type" in nr and nr["type"] not in ("near_field", "far_field"):
                raise _invalid_enum(f"{npath}.type", nr["type"], ("near_field", "far_field"))
            _need_number(nr, "strength", npath, 0.0, 1.0)

        if inp.get("transcription") is not None:
            tpath = f"{path}.transcription"
            tr = _need_object(inp["transcription"], tpath)
            _check_keys(tr, _TRANSCRIPTION_KEYS, tpath)
            for key in ("model", "language", "prompt", "delay"):
                _need_str(tr, key, tpath)
            for key in ("languages", "keywords"):
                _need_str_list(tr, key, tpath)
            if tr.get("languages") == []:
                # `languages: []` is rejected (reference §7 B.14 [C] LK-stt); OpenAI's empty
                # array wording and code [I].
                raise _ApiError(
                    "empty_array",
                    f"Invalid '{tpath}.languages': empty array. Expected an array with minimum "
                    "length 1, but got an empty array instead.",
                    f"{tpath}.languages",
                )
            if tr.get("delay") is not None and tr["delay"] not in DELAY_VALUES:
                # Reference §7 B.13 [V] SDK.
                raise _invalid_enum(f"{tpath}.delay", tr["delay"], DELAY_VALUES)
            model = tr.get("model")
            if model is not None and model not in self.model_rules:
                # Unknown model (reference §7 B [I]): invalid_value on the model param.
                raise _invalid_enum(f"{tpath}.model", model, tuple(self.model_rules))

        if inp.get("turn_detection") is not None:
            dpath = f"{path}.turn_detection"
            td = _need_object(inp["turn_detection"], dpath)
            if "type" not in td:
                raise _ApiError(
                    "missing_required_parameter",
                    f"Missing required parameter: '{dpath}.type'.",
                    f"{dpath}.type",
                )
            if td["type"] == "server_vad":
                _check_keys(td, _SERVER_VAD_KEYS, dpath)
                _need_number(td, "threshold", dpath, 0.0, 1.0)
                for key in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
                    _need_int(td, key, dpath, 0)
            elif td["type"] == "semantic_vad":
                _check_keys(td, _SEMANTIC_VAD_KEYS, dpath)
                if "eagerness" in td and td["eagerness"] not in ("low", "medium", "high", "auto"):
                    raise _invalid_enum(
                        f"{dpath}.eagerness", td["eagerness"], ("low", "medium", "high", "auto")
                    )
            else:
                raise _invalid_enum(f"{dpath}.type", td["type"], ("server_vad", "semantic_vad"))
            for key in ("create_response", "interrupt_response"):
                _need_bool(td, key, dpath)

    def _merge(self, current: Json, sess: Json) -> tuple[Json, bool]:
        """Apply an update to the effective config: only the fields present change.

        ``null`` clears ``turn_detection``, ``noise_reduction`` and ``transcription`` (reference
        §7 B.10 [V] SDK). Inside ``transcription`` and ``noise_reduction`` the fields merge too (a
        language can be set but not cleared, reference §2.2 [C] LK-stt; an omitted ``strength``
        keeps the current one, [V] SDK). Returns the new config and whether the update carried
        ``turn_detection`` explicitly.
        """
        config = copy.deepcopy(current)
        if "include" in sess:
            config["include"] = list(sess["include"]) if sess["include"] is not None else None
        audio = sess.get("audio")
        inp = audio.get("input") if isinstance(audio, dict) else None
        if not isinstance(inp, dict):
            return config, False
        cur = config["audio"]["input"]

        if "format" in inp and inp["format"] is not None:
            ftype = inp["format"].get("type", "audio/pcm")
            cur["format"] = (
                {"type": ftype, "rate": 24000} if ftype == "audio/pcm" else {"type": ftype}
            )

        if "noise_reduction" in inp:
            nr = inp["noise_reduction"]
            if nr is None:
                cur["noise_reduction"] = None
            else:
                # strength defaults to 1 when first enabled (reference §2.2 [V] SDK); type
                # defaults to near_field [I].
                base = cur["noise_reduction"] or {"type": "near_field", "strength": 1.0}
                merged = dict(base)
                merged.update({k: v for k, v in nr.items() if v is not None})
                cur["noise_reduction"] = merged

        if "transcription" in inp:
            tr = inp["transcription"]
            if tr is None:
                cur["transcription"] = None
            else:
                merged = dict(cur["transcription"] or {})
                # A null sub-field leaves the current value [I] (LK-stt: a language can never be
                # cleared); languages/keywords nulls were rejected by the shape check.
                merged.update({k: v for k, v in tr.items() if v is not None})
                cur["transcription"] = merged

        td_explicit = "turn_detection" in inp
        if td_explicit:
            td = inp["turn_detection"]
            if td is None:
                cur["turn_detection"] = None
            else:
                current_td = cur["turn_detection"]
                if current_td is not None and current_td.get("type") == td["type"]:
                    merged = dict(current_td)
                else:
                    merged = dict(
                        _SERVER_VAD_DEFAULTS
                        if td["type"] == "server_vad"
                        else _SEMANTIC_VAD_DEFAULTS
                    )
                merged.update({k: v for k, v in td.items() if v is not None})
                cur["turn_detection"] = merged
        return config, td_explicit

    def _validate_rules(self, config: Json, sess: Json, td_explicit: bool) -> None:
        """Per-model rules on the merged config (reference §7 B.11-B.14)."""
        inp = config["audio"]["input"]
        tr = inp["transcription"]
        if tr is None:
            return
        tpath = "session.audio.input.transcription"
        model = tr.get("model")
        if model is None:
            # The model is required once transcription is on [I] (no server default is known).
            raise _ApiError(
                "missing_required_parameter",
                f"Missing required parameter: '{tpath}.model'.",
                f"{tpath}.model",
            )
        rules = self.model_rules.get(model)
        if rules is None:
            raise _invalid_enum(f"{tpath}.model", model, tuple(self.model_rules))
        if not rules.server_vad and inp["turn_detection"] is not None:
            if td_explicit:
                # Reference §7 B.11: verbatim message and param [O] (several repos,
                # livekit/agents#5779).
                raise _ApiError(
                    "invalid_value",
                    "Turn detection is not supported for this transcription model.",
                    "session.audio.input.turn_detection",
                )
            # Inherited default VAD: the server turns it off, since clients that omit
            # turn_detection for gpt-realtime-whisper work (reference §2.3, LK-stt #5779 [C]) [I].
            inp["turn_detection"] = None
        if not rules.prompt and tr.get("prompt") is not None:
            # Reference §7 B.12 [V] seed002 / [O]; wording [I].
            raise _ApiError(
                "invalid_value",
                "Prompt is not supported for this transcription model.",
                f"{tpath}.prompt",
            )
        if not rules.delay and tr.get("delay") is not None:
            # Reference §7 B.13 [V] SDK ("Only supported with gpt-realtime-whisper"); wording [I].
            raise _ApiError(
                "invalid_value",
                "Delay is not supported for this transcription model.",
                f"{tpath}.delay",
            )
        if not rules.keywords_languages:
            # Reference §7 B.14 [V] SDK ("Supported by gpt-transcribe and gpt-live-transcribe")
            # and [O]; wording [I].
            if tr.get("keywords") is not None:
                raise _ApiError(
                    "invalid_value",
                    "Keywords are not supported for this transcription model.",
                    f"{tpath}.keywords",
                )
            languages = tr.get("languages")
            if isinstance(languages, list) and len(languages) > 1:
                raise _ApiError(
                    "invalid_value",
                    "Multiple languages are not supported for this transcription model.",
                    f"{tpath}.languages",
                )

    # -- audio buffer --------------------------------------------------------------------------

    def _format(self, conn: _Conn) -> tuple[str, int, int]:
        fmt = conn.session.config["audio"]["input"]["format"]["type"]
        bytes_per_ms, sample_bytes = _FORMATS[fmt]
        return fmt, bytes_per_ms, sample_bytes

    def _on_append(self, conn: _Conn, event: Json) -> None:
        _check_keys(event, ("type", "event_id", "audio"), "")
        audio_b64 = event.get("audio")
        if audio_b64 is None:
            raise _ApiError(
                "missing_required_parameter", "Missing required parameter: 'audio'.", "audio"
            )
        if not isinstance(audio_b64, str):
            raise _invalid_type("audio", "a string", audio_b64)
        try:
            data = _b64decode(audio_b64)
        except (binascii.Error, ValueError) as exc:
            # Wording [I].
            raise _ApiError(
                "invalid_value", "Invalid 'audio': the value is not valid base64.", "audio"
            ) from exc
        if len(data) > MAX_APPEND_BYTES:
            # Reference §7 C.18 [V] limit, message [I].
            raise _ApiError(
                "invalid_value",
                f"Invalid 'audio': {len(data)} bytes of audio exceed the maximum of "
                f"{MAX_APPEND_BYTES} bytes (15 MiB) per event.",
                "audio",
            )
        fmt, bytes_per_ms, sample_bytes = self._format(conn)
        if len(data) % sample_bytes:
            # Whole samples only (reference §7 C.18 [V]); wording [I].
            raise _ApiError(
                "invalid_value",
                f"Invalid 'audio': {len(data)} bytes is not a whole number of {sample_bytes}-byte "
                f"samples for {fmt}.",
                "audio",
            )
        if not data:
            return
        session = conn.session
        start = session.appended_bytes
        session.appended_bytes += len(data)
        td = session.config["audio"]["input"]["turn_detection"]
        if td is None:
            # No VAD: never speech_started/stopped (reference §7 C.23 [C][O]).
            self._buffer_audio(conn, data)
            return
        self._vad(conn, td, data, start, fmt, bytes_per_ms)

    def _buffer_audio(self, conn: _Conn, data: bytes) -> None:
        """Add audio to the input buffer and feed the item's transcriber."""
        session = conn.session
        session._buffer += data
        tr = session.config["audio"]["input"]["transcription"]
        if tr is None:
            return
        if conn.pending is None:
            conn.pending = _Pending(self.transcriber.start_item())
            # The item's transcriber sees all of its audio, even what arrived before
            # transcription was configured.
            self._feed(conn, bytes(session._buffer), tr)
        else:
            self._feed(conn, data, tr)

    def _feed(self, conn: _Conn, data: bytes, tr: Json) -> None:
        pending = conn.pending
        assert pending is not None
        text = pending.item.feed(data)
        if not text:
            return
        rules = self.model_rules[tr["model"]]
        if rules.deltas == "stream":
            # gpt-realtime-whisper / gpt-live-transcribe stream deltas while audio arrives, on the
            # preallocated next item id (reference §7 D.25 [V] guide; id [I] §4.3).
            pending.held.append(text)
            text = "".join(pending.held)
            pending.held.clear()
            pending.streamed.append(text)
            self._send(conn, self._delta_event(conn, conn.take_item_id(), text, rules))
        else:
            pending.held.append(text)

    def _discard_pending(self, conn: _Conn) -> None:
        pending = conn.pending
        conn.pending = None
        if pending is not None:
            discard = getattr(pending.item, "discard", None)
            if callable(discard):
                discard()

    def _vad(
        self, conn: _Conn, td: Json, data: bytes, start: int, fmt: str, bytes_per_ms: int
    ) -> None:
        """Deterministic energy VAD over 10 ms frames (reference §7 C.22).

        ``speech_started.audio_start_ms`` = onset - prefix_padding_ms (>= 0); ``speech_stopped``
        comes after ``silence_duration_ms`` of consecutive non-speech frames, with
        ``audio_end_ms`` = the end of that silence window, and the buffer up to that point is
        committed (what follows stays buffered). Times count appended audio, not wall time ([V]
        SDK speech_started/stopped docstrings).
        """
        frame_bytes = VAD_FRAME_MS * bytes_per_ms
        combined = conn.vad_carry + data if conn.vad_carry else data
        carry_len = len(conn.vad_carry)
        n_frames = len(combined) // frame_bytes
        conn.vad_carry = combined[n_frames * frame_bytes :]
        if n_frames == 0:
            self._buffer_audio(conn, data)
            return
        rms = _frame_rms(combined, fmt, frame_bytes)
        limit = float(td.get("threshold", 0.5)) * VAD_RMS_SCALE
        if td["type"] == "semantic_vad":
            silence_ms = _SEMANTIC_VAD_SILENCE_MS
            prefix_ms = 0
        else:
            silence_ms = int(td.get("silence_duration_ms", 500))
            prefix_ms = int(td.get("prefix_padding_ms", 300))
        first_frame_offset = start - carry_len  # stream offset of combined[0]
        pos = start  # stream offset up to which `data` has been buffered
        for k in range(n_frames):
            frame_start = first_frame_offset + k * frame_bytes
            frame_end = frame_start + frame_bytes
            if rms[k] > limit:
                if not conn.vad_speaking:
                    conn.vad_speaking = True
                    onset_ms = frame_start // bytes_per_ms
                    self._send(
                        conn,
                        {
                            "type": "input_audio_buffer.speech_started",
                            "audio_start_ms": max(0, onset_ms - prefix_ms),
                            "item_id": conn.take_item_id(),
                        },
                    )
                conn.vad_silence_ms = 0
            elif conn.vad_speaking:
                conn.vad_silence_ms += VAD_FRAME_MS
                if conn.vad_silence_ms >= silence_ms:
                    conn.vad_speaking = False
                    conn.vad_silence_ms = 0
                    self._buffer_audio(conn, data[pos - start : frame_end - start])
                    pos = frame_end
                    item_id = conn.take_item_id()
                    self._send(
                        conn,
                        {
                            "type": "input_audio_buffer.speech_stopped",
                            "audio_end_ms": frame_end // bytes_per_ms,
                            "item_id": item_id,
                        },
                    )
                    if conn.session._buffer:
                        self._commit(conn, "server_vad")
        if pos < start + len(data):
            self._buffer_audio(conn, data[pos - start :])

    def _on_commit(self, conn: _Conn, event_id: str | None) -> None:
        session = conn.session
        _, bytes_per_ms, _ = self._format(conn)
        buffered = len(session._buffer)
        if buffered < MIN_COMMIT_MS * bytes_per_ms:
            # Reference §7 C.19 / §3.3 [O]: verbatim message, buffer untouched, session open.
            raise _ApiError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms "
                f"of audio, but buffer only has {buffered / bytes_per_ms:.2f}ms of audio.",
            )
        # A manual commit ends any speech in progress without speech_stopped (SDK
        # speech_started docstring: "unless the client manually commits the audio buffer during
        # VAD activation" [V]).
        conn.vad_speaking = False
        conn.vad_silence_ms = 0
        self._commit(conn, "client")

    def _on_clear(self, conn: _Conn) -> None:
        # Always answered, even on an empty buffer (reference §7 C.21 [V] SDK, [O] speaches).
        conn.session._buffer.clear()
        self._discard_pending(conn)
        # Streamed deltas may have used the preallocated id: the next item gets a new one [I].
        conn.next_item_id = None
        conn.vad_speaking = False
        conn.vad_silence_ms = 0
        self._send(conn, {"type": "input_audio_buffer.cleared"})

    # -- commit and transcription output -----------------------------------------------------

    def _commit(self, conn: _Conn, by: Literal["client", "server_vad"]) -> None:
        """Commit the whole input buffer as a new item (reference §7 C.20)."""
        session = conn.session
        audio = bytes(session._buffer)
        session._buffer.clear()
        item_id = conn.take_item_id()
        conn.next_item_id = None
        previous = conn.last_item_id
        conn.last_item_id = item_id
        tr = session.config["audio"]["input"]["transcription"]
        item = EmulatedItem(
            item_id=item_id,
            previous_item_id=previous,
            session_id=session.id,
            audio=audio if self.record_audio else b"",
            committed_by=by,
            index=len(self._committed),
            model=tr["model"] if tr is not None else None,
            audio_bytes=len(audio),
        )
        session.items.append(item)
        self._committed.append(item)
        # committed {item_id, previous_item_id (null for the first)} (reference §7 C.20 [V] SDK).
        self._send(
            conn,
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            },
        )
        if self.emit_item_added:
            # Reference §4.1.6 [I]: a user message holding the audio (audio bytes omitted).
            self._send(
                conn,
                {
                    "type": "conversation.item.added",
                    "previous_item_id": previous,
                    "item": self._item_object(item_id, None),
                },
            )
        pending = conn.pending
        conn.pending = None
        if tr is None:
            self._discard_pending_obj(pending)
            return  # transcription off: no transcription events
        if pending is None:
            pending = _Pending(self.transcriber.start_item())
            pending.held.append(pending.item.feed(audio))
        rules = self.model_rules[tr["model"]]
        rest = "".join(pending.held) + pending.item.finish()
        streamed = "".join(pending.streamed)
        self._schedule_completion(conn, item, tr, rules, streamed, rest, len(audio))

    @staticmethod
    def _discard_pending_obj(pending: _Pending | None) -> None:
        if pending is not None:
            discard = getattr(pending.item, "discard", None)
            if callable(discard):
                discard()

    @staticmethod
    def _item_object(item_id: str, transcript: str | None) -> Json:
        return {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": transcript}],
        }

    def _include_logprobs(self, conn: _Conn, rules: ModelRules) -> bool:
        include = conn.session.config.get("include") or []
        return rules.logprobs and INCLUDE_LOGPROBS in include

    def _delta_event(self, conn: _Conn, item_id: str, text: str, rules: ModelRules) -> Json:
        event: Json = {
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": item_id,
            "content_index": 0,
            "delta": text,
        }
        if self._include_logprobs(conn, rules):
            event["logprobs"] = _logprobs(text)
        return event

    def _schedule_completion(
        self,
        conn: _Conn,
        item: EmulatedItem,
        tr: Json,
        rules: ModelRules,
        streamed: str,
        rest: str,
        n_bytes: int,
    ) -> None:
        """Build the item's transcription events and send them now or after completed_delay."""
        transcript = streamed + rest
        failed = self.faults.fails_item(item.index)
        deltas: list[Json] = []
        if not failed:
            # Delta style per model (reference §7 D.25): whisper-1 one delta with everything;
            # gpt-4o-* word deltas; streaming models the unsent rest in one delta.
            if rules.deltas == "single":
                pieces = [rest]
            elif rules.deltas == "several":
                pieces = _WORD_RE.findall(rest)
            else:
                pieces = [rest] if rest else []
            deltas = [self._delta_event(conn, item.item_id, p, rules) for p in pieces]
        final = self._final_events(conn, item, tr, rules, transcript, n_bytes, failed)
        delay = self.completed_delay
        if delay <= 0 and conn.last_completion is None:
            for ev in deltas:
                self._send(conn, ev)
            self._emit_final(conn, item, final, failed, transcript)
            return
        loop = asyncio.get_running_loop()
        t_commit = loop.time()
        previous = conn.last_completion

        async def run() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait({previous})
            steps = len(deltas) + 1
            for i, ev in enumerate(deltas):
                await self._sleep_until(t_commit + delay * (i + 1) / steps)
                self._send(conn, ev)
            await self._sleep_until(t_commit + delay)
            self._emit_final(conn, item, final, failed, transcript)

        task = asyncio.create_task(run())
        conn.last_completion = task
        conn.tasks.add(task)
        task.add_done_callback(lambda t: self._completion_done(conn, t))

    def _completion_done(self, conn: _Conn, task: asyncio.Task[None]) -> None:
        conn.tasks.discard(task)
        if conn.last_completion is task:
            conn.last_completion = None

    @staticmethod
    async def _sleep_until(when: float) -> None:
        delay = when - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)

    def _final_events(
        self,
        conn: _Conn,
        item: EmulatedItem,
        tr: Json,
        rules: ModelRules,
        transcript: str,
        n_bytes: int,
        failed: bool,
    ) -> list[Json]:
        events: list[Json] = []
        if failed:
            # Fault: failed instead of completed (reference §7 D.30, verbatim shape §4.1.7 [O]
            # openai-realtime-console#46).
            events.append(
                {
                    "type": "conversation.item.input_audio_transcription.failed",
                    "item_id": item.item_id,
                    "content_index": 0,
                    "error": {
                        "type": "server_error",
                        "code": None,
                        "message": f"Input transcription failed for item '{item.item_id}'.",
                        "param": None,
                    },
                }
            )
        else:
            _, bytes_per_ms, _ = self._format(conn)
            seconds = n_bytes / (bytes_per_ms * 1000)
            if rules.diarize and transcript:
                # Segments with speakers before completed (reference §7 D.29 [V] SDK); one
                # segment per item, speakers alternating A/B per item, times item-relative [I].
                conn.segment_counter += 1
                events.append(
                    {
                        "type": "conversation.item.input_audio_transcription.segment",
                        "item_id": item.item_id,
                        "content_index": 0,
                        "id": f"seg_{conn.segment_counter:04d}",
                        "speaker": "A" if conn.segment_counter % 2 else "B",
                        "start": 0.0,
                        "end": round(seconds, 3),
                        "text": transcript,
                    }
                )
            usage = self._usage(rules, seconds, tr, transcript)
            completed: Json = {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item.item_id,
                "content_index": 0,
                "transcript": transcript,
                "usage": usage,
            }
            if self._include_logprobs(conn, rules):
                completed["logprobs"] = _logprobs(transcript)
            if rules.reports_languages:
                # gpt-transcribe reports languages (reference §7 D.28 [V] SDK).
                languages = tr.get("languages")
                code = tr.get("language") or (languages[0] if languages else None) or "en"
                completed["languages"] = [{"code": code}]
            events.append(completed)
        if self.emit_item_added:
            events.append(
                {
                    "type": "conversation.item.done",
                    "previous_item_id": item.previous_item_id,
                    "item": self._item_object(item.item_id, None if failed else transcript),
                }
            )
        return events

    @staticmethod
    def _usage(rules: ModelRules, seconds: float, tr: Json, transcript: str) -> Json:
        # usage per model (reference §7 D.26: duration for per-minute models, tokens for token-
        # priced ones [I]); token counts are a deterministic function of audio and text [I]:
        # 10 audio tokens per second, 1 text token per 4 characters.
        if rules.usage == "duration":
            return {"type": "duration", "seconds": round(seconds, 6)}
        audio_tokens = math.ceil(seconds * 10)
        prompt = tr.get("prompt") or ""
        text_tokens = math.ceil(len(prompt) / 4)
        output_tokens = math.ceil(len(transcript) / 4)
        input_tokens = audio_tokens + text_tokens
        return {
            "type": "tokens",
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_token_details": {"audio_tokens": audio_tokens, "text_tokens": text_tokens},
        }

    def _emit_final(
        self,
        conn: _Conn,
        item: EmulatedItem,
        final: list[Json],
        failed: bool,
        transcript: str,
    ) -> None:
        """Send the completion group (completed/failed + item.done), applying reorder faults."""
        if failed:
            item.status = "failed"
        else:
            item.status = "completed"
            item.transcript = transcript
            item.usage = next(
                (
                    ev["usage"]
                    for ev in final
                    if ev["type"] == "conversation.item.input_audio_transcription.completed"
                ),
                None,
            )
        if self.faults.reorder_completed or conn.held_completion is not None:
            # Completions of different items may arrive out of order (reference §7 D.31 [V]
            # guide): hold this one until the next item completes, then send both swapped.
            if conn.held_completion is None:
                conn.held_completion = final
                loop = asyncio.get_running_loop()
                conn.held_timer = loop.call_later(
                    self.faults.reorder_hold_seconds, self._flush_held, conn
                )
                return
            held = conn.held_completion
            self._flush_held(conn, send=False)
            for ev in final:
                self._send(conn, ev)
            for ev in held:
                self._send(conn, ev)
            return
        for ev in final:
            self._send(conn, ev)

    def _flush_held(self, conn: _Conn, send: bool = True) -> None:
        held = conn.held_completion
        conn.held_completion = None
        if conn.held_timer is not None:
            conn.held_timer.cancel()
            conn.held_timer = None
        if send and held is not None:
            for ev in held:
                self._send(conn, ev)

    # -- faults --------------------------------------------------------------------------------

    async def _tick(self) -> None:
        # One task checks time-triggered faults of all live connections every 10 ms, and only
        # when the plan has such rules (cheap when idle, fine with hundreds of sessions).
        while True:
            await asyncio.sleep(0.01)
            if self.faults.has_timed_rules():
                for conn in list(self._live.values()):
                    self._check_faults(conn)

    def _check_faults(self, conn: _Conn) -> None:
        plan = self.faults
        if plan.is_idle() or conn.closing or conn.finished or conn.dropped or self._loop is None:
            return
        index = conn.session.index
        age = self._loop.time() - conn.t0
        nbytes = conn.session.appended_bytes

        if plan.applies_to(plan.connections, index):
            if (plan.drop_after_seconds is not None and age >= plan.drop_after_seconds) or (
                plan.drop_after_bytes is not None and nbytes >= plan.drop_after_bytes
            ):
                self._drop(conn)
                return
            for name, threshold in (
                ("malformed", plan.malformed_json_after_bytes),
                ("unknown", plan.unknown_event_after_bytes),
            ):
                key = f"{name}:{threshold}"
                if threshold is not None and nbytes >= threshold and key not in conn.fired:
                    conn.fired.append(key)
                    if name == "malformed":
                        conn.out.put_nowait(_RawFrame(MALFORMED_FRAME))
                    else:
                        self._send(conn, {"type": UNKNOWN_EVENT_TYPE, "note": "fault injection"})

        rd = plan.drop_at_random
        if rd is not None and plan.applies_to(rd.connections, index):
            if conn.random_drop_rule is not rd:
                conn.random_drop_rule = rd
                rng = random.Random(rd.seed * 1_000_003 + index)
                conn.random_drop_at = rng.randint(rd.min_bytes, rd.max_bytes)
            if nbytes >= conn.random_drop_at:
                self._drop(conn)
                return

        def due(after_seconds: float | None, after_bytes: int | None) -> bool:
            if after_seconds is None and after_bytes is None:
                return True
            return (after_seconds is not None and age >= after_seconds) or (
                after_bytes is not None and nbytes >= after_bytes
            )

        stall = plan.stall
        if (
            stall is not None
            and plan.applies_to(stall.connections, index)
            and not conn.was_fired(stall)
            and due(stall.after_seconds, stall.after_bytes)
        ):
            conn.fired.append(stall)
            conn.read_stalled = conn.read_stalled or stall.read
            conn.answer_stalled = conn.answer_stalled or stall.answer

        err = plan.send_error
        if (
            err is not None
            and plan.applies_to(err.connections, index)
            and not conn.was_fired(err)
            and due(err.after_seconds, err.after_bytes)
        ):
            conn.fired.append(err)
            self._error(conn, _ApiError(err.code, err.message, type=err.type))
            if err.close_code is not None:
                self._close(conn, err.close_code, err.close_reason or f"{err.type}.{err.code}")
                return

        close = plan.close_with
        if (
            close is not None
            and plan.applies_to(close.connections, index)
            and not conn.was_fired(close)
            and due(close.after_seconds, close.after_bytes)
        ):
            conn.fired.append(close)
            self._close(conn, close.code, close.reason)

    def _drop(self, conn: _Conn) -> None:
        """Abort the TCP connection: no close frame, the client sees an abnormal closure."""
        conn.dropped = True
        conn.closing = True
        conn.session.close_code = 1006
        transport = conn.request.transport
        if transport is not None:
            transport.abort()
