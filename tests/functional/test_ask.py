"""ask() answers its own question: replies in flight, concurrency, receive() and tools."""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional

import pytest

import livesync
from livesync import FunctionResponse, InvalidConfig
from tests.utils import TIMEOUT, Recorder, client_messages

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}
FRANCE = "The capital of France is Paris."
GERMANY = "The capital of Germany is Berlin."


def count_to(n: int) -> str:
    """The emulator's reply to "count to n"."""
    return ", ".join(str(i) for i in range(1, n + 1)) + "."


WEATHER = {"response_modalities": ["TEXT"], "tools": [{"function_declarations": [
    {"name": "get_current_weather", "description": "The current weather in a city",
     "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}},
                    "required": ["location"]}}]}]}
#: An id the emulator never issues (its ids are function-call-<19 digits>).
UNKNOWN_ID = "function-call-42"


def connect(emu: Any, **kwargs: Any) -> livesync.Session:
    client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
    kwargs.setdefault("config", TEXT)
    return client.connect(MODEL, **kwargs)


def is_turn_complete(message: livesync.LiveServerMessage) -> bool:
    return bool(message.server_content and message.server_content.turn_complete)


def interruptions(emu: Any) -> int:
    """How many times the emulator told a client its generation was interrupted."""
    return sum(1 for conn in emu.connections for m in conn.sent
               if (m.get("serverContent") or {}).get("interrupted"))


def model_replies(emu: Any) -> List[str]:
    """The model turns in the (only) server-side session's history, oldest first."""
    (record,) = emu.sessions.values()
    return ["".join(p.get("text", "") for p in content.get("parts", []))
            for content in record.history if content.get("role") == "model"]


def user_texts(emu: Any) -> List[str]:
    """The texts of the clientContent messages the (only) session consumed."""
    (record,) = emu.sessions.values()
    return [part["text"] for m in client_messages(record) if m.kind == "clientContent"
            for turn in m.payload["turns"] for part in turn["parts"]]


def tool_responses(emu: Any) -> List[Dict[str, Any]]:
    """Every function response the emulator received, on any connection."""
    return [r for conn in emu.connections for m in client_messages(conn)
            if m.kind == "toolResponse" for r in m.payload["functionResponses"]]


def issued_calls(emu: Any) -> List[Dict[str, Any]]:
    """Every function call the emulator sent, on any connection."""
    return [c for conn in emu.connections for m in conn.sent
            for c in (m.get("toolCall") or {}).get("functionCalls", [])]


def assert_closed_by_the_client(emu: Any) -> None:
    """The session's one connection was ended by the client's close, not by the server."""
    (conn,) = emu.connections
    emu.wait_closed(conn)
    assert (conn.closed_by, conn.client_close_code) == ("client", 1000), conn


# ask() while a reply is in flight.


def test_ask_while_a_reply_streams_waits_for_it_and_answers_its_own_question(
    make_emulator: Any,
) -> None:
    """By default ask() lets a streaming reply finish, then returns the answer to its question."""
    emu = make_emulator(chunk_delay=0.07)  # "count to 60" streams in 15 chunks, about 1 s
    rec = Recorder()
    with connect(emu, on_message=rec.on_message) as session:
        session.send_text("count to 60")
        rec.wait("on_message", where=lambda m: bool(m.text))
        turn = session.ask("What is the capital of France?", timeout=20 * TIMEOUT)
    assert (turn.text, turn.interrupted) == (FRANCE, False)
    assert interruptions(emu) == 0  # the count reply was not cut short…
    assert model_replies(emu) == [count_to(60), FRANCE]  # …it completed, then France came


def test_ask_with_interrupt_barges_in_and_skips_the_interrupted_turn(make_emulator: Any) -> None:
    """ask(interrupt=True) cuts a streaming reply short and returns the answer to its question."""
    emu = make_emulator(chunk_delay=0.07)
    rec = Recorder()
    with connect(emu, on_message=rec.on_message) as session:
        session.send_text("count to 60")
        rec.wait("on_message", where=lambda m: bool(m.text))
        turn = session.ask("What is the capital of France?", timeout=20 * TIMEOUT,
                           interrupt=True)
    assert (turn.text, turn.interrupted) == (FRANCE, False)
    assert interruptions(emu) == 1  # the count reply was cut short
    count, france = model_replies(emu)
    assert count != count_to(60) and count_to(60).startswith(count)
    assert france == FRANCE


def test_ask_after_a_timed_out_ask_returns_the_new_answer(make_emulator: Any) -> None:
    """A notebook cell re-run after its ask() timed out mid-reply gets the new question's answer."""
    emu = make_emulator(chunk_delay=0.05)  # "count to 200" streams for about 3 s
    with connect(emu) as session:  # no callbacks, as in a notebook
        with pytest.raises(TimeoutError):
            session.ask("count to 200", timeout=TIMEOUT)  # the cell gives up mid-reply
        turn = session.ask("What is the capital of France?", timeout=30 * TIMEOUT)
    assert (turn.text, turn.interrupted) == (FRANCE, False)
    assert model_replies(emu)[-1] == FRANCE


def test_concurrent_asks_each_get_their_own_answer(make_emulator: Any) -> None:
    """Two threads asking at once while a reply streams each get the answer to their question."""
    emu = make_emulator(chunk_delay=0.05)
    rec = Recorder()
    results: Dict[str, Any] = {}
    barrier = threading.Barrier(2)

    def ask(country: str) -> None:
        barrier.wait()
        try:
            results[country] = session.ask(
                "What is the capital of %s?" % country, timeout=30 * TIMEOUT)
        except Exception as exc:  # reported by the assertions below
            results[country] = exc

    with connect(emu, on_message=rec.on_message) as session:
        session.send_text("count to 60")
        rec.wait("on_message", where=lambda m: bool(m.text))
        threads = [threading.Thread(target=ask, args=(c,)) for c in ("France", "Germany")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(40 * TIMEOUT)
    assert isinstance(results.get("France"), livesync.Turn), results
    assert isinstance(results.get("Germany"), livesync.Turn), results
    assert (results["France"].text, results["France"].interrupted) == (FRANCE, False)
    assert (results["Germany"].text, results["Germany"].interrupted) == (GERMANY, False)
    assert sorted(user_texts(emu)) == sorted([
        "count to 60", "What is the capital of France?", "What is the capital of Germany?"])


# One consumer cursor: receive() does not re-yield what ask() returned.


def test_receive_after_ask_yields_only_the_next_answer(emulator: Any) -> None:
    """The README flow: ask(), send_text(), then a receive() loop sees only the new answer."""
    with connect(emulator) as session:
        turn = session.ask("What is the capital of France?", timeout=10 * TIMEOUT)
        assert turn.text == FRANCE
        session.send_text("What is the capital of Germany?")
        received = []
        for message in session.receive(timeout=10 * TIMEOUT):
            received.append(message)
            if is_turn_complete(message):
                break
    assert "".join(m.text or "" for m in received) == GERMANY
    asked = {id(m) for m in turn.messages}
    assert not [m for m in received if id(m) in asked]


def test_receive_after_ask_with_a_callback_yields_only_the_next_answer(
    make_emulator: Any,
) -> None:
    """With on_message and a running receive() stream, messages ask() returned are not
    yielded again, while the callback still sees every message."""
    emu = make_emulator(chunk_delay=0.05)  # the warm-up reply outlasts the first next()
    rec = Recorder()
    with connect(emu, on_message=rec.on_message) as session:
        stream = session.receive(timeout=10 * TIMEOUT)
        session.send_text("count to 30")
        for message in stream:  # receive() now sees every new message
            if is_turn_complete(message):
                break
        turn = session.ask("What is the capital of France?", timeout=10 * TIMEOUT)
        assert turn.text == FRANCE
        session.send_text("What is the capital of Germany?")
        received = []
        for message in stream:
            received.append(message)
            if is_turn_complete(message):
                break
        rec.wait("on_message", 3, where=is_turn_complete)
    assert "".join(m.text or "" for m in received) == GERMANY
    seen = "".join(m.text or "" for m in rec.get("on_message"))
    assert seen == count_to(30) + FRANCE + GERMANY


# Tools in the blocking API.


@pytest.mark.parametrize("result, sent", [
    ({"temp": "18C"}, {"temp": "18C"}),
    ("18C", {"result": "18C"}),
])
def test_ask_runs_declared_tools_and_returns_the_completed_turn(
    emulator: Any, result: Any, sent: Dict[str, Any]
) -> None:
    """ask(tools=…) runs the called function on the asking thread, sends its result and
    returns the completed turn with the call in tool_calls."""
    ran: List[Any] = []

    def get_current_weather(location: str) -> Any:
        ran.append((threading.current_thread(), location))
        return result

    with connect(emulator, config=WEATHER) as session:
        turn = session.ask("What is the weather in Paris?", timeout=10 * TIMEOUT,
                           tools={"get_current_weather": get_current_weather})
    assert "18C" in turn.text
    assert turn.text == "get_current_weather returned " + (
        '{"temp": "18C"}' if isinstance(result, dict) else '{"result": "18C"}')
    (call,) = turn.tool_calls
    assert call.name == "get_current_weather" and call.args == {"location": "Paris"}
    assert ran == [(threading.current_thread(), "Paris")]
    (response,) = tool_responses(emulator)
    assert (response["id"], response["response"]) == (call.id, sent)


def test_ask_sends_a_failing_tools_error_and_completes(emulator: Any) -> None:
    """A tool that raises is answered with {"error": "<ExcType>: <message>"}; ask() returns."""

    def get_current_weather(location: str) -> Any:
        raise ValueError("no weather for %s" % location)

    with connect(emulator, config=WEATHER) as session:
        turn = session.ask("What is the weather in Paris?", timeout=10 * TIMEOUT,
                           tools={"get_current_weather": get_current_weather})
    error = {"error": "ValueError: no weather for Paris"}
    assert turn.text == 'get_current_weather returned {"error": "ValueError: no weather for Paris"}'
    (call,) = turn.tool_calls
    (response,) = tool_responses(emulator)
    assert (response["id"], response["response"]) == (call.id, error)


@pytest.mark.parametrize("tools", [None, {"get_time": lambda: "12:00"}],
                         ids=["no-tools", "other-tools"])
def test_ask_raises_tool_call_pending_when_nothing_can_answer(
    emulator: Any, tools: Optional[Dict[str, Any]]
) -> None:
    """Without a handler for the called function and without on_message, ask() raises
    ToolCallPending naming the call at once instead of timing out."""
    kwargs = {} if tools is None else {"tools": tools}
    with connect(emulator, config=WEATHER) as session:
        started = time.monotonic()
        with pytest.raises(Exception) as info:
            session.ask("What is the weather in Paris?", timeout=20 * TIMEOUT, **kwargs)
        elapsed = time.monotonic() - started
        assert elapsed < 4 * TIMEOUT, "ask() raised %r after %.1f s" % (info.value, elapsed)
        pending = getattr(livesync, "ToolCallPending", None)
        assert pending is not None and isinstance(info.value, pending), repr(info.value)
        assert session.state == "open"
    (issued,) = issued_calls(emulator)
    (call,) = info.value.calls
    assert isinstance(call, livesync.FunctionCall)
    assert (call.id, call.name) == (issued["id"], "get_current_weather")
    assert "get_current_weather" in str(info.value) and issued["id"] in str(info.value)
    assert tool_responses(emulator) == []


def test_ask_with_a_callback_waits_for_its_tool_response(emulator: Any) -> None:
    """With on_message, ask() waits for the callback's tool response and returns the turn;
    if nobody answers, its TimeoutError names the pending call."""
    rec = Recorder()

    def on_message(message: livesync.LiveServerMessage) -> None:
        rec.on_message(message)
        for call in (message.tool_call.function_calls or []) if message.tool_call else []:
            if call.args == {"location": "Paris"}:  # the app only knows Paris
                session.send_tool_response(FunctionResponse(
                    id=call.id, name=call.name, response={"temp": "18C"}))

    with connect(emulator, config=WEATHER, on_message=on_message) as session:
        turn = session.ask("What is the weather in Paris?", timeout=10 * TIMEOUT)
        assert turn.text == 'get_current_weather returned {"temp": "18C"}'
        assert [c.name for c in turn.tool_calls] == ["get_current_weather"]
        with pytest.raises(TimeoutError) as info:
            session.ask("What is the weather in London?", timeout=2 * TIMEOUT)
    assert not isinstance(info.value, getattr(livesync, "ToolCallPending", ()))
    paris, london = issued_calls(emulator)
    assert london["args"] == {"location": "London"}
    message = str(info.value)
    assert "get_current_weather" in message and london["id"] in message, message


# send_tool_response checks the ids.


def test_tool_response_for_an_unknown_id_raises_and_sends_nothing(emulator: Any) -> None:
    """A response for an id the session never saw raises InvalidConfig naming the id and is
    not sent (the server would end the session with 1008)."""
    with connect(emulator, config=WEATHER) as session:
        with pytest.raises(InvalidConfig, match=UNKNOWN_ID):
            session.send_tool_response(FunctionResponse(
                id=UNKNOWN_ID, name="get_current_weather", response={"temp": "18C"}))
        # Sends keep their order: once this is answered, a toolResponse would have arrived.
        assert session.ask("What is the capital of France?", timeout=10 * TIMEOUT).text == FRANCE
        assert session.state == "open"
    assert tool_responses(emulator) == []
    assert_closed_by_the_client(emulator)


def test_tool_response_mixing_known_and_unknown_ids_sends_nothing(emulator: Any) -> None:
    """A response list with one unknown id is refused whole; the open call can still be
    answered afterwards."""
    rec = Recorder()
    with connect(emulator, config=WEATHER, on_message=rec.on_message) as session:
        session.send_text("What is the weather in Paris?")
        (message,) = rec.wait("on_message", where=lambda m: m.tool_call is not None)
        (call,) = message.tool_call.function_calls
        known = FunctionResponse(id=call.id, name=call.name, response={"temp": "18C"})
        unknown = FunctionResponse(id=UNKNOWN_ID, name=call.name, response={"temp": "9C"})
        with pytest.raises(InvalidConfig, match=UNKNOWN_ID):
            session.send_tool_response([known, unknown])
        session.send_tool_response(known)
        rec.wait("on_message", where=is_turn_complete)
        assert session.state == "open"
    reply = "".join(m.text or "" for m in rec.get("on_message"))
    assert reply == 'get_current_weather returned {"temp": "18C"}'
    assert [r["id"] for r in tool_responses(emulator)] == [call.id]
    assert_closed_by_the_client(emulator)
