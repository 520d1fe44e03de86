"""Transcription output (docs/protocol.md §7 D): what each model sends for an item, and when.

The builders (:func:`delta_event`, :func:`completed_event`, …) make the events of one item from
the model's :class:`~.rules.ModelRules`. :class:`TranscriptOutput` runs them for one session: it
feeds the item's audio to the transcriber as it is buffered, streams deltas before the commit
for models that do, and after each commit emits the item's completion group, now or after
``completed_delay``, applying the fault plan's failed and out-of-order completions.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .audio import new_id
from .outbox import Outbox, Timed
from .records import EmulatedItem
from .rules import AUDIO_FORMATS, INCLUDE_LOGPROBS, ModelRules
from .schema import Json
from .settings import SessionHost
from .transcribers import TranscriberItem

__all__ = [
    "TranscriptOutput",
    "completed_event",
    "delta_event",
    "delta_pieces",
    "failed_event",
    "item_object",
    "logprobs",
    "segment_event",
    "usage",
]

_WORD_RE = re.compile(r"\s*\S+\s*|\s+")

_PREFIX = "conversation.item.input_audio_transcription"


def logprobs(text: str) -> list[Json]:
    """Deterministic logprobs of ``text``: one ``{token, logprob, bytes}`` entry holding it all.

    The shape is docs/protocol.md §7 D.27 [V] SDK log_prob_properties.py; the values are [I].
    """
    if not text:
        return []
    return [
        {
            "token": text,
            "logprob": -round(0.001 * len(text), 6),
            "bytes": list(text.encode("utf-8")),
        }
    ]


def delta_pieces(rules: ModelRules, rest: str) -> list[str]:
    """How the text not yet sent as a delta is cut into post-commit deltas.

    Per model (docs/protocol.md §7 D.25): whisper-1 one delta with everything; gpt-4o-* word
    deltas; streaming models the unsent rest in one delta, or none if nothing is left.
    """
    if rules.deltas == "single":
        return [rest]
    if rules.deltas == "several":
        return _WORD_RE.findall(rest)
    return [rest] if rest else []


def delta_event(item_id: str, text: str, with_logprobs: bool) -> Json:
    """A ``…input_audio_transcription.delta`` of ``text`` for ``item_id``."""
    event: Json = {
        "type": f"{_PREFIX}.delta",
        "item_id": item_id,
        "content_index": 0,
        "delta": text,
    }
    if with_logprobs:
        event["logprobs"] = logprobs(text)
    return event


def failed_event(item_id: str) -> Json:
    """``…input_audio_transcription.failed`` for ``item_id``.

    The shape is verbatim from docs/protocol.md §4.1.7 [O] openai-realtime-console#46 (the
    fault plan sends it, docs/protocol.md §7 D.30).
    """
    return {
        "type": f"{_PREFIX}.failed",
        "item_id": item_id,
        "content_index": 0,
        "error": {
            "type": "server_error",
            "code": None,
            "message": f"Input transcription failed for item '{item_id}'.",
            "param": None,
        },
    }


def segment_event(item_id: str, counter: int, seconds: float, text: str) -> Json:
    """The diarization segment of an item, sent before ``completed`` (docs/protocol.md §7 D.29).

    The event is [V] SDK; one segment per item, speakers alternating A/B with the session's
    ``counter``, times relative to the item, are [I].
    """
    return {
        "type": f"{_PREFIX}.segment",
        "item_id": item_id,
        "content_index": 0,
        "id": f"seg_{counter:04d}",
        "speaker": "A" if counter % 2 else "B",
        "start": 0.0,
        "end": round(seconds, 3),
        "text": text,
    }


def completed_event(
    item_id: str,
    transcript: str,
    rules: ModelRules,
    seconds: float,
    transcription: Json,
    with_logprobs: bool,
) -> Json:
    """``…input_audio_transcription.completed`` of an item of ``seconds`` of audio."""
    completed: Json = {
        "type": f"{_PREFIX}.completed",
        "item_id": item_id,
        "content_index": 0,
        "transcript": transcript,
        "usage": usage(rules, seconds, transcription, transcript),
    }
    if with_logprobs:
        completed["logprobs"] = logprobs(transcript)
    if rules.reports_languages:
        # gpt-transcribe reports languages (docs/protocol.md §7 D.28 [V] SDK): the configured
        # language, else the first of `languages`, else English [I].
        languages = transcription.get("languages")
        code = transcription.get("language") or (languages[0] if languages else None) or "en"
        completed["languages"] = [{"code": code}]
    return completed


def usage(rules: ModelRules, seconds: float, transcription: Json, transcript: str) -> Json:
    """The ``usage`` of ``completed`` for ``seconds`` of audio (docs/protocol.md §7 D.26).

    Duration for per-minute models, tokens for token-priced ones [I]; token counts are a
    deterministic function of audio and text [I]: 10 audio tokens per second, 1 text token per 4
    characters of prompt or transcript.
    """
    if rules.usage == "duration":
        return {"type": "duration", "seconds": round(seconds, 6)}
    audio_tokens = math.ceil(seconds * 10)
    prompt = transcription.get("prompt") or ""
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


def item_object(item_id: str, transcript: str | None) -> Json:
    """The user message item of ``conversation.item.added`` / ``.done`` (audio bytes omitted).

    docs/protocol.md §4.1.6 [I].
    """
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


# ---------------------------------------------------------------------------------------------
# The output of one session
# ---------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """The transcription of the not-yet-committed item."""

    item: TranscriberItem
    streamed: list[str] = field(default_factory=list)  # text already sent as pre-commit deltas
    held: list[str] = field(default_factory=list)  # text recognised but not sent yet


class TranscriptOutput:
    """The transcription events of one session, on time and in order.

    Args:
        outbox: where events go (shared with the session).
        host: the server-wide settings (transcriber, model rules, delay, fault plan), read live.
        next_item_id: the preallocated id of the next item (the session's); streamed deltas
            carry it before the commit.
    """

    def __init__(self, outbox: Outbox, host: SessionHost, next_item_id: Callable[[], str]) -> None:
        """Create the output of a session that has no audio yet."""
        self._outbox = outbox
        self._host = host
        self._next_item_id = next_item_id
        self._pending: _Pending | None = None
        # Each item's completion waits for the previous one's [I]: the last one still scheduled.
        self._last_final: Timed | None = None
        self._held: list[Json] | None = None  # a completion held back by reorder_completed
        self._held_timer: Timed | None = None
        self._segment_counter = 0

    def feed(self, data: bytes, buffered: bytearray, config: Json) -> None:
        """``data`` entered the input buffer, which now holds ``buffered``; transcription is on.

        The item's transcriber sees all of its audio, even what arrived before transcription was
        configured.
        """
        if self._pending is None:
            self._pending = _Pending(self._host.transcriber.start_item())
            data = bytes(buffered)
        pending = self._pending
        text = pending.item.feed(data)
        if not text:
            return
        rules = self._host.model_rules[config["audio"]["input"]["transcription"]["model"]]
        pending.held.append(text)
        if rules.deltas == "stream":
            # gpt-realtime-whisper / gpt-live-transcribe stream deltas while audio arrives
            # (docs/protocol.md §7 D.25 [V] guide), on the preallocated next item id
            # (docs/protocol.md §4.3 [I]).
            text = "".join(pending.held)
            pending.held.clear()
            pending.streamed.append(text)
            with_logprobs = _include_logprobs(config, rules)
            self._outbox.emit(delta_event(self._next_item_id(), text, with_logprobs))

    def discard(self) -> None:
        """The buffered audio will never be transcribed (cleared, transcription off, closed)."""
        pending, self._pending = self._pending, None
        _discard(pending)

    def stop(self) -> None:
        """The connection has ended: give back the pending item, forget held completions."""
        self.discard()
        self._last_final = None
        self._held = None
        self._held_timer = None

    def commit(self, item: EmulatedItem, audio: bytes, config: Json, now: float) -> None:
        """``item`` was committed with exactly ``audio`` at ``now``: send its transcription.

        Post-commit deltas are spread evenly over ``completed_delay``; no event of this item goes
        out before the previous item's completion [I].
        """
        host = self._host
        tr: Json = config["audio"]["input"]["transcription"]
        pending, self._pending = self._pending, None
        if pending is None:
            pending = _Pending(host.transcriber.start_item())
            pending.held.append(pending.item.feed(audio))
        rules = host.model_rules[tr["model"]]
        rest = "".join(pending.held) + pending.item.finish()
        transcript = "".join(pending.streamed) + rest
        failed = host.faults.fails_item(item.index)
        with_logprobs = _include_logprobs(config, rules)
        deltas: list[Json] = []
        if not failed:
            deltas = [
                delta_event(item.item_id, piece, with_logprobs)
                for piece in delta_pieces(rules, rest)
            ]
        bytes_per_ms = AUDIO_FORMATS[config["audio"]["input"]["format"]["type"]][0]
        seconds = len(audio) / (bytes_per_ms * 1000)
        final = self._final_events(item, tr, rules, transcript, seconds, failed, with_logprobs)
        complete = functools.partial(self._complete, item, final, failed, transcript)
        delay = host.completed_delay
        previous = self._last_final
        if previous is not None and previous.done:
            previous = None
        if delay <= 0 and previous is None:
            for event in deltas:
                self._outbox.emit(event)
            complete(now)
            return
        floor = previous.due if previous is not None else now
        steps = len(deltas) + 1
        for i, event in enumerate(deltas):
            due = max(now + delay * (i + 1) / steps, floor)
            self._outbox.at(due, functools.partial(self._emit_later, event))
        self._last_final = self._outbox.at(max(now + delay, floor), complete)

    def _emit_later(self, event: Json, now: float) -> None:
        self._outbox.emit(event)

    def _final_events(
        self,
        item: EmulatedItem,
        tr: Json,
        rules: ModelRules,
        transcript: str,
        seconds: float,
        failed: bool,
        with_logprobs: bool,
    ) -> list[Json]:
        """The completion group: segment and completed, or failed; then ``item.done``."""
        events: list[Json] = []
        if failed:
            # Fault: failed instead of completed (docs/protocol.md §7 D.30).
            events.append(failed_event(item.item_id))
        else:
            if rules.diarize and transcript:
                self._segment_counter += 1
                events.append(
                    segment_event(item.item_id, self._segment_counter, seconds, transcript)
                )
            events.append(
                completed_event(item.item_id, transcript, rules, seconds, tr, with_logprobs)
            )
        if self._host.emit_item_added:
            events.append(
                {
                    "type": "conversation.item.done",
                    "previous_item_id": item.previous_item_id,
                    "item": item_object(item.item_id, None if failed else transcript),
                }
            )
        return events

    def _complete(
        self, item: EmulatedItem, final: list[Json], failed: bool, transcript: str, now: float
    ) -> None:
        """Send the completion group, applying the reorder fault; update the item's record."""
        if failed:
            item.status = "failed"
        else:
            item.status = "completed"
            item.transcript = transcript
            item.usage = next(
                (ev["usage"] for ev in final if ev["type"] == f"{_PREFIX}.completed"), None
            )
        faults = self._host.faults
        if faults.reorder_completed or self._held is not None:
            # Completions of different items may arrive out of order (docs/protocol.md §7 D.31
            # [V] guide): hold this one until the next item completes, then send both swapped.
            if self._held is None:
                self._held = final
                self._held_timer = self._outbox.at(
                    now + faults.reorder_hold_seconds, self._flush_held
                )
                return
            held, self._held = self._held, None
            if self._held_timer is not None:
                self._outbox.cancel(self._held_timer)
                self._held_timer = None
            final = final + held
        for event in final:
            self._outbox.emit(event)
        if faults.stray_deltas and not failed:
            # a delta for an item id this session never commits (the fault plan's phantom item)
            self._outbox.emit(delta_event(new_id("item_"), "phantom", False))

    def _flush_held(self, now: float) -> None:
        # The held completion had no follower within reorder_hold_seconds: send it alone.
        held, self._held = self._held, None
        self._held_timer = None
        for event in held or ():
            self._outbox.emit(event)


def _include_logprobs(config: Json, rules: ModelRules) -> bool:
    include = config.get("include") or []
    return rules.logprobs and INCLUDE_LOGPROBS in include


def _discard(pending: _Pending | None) -> None:
    # An abandoned item gives back what it holds (e.g. ScriptTranscriber's line).
    if pending is not None:
        discard = getattr(pending.item, "discard", None)
        if callable(discard):
            discard()
