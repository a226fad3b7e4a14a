"""Where the CPU goes: N livesync sessions streaming real-time audio, sampled by py-spy.

Usage: ``python bench/profile_load.py [--sessions N] [--seconds S] [--rate HZ] [--gil] [--no-spy]``

The workload is memory.py's streaming phase: N sessions (AUDIO replies) on an
emulator in its own process; one pacer thread sends a 20 ms chunk of 16 kHz PCM
to every session every 20 ms (1 s of tone, 1.5 s of silence, so turns end and
audio replies stream back); ``on_message`` only counts. While it streams:

* the CPU of every thread, from /proc/self/task/*/stat (exact, no profiler),
  grouped by role (pacer = the thread calling ``send_audio``; livesync-reader,
  -dispatch, -supervisor);
* py-spy (``record --nonblocking --threads --format raw``) attached to this
  process only, at ``--rate`` Hz: on-CPU stacks, aggregated into self and
  inclusive shares per function. A function's estimated CPU per call is its
  inclusive share x the process CPU / the number of calls (send_audio calls
  and server messages are counted).

Prints Markdown (used for bench/PROFILE.md). py-spy must be installed
(``pip install py-spy``) and allowed to ptrace this process.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Counter, Dict, Tuple

from _common import (
    MODEL,
    emulator_process,
    process_cpu,
    role,
    table,
    thread_cpu,
    wakeup_cost_us,
)

import livesync

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from memory import CHUNK, CONFIG, chunk  # noqa: E402


def thread_user_sys() -> Dict[int, Tuple[float, float]]:
    """User and system CPU seconds of each OS thread (/proc stat, clock ticks)."""
    tick = os.sysconf("SC_CLK_TCK")
    result = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open("/proc/self/task/%s/stat" % tid) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        result[int(tid)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return result


def parse_raw(path: str, names: Dict[int, str]) -> Tuple[Counter[str], Counter[str],
                                                          Counter[str], int]:
    """Self and inclusive samples per function, samples per thread role, total."""
    own: Counter[str] = collections.Counter()
    inclusive: Counter[str] = collections.Counter()
    roles: Counter[str] = collections.Counter()
    total = 0
    with open(path) as raw:
        for line in raw:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = stack.split(";")
            thread = "?"
            calls = []
            for frame in frames:
                if frame.startswith("thread ("):  # "thread (TID): name" or "thread (TID)"
                    tid_text = frame[len("thread ("):].split(")")[0]
                    tid = int(tid_text, 16) if tid_text.startswith("0x") else int(tid_text)
                    thread = role(names.get(tid, frame.partition("): ")[2] or "other"))
                elif frame.startswith("process "):
                    continue
                else:
                    calls.append(frame_name(frame))
            if not calls:
                continue
            total += count
            roles[thread] += count
            own[calls[-1]] += count
            for name in set(calls):
                inclusive[name] += count
    return own, inclusive, roles, total


def frame_name(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``file.py:func``."""
    func, _, where = frame.partition(" (")
    filename = where.rsplit(":", 1)[0]
    parts = filename.split("/")
    short = "/".join(parts[-2:]) if parts[-2:-1] in (["livesync"], ["websocket"],
                                                      ["emulator"]) else parts[-1]
    return "%s:%s" % (short, func)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--no-spy", action="store_true", help="thread CPU only")
    parser.add_argument("--gil", action="store_true",
                        help="py-spy --gil: only the thread holding the GIL (Python work)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    logging.getLogger("livesync").setLevel(logging.ERROR)
    spy = None if args.no_spy else shutil.which("py-spy") or os.path.join(
        os.path.dirname(sys.executable), "py-spy")
    if spy is not None and not os.path.exists(spy):
        raise SystemExit("py-spy not found (pip install py-spy, or --no-spy)")

    received = [0]

    def on_message(message: Any) -> None:
        received[0] += 1

    wakeup = wakeup_cost_us()
    out = tempfile.NamedTemporaryFile(suffix=".txt", delete=False).name
    with emulator_process() as (base_url, api_key):
        client = livesync.Client(api_key=api_key, base_url=base_url)
        sessions = [client.connect(MODEL, config=CONFIG, on_message=on_message)
                    for _ in range(args.sessions)]
        threading.current_thread().name = "pacer"
        time.sleep(1.0)
        native = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
        proc = None
        if spy is not None:
            proc = subprocess.Popen([spy, "record", "--pid", str(os.getpid()), "--nonblocking",
                                     "--threads", "--format", "raw", "--rate", str(args.rate),
                                     "--output", out]
                                    + (["--gil"] if args.gil else []),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)  # py-spy attaches
        cpu0, tasks0, msgs0 = process_cpu(), thread_cpu(), received[0]
        split0 = thread_user_sys()
        start = time.monotonic()
        tick, next_at, calls = 0, start, 0
        while next_at - start < args.seconds:
            data = chunk(tick)
            for session in sessions:
                session.send_audio(data)
            calls += len(sessions)
            tick += 1
            next_at += CHUNK
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        elapsed = time.monotonic() - start
        cpu, tasks1, messages = process_cpu() - cpu0, thread_cpu(), received[0] - msgs0
        split1 = thread_user_sys()
        if proc is not None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its output and exits
            _, err = proc.communicate(timeout=120)
            if proc.returncode != 0:
                print("py-spy failed: %s" % err.decode(errors="replace")[-2000:])
                proc = None
        for session in sessions:
            session.close()

    by_role: Counter[str] = collections.Counter()
    user: Counter[str] = collections.Counter()
    system: Counter[str] = collections.Counter()
    for tid, seconds in tasks1.items():
        name = role(native.get(tid, "other"))
        by_role[name] += seconds - tasks0.get(tid, 0.0)
        u0, s0 = split0.get(tid, (0.0, 0.0))
        u1, s1 = split1.get(tid, (u0, s0))
        user[name] += u1 - u0
        system[name] += s1 - s0
    print("%d sessions, %.0f s of real-time audio (20 ms chunks), emulator in its own process"
          % (args.sessions, elapsed))
    print("send_audio calls: %d; server messages delivered: %d; process CPU %.2f s = "
          "%.2f ms per session-second" % (calls, messages, cpu,
                                          cpu / (args.sessions * elapsed) * 1e3))
    print("CPU charged per thread wake-up on this machine: %.0f µs (Event.wait); the pacer "
          "sleeps %d times, so about %.2f s of its CPU is its own sleeping"
          % (wakeup, tick, wakeup * tick / 1e6))
    thread_total = sum(by_role.values()) or 1.0
    table("CPU by thread role (/proc/self/task: schedstat, exact; user/system from stat ticks)",
          ["role", "CPU s", "share", "user s", "system s"], [
              [name, "%.2f" % seconds, "%.0f %%" % (100 * seconds / thread_total),
               "%.2f" % user[name], "%.2f" % system[name]]
              for name, seconds in by_role.most_common()])
    if proc is None:
        return

    own, inclusive, roles, total = parse_raw(out, native)
    os.unlink(out)
    if not total:
        print("py-spy collected no on-CPU samples")
        return
    table("py-spy on-CPU samples by thread role (%d samples)" % total, ["role", "share"], [
        [name, "%.1f %%" % (100 * count / total)] for name, count in roles.most_common()])

    def per_call(name: str, count: int) -> str:
        return "%.1f µs" % (inclusive[name] / total * cpu / count * 1e6) if count else ""

    key = {"livesync/session.py:Session.send_audio": calls,
           "livesync/_messages.py:audio_message": calls,
           "livesync/_driver.py:Driver._send": calls,
           "livesync/protocol.py:SessionProtocol.enqueue": calls,
           "livesync/_driver.py:Driver._write": calls,
           "livesync/_transport.py:WebSocketClientTransport.send_text": calls,
           "websocket/_core.py:WebSocket.send": calls,
           "websocket/_abnf.py:ABNF.format": calls,
           "websocket/_abnf.py:ABNF._get_masked": calls,
           "websocket/_socket.py:send": calls,
           "livesync/_driver.py:Driver._read": messages,
           "livesync/_transport.py:WebSocketClientTransport.recv": messages,
           "websocket/_core.py:WebSocket.recv_data_frame": messages,
           "livesync/_driver.py:Driver._handle_frame": messages,
           "livesync/_decode.py:parse_server_message": messages,
           "livesync/protocol.py:SessionProtocol.receive": messages,
           "livesync/_dispatch.py:Dispatcher._run": messages,
           "livesync/_dispatch.py:Dispatcher._deliver": messages,
           "livesync/_driver.py:Driver._supervise": messages}
    rows = [[name, "%.1f %%" % (100 * inclusive[name] / total), per_call(name, count)]
            for name, count in key.items() if inclusive[name]]
    table("hot path, inclusive share of on-CPU samples, estimated CPU per call",
          ["function", "inclusive", "per call"], rows)
    table("top %d functions by self samples" % args.top,
          ["function", "self", "inclusive"],
          [[name, "%.1f %%" % (100 * count / total), "%.1f %%" % (100 * inclusive[name] / total)]
           for name, count in own.most_common(args.top)])
    table("top %d functions by inclusive samples" % args.top, ["function", "inclusive"],
          [[name, "%.1f %%" % (100 * count / total)]
           for name, count in inclusive.most_common(args.top)])


if __name__ == "__main__":
    main()
