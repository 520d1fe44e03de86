"""Decisions taken at the websocket upgrade: authentication and routing, as pure functions.

The server asks :func:`authenticate` whether to refuse the upgrade with HTTP 401, accepts the
websocket, then asks :func:`route` what kind of session the URL and headers ask for (the path,
``intent``, ``?model=``, the beta header, gateway mode). In Azure mode (:class:`AzureMode`) the
server asks :func:`authenticate_azure` and :func:`azure_deployment_refusal` instead of
:func:`authenticate`. Nothing here touches a socket: the inputs are the path, query parameters and
headers of the upgrade request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from multidict import MultiMapping

from .rules import BETA_SHAPE_MESSAGE, ModelRules
from .schema import ApiError, Json, invalid_enum

__all__ = [
    "AZURE_DATED_PATH",
    "AZURE_V1_PATH",
    "NOT_WEBSOCKET",
    "TRANSLATION_MODELS",
    "ConversationRoute",
    "HttpRefusal",
    "RejectedRoute",
    "Route",
    "TranscriptionRoute",
    "TranslationRoute",
    "AzureMode",
    "authenticate",
    "authenticate_azure",
    "azure_deployment_refusal",
    "redact_headers",
    "request_token",
    "route",
    "translation_route",
]

_SUBPROTOCOL_KEY_PREFIX = "openai-insecure-api-key."


@dataclass(frozen=True)
class HttpRefusal:
    """An upgrade answered with an HTTP error instead of a websocket."""

    status: int
    body: Json


NOT_WEBSOCKET = HttpRefusal(
    426,
    {
        "error": {
            "message": "This endpoint only accepts WebSocket upgrades.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    },
)
"""The answer to a plain HTTP request on ``/v1/realtime``."""


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------


def request_token(headers: MultiMapping[str]) -> str | None:
    """The API key of an upgrade request, from any of the accepted places."""
    # Authorization: Bearer <key> (docs/protocol.md §1.3 [V] SDK _client_auth.py).
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return auth[7:].strip()
    # Browsers: subprotocol "openai-insecure-api-key.<key>" (docs/protocol.md §1.4 [O] GA guide
    # example).
    for header in headers.getall("Sec-WebSocket-Protocol", []):
        for proto in header.split(","):
            proto = proto.strip()
            if proto.startswith(_SUBPROTOCOL_KEY_PREFIX) and len(proto) > 24:
                return proto[len(_SUBPROTOCOL_KEY_PREFIX) :]
    # Azure's `api-key` header (docs/protocol.md §1.1 [V] SDK lib/azure.py), so Azure code paths
    # can be pointed at the emulator.
    api_key = headers.get("api-key", "").strip()
    return api_key or None


def _mask_key(token: str) -> str:
    # OpenAI shows a masked key in invalid_api_key messages ("sk-abc***wxyz") [I].
    if len(token) <= 8:
        return "*" * len(token)
    return f"{token[:3]}{'*' * min(len(token) - 7, 20)}{token[-4:]}"


def authenticate(headers: MultiMapping[str], api_key: str | None) -> HttpRefusal | None:
    """Refuse an upgrade whose key is missing, or differs from ``api_key`` when one is set.

    A missing or wrong key gets HTTP 401 at the handshake (docs/protocol.md §7 A.1 [I]), with
    OpenAI's REST 401 bodies [I]. Returns None when the upgrade may proceed.
    """
    token = request_token(headers)
    if token is None:
        return HttpRefusal(
            401,
            {
                "error": {
                    "message": "You didn't provide an API key. You need to provide your API "
                    "key in an Authorization header using Bearer auth (i.e. Authorization: "
                    "Bearer YOUR_KEY). You can obtain an API key from "
                    "https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": None,
                }
            },
        )
    if api_key is not None and token != api_key:
        return HttpRefusal(
            401,
            {
                "error": {
                    "message": f"Incorrect API key provided: {_mask_key(token)}. You can "
                    "find your API key at https://platform.openai.com/account/api-keys.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_api_key",
                }
            },
        )
    return None


def redact_headers(headers: MultiMapping[str]) -> dict[str, str]:
    """The upgrade headers as recorded in ``EmulatedSession.headers``: credentials redacted."""
    redacted: dict[str, str] = {}
    for key, value in headers.items():
        lower = key.lower()
        if lower in ("authorization", "api-key"):
            redacted[key] = "<redacted>"
        elif lower == "sec-websocket-protocol":
            redacted[key] = ", ".join(
                f"{_SUBPROTOCOL_KEY_PREFIX}<redacted>"
                if p.strip().startswith(_SUBPROTOCOL_KEY_PREFIX)
                else p.strip()
                for p in value.split(",")
            )
        else:
            redacted[key] = value
    return redacted


# ---------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TranscriptionRoute:
    """A transcription session.

    Attributes:
        model: the initial transcription model (gateway mode takes it from ``?model=``), or None.
        url_model: a ``?model=`` the real server accepts at the upgrade but that fails the first
            transcription ``session.update`` (docs/protocol.md §7 A.3), or None.
    """

    model: str | None = None
    url_model: str | None = None


@dataclass(frozen=True)
class ConversationRoute:
    """A conversation (``realtime``) session for ``model``; only its routing errors are emulated."""

    model: str


@dataclass(frozen=True)
class RejectedRoute:
    """The connection is refused after the upgrade: ``error`` is sent, then the socket closes."""

    error: ApiError


Route = TranscriptionRoute | ConversationRoute | RejectedRoute
"""What :func:`route` decides for an accepted websocket."""


def _rejected(code: str, message: str, param: str | None = None) -> RejectedRoute:
    return RejectedRoute(ApiError(code, message, param, fatal=True))


def route(
    query: Mapping[str, str],
    headers: MultiMapping[str],
    model_rules: Mapping[str, ModelRules],
    *,
    gateway_mode: bool = False,
) -> Route:
    """Route a new connection of ``/v1/realtime`` from its query parameters and headers.

    ``model_rules`` names the transcription models; ``gateway_mode`` accepts ``?model=`` as the
    transcription model, like LiteLLM or speaches gateways (docs/protocol.md §7 A.9).
    """
    intent = query.get("intent")
    model = query.get("model")

    # `OpenAI-Beta: realtime=v1` -> beta_api_shape_disabled, close 4000 (docs/protocol.md §7 A.7
    # [O]). Whether session.created precedes it is unknown; the emulator sends none [I].
    if "realtime" in headers.get("OpenAI-Beta", "").lower():
        return _rejected("beta_api_shape_disabled", BETA_SHAPE_MESSAGE)

    if intent is not None and intent != "transcription":
        # Only intent=transcription exists (docs/protocol.md §1.2 [V]); the wording is OpenAI's
        # enum style [I].
        err = invalid_enum("intent", intent, ("transcription",))
        err.fatal = True
        return RejectedRoute(err)

    if intent == "transcription":
        if model is None:
            return TranscriptionRoute()
        if not gateway_mode:
            # Accepted now; the first transcription session.update fails (docs/protocol.md §7
            # A.3 [V] livekit/agents-js#1756).
            return TranscriptionRoute(url_model=model)
        # Gateways take ?model= as the transcription model (docs/protocol.md §7 A.9 [C][V]); one
        # the emulator does not know is refused like livekit/agents-js#1756's error [I].
        if model not in model_rules:
            return _rejected(
                "invalid_model", f'Model "{model}" is not supported in transcription mode.'
            )
        return TranscriptionRoute(model=model)

    if model is None:
        # Neither intent nor model: unknown upstream (docs/protocol.md §1.2 [I]); the emulator
        # refuses, which catches clients that forgot `intent=transcription`.
        return _rejected(
            "missing_required_parameter",
            "Missing required parameter: 'model'. Use ?intent=transcription for "
            "transcription sessions.",
            "model",
        )
    if model not in model_rules:
        # A conversation session (docs/protocol.md §7 A.4 [V] guide); only its routing errors
        # are emulated.
        return ConversationRoute(model)
    if gateway_mode:
        return TranscriptionRoute(model=model)
    # ?model=<transcription model> without intent (docs/protocol.md §7 A.5 [O] community 1366640;
    # code and close [I]). No session is created [I].
    return _rejected("invalid_model", f'Model "{model}" is not supported in realtime mode.')


# ---------------------------------------------------------------------------------------------
# Azure OpenAI (docs/protocol.md §1.1)
# ---------------------------------------------------------------------------------------------

AZURE_V1_PATH = "/openai/v1/realtime"
"""Azure's v1 API socket (docs/protocol.md §1.1 [O] Microsoft Q&A 12820829, [C] LiveKit)."""

AZURE_DATED_PATH = "/openai/realtime"
"""Azure's dated-API-version socket, ``?api-version=…&deployment=…`` (docs/protocol.md §1.1 [V]
SDK ``lib/azure.py``)."""


@dataclass(frozen=True)
class AzureMode:
    """Serve Azure OpenAI's URL and auth shapes instead of OpenAI's (docs/protocol.md §7 H.50,
    §1.1).

    Attributes:
        deployments: deployment name -> the model family it runs (a key of the emulator's model
            rules). In Azure the transcription model of ``session.update`` is the deployment
            name (docs/protocol.md §7 H.51, §1.1 [V] Azure realtime audio reference), so the
            session accepts these names, each under its family's rules, and no other model name.
        accept_token: decides whether an Entra ID bearer token is valid; None accepts any
            non-empty token. Resource keys (``api-key``) are checked against the emulator's
            ``api_key``.
    """

    deployments: Mapping[str, str] = field(default_factory=dict)
    accept_token: Callable[[str], bool] | None = None

    def model_rules(self, families: Mapping[str, ModelRules]) -> dict[str, ModelRules]:
        """The per-model rules of an Azure resource: each deployment under its family's rules.

        Raises ``ValueError`` for a deployment of a family ``families`` does not know.
        """
        unknown = {d: f for d, f in self.deployments.items() if f not in families}
        if unknown:
            raise ValueError(f"deployments of unknown model families: {unknown}")
        return {name: families[family] for name, family in self.deployments.items()}


def _azure_refusal(status: int, code: str, message: str) -> HttpRefusal:
    # Azure's REST error body is {"error": {"code", "message"}} (docs/protocol.md §1.1 [O]
    # SciSharp/BotSharp#386); that the websocket upgrade answers the same way is [I].
    return HttpRefusal(status, {"error": {"code": code, "message": message}})


_AZURE_BAD_KEY = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
    "a valid key for an active subscription and use a correct regional API endpoint for your "
    "resource."
)


def authenticate_azure(
    headers: MultiMapping[str], api_key: str | None, azure: AzureMode
) -> HttpRefusal | None:
    """Azure's credentials: an ``api-key`` resource key or an Entra ``Authorization: Bearer``
    token (docs/protocol.md §7 H.50, §1.1 [V] SDK ``lib/azure.py``). A missing or refused one gets HTTP
    401 with Azure's REST body (docs/protocol.md §1.1 [O] SciSharp/BotSharp#386 for the wrong
    key; the missing-key wording and the token check's answer are [I])."""
    key = headers.get("api-key", "").strip()
    if key:
        if api_key is not None and key != api_key:
            return _azure_refusal(401, "401", _AZURE_BAD_KEY)
        return None
    auth = headers.get("Authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    if token:
        if azure.accept_token is not None and not azure.accept_token(token):
            return _azure_refusal(401, "401", _AZURE_BAD_KEY)
        return None
    return _azure_refusal(
        401,
        "401",
        "Access denied due to missing subscription key. Make sure to include subscription key "
        "when making requests to an API.",
    )


def azure_deployment_refusal(
    path: str, query: Mapping[str, str], azure: AzureMode
) -> HttpRefusal | None:
    """The dated path needs ``api-version`` and a known ``deployment`` (docs/protocol.md §7 H.50).

    A missing ``api-version`` gets 404 ``Resource not found`` [I]; an unknown deployment gets
    404 ``DeploymentNotFound`` with Azure's REST message [O] Azure-Samples/azure-search-openai-
    demo#391 (at the websocket upgrade [I]). The v1 path takes neither: the deployment is the
    ``session.update`` model.
    """
    if path != AZURE_DATED_PATH:
        return None
    if not query.get("api-version"):
        return _azure_refusal(404, "404", "Resource not found")
    if query.get("deployment") not in azure.deployments:
        return _azure_refusal(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment "
            "within the last 5 minutes, please wait a moment and try again.",
        )
    return None


# ---------------------------------------------------------------------------------------------
# Routing of /v1/realtime/translations
# ---------------------------------------------------------------------------------------------

TRANSLATION_MODELS = ("gpt-realtime-translate",)
"""The translation models the emulator serves (docs/protocol.md §5.1, §6)."""


@dataclass(frozen=True)
class TranslationRoute:
    """A translation session of ``model`` (docs/protocol.md §7 F)."""

    model: str


def translation_route(query: Mapping[str, str]) -> TranslationRoute | RejectedRoute:
    """Route a new connection of ``/v1/realtime/translations`` from its query parameters.

    ``?model=`` is required and must name a translation model (docs/protocol.md §7 A.8 [I]);
    an ``intent`` is refused (§7 F.42 [I]: the SDK refuses it client-side). Refusals send an
    error, then close 4000, as the transcription routing errors do [I].
    """
    if "intent" in query:
        return _rejected(
            "unknown_parameter",
            "Unknown parameter: 'intent'. Translation sessions take no intent.",
            "intent",
        )
    model = query.get("model")
    if not model:
        return _rejected(
            "missing_required_parameter",
            "Missing required parameter: 'model'. Translation sessions need "
            "?model=gpt-realtime-translate.",
            "model",
        )
    if model not in TRANSLATION_MODELS:
        return _rejected(
            "invalid_model", f'Model "{model}" is not supported in translation mode.', "model"
        )
    return TranslationRoute(model)
