"""``python -m livesync emulator`` (and ``python -m livesync.emulator``): serve the emulator.

Prints ``base_url``, ``rest_url`` and ``api_key``, then serves until Ctrl-C
(SIGINT) or SIGTERM and exits 0. Threads: the main thread waits for a signal
(the handlers only set an Event); the emulator runs its own server threads;
:class:`~._schedule.FaultSchedule` injects scheduled faults on its own thread.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, List, Optional

from . import _load, _schedule
from ._common import emulator_class, non_negative_seconds, port, positive_number, positive_seconds

EPILOG = """\
durations: --lifetime and --go-away-notice are nominal seconds, multiplied by
--time-scale; --input-lag, --chunk-delay and the fault schedule are real seconds.

examples:
  python -m livesync emulator --port 8765
  python -m livesync emulator --time-scale 0.01              # connections last 6 s
  python -m livesync emulator --lifetime 120 --go-away-notice 10
  python -m livesync emulator --drop-every 30 --close-every 60:1011
  python -m livesync emulator --close-every '45:1008:Requested entity was not found.'
  python -m livesync emulator --refuse-resume-every 90:1007 --refuse-upgrades-every 120:5
  python -m livesync emulator --load --processes 4 --stats-every 10   # load tests

Point your app at it:  livesync.Client(api_key=API_KEY, base_url=BASE_URL)
"""


def add_parser(commands: Any) -> None:
    """Declare the ``emulator`` subcommand."""
    parser = commands.add_parser(
        "emulator", help="run the offline Live API emulator, with scheduled faults",
        description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(run=run)


DESCRIPTION = ("Serve the offline Gemini Live API emulator (WebSocket + REST) so you can\n"
               "test your own app against a server that rotates connections and\n"
               "misbehaves on a schedule.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the server options and the fault schedule to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="interface to bind (default %(default)s)")
    parser.add_argument("--port", type=port, default=8765,
                        help="TCP port, 0 for any free one (default %(default)s)")
    parser.add_argument("--api-key", default=None, metavar="KEY",
                        help="API key to accept (default: a random one, printed)")
    parser.add_argument("--time-scale", type=positive_number, default=1.0, metavar="F",
                        help="multiply every nominal duration by F (default 1)")
    parser.add_argument("--lifetime", type=positive_seconds, default=600.0, metavar="SECONDS",
                        help="nominal connection lifetime (default 600)")
    parser.add_argument("--go-away-notice", type=non_negative_seconds, default=60.0,
                        metavar="SECONDS", help="nominal goAway notice before the end "
                                                "of a connection (default 60)")
    parser.add_argument("--interaction-status", choices=("idle", "background"), default=None,
                        help="send interactionStatus on turnComplete (default: never)")
    parser.add_argument("--input-lag", type=non_negative_seconds, default=0.0, metavar="SECONDS",
                        help="real seconds each client message waits before it is processed")
    parser.add_argument("--chunk-delay", type=non_negative_seconds, default=0.0,
                        metavar="SECONDS", help="real seconds between streamed model messages")
    parser.add_argument("--text-frames", action="store_true",
                        help="send JSON in text frames instead of binary frames")
    _schedule.add_arguments(parser)
    _load.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (main thread); return 0, or 1 if it cannot start."""
    if args.go_away_notice >= args.lifetime:
        print("livesync emulator: --go-away-notice (%g) must be shorter than --lifetime (%g)"
              % (args.go_away_notice, args.lifetime), file=sys.stderr)
        return 2
    mixed = _load.usage_error(args)
    if mixed is not None:
        print("livesync emulator: %s" % mixed, file=sys.stderr)
        return 2
    if args.load:
        return _load.run(args)
    emulator_type = emulator_class()
    if emulator_type is None:
        return 1
    emulator = emulator_type(
        host=args.host, port=args.port, api_key=args.api_key, time_scale=args.time_scale,
        connection_lifetime=args.lifetime, go_away_notice=args.go_away_notice,
        interaction_status=args.interaction_status, input_lag=args.input_lag,
        chunk_delay=args.chunk_delay, text_frames=args.text_frames, record_sent=False)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    try:
        emulator.start()
    except OSError as exc:
        print("livesync emulator: cannot listen on %s:%d: %s"
              % (args.host, args.port, exc.strerror or exc), file=sys.stderr)
        return 1
    schedule = _schedule.FaultSchedule(emulator, args.faults, sys.stdout)
    try:
        announce(emulator, args)
        schedule.start()
        while not stop.wait(0.5):  # bounded waits: signals are handled between them
            pass
    finally:
        schedule.stop()
        emulator.stop()
    print("stopped", flush=True)
    return 0


def announce(emulator: Any, args: argparse.Namespace) -> None:
    """Print the URLs, the key, the timing and the fault schedule."""
    print("base_url: %s" % emulator.base_url, flush=True)
    print("rest_url: %s" % emulator.rest_url, flush=True)
    print("api_key:  %s" % emulator.api_key, flush=True)
    print("connections last %g s, goAway %g s before the end (real seconds)" % (
        args.lifetime * args.time_scale, args.go_away_notice * args.time_scale), flush=True)
    for fault in args.faults:
        print("fault: %s" % fault.describe(), flush=True)
    print("Serving; press Ctrl-C to stop.", flush=True)


def main(argv: Optional[List[str]] = None, prog: str = "python -m livesync.emulator") -> int:
    """Entry point of ``python -m livesync.emulator`` (same options as the subcommand)."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    code: int = run(parser.parse_args(argv))
    return code
