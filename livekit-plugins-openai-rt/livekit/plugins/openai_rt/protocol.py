"""Sans-I/O codec of the OpenAI Realtime transcription protocol.

Turns configuration into client events and parses server JSON into small typed records; the
upgrade URL and headers (:mod:`.urls`) and the audio formats (:mod:`.formats`) are re-exported
here. Nothing here touches a socket, a clock or an event loop, so all of it is tested without
one. What to do about a failure is :mod:`.errors`' job; what to do
about everything else is :mod:`.session`'s.

Protocol facts are in ``docs/protocol.md``; section numbers are cited inline.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from .formats import (  # re-exported: protocol.PCM16, protocol.AudioFormat, ...
    AUDIO_FORMATS as AUDIO_FORMATS,
    BYTES_PER_MS as BYTES_PER_MS,
    BYTES_PER_SECOND as BYTES_PER_SECOND,
    PCM16 as PCM16,
    PCMA as PCMA,
    PCMU as PCMU,
    SAMPLE_RATE as SAMPLE_RATE,
    AudioFormat as AudioFormat,
    AudioFormatName as AudioFormatName,
)
from .log import MAX_SERVER_NAME, clip
from .urls import (  # re-exported: protocol.realtime_url, protocol.auth_headers, ...
    auth_headers as auth_headers,
    azure_base_url as azure_base_url,
    azure_key_headers as azure_key_headers,
    check_api_key as check_api_key,
    is_loopback_host as is_loopback_host,
    is_plaintext as is_plaintext,
    realtime_url as realtime_url,
)

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"

TurnDetection = Mapping[str, Any]
"""A ``server_vad`` / ``semantic_vad`` object as sent in ``audio.input.turn_detection``."""

TURN_DETECTION_TYPES = ("server_vad", "semantic_vad")

# --------------------------------------------------------------------------------------------
# client events


@dataclass(frozen=True)
class SessionConfig:
    """Everything a transcription ``session.update`` carries.

    ``language`` and ``languages`` are what goes on the wire: a model that takes a ``languages``
    list gets only that (the options map ``language="en"`` to ``languages=("en",)``).
    """

    model: str
    language: str | None = None
    languages: tuple[str, ...] | None = None
    keywords: tuple[str, ...] | None = None
    delay: str | None = None
    prompt: str | None = None
    turn_detection: TurnDetection | None = None
    noise_reduction: str | None = None
    logprobs: bool = False
    model_family: str | None = None
    """The model whose rules apply when ``model`` is an alias (an Azure deployment, a gateway's
    model name); never sent. None: ``model`` itself."""
    audio_format: AudioFormat = PCM16
    """The input audio format (``format`` of ``session.update``; the core's units)."""

    @property
    def family(self) -> str:
        """The model whose row of the model table applies."""
        return self.model_family or self.model

    @property
    def hint_language(self) -> str:
        """The language transcripts are tagged with when the server names none: the one hint,
        or "" when there is none or several."""
        if self.language:
            return self.language
        if self.languages is not None and len(self.languages) == 1:
            return self.languages[0]
        return ""


def session_update(config: SessionConfig, *, event_id: str | None = None) -> dict[str, Any]:
    """The GA ``session.update`` for a transcription session (§2.1; ``languages`` and
    ``keywords`` §2.2).

    ``turn_detection`` is always sent, as ``null`` when the client commits, because a session
    starts with server VAD on (§3.4) and gpt-realtime-whisper needs it off.
    """
    transcription: dict[str, Any] = {"model": config.model}
    if config.language:
        transcription["language"] = config.language
    if config.languages is not None:
        transcription["languages"] = list(config.languages)
    if config.keywords is not None:
        transcription["keywords"] = list(config.keywords)
    if config.delay is not None:
        transcription["delay"] = config.delay
    if config.prompt is not None:
        transcription["prompt"] = config.prompt
    audio_input: dict[str, Any] = {
        "format": config.audio_format.session_format(),
        "transcription": transcription,
        "turn_detection": dict(config.turn_detection) if config.turn_detection else None,
        "noise_reduction": {"type": config.noise_reduction} if config.noise_reduction else None,
    }
    session: dict[str, Any] = {"type": "transcription", "audio": {"input": audio_input}}
    if config.logprobs:
        session["include"] = [LOGPROBS_INCLUDE]
    return session_update_event(session, event_id)


def session_update_event(session: Mapping[str, Any], event_id: str | None) -> dict[str, Any]:
    """A ``session.update`` carrying ``session``; ``event_id`` lets an error name it (§2.1)."""
    event: dict[str, Any] = {"type": "session.update", "session": session}
    if event_id is not None:
        event["event_id"] = event_id
    return event


_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_APPEND_TAIL = b'"}'


def append_message(pcm: bytes | bytearray | memoryview) -> bytes:
    """A serialized ``input_audio_buffer.append`` (§3.2), as the UTF-8 payload of a text frame.

    Built without ``json.dumps`` or a str round trip: base64 is ASCII and needs no JSON
    escaping, so the message is two constant byte strings around the encoded audio.
    """
    return _APPEND_HEAD + base64.b64encode(pcm) + _APPEND_TAIL


def commit_message(event_id: str) -> bytes:
    """A serialized ``input_audio_buffer.commit``; ``event_id`` lets errors name the commit."""
    return b'{"type":"input_audio_buffer.commit","event_id":' + json.dumps(event_id).encode() + b"}"


CLEAR_MESSAGE = b'{"type":"input_audio_buffer.clear"}'
"""A serialized ``input_audio_buffer.clear``: the server empties its buffer (§3.2)."""


def encode(event: Mapping[str, Any]) -> bytes:
    """Serialize a client event as the UTF-8 payload of a text frame."""
    return json.dumps(event, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# server events


@dataclass(frozen=True, slots=True)
class SessionCreated:
    """``session.created``: the first server event (§4.1.1)."""

    session_id: str
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """``session.updated``: the effective configuration after an update (§4.1.2)."""

    session_id: str
    session: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started`` (server VAD only, §3.4)."""

    item_id: str
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """``input_audio_buffer.speech_stopped`` (server VAD only, §3.4)."""

    item_id: str
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class Committed:
    """``input_audio_buffer.committed``: an item was created from the buffer (§4.1.3)."""

    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class Cleared:
    """``input_audio_buffer.cleared``."""


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """``…input_audio_transcription.delta``: text to append to the item's transcript (§4.1.4)."""

    item_id: str
    delta: str
    logprobs: Sequence[float] | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    """The ``usage`` of a completed transcription: seconds for duration-billed models, tokens
    for token-billed ones (§4.1.5)."""

    kind: Literal["duration", "tokens"]
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    audio_tokens: int = 0
    text_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptCompleted:
    """``…input_audio_transcription.completed`` (§4.1.5)."""

    item_id: str
    transcript: str
    usage: Usage | None = None
    logprobs: Sequence[float] | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class TranscriptFailed:
    """``…input_audio_transcription.failed``: no ``completed`` follows for the item (§4.1.7)."""

    item_id: str
    error: ServerError


@dataclass(frozen=True, slots=True)
class ServerError:
    """An ``error`` event (§4.1.9). ``event_id`` is the client event that caused it, if any."""

    code: str | None
    type: str | None
    message: str
    param: str | None = None
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed event the transcription client has no use for (``conversation.item.*``)."""

    type: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """An event type this client does not know; the stream goes on (§4: ignore unknown types)."""

    type: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that is not a JSON object with a string ``type``."""

    reason: str


ServerEvent = (
    SessionCreated
    | SessionUpdated
    | SpeechStarted
    | SpeechStopped
    | Committed
    | Cleared
    | TranscriptDelta
    | TranscriptCompleted
    | TranscriptFailed
    | ServerError
    | Ignored
    | Unknown
    | Malformed
)

_IGNORED_TYPES = frozenset(
    {
        "conversation.item.added",
        "conversation.item.done",
        "conversation.item.created",
        "conversation.item.input_audio_transcription.segment",
        "input_audio_buffer.timeout_triggered",
        "rate_limits.updated",
    }
)


def parse_server_event(raw: str | bytes) -> ServerEvent:
    """Parse one server text frame into a typed record. Never raises.

    Fields of the wrong type make the event :class:`Malformed` (a dict where an id belongs
    would break the bookkeeping later), and server text that only reaches log lines and
    exceptions (ids, codes, messages, the parse error itself) is cut with :func:`clip`.
    """
    return parse_event(raw, _parse_dict)


_EventT = TypeVar("_EventT")


def parse_event(
    raw: str | bytes, parse: Callable[[dict[str, Any]], _EventT]
) -> _EventT | Malformed:
    """Parse one server text frame with ``parse``, given the JSON object (whose ``type`` is a
    string). Never raises: a frame that is not such an object, or that ``parse`` finds
    malformed (raising ``KeyError``, ``TypeError``, ``ValueError``, …), is :class:`Malformed`.
    Shared by the transcription and translation codecs."""
    try:
        ev = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        return Malformed(clip(f"not JSON: {e}"))
    if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
        return Malformed("not an object with a string 'type'")
    try:
        return parse(ev)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        return Malformed(clip(f"bad {clip(ev['type'], MAX_SERVER_NAME)!r} event: {e!r}"))


def _parse_dict(ev: dict[str, Any]) -> ServerEvent:
    t: str = ev["type"]
    if t == "conversation.item.input_audio_transcription.delta":
        return TranscriptDelta(
            item_id=_str(ev.get("item_id")) or "",
            delta=_str(ev.get("delta")) or "",
            logprobs=_logprobs(ev.get("logprobs")),
        )
    if t == "conversation.item.input_audio_transcription.completed":
        return TranscriptCompleted(
            item_id=required_str(ev, "item_id"),
            transcript=_str(ev.get("transcript")) or "",
            usage=_usage(ev.get("usage")),
            logprobs=_logprobs(ev.get("logprobs")),
            language=_language(ev.get("languages")),
        )
    if t == "input_audio_buffer.committed":
        return Committed(
            item_id=required_str(ev, "item_id"), previous_item_id=_str(ev.get("previous_item_id"))
        )
    if t == "input_audio_buffer.speech_started":
        return SpeechStarted(
            item_id=_str(ev.get("item_id")) or "", audio_start_ms=_ms(ev["audio_start_ms"])
        )
    if t == "input_audio_buffer.speech_stopped":
        return SpeechStopped(
            item_id=_str(ev.get("item_id")) or "", audio_end_ms=_ms(ev["audio_end_ms"])
        )
    if t == "conversation.item.input_audio_transcription.failed":
        return TranscriptFailed(item_id=required_str(ev, "item_id"), error=_error(ev.get("error")))
    session_event = SESSION_EVENTS.get(t)
    if session_event is not None:
        return session_event(ev)
    if t == "input_audio_buffer.cleared":
        return Cleared()
    if t in _IGNORED_TYPES:
        return Ignored(t)
    return unknown(t)


def _session_created(ev: dict[str, Any]) -> SessionCreated:
    session = ev.get("session") or {}
    expires = session.get("expires_at")
    return SessionCreated(
        session_id=_name(session.get("id")) or "",
        expires_at=float(expires) if isinstance(expires, (int, float)) else None,
    )


def _session_updated(ev: dict[str, Any]) -> SessionUpdated:
    session = ev.get("session") or {}
    return SessionUpdated(session_id=_name(session.get("id")) or "", session=session)


SessionEvent = SessionCreated | SessionUpdated | ServerError
"""The events every Realtime session sends, transcription and translation alike."""

SESSION_EVENTS: Mapping[str, Callable[[dict[str, Any]], SessionEvent]] = {
    "session.created": _session_created,
    "session.updated": _session_updated,
    "error": lambda ev: _error(ev.get("error")),
}
"""The parser of each :data:`SessionEvent`, by type (§4.1.1, §4.1.2, §4.1.9)."""


def unknown(event_type: str) -> Unknown:
    """An event of a type the client does not know (its name cut short for the log line)."""
    return Unknown(clip(event_type, MAX_SERVER_NAME))


def _str(value: Any) -> str | None:
    """A string field, or None when absent; TypeError (a malformed event) for anything else."""
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def required_str(ev: Mapping[str, Any], key: str) -> str:
    """The string field ``key``; ``KeyError`` or ``TypeError`` (a malformed event) when it is
    absent, null or not a string."""
    value = _str(ev[key])
    if value is None:
        raise TypeError(f"{key} is null")
    return value


def _name(value: Any) -> str | None:
    """A name that only reaches log lines (session id, error code, type, param): cut short."""
    text = _str(value)
    return None if text is None else clip(text, MAX_SERVER_NAME)


def _ms(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer number of ms, got {type(value).__name__}")
    return value


def _error(err: Any) -> ServerError:
    if not isinstance(err, dict):
        return ServerError(code=None, type=None, message=clip(str(err)))
    return ServerError(
        code=_name(err.get("code")),
        type=_name(err.get("type")),
        message=clip(str(err.get("message") or "")),
        param=_name(err.get("param")),
        event_id=_name(err.get("event_id")),
    )


def _usage(usage: Any) -> Usage | None:
    """The usage, or None when absent or unreadable (a bad figure must not cost the
    transcript)."""
    if not isinstance(usage, dict):
        return None
    try:
        if usage.get("type") == "duration":
            seconds = float(usage.get("seconds") or 0.0)
            return Usage(kind="duration", seconds=seconds) if math.isfinite(seconds) else None
        if usage.get("type") == "tokens":
            details = usage.get("input_token_details") or {}
            return Usage(
                kind="tokens",
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                audio_tokens=int(details.get("audio_tokens") or 0),
                text_tokens=int(details.get("text_tokens") or 0),
            )
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    return None


def _logprobs(lp: Any) -> list[float] | None:
    """Logprobs, or None when absent or unreadable (they only feed the confidence)."""
    if not isinstance(lp, list) or not lp:
        return None
    try:
        values = [float(p["logprob"]) for p in lp if isinstance(p, dict) and "logprob" in p]
    except (TypeError, ValueError):
        return None
    return [v for v in values if math.isfinite(v)] or None


def _language(languages: Any) -> str | None:
    """The first detected language code (gpt-transcribe), or None when absent or unreadable."""
    if not isinstance(languages, list) or not languages or not isinstance(languages[0], dict):
        return None
    code = languages[0].get("code")
    return code if isinstance(code, str) and code else None


def confidence(logprobs: Sequence[float] | None) -> float:
    """Mean token probability (0..1) from logprobs; 0.0 when the server sent none."""
    if not logprobs:
        return 0.0
    return math.exp(sum(logprobs) / len(logprobs))
