"""examples/notebook.ipynb runs top to bottom in a real ipykernel against the emulator."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"
KERNEL_NAME = "livesync-test"


def kernel_manager(tmp_path: Path) -> Any:
    """A kernel on this very interpreter, from a kernelspec written to ``tmp_path``.

    Nothing global is used or installed, so it works in a fresh venv (CI) and
    cannot pick up some other environment's ``python3`` kernelspec.
    """
    spec_dir = tmp_path / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "livesync test kernel", "language": "python",
    }))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def outputs_of(notebook: Any) -> List[Dict[str, Any]]:
    return [output for cell in notebook.cells if cell.cell_type == "code"
            for output in cell.get("outputs", [])]


@pytest.mark.timeout(120)
def test_notebook_runs_top_to_bottom(tmp_path: Path) -> None:
    """Every cell runs without error; the answer shows with an inline audio player."""
    notebook = nbformat.read(str(NOTEBOOK), as_version=4)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        env.pop(name, None)
    client = nbclient.NotebookClient(
        notebook, km=kernel_manager(tmp_path), timeout=60, allow_errors=False,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    started = time.monotonic()
    # cleanup_kc: shut the kernel down and close its sockets, though we made the manager.
    client.execute(cleanup_kc=True, env=env)
    print("notebook ran in %.1f s" % (time.monotonic() - started))

    outputs = outputs_of(notebook)
    assert not [o for o in outputs if o["output_type"] == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert "<audio controls src=\"data:audio/wav;base64," in html
    assert "The capital of France is Paris." in html
    assert "this kernel runs an asyncio event loop" in text
    assert "Earlier you said: What is the capital of France?" in text  # after the rotation
    assert "Reconnected(generation=2" in text and "planned=True, resumed=True" in text
    assert "dropped: 0" in text
    assert "previous session closed: True - open sessions: []" in text
    assert "The capital of Japan is Tokyo.\nclosed by the with block: True" in text
    assert (tmp_path / "answer.wav").stat().st_size > 44
