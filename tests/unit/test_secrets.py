"""No secret (key, token, URL password, resumption handle) in a repr, str or error text.

Each canary is a distinctive string. A text leaks it when it contains the whole
canary or any 9 characters of it in a row: a handle may show its first 8
characters, nothing more.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Dict, List

import pytest

import livesync
import livesync.client as client_module
from livesync import InvalidConfig, types as t

API_KEY = "CANARYapiKEY-7f3a9cQz81LmX"
BEARER = "ya29.CANARYbearer-Tk9d02XvLq"
EPHEMERAL = "auth_tokens/CANARYephemeral-Rr55Wn0p"
PASSWORD = "CANARYpassw0rd-Jd7Hq"
PROXY_PASSWORD = "CANARYproxyPw-Ab3Ks"
HANDLE = "CANARYhandle-" + "Q2FuYXJ5SGFuZGxlQm9keQ" * 9
SECRETS = [API_KEY, BEARER, EPHEMERAL, PASSWORD, PROXY_PASSWORD, HANDLE]


def leaks(text: str, secret: str) -> bool:
    """Whether ``text`` holds ``secret`` or any 9 consecutive characters of it."""
    return any(secret[i : i + 9] in text for i in range(len(secret) - 8))


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert not leaks(text, secret), (secret, text)


def test_the_leak_check_catches_a_leak() -> None:
    """The helper itself: a full secret or a 9-character piece counts, 8 do not."""
    assert leaks("x" + HANDLE[5:14] + "y", HANDLE)
    assert not leaks(HANDLE[:8] + "\u2026", HANDLE)


# Clients and their reprs.


def make_clients() -> List[livesync.Client]:
    return [
        livesync.Client(api_key=API_KEY),
        livesync.Client(api_key=EPHEMERAL),
        livesync.Client(vertexai=True, project="p", location="us-central1",
                        token_provider=lambda: BEARER),
        livesync.Client(api_key=API_KEY, base_url="wss://user:%s@example.com/x" % PASSWORD),
        livesync.Client(api_key=API_KEY, base_url="wss://%s@example.com" % PASSWORD),
        livesync.Client(api_key=API_KEY, proxy="http://user:%s@proxy:3128" % PROXY_PASSWORD,
                        headers={"x-extra-auth": BEARER}),
    ]


def test_client_repr_and_str_hold_no_secret() -> None:
    """Key, ephemeral token, provider token, URL password and header values stay hidden."""
    for client in make_clients():
        client.credential()
        assert_no_secret(repr(client))
        assert_no_secret(str(client))


def test_base_url_password_is_not_in_the_dialed_url() -> None:
    """The userinfo is dropped from the URL (websocket-client would ignore it anyway)."""
    client = livesync.Client(api_key=API_KEY, base_url="wss://u:%s@example.com" % PASSWORD)
    url, _ = client.endpoint(client.credential())
    assert_no_secret(url)


# Errors for bad arguments that carry a secret.


BAD_CLIENT_ARGUMENTS: List[Dict[str, Any]] = [
    {"api_key": API_KEY + "\n"},
    {"api_key": API_KEY + " " + API_KEY},
    {"api_key": EPHEMERAL + "\u00e9"},
    {"api_key": API_KEY, "base_url": "http://user:%s@example.com" % PASSWORD},
    {"api_key": API_KEY, "base_url": "wss://user:%s@example.com/?k=%s" % (PASSWORD, API_KEY)},
    {"api_key": API_KEY, "base_url": "wss://user:%s@example.com:bad" % PASSWORD},
    {"api_key": API_KEY, "base_url": "wss://user:%s @example.com" % PASSWORD},
    {"api_key": API_KEY, "headers": {"authorization": "Bearer %s\r\nx: y" % BEARER}},
    {"api_key": API_KEY, "headers": {"x-goog-api-key": API_KEY.encode()}},
    {"api_key": API_KEY, "proxy": "ftp://user:%s@proxy:21" % PROXY_PASSWORD},
    {"api_key": API_KEY, "proxy": "http://user:%s@proxy:99999" % PROXY_PASSWORD},
    {"api_key": API_KEY, "api_version": "v1?key=" + API_KEY},
    {"api_key": API_KEY, "location": "us?key=" + API_KEY},
    {"api_key": API_KEY, "vertexai": "yes"},
    {"vertexai": True, "project": "p", "location": "us-central1", "api_key": BEARER},
]


@pytest.mark.parametrize("kwargs", BAD_CLIENT_ARGUMENTS)
def test_client_errors_hold_no_secret(kwargs: Dict[str, Any]) -> None:
    """InvalidConfig from Client() never echoes a key, token, password or header value."""
    with pytest.raises(InvalidConfig) as info:
        livesync.Client(**kwargs)
    assert_no_secret(str(info.value))
    assert_no_secret(repr(info.value))


@pytest.mark.parametrize("token", [BEARER + "\n", BEARER + " x", EPHEMERAL + "\x00"])
def test_token_provider_errors_hold_no_secret(token: str) -> None:
    """A bad token from the provider is refused without being shown."""
    client = livesync.Client(token_provider=lambda: token)
    with pytest.raises(InvalidConfig) as info:
        client.credential()
    assert_no_secret(str(info.value))


class NoSession:
    """Stands in for Session: connect() must fail before it makes one."""

    def __init__(self, **kwargs: Any) -> None:
        raise AssertionError("a bad argument reached Session")


BAD_CONNECT_ARGUMENTS: List[Dict[str, Any]] = [
    {"model": "gemini-live?key=" + API_KEY},
    {"model": "gemini-live&token=" + BEARER},
    {"model": "gemini-live " + EPHEMERAL},
    {"model": "models/../" + HANDLE},
    {"model": "x" * 2000 + API_KEY},
    {"resumption_handle": HANDLE, "max_receive_queue": 0},
    {"resumption_handle": HANDLE.encode()},
    {"resumption_handle": HANDLE, "handle_store": object(), "session_key": "k"},
    {"config": {"session_resumption": {"handle": HANDLE, "bogus": 1}}},
    {"config": {"session_resumption": {"handle": HANDLE.encode()}}},
    {"config": {"sessionResumption": {"handle": HANDLE}, "temperature": "hot"}},
    {"config": t.LiveConfig(session_resumption=t.SessionResumptionConfig(handle=HANDLE)),
     "open_timeout": float("nan")},
]


@pytest.mark.parametrize("kwargs", BAD_CONNECT_ARGUMENTS)
def test_connect_errors_hold_no_secret(
    monkeypatch: pytest.MonkeyPatch, kwargs: Dict[str, Any]
) -> None:
    """InvalidConfig from connect() never echoes a key, token or handle, even in a bad model."""
    monkeypatch.setattr(client_module, "Session", NoSession)
    model = kwargs.pop("model", "gemini-live-2.5-flash")
    with pytest.raises(InvalidConfig) as info:
        livesync.Client(api_key=API_KEY).connect(model, **kwargs)
    assert_no_secret(str(info.value))
    assert_no_secret(repr(info.value))


# Public dataclasses holding a handle.


def handle_holders() -> List[Any]:
    wire = json.dumps({"sessionResumptionUpdate": {"newHandle": HANDLE, "resumable": True}})
    message = livesync.parse_server_message(wire)
    assert message.session_resumption_update is not None
    assert message.session_resumption_update.new_handle == HANDLE
    store = livesync.MemoryHandleStore()
    stored = livesync.StoredHandle(HANDLE, time.time())
    store.save("chat", stored)
    return [
        message,
        t.LiveServerMessage.from_dict(json.loads(wire)),
        message.session_resumption_update,
        t.SessionResumptionUpdate(new_handle=HANDLE, resumable=True),
        t.SessionResumptionConfig(handle=HANDLE, transparent=True),
        t.LiveConfig(session_resumption=t.SessionResumptionConfig(handle=HANDLE)),
        t.BidiGenerateContentSetup(session_resumption=t.SessionResumptionConfig(handle=HANDLE)),
        t.LiveClientMessage(setup=t.BidiGenerateContentSetup(
            session_resumption=t.SessionResumptionConfig(handle=HANDLE))),
        stored,
        store,
        livesync.Closed(code=1000, reason="", error=None, resumption_handle=HANDLE),
    ]


@pytest.mark.parametrize("render", [repr, str], ids=["repr", "str"])
def test_no_repr_or_str_shows_a_handle(render: Callable[[Any], str]) -> None:
    """Every public object holding a handle shows at most its 8-character prefix."""
    for obj in handle_holders():
        assert_no_secret(render(obj))


def test_print_of_a_message_shows_no_handle(capsys: pytest.CaptureFixture[str]) -> None:
    """print(message), the first thing users do, shows a prefix and the length only."""
    wire = json.dumps({"sessionResumptionUpdate": {"newHandle": HANDLE, "resumable": True}})
    print(livesync.parse_server_message(wire))
    out = capsys.readouterr().out
    assert_no_secret(out)
    assert "(%d chars)" % len(HANDLE) in out


def test_hidden_handles_are_still_there() -> None:
    """Masking is for display only: values, equality and the wire form are unchanged."""
    wire = {"sessionResumptionUpdate": {"newHandle": HANDLE, "resumable": True}}
    message = livesync.parse_server_message(json.dumps(wire))
    assert message.to_dict() == wire
    assert message == t.LiveServerMessage.from_dict(wire)
    config = t.LiveConfig(session_resumption=t.SessionResumptionConfig(handle=HANDLE))
    assert config.to_dict()["sessionResumption"] == {"handle": HANDLE}
