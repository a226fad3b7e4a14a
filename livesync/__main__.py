"""``python -m livesync``: the command line (``demo``, ``chat``, ``emulator``).

See :mod:`livesync._cli` and ``python -m livesync --help``.
"""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
