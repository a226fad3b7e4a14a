"""Wire helpers of the emulator: JSON framing, Durations, close reasons, PCM.

Everything here follows the proto3 JSON mapping (docs/protocol.md) and is pure:
no sockets, no threads.
"""

from __future__ import annotations

import array
import base64
import binascii
import datetime
import json
import math
import re
import secrets
import sys
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

MAX_REASON_BYTES = 123
"""RFC 6455 limit for a close reason (125-byte control frame minus the code)."""

SENSITIVE_HEADERS = frozenset({"x-goog-api-key", "authorization", "cookie", "proxy-authorization"})
SENSITIVE_QUERY = frozenset({"key", "access_token"})
REDACTED = "[secure]"


def camel(name: str) -> str:
    """Return the lowerCamelCase form of a snake_case proto field name."""
    if "_" not in name:
        return name
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake(name: str) -> str:
    """Return the snake_case form of a lowerCamelCase proto field name."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def get(obj: Any, name: str, default: Any = None) -> Any:
    """Read field ``name`` (camelCase) from a decoded JSON object.

    The server accepts both the lowerCamelCase JSON name and the original
    snake_case proto name (proto3 JSON mapping), so both are looked up.
    """
    if not isinstance(obj, Mapping):
        return default
    if name in obj:
        return obj[name]
    alt = snake(name)
    if alt in obj:
        return obj[alt]
    return default


def has(obj: Any, name: str) -> bool:
    """Tell whether field ``name`` is present in either spelling."""
    return isinstance(obj, Mapping) and (name in obj or snake(name) in obj)


def camel_keys(obj: Mapping[str, Any]) -> Dict[str, Any]:
    """Return a shallow copy of ``obj`` with camelCase keys (one level only)."""
    return {camel(k): v for k, v in obj.items()}


def as_bool(value: Any) -> bool:
    """Interpret a proto bool that may be missing (missing means false)."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def as_int(value: Any, default: int = 0) -> int:
    """Interpret a proto integer, which may arrive as a JSON string (int64)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return default
    return default


def dumps(message: Any) -> str:
    """Serialize a server message like the real server: pretty-printed, 2-space indent."""
    return json.dumps(message, indent=2, ensure_ascii=False)


def format_duration(seconds: float) -> str:
    """Format a ``google.protobuf.Duration`` JSON value, e.g. ``"60s"``, ``"0.06s"``.

    At most 9 fractional digits; trailing zeros are trimmed; negative values
    are clamped to ``"0s"``.
    """
    if not math.isfinite(seconds) or seconds <= 0:
        return "0s"
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return (text or "0") + "s"


def truncate_reason(reason: str, limit: int = MAX_REASON_BYTES) -> str:
    """Cut a close reason to ``limit`` UTF-8 bytes on a character boundary."""
    raw = reason.encode("utf-8")
    if len(raw) <= limit:
        return reason
    return raw[:limit].decode("utf-8", "ignore")


def new_handle() -> str:
    """Return a fresh opaque resumption handle (64 URL-safe base64 characters)."""
    return "Ci" + secrets.token_urlsafe(46)


def decode_b64(data: Any) -> Optional[bytes]:
    """Decode proto ``bytes``: standard or URL-safe base64, padding optional.

    Returns None when the value is not valid base64.
    """
    if not isinstance(data, str):
        return None
    text = data.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def encode_b64(data: bytes) -> str:
    """Encode proto ``bytes`` the way the server does (standard alphabet, padded)."""
    return base64.b64encode(data).decode("ascii")


def mime_rate(mime: str, default: int = 16000) -> int:
    """Return the ``rate=`` parameter of an audio MIME type such as ``audio/pcm;rate=16000``."""
    match = re.search(r"rate\s*=\s*(\d+)", mime)
    if match:
        rate = int(match.group(1))
        if rate > 0:
            return rate
    return default


def pcm_samples(data: bytes) -> "array.array[int]":
    """Decode s16le mono PCM bytes into signed samples (len(data) must be even)."""
    samples = array.array("h")
    samples.frombytes(data)
    if sys.byteorder == "big":  # pragma: no cover - little-endian machines only in CI
        samples.byteswap()
    return samples


def frame_levels(data: bytes, rate: int, frame_ms: float = 10.0) -> List[Tuple[float, float]]:
    """Split PCM into frames and return ``(duration_s, rms)`` for each.

    RMS is computed on the signed 16-bit sample values (full scale 32768).
    """
    samples = pcm_samples(data)
    per_frame = max(1, int(rate * frame_ms / 1000.0))
    out: List[Tuple[float, float]] = []
    for start in range(0, len(samples), per_frame):
        chunk = samples[start:start + per_frame]
        energy = sum(s * s for s in chunk)
        out.append((len(chunk) / rate, math.sqrt(energy / len(chunk))))
    return out


_TONE_PERIOD = [int(6000 * math.sin(2 * math.pi * i / 60)) for i in range(60)]


def tone(seconds: float, rate: int = 24000) -> bytes:
    """Return a deterministic 400 Hz tone (s16le mono PCM) lasting ``seconds``.

    The waveform is exact and repeatable: sample ``i`` is
    ``int(6000 * sin(2*pi*(i % 60)/60))`` at 24 kHz.
    """
    count = max(0, int(round(seconds * rate)))
    reps, rest = divmod(count, len(_TONE_PERIOD))
    samples = array.array("h", _TONE_PERIOD * reps + _TONE_PERIOD[:rest])
    if sys.byteorder == "big":  # pragma: no cover
        samples.byteswap()
    return samples.tobytes()


def rfc3339(ts: float) -> str:
    """Format a POSIX timestamp as RFC 3339 UTC with microseconds and ``Z``."""
    moment = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)


def parse_rfc3339(text: Any) -> Optional[float]:
    """Parse an RFC 3339 / ISO 8601 timestamp into a POSIX timestamp.

    Accepts ``Z``, ``+HH:MM`` offsets and naive values (taken as UTC) and
    any number of fractional digits. Returns None if ``text`` does not parse.
    """
    if not isinstance(text, str):
        return None
    match = _RFC3339.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    frac = float(match.group(7)) if match.group(7) else 0.0
    zone = match.group(8)
    offset = 0
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    try:
        moment = datetime.datetime(
            year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return None
    return moment.timestamp() + frac - offset


def redact_headers(headers: Iterable[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """Return header pairs with credentials replaced by ``[secure]``."""
    return [
        (name, REDACTED if name.lower() in SENSITIVE_HEADERS else value)
        for name, value in headers
    ]


def redact_path(path: str) -> str:
    """Return a request path with ``key=`` and ``access_token=`` values redacted."""
    if "?" not in path:
        return path
    base, query = path.split("?", 1)
    parts = []
    for item in query.split("&"):
        name = item.split("=", 1)[0]
        parts.append(f"{name}={REDACTED}" if name in SENSITIVE_QUERY else item)
    return base + "?" + "&".join(parts)


def error_body(code: int, message: str, status: str) -> str:
    """Return a Google API error JSON body (``{"error": {code, message, status}}``)."""
    return json.dumps({"error": {"code": code, "message": message, "status": status}}, indent=2)
