"""What the server answered, put in order: interim and preflight text per item, results that
arrive before their ``committed``, and finals released in commit order with their usage.

Part of the sans-I/O session core (:mod:`.session` owns one :class:`Results`). Ordering follows
the guide's advice (docs/protocol.md §4.1.5): completions of different turns may arrive in any
order; ``committed`` (with ``previous_item_id``) gives the order, which is the order of the
stream's own commits.

Preflight: a model that streams its text while the audio arrives (``streams_before_commit``,
§2.3) already holds most of an item's text when the client commits it. From that commit on, the
item's text is a *preflight* transcript (the LiveKit contract: stable enough to start an answer
on): emitted at the commit, again whenever a later delta of the same item changes it, then the
final. When the server's final text is the concatenation of the deltas (§7 D.25), the final
equals the last preflight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from . import protocol as p
from .ledger import LOST_AUDIO, AudioLedger, Segment
from .log import MAX_SERVER_NAME, clip, logger
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
        self.preflight = False
        """The model streams before the commit (its committed items' text is preflight)."""
        self._texts: dict[str, str] = {}  # text per in-flight item (named or tentative id)
        self._open_item: tuple[str, str] | None = None  # (id, text) of the item not committed
        # ids of open items a client commit took before a committed named them
        self._tentative: dict[str, Segment] = {}
        self._preflights: dict[str, str] = {}  # last preflight text per item id
        self._parked: dict[str, Result] = {}
        self._released: deque[str] = deque(maxlen=RELEASED_IDS_KEPT)
        # empty finals owed after the final of a segment (by seq): flushes that cleared audio
        self._empty_after: dict[int, int] = {}

    @property
    def held_texts(self) -> int:
        """Items whose interim text is held: the in-flight ones and at most one open item."""
        return len(self._texts) + (self._open_item is not None)

    def new_socket(self) -> None:
        """Item ids are per socket: forget the old socket's."""
        self._texts.clear()
        self._open_item = None
        self._tentative.clear()
        self._preflights.clear()
        self._parked.clear()

    def delta(self, ev: p.TranscriptDelta) -> bool:
        """A transcript delta: emits the item's interim (or preflight) text. True when it is
        about a result the socket owes (the server is working on it)."""
        seg = self._ledger.find(ev.item_id) or self._tentative.get(ev.item_id)
        if seg is not None:
            if seg.done:
                return False
            text = self._texts.get(ev.item_id, "") + ev.delta
            self._texts[ev.item_id] = text
            self._show(ev.item_id, text, seg, p.confidence(ev.logprobs))
            return seg.commit_issued or seg.item_id is not None
        if ev.item_id in self._released or not self.preflight:
            # a late delta for a released item, or one for an item this stream never committed
            return False
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
        return False

    def committing(self, seg: Segment) -> None:
        """The stream committed ``seg``: the open item's text so far is its text, and (for a
        model that streams before the commit) its first preflight transcript."""
        if not self.preflight or self._open_item is None:
            return
        item_id, text = self._open_item
        self._open_item = None
        self._tentative[item_id] = seg
        self._texts[item_id] = text
        self._show(item_id, text, seg)

    def cleared(self) -> None:
        """The open audio was dropped: the open item's text belonged to it."""
        self._open_item = None

    def refused(self, seg: Segment) -> None:
        """The server refused ``seg``'s commit and kept its audio for the next one: its item is
        the open one again."""
        for item_id, tentative in list(self._tentative.items()):
            if tentative is seg:
                del self._tentative[item_id]
                self._preflights.pop(item_id, None)
                self._open_item = (item_id, self._texts.pop(item_id, ""))

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
        tentative = next((k for k, v in self._tentative.items() if v is seg), None)
        if tentative is not None:
            del self._tentative[tentative]
            if tentative != item_id:  # the server named it otherwise: its text moves
                self._texts[item_id] = self._texts.pop(tentative, "")
                if tentative in self._preflights:
                    self._preflights[item_id] = self._preflights.pop(tentative)
        elif self._open_item is not None and self._open_item[0] == item_id:
            self._texts[item_id] = self._open_item[1]
            self._open_item = None
            if self._is_preflight(seg):
                self._show(item_id, self._texts[item_id], seg)
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
                extra={"item_id": clip(ev.item_id, MAX_SERVER_NAME), "code": ev.error.code},
            )
        self.release()
        return True

    def release(self) -> None:
        """Emit the final and usage of every segment whose turn came, each followed by the
        empty finals of the flushes that cleared their audio after it was committed."""
        for seg in self._ledger.release():
            self._emit_final(seg)
            for _ in range(self._empty_after.pop(seg.seq, 0)):
                self._emit(Transcript("final", "", "", self.language))

    def empty_final(self) -> None:
        """A flush cleared its audio: it is answered by an empty final, which comes after the
        finals of the turns committed before it (finals keep commit order)."""
        if not self._ledger.in_flight:
            self._emit(Transcript("final", "", "", self.language))
            return
        last = self._ledger.in_flight[-1].seq
        self._empty_after[last] = self._empty_after.get(last, 0) + 1

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

    def _is_preflight(self, seg: Segment) -> bool:
        return self.preflight and not seg.by_server

    def _show(self, item_id: str, text: str, seg: Segment, confidence: float = 0.0) -> None:
        """Emit an item's text: a preflight once the stream committed it (only when the text
        changed), else an interim."""
        if not text.strip():
            return
        if not self._is_preflight(seg):
            self._emit(Transcript("interim", item_id, text, self.language, confidence=confidence))
            return
        if self._preflights.get(item_id) == text:
            return
        self._preflights[item_id] = text
        fmt = self._ledger.format
        self._emit(
            Transcript(
                "preflight",
                item_id,
                text,
                self.language,
                start=fmt.seconds(seg.start),
                end=fmt.seconds(seg.end),
                confidence=confidence,
            )
        )

    def _emit_final(self, seg: Segment) -> None:
        item_id = seg.item_id or ""
        for tentative in [k for k, v in self._tentative.items() if v is seg]:
            del self._tentative[tentative]
            self._texts.pop(tentative, None)
            self._preflights.pop(tentative, None)
        if item_id:
            self._released.append(item_id)
            self._texts.pop(item_id, None)
            self._preflights.pop(item_id, None)
        fmt = self._ledger.format
        seconds = fmt.seconds(seg.nbytes)
        result = seg.result
        if result is not None and result.transcript.strip():
            self._emit(
                Transcript(
                    "final",
                    item_id,
                    result.transcript,
                    result.language or self.language,
                    start=fmt.seconds(seg.start),
                    end=fmt.seconds(seg.end),
                    confidence=p.confidence(result.logprobs),
                )
            )
        if seg.failure is LOST_AUDIO:
            return  # it never reached a server that transcribed it: nothing to bill
        usage = result.usage if result is not None else None
        if usage is None:
            self._emit(UsageRecord(item_id, seconds))
            return
        self._emit(
            UsageRecord(
                item_id,
                usage.seconds if usage.kind == "duration" else seconds,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                audio_tokens=usage.audio_tokens,
                text_tokens=usage.text_tokens,
            )
        )
