"""Shared helpers for the benchmarks: paths, the raw setup message, stats, emulator process."""

from __future__ import annotations

import base64
import json
import math
import multiprocessing
import os
import platform
import resource
import statistics
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODEL = "gemini-live-2.5-flash-preview"
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
STREAM_PREFIX = "stream "  # user text "stream N" asks the bench responder for N messages
TICK_PREFIX = "tick "  # "tick COUNT INTERVAL_MS KIND PAD": stamped, paced messages
MESSAGE_BYTES = 200


def setup_message(handle: Optional[str] = None) -> str:
    """The raw ``setup`` JSON a hand-written client sends (TEXT replies)."""
    setup: Dict[str, Any] = {
        "model": "models/" + MODEL,
        "generationConfig": {"responseModalities": ["TEXT"]},
    }
    if handle is not None:
        setup["sessionResumption"] = {"handle": handle}
    return json.dumps({"setup": setup})


def user_turn(text: str) -> str:
    """A raw ``clientContent`` turn."""
    return json.dumps({"clientContent": {
        "turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}})


def encoded_chunk(size: int = MESSAGE_BYTES) -> bytes:
    """A ``modelTurn`` text message, pretty-printed like the emulator/server, ``size`` bytes."""
    def encode(text: str) -> bytes:
        message = {"serverContent": {"modelTurn": {"parts": [{"text": text}]}}}
        return json.dumps(message, indent=2).encode()

    overhead = len(encode(""))
    return encode("x" * max(0, size - overhead))


def stamped_message(kind: str, pad: int) -> bytes:
    """A server message carrying ``time.monotonic_ns()`` at the moment it is built.

    ``kind`` "text": a ~200-byte ``modelTurn`` text part whose text starts with the
    stamp (20 digits); "audio": an ``inlineData`` part of ``pad`` bytes of 24 kHz
    PCM whose first 8 bytes are the stamp (little-endian). CLOCK_MONOTONIC is
    system-wide on Linux, so the stamp compares with the client process's clock.
    """
    stamp = time.monotonic_ns()
    if kind == "audio":
        pcm = struct.pack("<q", stamp) + bytes(max(0, pad - 8))
        part: Dict[str, Any] = {"inlineData": {
            "mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(pcm).decode()}}
    else:
        part = {"text": "%020d" % stamp + "x" * max(0, pad - 20)}
    return json.dumps({"serverContent": {"modelTurn": {"parts": [part]}}}, indent=2).encode()


def read_stamp(kind: str, value: Any) -> int:
    """The stamp of :func:`stamped_message` from the text (str) or the PCM (bytes)."""
    if kind == "audio":
        return int(struct.unpack_from("<q", value)[0])
    return int(value[:20])


def tick_script(count: int, interval: float, kind: str, pad: int) -> Iterator[Any]:
    """``count`` stamped messages, one every ``interval`` s (paced by the generator)."""
    next_at = time.monotonic()
    for _ in range(count):
        next_at += interval
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield stamped_message(kind, pad)
    yield {"serverContent": {"turnComplete": True}}


def stream_responder(turn: Any) -> Any:
    """Emulator responder: for "stream N", N pre-encoded ~200-byte messages, then turnComplete.

    Messages are encoded once, so the emulator spends its time sending, not in json.dumps.
    For "tick COUNT INTERVAL_MS KIND PAD": :func:`tick_script` (latency.py).
    Anything else: the emulator's default model.
    """
    if turn.text.startswith(TICK_PREFIX):
        count, interval_ms, kind, pad = turn.text[len(TICK_PREFIX):].split()
        return tick_script(int(count), float(interval_ms) / 1000.0, kind, int(pad))
    if not turn.text.startswith(STREAM_PREFIX):
        return None
    count = int(turn.text[len(STREAM_PREFIX):])
    chunk = encoded_chunk()

    def script() -> Iterator[Any]:
        for _ in range(count):
            yield chunk
        yield {"serverContent": {"turnComplete": True}}

    return script()


def _serve(conn: Any, options: Dict[str, Any]) -> None:
    from livesync.emulator import Emulator

    options.setdefault("responder", stream_responder)
    with Emulator(record_sent=False, **options) as emu:
        conn.send((emu.base_url, emu.api_key))
        while True:  # ("send_go_away", time_left) is obeyed; anything else (or EOF) stops
            try:
                command = conn.recv()
            except EOFError:
                return
            if not (isinstance(command, tuple) and command[0] == "send_go_away"):
                return
            emu.send_go_away(time_left=command[1])
            conn.send("ok")


class RemoteEmulator:
    """An Emulator in a child process (:func:`remote_emulator`), driven over a pipe."""

    def __init__(self, base_url: str, api_key: str, pipe: Any) -> None:
        self.base_url, self.api_key, self._pipe = base_url, api_key, pipe

    def send_go_away(self, time_left: float) -> None:
        """Send goAway on the open connection; returns once it was sent."""
        self._pipe.send(("send_go_away", time_left))
        self._pipe.recv()


@contextmanager
def remote_emulator(**options: Any) -> Iterator[RemoteEmulator]:
    """Run an Emulator with :func:`stream_responder` in a child process.

    A separate process gives the server its own interpreter (and core), so the
    clients being compared do not share a GIL with the server, as with the real
    service. Yields a :class:`RemoteEmulator`.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, options), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the emulator process did not start")
        yield RemoteEmulator(*parent.recv(), parent)
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


@contextmanager
def emulator_process(**options: Any) -> Iterator[Tuple[str, str]]:
    """:func:`remote_emulator`, yielding ``(base_url, api_key)``."""
    with remote_emulator(**options) as emu:
        yield emu.base_url, emu.api_key


def _serve_load(conn: Any, options: Dict[str, Any]) -> None:
    from livesync.emulator import LoadServer

    raise_fd_limit(65536)
    with LoadServer(**options) as server:
        conn.send(server.base_url)
        conn.recv()  # any message (or EOF) stops the server


@contextmanager
def load_server_processes(count: int, **options: Any) -> Iterator[Tuple[List[str], str]]:
    """Run ``count`` :class:`~livesync.emulator.LoadServer` processes, each on its own port.

    They share one API key (so each accepts the others' handles) and start in
    parallel. Yields ``(base_urls, api_key)``; :func:`load_stats` reads a
    server's counters (``GET /stats``).
    """
    import secrets

    options.setdefault("api_key", "bench-" + secrets.token_urlsafe(16))
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for _ in range(count):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_serve_load, args=(child, options), daemon=True)
        proc.start()
        procs.append((proc, parent))
    try:
        urls = []
        for _, parent in procs:
            if not parent.poll(60):
                raise RuntimeError("a load server process did not start")
            urls.append(parent.recv())
        yield urls, options["api_key"]
    finally:
        for _, parent in procs:
            try:
                parent.send("stop")
            except OSError:
                pass
        for proc, _ in procs:
            proc.join(10)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)


def load_stats(base_url: str) -> Dict[str, Any]:
    """A load server's counters (``LoadStats`` as a dict) from its ``GET /stats``."""
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    with direct.open(base_url.replace("ws://", "http://") + "/stats", timeout=30) as response:
        stats: Dict[str, Any] = json.load(response)
    return stats


def thread_cpu() -> Dict[int, float]:
    """CPU seconds of each OS thread of this process, by native id (schedstat, ns)."""
    result = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/schedstat" % tid) as stat:
                result[int(tid)] = int(stat.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return result


def role(name: str) -> str:
    """A thread's role from its name: ``livesync-reader-<id>-<gen>`` -> ``livesync-reader``."""
    if name.startswith("livesync-"):
        return "-".join(name.split("-")[:2])
    return name


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` towards ``needed`` (up to the hard
    limit); return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def median(values: List[float]) -> float:
    return statistics.median(values)


def mean_us(seconds: float, count: int) -> float:
    return seconds / count * 1e6


def vm_rss_kb() -> int:
    """This process's resident set size (``VmRSS`` of /proc/self/status), in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def process_cpu() -> float:
    """User + system CPU seconds of this process, all threads (getrusage)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def genai_version() -> Optional[str]:
    """google-genai's version, or None when it is not installed (or BENCH_NO_GENAI=1,
    which makes the benchmarks behave as on a machine without it)."""
    if os.environ.get("BENCH_NO_GENAI"):
        return None
    try:
        from importlib.metadata import version

        return version("google-genai")
    except Exception:  # not installed (PackageNotFoundError) or broken metadata
        return None


NO_GENAI = "n/a (google-genai not installed)"


def import_genai() -> Any:
    """``google.genai`` (raises ImportError when it is not installed, or BENCH_NO_GENAI=1)."""
    if os.environ.get("BENCH_NO_GENAI"):
        raise ImportError("BENCH_NO_GENAI is set")
    from google import genai

    return genai


def genai_client(base_url: str, api_key: str) -> Any:
    """A google-genai Client aimed at a plain ws:// emulator (raises ImportError).

    google-genai always dials wss:// (it swaps the scheme of base_url) and passes
    an SSL context; the emulator is plain ws:// on loopback. Patch just those two
    private attributes; the URL itself (//ws/...) is theirs.
    """
    genai = import_genai()
    # A trailing "/" like the default base_url: the SDK then dials "//ws/...".
    http_base = base_url.replace("ws://", "http://") + "/"
    client = genai.Client(api_key=api_key,
                          http_options={"base_url": http_base, "api_version": "v1beta"})
    api = client._api_client
    original = api._websocket_base_url
    api._websocket_base_url = lambda *a, **k: original(*a, **k).replace("wss://", "ws://", 1)
    api._websocket_ssl_ctx = {}
    return client


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a pipe table (valid Markdown, readable in a terminal)."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |"

    print()
    print("**%s**" % title)
    print()
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells[1:]:
        print(line(row))
    print()
    sys.stdout.flush()


def ratio(ours: Optional[float], base: Optional[float]) -> str:
    if ours is None or base is None or base == 0:
        return "n/a"
    return "%.2f×" % (ours / base)


def machine() -> Dict[str, str]:
    """What the run ran on: CPU, cores, Python, OS, livesync commit, google-genai."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def git(*args: str) -> str:
        try:
            return subprocess.run(("git",) + args, cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    kernel = platform.release()
    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no", "--", "livesync"):
        commit += " (+ uncommitted changes in livesync/)"
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "Python": "%s (%s)" % (platform.python_version(), platform.python_implementation()),
        "OS": "%s %s" % (platform.system(), kernel),
        "CPU charged per thread wake-up": "%.0f µs (a 20 ms Event.wait; a plain Linux host"
                                          " charges a few µs)" % wakeup_cost_us(),
        "livesync commit": commit,
        "google-genai": genai_version() or "not installed",
    }


def wakeup_cost_us(samples: int = 25, wait: float = 0.02) -> float:
    """CPU time charged to a thread for one timed block-and-wake (``Event.wait``).

    On a VM with halt-polling this is tens to hundreds of µs, and every thread
    hand-off and timer wake-up in the benchmarks pays it.
    """
    import threading

    event = threading.Event()
    start = time.thread_time()
    for _ in range(samples):
        event.wait(wait)
    return (time.thread_time() - start) / samples * 1e6
