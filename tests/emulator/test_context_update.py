"""contextUpdate: the system instruction and tools change for later turns."""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from livesync.emulator import Emulator
from tests.emulator.helpers import TEXT_CONFIG, WsClient, texts

Connect = Callable[..., WsClient]

WEATHER = {"functionDeclarations": [{"name": "get_weather", "parameters": {
    "type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}
CLOCK = {"functionDeclarations": [{"name": "read_clock"}]}


def instruction(text: str) -> Dict[str, Any]:
    return {"parts": [{"text": text}]}


def reply(client: WsClient, text: str) -> str:
    client.text(text)
    return "".join(texts(client.turn()))


def handle_after(messages: List[Dict[str, Any]]) -> str:
    return str(messages[-1]["sessionResumptionUpdate"]["newHandle"])


def next_handle(client: WsClient) -> str:
    return handle_after(client.until(lambda m: bool(
        m.get("sessionResumptionUpdate", {}).get("newHandle"))))


def test_context_update_replaces_instruction_for_later_turns(emu: Emulator,
                                                              connect: Connect) -> None:
    """The instruction in force changes after a contextUpdate; the record shows it."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, systemInstruction=instruction("Be brief."))
    assert reply(client, "What is your system instruction?") == (
        "My system instruction is: Be brief.")
    client.send({"contextUpdate": {"systemInstruction": instruction("Speak French.")}})
    assert reply(client, "What is your system instruction?") == (
        "My system instruction is: Speak French.")
    (session,) = emu.sessions.values()
    assert session.system_instruction == instruction("Speak French.")
    kinds = [m.kind for m in emu.connections[0].messages]
    assert kinds == ["setup", "clientContent", "contextUpdate", "clientContent"]


def test_context_update_replaces_and_clears_tools(emu: Emulator, connect: Connect) -> None:
    """The scripted model calls only the functions of the current tools; [] clears them."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, tools=[WEATHER])
    client.send({"context_update": {"tools": {"tools": [CLOCK]}}})  # snake_case key
    client.text("Please read the clock and the weather in Paris.")
    call = client.until(lambda m: "toolCall" in m)[-1]["toolCall"]["functionCalls"]
    assert [c["name"] for c in call] == ["read_clock"]
    client.send({"toolResponse": {"functionResponses": [
        {"id": call[0]["id"], "name": "read_clock", "response": {"time": "noon"}}]}})
    client.turn()
    client.send({"contextUpdate": {"tools": {"tools": []}}})
    assert reply(client, "Read the clock.") == "You said: Read the clock."
    (session,) = emu.sessions.values()
    assert session.tools == []


def test_context_update_snake_case_nested_keys(emu: Emulator, connect: Connect) -> None:
    """snake_case keys inside contextUpdate are accepted (system_instruction)."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG)
    client.send({"contextUpdate": {"system_instruction": instruction("Be kind.")}})
    assert reply(client, "system instruction?") == "My system instruction is: Be kind."


def test_handles_snapshot_the_context(emu: Emulator, connect: Connect) -> None:
    """A resume with a later handle sees the update; with an earlier handle it does not."""
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, sessionResumption={},
                 systemInstruction=instruction("Old."))
    before = next_handle(client)
    client.send({"contextUpdate": {"systemInstruction": instruction("New.")}})
    client.text("hello")
    after = next_handle(client)
    client.ws.close()
    emu.wait_closed(1)
    for handle, expected in ((after, "New."), (before, "Old.")):
        again = connect(emu)
        again.setup(generationConfig=TEXT_CONFIG, sessionResumption={"handle": handle})
        assert reply(again, "system instruction?") == f"My system instruction is: {expected}"
        again.ws.close()
        emu.wait_for(lambda: not emu.connections[-1].open)


def test_context_update_follows_input_lag_order(make_emulator: Callable[..., Emulator],
                                                connect: Connect) -> None:
    """Under input_lag a contextUpdate still applies between the turns around it."""
    emu = make_emulator(input_lag=0.05)
    client = connect(emu)
    client.setup(generationConfig=TEXT_CONFIG, systemInstruction=instruction("A."),
                 realtimeInputConfig={"activityHandling": "NO_INTERRUPTION"})
    client.text("system instruction?")
    client.send({"contextUpdate": {"systemInstruction": instruction("B.")}})
    client.text("system instruction?")
    first = "".join(texts(client.turn()))
    second = "".join(texts(client.turn()))
    assert (first, second) == ("My system instruction is: A.", "My system instruction is: B.")


def test_invalid_context_update_closes_1007(emu: Emulator, connect: Connect) -> None:
    """A badly shaped contextUpdate is refused like the proto-JSON parser does."""
    cases = [
        ({"tools": {"tools": ["x"]}}, "Invalid value at 'context_update.tools.tools[0]' "
         "(type.googleapis.com/google.ai.generativelanguage.v1beta.Tool), \"x\""),
        ({"toolz": {}}, "Invalid JSON payload received. Unknown name \"toolz\" at "
         "'context_update': Cannot find field."),
        ({"systemInstruction": {"parts": [{"txt": "a"}]}}, "Invalid JSON payload received. "
         "Unknown name \"txt\" at 'context_update.system_instruction.parts[0]': Cannot find "
         "field."),
    ]
    for body, reason in cases:
        client = connect(emu)
        client.setup(generationConfig=TEXT_CONFIG)
        client.send({"contextUpdate": body})
        assert client.closed() == (1007, reason)
