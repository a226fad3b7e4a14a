"""livesync.auth against the emulator's REST endpoint: token minting, retries, timeouts,
typed key-free errors, the re-minting token provider and the google-auth provider."""

from __future__ import annotations

import datetime
import logging
import socket
import sys
import threading
import time
import traceback
import uuid
import warnings
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple, Type

import pytest

import livesync
from livesync import auth
from livesync._http import backoff, parse_retry_after
from tests.utils import TIMEOUT, Recorder

# google-auth warns on import under Python 3.9 (end of life); not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:You are using a Python version:FutureWarning")

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}
KEY = "emu-CANARYKEY-" + uuid.uuid4().hex[:16]
FAST = livesync.ReconnectPolicy(initial_delay=0.01, max_delay=0.05)
UTC = datetime.timezone.utc


@pytest.fixture
def emu(make_emulator: Callable[..., Any]) -> Any:
    return make_emulator(api_key=KEY)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG (urllib3 and requests included)."""
    with caplog.at_level(logging.DEBUG):
        yield caplog


def texts_of(exc: BaseException) -> List[str]:
    """str, repr and attributes of ``exc`` and its chain, and the formatted traceback."""
    texts = ["".join(traceback.format_exception(type(exc), exc, exc.__traceback__))]
    seen: Optional[BaseException] = exc
    while seen is not None:
        texts += [str(seen), repr(seen), repr(vars(seen))]
        seen = seen.__cause__ or seen.__context__
    return texts


def assert_no_key(texts: Sequence[str], key: str = KEY) -> None:
    for text in texts:
        assert key not in text and key[4:13] not in text, text[:300]


# --- minting ------------------------------------------------------------------------------


def test_mint_sends_the_documented_body(emu: Any) -> None:
    """create_ephemeral_token POSTs camelCase fields, UTC RFC 3339 times, the constraints'
    setup and the SDK's fieldMask, with the key in x-goog-api-key only."""
    expire = datetime.datetime(2031, 5, 4, 14, 30, 15, tzinfo=datetime.timezone(
        datetime.timedelta(hours=2)))
    before = datetime.datetime.now(UTC)
    token = auth.create_ephemeral_token(
        KEY, uses=3, expire_time=expire,
        new_session_expire_time=datetime.timedelta(minutes=2),
        live_constraints=auth.LiveConstraints(
            MODEL, {"response_modalities": ["TEXT"], "temperature": 0.2,
                    "system_instruction": "Be brief."}),
        lock_additional_fields=["top_k", "outputAudioTranscription"],
        base_url=emu.rest_url,
    )
    (request,) = emu.rest_requests
    assert (request.method, request.path) == ("POST", "/v1alpha/auth_tokens")
    headers = dict(request.headers)
    assert headers["x-goog-api-key"] == "[secure]"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("livesync/")
    body = dict(request.body)
    new_session = datetime.datetime.strptime(body.pop("newSessionExpireTime"),
                                             "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before + datetime.timedelta(minutes=2) <= new_session
    assert new_session <= datetime.datetime.now(UTC) + datetime.timedelta(minutes=2)
    assert body == {
        "uses": 3,
        "expireTime": "2031-05-04T12:30:15Z",
        "bidiGenerateContentSetup": {
            "model": "models/" + MODEL,
            "generationConfig": {"responseModalities": ["TEXT"], "temperature": 0.2},
            "systemInstruction": {"role": "user", "parts": [{"text": "Be brief."}]},
        },
        "fieldMask": "model,generationConfig.responseModalities,generationConfig.temperature,"
                     "systemInstruction.role,systemInstruction.parts,generationConfig.topK,"
                     "outputAudioTranscription",
    }
    assert token.name == emu.tokens[0].name and token.uses == 3
    assert token.expire_time == expire  # the emulator reports the time it was given
    assert token.expire_time.tzinfo is not None and token.new_session_expire_time > before
    assert token.name not in repr(token) and token.name not in str(token)
    assert emu.tokens[0].field_mask is not None and "generationConfig.topK" in (
        emu.tokens[0].field_mask)


def test_mint_defaults_and_token_opens_a_session(emu: Any) -> None:
    """With no arguments only uses=1 is sent; the token opens a constrained session."""
    token = auth.create_ephemeral_token(KEY, base_url=emu.rest_url + "/")
    assert emu.rest_requests[0].body == {"uses": 1}
    assert token.uses == 1
    assert token.expire_time > datetime.datetime.now(UTC) + datetime.timedelta(minutes=29)
    client = livesync.Client(api_key=token.name, base_url=emu.base_url)
    with client.connect(MODEL, config=TEXT) as session:
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    assert emu.connections[0].auth == "token_header" and emu.tokens[0].used == 1


def test_unlimited_uses_and_lock_everything(emu: Any) -> None:
    """uses=0 is sent as 0 (unlimited); without lock_additional_fields no fieldMask is sent,
    and the token's setup overrides the client's."""
    token = auth.create_ephemeral_token(
        KEY, uses=0, live_constraints={"model": MODEL, "config": {"temperature": 0.1}},
        base_url=emu.rest_url)
    assert emu.rest_requests[0].body == {"uses": 0, "bidiGenerateContentSetup": {
        "model": "models/" + MODEL, "generationConfig": {"temperature": 0.1}}}
    assert token.uses == 0
    client = livesync.Client(api_key=token.name, base_url=emu.base_url)
    with client.connect(MODEL, config={"response_modalities": ["TEXT"], "temperature": 0.9}):
        pass
    effective = emu.connections[0].effective_setup
    assert effective["generationConfig"]["temperature"] == 0.1


@pytest.mark.skipif(sys.version_info < (3, 10), reason="google-genai 3.x needs Python 3.10+")
def test_body_matches_google_genai(emu: Any) -> None:
    """The body equals google-genai 3.6.1's for the same token (times aside: genai sends
    isoformat ``+00:00``, livesync ``Z``)."""
    genai = pytest.importorskip("google.genai")
    expire = datetime.datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    client = genai.Client(api_key=KEY, http_options={"base_url": emu.rest_url,
                                                    "api_version": "v1alpha"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        client.auth_tokens.create(config={
            "uses": 2, "expire_time": expire,
            "live_connect_constraints": {
                "model": MODEL,
                "config": {"response_modalities": ["TEXT"], "temperature": 0.3,
                           "system_instruction": "Be brief."}},
            "lock_additional_fields": ["top_k"],
        })
    auth.create_ephemeral_token(
        KEY, uses=2, expire_time=expire,
        live_constraints={"model": MODEL, "config": {
            "response_modalities": ["TEXT"], "temperature": 0.3,
            "system_instruction": "Be brief."}},
        lock_additional_fields=["top_k"], base_url=emu.rest_url)
    theirs, ours = (dict(r.body) for r in emu.rest_requests)
    assert theirs.pop("expireTime").replace("+00:00", "Z") == ours.pop("expireTime")
    their_mask, our_mask = theirs.pop("fieldMask"), ours.pop("fieldMask")
    assert theirs == ours
    # genai keeps the extra name in snake_case; livesync sends the camelCase JSON path.
    assert set(their_mask.replace("top_k", "topK").split(",")) == set(our_mask.split(","))


@pytest.mark.parametrize("kwargs, field", [
    ({"expire_time": datetime.datetime(2031, 1, 1)}, "expire_time"),
    ({"new_session_expire_time": datetime.timedelta(seconds=-1)}, "new_session_expire_time"),
    ({"expire_time": "2031-01-01T00:00:00Z"}, "expire_time"),
    ({"uses": -1}, "uses"),
    ({"uses": True}, "uses"),
    ({"lock_additional_fields": "temperature"}, "lock_additional_fields"),
    ({"lock_additional_fields": ["bad field"]}, "lock_additional_fields"),
    ({"live_constraints": {"model": "m?key=x"}}, "model"),
    ({"live_constraints": {"modle": MODEL}}, "live_constraints"),
    ({"live_constraints": {"config": {"temprature": 1}}}, "temprature"),
    ({"base_url": "ws://127.0.0.1:1"}, "base_url"),
    ({"base_url": "http://user:pw@127.0.0.1:1"}, "base_url"),
    ({"timeout": 0}, "timeout"),
    ({"retries": -1}, "retries"),
    ({"total_timeout": float("nan")}, "total_timeout"),
])
def test_bad_arguments_fail_before_any_request(emu: Any, kwargs: Any, field: str) -> None:
    """Naive datetimes, negative durations and other bad arguments raise InvalidConfig
    naming the field, and nothing is sent."""
    kwargs.setdefault("base_url", emu.rest_url)
    with pytest.raises(livesync.InvalidConfig) as info:
        auth.create_ephemeral_token(KEY, **kwargs)
    assert info.value.field is not None and field in info.value.field
    assert emu.rest_requests == []
    assert_no_key(texts_of(info.value))


def test_a_token_is_not_a_key(emu: Any) -> None:
    """Minting with an ephemeral token instead of the key is refused before any I/O."""
    with pytest.raises(livesync.InvalidConfig, match="ephemeral token"):
        auth.create_ephemeral_token("auth_tokens/abc", base_url=emu.rest_url)


# --- retries, timeouts, errors ------------------------------------------------------------


def test_retries_on_503_and_429(emu: Any) -> None:
    """503 and 429 answers are retried (Retry-After honoured) until the token is minted."""
    emu.refuse_rest(2, 503, retry_after=0)
    emu.refuse_rest(1, 429, retry_after=0.2)
    started = time.monotonic()
    token = auth.create_ephemeral_token(KEY, base_url=emu.rest_url)
    assert time.monotonic() - started >= 0.2
    assert [r.status for r in emu.rest_requests] == [503, 503, 429, 200]
    assert token.name == emu.tokens[0].name


def test_backoff_without_retry_after(emu: Any) -> None:
    """Without Retry-After the first retry waits the jittered backoff (0.25–0.5 s)."""
    emu.refuse_rest(1, 500)
    started = time.monotonic()
    auth.create_ephemeral_token(KEY, base_url=emu.rest_url)
    assert 0.25 <= time.monotonic() - started < 5


def test_backoff_and_retry_after_values() -> None:
    """Backoff doubles from 0.5 s up to 8 s with jitter in the upper half; Retry-After is
    read as seconds or an HTTP date."""
    import random

    rng = random.Random(7)
    delays = [backoff(n, rng) for n in range(8)]
    for n, delay in enumerate(delays):
        bound = min(8.0, 0.5 * 2 ** n)
        assert bound / 2 <= delay <= bound
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    assert parse_retry_after("-5") == 0.0


def test_retries_exhausted_raise_rate_limited(emu: Any, debug_logs: Any) -> None:
    """Still 429 after the retries: RateLimited with the server's status and message, the
    Retry-After, and no key anywhere (messages, traceback, logs)."""
    emu.refuse_rest(5, 429, retry_after=0)
    with pytest.raises(livesync.RateLimited) as info:
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url, retries=2)
    error = info.value
    assert isinstance(error, livesync.RestError) and error.status_code == 429
    assert error.status == "RESOURCE_EXHAUSTED" and error.retry_after == 0.0
    assert str(error) == ("POST /v1alpha/auth_tokens failed: HTTP 429 RESOURCE_EXHAUSTED: "
                          "Resource has been exhausted (e.g. check quota).")
    assert len(emu.rest_requests) == 3
    assert_no_key(texts_of(error) + [r.getMessage() for r in debug_logs.records])


def test_retry_after_beyond_the_budget_is_not_waited(emu: Any) -> None:
    """A Retry-After longer than what is left of total_timeout ends the call at once."""
    emu.refuse_rest(1, 503, retry_after=30)
    started = time.monotonic()
    with pytest.raises(livesync.RestError) as info:
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url, total_timeout=2)
    assert time.monotonic() - started < 1.5
    assert info.value.status_code == 503 and info.value.retry_after == 30


def test_read_timeout_is_bounded(emu: Any) -> None:
    """A server that does not answer: RestTimeout after about timeout × attempts, and
    never later than total_timeout."""
    emu.delay_rest(10.0, n=10)
    started = time.monotonic()
    with pytest.raises(livesync.RestTimeout) as info:
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url, timeout=0.2, retries=0)
    assert time.monotonic() - started < 2
    assert isinstance(info.value, TimeoutError) and info.value.status_code is None
    started = time.monotonic()
    with pytest.raises(livesync.RestTimeout):
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url, timeout=(0.2, 0.3),
                                    total_timeout=1.0)
    assert time.monotonic() - started < 2.5
    assert_no_key(texts_of(info.value))


def test_connection_refused_is_retried_then_raised() -> None:
    """Nothing listening: the connection error is retried, then a RestError without status."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(livesync.RestError) as info:
        auth.create_ephemeral_token(KEY, base_url="http://127.0.0.1:%d" % port, retries=1,
                                    total_timeout=5)
    assert info.value.status_code is None and "connection failed" in str(info.value)
    assert_no_key(texts_of(info.value))


@pytest.mark.parametrize("status, cls", [
    (401, livesync.AuthError), (403, livesync.AuthError), (404, livesync.NotFound),
    (400, livesync.RestError), (409, livesync.RestError),
])
def test_http_errors_are_typed(emu: Any, status: int, cls: Type[livesync.RestError]) -> None:
    """4xx answers map to typed errors at once (no retry)."""
    emu.refuse_rest(1, status)
    with pytest.raises(cls) as info:
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url)
    assert info.value.status_code == status and len(emu.rest_requests) == 1


def test_wrong_key_is_an_auth_error_without_the_key(make_emulator: Callable[..., Any],
                                                    debug_logs: Any) -> None:
    """A wrong key (400 "API key not valid") is an AuthError; neither the wrong key nor the
    right one appears anywhere, even when the server echoes it."""
    emu = make_emulator()
    with pytest.raises(livesync.AuthError) as info:
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url)
    assert "API key not valid" in str(info.value) and info.value.status_code == 400
    emu.refuse_rest(1, 400, message="bad key %s here" % KEY)
    with pytest.raises(livesync.RestError) as echoed:
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url)
    assert "[secure]" in str(echoed.value)
    assert_no_key(texts_of(info.value) + texts_of(echoed.value)
                  + [r.getMessage() for r in debug_logs.records])


def test_injected_session_is_used_and_left_open(emu: Any) -> None:
    """session= makes the request on the caller's requests.Session, which stays open."""
    import requests

    with requests.Session() as http:
        http.headers["x-test"] = "injected"
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url, session=http)
        auth.create_ephemeral_token(KEY, base_url=emu.rest_url, session=http)
    assert [dict(r.headers).get("x-test") for r in emu.rest_requests] == ["injected"] * 2


def test_import_livesync_does_not_import_requests() -> None:
    """requests and google.auth are imported lazily."""
    import subprocess

    code = ("import sys, livesync, livesync.auth; "
            "print('requests' in sys.modules, 'google.auth' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.split() == ["False", "False"]


# --- EphemeralTokenProvider ---------------------------------------------------------------


def test_provider_mints_a_fresh_token_per_dial(make_emulator: Callable[..., Any]) -> None:
    """With uses=1 every dial (first, rotations, a resume after a drop) gets its own token,
    even when the server counts a resume as a use (resume_uses_token)."""
    emu = make_emulator(api_key=KEY, resume_uses_token=True)
    provider = auth.EphemeralTokenProvider(KEY, base_url=emu.rest_url)
    client = livesync.Client(token_provider=provider, base_url=emu.base_url)
    rec = Recorder()
    with client.connect(MODEL, config=TEXT, reconnect=FAST, on_reconnect=rec.on_reconnect,
                        on_resumption_update=rec.on_resumption_update) as session:
        for n in range(1, 3):
            rec.wait("on_resumption_update", n)
            emu.send_go_away(time_left=10.0)
            rec.wait("on_reconnect", n)
        rec.wait("on_resumption_update", 3)
        emu.drop()
        rec.wait("on_reconnect", 3)
        assert session.ask("still there?", timeout=10 * TIMEOUT).text
    connections = emu.connections
    assert len(connections) == 4 and all(c.auth == "token_header" for c in connections)
    assert all(c.resumed_from for c in connections[1:])
    assert provider.minted == 4 and len(emu.tokens) == 4
    assert all(t.used == 1 for t in emu.tokens)
    assert provider.token is not None and provider.token.name == emu.tokens[-1].name
    assert provider.token.name not in repr(provider) and KEY not in repr(provider)


def test_provider_reuses_then_reminds_over_a_long_session(
        make_emulator: Callable[..., Any]) -> None:
    """uses=0: a token serves dials until it is within refresh_margin of a deadline, then a
    new one is minted; over a time-scaled hour of rotations no connection meets an expired
    token."""
    emu = make_emulator(api_key=KEY, time_scale=0.001, connection_lifetime=300.0,
                        go_away_notice=30.0)
    provider = auth.EphemeralTokenProvider(
        KEY, uses=0, lifetime=datetime.timedelta(hours=1),
        new_session_lifetime=datetime.timedelta(minutes=40), refresh_margin=1.0,
        base_url=emu.rest_url)
    client = livesync.Client(token_provider=provider, base_url=emu.base_url)
    with client.connect(MODEL, config=TEXT, reconnect=FAST) as session:
        # Connections last 0.3 s, tokens may start sessions for 2.4 s - 1.0 s margin
        # (a margin wide enough for a dial on a loaded machine).
        emu.wait_for_connections(10, timeout=60 * TIMEOUT)
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    connections = emu.connections
    tokens = emu.tokens
    assert 2 <= len(tokens) < len(connections)
    assert provider.minted == len(tokens)
    assert all(c.auth == "token_header" for c in connections)
    assert all(c.close_code != 1007 for c in connections), [
        (c.close_code, c.close_reason) for c in connections]


def test_provider_is_thread_safe(emu: Any) -> None:
    """Concurrent calls mint one token per `uses` hand-outs, never more."""
    provider = auth.EphemeralTokenProvider(KEY, uses=2, base_url=emu.rest_url)
    barrier = threading.Barrier(8)
    names: List[str] = []
    lock = threading.Lock()

    def dial() -> None:
        barrier.wait()
        name = provider()
        with lock:
            names.append(name)

    threads = [threading.Thread(target=dial) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(names) == 8 and provider.minted == 4
    assert sorted(names.count(n) for n in set(names)) == [2, 2, 2, 2]


@pytest.mark.parametrize("kwargs, field", [
    ({"refresh_margin": 120.0}, "refresh_margin"),
    ({"lifetime": 0}, "lifetime"),
    ({"new_session_lifetime": "1m"}, "new_session_lifetime"),
    ({"uses": -1}, "uses"),
    ({"base_url": "wss://x"}, "base_url"),
])
def test_provider_checks_arguments_at_once(kwargs: Any, field: str) -> None:
    """Bad provider arguments raise InvalidConfig at construction, before any I/O."""
    with pytest.raises(livesync.InvalidConfig) as info:
        auth.EphemeralTokenProvider(KEY, **kwargs)
    assert info.value.field == field


def test_provider_failure_is_a_failed_dial(emu: Any) -> None:
    """A mint that fails (429 after the retries) fails the dial; connect() reports it and the
    key is not in the error."""
    emu.refuse_rest(10, 429, retry_after=0)
    provider = auth.EphemeralTokenProvider(KEY, base_url=emu.rest_url, retries=0)
    client = livesync.Client(token_provider=provider, base_url=emu.base_url)
    with pytest.raises(livesync.LiveSyncError) as info:
        client.connect(MODEL, config=TEXT, reconnect=False, open_timeout=5)
    assert emu.connections == []
    assert_no_key(texts_of(info.value))


# --- google_auth_token_provider -----------------------------------------------------------


class FakeCredentials:
    """The google-auth Credentials surface the provider uses: token, valid, refresh()."""

    def __init__(self, tokens: List[str]) -> None:
        self.token: Optional[str] = None
        self.valid = False
        self.tokens = tokens
        self.refreshes = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def refresh(self, request: Any) -> None:
        self.started.set()
        self.release.wait(10)
        self.refreshes += 1
        self.token, self.valid = self.tokens[self.refreshes - 1], True


def test_google_auth_provider_refreshes_only_when_invalid() -> None:
    """The provider refreshes a credential that is not valid and returns its token; a valid
    one is returned as is; the request object is passed to refresh()."""
    creds = FakeCredentials(["t1", "t2"])
    provider = auth.google_auth_token_provider(creds, request=object())
    assert provider() == "t1" and provider() == "t1" and creds.refreshes == 1
    creds.valid = False
    assert provider() == "t2" and creds.refreshes == 2
    assert "t2" not in repr(provider)


def test_google_auth_provider_serializes_refreshes() -> None:
    """Concurrent dials with an expired credential refresh it once."""
    creds = FakeCredentials(["t1"])
    creds.release.clear()
    provider = auth.google_auth_token_provider(creds, request=object())
    results: List[str] = []
    threads = [threading.Thread(target=lambda: results.append(provider())) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert creds.started.wait(10)
    creds.release.set()
    for thread in threads:
        thread.join(10)
    assert results == ["t1"] * 4 and creds.refreshes == 1


def test_google_auth_provider_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not a credential → InvalidConfig; google-auth missing → ImportError naming the extra."""
    with pytest.raises(livesync.InvalidConfig) as info:
        auth.google_auth_token_provider("token")
    assert info.value.field == "credentials"
    monkeypatch.setitem(sys.modules, "google.auth.transport.requests", None)
    with pytest.raises(ImportError, match=r"pip install 'livesync\[vertex\]'"):
        auth.google_auth_token_provider(FakeCredentials([]))


def test_google_auth_credentials_on_vertex(emu: Any) -> None:
    """A real google.oauth2 Credentials with an expired token is refreshed (through its
    refresh handler and a google.auth Request) before the first dial and again when it has
    expired at a rotation; each connection carries the token current at its dial."""
    credentials_module = pytest.importorskip("google.oauth2.credentials")
    issued: List[str] = []

    def refresh_handler(request: Any, scopes: Any = None) -> Tuple[str, datetime.datetime]:
        token = "ya29.test-%d-%s" % (len(issued), uuid.uuid4().hex)
        issued.append(token)
        emu.bearer_tokens.add(token)
        return token, naive_utc() + datetime.timedelta(hours=1)

    credentials = credentials_module.Credentials(
        token="ya29.stale", expiry=naive_utc() - datetime.timedelta(minutes=1),
        refresh_handler=refresh_handler)
    client = livesync.Client(
        vertexai=True, project="p", location="us-central1", base_url=emu.base_url,
        token_provider=auth.google_auth_token_provider(credentials))
    rec = Recorder()
    with client.connect(MODEL, config=TEXT, reconnect=FAST,
                        on_reconnect=rec.on_reconnect) as session:
        assert len(issued) == 1 and credentials.token == issued[0]
        emu.bearer_tokens.discard(issued[0])  # revoked: a dial with it would get HTTP 401
        credentials.expiry = naive_utc() - datetime.timedelta(seconds=1)
        emu.send_go_away(time_left=10.0)
        rec.wait("on_reconnect")
        assert session.ask("hello", timeout=10 * TIMEOUT).text
    assert len(issued) == 2
    assert [c.auth for c in emu.connections] == ["bearer", "bearer"]
    assert all(u.status == 101 for u in emu.upgrades)


def naive_utc() -> datetime.datetime:
    return datetime.datetime.now(UTC).replace(tzinfo=None)


# --- examples/vertex.py -------------------------------------------------------------------


def test_vertex_example_runs_against_the_emulator() -> None:
    """examples/vertex.py refreshes its google-auth credential for the first dial and
    again for the dial after the token expired, and every connection is a bearer one."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("google.oauth2.credentials")
    path = Path(__file__).resolve().parents[2] / "examples" / "vertex.py"
    spec = importlib.util.spec_from_file_location("example_vertex", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    refreshed = module.run_on_emulator()
    assert len(refreshed) == 2 and len(set(refreshed)) == 2


def test_vertex_example_script(capfd: pytest.CaptureFixture[str]) -> None:
    """``python examples/vertex.py`` exits 0 and prints the refreshes and the rotation."""
    import os
    import subprocess
    from pathlib import Path

    pytest.importorskip("google.oauth2.credentials")
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root)] + sys.path))
    result = subprocess.run([sys.executable, str(root / "examples" / "vertex.py")],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    for line in ("[credential refreshed: access token #1]",
                 "[credential refreshed: access token #2]",
                 "[planned reconnect: resumed=True]",
                 "connections: 2, all with a bearer token: True",
                 "credential refreshes: 2"):
        assert line in result.stdout, result.stdout
    assert "Traceback" not in result.stderr
