"""Sans-I/O codec of the OpenAI Realtime transcription protocol.

Builds the upgrade URL and headers, turns configuration into client events, and parses server
JSON into small typed records. Nothing here touches a socket, a clock or an event loop, so all
of it is tested without one. What to do about a failure is :mod:`.errors`' job; what to do
about everything else is :mod:`.session`'s.

Protocol facts are in ``docs/protocol.md``; section numbers are cited inline.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

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
from .version import __version__

USER_AGENT = f"livekit-plugins-openai-rt/{__version__}"

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"

TurnDetection = Mapping[str, Any]
"""A ``server_vad`` / ``semantic_vad`` object as sent in ``audio.input.turn_detection``."""

TURN_DETECTION_TYPES = ("server_vad", "semantic_vad")

MAX_SERVER_TEXT = 200
"""Longest server-provided text (an error message, a parse error) kept for log lines and
exceptions: a server can send megabytes."""

MAX_SERVER_NAME = 64
"""Longest server-provided name (a session id, an error code, type or param) kept for log lines
and exceptions (OpenAI's are under 40 characters)."""


def clip(text: str, limit: int = MAX_SERVER_TEXT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was: the one place server text
    is bounded before it reaches a log line or an exception."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} chars)"


# --------------------------------------------------------------------------------------------
# the upgrade request

_WS_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}


def realtime_url(base_url: str, *, model: str, model_in_url: bool) -> str:
    """The transcription websocket URL for an OpenAI-SDK style ``base_url``.

    ``https://host/v1`` becomes ``wss://host/v1/realtime?intent=transcription``. A query the
    base URL carries (a gateway's routing, Azure's ``api-version``) is kept, and ``intent`` is
    added to it. The model is never in the URL unless ``model_in_url``: on OpenAI's endpoint
    ``?model=`` selects a conversation session, and every transcription model is then refused
    with ``invalid_model`` (§1.2); gateways that route on ``?model=`` opt in.

    Raises ``ValueError`` for a URL that is not http(s)/ws(s), has no host, carries
    credentials (``user:pass@``) or control characters.
    """
    parts = _checked_url(base_url, "base_url", "https://api.openai.com/v1")
    ws_scheme = _WS_SCHEMES[parts.scheme.lower()]
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "intent"]
    query.append(("intent", "transcription"))
    if model_in_url:
        query = [(k, v) for k, v in query if k != "model"] + [("model", model)]
    path = parts.path.rstrip("/") + "/realtime"
    return urlunsplit((ws_scheme, parts.netloc, path, urlencode(query), ""))


def _checked_url(url: str, name: str, example: str) -> SplitResult:
    """``url`` split, or ``ValueError`` naming the option ``name`` when it is not an
    http(s)/ws(s) URL with a host, carries credentials (``user:pass@``) or control characters."""
    # the messages show the URL without its query: a gateway key may ride there
    shown = clip(redact_url(url))
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(f"{name} contains control characters: {shown!r}")
    parts = urlsplit(url.strip())
    if _WS_SCHEMES.get(parts.scheme.lower()) is None or not parts.hostname:
        raise ValueError(
            f"{name} must be an http(s):// or ws(s):// URL such as '{example}', got {shown!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{name} must not carry credentials (user:pass@host): pass the key as api_key="
        )
    return parts


def is_loopback_host(url: str) -> bool:
    """True when ``url``'s host is this machine (plain ``ws://`` is fine there)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_plaintext(url: str) -> bool:
    """True when ``url`` would carry the key unencrypted (``http://`` or ``ws://``)."""
    return urlsplit(url).scheme.lower() in ("http", "ws")


def check_api_key(api_key: str, name: str = "api_key") -> None:
    """Raise ``ValueError`` for a credential that cannot go in a header (empty, or control
    characters, such as a newline pasted with it). ``name`` says which option it came from; the
    message never repeats the credential."""
    if not api_key.strip():
        raise ValueError(f"{name} is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in api_key):
        raise ValueError(f"{name} contains control characters (a trailing newline?): strip the key")


def auth_headers(api_key: str) -> dict[str, str]:
    """Headers for the upgrade request with a bearer credential: an OpenAI key, a gateway's key,
    or an Azure Entra token (§1.1, §1.3). No ``OpenAI-Beta``: the beta shape is refused (§1.3)."""
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


def azure_key_headers(api_key: str) -> dict[str, str]:
    """Headers for the upgrade request with an Azure OpenAI resource key: ``api-key``, as the
    SDK's Azure client sends it (§1.1, §1.3)."""
    return {"api-key": api_key, "User-Agent": USER_AGENT}


AZURE_V1 = "v1"
"""The ``api_version`` that names Azure's v1 API (no dated ``api-version`` query)."""


def azure_base_url(endpoint: str, *, deployment: str, api_version: str | None) -> str:
    """The OpenAI-SDK style base URL of an Azure OpenAI resource, for :func:`realtime_url`.

    Azure's v1 API (``api_version`` None or ``"v1"``) is ``{endpoint}/openai/v1``, so the
    socket is ``/openai/v1/realtime?intent=transcription``; the deployment is named only in
    ``session.update`` (Azure wants the deployment name as the transcription model). A dated
    ``api_version`` selects ``/openai/realtime?api-version=…&deployment=…``, as the SDK's
    ``AzureOpenAI`` builds it (§1.1). ``endpoint`` is the resource URL
    (``https://<resource>.openai.azure.com``); a trailing ``/openai`` or ``/openai/v1`` is
    tolerated.

    Raises ``ValueError`` for an endpoint that is not an http(s)/ws(s) URL with a host, carries
    credentials, control characters or a query, or for an empty deployment.
    """
    if not deployment or any(ord(c) < 0x20 or ord(c) == 0x7F for c in deployment):
        raise ValueError(f"azure_deployment must be a deployment name, got {deployment!r}")
    parts = _checked_url(endpoint, "azure_endpoint", "https://<resource>.openai.azure.com")
    if parts.query or parts.fragment:
        raise ValueError(
            "azure_endpoint must be the resource URL without a query, such as "
            f"'https://<resource>.openai.azure.com', got {endpoint!r}"
        )
    path = parts.path.rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    if api_version is None or api_version == AZURE_V1:
        base = urlunsplit((parts.scheme, parts.netloc, path + "/openai/v1", "", ""))
    else:
        query = urlencode([("api-version", api_version), ("deployment", deployment)])
        base = urlunsplit((parts.scheme, parts.netloc, path + "/openai", query, ""))
    return base


def redact_url(url: str) -> str:
    """``url`` without its query string, for log lines (a gateway key could ride in it)."""
    return url.split("?", 1)[0]


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
    try:
        ev = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        return Malformed(clip(f"not JSON: {e}"))
    if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
        return Malformed("not an object with a string 'type'")
    try:
        return _parse_dict(ev)
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
            item_id=_required_str(ev, "item_id"),
            transcript=_str(ev.get("transcript")) or "",
            usage=_usage(ev.get("usage")),
            logprobs=_logprobs(ev.get("logprobs")),
            language=_language(ev.get("languages")),
        )
    if t == "input_audio_buffer.committed":
        return Committed(
            item_id=_required_str(ev, "item_id"), previous_item_id=_str(ev.get("previous_item_id"))
        )
    if t == "input_audio_buffer.speech_started":
        return SpeechStarted(
            item_id=_str(ev.get("item_id")) or "", audio_start_ms=_ms(ev["audio_start_ms"])
        )
    if t == "input_audio_buffer.speech_stopped":
        return SpeechStopped(
            item_id=_str(ev.get("item_id")) or "", audio_end_ms=_ms(ev["audio_end_ms"])
        )
    if t == "error":
        return _error(ev.get("error"))
    if t == "conversation.item.input_audio_transcription.failed":
        return TranscriptFailed(item_id=_required_str(ev, "item_id"), error=_error(ev.get("error")))
    if t == "session.created":
        session = ev.get("session") or {}
        expires = session.get("expires_at")
        return SessionCreated(
            session_id=_name(session.get("id")) or "",
            expires_at=float(expires) if isinstance(expires, (int, float)) else None,
        )
    if t == "session.updated":
        session = ev.get("session") or {}
        return SessionUpdated(session_id=_name(session.get("id")) or "", session=session)
    if t == "input_audio_buffer.cleared":
        return Cleared()
    if t in _IGNORED_TYPES:
        return Ignored(t)
    return Unknown(clip(t, MAX_SERVER_NAME))


def _str(value: Any) -> str | None:
    """A string field, or None when absent; TypeError (a malformed event) for anything else."""
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _required_str(ev: dict[str, Any], key: str) -> str:
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
