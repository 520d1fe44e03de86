"""Credentials of the websocket upgrade, asked for once per connect.

An :class:`~.stt.STT` owns one :class:`Credentials`; every stream asks it for the upgrade
headers each time it opens a socket, so a token that expires (an Azure Entra token from a
provider) is fresh on every reconnect and roll-over. The header shapes are the protocol core's
pure functions (:func:`~.protocol.auth_headers`, :func:`~.protocol.azure_key_headers`). No
credential ever appears in a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from . import protocol as p

AzureADTokenProvider = Callable[[], str | Awaitable[str]]
"""A callable returning an Entra ID token, or an awaitable of one (``azure.identity``'s
``get_bearer_token_provider`` makes either kind)."""


class CredentialsError(Exception):
    """The credentials could not be produced for a connect. ``retryable`` when another attempt
    may succeed (the token provider raised); the message never holds a credential."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class Credentials(ABC):
    """Where the upgrade request's credentials come from."""

    kind: str
    """Which option the credential came from, for messages (``"api_key"``,
    ``"azure_ad_token_provider"``, …)."""

    @abstractmethod
    async def headers(self) -> dict[str, str]:
        """The upgrade headers for one connect. Raises :class:`CredentialsError`."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}>"


class BearerKey(Credentials):
    """``Authorization: Bearer <key>``: an OpenAI key, a gateway's key, or a fixed Entra token."""

    def __init__(self, key: str, *, kind: str = "api_key") -> None:
        p.check_api_key(key, kind)
        self._key = key
        self.kind = kind

    async def headers(self) -> dict[str, str]:
        """The bearer headers (the same on every connect)."""
        return p.auth_headers(self._key)


class AzureKey(Credentials):
    """``api-key: <key>``: an Azure OpenAI resource key."""

    kind = "api_key (Azure api-key header)"

    def __init__(self, key: str) -> None:
        p.check_api_key(key, "api_key")
        self._key = key

    async def headers(self) -> dict[str, str]:
        """The ``api-key`` headers (the same on every connect)."""
        return p.azure_key_headers(self._key)


class TokenProvider(Credentials):
    """``Authorization: Bearer <token>`` with a token from ``provider``, called on every
    connect (sync or async), as the SDK's Azure client calls it on every request."""

    kind = "azure_ad_token_provider"

    def __init__(self, provider: AzureADTokenProvider) -> None:
        if not callable(provider):
            raise ValueError("azure_ad_token_provider must be a callable that returns a token")
        self._provider = provider

    async def headers(self) -> dict[str, str]:
        """Ask the provider for a token; a provider that raises is worth another attempt, one
        that returns something that is not a usable token is not."""
        try:
            token = self._provider()
            if inspect.isawaitable(token):
                token = await token
        except Exception as e:
            raise CredentialsError(
                f"azure_ad_token_provider raised {type(e).__name__}: {_bounded(e)}",
                retryable=True,
            ) from None
        if not isinstance(token, str):
            raise CredentialsError(
                f"azure_ad_token_provider must return a token string, got {type(token).__name__}",
                retryable=False,
            )
        try:
            p.check_api_key(token, "the token from azure_ad_token_provider")
        except ValueError as e:
            raise CredentialsError(str(e), retryable=False) from None
        return p.auth_headers(token)


def _bounded(error: BaseException, limit: int = 200) -> str:
    text = str(error)
    return text if len(text) <= limit else text[:limit] + "…"
