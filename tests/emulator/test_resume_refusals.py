"""Resume refusals the real service produces: deadline, token uses, poisoned resumes, tools."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from livesync.emulator import Emulator
from tests.emulator.helpers import TEXT_CONFIG, WsClient, texts
from tests.emulator.test_auth import mint

Connect = Callable[..., WsClient]

INVALID = "Request contains an invalid argument."
DEADLINE = "Deadline expired before operation could complete."
TOOLS = [{"functionDeclarations": [{"name": "get_weather"}]}]


def first_handle(client: WsClient, **setup: Any) -> str:
    client.setup(generationConfig=TEXT_CONFIG, sessionResumption={}, **setup)
    return str(client.message()["sessionResumptionUpdate"]["newHandle"])


def resume_setup(handle: str) -> Dict[str, Any]:
    return {"setup": {"model": "models/gemini-live-2.5-flash-preview",
                      "generationConfig": TEXT_CONFIG,
                      "sessionResumption": {"handle": handle}}}


def end(emu: Emulator, client: WsClient) -> None:
    client.ws.close()
    cid = emu.connections[-1].id
    emu.wait_closed(cid)


def test_resume_after_deadline_close_is_refused_1007(make_emulator: Callable[..., Emulator],
                                                     connect: Connect) -> None:
    """refuse_resume_after_deadline: after a 1011 Deadline close, resuming closes 1007."""
    emu = make_emulator(time_scale=0.001, refuse_resume_after_deadline=True)
    client = connect(emu)
    handle = first_handle(client)
    assert client.closed() == (1011, DEADLINE)
    again = connect(emu)
    again.send(resume_setup(handle))
    assert again.closed() == (1007, INVALID)
    assert list(emu.sessions.values())[0].ended == "deadline"


def test_resume_after_deadline_close_works_by_default(make_emulator: Callable[..., Emulator],
                                                      connect: Connect) -> None:
    """Without the option a deadline close leaves the session resumable."""
    emu = make_emulator(time_scale=0.001)
    client = connect(emu)
    handle = first_handle(client)
    assert client.closed() == (1011, DEADLINE)
    again = connect(emu)
    again.send(resume_setup(handle))
    assert "setupComplete" in again.message()


def test_resume_uses_token_consumes_uses(make_emulator: Callable[..., Emulator],
                                         connect: Connect) -> None:
    """resume_uses_token: a resume uses the token; none left -> 1011 Token has been used..."""
    emu = make_emulator(resume_uses_token=True)
    for uses, outcome in ((2, "ok"), (1, "refused")):
        header = ["Authorization: Token " + mint(emu, uses=uses)["name"]]
        client = connect(emu, emu.url(constrained=True), key=False, headers=header)
        handle = first_handle(client)
        end(emu, client)
        again = connect(emu, emu.url(constrained=True), key=False, headers=header)
        again.send(resume_setup(handle))
        if outcome == "ok":
            assert "setupComplete" in again.message() and emu.tokens[-1].used == 2
            end(emu, again)
        else:
            assert again.closed() == (1011, "Token has been used too many times")


def test_poisoned_session_dies_after_every_resume(emu: Emulator, connect: Connect) -> None:
    """poison_session: each resume gets setupComplete, then the close `after` s later."""
    client = connect(emu)
    handle = first_handle(client)
    sid = emu.connections[0].session_id
    emu.poison_session(after=0.05)
    assert emu.sessions[sid].poison == (1007, INVALID, 0.05)
    end(emu, client)
    for _ in range(2):
        again = connect(emu)
        again.send(resume_setup(handle))
        assert "setupComplete" in again.message()
        assert again.closed() == (1007, INVALID)
        record = emu.wait_closed(emu.connections[-1].id)
        assert record.closed_at is not None and record.closed_at - record.opened_at >= 0.05
    fresh = connect(emu)
    fresh.setup(generationConfig=TEXT_CONFIG)
    emu.cure_session(sid)
    cured = connect(emu)
    cured.send(resume_setup(handle))
    cured.message()
    for survivor in (fresh, cured):
        survivor.text("hello")
        assert "".join(texts(survivor.turn())) == "You said: hello"
    assert fresh.ws.connected and cured.ws.connected


def test_close_after_next_tool_response(emu: Emulator, connect: Connect) -> None:
    """close_after_next_tool_response: the next toolResponse is followed by that close."""
    emu.close_after_next_tool_response(1011, "Internal error occurred.")
    outcomes: List[Any] = []
    for _ in range(2):
        client = connect(emu)
        client.setup(generationConfig=TEXT_CONFIG, tools=TOOLS)
        client.text("What is the weather?")
        call = client.until(lambda m: "toolCall" in m)[-1]["toolCall"]["functionCalls"][0]
        client.send({"toolResponse": {"functionResponses": [
            {"id": call["id"], "name": call["name"], "response": {"sky": "blue"}}]}})
        if not outcomes:
            outcomes.append(client.closed())
        else:
            outcomes.append("".join(texts(client.turn())))
    assert outcomes == [(1011, "Internal error occurred."),
                        'get_weather returned {"sky": "blue"}']
    assert emu.connections[0].messages[-1].kind == "toolResponse"


def test_manual_deadline_close_also_refuses_resumes(make_emulator: Callable[..., Emulator],
                                                   connect: Connect) -> None:
    """emu.close(1011, Deadline text) counts as a deadline close for the option."""
    emu = make_emulator(refuse_resume_after_deadline=True)
    client = connect(emu)
    handle = first_handle(client)
    emu.close(1011, DEADLINE)
    assert client.closed() == (1011, DEADLINE)
    again = connect(emu)
    again.send(resume_setup(handle))
    assert again.closed() == (1007, INVALID)
