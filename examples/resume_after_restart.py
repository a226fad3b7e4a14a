"""Resume the same Live session after a process restart (a notebook kernel, a worker).

Each resumption handle the server issues is saved to a file; a new process that
connects with the same ``session_key`` within the handle lifetime (about 2 hours)
continues the conversation instead of starting over. Here both "processes" are
simulated in one script against the offline emulator.

Run: ``python examples/resume_after_restart.py``
"""

from __future__ import annotations

import os
import tempfile

import livesync
from livesync.emulator import Emulator

MODEL = "gemini-live-2.5-flash-preview"


def run_once(emu: Emulator, path: str, question: str) -> None:
    client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
    session = client.connect(
        MODEL,
        config={"response_modalities": ["TEXT"]},
        handle_store=livesync.FileHandleStore(path),
        session_key="notebook-chat",
        on_open=lambda opened: print("  [session open, resumed=%s]" % opened.resumed),
    )
    with session:
        print(">", question)
        print("<", session.ask(question, timeout=30).text)


def main() -> None:
    with Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "handles.json")
        print("first run:")
        run_once(emu, path, "My name is Ada.")
        print("after a restart:")
        run_once(emu, path, "What is the capital of France?")
        print("server-side sessions:", len(emu.sessions))  # 1: the same session continued


if __name__ == "__main__":
    main()
