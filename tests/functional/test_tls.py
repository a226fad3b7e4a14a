"""TLS with a local CA (trustme), and the dial error boundary, against real sockets.

Verification is on by default; an unknown CA, a hostname mismatch or an expired
certificate fail closed with a ``TLSError`` that says why; a custom CA works.
Every other dial failure is a ``ConnectError`` with a short reason and no secret.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import logging
import socket
import ssl
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from livesync._transport import Close, ConnectionLost, Frame, Transport, TransportOptions
from livesync.exceptions import (
    ConnectError,
    ConnectTimeout,
    InvalidStatus,
    TLSError,
)
from tests.utils import TIMEOUT

SECRET = "sk-canary-0123456789"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def echo(connection: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):  # a test may drop the TCP connection
        for message in connection:
            connection.send(message)


@contextlib.contextmanager
def ws_server(cert: Optional[trustme.LeafCert] = None, **kwargs: Any) -> Iterator[int]:
    """A websockets echo server on 127.0.0.1 (TLS with ``cert``); yield its port."""
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
    with serve(echo, "127.0.0.1", 0, ssl=context, **kwargs) as server:
        thread = threading.Thread(target=server.serve_forever, name="test-ws-server")
        thread.start()
        try:
            yield server.socket.getsockname()[1]
        finally:
            server.shutdown()
            thread.join()


DEFAULT_OPTIONS = TransportOptions()


def dial(url: str, options: TransportOptions = DEFAULT_OPTIONS, **kwargs: Any) -> Transport:
    kwargs.setdefault("timeout", 20 * TIMEOUT)
    return Transport.open(url, kwargs.pop("headers", {}), options=options, **kwargs)


def round_trip(transport: Transport) -> None:
    """Send one text frame, read its echo, close."""
    try:
        transport.send_text('{"hello": 1}')
        item = transport.recv()
        while isinstance(item, Frame) and item.control or item is None:
            item = transport.recv()
        assert item == Frame(b'{"hello": 1}')
        transport.send_close(1000)
        while not isinstance(item, Close):
            item = transport.recv()
    finally:
        transport.abort()


def test_a_custom_ca_is_trusted(ca: trustme.CA, ca_file: str) -> None:
    """With ca_certs naming the local CA, wss:// connects and carries frames."""
    with ws_server(ca.issue_cert("localhost")) as port:
        round_trip(dial("wss://localhost:%d/" % port, TransportOptions(ca_certs=ca_file)))


def test_verification_is_on_by_default(ca: trustme.CA) -> None:
    """Without ca_certs, a certificate from an unknown CA fails closed, saying so."""
    with ws_server(ca.issue_cert("localhost")) as port:
        with pytest.raises(TLSError) as info:
            dial("wss://localhost:%d/" % port)
    assert "unknown CA" in str(info.value)
    assert str(info.value).startswith("certificate verification failed: ")
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


def test_hostname_mismatch_fails_closed(ca: trustme.CA, ca_file: str) -> None:
    """A trusted certificate for another host is refused as a hostname mismatch."""
    with ws_server(ca.issue_cert("example.org")) as port:
        with pytest.raises(TLSError) as info:
            dial("wss://localhost:%d/" % port, TransportOptions(ca_certs=ca_file))
    assert info.value.reason == "hostname mismatch"
    assert str(info.value) == "certificate verification failed: hostname mismatch"


def test_expired_certificate_fails_closed(ca: trustme.CA, ca_file: str) -> None:
    """A trusted but expired certificate is refused as expired."""
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = ca.issue_cert("localhost", not_before=now - datetime.timedelta(days=30),
                         not_after=now - datetime.timedelta(days=1))
    with ws_server(cert) as port:
        with pytest.raises(TLSError) as info:
            dial("wss://localhost:%d/" % port, TransportOptions(ca_certs=ca_file))
    assert info.value.reason == "certificate expired"


def test_verification_can_be_turned_off(ca: trustme.CA) -> None:
    """verify=False accepts any certificate (documented as a last resort)."""
    with ws_server(ca.issue_cert("example.org")) as port:
        round_trip(dial("wss://localhost:%d/" % port, TransportOptions(verify=False)))


def test_an_unreadable_ca_bundle_is_a_tls_error(tmp_path: Path) -> None:
    """A CA bundle that cannot be loaded fails before any connection, naming the problem."""
    missing = str(tmp_path / "missing.pem")
    with pytest.raises(TLSError, match=r"could not load the CA bundle \(ca_certs\): no such file"):
        dial("wss://localhost:1/", TransportOptions(ca_certs=missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(TLSError, match="no PEM certificate"):
        dial("wss://localhost:1/", TransportOptions(ca_certs=str(garbage)))


def test_a_tls_handshake_failure_is_not_a_certificate_error() -> None:
    """wss:// to a plain server fails as a (retryable) ConnectError, not a TLSError."""
    with ws_server() as port:
        with pytest.raises(ConnectError) as info:
            dial("wss://localhost:%d/" % port)
    assert not isinstance(info.value, TLSError)
    assert str(info.value).startswith("could not connect: TLS")


# The dial boundary without TLS.


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_refused_connection_is_a_connect_error() -> None:
    """A refused TCP connection says so, and nothing else."""
    with pytest.raises(ConnectError) as info:
        dial("ws://127.0.0.1:%d/?key=%s" % (free_port(), SECRET),
             headers={"x-goog-api-key": SECRET})
    assert type(info.value) is ConnectError
    assert str(info.value) == "could not connect: connection refused"


def test_name_resolution_failure_is_a_connect_error() -> None:
    """A host that does not resolve (RFC 6761 .invalid) is reported as such."""
    with pytest.raises(ConnectError) as info:
        dial("ws://livesync-test.invalid/")
    assert str(info.value) == "could not connect: name resolution failed"


def test_a_silent_server_is_a_connect_timeout() -> None:
    """A server that accepts TCP but never answers the upgrade times out."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(ConnectTimeout) as info:
            dial("ws://127.0.0.1:%d/" % port, timeout=TIMEOUT / 5)
    assert isinstance(info.value, TimeoutError)


def refuse(status: int, retry_after: Optional[str]) -> Any:
    """A process_request hook answering every upgrade with ``status``."""
    def process_request(connection: ServerConnection, request: Any) -> Any:
        response = connection.respond(status, "busy")
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return response
    return process_request


def test_a_refused_upgrade_carries_retry_after_but_no_secret(
        caplog: pytest.LogCaptureFixture) -> None:
    """HTTP 503 with Retry-After is an InvalidStatus with retry_after; no header or query
    leaks into the error or the DEBUG log."""
    caplog.set_level(logging.DEBUG, logger="livesync")
    with ws_server(process_request=refuse(503, "7")) as port:
        with pytest.raises(InvalidStatus) as info:
            dial("ws://127.0.0.1:%d/?key=%s" % (port, SECRET),
                 headers={"x-goog-api-key": SECRET, "Authorization": "Bearer " + SECRET})
    error = info.value
    assert (error.status_code, error.retry_after) == (503, 7.0)
    assert str(error) == "server rejected WebSocket connection: HTTP 503: busy"
    assert SECRET not in str(error) and SECRET not in repr(error.args)
    assert "dialing ws://127.0.0.1:%d/ " % port in caplog.text
    assert SECRET not in caplog.text


def http_date(delta: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=delta)
    return email.utils.format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    "header, expected",
    [
        ("120", 120.0),
        ("1.5", 1.5),
        ("date+3600", 3600.0),  # an HTTP date, made when the test runs
        ("date-3600", 0.0),
        ("soon", None),
        ("inf", None),
        (None, None),
    ],
)
def test_retry_after_forms(header: Optional[str], expected: Optional[float]) -> None:
    """Retry-After is read as delta-seconds or an HTTP date; anything else is ignored."""
    if header is not None and header.startswith("date"):
        header = http_date(float(header[4:]))
    with ws_server(process_request=refuse(429, header)) as port:
        with pytest.raises(InvalidStatus) as info:
            dial("ws://127.0.0.1:%d/" % port)
    if expected is None:
        assert info.value.retry_after is None
    else:
        slack = 60.0 if expected == 3600.0 else 0.0  # an HTTP date has 1 s resolution
        assert info.value.retry_after == pytest.approx(expected, abs=slack)


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_text_frames_of_every_length_encoding_arrive_intact(
        tls: bool, ca: trustme.CA, ca_file: str) -> None:
    """livesync builds and masks its own data frames: a real server unmasks each size
    (7-bit, 16-bit and 64-bit lengths, and their edges) to the text sent."""
    cert = ca.issue_cert("127.0.0.1") if tls else None
    with ws_server(cert, max_size=None) as port:
        transport = dial("%s://127.0.0.1:%d/" % ("wss" if tls else "ws", port),
                         TransportOptions(ca_certs=ca_file))
        try:
            for size in (0, 1, 125, 126, 127, 65535, 65536, 200_003):
                text = "".join(chr(0x61 + i % 26) for i in range(size - 2)) + "é" if size else ""
                assert transport.send_text(text) == len(text.encode("utf-8"))
                item = transport.recv()
                while item is None or isinstance(item, Frame) and item.control:
                    item = transport.recv()
                assert item == Frame(text.encode("utf-8")), size
        finally:
            transport.abort()


def test_send_and_recv_failures_are_connection_lost() -> None:
    """Once the socket is gone, send and recv raise ConnectionLost, never a foreign error."""
    with ws_server() as port:
        transport = dial("ws://127.0.0.1:%d/" % port)
        transport.abort()
        with pytest.raises(ConnectionLost, match="^send failed: "):
            transport.send_text("{}")
        with pytest.raises(ConnectionLost, match="^connection lost: "):
            transport.recv()
        with pytest.raises(ConnectionLost, match="^ping failed: "):
            transport.ping()
        transport.send_close()  # logged, not raised
