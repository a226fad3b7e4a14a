"""REST endpoints of the emulator: ``GET /{version}/models[/...]``, ``POST /v1alpha/auth_tokens``.

Served by a small ``http.server.ThreadingHTTPServer`` on its own port
(``Emulator.rest_url``): websockets' HTTP parser refuses request bodies on
every supported version, so ``POST`` cannot share the WebSocket port. Plain
``GET`` requests (no ``Upgrade`` header) that reach the WebSocket port are
answered by the same code through ``process_request``.
"""

from __future__ import annotations

import base64
import hmac
import http
import http.server
import json
import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from ._records import RestRecord, TokenRecord
from ._registry import RetryAfter
from ._wire import (
    as_int,
    error_body,
    get,
    has,
    parse_rfc3339,
    redact_headers,
    redact_path,
    rfc3339,
)

if TYPE_CHECKING:  # pragma: no cover
    from ._registry import Registry

JSON = "application/json; charset=UTF-8"

REST_UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
REST_KEY_INVALID = "API key not valid. Please pass a valid API key."


def _route(path: str) -> Tuple[str, Dict[str, List[str]]]:
    # Strip leading slashes first: urlsplit("//v1beta/...") would take "v1beta" as a host.
    parts = urlsplit("/" + path.lstrip("/"))
    route = parts.path
    return route, parse_qs(parts.query)


def _check_key(
    reg: Registry, headers: Mapping[str, str], query: Dict[str, List[str]]
) -> Optional[Tuple[int, str]]:
    key = headers.get("x-goog-api-key") or (query.get("key") or [""])[0]
    if not key:
        return 403, error_body(403, REST_UNREGISTERED, "PERMISSION_DENIED")
    if not hmac.compare_digest(key.encode(), reg.api_key.encode()):
        return 400, error_body(400, REST_KEY_INVALID, "INVALID_ARGUMENT")
    return None


def model_resource(name: str, reg: Optional[Registry] = None) -> Dict[str, Any]:
    """Return the ``Model`` resource the emulator reports for ``name``.

    Live models support ``bidiGenerateContent`` and ``countTokens``;
    ``rest_only_models`` support ``generateContent`` and ``countTokens`` only.
    """
    live = reg is None or name not in reg.options.rest_only_models
    methods = (["bidiGenerateContent", "countTokens"] if live
               else ["generateContent", "countTokens", "createCachedContent"])
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "description": "livesync emulator model (deterministic, offline).",
        "inputTokenLimit": 131072,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": methods,
        "temperature": 1.0,
        "maxTemperature": 2.0,
        "topP": 0.95,
        "topK": 64,
    }


class Reply(NamedTuple):
    """A REST answer: status, JSON text and the ``Retry-After`` to send (None: no header)."""

    status: int
    body: str
    retry_after: RetryAfter = None


#: Google error statuses for the HTTP statuses the emulator can be told to refuse with.
GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
    404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
#: The messages the real service sends with them (the default refusal text).
GOOGLE_MESSAGE = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "The request timed out. Please try again.",
}
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def refusal_body(status: int, message: Optional[str]) -> str:
    """The Google error JSON for a refused REST request."""
    if message is None:
        message = GOOGLE_MESSAGE.get(status) or http.HTTPStatus(status).phrase
    return error_body(status, message, GOOGLE_STATUS.get(status, "UNKNOWN"))


def handle(
    reg: Registry, method: str, path: str, headers: Mapping[str, str], body: bytes,
    port: str = "rest",
) -> Reply:
    """Answer one REST request (records it; applies scheduled REST faults first).

    ``headers`` must have lower-case names. Blocks for a delay scheduled with
    ``Emulator.delay_rest`` (woken early by ``stop()``).
    """
    with reg.cond:
        delay = reg.faults.rest_delays.pop(0) if reg.faults.rest_delays else 0.0
        refusal = reg.faults.rest_refusals.pop(0) if reg.faults.rest_refusals else None
        if delay > 0:
            end = time.monotonic() + delay
            reg.cond.wait_for(lambda: reg.stopping or time.monotonic() >= end, delay)
    if refusal is not None:
        reply = Reply(refusal.status, refusal.body, refusal.retry_after)
    else:
        reply = _answer(reg, method, path, headers, body)
    try:
        decoded: Any = json.loads(body.decode("utf-8")) if body else None
    except (ValueError, UnicodeDecodeError):
        decoded = None
    record = RestRecord(
        method=method, path=redact_path(path), headers=redact_headers(headers.items()),
        body=decoded, status=reply.status, port=port,
    )
    with reg.cond:
        reg.rest_requests.append(record)
        reg.cond.notify_all()
    return reply


def _answer(
    reg: Registry, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Reply:
    route, query = _route(path)
    model = re.fullmatch(r"/(v1beta|v1alpha|v1)/models/([^/:]+)", route)
    listing = re.fullmatch(r"/(v1beta|v1alpha|v1)/models", route)
    if route == "/v1alpha/auth_tokens":
        if method != "POST":
            return Reply(405, error_body(405, "Method not allowed.", "METHOD_NOT_ALLOWED"))
        return Reply(*(_check_key(reg, headers, query) or _mint(reg, body)))
    if (model or listing) and method == "GET":
        failure = _check_key(reg, headers, query)
        if failure:
            return Reply(*failure)
        if listing:
            return Reply(*_list(reg, listing.group(1), query))
        assert model is not None
        version, name = model.group(1), model.group(2)
        if reg.options.rest_serves(name, version):
            return Reply(200, json.dumps(model_resource(name, reg), indent=2))
        message = (
            f"models/{name} is not found for API version {version}, or is not supported "
            "for GetModel. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        return Reply(404, error_body(404, message, "NOT_FOUND"))
    return Reply(404, error_body(404, f"Method not found: {method} {route}", "NOT_FOUND"))


def _list(reg: Registry, version: str, query: Dict[str, List[str]]) -> Tuple[int, str]:
    """``models.list``: ``pageSize`` (default 50, at most 1000) and an opaque ``pageToken``."""
    size_text = (query.get("pageSize") or [""])[0]
    size = as_int(size_text, -1) if size_text else DEFAULT_PAGE_SIZE
    if size < 0:
        return 400, error_body(400, "Invalid value at 'page_size' (TYPE_INT32).",
                               "INVALID_ARGUMENT")
    size = min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    token = (query.get("pageToken") or [""])[0]
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")[5:])
        except (ValueError, UnicodeError):
            start = -1
        if start < 0:
            return 400, error_body(400, "Invalid page token.", "INVALID_ARGUMENT")
    names = [m for m in tuple(reg.options.models) + tuple(reg.options.rest_only_models)
             if reg.options.rest_serves(m, version)]
    page = names[start:start + size]
    answer: Dict[str, Any] = {"models": [model_resource(m, reg) for m in page]}
    if start + size < len(names):
        answer["nextPageToken"] = base64.urlsafe_b64encode(
            f"after{start + size}".encode("ascii")).decode("ascii")
    return 200, json.dumps(answer, indent=2)


def _mint(reg: Registry, body: bytes) -> Tuple[int, str]:
    try:
        data = json.loads(body.decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        return 400, error_body(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
    if not isinstance(data, dict):
        return 400, error_body(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
    uses = as_int(get(data, "uses"), -1) if has(data, "uses") else 1
    if uses < 0:
        return 400, error_body(400, "Invalid value at 'uses'.", "INVALID_ARGUMENT")
    now_wall = time.time()
    now_mono = time.monotonic()
    scale = reg.options.time_scale
    times: Dict[str, Tuple[float, float]] = {}
    for field, default in (("expireTime", 1800.0), ("newSessionExpireTime", 60.0)):
        value = get(data, field)
        if value is None:
            offset = default * scale
        else:
            moment = parse_rfc3339(value)
            if moment is None:
                message = f"Invalid value at '{field}' (google.protobuf.Timestamp)."
                return 400, error_body(400, message, "INVALID_ARGUMENT")
            offset = (moment - now_wall) * scale
        times[field] = (now_mono + offset, now_wall + offset)
    setup = get(data, "bidiGenerateContentSetup")
    if isinstance(setup, dict) and list(setup) == ["setup"] and isinstance(setup["setup"], dict):
        setup = setup["setup"]
    mask_value = get(data, "fieldMask")
    mask: Optional[List[str]] = None
    if isinstance(mask_value, str):
        mask = [m.strip() for m in mask_value.split(",") if m.strip()]
    elif isinstance(mask_value, list):
        mask = [str(m).strip() for m in mask_value if str(m).strip()]
    name = "auth_tokens/" + secrets.token_hex(20)
    token = TokenRecord(
        name=name,
        uses=uses,
        used=0,
        expire_at=times["expireTime"][0],
        new_session_expire_at=times["newSessionExpireTime"][0],
        setup=setup if isinstance(setup, dict) else None,
        field_mask=mask,
    )
    reg.add_token(token)
    response: Dict[str, Any] = {"name": name}
    if uses:
        response["uses"] = uses
    response["expireTime"] = rfc3339(times["expireTime"][1])
    response["newSessionExpireTime"] = rfc3339(times["newSessionExpireTime"][1])
    return 200, json.dumps(response, indent=2)


def retry_after_value(retry_after: Any) -> str:
    """Format a ``Retry-After`` value: whole seconds as an integer, strings as given."""
    if isinstance(retry_after, str):
        return retry_after
    if float(retry_after).is_integer():
        return str(int(retry_after))
    return repr(float(retry_after))


class RestServer(http.server.ThreadingHTTPServer):
    """Threading HTTP server for the REST endpoints; joins its request threads on close."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: Tuple[str, int], reg: Registry) -> None:
        """Serve ``reg`` (the emulator's registry) on ``address``."""
        self.reg = reg
        super().__init__(address, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: RestServer
    protocol_version = "HTTP/1.0"

    def _answer(self, method: str) -> None:
        threading.current_thread().name = "emulator-rest-request"
        length = as_int(self.headers.get("Content-Length"), 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = handle(self.server.reg, method, self.path, headers, body)
        raw = reply.body.encode("utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(raw)))
        if reply.retry_after is not None:
            self.send_header("Retry-After", retry_after_value(reply.retry_after))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._answer("DELETE")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default stderr access log (it would print request paths)."""
