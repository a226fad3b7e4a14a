"""Run every benchmark, each in its own subprocess, and print (or write) one report.

Usage: ``python -m bench [--quick] [--only NAME[,NAME]] [--markdown FILE] [--list]``

Each benchmark is ``bench/NAME.py``, runnable alone; this runner starts a fresh
interpreter per benchmark (so imports, threads and memory do not leak from one
into the next), streams its output, and puts the outputs together under a header
naming the machine. Every benchmark measures its baselines in the same run and
prints ratios and medians. ``--quick`` is a pass of a few minutes at most; without it
the full mode. ``--markdown FILE`` also writes the report as Markdown (that is
how ``bench/RESULTS.md`` is produced).
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import ROOT, machine  # noqa: E402


class Bench(NamedTuple):
    title: str
    quick: Tuple[str, ...]
    full: Tuple[str, ...]


BENCHMARKS: Dict[str, Bench] = {
    "throughput": Bench("Receive throughput (server -> callback, 200-byte messages)",
                        ("--quick",), ()),
    "latency": Bench("Delivery delay (emulator send -> callback), p50 / p99", ("--quick",), ()),
    "decode": Bench("Decode speed (bytes -> LiveServerMessage)", ("--quick",), ()),
    "send": Bench("Send cost per 20 ms audio chunk", ("--quick",), ()),
    "memory": Bench("Memory, threads and CPU per session", ("--quick",), ("--full",)),
    "importtime": Bench("Start-up: import time and what gets imported", ("--quick",), ()),
    "handover": Bench("goAway handover gap", ("--quick",), ()),
    "scale": Bench("Scale: CPU, memory and threads per session at 10-1,000 sessions",
                   ("--quick",), ()),
    "longsession": Bench("Long session: a simulated 2-hour audio conversation",
                         ("--quick",), ()),
}


def run(name: str, quick: bool) -> Tuple[int, str, float]:
    """Run one benchmark; echo and return its stdout (stderr is echoed only)."""
    bench = BENCHMARKS[name]
    command = [sys.executable, str(HERE / (name + ".py"))]
    command += list(bench.quick if quick else bench.full)
    print("$ %s" % " ".join(shlex.quote(c) for c in ["python", "bench/%s.py" % name]
                                  + command[2:]), flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: List[str] = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    code = proc.wait()
    return code, "".join(lines), time.monotonic() - start


def to_markdown(output: str) -> List[str]:
    """Pipe tables and bold titles as they are; other text in ```text blocks."""
    out: List[str] = []
    text: List[str] = []

    def flush() -> None:
        while text and not text[-1].strip():
            text.pop()
        if text:
            out.extend(["```text"] + text + ["```", ""])
        text.clear()

    for line in output.splitlines():
        if line.startswith("|") or line.startswith("**"):
            flush()
            if line.startswith("**"):
                out.extend([line, ""])
            else:
                out.append(line)
        elif not line.strip():
            if out and out[-1].startswith("|") and not text:
                out.append("")
            elif text:
                text.append(line)
        else:
            text.append(line)
    flush()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short pass of every benchmark")
    parser.add_argument("--only", help="comma-separated benchmark names (see --list)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the report as Markdown")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args()
    if args.list:
        for name, bench in BENCHMARKS.items():
            print("%-11s %s" % (name, bench.title))
        return
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            parser.error("unknown benchmark(s): %s (known: %s)"
                         % (", ".join(unknown), ", ".join(BENCHMARKS)))

    argv = ["python", "-m", "bench"] + sys.argv[1:]
    started = datetime.datetime.now(datetime.timezone.utc)
    info = machine()
    mode = "quick" if args.quick else "full"
    print("livesync benchmarks (%s mode), %s" % (mode, started.strftime("%Y-%m-%d %H:%M UTC")))
    for key, value in info.items():
        print("  %-16s %s" % (key, value))
    print(flush=True)

    sections: List[str] = []
    summary: List[Tuple[str, str, float]] = []
    for name in names:
        print("=" * 78)
        print("## %s: %s" % (name, BENCHMARKS[name].title), flush=True)
        code, output, seconds = run(name, args.quick)
        status = "ok" if code == 0 else "FAILED (exit code %d)" % code
        summary.append((name, status, seconds))
        print("(%s, %.0f s)" % (status, seconds))
        print(flush=True)
        command = "python bench/%s.py %s" % (
            name, " ".join(BENCHMARKS[name].quick if args.quick else BENCHMARKS[name].full))
        sections.extend(["## %s: %s" % (name, BENCHMARKS[name].title), "",
                         "`%s` (%s, %.0f s)" % (command.strip(), status, seconds), ""])
        sections.extend(to_markdown(output))
    total = sum(s for _, _, s in summary)
    print("=" * 78)
    for name, status, seconds in summary:
        print("  %-11s %-24s %5.0f s" % (name, status, seconds))
    print("  total %.0f s" % total)

    if args.markdown:
        head = [
            "# livesync benchmark results", "",
            "Produced by `%s` (%s mode) on %s, in %.0f s. Every ratio is against a baseline"
            " measured in the same run; figures are medians over repeats. Regenerate with"
            " the same command; each benchmark also runs alone (`python bench/NAME.py"
            " [--quick]`)." % (" ".join(argv), mode,
                              started.strftime("%Y-%m-%d %H:%M UTC"), total), "",
            "| machine | |", "|---|---|",
        ] + ["| %s | %s |" % (key, value) for key, value in info.items()] + [""]
        head += ["| benchmark | status | seconds |", "|---|---|---|"]
        head += ["| [%s](#%s) | %s | %.0f |" % (name, anchor(name), status, seconds)
                 for name, status, seconds in summary] + [""]
        Path(args.markdown).write_text("\n".join(head + sections).rstrip() + "\n")
        print("wrote %s" % args.markdown)
    if any(status != "ok" for _, status, _ in summary):
        sys.exit(1)


def anchor(name: str) -> str:
    title = "%s: %s" % (name, BENCHMARKS[name].title)
    keep = "".join(c for c in title.lower() if c.isalnum() or c in " -_")
    return keep.replace(" ", "-")


if __name__ == "__main__":
    main()
