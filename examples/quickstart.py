"""livesync quickstart: callbacks that stream a reply, then the blocking ``ask()``.

By default it runs against the embedded offline emulator (no API key, no
network). With ``--live`` it talks to the real Gemini Live API with the key in
``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``).

Run: ``python examples/quickstart.py`` (or ``python examples/quickstart.py --live``)
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from typing import List, Optional

import livesync

MODEL = "gemini-live-2.5-flash-preview"


def run(client: livesync.Client, model: str = MODEL) -> None:
    """The whole example, given a client (any backend). Blocks until it is done."""
    replied = threading.Event()

    # Callbacks run on livesync's dispatcher thread, one at a time, in server order.
    def on_message(message: livesync.LiveServerMessage) -> None:
        if message.text:
            print(message.text, end="", flush=True)
        if message.server_content and message.server_content.turn_complete:
            print()
            replied.set()

    def on_reconnect(event: livesync.Reconnected) -> None:
        # Connections come and go (about every 10 minutes on the real service);
        # the session carries on. This is for your information only.
        print("  [%s reconnect: resumed=%s, gap %.0f ms]" % (
            "planned" if event.planned else "unplanned", event.resumed, event.gap_ms))

    session = client.connect(
        model,
        config={"response_modalities": ["TEXT"]},
        on_message=on_message,
        on_reconnect=on_reconnect,
        on_close=lambda closed: print("closed:", closed.code),
    )
    with session:  # closes the session (and joins its threads) at the end of the block
        # 1. Fire and forget; the reply streams into on_message.
        print("> Tell me a short story.")
        print("< ", end="")
        session.send_text("Tell me a short story.")
        if not replied.wait(60):
            raise TimeoutError("no reply within 60 s")

        # 2. Blocking: ask() returns the whole answer as a Turn (on_message sees
        #    it stream too, so the callback above prints it as well).
        print("> What is the capital of France?")
        print("< ", end="")
        replied.clear()
        turn = session.ask("What is the capital of France?", timeout=60)
        # ask() can return while the callback is still printing the same reply on the
        # dispatcher thread: let it finish its line first.
        replied.wait(60)
        print("ask() returned:", repr(turn.text))
        if turn.usage and turn.usage.total_token_count:
            print("tokens used:", turn.usage.total_token_count)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--live", action="store_true",
                        help="use the real Gemini Live API (GEMINI_API_KEY), not the emulator")
    parser.add_argument("--model", default=MODEL, help="model name (default: %(default)s)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        if args.live:
            client = livesync.Client()  # the key comes from GEMINI_API_KEY / GOOGLE_API_KEY
        else:
            from livesync.emulator import Emulator

            emu = stack.enter_context(Emulator())
            client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
        run(client, args.model)


if __name__ == "__main__":
    main()
