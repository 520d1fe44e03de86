"""The error policy: every failure the server can produce gets one action, from one table."""

from __future__ import annotations

import pytest

from livekit.plugins.openai_rt.errors import (
    POLICY,
    Action,
    classify_close,
    classify_error,
    classify_http_status,
)


@pytest.mark.parametrize(
    ("code", "type_", "configuring", "action"),
    [
        ("input_audio_buffer_commit_empty", "invalid_request_error", False, Action.REFUSED_COMMIT),
        ("session_expired", "invalid_request_error", False, Action.ROLL_OVER),
        (None, "server_error", False, Action.RECONNECT),
        ("server_error", None, False, Action.RECONNECT),
        ("invalid_model", "invalid_request_error", False, Action.FATAL),
        ("invalid_value", "invalid_request_error", True, Action.FATAL),
        ("unknown_parameter", "invalid_request_error", False, Action.FATAL),
        ("insufficient_quota", "insufficient_quota", False, Action.FATAL),
        ("invalid_api_key", "invalid_request_error", False, Action.FATAL),
        (None, "authentication_error", False, Action.FATAL),
        ("never_seen_before", "invalid_request_error", False, Action.WARN),
        ("never_seen_before", "invalid_request_error", True, Action.FATAL),
        (None, None, False, Action.WARN),
    ],
)
def test_error_events(
    code: str | None, type_: str | None, configuring: bool, action: Action
) -> None:
    verdict = classify_error(code, type_, configuring=configuring)
    assert verdict.action is action
    assert verdict.hint


@pytest.mark.parametrize(
    ("code", "reason", "action"),
    [
        (4000, "invalid_request_error.invalid_model", Action.FATAL),
        (4000, "invalid_request_error.beta_api_shape_disabled", Action.FATAL),
        (4000, "invalid_request_error.something_new", Action.FATAL),
        (4000, "invalid_request_error.input_audio_buffer_commit_empty", Action.FATAL),
        (4000, "", Action.FATAL),
        (4000, "server_error.server_error", Action.RECONNECT),
        # observed expiry: close 1001 carrying the error message (docs/protocol.md §6)
        (1001, "Your session hit the maximum duration of 60 minutes.", Action.ROLL_OVER),
        (1000, "invalid_request_error.session_expired", Action.RECONNECT),
        (1001, "going away", Action.RECONNECT),
        (1005, "", Action.RECONNECT),
        (1011, "", Action.RECONNECT),
        (None, "", Action.RECONNECT),
    ],
)
def test_closes(code: int | None, reason: str, action: Action) -> None:
    assert classify_close(code, reason).action is action


def test_a_fatal_close_names_its_reason() -> None:
    assert "something_new" in classify_close(4000, "invalid_request_error.something_new").hint


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (400, Action.FATAL),
        (401, Action.FATAL),
        (403, Action.FATAL),
        (404, Action.FATAL),
        (408, Action.RECONNECT),
        (429, Action.RECONNECT),
        (500, Action.RECONNECT),
        (503, Action.RECONNECT),
    ],
)
def test_handshake_statuses(status: int, action: Action) -> None:
    assert classify_http_status(status).action is action


def test_every_action_is_produced_by_some_failure() -> None:
    produced = {verdict.action for verdict in POLICY.values()}
    produced.add(classify_error("new", None, configuring=False).action)
    assert produced == set(Action)


def test_every_row_has_advice() -> None:
    for key, verdict in POLICY.items():
        assert verdict.hint, key
