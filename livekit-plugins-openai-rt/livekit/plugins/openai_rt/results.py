"""What the server answered, put in order: interim text per item, results that arrive before
their ``committed``, and finals released in commit order with their usage.

Part of the sans-I/O session core (:mod:`.session` owns one :class:`Results`). Ordering follows
the guide's advice (docs/protocol.md §4.1.5): completions of different turns may arrive in any
order; ``committed`` (with ``previous_item_id``) gives the order, which is the order of the
stream's own commits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from . import protocol as p
from .ledger import LOST_AUDIO, AudioLedger, Segment
from .log import logger
from .records import Output, Transcript, UsageRecord

MAX_PARKED_RESULTS = 64
"""Results for item ids no ``committed`` named yet, kept until one does (bounded)."""

RELEASED_IDS_KEPT = 64
"""Item ids already released, remembered to drop late deltas for them (bounded)."""

Result = p.TranscriptCompleted | p.TranscriptFailed


class Results:
    """The answers side of a session.

    Args:
        ledger: the session's audio ledger (segments are what results attach to).
        emit: where transcripts and usage records go.
    """

    def __init__(self, ledger: AudioLedger, emit: Callable[[Output], None]) -> None:
        self._ledger = ledger
        self._emit = emit
        self.language = ""
        """The configured language, for transcripts the server does not tag."""
        self._texts: dict[str, str] = {}  # interim text per in-flight item
        self._open_item: tuple[str, str] | None = None  # (id, text) of the item not committed
        self._parked: dict[str, Result] = {}
        self._released: deque[str] = deque(maxlen=RELEASED_IDS_KEPT)

    @property
    def held_texts(self) -> int:
        """Items whose interim text is held: the in-flight ones and at most one open item."""
        return len(self._texts) + (self._open_item is not None)

    def new_socket(self) -> None:
        """Item ids are per socket: forget the old socket's."""
        self._texts.clear()
        self._open_item = None
        self._parked.clear()

    def delta(self, ev: p.TranscriptDelta, *, streams_before_commit: bool) -> bool:
        """A transcript delta: emits the item's interim text. True when it is about a result
        the socket owes (the server is working on it)."""
        seg = self._ledger.find(ev.item_id)
        owed = False
        if seg is not None:
            if seg.done:
                return False
            owed = True
            text = self._texts.get(ev.item_id, "") + ev.delta
            self._texts[ev.item_id] = text
        elif ev.item_id in self._released or not streams_before_commit:
            # a late delta for a released item, or one for an item this stream never committed
            return False
        else:
            # the item the server builds from the open audio (streaming models): one slot
            if self._open_item is None or self._open_item[0] != ev.item_id:
                self._open_item = (ev.item_id, "")
            text = self._open_item[1] + ev.delta
            self._open_item = (ev.item_id, text)
        if text.strip():
            self._emit(
                Transcript(
                    "interim", ev.item_id, text, self.language, confidence=p.confidence(ev.logprobs)
                )
            )
        return owed

    def committed(
        self,
        item_id: str,
        *,
        previous_item_id: str | None = None,
        end_pos: int | None,
        server_commits: bool,
    ) -> bool:
        """``committed`` named an item. True when it is new (a repeat changes nothing).

        Client commits are answered in order, so an item answers the oldest commit waiting,
        unless its ``previous_item_id`` names an item this socket never saw committed while
        several commits wait: that item's ``committed`` never came, and it is the one that
        answers the oldest commit (previous_item_id orders items, docs/protocol.md §4.1.5).
        """
        if (
            previous_item_id is not None
            and end_pos is None
            and not server_commits
            and self._ledger.waiting_commits() >= 2
            and self._ledger.find(previous_item_id) is None
            and previous_item_id not in self._released
        ):
            self.committed(previous_item_id, end_pos=None, server_commits=False)
        seg = self._ledger.on_committed(item_id, end_pos=end_pos)
        if seg is None:
            return False
        if self._open_item is not None and self._open_item[0] == item_id:
            self._texts[item_id] = self._open_item[1]
            self._open_item = None
        parked = self._parked.pop(item_id, None)
        if parked is not None:
            self.result(parked, server_commits=server_commits)
        return True

    def result(self, ev: Result, *, server_commits: bool) -> bool:
        """A ``completed`` or ``failed`` item: releases what it unblocks. True when it answered
        a segment."""
        seg = self._ledger.find(ev.item_id)
        if seg is None:
            seg = self._bind_unnamed(ev, server_commits=server_commits)
            if seg is None:
                return False
        if seg.done:
            return False
        if isinstance(ev, p.TranscriptCompleted):
            seg.result = ev
        else:
            seg.failure = ev.error
            logger.warning(
                "transcription failed for one item (%s); the stream goes on",
                ev.error.message,
                extra={"item_id": p.clip(ev.item_id, p.MAX_SERVER_NAME), "code": ev.error.code},
            )
        self.release()
        return True

    def release(self) -> None:
        """Emit the final and usage of every segment whose turn came."""
        for seg in self._ledger.release():
            self._emit_final(seg)

    def _bind_unnamed(self, ev: Result, *, server_commits: bool) -> Segment | None:
        """A result for an item no ``committed`` named. If exactly one client commit waits for
        its ``committed``, the result is that commit's; otherwise it is parked until a
        ``committed`` names it (and the watchdog decides if none ever does)."""
        if ev.item_id in self._released:
            return None
        if not server_commits and self._ledger.waiting_commits() == 1:
            seg = self._ledger.oldest_waiting_commit()
            assert seg is not None
            seg.item_id = ev.item_id
            return seg
        if len(self._parked) < MAX_PARKED_RESULTS:
            self._parked[ev.item_id] = ev
        return None

    def _emit_final(self, seg: Segment) -> None:
        item_id = seg.item_id or ""
        if item_id:
            self._released.append(item_id)
            self._texts.pop(item_id, None)
        result = seg.result
        if result is not None and result.transcript.strip():
            self._emit(
                Transcript(
                    "final",
                    item_id,
                    result.transcript,
                    result.language or self.language,
                    start=seg.start / p.BYTES_PER_SECOND,
                    end=seg.end / p.BYTES_PER_SECOND,
                    confidence=p.confidence(result.logprobs),
                )
            )
        if seg.failure is LOST_AUDIO:
            return  # it never reached a server that transcribed it: nothing to bill
        usage = result.usage if result is not None else None
        if usage is None:
            self._emit(UsageRecord(item_id, seg.seconds))
            return
        self._emit(
            UsageRecord(
                item_id,
                usage.seconds if usage.kind == "duration" else seg.seconds,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                audio_tokens=usage.audio_tokens,
                text_tokens=usage.text_tokens,
            )
        )
