"""The WebSocket transport: the only module that imports ``websocket`` (websocket-client).

One :class:`Transport` per connection. Threads:

- the supervisor opens it and closes it (``send_close`` then ``abort``);
- the reader thread is the only caller of :meth:`Transport.recv`;
- any thread may call :meth:`Transport.send_text` and :meth:`Transport.ping`
  (every frame is written under websocket-client's send lock, which its
  automatic pongs from the reader thread take too).

websocket-client dials (HTTP upgrade, TLS, proxies) and sends control frames;
data frames are built and read by :mod:`livesync._frames` on the socket it
opened. Its frame objects, checks and trace hooks cost more than the frames
themselves on the hot paths (50 audio chunks a second each way per session),
and it reads a frame with three or more ``recv`` calls where one large read
often brings many frames.

Never ``ws.close()`` from another thread while the reader is blocked: against a
silent peer it hangs (DEPENDENCIES.md §1.5). We send the close frame, let the
reader see the echo, and shut the socket down if it does not come.

Every exception from websocket-client, ssl or socket is translated at one
boundary, :func:`_boundary`: while dialing into :class:`~livesync.ConnectError`
and its subclasses (``InvalidStatus``, ``ConnectTimeout``, ``TLSError``), on an
open connection into :class:`ConnectionLost`. Messages carry a short reason,
never the URL's query, a header or a payload.
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import logging
import math
import os
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, Mapping, NamedTuple, Optional, Tuple, Type, Union
from urllib.parse import urlsplit, urlunsplit

import websocket

from . import _frames
from .exceptions import (
    ConnectError,
    ConnectTimeout,
    InvalidStatus,
    LiveSyncError,
    TLSError,
)

__all__ = ["Close", "ConnectionLost", "Frame", "Transport", "TransportOptions"]

logger = logging.getLogger("livesync.transport")

SENSITIVE_HEADERS = frozenset({"authorization", "x-goog-api-key", "proxy-authorization"})
MAX_BODY_IN_ERROR = 200
#: Bytes asked of the socket per read (a TLS record is at most 16 KiB; below
#: malloc's mmap threshold, so a small read does not map and unmap a buffer).
RECV_SIZE = 64 * 1024
DIAL = "dial"

#: Foreign exceptions in the words of an error message, checked in order.
REASONS: Tuple[Tuple[Tuple[Type[Exception], ...], str], ...] = (
    ((websocket.WebSocketAddressException, socket.gaierror), "name resolution failed"),
    ((ssl.SSLEOFError, ssl.SSLZeroReturnError), "TLS connection closed"),
    ((ConnectionRefusedError,), "connection refused"),
    ((ConnectionResetError,), "connection reset"),
    ((ConnectionAbortedError,), "connection aborted"),
    ((BrokenPipeError,), "broken pipe"),
    ((websocket.WebSocketConnectionClosedException,), "connection closed"),
    ((websocket.WebSocketProxyException,), "proxy refused the connection"),
    ((websocket.WebSocketProtocolException,), "protocol error"),
    ((websocket.WebSocketPayloadException,), "invalid payload"),
)
ERRNO_REASONS: Dict[int, str] = {
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
}

#: OpenSSL ``X509_V_ERR_*`` codes, in the words a user can act on.
VERIFY_REASONS: Dict[int, str] = {
    2: "unknown CA (issuer certificate not found)",
    7: "bad certificate signature",
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain (unknown CA)",
    20: "unknown CA (issuer certificate not found)",
    21: "unknown CA (leaf signature cannot be verified)",
    23: "certificate revoked",
    26: "certificate not valid for a server",
    62: "hostname mismatch",
    64: "IP address mismatch",
}


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
        max_message_size: largest server message accepted, in bytes (None: no
            limit). A larger frame is refused before its payload is read.
    """

    ca_certs: Optional[str] = None
    verify: bool = True
    proxy: Optional[str] = None
    write_timeout: float = 10.0
    max_message_size: Optional[int] = 16 * 1024 * 1024


def redact_headers(headers: Mapping[str, str]) -> Dict[str, str]:
    """Return ``headers`` with credential values replaced by ``[secure]``."""
    return {k: ("[secure]" if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


class MessageTooBig(ConnectionLost):
    """The server sent a message larger than ``max_message_size`` (internal)."""


class Transport:
    """One open WebSocket connection."""

    def __init__(self, ws: websocket.WebSocket, max_message_size: Optional[int] = None,
                 dialed_at: float = 0.0) -> None:
        self._ws = ws
        self._write_lock = ws.lock  # websocket-client's send lock (enable_multithread)
        self._parser = _frames.FrameParser(max_message_size)  # reader thread only
        self._poll: Optional[Any] = None  # select.poll() of the socket (reader thread)
        #: ``time.monotonic()`` before which no byte of a frame :meth:`recv` returns
        #: from now on arrived: the last time nothing was left to read, here or in the
        #: kernel (reader thread). A frame's arrival is known to be later than that,
        #: however late the reader gets to it.
        self.quiet_since = dialed_at
        self._close_sent = False
        self._close_lock = threading.Lock()

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

        Any thread; blocks up to ``timeout`` (DNS resolution aside).

        Raises:
            InvalidStatus: the server answered the upgrade with an HTTP status.
            ConnectTimeout: TCP, TLS or the upgrade took too long.
            TLSError: the server's certificate failed verification, or the CA
                bundle could not be loaded (retrying will not help).
            ConnectError: anything else (DNS, refused, reset, redirect, ...), with a
                short reason and never the URL's query or a header.
        """
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("= dialing %s headers=%s", _shown_url(url), redact_headers(headers))
        dialed_at = time.monotonic()
        with _boundary(DIAL, timeout):
            ws = websocket.WebSocket(
                sslopt=_sslopt(url, options),
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
            # On failure websocket-client closes the socket itself (WebSocket.connect).
            ws.connect(url, **kwargs)  # type: ignore[no-untyped-call]
            ws.settimeout(options.write_timeout)
        return cls(ws, options.max_message_size, dialed_at)

    def send_text(self, text: str) -> int:
        """Send one text frame; return its size in bytes. Any thread.

        Blocks up to ``write_timeout``.

        Raises:
            UnicodeEncodeError: ``text`` is not encodable (a lone surrogate); the
                connection is unaffected. Callers validate text before this.
            ConnectionLost: the frame could not be sent (the connection is unusable).
        """
        data = text.encode("utf-8")
        self._write(_frames.text_frame(data), "send failed")
        return len(data)

    def _write(self, frame: bytes, what: str) -> None:
        """Write one frame under websocket-client's send lock (so its pongs never
        interleave), bounded by ``write_timeout``; ``what`` prefixes the error."""
        try:
            with self._write_lock:
                sock = self._ws.sock
                if sock is None:
                    raise ConnectionLost("%s: socket is already closed" % what)
                sock.sendall(frame)
        except LiveSyncError:
            raise
        except Exception as exc:
            raise _translate(exc, what, None) from exc

    def recv(self, timeout: Optional[float] = None) -> Union[Frame, Close, None]:
        """Read the next message, ping, pong or close frame. One reading thread only.

        Answers pings and echoes a close frame. Returns None when a read timed out
        (what was read so far is kept); the caller just reads again. A ``timeout``
        bounds each socket read instead of the write timeout: only while no other
        thread uses the connection (it sets the socket's timeout for the read).

        Raises:
            MessageTooBig: a message over ``max_message_size`` (its payload is
                refused from the frame header, not read into memory).
            ConnectionLost: the connection dropped without a close frame, or the
                server broke the framing rules.
        """
        while True:
            item = self._buffered()
            if item is not None:
                return item
            try:
                sock = self._ws.sock
                if sock is None:
                    raise ConnectionLost("connection lost: socket is already closed")
                now = time.monotonic()
                if self._parser.empty and not self._unread(sock):
                    self.quiet_since = now
                if timeout is None:
                    data = sock.recv(RECV_SIZE)
                else:
                    data = _recv_within(sock, timeout)
            except socket.timeout:  # TimeoutError from 3.10 on
                return None
            except LiveSyncError:
                raise
            except Exception as exc:
                raise _translate(exc, "connection lost", None) from exc
            if not data:
                raise ConnectionLost("connection lost: connection closed")
            self._parser.feed(data)

    def _unread(self, sock: socket.socket) -> bool:
        """Whether bytes wait to be read from ``sock`` (reader thread): one poll."""
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        if self._poll is None:
            if not hasattr(select, "poll"):  # Windows
                return bool(select.select([sock], [], [], 0)[0])
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
        return bool(self._poll.poll(0))

    def _buffered(self) -> Union[Frame, Close, None]:
        """The next item of what was read already, or None (reader thread)."""
        try:
            item = self._parser.next()
        except _frames.MessageTooLarge as exc:
            raise MessageTooBig(str(exc)) from None
        except _frames.FramingError as exc:
            raise ConnectionLost("connection lost: protocol error (%s)" % exc) from None
        if item is None:
            return None
        opcode, data = item
        if opcode == _frames.BINARY or opcode == _frames.TEXT:
            return Frame(data, opcode == _frames.BINARY)
        if opcode == _frames.CLOSE:
            return self._closed_by_server(data)
        if opcode == _frames.PING:
            with _boundary("pong failed"):
                self._ws.pong(data)
            return Frame(b"", control=True)
        return Frame(data, control=True)  # a pong

    def _closed_by_server(self, data: bytes) -> Close:
        if len(data) == 1:
            raise ConnectionLost("connection lost: protocol error (1-byte close frame)")
        code, reason = _parse_close(data)
        if code is not None and not (1000 <= code <= 1003 or 1007 <= code <= 1014
                                     or 3000 <= code <= 4999):
            raise ConnectionLost("connection lost: protocol error (close code %d)" % code)
        self.send_close(1000)  # the closing handshake's echo, unless we began it
        _shutdown(self._ws)
        return Close(code, reason)

    def ping(self, payload: bytes = b"") -> None:
        """Send a ping frame. Any thread. Raises ConnectionLost."""
        with _boundary("ping failed"):
            self._ws.ping(payload)

    def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame without reading (the reader sees the echo). Any thread.

        At most once per connection (RFC 6455 §5.5.1): later calls do nothing.
        """
        with self._close_lock:
            if self._close_sent:
                return
            self._close_sent = True
        try:
            self._write(_frames.close_frame(code, reason.encode("utf-8")), "close frame not sent")
        except ConnectionLost as exc:
            logger.debug("! %s", exc)

    def abort(self) -> None:
        """Shut the TCP socket down, waking a blocked reader. Any thread; idempotent."""
        _shutdown(self._ws)


@contextlib.contextmanager
def _boundary(what: str, timeout: Optional[float] = None) -> Iterator[None]:
    """Turn every foreign exception raised in the block into a livesync one.

    The one place where websocket-client, ssl and socket errors are translated
    (httpcore's ``map_exceptions``). ``what`` is :data:`DIAL` while connecting
    (ConnectError and subclasses, ``timeout`` for the message) and otherwise the
    prefix of the :class:`ConnectionLost` message ("send failed", ...).
    KeyboardInterrupt and other BaseExceptions pass through.
    """
    try:
        yield
    except LiveSyncError:
        raise
    except Exception as exc:
        raise _translate(exc, what, timeout) from exc


def _translate(exc: Exception, what: str, timeout: Optional[float]) -> LiveSyncError:
    """Map one foreign exception; see :func:`_boundary`."""
    timed_out = isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout,
                                 TimeoutError))
    if what != DIAL:
        return ConnectionLost("%s: %s" % (what, "timed out" if timed_out else _reason(exc)))
    if isinstance(exc, websocket.WebSocketBadStatusException):
        body = exc.resp_body or b""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        return InvalidStatus(exc.status_code, text[:MAX_BODY_IN_ERROR],
                             retry_after=_retry_after(exc.resp_headers))
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        reason = VERIFY_REASONS.get(code) or (exc.verify_message or "").lower() or "unknown"
        return TLSError(reason, verify_code=code)
    if timed_out:
        return ConnectTimeout("timed out after %.1fs connecting" % (timeout or 0.0))
    return ConnectError("could not connect: %s" % _reason(exc))


def _reason(exc: Exception) -> str:
    """A short description of ``exc`` that holds no URL, header or payload."""
    for types, reason in REASONS:
        if isinstance(exc, types):
            return reason
    if isinstance(exc, ssl.SSLError):  # after SSLEOFError; reason is OpenSSL's short code
        return "TLS error" + (" (%s)" % exc.reason if exc.reason else "")
    if isinstance(exc, OSError) and exc.errno is not None:
        return ERRNO_REASONS.get(exc.errno) or os.strerror(exc.errno).lower()
    if isinstance(exc, websocket.WebSocketException):
        return "WebSocket error"
    return "unexpected %s" % type(exc).__name__


def _retry_after(headers: Optional[Mapping[str, str]]) -> Optional[float]:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    value = (headers or {}).get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _recv_within(sock: socket.socket, timeout: float) -> bytes:
    saved = sock.gettimeout()
    sock.settimeout(max(timeout, 0.001))
    try:
        return sock.recv(RECV_SIZE)
    finally:
        sock.settimeout(saved)


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


def _sslopt(url: str, options: TransportOptions) -> Dict[str, Any]:
    """TLS options for websocket-client: our own context, so that a bad CA bundle is
    a :class:`TLSError` here rather than a WebSocketException to parse later."""
    if urlsplit(url).scheme.lower() != "wss":
        return {}
    if not options.verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return {"context": context}
    try:
        # Verification and hostname checks on; the system store unless ca_certs.
        context = ssl.create_default_context(cafile=options.ca_certs or None)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason = "no PEM certificate in it" if isinstance(exc, ssl.SSLError) else _reason(exc)
        raise TLSError("could not load the CA bundle (ca_certs): %s" % reason) from exc
    return {"context": context}


def _shown_url(url: str) -> str:
    """``url`` without userinfo, query or fragment, for logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    netloc = host + (":%d" % port if port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


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
