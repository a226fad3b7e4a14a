"""Reader probe: what one selector thread would save over a reader thread per connection.

Usage: ``python bench/reader_probe.py [--sessions 300] [--seconds 10]``

Not livesync: a measurement for the design question in bench/PROFILE.md ("a shared
selector reader"). N plain websocket-client connections to one load server
(``livesync.emulator.LoadServer``, same replies as ``bench/scale.py``); one sender
thread sends a 20 ms audio chunk to every connection every 20 ms. The server messages
are read and decoded (livesync's frame parser, ``json.loads``) in one of two ways:

* threads: one reader thread per connection, blocking in ``recv``, as livesync reads;
* selector: one thread waiting on every socket (``selectors``), reading whatever is
  ready without blocking (``MSG_DONTWAIT``: loopback, no TLS).

Prints the readers' exact CPU (per-thread ``schedstat``) per message and per
session-second, and how many sockets the selector found ready per wake-up. Nothing
is asserted.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import threading
import time
from typing import Any, Callable, Dict, List

import websocket
from _common import (
    PATH,
    load_server_processes,
    raise_fd_limit,
    role,
    setup_message,
    table,
    thread_cpu,
    wakeup_cost_us,
)
from scale import PCM, SERVER_OPTIONS, stream

from livesync import _frames, _messages

CHUNK = _messages.audio_message(PCM)


def dial(url: str, api_key: str) -> websocket.WebSocket:
    ws = websocket.create_connection(url + PATH, header=["x-goog-api-key: " + api_key],
                                     skip_utf8_validation=True, timeout=30)
    ws.send(setup_message())
    ws.recv()  # setupComplete
    return ws


class Counter:
    def __init__(self) -> None:
        self.messages = 0
        self.wakeups = 0
        self.ready = 0

    def consume(self, parser: _frames.FrameParser, data: bytes) -> None:
        parser.feed(data)
        item = parser.next()
        while item is not None:
            if item[0] in _frames.DATA_OPCODES:
                json.loads(item[1])
                self.messages += 1
            item = parser.next()


def thread_readers(conns: List[websocket.WebSocket], counter: Counter,
                   stop: threading.Event) -> Callable[[], None]:
    def read(ws: websocket.WebSocket) -> None:
        parser, sock = _frames.FrameParser(), ws.sock
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            counter.consume(parser, data)

    threads = [threading.Thread(target=read, args=(ws,), name="reader-%d" % i, daemon=True)
               for i, ws in enumerate(conns)]
    for thread in threads:
        thread.start()
    return lambda: [thread.join() for thread in threads] and None


def selector_reader(conns: List[websocket.WebSocket], counter: Counter,
                    stop: threading.Event) -> Callable[[], None]:
    selector = selectors.DefaultSelector()
    for ws in conns:
        selector.register(ws.sock, selectors.EVENT_READ, _frames.FrameParser())

    def run() -> None:
        while not stop.is_set():
            ready = selector.select(0.5)
            counter.wakeups += 1
            counter.ready += len(ready)
            for key, _ in ready:
                sock: Any = key.fileobj
                try:
                    data = sock.recv(65536, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    continue
                if data:
                    counter.consume(key.data, data)
                else:
                    selector.unregister(sock)

    thread = threading.Thread(target=run, name="reader-selector", daemon=True)
    thread.start()
    return thread.join


def measure(mode: str, url: str, api_key: str, sessions: int, seconds: float) -> Dict[str, Any]:
    conns = [dial(url, api_key) for _ in range(sessions)]
    counter, stop = Counter(), threading.Event()
    start_readers = thread_readers if mode == "threads" else selector_reader
    join = start_readers(conns, counter, stop)
    time.sleep(1.0)
    names = {t.native_id: t.name for t in threading.enumerate()}
    cpu0, messages0, wakeups0, ready0 = thread_cpu(), counter.messages, counter.wakeups, \
        counter.ready
    _, wall = stream(lambda i: conns[i].send(CHUNK), sessions, seconds)
    cpu1 = thread_cpu()
    readers = sum(cpu1[tid] - cpu0.get(tid, 0.0) for tid in cpu1
                  if role(names.get(tid, "")).startswith("reader"))
    messages = counter.messages - messages0
    wakeups, ready = counter.wakeups - wakeups0, counter.ready - ready0
    stop.set()
    for ws in conns:
        ws.close(timeout=1)
    join()
    return {"mode": mode, "readers_s": readers, "messages": messages, "wall": wall,
            "per_message_us": readers / max(1, messages) * 1e6,
            "per_session_s_ms": readers / (sessions * wall) * 1e3,
            "ready_per_wakeup": ready / wakeups if wakeups else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    raise_fd_limit(4 * args.sessions + 100)
    rows = []
    with load_server_processes(max(1, -(-args.sessions // 300)), **SERVER_OPTIONS) as (
            urls, api_key):
        for mode in ("threads", "selector", "threads", "selector"):
            got = measure(mode, urls[0], api_key, args.sessions, args.seconds)
            rows.append([got["mode"], "%.1f µs" % got["per_message_us"],
                         "%.2f ms" % got["per_session_s_ms"], got["messages"],
                         "%.1f" % got["ready_per_wakeup"] if got["ready_per_wakeup"] else ""])
    print("%d connections to one load server, %.0f s each run; CPU charged per thread "
          "wake-up on this machine: %.0f µs" % (args.sessions, args.seconds, wakeup_cost_us()))
    table("reader CPU: a thread per connection vs one selector thread",
          ["readers", "CPU per message", "CPU per session-s", "messages", "ready per wake-up"],
          rows)


if __name__ == "__main__":
    main()
