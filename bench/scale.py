"""Scale: CPU, memory and threads per session at 10-1,000 real-time audio sessions.

Usage: ``python bench/scale.py [--quick] [--sessions 10,100,300,1000] [--seconds S]
[--servers K] [--stack-size KIB] [--no-genai]``

For each session count N, K load-server processes (``livesync.emulator.LoadServer``,
one asyncio thread each, ``K = ceil(N / 300)`` unless ``--servers``) serve on
their own ports. Then, for each client, a **fresh child process** (nothing
allocated earlier counts) opens and closes one warm-up session, reads VmRSS and
the thread count, and:

1. connects N sessions, round-robin over the servers (AUDIO replies), one after
   the other: **connect all**;
2. streams 16 kHz audio for S seconds (wall time) from one sender thread: every
   20 ms one 20 ms chunk to every session in turn (a round that runs late starts
   the next at once; the achieved rate is reported as the real-time ratio), an
   ``on_message`` callback counting messages: process CPU (``getrusage``) per
   **session-second of audio sent**, RSS and threads after streaming, per session
   (delta / N);
3. closes them all, one after the other: **close all**.

Clients: livesync (``Client.connect``, three threads per session); google-genai
(``client.aio.live.connect`` sessions in one asyncio loop, a receive task each,
resumption on so both get the same messages; skipped when not installed); and,
as the floor, raw websockets (its asyncio client in one loop sending pre-encoded
JSON, a reader task each): what speaking the protocol costs in Python at all,
and the servers' cost with the cheapest possible client.

Each load server replies to every 2 s of input audio with 1 s of 24 kHz audio in
40 ms chunks at real time (12.5 chunks per session-second, plus a handle and the
turn markers). The child reads every server's counters (``GET /stats``) around
the streaming window, so the server table shows whether the servers kept up:
their CPU per process, late reply chunks, back-pressure, chunks per session.
The fd limit is raised as needed; ``--stack-size`` sets ``threading.stack_size``
in the benchmark's child process only (the library is not changed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

from _common import (
    MODEL,
    NO_GENAI,
    PATH,
    genai_version,
    load_server_processes,
    load_stats,
    process_cpu,
    raise_fd_limit,
    role,
    table,
    thread_cpu,
    vm_rss_kb,
)

CHUNK_SECONDS = 0.02
PCM = bytes(640)  # 20 ms of 16 kHz s16le: the load server counts audio, it has no VAD
CONFIG = {"response_modalities": ["AUDIO"]}
PER_SERVER = 300
REPLY_EVERY, REPLY_SECONDS, REPLY_CHUNK = 2.0, 1.0, 0.04
SERVER_OPTIONS = {"reply_every": REPLY_EVERY, "reply_seconds": REPLY_SECONDS,
                  "audio_chunk_seconds": REPLY_CHUNK}
TARGET_CPU_MS = 1.0
ROLES = ("sender", "reader", "dispatch", "supervisor")


class Counter:
    """An ``on_message`` callback: counts messages and reply audio chunks (one per session,
    so each is only written by its session's dispatcher thread)."""

    def __init__(self) -> None:
        self.messages = 0
        self.audio = 0

    def __call__(self, message: Any) -> None:
        self.messages += 1
        content = message.server_content
        if content is not None and content.model_turn is not None:
            self.audio += 1


def snapshot() -> Dict[str, int]:
    return {"rss": vm_rss_kb(), "threads": threading.active_count()}


def server_stats(urls: Sequence[str]) -> List[Dict[str, Any]]:
    return [load_stats(url) for url in urls]


def stream(send: Callable[[int], None], sessions: int, seconds: float) -> Tuple[int, float]:
    """Send one chunk to every session every 20 ms for ``seconds`` of wall time (a round
    that runs late starts the next at once; the window never stretches); return (chunks,
    wall)."""
    start = time.monotonic()
    next_at, sent = start, 0
    while time.monotonic() - start < seconds:
        for index in range(sessions):
            send(index)
        sent += sessions
        next_at += CHUNK_SECONDS
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return sent, time.monotonic() - start


async def astream(send: Callable[[int], Awaitable[None]], sessions: int,
                  seconds: float) -> Tuple[int, float]:
    """:func:`stream` in an asyncio loop."""
    start = time.monotonic()
    next_at, sent = start, 0
    while time.monotonic() - start < seconds:
        for index in range(sessions):
            await send(index)
        sent += sessions
        next_at += CHUNK_SECONDS
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return sent, time.monotonic() - start


def child_livesync(urls: List[str], api_key: str, sessions: int,
                   seconds: float) -> Dict[str, Any]:
    import livesync

    logging.getLogger("livesync").setLevel(logging.ERROR)
    clients = [livesync.Client(api_key=api_key, base_url=url) for url in urls]
    clients[0].connect(MODEL, config=CONFIG).close()  # warm-up
    time.sleep(0.5)
    before = snapshot()
    counters = [Counter() for _ in range(sessions)]
    start = time.monotonic()
    opened = [clients[i % len(clients)].connect(MODEL, config=CONFIG, on_message=counters[i])
              for i in range(sessions)]
    connect_all = time.monotonic() - start
    time.sleep(1.0)
    idle = snapshot()
    servers0 = server_stats(urls)
    names = {t.native_id: t.name for t in threading.enumerate()}
    cpu0, threads0 = process_cpu(), thread_cpu()
    sent, wall = stream(lambda i: opened[i].send_audio(PCM), sessions, seconds)
    cpu, threads1 = process_cpu() - cpu0, thread_cpu()
    servers1 = server_stats(urls)
    roles: Dict[str, float] = {}
    for tid, seconds_used in threads1.items():
        name = role(names.get(tid, "other"))
        name = "sender" if name == "MainThread" else name.replace("livesync-", "")
        roles[name] = roles.get(name, 0.0) + seconds_used - threads0.get(tid, 0.0)
    streaming = snapshot()
    start = time.monotonic()
    for session in opened:
        session.close()
    close_all = time.monotonic() - start
    return {"before": before, "idle": idle, "streaming": streaming, "cpu": cpu, "sent": sent,
            "wall": wall, "connect_all": connect_all, "close_all": close_all,
            "messages": sum(c.messages for c in counters),
            "audio": sum(c.audio for c in counters),
            "servers": [servers0, servers1], "roles": roles,
            "stack_size": threading.stack_size()}


def child_genai(urls: List[str], api_key: str, sessions: int, seconds: float) -> Dict[str, Any]:
    from contextlib import AsyncExitStack

    from _common import genai_client, import_genai

    types = import_genai().types
    config = dict(CONFIG, session_resumption={})
    counters = [Counter() for _ in range(sessions)]

    async def consume(session: Any, counter: Counter) -> None:
        while True:
            async for message in session.receive():
                counter(message)

    async def main() -> Dict[str, Any]:
        clients = [genai_client(url, api_key) for url in urls]
        async with clients[0].aio.live.connect(model=MODEL, config=config):
            pass  # warm-up
        await asyncio.sleep(0.5)
        before = snapshot()
        async with AsyncExitStack() as stack:
            start = time.monotonic()
            opened = [await stack.enter_async_context(
                clients[i % len(clients)].aio.live.connect(model=MODEL, config=config))
                for i in range(sessions)]
            connect_all = time.monotonic() - start
            tasks = [asyncio.ensure_future(consume(s, c)) for s, c in zip(opened, counters)]
            await asyncio.sleep(1.0)
            idle = snapshot()
            servers0 = server_stats(urls)
            blob = types.Blob(data=PCM, mime_type="audio/pcm;rate=16000")
            cpu0 = process_cpu()
            sent, wall = await astream(
                lambda i: opened[i].send_realtime_input(audio=blob), sessions, seconds)
            cpu = process_cpu() - cpu0
            servers1 = server_stats(urls)
            streaming = snapshot()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            start = time.monotonic()
        close_all = time.monotonic() - start  # the exit stack closed every session
        return {"before": before, "idle": idle, "streaming": streaming, "cpu": cpu,
                "sent": sent, "wall": wall, "connect_all": connect_all, "close_all": close_all,
                "messages": sum(c.messages for c in counters),
                "audio": sum(c.audio for c in counters),
                "servers": [servers0, servers1], "stack_size": 0}

    logging.getLogger("google_genai").setLevel(logging.ERROR)
    return asyncio.run(main())


def child_raw(urls: List[str], api_key: str, sessions: int, seconds: float) -> Dict[str, Any]:
    """The floor: websockets' asyncio client sending pre-encoded JSON, counting replies."""
    import base64

    from websockets.asyncio.client import ClientConnection, connect

    setup = json.dumps({"setup": {"model": "models/" + MODEL, "sessionResumption": {},
                                  "generationConfig": {"responseModalities": ["AUDIO"]}}})
    chunk = json.dumps({"realtimeInput": {"audio": {
        "mimeType": "audio/pcm;rate=16000", "data": base64.b64encode(PCM).decode("ascii")}}})
    counters = [Counter() for _ in range(sessions)]

    async def dial(url: str) -> ClientConnection:
        ws = await connect(url + PATH, additional_headers={"x-goog-api-key": api_key},
                           compression=None, ping_interval=None, max_size=None)
        await ws.send(setup)
        await ws.recv()  # setupComplete
        return ws

    async def consume(ws: ClientConnection, counter: Counter) -> None:
        async for data in ws:
            counter.messages += 1
            counter.audio += b'"modelTurn"' in data

    async def main() -> Dict[str, Any]:
        await (await dial(urls[0])).close()  # warm-up
        await asyncio.sleep(0.5)
        before = snapshot()
        start = time.monotonic()
        opened = [await dial(urls[i % len(urls)]) for i in range(sessions)]
        connect_all = time.monotonic() - start
        tasks = [asyncio.ensure_future(consume(w, c)) for w, c in zip(opened, counters)]
        await asyncio.sleep(1.0)
        idle = snapshot()
        servers0 = server_stats(urls)
        cpu0 = process_cpu()
        sent, wall = await astream(lambda i: opened[i].send(chunk), sessions, seconds)
        cpu = process_cpu() - cpu0
        servers1 = server_stats(urls)
        streaming = snapshot()
        start = time.monotonic()
        for ws in opened:
            await ws.close()
        close_all = time.monotonic() - start
        await asyncio.gather(*tasks, return_exceptions=True)
        return {"before": before, "idle": idle, "streaming": streaming, "cpu": cpu,
                "sent": sent, "wall": wall, "connect_all": connect_all, "close_all": close_all,
                "messages": sum(c.messages for c in counters),
                "audio": sum(c.audio for c in counters),
                "servers": [servers0, servers1], "stack_size": 0}

    return asyncio.run(main())


RAW = "raw websockets"
CHILDREN: Dict[str, Callable[[List[str], str, int, float], Dict[str, Any]]] = {
    "livesync": child_livesync, "google-genai": child_genai, RAW: child_raw}


def child_main(name: str, sessions: int, seconds: float) -> None:
    urls, api_key = json.loads(os.environ["BENCH_LOAD"])
    stack_kib = int(os.environ.get("BENCH_STACK_KIB", "0"))
    raise_fd_limit(4 * sessions + 256)
    if stack_kib:
        threading.stack_size(stack_kib * 1024)
    print(json.dumps(CHILDREN[name](urls, api_key, sessions, seconds)))


def measure(name: str, urls: List[str], api_key: str, sessions: int, seconds: float,
            stack_kib: int = 0) -> Dict[str, Any]:
    env = dict(os.environ, BENCH_LOAD=json.dumps([urls, api_key]),
               BENCH_STACK_KIB=str(stack_kib))
    out = subprocess.run([sys.executable, __file__, "--child", name, str(sessions),
                          str(seconds)], env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError("%s child failed:\n%s" % (name, out.stderr[-2000:]))
    result: Dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def summarize(result: Dict[str, Any], sessions: int) -> Dict[str, Any]:
    """Per-session figures of one cell, and how the servers did in its streaming window."""
    audio_s = result["sent"] * CHUNK_SECONDS  # session-seconds of audio streamed
    before, streaming = result["before"], result["streaming"]
    servers0, servers1 = result["servers"]
    cpu = [b["cpu_seconds"] - a["cpu_seconds"] for a, b in zip(servers0, servers1)]

    def delta(key: str) -> float:
        return float(sum(b[key] - a[key] for a, b in zip(servers0, servers1)))

    return {
        "cpu_ms": result["cpu"] / audio_s * 1e3,
        "rss_kb": (streaming["rss"] - before["rss"]) / sessions,
        "idle_kb": (result["idle"]["rss"] - before["rss"]) / sessions,
        "threads": (result["idle"]["threads"] - before["threads"]) / sessions,
        "connect_all": result["connect_all"], "close_all": result["close_all"],
        "realtime": audio_s / sessions / result["wall"],
        "server_cpu_ms": sum(cpu) / audio_s * 1e3,
        "server_share": max(cpu) / result["wall"],
        "servers": len(cpu),
        "chunks_sent": delta("chunks_out") / sessions,
        "chunks_expected": expected_chunks(audio_s / sessions, result["wall"]),
        "late": delta("late_chunks"), "chunks_total": delta("chunks_out"),
        "backpressure": delta("backpressure"),
        "audio_in": delta("audio_seconds_in") / audio_s,
        "audio_received": result["audio"] / sessions,
        "messages": result["messages"] / sessions,
        "stack_kib": result["stack_size"] // 1024,
        "roles": {name: used / audio_s * 1e3 for name, used in result.get("roles", {}).items()},
    }


def expected_chunks(audio: float, wall: float) -> float:
    """Reply chunks a server owes one session in the window: ``audio`` seconds of input
    spread evenly over ``wall`` seconds start a reply at every ``REPLY_EVERY`` seconds of
    audio, each sending a chunk at once and then one per ``REPLY_CHUNK`` for
    ``REPLY_SECONDS`` (cut off by the window's end)."""
    total, k = 0.0, 1
    while k * REPLY_EVERY <= audio + 1e-9:
        started = k * REPLY_EVERY * wall / audio
        total += 1 + min(REPLY_SECONDS - REPLY_CHUNK, max(0.0, wall - started)) / REPLY_CHUNK
        k += 1
    return total


def run_cells(sizes: Sequence[int], seconds: float, clients: Sequence[str],
              servers: Optional[int], stack_kib: int) -> Dict[Tuple[str, int], Any]:
    found: Dict[Tuple[str, int], Any] = {}
    for sessions in sizes:
        count = servers or max(1, math.ceil(sessions / PER_SERVER))
        with load_server_processes(count, **SERVER_OPTIONS) as (urls, api_key):
            for name in clients:
                try:
                    result = measure(name, urls, api_key, sessions, seconds, stack_kib)
                    found[(name, sessions)] = summarize(result, sessions)
                except Exception as exc:  # report the cell, keep going
                    reason = str(exc).strip().splitlines()[-1][:200] if str(exc) else repr(exc)
                    found[(name, sessions)] = "failed: %s" % reason
                    print("%s at %d sessions failed: %s" % (name, sessions, exc), flush=True)
    return found


def report(found: Dict[Tuple[str, int], Any], sizes: Sequence[int], seconds: float,
           genai: Optional[str], stack_kib: int) -> None:
    rows, server_rows = [], []
    for sessions in sizes:
        for name in ("livesync", "google-genai", RAW):
            got = found.get((name, sessions))
            if name == RAW and got is None:
                continue
            if not isinstance(got, dict):
                why = got or genai or "not run"
                rows.append([sessions, name, why, "", "", "", "", "", ""])
                continue
            versus = ""
            theirs = found.get(("google-genai", sessions))
            if name == "livesync" and isinstance(theirs, dict):
                versus = "%.2f×" % (got["cpu_ms"] / theirs["cpu_ms"])
            rows.append([sessions, name, "%.2f ms" % got["cpu_ms"], "%.0f KB" % got["rss_kb"],
                         "%.1f" % got["threads"], "%.1f s" % got["connect_all"],
                         "%.1f s" % got["close_all"], "%.2f" % got["realtime"], versus])
            server_rows.append([
                sessions, name, got["servers"], "%.2f ms" % got["server_cpu_ms"],
                "%.0f%%" % (100 * got["server_share"]),
                "%.1f / %.1f" % (got["chunks_sent"], got["chunks_expected"]),
                "%.1f" % got["audio_received"],
                "%.2f%%" % (100 * got["late"] / max(1.0, got["chunks_total"])),
                "%d" % got["backpressure"], kept_up(got)])
    print("%.0f s of real-time audio per cell; fresh client process per cell; load servers "
          "(livesync.emulator.LoadServer) in their own processes, 1 per %d sessions"
          % (seconds, PER_SERVER))
    if stack_kib:
        print("threading.stack_size(%d KiB) in the client processes" % stack_kib)
    table("scale: client CPU, memory and threads per session", [
        "sessions", "client", "CPU per session-s", "RSS per session", "threads per session",
        "connect all", "close all", "real-time ratio", "livesync CPU / google-genai"], rows)
    print("CPU per session-s: client process CPU / session-seconds of audio actually sent "
          "(real-time ratio = achieved send rate; < 1 when the machine could not keep up). "
          "RSS: VmRSS after streaming minus before the sessions, per session. Threads: "
          "threading.active_count() delta per session.")
    role_rows = [[n] + ["%.2f ms" % found[("livesync", n)]["roles"].get(r, 0.0) for r in ROLES]
                 for n in sizes if isinstance(found.get(("livesync", n)), dict)]
    table("scale: livesync CPU per session-s by thread", ["sessions", *ROLES], role_rows)
    print("Exact thread CPU (/proc/self/task/*/schedstat) over the streaming window: the "
          "sender is the benchmark's thread calling send_audio for every session; readers, "
          "dispatchers and supervisors are one per session. Every thread wake-up costs CPU "
          "(see the machine table): a reader wakes once per server message.")
    table("scale: did the load servers keep up? (same streaming windows)", [
        "sessions", "client", "servers", "server CPU per session-s", "busiest server CPU",
        "reply chunks sent / expected per session", "audio chunks received per session",
        "late chunks", "back-pressure", "kept up"], server_rows)
    print("The servers kept up when the busiest process used < 90% of a core, they read >= 95% "
          "of the audio sent within the window, sent >= 90% of the reply chunks it asked for "
          "(expected: one 1 s reply per 2 s of audio, cut off by the window) and < 1% of the "
          "chunks more than 40 ms late. Back-pressure counts chunks held because a client did "
          "not read (the client's lag, not the server's).")
    print("targets (issue #10): livesync CPU <= %.1f ms per session-s at 300 sessions, at most "
          "half of google-genai's at every size, flat from 300 to 1,000; constant threads per "
          "session; close-all within seconds." % TARGET_CPU_MS)
    verdicts(found, sizes)


def kept_up(got: Dict[str, Any]) -> str:
    late = got["late"] / max(1.0, got["chunks_total"])
    enough = got["chunks_sent"] >= 0.9 * got["chunks_expected"]
    read = got["audio_in"] >= 0.95
    return "yes" if got["server_share"] < 0.9 and late < 0.01 and enough and read else "NO"


def verdicts(found: Dict[Tuple[str, int], Any], sizes: Sequence[int]) -> None:
    ours = {n: found.get(("livesync", n)) for n in sizes}
    theirs = {n: found.get(("google-genai", n)) for n in sizes}
    at300 = ours.get(300)
    if isinstance(at300, dict):
        print("  livesync at 300: %.2f ms per session-s (target <= %.1f): %s" % (
            at300["cpu_ms"], TARGET_CPU_MS, "met" if at300["cpu_ms"] <= TARGET_CPU_MS
            else "NOT met"))
    for n in sizes:
        mine, other = ours.get(n), theirs.get(n)
        if isinstance(mine, dict) and isinstance(other, dict):
            share = mine["cpu_ms"] / other["cpu_ms"]
            print("  livesync / google-genai at %d: %.2f× (target <= 0.5×): %s" % (
                n, share, "met" if share <= 0.5 else "NOT met"))
    at1000 = ours.get(1000)
    if isinstance(at300, dict) and isinstance(at1000, dict):
        growth = at1000["cpu_ms"] / at300["cpu_ms"]
        print("  livesync 1,000 vs 300: %.2f× per session (flat: about 1×)" % growth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 and 100 sessions, 5 s")
    parser.add_argument("--sessions", help="comma-separated session counts "
                                           "(default 10,100,300,1000)")
    parser.add_argument("--seconds", type=float, help="seconds of streaming (default 20)")
    parser.add_argument("--servers", type=int, help="load-server processes (default "
                                                    "ceil(sessions / %d))" % PER_SERVER)
    parser.add_argument("--stack-size", type=int, default=0, metavar="KIB",
                        help="threading.stack_size in the client process (0: default)")
    parser.add_argument("--no-genai", action="store_true", help="no google-genai cells")
    parser.add_argument("--no-raw", action="store_true",
                        help="no raw websockets cells (the client floor and the servers' "
                             "cost with the cheapest client)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, sessions, seconds = args.child
        child_main(name, int(sessions), float(seconds))
        return
    sizes = [int(s) for s in (args.sessions or ("10,100" if args.quick
                                                else "10,100,300,1000")).split(",")]
    seconds = args.seconds or (5.0 if args.quick else 20.0)
    skip_genai = ("skipped (--no-genai)" if args.no_genai
                  else NO_GENAI if genai_version() is None else None)
    clients = ["livesync"] + ([] if skip_genai else ["google-genai"]) + (
        [] if args.no_raw else [RAW])
    found = run_cells(sizes, seconds, clients, args.servers, args.stack_size)
    report(found, sizes, seconds, skip_genai, args.stack_size)


if __name__ == "__main__":
    main()
