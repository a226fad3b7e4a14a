"""Run the emulator standalone: ``python -m livesync.emulator --port 8765``.

The same program as ``python -m livesync emulator`` (see ``--help``): prints
the WebSocket base URL, the REST URL and the API key, then serves until Ctrl-C
(SIGINT) or SIGTERM, optionally injecting faults on a schedule.
"""

from __future__ import annotations

import sys

from .._cli._emulator import main

if __name__ == "__main__":
    sys.exit(main())
