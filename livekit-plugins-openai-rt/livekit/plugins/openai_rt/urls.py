"""The websocket upgrade request: URLs, headers and Azure's base URL (sans-I/O).

Part of the protocol core (:mod:`.protocol` re-exports every name here). Pure functions of the
options: no socket, no clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Sequence
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from .log import clip
from .version import __version__

USER_AGENT = f"livekit-plugins-openai-rt/{__version__}"

_WS_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}


def realtime_url(base_url: str, *, model: str, model_in_url: bool) -> str:
    """The transcription websocket URL for an OpenAI-SDK style ``base_url``.

    ``https://host/v1`` becomes ``wss://host/v1/realtime?intent=transcription``. A query the
    base URL carries (a gateway's routing, Azure's ``api-version``) is kept, and ``intent`` is
    added to it. The model is never in the URL unless ``model_in_url``: on OpenAI's endpoint
    ``?model=`` selects a conversation session, and every transcription model is then refused
    with ``invalid_model`` (§1.2); gateways that route on ``?model=`` opt in.

    Raises ``ValueError`` for a URL that is not http(s)/ws(s), has no host, carries
    credentials (``user:pass@``) or control characters.
    """
    params = [("intent", "transcription")]
    if model_in_url:
        params.append(("model", model))
    return _ws_url(base_url, "/realtime", params)


def translation_url(base_url: str, *, model: str) -> str:
    """The translation websocket URL for an OpenAI-SDK style ``base_url``.

    ``https://host/v1`` becomes ``wss://host/v1/realtime/translations?model=<model>``: the
    model is required in the query, and no ``intent`` is sent (§1.2, §5.1). The base URL is
    checked as :func:`realtime_url` checks it; a query the base URL carries is kept.
    """
    return _ws_url(base_url, "/realtime/translations", [("model", model)], also_drop=("intent",))


def _ws_url(
    base_url: str,
    path: str,
    params: Sequence[tuple[str, str]],
    *,
    also_drop: Collection[str] = (),
) -> str:
    """``base_url`` checked and made a ``ws(s)`` URL, with ``path`` appended and ``params`` at
    the end of its query (which keeps the base URL's own parameters, but for the names in
    ``params`` and ``also_drop``)."""
    parts = _checked_url(base_url, "base_url", "https://api.openai.com/v1")
    drop = {k for k, _ in params} | set(also_drop)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in drop]
    path = parts.path.rstrip("/") + path
    query = urlencode([*kept, *params])
    return urlunsplit((_WS_SCHEMES[parts.scheme.lower()], parts.netloc, path, query, ""))


def _checked_url(url: str, name: str, example: str) -> SplitResult:
    """``url`` split, or ``ValueError`` naming the option ``name`` when it is not an
    http(s)/ws(s) URL with a host, carries credentials (``user:pass@``) or control characters."""
    # the messages show the URL without its query: a gateway key may ride there
    shown = clip(redact_url(url))
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(f"{name} contains control characters: {shown!r}")
    parts = urlsplit(url.strip())
    if _WS_SCHEMES.get(parts.scheme.lower()) is None or not parts.hostname:
        raise ValueError(
            f"{name} must be an http(s):// or ws(s):// URL such as '{example}', got {shown!r}"
        )
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{name} must not carry credentials (user:pass@host): pass the key as api_key="
        )
    return parts


def is_loopback_host(url: str) -> bool:
    """True when ``url``'s host is this machine (plain ``ws://`` is fine there)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_plaintext(url: str) -> bool:
    """True when ``url`` would carry the key unencrypted (``http://`` or ``ws://``)."""
    return urlsplit(url).scheme.lower() in ("http", "ws")


def check_api_key(api_key: str, name: str = "api_key") -> None:
    """Raise ``ValueError`` for a credential that cannot go in a header (empty, or control
    characters, such as a newline pasted with it). ``name`` says which option it came from; the
    message never repeats the credential."""
    if not api_key.strip():
        raise ValueError(f"{name} is empty")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in api_key):
        raise ValueError(f"{name} contains control characters (a trailing newline?): strip the key")


def auth_headers(api_key: str) -> dict[str, str]:
    """Headers for the upgrade request with a bearer credential: an OpenAI key, a gateway's key,
    or an Azure Entra token (§1.1, §1.3). No ``OpenAI-Beta``: the beta shape is refused (§1.3)."""
    return {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}


def azure_key_headers(api_key: str) -> dict[str, str]:
    """Headers for the upgrade request with an Azure OpenAI resource key: ``api-key``, as the
    SDK's Azure client sends it (§1.1, §1.3)."""
    return {"api-key": api_key, "User-Agent": USER_AGENT}


AZURE_V1 = "v1"
"""The ``api_version`` that names Azure's v1 API (no dated ``api-version`` query)."""


def azure_base_url(endpoint: str, *, deployment: str, api_version: str | None) -> str:
    """The OpenAI-SDK style base URL of an Azure OpenAI resource, for :func:`realtime_url`.

    Azure's v1 API (``api_version`` None or ``"v1"``) is ``{endpoint}/openai/v1``, so the
    socket is ``/openai/v1/realtime?intent=transcription``; the deployment is named only in
    ``session.update`` (Azure wants the deployment name as the transcription model). A dated
    ``api_version`` selects ``/openai/realtime?api-version=…&deployment=…``, as the SDK's
    ``AzureOpenAI`` builds it (§1.1). ``endpoint`` is the resource URL
    (``https://<resource>.openai.azure.com``); a trailing ``/openai`` or ``/openai/v1`` is
    tolerated.

    Raises ``ValueError`` for an endpoint that is not an http(s)/ws(s) URL with a host, carries
    credentials, control characters or a query, or for an empty deployment.
    """
    if not deployment or any(ord(c) < 0x20 or ord(c) == 0x7F for c in deployment):
        raise ValueError(f"azure_deployment must be a deployment name, got {deployment!r}")
    parts = _checked_url(endpoint, "azure_endpoint", "https://<resource>.openai.azure.com")
    if parts.query or parts.fragment:
        raise ValueError(
            "azure_endpoint must be the resource URL without a query, such as "
            f"'https://<resource>.openai.azure.com', got {endpoint!r}"
        )
    path = parts.path.rstrip("/")
    for suffix in ("/openai/v1", "/openai"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    if api_version is None or api_version == AZURE_V1:
        base = urlunsplit((parts.scheme, parts.netloc, path + "/openai/v1", "", ""))
    else:
        query = urlencode([("api-version", api_version), ("deployment", deployment)])
        base = urlunsplit((parts.scheme, parts.netloc, path + "/openai", query, ""))
    return base


def redact_url(url: str) -> str:
    """``url`` without its query string, for log lines (a gateway key could ride in it)."""
    return url.split("?", 1)[0]
