"""Function calling with livesync: declarations, ``toolCall``, ``toolCallCancellation``.

Two ways to answer the model's function calls:

1. **Callbacks** (any app): ``on_message`` sees each ``toolCall``; run the
   function (slow ones on a worker thread, so callbacks keep flowing) and answer
   with ``session.send_tool_response``. When you talk over the model while a
   call runs, the server cancels it with ``toolCallCancellation``: stop the
   work and send nothing (livesync would not send an answer to a cancelled
   call anyway; it counts it in ``stats().dropped``).
2. **ask() alone** (scripts, notebooks): ``session.ask(question, tools={name:
   function})`` calls your functions on the calling thread, sends their
   results and returns the final answer.

By default it runs against the embedded offline emulator, whose scripted model
calls a declared function when the question mentions it and then says what the
function returned. ``--live`` talks to the real Gemini Live API (GEMINI_API_KEY).

Run: ``python examples/tools.py`` (or ``python examples/tools.py --live``)
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from typing import Any, Dict, List, Optional

import livesync

MODEL = "gemini-live-2.5-flash-preview"

# Function declarations, as in the Gemini API (an OpenAPI subset; types in capitals).
WEATHER = {
    "name": "get_current_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "OBJECT",
                   "properties": {"location": {"type": "STRING", "description": "a city"}},
                   "required": ["location"]},
}
FLIGHTS = {
    "name": "search_flights",
    "description": "Search flights to a destination (slow: takes a few seconds).",
    "parameters": {"type": "OBJECT",
                   "properties": {"destination": {"type": "STRING"}},
                   "required": ["destination"]},
}
TOOLS = [{"function_declarations": [WEATHER, FLIGHTS]}]


def get_current_weather(location: str) -> Dict[str, Any]:
    return {"location": location, "temperature": "18C", "sky": "clear"}


def search_flights(destination: str, cancelled: threading.Event) -> Dict[str, Any]:
    """A slow function that gives up when ``cancelled`` is set."""
    if cancelled.wait(5.0):  # stands in for a slow API that checks for cancellation
        return {}
    return {"destination": destination, "flights": ["LS 101 08:15", "LS 205 17:40"]}


class ToolRunner:
    """Answers tool calls from ``on_message``; runs each call on a worker thread.

    ``on_message`` runs on livesync's dispatcher thread: it must not block for
    long, so the functions run on their own threads and answer from there
    (``send_tool_response`` may be called from any thread).
    """

    def __init__(self) -> None:
        self.session: Optional[livesync.Session] = None
        self.cancelled: Dict[str, threading.Event] = {}
        self.lock = threading.Lock()
        self.turn_done = threading.Condition()
        self.turns: List[str] = []
        self.text: List[str] = []
        self.call_started = threading.Event()
        self.workers: List[threading.Thread] = []

    def on_message(self, message: livesync.LiveServerMessage) -> None:
        if message.tool_call and message.tool_call.function_calls:
            for call in message.tool_call.function_calls:
                print("  [toolCall %s(%s)]" % (call.name, call.args))
                cancelled = threading.Event()
                with self.lock:
                    self.cancelled[call.id or ""] = cancelled
                worker = threading.Thread(target=self.run_call, args=(call, cancelled))
                self.workers.append(worker)
                worker.start()
            self.call_started.set()
        if message.tool_call_cancellation:
            for call_id in message.tool_call_cancellation.ids or []:
                with self.lock:
                    cancelled = self.cancelled.pop(call_id, None)
                if cancelled is not None:
                    cancelled.set()
                    print("  [toolCallCancellation: the call stops; no response is sent]")
        if message.text:
            self.text.append(message.text)
        content = message.server_content
        if content and content.interrupted:
            self.text.append("(interrupted)")
        if content and content.turn_complete:
            with self.turn_done:
                self.turns.append("".join(self.text))
                self.text.clear()
                self.turn_done.notify_all()

    def run_call(self, call: livesync.FunctionCall, cancelled: threading.Event) -> None:
        args = call.args or {}
        if call.name == "get_current_weather":
            result = get_current_weather(**args)
        elif call.name == "search_flights":
            result = search_flights(args.get("destination", ""), cancelled)
        else:
            result = {"error": "unknown function %s" % call.name}
        with self.lock:
            if self.cancelled.pop(call.id or "", None) is None:
                return  # cancelled meanwhile: do not answer
        assert self.session is not None
        self.session.send_tool_response(
            [livesync.FunctionResponse(id=call.id, name=call.name, response=result)])

    def wait_turns(self, count: int, timeout: float = 60.0) -> List[str]:
        with self.turn_done:
            if not self.turn_done.wait_for(lambda: len(self.turns) >= count, timeout):
                raise TimeoutError("no reply within %.0f s" % timeout)
            return list(self.turns)

    def join(self) -> None:
        for worker in self.workers:
            worker.join(10)


def with_callbacks(client: livesync.Client, model: str) -> None:
    """Tool calls answered from on_message, and one cancelled by a barge-in."""
    print("1. Tool calls with on_message and send_tool_response")
    runner = ToolRunner()
    session = client.connect(model, config={"response_modalities": ["TEXT"], "tools": TOOLS},
                             on_message=runner.on_message)
    runner.session = session
    with session:
        print("> What is the weather in Paris?")
        session.send_text("What is the weather in Paris?")
        print("<", runner.wait_turns(1)[-1])

        print("> Search flights to Tokyo")
        runner.call_started.clear()
        session.send_text("Search flights to Tokyo")
        runner.call_started.wait(30)
        # Talk over the model while the slow call runs: the server cancels it.
        print("> Actually, never mind.")
        session.send_text("Actually, never mind.")
        for turn in runner.wait_turns(3)[1:]:
            print("<", turn)
        runner.join()
        print("dropped:", session.stats().dropped)


def with_ask(client: livesync.Client, model: str) -> None:
    """ask() runs the functions itself: no callback needed."""
    print("2. Tools with ask() alone")
    with client.connect(model, config={"response_modalities": ["TEXT"], "tools": TOOLS}) as session:
        print("> What is the weather in Paris?")
        turn = session.ask("What is the weather in Paris?",
                           tools={"get_current_weather": get_current_weather})
        for call in turn.tool_calls:
            print("  [ask() called %s(%s)]" % (call.name, call.args))
        print("<", turn.text)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--live", action="store_true",
                        help="use the real Gemini Live API (GEMINI_API_KEY), not the emulator")
    parser.add_argument("--model", default=MODEL, help="model name (default: %(default)s)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.live:
            client = livesync.Client()
        else:
            from livesync.emulator import Emulator

            emu = stack.enter_context(Emulator())
            client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
        with_callbacks(client, args.model)
        with_ask(client, args.model)


if __name__ == "__main__":
    main()
