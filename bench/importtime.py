"""Start-up: wall time of ``import livesync`` in a fresh interpreter vs ``import google.genai``.

Usage: ``python bench/importtime.py [--quick] [--runs N]``

Each measurement is a fresh ``python -c "import X"`` (the same interpreter as
this script), timed from outside; ``python -c "pass"`` is the interpreter's own
start-up, subtracted to give the import alone. The runs of the three commands
are interleaved; medians are reported. Then, in one more fresh interpreter,
which modules ``import livesync`` pulls in (``sys.modules`` diff): whether
``requests``, ``websockets`` (the emulator's server) and ``livesync.emulator``
are among them, and the heaviest top-level packages by ``-X importtime``
(cumulative). Target (issue #10): at most half of ``import google.genai``;
``requests`` and the emulator imported lazily.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Dict, List, Optional

from _common import NO_GENAI, ROOT, genai_version, median, table

PROBE = """
import sys
before = set(sys.modules)
import livesync
new = sorted(set(sys.modules) - before)
print("\\n".join(new))
"""
WATCH = ("requests", "websockets", "livesync.emulator", "google", "aiohttp", "httpx",
         "pydantic", "dataclasses_json", "marshmallow", "websocket", "urllib3", "asyncio",
         "ssl", "typing_inspect")


SKIP = {"site", "encodings", "io", "zipimport", "abc", "codecs", "os", "stat", "posixpath",
        "genericpath", "_sitebuiltins", "google"}


def wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return time.perf_counter() - start


def own_modules(module: str, top: int = 6) -> List[str]:
    """``module``'s own submodules with the largest ``-X importtime`` self time."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import " + module],
                         capture_output=True, text=True, check=True, cwd=ROOT).stderr
    own: Dict[str, int] = {}
    for line in out.splitlines():
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue
        name = parts[2].strip()
        if name == module or name.startswith(module + "."):
            own[name] = int(parts[0])
    ranked = sorted(own.items(), key=lambda item: -item[1])[:top]
    return ["%s %.1f ms" % (name, us / 1000.0) for name, us in ranked]


def heaviest(module: str, top: int = 8) -> List[str]:
    """Packages (other than ``module``'s own) with the largest ``-X importtime``
    cumulative time, at any depth of the import tree."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import " + module],
                         capture_output=True, text=True, check=True, cwd=ROOT).stderr
    own = module.split(".")[0]
    cumulative: Dict[str, int] = {}
    for line in out.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        parts = line[len("import time:"):].split("|")
        try:
            cum = int(parts[1])
        except ValueError:
            continue  # the header line
        name = parts[2].strip()
        if "." in name or name == own or name.startswith("_") or name in SKIP:
            continue
        cumulative[name] = max(cumulative.get(name, 0), cum)
    ranked = sorted(cumulative.items(), key=lambda item: -item[1])[:top]
    return ["%s %.1f ms" % (name, us / 1000.0) for name, us in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="7 runs")
    parser.add_argument("--runs", type=int, help="fresh interpreters per command (default 21)")
    args = parser.parse_args()
    runs = args.runs or (7 if args.quick else 21)
    has_genai = genai_version() is not None

    commands = {"python -c pass": "pass", "import livesync": "import livesync"}
    if has_genai:
        commands["import google.genai"] = "import google.genai"
    for code in commands.values():  # warm the page cache and .pyc files
        wall(code)
    times: Dict[str, List[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, code in commands.items():
            times[name].append(wall(code))
    bare = median(times["python -c pass"])
    ours = median(times["import livesync"]) - bare
    theirs: Optional[float] = (median(times["import google.genai"]) - bare) if has_genai else None

    rows = [["python -c pass (interpreter start-up)", "%.1f ms" % (bare * 1e3), "", ""],
            ["import livesync", "%.1f ms" % (median(times["import livesync"]) * 1e3),
             "%.1f ms" % (ours * 1e3),
             "%.2f×" % (ours / theirs) if theirs else NO_GENAI]]
    if theirs is not None:
        rows.append(["import google.genai", "%.1f ms" % (median(times["import google.genai"])
                                                         * 1e3), "%.1f ms" % (theirs * 1e3),
                     "1.00×"])
    else:
        rows.append(["import google.genai", NO_GENAI, "", ""])
    print("fresh interpreter per run, median of %d runs, %s" % (runs, sys.executable))
    table("import time", ["command", "wall (with start-up)", "import alone",
                          "vs google.genai"], rows)
    if theirs:
        print("import livesync / import google.genai: %.2f× (target <= 0.5×)" % (ours / theirs))

    new = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    stdlib = getattr(sys, "stdlib_module_names", frozenset())
    tops = sorted({name.split(".")[0] for name in new
                   if not name.startswith("_") and name.split(".")[0] not in stdlib})
    rows = []
    for watched in WATCH:
        hit = watched in new or any(n.startswith(watched + ".") for n in new)
        rows.append([watched, "yes" if hit else "no"])
    table("modules pulled in by `import livesync` (%d new modules, %d non-stdlib packages)"
          % (len(new), len(tops)), ["module", "imported"], rows)
    print("non-stdlib top-level packages: %s" % ", ".join(tops))
    print("heaviest under import livesync (-X importtime, cumulative): %s"
          % "; ".join(heaviest("livesync")))
    print("livesync's own modules by self time: %s" % "; ".join(own_modules("livesync")))
    if has_genai:
        print("heaviest under import google.genai: %s" % "; ".join(heaviest("google.genai")))


if __name__ == "__main__":
    main()
