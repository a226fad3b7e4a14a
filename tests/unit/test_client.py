"""Endpoints, headers and model names per backend (docs/protocol.md §2); no I/O."""

from __future__ import annotations

import dataclasses
import logging
import math
import pathlib
from typing import Any, Dict, List

import pytest

import livesync
import livesync.client as client_module
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


# Validation at the door: every argument is checked before anything is stored or sent.


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> List[Dict[str, Any]]:
    """connect() records its SessionOptions instead of opening a session."""
    calls: List[Dict[str, Any]] = []

    class Opened:
        closed = False

    def fake(dialer: Any, setup: Any, options: Any, **kwargs: Any) -> Opened:
        calls.append({f.name: getattr(options, f.name) for f in dataclasses.fields(options)})
        return Opened()

    monkeypatch.setattr(client_module, "open_session", fake)
    return calls


CALLBACKS = ["on_message", "on_goaway", "on_resumption_update", "on_close", "on_open",
             "on_reconnect", "on_error"]


@pytest.mark.parametrize("kwargs, field", [
    ({"base_url": 123}, "base_url"),
    ({"base_url": b"ws://h"}, "base_url"),
    ({"base_url": "http://h"}, "base_url"),
    ({"base_url": "WS://h"}, "base_url"),
    ({"base_url": "ws://"}, "base_url"),
    ({"base_url": "ws://h:99999"}, "base_url"),
    ({"base_url": "ws://h:port"}, "base_url"),
    ({"base_url": "ws://h/?x=1"}, "base_url"),
    ({"base_url": "ws://h/#x"}, "base_url"),
    ({"base_url": "ws://h /x"}, "base_url"),
    ({"base_url": "ws://h\r\n/x"}, "base_url"),
    ({"headers": "abc"}, "headers"),
    ({"headers": [("x-a", "b")]}, "headers"),
    ({"headers": {"a b": "v"}}, "headers"),
    ({"headers": {"": "v"}}, "headers"),
    ({"headers": {"x:y": "v"}}, "headers"),
    ({"headers": {1: "v"}}, "headers"),
    ({"headers": {"x-a": 1}}, "headers"),
    ({"headers": {"x-a": b"v"}}, "headers"),
    ({"headers": {"x-a": "v\r\nInjected: 1"}}, "headers"),
    ({"headers": {"x-a": "v\x00"}}, "headers"),
    ({"api_version": ""}, "api_version"),
    ({"api_version": "v1/beta"}, "api_version"),
    ({"api_version": "v1 beta"}, "api_version"),
    ({"api_version": "v1\n"}, "api_version"),
    ({"api_version": "v" * 40}, "api_version"),
    ({"api_version": 1}, "api_version"),
    ({"vertexai": "yes"}, "vertexai"),
    ({"vertexai": 1}, "vertexai"),
    ({"location": 5}, "location"),
    ({"location": "us central1"}, "location"),
    ({"vertexai": True, "project": "p", "location": "us/central1",
      "token_provider": lambda: "t"}, "location"),
    ({"vertexai": True, "project": "a/b", "location": "us-central1",
      "token_provider": lambda: "t"}, "project"),
    ({"vertexai": True, "project": 7, "location": "us-central1",
      "token_provider": lambda: "t"}, "project"),
    ({"token_provider": "token"}, "token_provider"),
    ({"api_key": 5}, "api_key"),
    ({"api_key": "   "}, "api_key"),
    ({"api_key": "key\n"}, "api_key"),
    ({"api_key": "key with space"}, "api_key"),
    ({"api_key": "k\u00e9y"}, "api_key"),
    ({"ca_certs": 5}, "ca_certs"),
    ({"ca_certs": ""}, "ca_certs"),
    ({"ca_certs": "/no/such/ca-bundle.pem"}, "ca_certs"),
    ({"proxy": 5}, "proxy"),
    ({"proxy": ""}, "proxy"),
    ({"proxy": "ftp://h:21"}, "proxy"),
    ({"proxy": "https://h:3128"}, "proxy"),
    ({"proxy": "h:3128"}, "proxy"),
    ({"proxy": "http://"}, "proxy"),
    ({"proxy": "http://h:99999"}, "proxy"),
    ({"proxy": "http://h x:1"}, "proxy"),
])
def test_client_rejects_bad_arguments(kwargs: Dict[str, Any], field: str) -> None:
    """Each bad Client argument raises InvalidConfig (a ValueError) naming it."""
    kwargs.setdefault("api_key", "k")
    with pytest.raises(InvalidConfig) as info:
        livesync.Client(**kwargs)
    assert isinstance(info.value, ValueError)
    assert info.value.field == field
    assert len(str(info.value)) < 200


def test_a_bad_key_from_the_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key read from GEMINI_API_KEY with a stray newline is refused at once."""
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", "key-from-env\n")
    with pytest.raises(InvalidConfig, match="GEMINI_API_KEY") as info:
        livesync.Client()
    assert info.value.field == "api_key"
    assert "key-from-env" not in str(info.value)


@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha", "v2"])
def test_any_simple_api_version_is_accepted(version: str) -> None:
    """api_version is a simple token, not a fixed list."""
    client = livesync.Client(api_key="k", api_version=version)
    url, _ = client.endpoint("k")
    assert ".%s.GenerativeService" % version in url


def test_good_client_arguments_are_kept(tmp_path: pathlib.Path) -> None:
    """Valid headers, a path-like CA bundle, a SOCKS proxy and a path prefix are accepted."""
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    client = livesync.Client(
        api_key="k", base_url="ws://127.0.0.1:8765/prefix/", headers={"X-Trace": "a\tb"},
        ca_certs=bundle, proxy="socks5h://user:pw@proxy:1080",
    )
    url, headers = client.endpoint("k")
    assert url.startswith("ws://127.0.0.1:8765/prefix/ws/google.ai.")
    assert headers["X-Trace"] == "a\tb"
    assert client._transport_options.ca_certs == str(bundle)
    assert client._transport_options.proxy == "socks5h://user:pw@proxy:1080"


def test_base_url_userinfo_is_masked_and_not_dialed() -> None:
    """A password in base_url's userinfo never shows in repr (it is not sent either)."""
    client = livesync.Client(api_key="k", base_url="wss://user:hunter2@example.com:8443/x")
    assert repr(client) == "<livesync.Client backend=gemini base_url=wss://***@example.com:8443/x>"
    url, _ = client.endpoint("k")
    assert url.startswith("wss://example.com:8443/x/ws/")
    assert "hunter2" not in url and "user" not in url


@pytest.mark.parametrize("kwargs, field", [
    *[({name: "not callable"}, name) for name in CALLBACKS],
    *[({name: 1}, name) for name in CALLBACKS],
    ({"config": "x"}, "config"),
    ({"fail_fast": 1}, "fail_fast"),
    ({"fail_fast": "yes"}, "fail_fast"),
    ({"fail_fast": None}, "fail_fast"),
    ({"reconnect": "yes"}, "reconnect"),
    ({"reconnect": 1}, "reconnect"),
    ({"resumption_handle": 5}, "resumption_handle"),
    ({"resumption_handle": ""}, "resumption_handle"),
    ({"config": {"session_resumption": {"handle": ""}}}, "session_resumption.handle"),
    ({"handle_store": object(), "session_key": "k"}, "handle_store"),
    ({"handle_store": "store", "session_key": "k"}, "handle_store"),
    ({"handle_store": livesync.MemoryHandleStore()}, "session_key"),
    ({"handle_store": livesync.MemoryHandleStore(), "session_key": ""}, "session_key"),
    ({"session_key": 5}, "session_key"),
    ({"session_key": ""}, "session_key"),
    *[({name: value}, name)
      for name in ("open_timeout", "close_timeout", "write_timeout")
      for value in (0, -1, math.nan, math.inf, -math.inf, 1e300, "10", True, None)],
    *[({name: value}, name)
      for name in ("ping_interval", "ping_timeout", "max_buffered_media_age")
      for value in (0, -1.5, math.nan, math.inf, "30", False)],
    *[({name: value}, name)
      for name in ("max_buffered_media", "max_buffered_messages", "max_receive_queue")
      for value in (0, -1, True, 1.5, 10.0, "10", None)],
    ({"logger": "x"}, "logger"),
    ({"logger": logging}, "logger"),
    ({"logger": 5}, "logger"),
])
def test_connect_rejects_bad_arguments(
    made: List[Dict[str, Any]], kwargs: Dict[str, Any], field: str
) -> None:
    """Each bad connect() argument raises InvalidConfig naming it, before a Session exists."""
    with pytest.raises(InvalidConfig) as info:
        livesync.Client(api_key="k").connect("m", **kwargs)
    assert info.value.field == field
    assert len(str(info.value)) < 200
    assert made == []


def test_good_connect_arguments_are_normalized(made: List[Dict[str, Any]]) -> None:
    """Whole seconds become floats; None keepalive, adapters and stores are accepted."""
    adapter = logging.LoggerAdapter(logging.getLogger("app"), {})
    store = livesync.MemoryHandleStore()
    livesync.Client(api_key="k").connect(
        "m", on_message=print, fail_fast=True, open_timeout=3, close_timeout=0.5,
        ping_interval=None, ping_timeout=None, max_buffered_media=1, max_receive_queue=5,
        max_buffered_media_age=5, logger=adapter, handle_store=store, session_key="chat",
        resumption_handle="handle-1",
    )
    (kwargs,) = made
    assert kwargs["open_timeout"] == 3.0 and type(kwargs["open_timeout"]) is float
    assert kwargs["close_timeout"] == 0.5
    assert kwargs["ping_interval"] is None and kwargs["ping_timeout"] is None
    assert kwargs["max_buffered_media"] == 1 and kwargs["max_receive_queue"] == 5
    assert kwargs["max_buffered_media_age"] == 5.0
    assert type(kwargs["max_buffered_media_age"]) is float
    assert kwargs["logger"] is adapter and kwargs["handle_store"] is store
    assert kwargs["resumption_handle"] == "handle-1"
    assert kwargs["fail_fast"] is True


def test_bad_model_message_is_bounded() -> None:
    """A huge model name gives a short message showing at most 40 characters of it."""
    client = livesync.Client(api_key="k")
    for model in ["x" * 60_000 + " ", "y" * 60_000, " " + "z" * 60_000, "w" * 500 + "?"]:
        with pytest.raises(InvalidConfig) as info:
            client.model_name(model)
        assert info.value.field == "model"
        assert len(str(info.value)) < 120
        assert model[0] * 41 not in str(info.value)


@pytest.mark.parametrize("model, text", [
    ("gemini-live?key=abc", "invalid model name 'gemini-live': '?' at position 11 is not allowed"),
    ("models/../x", "invalid model name 'models/': '..' at position 7 is not allowed"),
    ("-x", "invalid model name: must start with a letter or digit, not '-'"),
    ("", "model must be a non-empty string"),
    (5, "model must be a string, not int"),
])
def test_bad_model_message_names_the_first_bad_character(model: Any, text: str) -> None:
    """The message shows the part before the problem, never what follows it."""
    with pytest.raises(InvalidConfig) as info:
        livesync.Client(api_key="k").model_name(model)
    assert str(info.value) == text


@pytest.mark.parametrize("token", ["", None, 5, "tok en", "token\r\n"])
def test_token_provider_must_return_a_clean_token(token: Any) -> None:
    """A provider returning nothing or a token with spaces or line breaks is refused."""
    client = livesync.Client(token_provider=lambda: token)
    with pytest.raises(InvalidConfig) as info:
        client.credential()
    assert info.value.field == "token_provider"
