"""google-genai 3.x converses with the emulator on its default settings (API version v1).

google-genai always turns ``base_url`` into ``wss://``, so the emulator serves TLS
here (``ssl_context``, a trustme CA) and the client trusts that CA through
``HttpOptions.async_client_args``; everything else is the SDK's default.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

from livesync.emulator import Emulator
from tests.emulator.helpers import pcm

genai = pytest.importorskip("google.genai")
trustme = pytest.importorskip("trustme")
from google.genai import types  # noqa: E402

MODEL = "gemini-live-2.5-flash"  # a non-preview model: served on v1
TIMEOUT = 10.0
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Weather in a city",
    parameters=types.Schema(type=types.Type.OBJECT, properties={
        "city": types.Schema(type=types.Type.STRING)}, required=["city"]))])


def tls_emulator(make_emulator: Callable[..., Emulator], **options: Any
                 ) -> Tuple[Emulator, ssl.SSLContext]:
    """An emulator on wss:// and a client context trusting its certificate."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return make_emulator(ssl_context=server, **options), client


def sdk_client(emu: Emulator, context: ssl.SSLContext) -> Any:
    options = types.HttpOptions(base_url=emu.base_url, async_client_args={"ssl": context})
    return genai.Client(api_key=emu.api_key, http_options=options)


class Turn:
    """What one ``receive()`` loop saw."""

    def __init__(self) -> None:
        self.text = ""
        self.handles: List[str] = []
        self.calls: List[types.FunctionCall] = []
        self.statuses: List[Optional[str]] = []


async def receive(session: Any, tool_results: Optional[Dict[str, Any]] = None) -> Turn:
    """Run one ``receive()`` loop; answer tool calls with ``tool_results``."""
    turn = Turn()
    async for message in session.receive():
        if message.text:
            turn.text += message.text
        update = message.session_resumption_update
        if update is not None and update.new_handle:
            turn.handles.append(update.new_handle)
        if message.server_content is not None and message.server_content.turn_complete:
            status = message.server_content.interaction_status
            turn.statuses.append(status.value if status is not None else None)
        if message.tool_call is not None:
            calls = message.tool_call.function_calls or []
            turn.calls.extend(calls)
            await session.send_tool_response(function_responses=[
                types.FunctionResponse(id=c.id, name=c.name, response=(tool_results or {}))
                for c in calls])
    return turn


async def ask(session: Any, text: str, **kw: Any) -> Turn:
    await session.send_client_content(
        turns=types.Content(role="user", parts=[types.Part(text=text)]), turn_complete=True)
    return await receive(session, **kw)


async def conversation(emu: Emulator, context: ssl.SSLContext) -> Dict[str, Any]:
    client = sdk_client(emu, context)
    config = types.LiveConnectConfig(
        response_modalities=[types.Modality.TEXT], system_instruction="Be brief.",
        tools=[WEATHER], session_resumption=types.SessionResumptionConfig())
    seen: Dict[str, Any] = {}
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        first = await ask(session, "What is the capital of France?")
        seen["streamed"], seen["handles"] = first.text, first.handles
        await session.send_context_update(system_instruction="Speak French.", tools=[])
        seen["instruction"] = (await ask(session, "What is your system instruction?")).text
        await session.send_context_update(tools=[WEATHER])
        tool = await ask(session, "What is the weather in Paris?", tool_results={"sky": "blue"})
        seen["call"], seen["after_tool"] = tool.calls[0], tool.text
        await session.send_realtime_input(audio=types.Blob(
            data=pcm(400, True) + pcm(600, False), mime_type="audio/pcm;rate=16000"))
        audio = await receive(session)
        seen["audio"], seen["last_handle"] = audio.text, (audio.handles or tool.handles)[-1]
    resume = types.LiveConnectConfig(
        response_modalities=[types.Modality.TEXT],
        session_resumption=types.SessionResumptionConfig(handle=seen["last_handle"]))
    async with client.aio.live.connect(model=MODEL, config=resume) as session:
        seen["resumed"] = (await ask(session, "What is your system instruction?")).text
    return seen


def test_google_genai_converses_on_v1(make_emulator: Callable[..., Emulator]) -> None:
    """Handshake, streamed turn, handles, contextUpdate, tool call, audio and a resume."""
    emu, context = tls_emulator(make_emulator)
    seen = asyncio.run(asyncio.wait_for(conversation(emu, context), TIMEOUT))
    assert emu.connections[0].api_version == "v1"
    assert seen["streamed"] == "The capital of France is Paris." and seen["handles"]
    assert seen["instruction"] == "My system instruction is: Speak French."
    assert seen["call"].name == "get_weather" and seen["call"].args == {"city": "Paris"}
    assert seen["after_tool"] == 'get_weather returned {"sky": "blue"}'
    assert seen["audio"] == "I heard 0.40 seconds of audio."
    assert seen["resumed"] == "My system instruction is: Speak French."
    kinds = [m.kind for m in emu.connections[0].messages]
    assert kinds.count("contextUpdate") == 2 and "toolResponse" in kinds


async def background_turn(emu: Emulator, context: ssl.SSLContext) -> Turn:
    client = sdk_client(emu, context)
    config = types.LiveConnectConfig(response_modalities=[types.Modality.TEXT])
    async with client.aio.live.connect(model=MODEL, config=config) as session:
        return await ask(session, "What is the capital of France?")


def test_google_genai_receive_waits_for_idle(make_emulator: Callable[..., Emulator]) -> None:
    """With interaction_status="background", receive() runs until the IDLE turnComplete."""
    emu, context = tls_emulator(make_emulator, interaction_status="background", time_scale=0.01)
    turn = asyncio.run(asyncio.wait_for(background_turn(emu, context), TIMEOUT))
    assert turn.text == "The capital of France is Paris.Background work finished."
    assert turn.statuses == ["IN_PROGRESS", "IDLE"]
