"""Pluggable transcribers: what text the emulator "recognises" in the audio it receives.

The emulator does not do speech recognition. A :class:`Transcriber` turns the exact bytes of each
item into text, deterministically, so tests can assert on transcripts:

* :class:`BlockCrcTranscriber` (the default) writes one CRC token per 100 ms block of audio, so a
  transcript proves which audio arrived, in which order, with nothing lost or duplicated
  (:func:`expected_transcript` computes the transcript a client should see for given bytes).
* :class:`ScriptTranscriber` returns scripted lines, so demos show readable text.

Contract (relied on by the emulator to keep OpenAI's rule that deltas concatenate exactly to the
final ``completed.transcript``, docs/protocol.md §7 D.25): the full transcript of an item is the
concatenation of everything :meth:`TranscriberItem.feed` and :meth:`TranscriberItem.finish`
returned for it.
"""

from __future__ import annotations

import heapq
import threading
import zlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = [
    "BYTES_PER_MS_PCM16_24K",
    "BlockCrcTranscriber",
    "ScriptTranscriber",
    "Transcriber",
    "TranscriberItem",
    "expected_transcript",
]

BYTES_PER_MS_PCM16_24K = 48
"""Bytes per millisecond of ``audio/pcm`` (16-bit mono at 24 kHz, docs/protocol.md §3.1)."""


@runtime_checkable
class TranscriberItem(Protocol):
    """The transcription of one item (one committed turn) in progress.

    The emulator calls :meth:`feed` with each piece of the item's audio as it arrives (in order,
    exactly the bytes that end up committed), then :meth:`finish` once at commit. An item may also
    be abandoned (buffer cleared, connection lost); the emulator then calls ``discard()`` if the
    object has such a method, and never ``finish``.
    """

    def feed(self, audio: bytes) -> str:
        """Take more audio of this item; return the text newly available for it (may be "")."""
        ...

    def finish(self) -> str:
        """The item was committed: return the rest of its text (may be "")."""
        ...


@runtime_checkable
class Transcriber(Protocol):
    """A source of transcripts: one :class:`TranscriberItem` per item of audio."""

    def start_item(self) -> TranscriberItem:
        """Begin transcribing a new item (called when its first audio arrives)."""
        ...


def _block_token(block: bytes | memoryview) -> str:
    return f"{zlib.crc32(block):08x} "


def _tail_token(tail: bytes | memoryview) -> str:
    return f"+{len(tail)}:{zlib.crc32(tail):08x}"


def expected_transcript(audio: bytes, block_ms: int = 100) -> str:
    """The transcript :class:`BlockCrcTranscriber` produces for an item of exactly ``audio``.

    One ``"<crc32 as 8 hex digits> "`` token per complete ``block_ms`` block (pcm16 at 24 kHz:
    4,800 bytes per 100 ms), in order, then ``"+<tail length>:<crc32 of the tail>"`` for the
    partial block left over (``"+0:00000000"`` when there is none).
    """
    block = block_ms * BYTES_PER_MS_PCM16_24K
    view = memoryview(audio)
    n_full = len(audio) // block
    parts = [_block_token(view[i * block : (i + 1) * block]) for i in range(n_full)]
    parts.append(_tail_token(view[n_full * block :]))
    return "".join(parts)


class _BlockCrcItem:
    """One item of :class:`BlockCrcTranscriber`: emits a token per complete block as it fills."""

    __slots__ = ("_block", "_pending")

    def __init__(self, block: int) -> None:
        self._block = block
        self._pending = bytearray()

    def feed(self, audio: bytes) -> str:
        self._pending += audio
        block = self._block
        n_full = len(self._pending) // block
        if n_full == 0:
            return ""
        view = memoryview(self._pending)
        try:
            text = "".join(_block_token(view[i * block : (i + 1) * block]) for i in range(n_full))
        finally:
            view.release()  # a live view would forbid resizing the bytearray below
        del self._pending[: n_full * block]
        return text

    def finish(self) -> str:
        text = _tail_token(bytes(self._pending))
        self._pending.clear()
        return text


class BlockCrcTranscriber:
    """The default transcriber: a transcript that is a pure function of the item's exact bytes.

    Each complete ``block_ms`` block of the item's audio (4,800 bytes per 100 ms of pcm16 at
    24 kHz) becomes the token ``f"{zlib.crc32(block):08x} "`` as soon as it has arrived (so
    streaming models emit it as a pre-commit delta), and the commit adds the tail token
    ``f"+{len(tail)}:{zlib.crc32(tail):08x}"``. Compare with :func:`expected_transcript` to prove
    that no audio was lost, duplicated or reordered.
    """

    def __init__(self, block_ms: int = 100) -> None:
        """Create a transcriber with ``block_ms`` milliseconds per token (pcm16 24 kHz bytes)."""
        if block_ms <= 0:
            raise ValueError("block_ms must be positive")
        self.block_ms = block_ms
        self.block_bytes = block_ms * BYTES_PER_MS_PCM16_24K

    def start_item(self) -> TranscriberItem:
        """Begin a new item."""
        return _BlockCrcItem(self.block_bytes)


class _ScriptItem:
    """One item of :class:`ScriptTranscriber`: releases its line word by word as audio arrives."""

    __slots__ = ("_bytes_per_word", "_fed", "_index", "_owner", "_released", "_words")

    def __init__(self, owner: ScriptTranscriber, index: int, line: str) -> None:
        self._owner = owner
        self._index = index
        # keep each word's trailing space, so released words concatenate to the line exactly
        self._words = line.split(" ")
        self._words = [w + " " for w in self._words[:-1]] + [self._words[-1]]
        self._released = 0
        self._fed = 0
        self._bytes_per_word = owner.word_ms * BYTES_PER_MS_PCM16_24K

    def feed(self, audio: bytes) -> str:
        self._fed += len(audio)
        # never release the last word before the commit: finish() always has something to add
        due = min(self._fed // self._bytes_per_word, len(self._words) - 1)
        if due <= self._released:
            return ""
        text = "".join(self._words[self._released : due])
        self._released = due
        return text

    def finish(self) -> str:
        text = "".join(self._words[self._released :])
        self._released = len(self._words)
        self._owner._commit(self._index)
        return text

    def discard(self) -> None:
        self._owner._release(self._index)


class ScriptTranscriber:
    """Scripted transcripts for demos: the i-th committed item is transcribed as ``lines[i]``.

    Lines are handed out in the order items *start* (first audio after a commit or clear), across
    all sessions of the emulator; an item that is abandoned (buffer cleared, connection dropped)
    gives its line back, so the next item to start takes it and the i-th committed item still
    reads ``lines[i]`` in the usual one-turn-at-a-time case. Past the end of ``lines`` items are
    transcribed as "" (as silence would be), so trailing commits print nothing.

    For models that stream before the commit, one word is released per ``word_ms`` of audio fed
    (300 ms by default, pcm16 at 24 kHz), keeping at least the last word for the commit; so
    pre-commit deltas always concatenate to the final line.
    """

    def __init__(self, lines: Sequence[str], word_ms: int = 300) -> None:
        """Create a transcriber for ``lines``, releasing one word per ``word_ms`` of audio."""
        if word_ms <= 0:
            raise ValueError("word_ms must be positive")
        self.lines = list(lines)
        self.word_ms = word_ms
        self._next = 0
        self._free: list[int] = []  # line indices given back by abandoned items (a min-heap)
        self._committed = 0
        # the CLI serves one event loop, but users may share a transcriber between emulators
        self._lock = threading.Lock()

    @property
    def committed(self) -> int:
        """How many items have been committed (finished) so far."""
        return self._committed

    def start_item(self) -> TranscriberItem:
        """Begin a new item, taking the lowest line index not yet used."""
        with self._lock:
            if self._free:
                index = heapq.heappop(self._free)
            else:
                index = self._next
                self._next += 1
        line = self.lines[index] if index < len(self.lines) else ""
        return _ScriptItem(self, index, line)

    def _commit(self, index: int) -> None:
        with self._lock:
            self._committed += 1

    def _release(self, index: int) -> None:
        with self._lock:
            heapq.heappush(self._free, index)
