"""The ``python -m livesync`` command line: ``demo``, ``chat`` and ``emulator``.

Each subcommand lives in its own module with two functions: ``add_parser(subparsers)``
declares its arguments and ``run(args) -> int`` runs it on the main thread and
returns the exit code (0 success, 1 failure, 2 usage error, 130 interrupted).
Arguments are validated by argparse (a one-line message and exit 2). The
emulator-backed commands import :mod:`livesync.emulator` only when they run, so
``--help`` works without the ``emulator`` extra.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from .. import __version__
from . import _chat, _demo, _emulator

PROG = "python -m livesync"

EPILOG = """\
examples:
  python -m livesync demo                       # offline: rotations, a drop, the timeline
  python -m livesync chat --emulator            # chat with the offline emulator
  GEMINI_API_KEY=... python -m livesync chat    # chat with the real Live API
  python -m livesync emulator --port 8765 --time-scale 0.01 --drop-every 30

Run 'python -m livesync COMMAND --help' for a command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the program's parser with one subparser per command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="livesync: a threaded, synchronous client for the Gemini Live API\n"
                    "that keeps one session alive across connections.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version="livesync " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (_demo, _chat, _emulator):
        module.add_parser(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command; return the exit code.

    Main thread only (the commands install signal handlers or catch
    KeyboardInterrupt). Blocks until the command ends.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.run(args)
    except BrokenPipeError:
        # stdout's reader went away (`| head`): exit quietly, as Python's docs
        # recommend, without a second error when the interpreter flushes stdout.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code
