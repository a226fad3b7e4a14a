"""Endpoints, authentication, ephemeral tokens, Vertex and REST."""

from __future__ import annotations

import datetime
import json
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Optional, Tuple

import pytest
import websocket

from livesync.emulator import Emulator
from tests.emulator.helpers import TEXT_CONFIG, WsClient

VERTEX_MODEL = "projects/p/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"

Connect = Callable[..., WsClient]


def http(emu: Emulator, method: str, path: str, body: Optional[Dict[str, Any]] = None,
         key: Optional[str] = None, base: Optional[str] = None) -> Tuple[int, Dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request((base or emu.rest_url) + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("x-goog-api-key", key)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def mint(emu: Emulator, **body: Any) -> Dict[str, Any]:
    status, reply = http(emu, "POST", "/v1alpha/auth_tokens", body, key=emu.api_key)
    assert status == 200, reply
    return reply


def test_api_key_header_is_accepted(emu: Emulator, connect: Connect) -> None:
    """An x-goog-api-key header authenticates the Gemini API endpoint."""
    client = connect(emu)
    assert client.setup(generationConfig=TEXT_CONFIG) == {"setupComplete": {}}
    assert emu.connections[0].auth == "api_key_header"


def test_api_key_query_is_accepted(emu: Emulator, connect: Connect) -> None:
    """A ?key= query parameter authenticates too; the key is redacted in the record."""
    client = connect(emu, emu.url() + "?key=" + emu.api_key, key=False)
    client.setup()
    record = emu.connections[0]
    assert record.auth == "api_key_query"
    assert emu.api_key not in record.path and record.path.endswith("?key=[secure]")


def test_double_leading_slash_is_accepted(emu: Emulator, connect: Connect) -> None:
    """``//ws/...`` (google-genai joins base_url "…/" and "/ws/…") works, query included."""
    url = emu.base_url + "/" + emu.url()[len(emu.base_url):] + "?key=" + emu.api_key
    client = connect(emu, url, key=False)
    assert client.setup(generationConfig=TEXT_CONFIG) == {"setupComplete": {}}
    record = emu.connections[0]
    assert record.path.startswith("//ws/google.ai.generativelanguage.v1beta.")
    assert record.backend == "gemini" and record.api_version == "v1beta"
    assert record.auth == "api_key_query"


def test_wrong_key_closes_1007_after_upgrade(emu: Emulator, connect: Connect) -> None:
    """A wrong key is accepted at the upgrade, then closed 1007 with the real reason."""
    client = connect(emu, key=False, headers=["x-goog-api-key: wrong"])
    assert client.closed() == (1007, "API key not valid. Please pass a valid API key.")


def test_missing_key_closes_1007(emu: Emulator, connect: Connect) -> None:
    """No credentials at all also closes 1007 "API key not valid"."""
    assert connect(emu, key=False).closed()[0] == 1007


def test_token_on_plain_endpoint_closes_1008(emu: Emulator, connect: Connect) -> None:
    """An ephemeral token on BidiGenerateContent closes 1008 "unregistered callers"."""
    token = mint(emu)["name"]
    client = connect(emu, key=False, headers=["Authorization: Token " + token])
    code, reason = client.closed()
    assert code == 1008 and reason.startswith("Method doesn't allow unregistered callers")


def test_unknown_path_is_refused_with_404(emu: Emulator, connect: Connect) -> None:
    """Any other path refuses the upgrade with HTTP 404 and records it."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emu, emu.base_url + "/ws/nope")
    assert info.value.status_code == 404
    assert emu.upgrades[-1].status == 404 and emu.connections == []


def test_upgrade_records_redact_secrets(emu: Emulator, connect: Connect) -> None:
    """Recorded headers show [secure] for x-goog-api-key and authorization; reprs too."""
    connect(emu, headers=["Authorization: Bearer secret-bearer"]).setup()
    record = emu.connections[0]
    headers = {k.lower(): v for k, v in record.headers}
    assert headers["x-goog-api-key"] == "[secure]" and headers["authorization"] == "[secure]"
    for text in (repr(record), repr(emu.upgrades), repr(emu)):
        assert emu.api_key not in text and "secret-bearer" not in text


def test_token_mint_and_constrained_endpoint(emu: Emulator, connect: Connect) -> None:
    """A minted token opens v1alpha BidiGenerateContentConstrained with Authorization: Token."""
    reply = mint(emu, uses=2)
    assert reply["name"].startswith("auth_tokens/") and reply["uses"] == 2
    for field in ("expireTime", "newSessionExpireTime"):
        assert reply[field].endswith("Z")
    client = connect(emu, emu.url(constrained=True), key=False,
                     headers=["Authorization: Token " + reply["name"]])
    client.setup(generationConfig=TEXT_CONFIG)
    assert emu.connections[0].auth == "token_header"
    assert emu.connections[0].method == "BidiGenerateContentConstrained"
    assert emu.tokens[0].used == 1


def test_token_query_parameter_works(emu: Emulator, connect: Connect) -> None:
    """?access_token= (the JS SDK form) authenticates the constrained endpoint."""
    token = mint(emu)["name"]
    connect(emu, emu.url(constrained=True) + "?access_token=" + token, key=False).setup()
    assert emu.connections[0].auth == "token_query"


def test_token_uses_are_consumed(emu: Emulator, connect: Connect) -> None:
    """A one-use token starts one session; the next new session closes 1007."""
    token = mint(emu, uses=1)["name"]
    header = ["Authorization: Token " + token]
    connect(emu, emu.url(constrained=True), key=False, headers=header).setup()
    second = connect(emu, emu.url(constrained=True), key=False, headers=header)
    second.send({"setup": {"model": "models/gemini-live-2.5-flash"}})
    assert second.closed() == (1007, "The auth token has no uses left.")


def test_token_resume_does_not_consume_a_use(emu: Emulator, connect: Connect) -> None:
    """Resuming with a one-use token works: resumption does not count as a use."""
    token = mint(emu, uses=1)["name"]
    header = ["Authorization: Token " + token]
    first = connect(emu, emu.url(constrained=True), key=False, headers=header)
    first.setup(sessionResumption={})
    handle = first.message()["sessionResumptionUpdate"]["newHandle"]
    first.ws.close()
    emu.wait_closed(1)
    again = connect(emu, emu.url(constrained=True), key=False, headers=header)
    again.setup(sessionResumption={"handle": handle})
    assert emu.tokens[0].used == 1 and emu.connections[1].resumed


def test_token_new_session_expiry_is_scaled(make_emulator: Callable[..., Emulator],
                                            connect: Connect) -> None:
    """newSessionExpireTime in the past (after scaling) refuses new sessions with 1007."""
    emu = make_emulator()
    past = (datetime.datetime.now(datetime.timezone.utc)
            - datetime.timedelta(seconds=5)).isoformat()
    token = mint(emu, newSessionExpireTime=past)["name"]
    client = connect(emu, emu.url(constrained=True), key=False,
                     headers=["Authorization: Token " + token])
    client.send({"setup": {"model": "models/gemini-live-2.5-flash"}})
    code, reason = client.closed()
    assert code == 1007 and "newSessionExpireTime" in reason


def test_token_locked_setup_overrides_client(emu: Emulator, connect: Connect) -> None:
    """Fields locked in the token's setup override the client's setup."""
    token = mint(emu, bidiGenerateContentSetup={
        "model": "models/gemini-live-2.5-flash",
        "generationConfig": {"responseModalities": ["TEXT"], "temperature": 0.1}})["name"]
    client = connect(emu, emu.url(constrained=True), key=False,
                     headers=["Authorization: Token " + token])
    client.setup(model="models/gemini-2.0-flash-live-001",
                 generationConfig={"responseModalities": ["AUDIO"], "topK": 3})
    effective = emu.connections[0].effective_setup
    assert effective is not None
    assert effective["model"] == "models/gemini-live-2.5-flash"
    assert effective["generationConfig"] == {
        "responseModalities": ["TEXT"], "temperature": 0.1, "topK": 3}
    client.text("hello")
    assert client.turn()[0]["serverContent"]["modelTurn"]["parts"][0]["text"]


def test_token_field_mask_locks_only_listed_fields(emu: Emulator, connect: Connect) -> None:
    """With fieldMask, only the listed paths are forced; other token fields are defaults."""
    token = mint(emu, fieldMask="generationConfig.temperature", bidiGenerateContentSetup={
        "model": "models/gemini-live-2.5-flash",
        "generationConfig": {"temperature": 0.1, "topK": 5}})["name"]
    client = connect(emu, emu.url(constrained=True), key=False,
                     headers=["Authorization: Token " + token])
    client.setup(model="models/gemini-2.0-flash-live-001",
                 generationConfig={"temperature": 0.9, "top_k": 2})
    effective = emu.connections[0].effective_setup
    assert effective is not None
    assert effective["model"] == "models/gemini-2.0-flash-live-001"
    assert effective["generationConfig"]["temperature"] == 0.1
    assert effective["generationConfig"]["topK"] == 2


def test_unknown_token_closes_1007(emu: Emulator, connect: Connect) -> None:
    """An unknown token on the constrained endpoint closes 1007."""
    client = connect(emu, emu.url(constrained=True), key=False,
                     headers=["Authorization: Token auth_tokens/nope"])
    assert client.closed() == (1007, "The auth token is not valid.")


def test_vertex_setup_complete_has_session_id(emu: Emulator, connect: Connect) -> None:
    """Vertex: bearer auth, resource-name model, setupComplete carries a UUID sessionId."""
    client = connect(emu, emu.url("vertex"), key=False,
                     headers=["Authorization: Bearer " + emu.api_key])
    complete = client.setup(model=VERTEX_MODEL, generationConfig=TEXT_CONFIG)
    session_id = complete["setupComplete"]["sessionId"]
    assert len(session_id) == 36 and session_id in emu.sessions
    record = emu.connections[0]
    assert (record.backend, record.api_version, record.auth) == ("vertex", "v1beta1", "bearer")


def test_vertex_usage_uses_vertex_names(emu: Emulator, connect: Connect) -> None:
    """Vertex usageMetadata: candidatesTokenCount, candidatesTokensDetails, trafficType."""
    client = connect(emu, emu.url("vertex", version="v1"), key=False,
                     headers=["Authorization: Bearer " + emu.api_key])
    client.setup(model=VERTEX_MODEL, generationConfig=TEXT_CONFIG)
    client.text("hello")
    usage = client.turn()[-1]["usageMetadata"]
    assert usage["trafficType"] == "ON_DEMAND"
    assert usage["candidatesTokenCount"] > 0 and "responseTokenCount" not in usage
    assert usage["candidatesTokensDetails"][0]["modality"] == "TEXT"


def test_vertex_bearer_tokens_are_mutable(emu: Emulator, connect: Connect) -> None:
    """Tokens in emu.bearer_tokens are accepted; removed or unknown ones get HTTP 401."""
    emu.bearer_tokens.add("fresh-token")
    connect(emu, emu.url("vertex"), key=False,
            headers=["Authorization: Bearer fresh-token"]).setup(model=VERTEX_MODEL)
    emu.bearer_tokens.discard("fresh-token")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emu, emu.url("vertex"), key=False, headers=["Authorization: Bearer fresh-token"])
    assert info.value.status_code == 401
    assert b"UNAUTHENTICATED" in (info.value.resp_body or b"")


def test_vertex_model_must_be_a_resource_name(emu: Emulator, connect: Connect) -> None:
    """Vertex rejects a Gemini-style model name with 1007."""
    client = connect(emu, emu.url("vertex"), key=False,
                     headers=["Authorization: Bearer " + emu.api_key])
    client.send({"setup": {"model": "models/gemini-live-2.5-flash"}})
    code, reason = client.closed()
    assert code == 1007 and "publishers" in reason


def test_rest_get_model(emu: Emulator) -> None:
    """GET /v1beta/models/{model} returns the model with bidiGenerateContent."""
    status, body = http(emu, "GET", "/v1beta/models/gemini-live-2.5-flash", key=emu.api_key)
    assert status == 200 and body["name"] == "models/gemini-live-2.5-flash"
    assert "bidiGenerateContent" in body["supportedGenerationMethods"]


def test_rest_accepts_a_doubled_leading_slash(emu: Emulator) -> None:
    """//v1beta/models/{model} is routed like /v1beta/... (SDKs build such URLs)."""
    status, body = http(emu, "GET", "//v1beta/models/gemini-live-2.5-flash", key=emu.api_key)
    assert status == 200 and "bidiGenerateContent" in body["supportedGenerationMethods"]


def test_rest_unknown_model_is_404(emu: Emulator) -> None:
    """An unknown model is a 404 with a Google error body."""
    status, body = http(emu, "GET", "/v1beta/models/nope", key=emu.api_key)
    assert status == 404 and body["error"]["status"] == "NOT_FOUND"
    assert body["error"]["code"] == 404


def test_rest_bad_or_missing_key(emu: Emulator) -> None:
    """A wrong key is 400 INVALID_ARGUMENT; no key is 403 PERMISSION_DENIED."""
    status, body = http(emu, "GET", "/v1beta/models/gemini-live-2.5-flash", key="wrong")
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"
    status, body = http(emu, "GET", "/v1beta/models/gemini-live-2.5-flash")
    assert status == 403 and body["error"]["status"] == "PERMISSION_DENIED"


def test_rest_get_on_the_websocket_port(emu: Emulator) -> None:
    """A plain GET (no Upgrade) on the WebSocket port gets a proper HTTP answer."""
    base = "http://" + emu.base_url[len("ws://"):]
    status, body = http(emu, "GET", "/v1beta/models/gemini-live-2.5-flash",
                        key=emu.api_key, base=base)
    assert status == 200 and body["name"] == "models/gemini-live-2.5-flash"
    status, body = http(emu, "GET", "/nothing", key=emu.api_key, base=base)
    assert status == 404 and body["error"]["code"] == 404


def raw_http(emu: Emulator, method: str, path: str, body: Optional[Dict[str, Any]] = None,
             key: Optional[str] = None) -> Tuple[int, Dict[str, Any], Dict[str, str]]:
    """Like :func:`http`, plus the response headers (lower-case names)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(emu.rest_url + path, data=data, method=method)
    if key is not None:
        request.add_header("x-goog-api-key", key)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as reply:
            return reply.status, json.loads(reply.read()), {
                k.lower(): v for k, v in reply.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), {k.lower(): v for k, v in exc.headers.items()}


def test_rest_refusals_are_google_errors_with_retry_after(emu: Emulator) -> None:
    """refuse_rest answers the next n requests (either port) with a Google error and
    Retry-After, then normal service resumes; refused requests are recorded."""
    emu.refuse_rest(1, 429, retry_after=2)
    emu.refuse_rest(1, 503, message="Try later.", retry_after=0.5)
    status, body, headers = raw_http(emu, "POST", "/v1alpha/auth_tokens", {}, emu.api_key)
    assert status == 429 and headers["retry-after"] == "2"
    assert body["error"] == {"code": 429, "status": "RESOURCE_EXHAUSTED",
                             "message": "Resource has been exhausted (e.g. check quota)."}
    base = "http://" + emu.base_url[len("ws://"):]
    status, body = http(emu, "GET", "/v1beta/models/gemini-live-2.5-flash", key=emu.api_key,
                        base=base)
    assert status == 503 and body["error"]["status"] == "UNAVAILABLE"
    assert body["error"]["message"] == "Try later."
    status, _, headers = raw_http(emu, "POST", "/v1alpha/auth_tokens", {}, emu.api_key)
    assert status == 200 and "retry-after" not in headers
    assert [(r.port, r.status) for r in emu.rest_requests] == [
        ("rest", 429), ("ws", 503), ("rest", 200)]


def test_rest_requests_are_recorded_without_secrets(emu: Emulator) -> None:
    """rest_requests keeps method, path, headers and the decoded JSON body; the key is
    redacted in headers and query, and absent from every repr."""
    mint(emu, uses=3, fieldMask="model")
    http(emu, "GET", "/v1beta/models/gemini-live-2.5-flash?key=" + emu.api_key)
    first, second = emu.rest_requests
    assert (first.method, first.path, first.status) == ("POST", "/v1alpha/auth_tokens", 200)
    assert first.body == {"uses": 3, "fieldMask": "model"}
    assert dict(first.headers)["x-goog-api-key"] == "[secure]"
    assert second.path.endswith("?key=[secure]") and second.body is None
    assert emu.api_key not in repr(emu.rest_requests)


def test_delay_rest_holds_a_request(emu: Emulator) -> None:
    """delay_rest holds the next request before answering it (a client read timeout)."""
    emu.delay_rest(5.0)
    request = urllib.request.Request(emu.rest_url + "/v1beta/models/gemini-live-2.5-flash")
    request.add_header("x-goog-api-key", emu.api_key)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(OSError):  # socket.timeout / TimeoutError / URLError
        opener.open(request, timeout=0.2)
    # The held request does not delay the next one, and stop() ends the wait.
    status, _ = http(emu, "GET", "/v1beta/models/gemini-live-2.5-flash", key=emu.api_key)
    assert status == 200


def test_stop_ends_a_rest_delay(make_emulator: Callable[..., Emulator]) -> None:
    """stop() wakes a request held by delay_rest instead of waiting the delay out."""
    import time

    emu = make_emulator()
    emu.delay_rest(30.0)
    request = urllib.request.Request(emu.rest_url + "/v1beta/models")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(OSError):
        opener.open(request, timeout=0.2)
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 10


def test_rest_list_models_pages(emu: Emulator) -> None:
    """GET /models honours pageSize and returns an opaque nextPageToken until the end."""
    names, token, pages = [], "", 0
    while True:
        query = "?pageSize=3" + ("&pageToken=" + token if token else "")
        status, body = http(emu, "GET", "/v1beta/models" + query, key=emu.api_key)
        assert status == 200 and len(body["models"]) <= 3
        names += [m["name"] for m in body["models"]]
        pages += 1
        token = body.get("nextPageToken", "")
        if not token:
            break
    assert pages == 3 and len(names) == len(set(names)) == 8
    status, body = http(emu, "GET", "/v1beta/models?pageToken=bogus", key=emu.api_key)
    assert status == 400 and body["error"]["status"] == "INVALID_ARGUMENT"


def test_rest_only_models(make_emulator: Callable[..., Emulator], connect: Connect) -> None:
    """rest_only_models are listed and found over REST without bidiGenerateContent, and a
    Live setup with one closes 1008 like an unknown model."""
    emu = make_emulator(rest_only_models=["gemini-2.5-pro"])
    status, body = http(emu, "GET", "/v1/models/gemini-2.5-pro", key=emu.api_key)
    assert status == 200
    assert "bidiGenerateContent" not in body["supportedGenerationMethods"]
    assert "generateContent" in body["supportedGenerationMethods"]
    status, listing = http(emu, "GET", "/v1beta/models", key=emu.api_key)
    assert "models/gemini-2.5-pro" in [m["name"] for m in listing["models"]]
    assert "models/gemini-2.5-flash" not in [m["name"] for m in listing["models"]]
    client = connect(emu)
    client.send({"setup": {"model": "models/gemini-2.5-pro"}})
    code, reason = client.closed()
    assert code == 1008 and "not supported for bidiGenerateContent" in reason
