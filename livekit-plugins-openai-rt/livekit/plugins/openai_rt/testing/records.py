"""What a test can read after (or during) a run: sessions, committed items, logged events.

The emulator keeps these records up to date; tests assert on them (``emu.sessions``,
``emu.committed_items()``, ``emu.events``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .audio import decode_pcm16, new_id

__all__ = ["EmulatedItem", "EmulatedSession", "LoggedEvent"]


@dataclass
class LoggedEvent:
    """One event in or out of the emulator, as recorded in :attr:`Emulator.events`.

    ``event`` is the event as a dict, except that an ``input_audio_buffer.append`` is stored as
    ``{"type": ..., "audio_bytes": N}`` (plus its ``event_id`` if any) instead of its base64, and
    a frame that is not a JSON object is stored as ``{"type": "<malformed>", "raw": <first 200
    characters>}`` (both directions: the fault plan can send malformed frames). ``t`` is
    ``time.monotonic()`` when the event was read, or written to the socket.
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
        format: the session's input ``format.type`` at commit (``audio/pcm``, ``audio/pcmu``
            or ``audio/pcma``): what ``audio`` is encoded in.
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
    format: str = "audio/pcm"

    def pcm16(self) -> bytes:
        """The committed audio decoded to 16-bit PCM at its format's rate (24 kHz pcm, 8 kHz
        G.711): what the server hears."""
        return decode_pcm16(self.audio, self.format)


class EmulatedSession:
    """The emulator's record of one accepted websocket connection.

    Attributes:
        id: the session id (``sess_…``).
        index: the connection index (0-based, in acceptance order; see :mod:`.faults`).
        kind: ``"transcription"``, ``"translation"`` (``/v1/realtime/translations``),
            ``"realtime"`` (a conversation session, not emulated beyond routing errors) or
            ``"rejected"`` (refused after the upgrade, e.g. a beta header).
        path: the upgrade URL's path (``/v1/realtime``; Azure mode: ``/openai/v1/realtime`` or
            ``/openai/realtime``).
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
        created_at: float,
        path: str = "/v1/realtime",
    ) -> None:
        """Create the record of a connection accepted at unix time ``created_at``."""
        self.id = new_id("sess_")
        self.index = index
        self.kind: Literal["transcription", "translation", "realtime", "rejected"] = "transcription"
        self.path = path
        self.query = query
        self.headers = headers
        self.config: dict[str, Any] = {}
        self.items: list[EmulatedItem] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.closed = False
        self.appended_bytes = 0
        self.created_at = created_at
        self.expires_at = int(self.created_at + max_session_seconds)
        # The input buffer (appended, not yet committed audio); the server session fills and
        # drains it, the record only reports its size.
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
