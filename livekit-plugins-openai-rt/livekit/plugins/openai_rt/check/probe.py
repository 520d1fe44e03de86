"""The sessions the live check opens, each recorded as a trace.

For each model: a *stream* session that does what the plugin does (its own ``session.update``,
the sample's audio, a commit, the result), then commits an empty buffer to see the error; and an
*options* session that sends one probing ``session.update`` per option and records the answer
(a refusal may close the socket: the next probe opens a new one). The sessions go through the
plugin's own URL, credentials and configuration (:class:`Target`), on the plugin's transport
(:class:`~..connection.Connection`). Nothing is judged here: :mod:`.assumptions` reads the
traces.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from .. import protocol as p
from ..auth import Credentials, CredentialsError
from ..connection import Binary, Closed, Connection, HandshakeRefused, Text, TransportError
from ..models import ModelSpec
from ..stt import STT
from .trace import TraceRecorder

CHUNK_SECONDS = 0.1
"""The check appends its audio in 100 ms pieces."""

UPDATE_ID = "check_update"
"""``event_id`` of the stream session's ``session.update`` (the plugin's own configuration)."""

COMMIT_ID = "check_commit"
"""``event_id`` of the commit of the sample's audio."""

EMPTY_COMMIT_ID = "check_commit_empty"
"""``event_id`` of the commit of an empty buffer, sent to see the error it gets."""

PROBE_ID_PREFIX = "check_probe_"
"""Prefix of the ``event_id`` of each option probe (then the option's name)."""

RESULT_TYPES = (
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
)
"""The events that end an item."""

Event = dict[str, Any]
"""A client or server event, as parsed JSON."""


@dataclass(frozen=True)
class OptionProbe:
    """A ``session.update`` that sets one option on top of the plugin's own configuration.

    Attributes:
        name: the option (``"delay"``): the probe's ``event_id`` is ``check_probe_<name>``.
        section: the docs/protocol.md section that says which models take it.
        apply: changes ``session.audio.input`` of the update to set the option.
        expected: whether the model table says the model takes it; None when the table does
            not say (the check reports what the server did without judging it).
    """

    name: str
    section: str
    apply: Callable[[Event], None]
    expected: Callable[[ModelSpec], bool | None]


@dataclass(frozen=True)
class Target:
    """One model as the plugin would use it: URL, credentials, configuration."""

    model: str
    spec: ModelSpec
    url: str
    credentials: Credentials
    update: Event

    @classmethod
    def from_stt(cls, stt: STT) -> Target:
        """What ``stt``'s streams would connect to and send (with client commits)."""
        opts = stt.options
        return cls(
            model=opts.model,
            spec=opts.spec,
            url=p.realtime_url(opts.base_url, model=opts.model, model_in_url=opts.model_in_url),
            credentials=stt._credentials,
            update=p.session_update(opts.session_config(), event_id=UPDATE_ID),
        )


class ProbeFailed(Exception):
    """A session could not be opened (refused, unreachable, credentials); already recorded."""


class ProbeSocket:
    """An open socket whose every frame in and out is recorded; server events are kept so the
    script can wait for them."""

    def __init__(self, conn: Connection, recorder: TraceRecorder) -> None:
        self._conn = conn
        self._recorder = recorder
        self.events: list[Event] = []
        self.closed: tuple[int | None, str] | None = None
        self._changed = asyncio.Event()
        self._receiver = asyncio.create_task(self._receive())

    @classmethod
    async def open(
        cls,
        http: aiohttp.ClientSession,
        target: Target,
        recorder: TraceRecorder,
        *,
        timeout: float,
    ) -> ProbeSocket:
        """Open a socket to ``target`` (fresh credentials); raises :class:`ProbeFailed`."""
        try:
            headers = await target.credentials.headers()
        except CredentialsError as e:
            recorder.close(None, f"no credentials: {e.message}", by="client")
            raise ProbeFailed(e.message) from None
        for name in ("Authorization", "api-key"):
            value = headers.get(name, "")
            recorder.add_secret(value.removeprefix("Bearer ").strip())
        recorder.open(target.url)
        try:
            conn = await Connection.open(
                http, target.url, headers=headers, timeout=timeout, heartbeat=None
            )
        except HandshakeRefused as e:
            recorder.refused(e.status, e.message)
            raise ProbeFailed(e.message) from None
        except TransportError as e:
            recorder.close(None, e.message, by="client")
            raise ProbeFailed(e.message) from None
        return cls(conn, recorder)

    async def _receive(self) -> None:
        while True:
            frame = await self._conn.receive()
            if isinstance(frame, Text):
                event = self._recorder.server(frame.data)
                if event is not None:
                    self.events.append(event)
            elif isinstance(frame, Binary):
                self._recorder.server(f'{{"type": "<binary>", "size": {frame.size}}}')
            else:
                assert isinstance(frame, Closed)
                self.closed = (frame.code, frame.reason)
                self._recorder.close(frame.code, frame.reason, by="server")
                self._changed.set()
                return
            self._changed.set()

    async def send(self, event: Mapping[str, Any]) -> None:
        """Send a client event (recorded first; a send on a dead socket is not an error here:
        the close is recorded by the receiver)."""
        self._recorder.client(event)
        try:
            await self._conn.send(p.encode(event))
        except TransportError:
            pass

    async def send_audio(self, pcm: bytes) -> None:
        """Append ``pcm`` (recorded by size)."""
        self._recorder.client({"type": "input_audio_buffer.append", "audio_bytes": len(pcm)})
        try:
            await self._conn.send(p.append_message(pcm))
        except TransportError:
            pass

    async def wait(
        self, predicate: Callable[[Event], bool], *, timeout: float, start: int = 0
    ) -> Event | None:
        """The first event from index ``start`` on that satisfies ``predicate``, waiting up to
        ``timeout`` seconds; None when it does not come or the socket closes."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events[start:]:
                if predicate(event):
                    return event
            start = len(self.events)
            remaining = deadline - time.monotonic()
            if self.closed is not None or remaining <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    async def settle(self, *, quiet: float, timeout: float) -> None:
        """Wait until the server has sent nothing for ``quiet`` seconds (at most ``timeout``)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            seen = len(self.events)
            await self.wait(lambda _: True, timeout=min(quiet, remaining), start=seen)
            if len(self.events) == seen:
                return

    async def aclose(self) -> None:
        """Close the socket (recorded as the client's close when the server had not)."""
        self._receiver.cancel()
        await asyncio.gather(self._receiver, return_exceptions=True)
        await self._conn.close()
        if self.closed is None:
            self._recorder.close(1000, "", by="client")
            self.closed = (1000, "")


def _of_type(*types: str) -> Callable[[Event], bool]:
    return lambda event: event.get("type") in types


def _answer_to(event_id: str) -> Callable[[Event], bool]:
    """``session.updated``, or an ``error`` that names ``event_id`` or no event at all."""

    def match(event: Event) -> bool:
        if event.get("type") == "session.updated":
            return True
        err = event.get("error")
        return (
            event.get("type") == "error"
            and isinstance(err, dict)
            and err.get("event_id") in (event_id, None)
        )

    return match


async def run_stream(
    http: aiohttp.ClientSession,
    target: Target,
    pcm: bytes,
    recorder: TraceRecorder,
    *,
    pace: float,
    timeout: float,
    grace: float,
) -> None:
    """The stream session: configure as the plugin does, send ``pcm`` (at ``pace`` times real
    time; 0: at once), let the server's answers settle, commit it, wait for its result, then
    commit an empty buffer."""
    try:
        sock = await ProbeSocket.open(http, target, recorder, timeout=timeout)
    except ProbeFailed:
        return
    try:
        await sock.wait(_of_type("session.created"), timeout=timeout)
        mark = len(sock.events)
        await sock.send(target.update)
        answer = await sock.wait(_answer_to(UPDATE_ID), timeout=timeout, start=mark)
        if answer is None or answer.get("type") != "session.updated":
            return
        step = int(CHUNK_SECONDS * p.PCM16.bytes_per_second)
        for offset in range(0, len(pcm), step):
            await sock.send_audio(pcm[offset : offset + step])
            await asyncio.sleep(CHUNK_SECONDS / pace if pace > 0 else 0)
        # what the server streams while the audio arrives comes in before the commit goes out
        await sock.settle(quiet=grace, timeout=timeout)
        mark = len(sock.events)
        await sock.send({"type": "input_audio_buffer.commit", "event_id": COMMIT_ID})
        result = await sock.wait(_of_type(*RESULT_TYPES), timeout=timeout, start=mark)
        if result is None:
            return
        # a committed that comes after its result is still recorded
        await sock.wait(_of_type("input_audio_buffer.committed"), timeout=grace, start=mark)
        mark = len(sock.events)
        await sock.send({"type": "input_audio_buffer.commit", "event_id": EMPTY_COMMIT_ID})
        await sock.wait(_answer_to(EMPTY_COMMIT_ID), timeout=timeout, start=mark)
        await sock.wait(lambda _: False, timeout=grace)  # does the session stay open?
    finally:
        await sock.aclose()


async def run_options(
    http: aiohttp.ClientSession,
    target: Target,
    probes: Sequence[OptionProbe],
    recorder: TraceRecorder,
    *,
    timeout: float,
) -> None:
    """The options session: one probing ``session.update`` per option, each answered before
    the next; a socket the server closed is replaced for the next probe."""
    sock: ProbeSocket | None = None
    try:
        for probe in probes:
            if sock is None or sock.closed is not None:
                if sock is not None:
                    await sock.aclose()
                try:
                    sock = await ProbeSocket.open(http, target, recorder, timeout=timeout)
                except ProbeFailed:
                    return
                await sock.wait(_of_type("session.created"), timeout=timeout)
            event_id = PROBE_ID_PREFIX + probe.name
            update = copy.deepcopy(target.update)
            update["event_id"] = event_id
            probe.apply(update["session"]["audio"]["input"])
            mark = len(sock.events)
            await sock.send(update)
            await sock.wait(_answer_to(event_id), timeout=timeout, start=mark)
    finally:
        if sock is not None:
            await sock.aclose()
