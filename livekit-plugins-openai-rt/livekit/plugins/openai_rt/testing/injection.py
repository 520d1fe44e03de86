"""The fault plan applied to live connections: drops, stalls, injected errors, frames and closes.

:class:`~.server.Emulator` calls :func:`check_faults` after every client frame and, while the plan
has time-triggered rules, every 10 ms; its writer calls :func:`delay_session_updated` before a
``session.updated``. What each rule means is in :mod:`.faults`; the connection carries which rules
have fired (:class:`~.connection.Connection`).
"""

from __future__ import annotations

import asyncio
import random

from .connection import BinaryFrame, Connection, RawFrame
from .faults import (
    MALFORMED_FRAME,
    UNKNOWN_EVENT_TYPE,
    CloseWith,
    FaultPlan,
    SendBinary,
    SendError,
    Stall,
)
from .schema import ApiError

__all__ = ["check_faults", "delay_session_updated"]

OnceRule = Stall | SendError | SendBinary | CloseWith
"""The fault rules that fire once per connection when their trigger is reached."""


def check_faults(conn: Connection, plan: FaultPlan) -> None:
    """Apply every rule of ``plan`` whose trigger ``conn`` has reached."""
    session = conn.session
    if plan.is_idle() or session.closing or conn.finished or conn.dropped:
        return
    index = conn.record.index
    age = conn.loop.time() - conn.t0
    nbytes = conn.record.appended_bytes

    if plan.applies_to(plan.connections, index):
        if (plan.drop_after_seconds is not None and age >= plan.drop_after_seconds) or (
            plan.drop_after_bytes is not None and nbytes >= plan.drop_after_bytes
        ):
            conn.drop()
            return
        for name, threshold in (
            ("malformed", plan.malformed_json_after_bytes),
            ("unknown", plan.unknown_event_after_bytes),
        ):
            key = f"{name}:{threshold}"
            if threshold is not None and nbytes >= threshold and key not in conn.fired:
                conn.fired.append(key)
                if name == "malformed":
                    conn.out.put_nowait(RawFrame(MALFORMED_FRAME))
                else:
                    event = {"type": UNKNOWN_EVENT_TYPE, "note": "fault injection"}
                    conn.deliver(session.emit(event))

    rd = plan.drop_at_random
    if rd is not None and plan.applies_to(rd.connections, index):
        if conn.random_drop_rule is not rd:
            conn.random_drop_rule = rd
            rng = random.Random(rd.seed * 1_000_003 + index)
            conn.random_drop_at = rng.randint(rd.min_bytes, rd.max_bytes)
        if nbytes >= conn.random_drop_at:
            conn.drop()
            return

    def fires(rule: OnceRule | None) -> bool:
        """A once-per-connection rule for this connection whose trigger is reached (marked
        fired)."""
        if rule is None or not plan.applies_to(rule.connections, index):
            return False
        if conn.was_fired(rule):
            return False
        after_seconds, after_bytes = rule.after_seconds, rule.after_bytes
        if after_seconds is not None or after_bytes is not None:
            if not (after_seconds is not None and age >= after_seconds) and not (
                after_bytes is not None and nbytes >= after_bytes
            ):
                return False
        conn.fired.append(rule)
        return True

    stall = plan.stall
    if stall is not None and fires(stall):
        conn.read_stalled = conn.read_stalled or stall.read
        conn.answer_stalled = conn.answer_stalled or stall.answer
    err = plan.send_error
    if err is not None and fires(err):
        conn.deliver(session.emit_error(ApiError(err.code, err.message, type=err.type)))
        if err.close_code is not None:
            reason = err.close_reason or f"{err.type}.{err.code}"
            conn.deliver(session.close(err.close_code, reason))
            return
    binary = plan.send_binary
    if binary is not None and fires(binary):
        conn.out.put_nowait(BinaryFrame(binary.size))
    close = plan.close_with
    if close is not None and fires(close):
        conn.deliver(session.close(close.code, close.reason))


async def delay_session_updated(conn: Connection, plan: FaultPlan, never: asyncio.Event) -> None:
    """The fault plan's ``delay_session_updated``: once per connection, hold the writer."""
    rule = plan.delay_session_updated
    if rule is None or conn.was_fired(rule):
        return
    if not plan.applies_to(rule.connections, conn.record.index):
        return
    conn.fired.append(rule)
    if rule.seconds is None:
        await never.wait()
    else:
        await asyncio.sleep(rule.seconds)
