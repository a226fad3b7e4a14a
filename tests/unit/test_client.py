"""Endpoints, headers and model names per backend (PROTOCOL.md §1); no I/O."""

from __future__ import annotations

import pytest

import livesync
from livesync import InvalidConfig


def test_gemini_key_goes_in_a_header() -> None:
    """Gemini API: documented single-slash URL, key in x-goog-api-key, never in the URL."""
    client = livesync.Client(api_key="secret-key")
    url, headers = client.endpoint(client.credential())
    assert url == ("wss://generativelanguage.googleapis.com/ws/"
                   "google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent")
    assert headers["x-goog-api-key"] == "secret-key"
    assert "secret-key" not in url and "secret-key" not in repr(client)
    assert headers["x-goog-api-client"].startswith("livesync/")


def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """GEMINI_API_KEY wins over GOOGLE_API_KEY; either is used when no key is given."""
    monkeypatch.setenv("GOOGLE_API_KEY", "google")
    assert livesync.Client().credential() == "google"
    monkeypatch.setenv("GEMINI_API_KEY", "gemini")
    assert livesync.Client().credential() == "gemini"


def test_ephemeral_token_endpoint() -> None:
    """auth_tokens/… uses v1alpha BidiGenerateContentConstrained with Token auth."""
    client = livesync.Client(api_key="auth_tokens/abc")
    url, headers = client.endpoint(client.credential())
    assert url.endswith("v1alpha.GenerativeService.BidiGenerateContentConstrained")
    assert headers["authorization"] == "Token auth_tokens/abc"
    assert "x-goog-api-key" not in headers


@pytest.mark.parametrize("location, host", [
    ("us-central1", "us-central1-aiplatform.googleapis.com"),
    ("global", "aiplatform.googleapis.com"),
    ("eu", "aiplatform.eu.rep.googleapis.com"),
])
def test_vertex_hosts_and_bearer(location: str, host: str) -> None:
    """Vertex: regional host, v1beta1 LlmBidiService path, bearer from the provider."""
    client = livesync.Client(vertexai=True, project="p", location=location,
                             token_provider=lambda: "ya29.token")
    url, headers = client.endpoint(client.credential())
    path = "/ws/google.cloud.aiplatform.v1beta1.LlmBidiService/BidiGenerateContent"
    assert url == "wss://" + host + path
    assert headers["authorization"] == "Bearer ya29.token"


@pytest.mark.parametrize("vertexai, model, expected", [
    (False, "gemini-live-2.5-flash", "models/gemini-live-2.5-flash"),
    (False, "models/gemini-live-2.5-flash", "models/gemini-live-2.5-flash"),
    (False, "tunedModels/t1", "tunedModels/t1"),
    (True, "gemini-live-2.5-flash",
     "projects/p/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"),
    (True, "acme/m1", "projects/p/locations/us-central1/publishers/acme/models/m1"),
    (True, "projects/x/locations/y/publishers/google/models/z",
     "projects/x/locations/y/publishers/google/models/z"),
])
def test_model_names(vertexai: bool, model: str, expected: str) -> None:
    """Model names get the backend's prefix, as the official SDKs do."""
    if vertexai:
        client = livesync.Client(vertexai=True, project="p", location="us-central1",
                                 token_provider=lambda: "t")
    else:
        client = livesync.Client(api_key="k")
    assert client.model_name(model) == expected


@pytest.mark.parametrize("model", ["", "models/../x", "a?b", "a&b", "has space"])
def test_bad_model_names(model: str) -> None:
    """Unsafe or empty model names are refused."""
    with pytest.raises(InvalidConfig) as info:
        livesync.Client(api_key="k").model_name(model)
    assert info.value.field == "model"


@pytest.mark.parametrize("kwargs, field", [
    ({"vertexai": True, "project": "p"}, "location"),
    ({"vertexai": True, "project": "p", "location": "us-central1"}, "token_provider"),
    ({"api_key": "k", "base_url": "http://x"}, "base_url"),
    ({"api_key": ""}, "api_key"),
])
def test_client_validation(kwargs: dict, field: str) -> None:
    """Bad client arguments fail at once, naming the argument."""
    with pytest.raises(InvalidConfig) as info:
        livesync.Client(**kwargs)
    assert info.value.field == field


def test_token_provider_must_return_a_token() -> None:
    """A provider returning nothing is reported as a configuration error."""
    client = livesync.Client(token_provider=lambda: "")
    with pytest.raises(InvalidConfig):
        client.credential()
