"""Server-side input lag: client messages wait ``input_lag`` seconds, in order."""

from __future__ import annotations

from typing import Any, Callable, Dict

import pytest

from livesync.emulator import Emulator
from tests.emulator.helpers import TEXT_CONFIG, WsClient, content_flags, texts

Connect = Callable[..., WsClient]


def context(text: str) -> Dict[str, Any]:
    """A clientContent message without turnComplete (recorded, starts no turn)."""
    return {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}]}}


def test_messages_wait_out_the_lag(make_emulator: Callable[..., Emulator],
                                   connect: Connect) -> None:
    """Each message after the setup is processed input_lag seconds after it arrived."""
    emu = make_emulator(input_lag=0.2)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("hello")
    assert "".join(texts(client.turn())) == "You said: hello"
    setup, hello = emu.connections[0].messages
    assert setup.processed_at >= setup.received_at
    assert hello.processed_at - hello.received_at >= 0.2 - 0.01
    assert emu.connections[0].backlog == 0


def test_order_is_kept_when_the_lag_shrinks(make_emulator: Callable[..., Emulator],
                                            connect: Connect) -> None:
    """A message received under a shorter lag still waits for the ones before it."""
    emu = make_emulator(input_lag=0.3)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    record = emu.connections[0]
    emu.wait_for(lambda: record.backlog == 0)  # the setup is off the backlog
    client.send(context("one"))
    emu.wait_for(lambda: record.backlog == 1)
    emu.set_input_lag(0.0)
    client.send(context("two"))
    emu.wait_for(lambda: len(record.messages) == 3)
    _, one, two = record.messages
    assert [one.payload, two.payload] == [context("one")["clientContent"],
                                          context("two")["clientContent"]]
    assert [one.index, two.index] == [1, 2]
    assert one.processed_at - one.received_at >= 0.3 - 0.01
    assert two.received_at >= one.received_at and two.processed_at >= one.processed_at
    emu.wait_for(lambda: record.backlog == 0)


def test_close_is_not_lagged(make_emulator: Callable[..., Emulator],
                             connect: Connect) -> None:
    """close() acts at once while a message waits; the waiting message is discarded."""
    emu = make_emulator(input_lag=30.0)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)  # the setup itself is not lagged
    client.text("hello")
    emu.wait_for(lambda: emu.connections[0].backlog == 1)
    emu.close(1000, "bye")
    assert client.closed() == (1000, "bye")
    record = emu.wait_closed(1)
    assert [m.kind for m in record.messages] == ["setup"] and record.backlog == 0


def test_deadlines_fire_while_messages_wait(make_emulator: Callable[..., Emulator],
                                            connect: Connect) -> None:
    """goAway and the enforced deadline close are not held up by lagged messages."""
    emu = make_emulator(input_lag=30.0)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("hello")
    emu.wait_for(lambda: emu.connections[0].backlog == 1)
    emu.send_go_away(time_left=0.05)
    assert client.message() == {"goAway": {"timeLeft": "0.05s"}}
    assert client.closed() == (1011, "Deadline expired before operation could complete.")


def test_stall_discards_waiting_messages(make_emulator: Callable[..., Emulator],
                                         connect: Connect) -> None:
    """A stalled connection never processes the messages that were waiting."""
    emu = make_emulator(input_lag=30.0)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("hello")
    record = emu.connections[0]
    emu.wait_for(lambda: record.backlog == 1)
    emu.stall()
    emu.wait_for(lambda: record.backlog == 0)
    assert record.stalled and [m.kind for m in record.messages] == ["setup"]


def test_the_model_streams_while_messages_wait(make_emulator: Callable[..., Emulator],
                                               connect: Connect) -> None:
    """The worker keeps streaming; a barge-in that is still waiting interrupts nothing."""
    emu = make_emulator(chunk_delay=0.01)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.text("count to 200")
    client.until(lambda m: "modelTurn" in m.get("serverContent", {}))
    emu.set_input_lag(30.0)
    client.text("stop")
    emu.wait_for(lambda: emu.connections[0].backlog == 1)
    flags = content_flags(client.turn())
    assert "interrupted" not in flags and flags[-2:] == ["generationComplete", "turnComplete"]
    assert len(emu.connections[0].messages) == 2


def test_a_handle_does_not_cover_waiting_messages(emu: Emulator, connect: Connect) -> None:
    """Messages still waiting out the lag are not in a handle issued meanwhile."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, sessionResumption={})
    client.message()
    emu.set_input_lag(30.0)
    client.send(context("late"))
    emu.wait_for(lambda: emu.connections[0].backlog == 1)
    emu.issue_handle()
    client.message()
    assert emu.handles[-1].messages == [] and emu.handles[-1].last_consumed_index == 0


def test_negative_lag_is_refused(emu: Emulator) -> None:
    """input_lag and set_input_lag() refuse negative values."""
    with pytest.raises(ValueError):
        emu.set_input_lag(-0.1)
    with pytest.raises(ValueError):
        Emulator(input_lag=-1.0)
