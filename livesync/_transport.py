"""The WebSocket transport: the only module that imports ``websocket`` (websocket-client).

One :class:`Transport` per connection. Threads:

- the supervisor opens it and closes it (``send_close`` then ``abort``);
- the reader thread is the only caller of :meth:`Transport.recv`;
- any thread may call :meth:`Transport.send_text` and :meth:`Transport.ping`
  (websocket-client holds a send lock).

Never ``ws.close()`` from another thread while the reader is blocked: against a
silent peer it hangs (DEPENDENCIES.md §1.5). We send the close frame, let the
reader see the echo, and shut the socket down if it does not come.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any, Dict, Mapping, NamedTuple, Optional, Tuple, Union

import websocket

from .exceptions import ConnectError, ConnectTimeout, InvalidStatus, LiveSyncError

__all__ = ["Close", "ConnectionLost", "Frame", "Transport", "TransportOptions"]

logger = logging.getLogger("livesync.transport")

SENSITIVE_HEADERS = frozenset({"authorization", "x-goog-api-key", "proxy-authorization"})
MAX_BODY_IN_ERROR = 200


class ConnectionLost(LiveSyncError):
    """The connection failed below the WebSocket close handshake (internal)."""


class Frame(NamedTuple):
    """A frame: ``data`` is the raw payload; ``control`` marks a ping or pong."""

    data: bytes
    binary: bool = False
    control: bool = False


class Close(NamedTuple):
    """A close frame from the server; ``code`` is None when it carried no code."""

    code: Optional[int]
    reason: str


@dataclass(frozen=True)
class TransportOptions:
    """How to dial. ``ca_certs`` and ``proxy`` follow requests' conventions.

    Attributes:
        ca_certs: path of a CA bundle; None uses the system store.
        verify: TLS certificate and hostname verification. Keep it on.
        proxy: ``"http://host:port"`` (or ``socks5://``); None takes the proxy from
            ``https_proxy`` / ``http_proxy`` / ``no_proxy``, as requests does. Since
            websocket-client 1.9, localhost is not exempt: set ``no_proxy``.
        write_timeout: bound on one send (and on the socket's blocking calls).
    """

    ca_certs: Optional[str] = None
    verify: bool = True
    proxy: Optional[str] = None
    write_timeout: float = 10.0


def redact_headers(headers: Mapping[str, str]) -> Dict[str, str]:
    """Return ``headers`` with credential values replaced by ``[secure]``."""
    return {k: ("[secure]" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


class Transport:
    """One open WebSocket connection."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws

    @classmethod
    def open(
        cls,
        url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        options: TransportOptions,
    ) -> Transport:
        """Dial ``url`` and complete the upgrade within ``timeout`` seconds.

        Raises:
            InvalidStatus: the server answered the upgrade with an HTTP status.
            ConnectTimeout: TCP, TLS or the upgrade took too long.
            ConnectError: anything else (DNS, refused, TLS failure, redirect).
        """
        ws = websocket.WebSocket(
            sslopt=_sslopt(options),
            skip_utf8_validation=True,
            enable_multithread=True,
        )
        kwargs: Dict[str, Any] = {
            "header": ["%s: %s" % item for item in headers.items()],
            "timeout": timeout,
            "redirect_limit": 0,
            "suppress_origin": True,
        }
        kwargs.update(_proxy_options(options))
        logger.debug("= dialing %s headers=%s", url, redact_headers(headers))
        try:
            ws.connect(url, **kwargs)  # type: ignore[no-untyped-call]
        except websocket.WebSocketBadStatusException as exc:
            body = exc.resp_body or b""
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
            raise InvalidStatus(exc.status_code, text[:MAX_BODY_IN_ERROR]) from exc
        except (websocket.WebSocketTimeoutException, socket.timeout) as exc:
            _shutdown(ws)
            raise ConnectTimeout("timed out after %.1fs connecting" % timeout) from exc
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            _shutdown(ws)
            raise ConnectError("could not connect: %s" % type(exc).__name__) from exc
        ws.settimeout(options.write_timeout)
        return cls(ws)

    def send_text(self, text: str) -> int:
        """Send one text frame; return its size in bytes. Any thread.

        Raises:
            ConnectionLost: the frame could not be sent (the connection is unusable).
        """
        data = text.encode("utf-8")
        try:
            self._ws.send(data, websocket.ABNF.OPCODE_TEXT)
        except (websocket.WebSocketException, OSError, ssl.SSLError) as exc:
            raise ConnectionLost("send failed: %s" % type(exc).__name__) from exc
        return len(data)

    def recv(self) -> Union[Frame, Close, None]:
        """Read the next data or close frame. Reader thread only.

        Returns None when a read timed out; the caller just reads again.

        Raises:
            ConnectionLost: the connection dropped without a close frame.
        """
        try:
            opcode, data = self._ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except (websocket.WebSocketException, OSError, ssl.SSLError, ValueError) as exc:
            raise ConnectionLost("connection lost: %s" % type(exc).__name__) from exc
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code, reason = _parse_close(data)
            _shutdown(self._ws)
            return Close(code, reason)
        if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return Frame(data, opcode == websocket.ABNF.OPCODE_BINARY)
        return Frame(data if opcode == websocket.ABNF.OPCODE_PONG else b"", control=True)

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame. Any thread. Raises ConnectionLost."""
        try:
            self._ws.ping(payload)
        except (websocket.WebSocketException, OSError, ssl.SSLError) as exc:
            raise ConnectionLost("ping failed: %s" % type(exc).__name__) from exc

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame without reading (the reader sees the echo). Any thread."""
        try:
            self._ws.send_close(code, reason.encode("utf-8")[:123])
        except (websocket.WebSocketException, OSError, ssl.SSLError) as exc:
            logger.debug("! close frame not sent: %s", type(exc).__name__)

    def abort(self) -> None:
        """Shut the TCP socket down, waking a blocked reader. Any thread; idempotent."""
        _shutdown(self._ws)


def _shutdown(ws: websocket.WebSocket) -> None:
    sock = ws.sock
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        logger.debug("! socket already shut down")
    try:
        sock.close()
    except OSError:
        logger.debug("! socket close failed")


def _parse_close(data: bytes) -> Tuple[Optional[int], str]:
    if len(data) < 2:
        return None, ""
    return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", "replace")


def _sslopt(options: TransportOptions) -> Dict[str, Any]:
    if not options.verify:
        return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    sslopt: Dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "check_hostname": True}
    if options.ca_certs:
        sslopt["ca_certs"] = options.ca_certs
    return sslopt


def _proxy_options(options: TransportOptions) -> Dict[str, Any]:
    if options.proxy:
        from urllib.parse import urlsplit

        parts = urlsplit(options.proxy)
        result: Dict[str, Any] = {
            "http_proxy_host": parts.hostname,
            "http_proxy_port": parts.port or 8080,
            "proxy_type": parts.scheme or "http",
        }
        if parts.username:
            result["http_proxy_auth"] = (parts.username, parts.password or "")
        return result
    return {}
