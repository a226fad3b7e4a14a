"""Fault injection: drop, close, stall, refused upgrades, malformed and raw frames."""

from __future__ import annotations

import json
import time
from typing import Callable

import pytest
import websocket

from livesync.emulator import Emulator
from tests.emulator.helpers import OP_BINARY, OP_CLOSE, OP_TEXT, TEXT_CONFIG, WsClient

Connect = Callable[..., WsClient]


def test_drop_sends_no_close_frame(emu: Emulator, connect: Connect) -> None:
    """drop(): the client's connection is lost without any close frame."""
    client = connect(emu)
    client.setup()
    emu.drop()
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        client.frame()
    record = emu.wait_closed(1)
    assert record.closed_by == "drop" and record.close_code is None


def test_close_with_code_and_reason(emu: Emulator, connect: Connect) -> None:
    """close(code, reason) reaches the client exactly and is recorded."""
    client = connect(emu)
    client.setup()
    emu.close(1011, "The service is currently unavailable.")
    assert client.closed() == (1011, "The service is currently unavailable.")
    record = emu.wait_closed(1)
    assert (record.close_code, record.close_reason, record.closed_by) == (
        1011, "The service is currently unavailable.", "server")


def test_close_reason_is_cut_on_a_character_boundary(emu: Emulator, connect: Connect) -> None:
    """Reasons longer than 123 bytes are cut without splitting a UTF-8 character."""
    client = connect(emu)
    client.setup()
    emu.close(1008, "é" * 100)
    code, reason = client.closed()
    assert code == 1008 and reason == "é" * 61 and len(reason.encode()) == 122


def test_close_rejects_unsendable_codes(emu: Emulator, connect: Connect) -> None:
    """Codes that cannot appear in a close frame (1005, 1006) raise ValueError."""
    connect(emu).setup()
    with pytest.raises(ValueError):
        emu.close(1006)


def test_stall_answers_nothing(emu: Emulator, connect: Connect) -> None:
    """stall(): no reply to messages, pings or the closing handshake; TCP stays open."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    emu.stall()
    client.text("hello")
    client.ws.ping(b"x")
    client.ws.send_close(1000, b"")
    client.ws.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        client.ws.recv_data(control_frame=True)
    assert emu.connections[0].stalled and emu.connections[0].open


def test_stop_is_bounded_with_a_stalled_connection(make_emulator: Callable[..., Emulator],
                                                   connect: Connect) -> None:
    """stop() aborts stalled connections instead of waiting for them."""
    emu = make_emulator()
    client = connect(emu)
    client.setup()
    emu.stall()
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 1.5
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        client.frame(timeout=2)


def test_refused_upgrade_status(emu: Emulator, connect: Connect) -> None:
    """refuse_next_upgrade(status): the next upgrade gets that HTTP status, once."""
    emu.refuse_next_upgrade(status=503, body="try later")
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emu)
    assert info.value.status_code == 503 and info.value.resp_body == b"try later"
    connect(emu).setup()
    assert [u.status for u in emu.upgrades] == [503, 101]


def test_refuse_several_upgrades(emu: Emulator, connect: Connect) -> None:
    """refuse_upgrades(n, status) refuses the next n upgrades."""
    emu.refuse_upgrades(2, status=429)
    for _ in range(2):
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            connect(emu)
        assert info.value.status_code == 429
    connect(emu).setup()


def test_send_malformed(emu: Emulator, connect: Connect) -> None:
    """send_malformed() delivers bytes that are not JSON, in a binary frame."""
    client = connect(emu)
    client.setup()
    emu.send_malformed()
    assert client.frame() == (OP_BINARY, b"{not json")


def test_send_raw_dict_and_bytes(emu: Emulator, connect: Connect) -> None:
    """send_raw() injects any message: dicts pretty-printed, raw data as given."""
    client = connect(emu)
    client.setup()
    emu.send_raw({"someFutureMessage": {"x": 1}})
    opcode, data = client.frame()
    assert opcode == OP_BINARY and json.loads(data) == {"someFutureMessage": {"x": 1}}
    assert data.startswith(b'{\n  "someFutureMessage"')
    emu.send_raw(b"\x00raw", frame="binary")
    assert client.frame() == (OP_BINARY, b"\x00raw")
    emu.send_raw({"sessionResumptionUpdate": {}}, frame="text")
    opcode, data = client.frame()
    assert opcode == OP_TEXT and json.loads(data) == {"sessionResumptionUpdate": {}}


def test_issue_handle_sends_a_fresh_handle(emu: Emulator, connect: Connect) -> None:
    """issue_handle() sends a new resumable update right away."""
    client = connect(emu)
    client.setup(sessionResumption={})
    first = client.message()["sessionResumptionUpdate"]["newHandle"]
    emu.issue_handle()
    update = client.message()["sessionResumptionUpdate"]
    assert update["resumable"] is True and update["newHandle"] != first


def test_faults_target_a_chosen_connection(emu: Emulator, connect: Connect) -> None:
    """conn= selects the connection; the default is the newest open one."""
    first, second = connect(emu), connect(emu)
    first.setup()
    second.setup()
    emu.close(1000, "first", conn=1)
    emu.close(1000, "newest")
    assert first.closed() == (1000, "first")
    assert second.closed() == (1000, "newest")
    emu.wait_closed(1)
    with pytest.raises(LookupError):
        emu.drop(conn=1)


def test_client_close_is_recorded(emu: Emulator, connect: Connect) -> None:
    """A client-initiated close is echoed and recorded with the client's code."""
    client = connect(emu)
    client.setup()
    client.ws.close(status=1000)
    record = emu.wait_closed(1)
    assert (record.closed_by, record.client_close_code, record.close_code) == (
        "client", 1000, 1000)
    assert OP_CLOSE == 8


def refused(emu: Emulator, connect: Connect) -> websocket.WebSocketBadStatusException:
    """Attempt a connection that must be refused; return the exception."""
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(emu)
    return info.value


def test_refused_upgrade_retry_after(emu: Emulator, connect: Connect) -> None:
    """retry_after adds a Retry-After header: whole seconds, decimals or a literal string."""
    emu.refuse_next_upgrade(retry_after=2)
    emu.refuse_upgrades(1, status=429, retry_after=0.5)
    emu.refuse_upgrades(1, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    emu.refuse_next_upgrade()
    headers = [refused(emu, connect).resp_headers or {} for _ in range(4)]
    assert [h.get("retry-after") for h in headers] == [
        "2", "0.5", "Wed, 21 Oct 2015 07:28:00 GMT", None]
    with pytest.raises(ValueError):
        emu.refuse_next_upgrade(retry_after=-1)


def test_refuse_upgrades_for_a_duration(emu: Emulator, connect: Connect) -> None:
    """refuse_upgrades_for(seconds) refuses every upgrade until it is over or replaced."""
    emu.refuse_upgrades_for(30.0, status=503, body="busy", retry_after=1)
    for _ in range(3):
        error = refused(emu, connect)
        assert (error.status_code, error.resp_body) == (503, b"busy")
        assert (error.resp_headers or {}).get("retry-after") == "1"
    emu.refuse_upgrades_for(0)
    connect(emu).setup()
    assert [u.status for u in emu.upgrades] == [503, 503, 503, 101]


def test_refusal_window_expires(emu: Emulator, connect: Connect) -> None:
    """Once the window's real seconds have passed, upgrades are accepted again."""
    emu.refuse_upgrades_for(1e-9)
    connect(emu).setup()
    assert [u.status for u in emu.upgrades] == [101]


def test_counted_refusals_come_before_the_window(emu: Emulator, connect: Connect) -> None:
    """refuse_upgrades(n) applies first, with its own status; then the window's."""
    emu.refuse_upgrades_for(30.0, status=503)
    emu.refuse_next_upgrade(status=429)
    assert [refused(emu, connect).status_code for _ in range(2)] == [429, 503]


def test_drop_after_setup(emu: Emulator, connect: Connect) -> None:
    """drop_after_setup(n): the next n good setups get setupComplete + handle, then TCP ends."""
    emu.drop_after_setup(2)
    bad = connect(emu)
    bad.send({"setup": {"model": "models/no-such-model"}})
    assert bad.closed()[0] == 1008  # a failed setup does not count
    for _ in range(2):
        client = connect(emu)
        client.setup(generationConfig=TEXT_CONFIG, sessionResumption={})
        assert client.message()["sessionResumptionUpdate"]["resumable"] is True
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            client.frame()
    last = connect(emu)
    last.setup(generationConfig=TEXT_CONFIG)
    records = [emu.wait_closed(i) for i in (2, 3)]
    assert [(r.closed_by, r.close_code) for r in records] == [("drop", None), ("drop", None)]
    assert emu.connections[3].open
