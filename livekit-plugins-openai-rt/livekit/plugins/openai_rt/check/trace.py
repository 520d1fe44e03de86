"""The trace format: one session's traffic as JSON Lines, with credentials and audio redacted.

``python -m livekit.plugins.openai_rt.check`` writes one trace per session it opens; the
repository's tests replay traces through the session core (:mod:`.replay`), so a trace attached
to a bug report becomes a test by copying it into ``tests/traces/``.

The first line is a header object::

    {"trace": "livekit-plugins-openai-rt", "version": 1, "model": "gpt-realtime-whisper",
     "model_family": null, "started_at": 1767225600.0, "recorded_by": "...", "source": "...",
     "reconstructed": false, "note": "...", "expect": {"finals": [["item_…", "text"]]}}

``started_at`` is the wall clock (unix seconds) at ``t`` = 0; ``source`` says where the traffic
comes from (a live run, or for a reconstructed trace the public captures it was built from);
``expect`` is optional (see :mod:`.replay`). Every other line is one record, ``t`` seconds after
the start::

    {"t": 0.0, "open": {"url": "wss://api.openai.com/v1/realtime?intent=transcription"}}
    {"t": 0.01, "server": {"type": "session.created", ...}}
    {"t": 0.02, "client": {"type": "input_audio_buffer.append", "audio_bytes": 4800}}
    {"t": 5.0, "close": {"code": 1001, "reason": "...", "by": "server"}}
    {"t": 0.0, "refused": {"status": 401, "body": "..."}}

Audio is never recorded: an ``audio`` field becomes its decoded length (``audio_bytes``).
Query values other than ``intent``, ``model``, ``api-version`` and ``deployment`` are replaced
by ``<redacted>`` (a gateway may carry a key in its query), headers are not recorded, and every
credential the recorder was told about is replaced wherever it appears.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

TRACE_FORMAT = "livekit-plugins-openai-rt"
"""The header's ``trace`` value."""

TRACE_VERSION = 1
"""The header's ``version``: the format described above."""

RecordKind = Literal["open", "client", "server", "close", "refused"]
"""What a record is about: a socket opened, a client or server event, a close, a refused
upgrade."""

KINDS: tuple[RecordKind, ...] = ("open", "client", "server", "close", "refused")
"""Every record kind, in the order a line is searched for its kind."""

REDACTED = "<redacted>"
"""What replaces a credential or a private query value."""

MIN_SECRET_LENGTH = 8
"""Shortest credential the recorder scrubs."""

_PUBLIC_QUERY = frozenset({"intent", "model", "api-version", "deployment"})


@dataclass(frozen=True)
class Record:
    """One line of a trace after the header."""

    t: float
    kind: RecordKind
    data: dict[str, Any]


@dataclass
class Trace:
    """A parsed trace: its header and its records, in order."""

    header: dict[str, Any]
    records: list[Record] = field(default_factory=list)

    @property
    def model(self) -> str:
        """The model the session was configured with."""
        return str(self.header.get("model") or "")


def redact_url(url: str) -> str:
    """``url`` with every query value but the routing ones replaced by ``<redacted>``."""
    parts = urlsplit(url)
    query = [
        (k, v if k in _PUBLIC_QUERY else REDACTED)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="<>"), ""))


def redact_audio(value: Any) -> Any:
    """``value`` with every ``audio`` string (base64) replaced by ``audio_bytes``, its length."""
    if isinstance(value, list):
        return [redact_audio(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "audio" and isinstance(item, str):
            out["audio_bytes"] = _decoded_length(item)
        else:
            out[key] = redact_audio(item)
    return out


def _decoded_length(b64: str) -> int:
    try:
        return len(base64.b64decode(b64, validate=True))
    except (binascii.Error, ValueError):
        return len(b64) * 3 // 4


class TraceRecorder:
    """Collects one session's records as they happen and writes them as a trace.

    Args:
        header: the header fields (``trace`` and ``version`` are added).
        secrets: credentials to scrub from every line written (more with :meth:`add_secret`).
    """

    def __init__(self, header: Mapping[str, Any], secrets: Iterable[str] = ()) -> None:
        self.header = {"trace": TRACE_FORMAT, "version": TRACE_VERSION, **header}
        self.header.setdefault("started_at", time.time())
        self.records: list[Record] = []
        self._t0 = time.monotonic()
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str) -> None:
        """Scrub ``secret`` too (a token handed out for one connect). Values shorter than
        :data:`MIN_SECRET_LENGTH` are not credentials anyone issues, and would scrub ordinary
        text."""
        if len(secret) >= MIN_SECRET_LENGTH:
            self._secrets.add(secret)

    def _add(self, kind: RecordKind, data: dict[str, Any]) -> Record:
        record = Record(round(time.monotonic() - self._t0, 4), kind, data)
        self.records.append(record)
        return record

    def open(self, url: str) -> None:
        """A socket was opened on ``url``."""
        self._add("open", {"url": redact_url(url)})

    def refused(self, status: int, body: str) -> None:
        """The upgrade was refused with HTTP ``status``."""
        self._add("refused", {"status": status, "body": body[:500]})

    def client(self, event: Mapping[str, Any]) -> None:
        """The client sent ``event`` (audio is recorded by length)."""
        self._add("client", redact_audio(dict(event)))

    def server(self, text: str) -> dict[str, Any] | None:
        """The server sent the text frame ``text``; returns it parsed (None if not an object)."""
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self._add("server", {"type": "<malformed>", "raw": text[:200]})
            return None
        self._add("server", redact_audio(event))
        return event

    def close(self, code: int | None, reason: str, *, by: Literal["server", "client"]) -> None:
        """The socket closed (``code`` None: it broke without a close frame)."""
        self._add("close", {"code": code, "reason": reason, "by": by})

    def lines(self) -> list[str]:
        """The trace as JSON lines, every known credential scrubbed."""
        out = [json.dumps(self.header, ensure_ascii=False)]
        out += [
            json.dumps({"t": r.t, r.kind: r.data}, ensure_ascii=False, separators=(",", ":"))
            for r in self.records
        ]
        return [self._scrub(line) for line in out]

    def write(self, path: Path) -> Path:
        """Write the trace to ``path`` (its directory is created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(self.lines()) + "\n", encoding="utf-8")
        return path

    def _scrub(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, REDACTED)
        return line


def parse_trace(lines: Sequence[str]) -> Trace:
    """Parse the lines of a trace. Raises ``ValueError`` naming the line that is wrong."""
    rows = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not rows:
        raise ValueError("empty trace")
    header = _json_object(*rows[0])
    if header.get("trace") != TRACE_FORMAT:
        raise ValueError(f"line {rows[0][0]}: not a {TRACE_FORMAT} trace header")
    if header.get("version") != TRACE_VERSION:
        raise ValueError(f"line {rows[0][0]}: trace version {header.get('version')!r} unknown")
    trace = Trace(header)
    for n, line in rows[1:]:
        obj = _json_object(n, line)
        kinds = [k for k in KINDS if k in obj]
        if len(kinds) != 1 or not isinstance(obj.get("t"), (int, float)):
            raise ValueError(f"line {n}: expected {{'t': seconds, <one of {KINDS}>: {{...}}}}")
        data = obj[kinds[0]]
        if not isinstance(data, dict):
            raise ValueError(f"line {n}: {kinds[0]!r} must be an object")
        trace.records.append(Record(float(obj["t"]), kinds[0], data))
    return trace


def read_trace(path: Path) -> Trace:
    """Read a trace file."""
    return parse_trace(path.read_text(encoding="utf-8").splitlines())


def _json_object(n: int, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise ValueError(f"line {n}: not JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"line {n}: not a JSON object")
    return obj
