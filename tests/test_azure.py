"""Azure OpenAI and gateways: the URL and header shapes (pure), ``STT.with_azure`` settings and
environment, and streams over loopback to the emulator in its Azure and gateway modes: both Azure
paths, both kinds of credentials, a token provider called once per connect, refused
credentials."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable

import pytest
from multidict import CIMultiDict

from livekit.agents import APIConnectionError, APIConnectOptions, APIError, APIStatusError
from livekit.plugins import openai_rt
from livekit.plugins.openai_rt import protocol as p
from livekit.plugins.openai_rt.auth import AzureADTokenProvider
from livekit.plugins.openai_rt.options import DEFAULT_SERVER_VAD
from livekit.plugins.openai_rt.testing import MODEL_RULES, Emulator, FaultPlan
from livekit.plugins.openai_rt.testing.routing import (
    AzureMode,
    authenticate_azure,
    azure_deployment_refusal,
)

from .conftest import KEY, assert_exactly_once, azure_stt, drive, error_records

DEPLOYMENT = "team-whisper"
DEPLOYMENTS = {DEPLOYMENT: "gpt-realtime-whisper", "team-4o": "gpt-4o-transcribe"}
AZURE_ENV = (
    "AZURE_OPENAI_ENDPOINT",
    "AZURE_OPENAI_API_KEY",
    "AZURE_OPENAI_AD_TOKEN",
    "OPENAI_API_VERSION",
)
ONE_SECOND = 48_000


@pytest.fixture(autouse=True)
def no_azure_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the Azure variables they use; the machine's own never leak in."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)


# -- the URL and headers (pure) ---------------------------------------------------------------


def test_v1_path_by_default_and_the_dated_path_with_an_api_version() -> None:
    v1 = p.azure_base_url("https://res.openai.azure.com", deployment="dep", api_version=None)
    assert v1 == "https://res.openai.azure.com/openai/v1"
    assert (
        p.realtime_url(v1, model="dep", model_in_url=False)
        == "wss://res.openai.azure.com/openai/v1/realtime?intent=transcription"
    )
    assert p.azure_base_url("https://res.openai.azure.com/", deployment="d", api_version="v1") == (
        "https://res.openai.azure.com/openai/v1"
    )
    dated = p.azure_base_url(
        "https://res.openai.azure.com/openai/", deployment="my dep", api_version="2025-04-01"
    )
    assert p.realtime_url(dated, model="my dep", model_in_url=False) == (
        "wss://res.openai.azure.com/openai/realtime"
        "?api-version=2025-04-01&deployment=my+dep&intent=transcription"
    )


@pytest.mark.parametrize(
    ("endpoint", "deployment", "match"),
    [
        ("res.openai.azure.com", "d", "azure_endpoint must be an http"),
        ("https://res.openai.azure.com?x=1", "d", "without a query"),
        ("https://u:pw@res.openai.azure.com", "d", "must not carry credentials"),
        ("https://res.openai.azure.com", "", "azure_deployment"),
    ],
)
def test_bad_azure_settings_are_refused(endpoint: str, deployment: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        p.azure_base_url(endpoint, deployment=deployment, api_version=None)


def test_azure_headers() -> None:
    assert p.azure_key_headers("k")["api-key"] == "k"
    assert "Authorization" not in p.azure_key_headers("k")
    assert p.auth_headers("tok")["Authorization"] == "Bearer tok"


# -- STT.with_azure: settings, environment, model family ----------------------------------------


def test_settings_come_from_the_sdk_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-azure")
    stt_ = openai_rt.STT.with_azure(azure_deployment="dep", model_family="gpt-realtime-whisper")
    assert stt_.options.base_url == "https://res.openai.azure.com/openai/v1"
    assert stt_.model == "dep" and stt_.provider == "res.openai.azure.com"
    assert asyncio.run(stt_._credentials.headers())["api-key"] == KEY
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", "entra-token")  # takes precedence, as in the SDK
    dated = openai_rt.STT.with_azure(azure_deployment="dep", model_family="gpt-realtime-whisper")
    assert dated.options.base_url.endswith("/openai?api-version=2025-04-01-preview&deployment=dep")
    headers = asyncio.run(dated._credentials.headers())
    assert headers["Authorization"] == "Bearer entra-token" and "api-key" not in headers
    v1 = openai_rt.STT.with_azure(
        azure_deployment="dep", model_family="gpt-realtime-whisper", api_version="v1"
    )
    assert v1.options.base_url.endswith("/openai/v1")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api_key": KEY, "azure_ad_token": "t"}, "only one of"),
        ({"api_key": KEY, "azure_ad_token_provider": lambda: "t"}, "only one of"),
        ({}, "Azure credentials are required"),
        ({"api_key": KEY, "model": "gpt-realtime-whisper"}, "takes no model="),
        ({"api_key": KEY, "base_url": "https://x/v1"}, "takes no base_url="),
        ({"api_key": KEY, "model_family": "whisper-9"}, "model_family must be a known model"),
        ({"api_key": f"{KEY}\n"}, "control characters"),
    ],
)
def test_conflicting_or_missing_settings_fail_at_construction(
    kwargs: dict[str, object], match: str
) -> None:
    kwargs.setdefault("model_family", "gpt-realtime-whisper")
    with pytest.raises(ValueError, match=match) as info:
        openai_rt.STT.with_azure(
            azure_endpoint="https://res.openai.azure.com",
            azure_deployment="dep",
            **kwargs,  # type: ignore[arg-type]
        )
    assert KEY not in str(info.value)


def test_missing_endpoint_names_the_variable() -> None:
    with pytest.raises(ValueError, match="AZURE_OPENAI_ENDPOINT"):
        openai_rt.STT.with_azure(
            azure_deployment="dep", model_family="gpt-realtime-whisper", api_key=KEY
        )


def test_the_model_family_decides_which_options_are_valid(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def azure(family: str, **options: object) -> openai_rt.STT:
        return openai_rt.STT.with_azure(
            azure_endpoint="https://res.openai.azure.com",
            azure_deployment="dep",
            api_key=KEY,
            model_family=family,
            **options,  # type: ignore[arg-type]
        )

    assert azure("gpt-realtime-whisper", delay="low").options.delay == "low"
    with pytest.raises(ValueError, match="does not take delay"):
        azure("gpt-4o-transcribe", delay="low")
    with pytest.raises(ValueError, match="does not accept a prompt"):
        azure("gpt-realtime-whisper", prompt="names")
    # the family's server VAD is the default, as for the model itself
    assert azure("gpt-4o-transcribe").options.turn_detection == DEFAULT_SERVER_VAD
    assert azure("gpt-realtime-whisper").options.turn_detection is None
    # the deployment name is what goes in session.update, and no "unknown model" warning
    config = azure("gpt-realtime-whisper").options.session_config()
    assert p.session_update(config)["session"]["audio"]["input"]["transcription"]["model"] == "dep"
    assert not [r for r in caplog.records if "unknown transcription model" in r.getMessage()]
    with pytest.raises(ValueError, match="bound to 'dep'"):
        azure("gpt-realtime-whisper").update_options(model="other-dep")


# -- the emulator's Azure mode (pure decisions) -------------------------------------------------


def test_emulator_azure_auth_and_deployment_decisions() -> None:
    mode = AzureMode(deployments=DEPLOYMENTS, accept_token=lambda t: t == "good")
    ok_key = CIMultiDict({"api-key": KEY})
    assert authenticate_azure(ok_key, KEY, mode) is None
    refused = authenticate_azure(CIMultiDict({"api-key": "wrong"}), KEY, mode)
    assert refused is not None and refused.status == 401
    assert refused.body["error"]["code"] == "401"
    assert authenticate_azure(CIMultiDict({"Authorization": "Bearer good"}), KEY, mode) is None
    bad_token = authenticate_azure(CIMultiDict({"Authorization": "Bearer bad"}), KEY, mode)
    assert bad_token is not None and bad_token.status == 401
    none = authenticate_azure(CIMultiDict(), KEY, mode)
    assert none is not None and "missing subscription key" in none.body["error"]["message"]
    dated = "/openai/realtime"
    assert azure_deployment_refusal("/openai/v1/realtime", {}, mode) is None
    assert azure_deployment_refusal(
        dated, {"api-version": "x", "deployment": DEPLOYMENT}, mode
    ) is (None)
    missing_version = azure_deployment_refusal(dated, {"deployment": DEPLOYMENT}, mode)
    assert missing_version is not None and missing_version.status == 404
    unknown = azure_deployment_refusal(dated, {"api-version": "x", "deployment": "nope"}, mode)
    assert unknown is not None and unknown.body["error"]["code"] == "DeploymentNotFound"
    rules = mode.model_rules(MODEL_RULES)
    assert rules == {d: MODEL_RULES[family] for d, family in DEPLOYMENTS.items()}
    with pytest.raises(ValueError, match="unknown model families"):
        AzureMode(deployments={"d": "whisper-9"}).model_rules(MODEL_RULES)


# -- streams over loopback ------------------------------------------------------------------


def _azure_emulator() -> Emulator:
    return Emulator(api_key=KEY, azure=AzureMode(deployments=DEPLOYMENTS))


async def test_v1_path_with_an_api_key(sample_pcm: bytes) -> None:
    async with _azure_emulator() as emu:
        async with azure_stt(emu, DEPLOYMENT, api_key=KEY) as stt_:
            events = await drive(stt_.stream(), sample_pcm[: 2 * ONE_SECOND], flush_at=[1.0])
        record = emu.sessions[0]
        assert record.path == "/openai/v1/realtime"
        assert record.query == {"intent": "transcription"}
        assert record.headers["api-key"] == "<redacted>" and "Authorization" not in record.headers
        assert record.transcription_model == DEPLOYMENT
        assert_exactly_once(
            events, emu.committed_items(), sample_pcm[: 2 * ONE_SECOND], every_item=True
        )


async def test_dated_path_with_a_fixed_entra_token(sample_pcm: bytes) -> None:
    tokens: list[str] = []
    mode = AzureMode(deployments=DEPLOYMENTS, accept_token=_recorder(tokens))
    async with Emulator(api_key=KEY, azure=mode) as emu:
        async with azure_stt(
            emu, DEPLOYMENT, api_version="2025-04-01-preview", azure_ad_token=f"{KEY}-entra"
        ) as stt_:
            events = await drive(stt_.stream(), sample_pcm[:ONE_SECOND])
        record = emu.sessions[0]
        assert record.path == "/openai/realtime"
        assert record.query == {
            "api-version": "2025-04-01-preview",
            "deployment": DEPLOYMENT,
            "intent": "transcription",
        }
        assert record.headers["Authorization"] == "<redacted>" and "api-key" not in record.headers
        assert tokens == [f"{KEY}-entra"]
        assert_exactly_once(events, emu.committed_items(), sample_pcm[:ONE_SECOND], every_item=True)


def _recorder(seen: list[str]) -> Callable[[str], bool]:
    """An ``accept_token`` that accepts every token and remembers it."""

    def accept(token: str) -> bool:
        seen.append(token)
        return True

    return accept


def _counting_provider(*, asynchronous: bool) -> tuple[AzureADTokenProvider, list[str]]:
    issued: list[str] = []
    counter = itertools.count(1)

    def sync_provider() -> str:
        issued.append(f"{KEY}-entra-{next(counter)}")
        return issued[-1]

    async def async_provider() -> str:
        await asyncio.sleep(0)
        return sync_provider()

    return (async_provider if asynchronous else sync_provider), issued


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_a_token_provider_is_called_once_per_connect(
    sample_pcm: bytes, asynchronous: bool
) -> None:
    provider, issued = _counting_provider(asynchronous=asynchronous)
    seen: list[str] = []
    mode = AzureMode(deployments=DEPLOYMENTS, accept_token=_recorder(seen))
    pcm = sample_pcm[: 3 * ONE_SECOND]
    # the first socket drops mid-stream: the stream reconnects and replays
    faults = FaultPlan(drop_after_bytes=ONE_SECOND, connections={0})
    async with Emulator(api_key=KEY, azure=mode, faults=faults) as emu:
        async with azure_stt(emu, DEPLOYMENT, azure_ad_token_provider=provider) as stt_:
            stream = stt_.stream()
            events = await drive(stream, pcm, flush_at=[0.5, 2.0])
        assert len(emu.sessions) == 2
        assert issued == [f"{KEY}-entra-1", f"{KEY}-entra-2"]  # one call per connect
        assert seen == issued  # each connect carried its own fresh token
        # the first 0.5 s are the sample's leading silence: cleared, not committed
        assert_exactly_once(
            events, emu.committed_items(), pcm, skipped_seconds=stream.skipped_silence_seconds
        )


async def test_a_refused_key_fails_once_without_retrying_or_leaking_it(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with _azure_emulator() as emu:
        async with azure_stt(emu, DEPLOYMENT, api_key=f"{KEY}-wrong") as stt_:
            with pytest.raises(APIStatusError) as info:
                await drive(stt_.stream(), sample_pcm[:ONE_SECOND])
        assert emu.handshakes == 1 and not emu.sessions
    assert info.value.status_code == 401 and info.value.retryable is False
    assert "Azure api-key" in info.value.message and "AZURE_OPENAI_API_KEY" in info.value.message
    errors = error_records(caplog)
    assert len(errors) == 1 and errors[0].getMessage() == info.value.message
    assert KEY not in info.value.message and KEY not in repr(info.value.body)


async def test_a_refused_entra_token_fails_with_401(sample_pcm: bytes) -> None:
    mode = AzureMode(deployments=DEPLOYMENTS, accept_token=lambda t: False)
    async with Emulator(api_key=KEY, azure=mode) as emu:
        async with azure_stt(
            emu, DEPLOYMENT, azure_ad_token_provider=lambda: f"{KEY}-expired"
        ) as stt_:
            with pytest.raises(APIStatusError) as info:
                await drive(stt_.stream(), sample_pcm[:ONE_SECOND])
    assert info.value.status_code == 401 and "azure_ad_token_provider" in info.value.message


async def test_a_failing_token_provider_is_retried_within_the_budget_then_fails(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def provider() -> str:
        nonlocal calls
        calls += 1
        raise RuntimeError("identity endpoint unreachable")

    async with _azure_emulator() as emu:
        async with azure_stt(emu, DEPLOYMENT, azure_ad_token_provider=provider) as stt_:
            stream = stt_.stream(conn_options=APIConnectOptions(max_retry=2, retry_interval=0.01))
            with pytest.raises(APIConnectionError) as info:
                await drive(stream, sample_pcm[:ONE_SECOND])
        assert emu.handshakes == 0
    assert calls == 3 and info.value.retryable is False
    assert "RuntimeError: identity endpoint unreachable" in info.value.message
    assert len(error_records(caplog)) == 1


async def test_a_provider_that_returns_no_token_is_fatal_at_once(sample_pcm: bytes) -> None:
    async with _azure_emulator() as emu:
        async with azure_stt(emu, DEPLOYMENT, azure_ad_token_provider=lambda: "") as stt_:
            with pytest.raises(APIError) as info:
                await drive(stt_.stream(), sample_pcm[:ONE_SECOND])
    assert info.value.retryable is False and "is empty" in info.value.message


async def test_the_family_name_is_not_a_deployment_on_azure(
    sample_pcm: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Azure wants the deployment name as the transcription model: the emulator refuses a model
    name that is not a deployment, and the stream fails once, with the server's words."""
    async with _azure_emulator() as emu:
        async with azure_stt(emu, "gpt-realtime-whisper", api_key=KEY) as stt_:
            with pytest.raises(APIError) as info:
                await drive(stt_.stream(), sample_pcm[:ONE_SECOND])
    assert info.value.retryable is False and "invalid_value" in info.value.message
    assert [r.levelno for r in error_records(caplog)] == [logging.ERROR]


# -- gateways -----------------------------------------------------------------------------


async def test_gateway_with_a_query_in_its_base_url_routes_on_model(sample_pcm: bytes) -> None:
    """The README's gateway snippet: ``model_in_url=True`` and a base URL with a query."""
    async with Emulator(api_key=KEY, gateway_mode=True) as emu:
        stt_ = openai_rt.STT(
            model="gpt-realtime-whisper",
            base_url=f"{emu.base_url}?team=voice",
            model_in_url=True,
            api_key=KEY,
        )
        try:
            events = await drive(stt_.stream(), sample_pcm[:ONE_SECOND])
        finally:
            await stt_.aclose()
        assert emu.sessions[0].query == {
            "team": "voice",
            "intent": "transcription",
            "model": "gpt-realtime-whisper",
        }
        assert emu.sessions[0].headers["Authorization"] == "<redacted>"
        assert_exactly_once(events, emu.committed_items(), sample_pcm[:ONE_SECOND], every_item=True)
