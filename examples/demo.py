"""livesync demo: one Live session kept alive across connection changes, offline.

Runs the embedded emulator (``livesync.emulator``, no API key, no network), then:

1. streams a reply with ``receive()`` and asks with the blocking ``ask()``;
2. reports connection changes through callbacks;
3. survives a ``goAway`` (planned rotation) and a dropped TCP connection
   (unplanned resume), with messages sent during the outage replayed;
4. prints the session's counters and closes.

Run: ``python examples/demo.py``. ``python -m livesync demo`` shows the same
across several rotations as a live timeline.
"""

from __future__ import annotations

import threading

import livesync
from livesync.emulator import Emulator

MODEL = "gemini-live-2.5-flash-preview"


def main() -> None:
    with Emulator() as emu:
        print("emulator listening on", emu.base_url)
        client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
        rotated = threading.Event()

        def on_reconnect(event: livesync.Reconnected) -> None:
            print_reconnect(event)
            rotated.set()

        session = client.connect(
            MODEL,
            config={"response_modalities": ["TEXT"]},
            on_goaway=lambda go_away: print("  [goAway: %s left]" % go_away.time_left),
            on_reconnect=on_reconnect,
            on_close=lambda closed: print("  [closed: %s]" % closed.code),
            reconnect=livesync.ReconnectPolicy(initial_delay=0.05),
        )
        with session:
            print("> Hello there   (streamed with receive(), chunk by chunk)")
            session.send_text("Hello there")
            print("<", end=" ")
            for message in session.receive(timeout=30):  # every message since connect
                print(message.text or "", end="", flush=True)
                if message.server_content and message.server_content.turn_complete:
                    print()
                    break

            ask(session, "What is the capital of France?")

            print("* the server announces the end of the connection (goAway)")
            emu.send_go_away(time_left=30.0)
            rotated.wait(30)
            ask(session, "Are you still there after the rotation?")

            print("* the TCP connection drops without warning")
            emu.drop()
            ask(session, "Did my question survive the drop?")

            stats = session.stats()
            print("connections %d, planned %d, unplanned %d, median gap %.1f ms, replayed %d" % (
                stats.connections, stats.rotations_planned, stats.rotations_unplanned,
                stats.gap_median_ms or 0.0, stats.replayed))


def ask(session: livesync.Session, question: str) -> None:
    print(">", question)
    print("<", session.ask(question, timeout=30).text)


def print_reconnect(event: livesync.Reconnected) -> None:
    print("  [%s reconnect after %s: resumed=%s, gap %.1f ms, replayed %d, dropped %d]" % (
        "planned" if event.planned else "unplanned", event.cause, event.resumed,
        event.gap_ms, event.replayed, event.dropped))


if __name__ == "__main__":
    main()
