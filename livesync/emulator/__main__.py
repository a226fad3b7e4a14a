"""Run the emulator standalone: ``python -m livesync.emulator --port 8765``.

Prints the WebSocket base URL, the REST URL and the API key, then serves
until Ctrl-C (SIGINT) or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, List, Optional

from ._server import Emulator


def main(argv: Optional[List[str]] = None) -> int:
    """Parse arguments, run an :class:`Emulator` until interrupted; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m livesync.emulator",
        description="Offline Gemini Live API emulator (livesync).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8765, help="WebSocket port (0: any)")
    parser.add_argument("--api-key", default=None, help="API key to accept (random if omitted)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every nominal duration by this factor")
    parser.add_argument("--text-frames", action="store_true",
                        help="send JSON in text frames instead of binary frames")
    parser.add_argument("--chunk-delay", type=float, default=0.0,
                        help="real seconds between streamed model messages")
    parser.add_argument("--input-lag", type=float, default=0.0,
                        help="real seconds each client message waits before it is processed")
    args = parser.parse_args(argv)
    if args.input_lag < 0:
        parser.error("--input-lag must not be negative")
    emulator = Emulator(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        time_scale=args.time_scale,
        text_frames=args.text_frames,
        chunk_delay=args.chunk_delay,
        input_lag=args.input_lag,
        record_sent=False,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    with emulator:
        print(f"base_url: {emulator.base_url}", flush=True)
        print(f"rest_url: {emulator.rest_url}", flush=True)
        print(f"api_key:  {emulator.api_key}", flush=True)
        print("Serving; press Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
