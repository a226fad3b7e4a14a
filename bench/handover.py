"""Handover gap on goAway: livesync's planned rotation vs a naive close-then-reconnect.

Usage: ``python bench/handover.py [--quick] [--rotations N] [--block B]``

Two scenarios, each client on its own loopback emulator that sends ``goAway``
(timeLeft 30 s). Each emulator runs in a child process, as the real service runs
elsewhere: a server in the client's process would share its GIL, and every extra
client thread would pay for the server's work.

* idle: nothing is in flight, so both rotate at once;
* mid-turn: the goAway arrives while a reply streams; both finish the turn first
  (the safe point) and then rotate. livesync dials the next socket as soon as the
  goAway arrives, so the dial overlaps the rest of the reply.

The gap is the time from the last server message on the old connection to
``setupComplete`` on the new one:

* livesync: ``Reconnected.gap_ms`` from ``on_reconnect`` (it closes the old
  connection, then sends setup with the resumption handle on the new socket);
* naive: websocket-client ``ws.close()``, then ``create_connection`` + setup with
  the last ``newHandle``, timed the same way.

The two alternate in blocks of rotations. Prints median and p99 of each and
the ratio livesync/naive, then, as a cross-check of livesync's own gap_ms, the
time this script measures from the goAway send to the new connection being
ready. Target: livesync median under 10 ms on loopback and
below the naive approach. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import websocket
from _common import (
    MODEL,
    PATH,
    RemoteEmulator,
    median,
    percentile,
    remote_emulator,
    setup_message,
    user_turn,
)

import livesync

GO_AWAY_SECONDS = 30.0
TIMEOUT = 10.0
QUESTION = "Please repeat this sentence back to me slowly. " * 2  # a reply of several chunks
CHUNK_DELAY = 0.005


class LivesyncClient:
    """An idle livesync session; ``rotate()`` sends goAway, returns (gap, wall) in ms."""

    def __init__(self, emu: RemoteEmulator) -> None:
        self.emu = emu
        self.reconnects: queue.Queue[livesync.Reconnected] = queue.Queue()
        self.has_handle = threading.Event()
        self.replying = threading.Event()
        self.unexpected: List[str] = []
        client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
        self.session = client.connect(
            MODEL, config={"response_modalities": ["TEXT"]},
            on_reconnect=self.reconnects.put, on_resumption_update=self._on_update,
            on_message=lambda m: m.text and self.replying.set(),
            reconnect=livesync.ReconnectPolicy(on_resume_refused="fail"))
        self._wait(self.has_handle, "a resumption handle")

    def _on_update(self, update: livesync.SessionResumptionUpdate) -> None:
        if update.new_handle:
            self.has_handle.set()

    @staticmethod
    def _wait(event: threading.Event, what: str) -> None:
        if not event.wait(TIMEOUT):
            raise RuntimeError("livesync: no %s within %.0f s" % (what, TIMEOUT))

    def rotate(self, mid_turn: bool) -> Tuple[float, float]:
        self.has_handle.clear()
        if mid_turn:
            self.replying.clear()
            self.session.send_text(QUESTION)
            self._wait(self.replying, "reply")
        sent = time.perf_counter()
        self.emu.send_go_away(time_left=GO_AWAY_SECONDS)
        event = self.reconnects.get(timeout=TIMEOUT)
        wall = (time.perf_counter() - sent) * 1000.0
        if not (event.planned and event.resumed and event.attempts == 1):
            self.unexpected.append(repr(event))
        self._wait(self.has_handle, "handle on the new connection")
        return event.gap_ms, wall

    def close(self) -> None:
        self.session.close()


class NaiveClient:
    """websocket-client that, on goAway, closes and reconnects with the last handle."""

    def __init__(self, emu: RemoteEmulator) -> None:
        self.url = emu.base_url + PATH
        self.header = ["x-goog-api-key: " + emu.api_key]
        self.emu = emu
        self.handle: Optional[str] = None
        self.ws = self._open(None)

    def _open(self, handle: Optional[str]) -> websocket.WebSocket:
        ws = websocket.create_connection(self.url, header=self.header,
                                         skip_utf8_validation=True, timeout=TIMEOUT)
        setup = json.loads(setup_message(handle))
        setup["setup"].setdefault("sessionResumption", {})
        ws.send(json.dumps(setup))
        self._read_until(ws, "setupComplete")
        return ws

    def _read_until(self, ws: websocket.WebSocket, key: str) -> float:
        """Read up to the first message with ``key``; return when it arrived."""
        while True:
            data = ws.recv_data()[1]
            arrived = time.perf_counter()
            message = json.loads(data)
            handle = message.get("sessionResumptionUpdate", {}).get("newHandle")
            if handle:
                self.handle = handle
            if key in message:
                return arrived

    def rotate(self, mid_turn: bool) -> Tuple[float, float]:
        if self.handle is None:  # the handle is sent right after setupComplete
            self._read_until(self.ws, "sessionResumptionUpdate")
        if mid_turn:
            self.ws.send(user_turn(QUESTION))
            self._read_until(self.ws, "serverContent")
        sent = time.perf_counter()
        self.emu.send_go_away(time_left=GO_AWAY_SECONDS)
        start = self._read_until(self.ws, "goAway")  # the last message on the old connection
        if mid_turn:  # the safe point: the turn is over and a fresh handle arrived
            self.handle = None
            while self.handle is None:
                start = self._read_until(self.ws, "sessionResumptionUpdate")
        self.ws.close()
        handle, self.handle = self.handle, None
        self.ws = self._open(handle)
        end = time.perf_counter()
        return (end - start) * 1000.0, (end - sent) * 1000.0

    def close(self) -> None:
        self.ws.close()


def report(name: str, values: List[float]) -> float:
    mid = median(values)
    print("  %-9s median %6.2f ms   p99 %6.2f ms   min %6.2f   max %6.2f" % (
        name, mid, percentile(values, 99), min(values), max(values)))
    return mid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 rotations each")
    parser.add_argument("--rotations", type=int, help="rotations per client (default 100)")
    parser.add_argument("--block", type=int, default=10,
                        help="rotations per client before switching (default 10)")
    args = parser.parse_args()
    rotations = args.rotations or (30 if args.quick else 100)
    logging.getLogger("livesync").setLevel(logging.ERROR)

    for scenario in ("idle", "mid-turn"):
        run(scenario, rotations, args.block)


def run(scenario: str, rotations: int, block_size: int) -> None:
    mid_turn = scenario == "mid-turn"
    results: Dict[str, List[Tuple[float, float]]] = {"livesync": [], "naive": []}
    with remote_emulator(chunk_delay=CHUNK_DELAY) as emu_ls, \
            remote_emulator(chunk_delay=CHUNK_DELAY) as emu_naive:
        clients: Dict[str, Any] = {"livesync": LivesyncClient(emu_ls),
                                   "naive": NaiveClient(emu_naive)}
        try:
            for client in clients.values():  # warm-up rotation, not counted
                client.rotate(mid_turn)
            done = 0
            while done < rotations:
                block = min(block_size, rotations - done)
                for name, client in clients.items():
                    rotate: Callable[[bool], Tuple[float, float]] = client.rotate
                    results[name].extend(rotate(mid_turn) for _ in range(block))
                done += block
        finally:
            for client in clients.values():
                client.close()
        unexpected = clients["livesync"].unexpected

    print("%d goAway rotations per client, %s session, loopback" % (rotations, scenario))
    print("gap: last message on the old connection -> setupComplete on the new")
    ours = report("livesync", [gap for gap, _ in results["livesync"]])
    naive = report("naive", [gap for gap, _ in results["naive"]])
    print("  livesync / naive  %5.2fx   (median; target < 1)" % (ours / naive))
    print("  livesync median   %5.2f ms (target < 10 ms)" % ours)
    print("cross-check, timed by this script: goAway sent -> new connection ready"
          " (livesync: on_reconnect)")
    report("livesync", [wall for _, wall in results["livesync"]])
    report("naive", [wall for _, wall in results["naive"]])
    for line in unexpected:
        print("  unexpected reconnect:", line)
    print()


if __name__ == "__main__":
    main()
