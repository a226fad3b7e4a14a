"""REST endpoints of the emulator: ``GET /v1beta/models/...`` and ``POST /v1alpha/auth_tokens``.

Served by a small ``http.server.ThreadingHTTPServer`` on its own port
(``Emulator.rest_url``): websockets' HTTP parser refuses request bodies on
every supported version, so ``POST`` cannot share the WebSocket port. Plain
``GET`` requests (no ``Upgrade`` header) that reach the WebSocket port are
answered by the same code through ``process_request``.
"""

from __future__ import annotations

import hmac
import http.server
import json
import re
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

from ._records import TokenRecord
from ._wire import as_int, error_body, get, has, parse_rfc3339, rfc3339

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


def model_resource(name: str) -> Dict[str, Any]:
    """Return the ``Model`` resource the emulator reports for ``name``."""
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "description": "livesync emulator model (deterministic, offline).",
        "inputTokenLimit": 131072,
        "outputTokenLimit": 8192,
        "supportedGenerationMethods": ["bidiGenerateContent", "countTokens"],
    }


def handle(
    reg: Registry, method: str, path: str, headers: Mapping[str, str], body: bytes
) -> Tuple[int, str]:
    """Answer one REST request; return ``(status, JSON body)``.

    ``headers`` must have lower-case names.
    """
    route, query = _route(path)
    model = re.fullmatch(r"/(v1beta|v1alpha|v1)/models/([^/:]+)", route)
    listing = re.fullmatch(r"/(v1beta|v1alpha|v1)/models", route)
    if route == "/v1alpha/auth_tokens":
        if method != "POST":
            return 405, error_body(405, "Method not allowed.", "METHOD_NOT_ALLOWED")
        return _check_key(reg, headers, query) or _mint(reg, body)
    if (model or listing) and method == "GET":
        failure = _check_key(reg, headers, query)
        if failure:
            return failure
        if listing:
            version = listing.group(1)
            models = [model_resource(m) for m in reg.options.models
                      if reg.options.serves(m, version)]
            return 200, json.dumps({"models": models}, indent=2)
        assert model is not None
        version, name = model.group(1), model.group(2)
        if reg.options.serves(name, version):
            return 200, json.dumps(model_resource(name), indent=2)
        message = (
            f"models/{name} is not found for API version {version}, or is not supported "
            "for GetModel. Call ListModels to see the list of available models and their "
            "supported methods."
        )
        return 404, error_body(404, message, "NOT_FOUND")
    return 404, error_body(404, f"Method not found: {method} {route}", "NOT_FOUND")


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
        status, text = handle(self.server.reg, method, self.path, headers, body)
        raw = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(raw)))
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
