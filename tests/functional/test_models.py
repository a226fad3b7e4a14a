"""Client.get_model / list_models / connect(validate_model=True) against the emulator's REST
endpoints (reached on the WebSocket port: base_url ws:// → http://)."""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import Any, Callable, List

import pytest

import livesync
from livesync import ModelInfo
from tests.utils import TIMEOUT

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}
KEY = "emu-CANARYKEY-" + uuid.uuid4().hex[:16]


@pytest.fixture
def emu(make_emulator: Callable[..., Any]) -> Any:
    return make_emulator(api_key=KEY)


@pytest.fixture
def client(emu: Any) -> livesync.Client:
    return livesync.Client(api_key=KEY, base_url=emu.base_url)


def texts_of(exc: BaseException) -> List[str]:
    texts = ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
    seen: Any = exc
    while seen is not None:
        texts += [str(seen), repr(seen), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return texts


def test_get_model(client: livesync.Client, emu: Any) -> None:
    """get_model returns a frozen ModelInfo from GET /v1beta/models/{name} with the key in
    x-goog-api-key; ``models/`` is optional."""
    info = client.get_model("gemini-live-2.5-flash")
    assert info == client.get_model("models/gemini-live-2.5-flash")
    assert isinstance(info, ModelInfo) and info.name == "models/gemini-live-2.5-flash"
    assert info.id == "gemini-live-2.5-flash" and info.supports_live
    assert info.supported_generation_methods == ("bidiGenerateContent", "countTokens")
    assert (info.input_token_limit, info.output_token_limit) == (131072, 8192)
    assert info.version == "001" and info.top_k == 64 and info.temperature == 1.0
    with pytest.raises(AttributeError):
        info.name = "x"  # type: ignore[misc]
    request = emu.rest_requests[0]
    assert (request.method, request.path, request.port) == (
        "GET", "/v1beta/models/gemini-live-2.5-flash", "ws")
    assert dict(request.headers)["x-goog-api-key"] == "[secure]"


def test_get_model_uses_the_clients_api_version(emu: Any) -> None:
    """api_version="v1": a preview model is not found there (NotFound naming the version)."""
    client = livesync.Client(api_key=KEY, base_url=emu.base_url, api_version="v1")
    assert client.get_model("gemini-live-2.5-flash").supports_live
    with pytest.raises(livesync.NotFound) as info:
        client.get_model(MODEL)
    assert info.value.status_code == 404 and "API version v1," in str(info.value)
    assert emu.rest_requests[-1].path == "/v1/models/" + MODEL


def test_list_models_follows_pages(client: livesync.Client, emu: Any) -> None:
    """list_models fetches every page (pageSize, pageToken) and keeps the server's order."""
    models = client.list_models(page_size=3)
    names = [m.id for m in models]
    assert names[:2] == ["gemini-live-2.5-flash-preview", "gemini-live-2.5-flash"]
    assert "gemini-2.5-flash" in names and len(names) == 8
    assert [m.id for m in models if not m.supports_live] == ["gemini-2.5-flash"]
    paths = [r.path for r in emu.rest_requests]
    assert len(paths) == 3 and paths[0] == "/v1beta/models?pageSize=3"
    assert all("pageToken=" in p for p in paths[1:])
    assert client.list_models() == models  # one page of 50


def test_list_models_checks_page_size(client: livesync.Client) -> None:
    """page_size must be an int in 1..1000."""
    for bad in (0, 1001, 2.5, True):
        with pytest.raises(livesync.InvalidConfig) as info:
            client.list_models(page_size=bad)  # type: ignore[arg-type]
        assert info.value.field == "page_size"


def test_rest_calls_retry_on_503(client: livesync.Client, emu: Any) -> None:
    """A 503 with Retry-After is retried; the lookup then succeeds."""
    emu.refuse_rest(2, 503, retry_after=0)
    assert client.get_model(MODEL).supports_live
    assert [r.status for r in emu.rest_requests] == [503, 503, 200]


def test_rest_errors_are_typed_and_key_free(emu: Any, caplog: pytest.LogCaptureFixture
                                            ) -> None:
    """A wrong key is an AuthError, unknown models NotFound; no key in any text or log."""
    wrong = livesync.Client(api_key=KEY + "x", base_url=emu.base_url)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(livesync.AuthError) as auth_error:
            wrong.get_model(MODEL)
        with pytest.raises(livesync.NotFound) as missing:
            livesync.Client(api_key=KEY, base_url=emu.base_url).get_model("nope")
    texts = texts_of(auth_error.value) + texts_of(missing.value)
    # websockets.* is the emulator's server library (server side; see test_secrecy.py).
    texts += [r.getMessage() for r in caplog.records if not r.name.startswith("websockets")]
    for text in texts:
        assert KEY[4:13] not in text, text[:300]
    assert "models/nope is not found for API version v1beta" in str(missing.value)


def test_rest_needs_an_api_key(emu: Any) -> None:
    """Ephemeral-token clients and Vertex clients cannot look models up (InvalidConfig)."""
    token_client = livesync.Client(api_key="auth_tokens/x", base_url=emu.base_url)
    with pytest.raises(livesync.InvalidConfig) as info:
        token_client.get_model(MODEL)
    assert info.value.field == "api_key"
    provider_client = livesync.Client(token_provider=lambda: KEY, base_url=emu.base_url)
    with pytest.raises(livesync.InvalidConfig):
        provider_client.list_models()
    vertex = livesync.Client(vertexai=True, project="p", location="us-central1",
                             token_provider=lambda: KEY, base_url=emu.base_url)
    with pytest.raises(livesync.InvalidConfig) as info:
        vertex.connect(MODEL, validate_model=True)
    assert "Vertex" in str(info.value)
    assert emu.rest_requests == [] and emu.upgrades == []
    # api_key and token_provider together: REST uses the key, dials the provider.
    both = livesync.Client(api_key=KEY, token_provider=lambda: KEY, base_url=emu.base_url)
    assert both.get_model(MODEL).supports_live


def test_validate_model_passes_then_connects(client: livesync.Client, emu: Any) -> None:
    """validate_model=True looks the model up once, then connects as usual."""
    with client.connect(MODEL, config=TEXT, validate_model=True) as session:
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    assert [r.path for r in emu.rest_requests] == ["/v1beta/models/" + MODEL]
    assert len(emu.connections) == 1


def test_validate_model_refuses_a_model_without_live(client: livesync.Client, emu: Any
                                                     ) -> None:
    """A model that lacks bidiGenerateContent is an InvalidConfig on "model", before dialing."""
    with pytest.raises(livesync.InvalidConfig) as info:
        client.connect("gemini-2.5-flash", config=TEXT, validate_model=True)
    assert info.value.field == "model"
    message = str(info.value)
    assert "models/gemini-2.5-flash" in message and "v1beta" in message
    assert "bidiGenerateContent" in message
    assert emu.upgrades == []


def test_validate_model_reports_an_unknown_model(client: livesync.Client, emu: Any) -> None:
    """An unknown model is a NotFound naming the model and the API version, before dialing."""
    with pytest.raises(livesync.NotFound) as info:
        client.connect("gemini-9-live", config=TEXT, validate_model=True)
    assert "models/gemini-9-live was not found on API version v1beta" in str(info.value)
    assert emu.upgrades == []


def test_validate_model_is_bounded_by_open_timeout(client: livesync.Client, emu: Any) -> None:
    """A REST endpoint that does not answer fails the check within about open_timeout."""
    import time

    emu.delay_rest(10.0, n=5)
    started = time.monotonic()
    with pytest.raises(livesync.RestTimeout):
        client.connect(MODEL, config=TEXT, validate_model=True, open_timeout=0.5)
    assert time.monotonic() - started < 2
    with pytest.raises(livesync.InvalidConfig):
        client.connect(MODEL, validate_model="yes")  # type: ignore[arg-type]
