"""The only module that opens sockets: URL, auth headers, handshake, typed transport errors."""

from __future__ import annotations

import asyncio
from typing import Any, cast
from urllib.parse import urlencode, urlsplit

import aiohttp

from livekit.agents import APIConnectionError, APIStatusError, APITimeoutError

from .protocol import classify_http_status
from .version import __version__

USER_AGENT = f"livekit-plugins-openai-rt/{__version__}"

CLOSE_TIMEOUT = 1.0
"""Seconds to wait for the server's close frame after ours."""


def realtime_url(base_url: str, *, model: str, model_in_url: bool) -> str:
    """The transcription websocket URL for an OpenAI-SDK style ``base_url``.

    ``https://host/v1`` becomes ``wss://host/v1/realtime?intent=transcription``. The model is
    never in the URL unless ``model_in_url``: on OpenAI's endpoint ``?model=`` selects a
    conversation session and every transcription model is then refused with ``invalid_model``
    (seed001); gateways that route on ``?model=`` opt in.
    """
    base = base_url.rstrip("/")
    scheme, sep, rest = base.partition("://")
    ws_scheme = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}.get(scheme.lower())
    if not sep or ws_scheme is None or not urlsplit(base).netloc:
        raise ValueError(
            f"base_url must be an http(s):// or ws(s):// URL such as "
            f"'https://api.openai.com/v1', got {base_url!r}"
        )
    query = {"intent": "transcription"}
    if model_in_url:
        query["model"] = model
    return f"{ws_scheme}://{rest}/realtime?{urlencode(query)}"


def auth_headers(api_key: str) -> dict[str, str]:
    """Headers for the upgrade request. No ``OpenAI-Beta``: the beta shape is refused (§1.3)."""
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


async def connect(
    session: aiohttp.ClientSession,
    url: str,
    *,
    api_key: str,
    timeout: float,
    heartbeat: float | None,
) -> aiohttp.ClientWebSocketResponse:
    """Open the websocket, turning every failure into an ``APIError`` subclass.

    The handshake runs in its own task and is awaited with ``asyncio.wait``: unlike
    ``asyncio.wait_for`` on Python 3.10/3.11, a cancellation that lands as the handshake
    completes is never swallowed (the socket is closed and the cancellation goes on).
    Exceptions never carry the request headers, so the key cannot leak through them.
    """
    task = asyncio.ensure_future(
        session.ws_connect(
            url,
            headers=auth_headers(api_key),
            heartbeat=heartbeat,
            max_msg_size=16 * 1024 * 1024,
            # a dead server never answers our close frame: do not wait 10 s for it
            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
        )
    )
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except BaseException:
        task.cancel()
        task.add_done_callback(_close_orphan)
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_close_orphan)
        raise APITimeoutError(f"connecting to {_safe(url)} timed out after {timeout:g} s")
    try:
        return cast(aiohttp.ClientWebSocketResponse, task.result())
    except aiohttp.WSServerHandshakeError as e:
        verdict = classify_http_status(e.status)
        raise APIStatusError(
            f"{_safe(url)} refused the websocket upgrade with HTTP {e.status}: {verdict.hint}",
            status_code=e.status,
            retryable=verdict.action.value == "reconnect",
        ) from None
    except (aiohttp.ClientError, OSError) as e:
        raise APIConnectionError(f"cannot connect to {_safe(url)}: {e!r}") from None


def _close_orphan(task: asyncio.Future[Any]) -> None:
    """Close a socket whose handshake finished after nobody was waiting for it."""
    if task.cancelled() or task.exception() is not None:
        return
    asyncio.ensure_future(task.result().close())


def _safe(url: str) -> str:
    """The URL without its query string (a gateway key could ride in it)."""
    return url.split("?", 1)[0]
