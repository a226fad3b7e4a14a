"""The examples run end to end against the embedded emulator (README's first command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script, expected", [
    ("demo.py", "connections 3, planned 1, unplanned 1"),
    ("resume_after_restart.py", "server-side sessions: 1"),
])
def test_example_runs(script: str, expected: str) -> None:
    """Each example exits cleanly and prints what it demonstrates."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EXAMPLES.parent)] + sys.path))
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=50,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert expected in result.stdout
    assert "Traceback" not in result.stderr
