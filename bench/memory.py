"""Memory and threads per session: idle, and streaming real-time audio.

Usage: ``python bench/memory.py [--quick | --full] [--sessions 10,50] [--seconds S]``

For each client and each session count N, a fresh child process (so nothing
allocated earlier counts) imports the client, opens and closes one warm-up
session, reads ``VmRSS`` and ``Threads`` from /proc/self/status, then:

1. opens N sessions (AUDIO replies) and waits 1 s: **idle** RSS and threads;
2. streams real-time audio on all N for S seconds (one pacer sending a 20 ms
   chunk of 16 kHz PCM to every session every 20 ms: 1 s of a tone, 1.5 s of
   silence, repeated, so the emulator's VAD ends turns and audio replies stream
   back), every reply consumed: **streaming** RSS, plus the process CPU per
   session-second while streaming (``getrusage``).

Per session = (RSS after - RSS before) / N. Clients:

* livesync: ``Client.connect`` per session (three threads each);
* google-genai: ``client.aio.live.connect`` sessions in one asyncio loop with a
  receive task each (n/a when google-genai is not installed).

The emulator runs in its own process. Memory is deterministic enough that one
run per cell is reported (``--runs`` for medians). A session whose replay
buffer is not trimmed (no new resumption handle) grows towards
``max_buffered_media``; handles arrive after each reply here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import struct
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from _common import (
    MODEL,
    NO_GENAI,
    emulator_process,
    genai_version,
    median,
    process_cpu,
    table,
    vm_rss_kb,
)

CHUNK = 0.02
TONE = b"".join(struct.pack("<h", int(4000 * math.sin(2 * math.pi * 440 * i / 16000)))
                for i in range(320))
SILENCE = bytes(640)
PATTERN = 125  # ticks per cycle: 50 of tone (1 s), 75 of silence (1.5 s)
CONFIG = {"response_modalities": ["AUDIO"]}


def threads() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def chunk(tick: int) -> bytes:
    return TONE if tick % PATTERN < 50 else SILENCE


def snapshot() -> Tuple[int, int]:
    return vm_rss_kb(), threads()


def child_livesync(base_url: str, api_key: str, sessions: int, seconds: float) -> Dict[str, Any]:
    import livesync

    logging.getLogger("livesync").setLevel(logging.ERROR)
    client = livesync.Client(api_key=api_key, base_url=base_url)
    received = [0]

    def on_message(message: Any) -> None:
        received[0] += 1

    client.connect(MODEL, config=CONFIG, on_message=on_message).close()  # warm-up
    time.sleep(0.5)
    before = snapshot()
    opened = [client.connect(MODEL, config=CONFIG, on_message=on_message)
              for _ in range(sessions)]
    time.sleep(1.0)
    idle = snapshot()
    cpu0, start = process_cpu(), time.monotonic()
    tick, next_at = 0, start
    while next_at - start < seconds:
        data = chunk(tick)
        for session in opened:
            session.send_audio(data)
        tick += 1
        next_at += CHUNK
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    cpu = process_cpu() - cpu0
    streaming = snapshot()
    for session in opened:
        session.close()
    return {"before": before, "idle": idle, "streaming": streaming, "cpu": cpu,
            "received": received[0]}


def child_genai(base_url: str, api_key: str, sessions: int, seconds: float) -> Dict[str, Any]:
    from contextlib import AsyncExitStack

    from _common import genai_client, import_genai

    types = import_genai().types

    received = [0]

    async def consume(session: Any) -> None:
        while True:
            async for _ in session.receive():
                received[0] += 1

    async def main() -> Dict[str, Any]:
        client = genai_client(base_url, api_key)
        async with client.aio.live.connect(model=MODEL, config=CONFIG):
            pass  # warm-up
        await asyncio.sleep(0.5)
        before = snapshot()
        async with AsyncExitStack() as stack:
            opened = [await stack.enter_async_context(
                client.aio.live.connect(model=MODEL, config=CONFIG)) for _ in range(sessions)]
            tasks = [asyncio.ensure_future(consume(s)) for s in opened]
            await asyncio.sleep(1.0)
            idle = snapshot()
            cpu0, start = process_cpu(), time.monotonic()
            tick, next_at = 0, start
            mime = "audio/pcm;rate=16000"
            while next_at - start < seconds:
                blob = types.Blob(data=chunk(tick), mime_type=mime)
                for session in opened:
                    await session.send_realtime_input(audio=blob)
                tick += 1
                next_at += CHUNK
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            cpu = process_cpu() - cpu0
            streaming = snapshot()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return {"before": before, "idle": idle, "streaming": streaming, "cpu": cpu,
                "received": received[0]}

    logging.getLogger("google_genai").setLevel(logging.ERROR)
    return asyncio.run(main())


CHILDREN: Dict[str, Callable[[str, str, int, float], Dict[str, Any]]] = {
    "livesync": child_livesync, "google-genai": child_genai}


def measure(name: str, base_url: str, api_key: str, sessions: int,
            seconds: float) -> Dict[str, Any]:
    env = dict(os.environ, BENCH_EMULATOR=json.dumps([base_url, api_key]))
    out = subprocess.run([sys.executable, __file__, "--child", name, str(sessions),
                          str(seconds)], env=env, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError("%s child failed:\n%s" % (name, out.stderr[-2000:]))
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 50 sessions, 3 s of audio")
    parser.add_argument("--full", action="store_true", help="also 100 sessions")
    parser.add_argument("--sessions", help="comma-separated session counts")
    parser.add_argument("--seconds", type=float, help="seconds of streaming (default 10)")
    parser.add_argument("--runs", type=int, default=1, help="repeats per cell (median)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, sessions, seconds = args.child
        base_url, api_key = json.loads(os.environ["BENCH_EMULATOR"])
        print(json.dumps(CHILDREN[name](base_url, api_key, int(sessions), float(seconds))))
        return
    default = "10,50,100" if args.full else "10,50"
    sizes = [int(s) for s in (args.sessions or default).split(",")]
    seconds = args.seconds or (3.0 if args.quick else 10.0)
    clients = ["livesync"] + (["google-genai"] if genai_version() else [])

    results: Dict[Tuple[str, int], List[Dict[str, Any]]] = {}
    with emulator_process() as (base_url, api_key):
        for sessions in sizes:
            for _ in range(args.runs):
                for name in clients:
                    try:
                        results.setdefault((name, sessions), []).append(
                            measure(name, base_url, api_key, sessions, seconds))
                    except Exception as exc:  # report the cell, keep going
                        print("%s at %d sessions failed: %s" % (name, sessions, exc))

    def cell(name: str, sessions: int) -> Optional[Dict[str, float]]:
        found = results.get((name, sessions))
        if not found:
            return None

        def med(key: str, index: int) -> float:
            return median([(r[key][index] - r["before"][index]) / sessions for r in found])

        return {"idle_kb": med("idle", 0), "stream_kb": med("streaming", 0),
                "threads": med("idle", 1),
                "cpu_ms": median([r["cpu"] / (sessions * seconds) * 1e3 for r in found]),
                "received": median([r["received"] / sessions for r in found])}

    rows = []
    for sessions in sizes:
        ours = cell("livesync", sessions)
        theirs = cell("google-genai", sessions) if "google-genai" in clients else None
        for name, got in (("livesync", ours), ("google-genai", theirs)):
            if got is None:
                rows.append([sessions, name, NO_GENAI if name == "google-genai" else "failed",
                             "", "", "", "", ""])
                continue
            rows.append([sessions, name, "%.0f KB" % got["idle_kb"],
                         "%.0f KB" % got["stream_kb"], "%.1f" % got["threads"],
                         "%.2f ms" % got["cpu_ms"], "%.0f" % got["received"],
                         "%.2f×" % (ours["cpu_ms"] / got["cpu_ms"])
                         if name == "google-genai" and ours and got["cpu_ms"] else ""])
    print("RSS per session from /proc/self/status VmRSS (fresh process per cell, "
          "after a warm-up session); %.0f s of real-time audio; emulator in its own process"
          % seconds)
    table("memory, threads and CPU per session", [
        "sessions", "client", "RSS idle", "RSS streaming", "threads", "CPU per session-s",
        "msgs received per session", "livesync CPU / this"], rows)
    print("RSS figures are per session (KiB). 'threads' is added OS threads per session.")


if __name__ == "__main__":
    main()
