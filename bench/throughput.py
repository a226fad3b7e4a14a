"""Receive throughput: server -> consumer messages per second, ~200-byte messages.

Usage: ``python bench/throughput.py [--quick] [--messages N] [--runs R]``

The emulator (in its own process) answers the user text "stream N" with N
``serverContent.modelTurn`` text messages of about 200 bytes as encoded
(pretty-printed JSON in binary frames, like the real server), then
``turnComplete``. Three consumers read the same stream, interleaved run by run:

* raw: websocket-client ``recv_data()`` + ``json.loads`` in a loop (the baseline);
* livesync: a Session counting messages in ``on_message``;
* google-genai: ``client.aio.live.connect()`` + ``session.receive()``.

A fourth reader, ``recv_data()`` without decoding, shows how fast the emulator
sends: when raw gets close to it, raw is limited by the producer.

Each run is timed from the send of the turn to the delivery of ``turnComplete``.
Prints the median msg/s of each consumer and the ratios livesync/raw (target
>= 0.6) and livesync/google-genai (target >= 2.5, issue #10). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import threading
import time
from functools import partial
from typing import Callable, Dict, List, Optional

import websocket
from _common import (
    MODEL,
    NO_GENAI,
    PATH,
    STREAM_PREFIX,
    emulator_process,
    encoded_chunk,
    genai_client,
    import_genai,
    median,
    setup_message,
    user_turn,
)

import livesync

RAW = "raw websocket-client"
CEILING = "emulator (recv only)"


def run_raw(base_url: str, api_key: str, count: int, decode: bool = True) -> float:
    ws = websocket.create_connection(
        base_url + PATH, header=["x-goog-api-key: " + api_key], skip_utf8_validation=True)
    try:
        ws.send(setup_message())
        assert "setupComplete" in json.loads(ws.recv_data()[1])
        start = time.perf_counter()
        ws.send(user_turn(STREAM_PREFIX + str(count)))
        if not decode:  # no json.loads: how fast the emulator can send
            for _ in range(count + 1):
                ws.recv_data()
            return time.perf_counter() - start
        while True:
            message = json.loads(ws.recv_data()[1])
            if message.get("serverContent", {}).get("turnComplete"):
                return time.perf_counter() - start
    finally:
        ws.close()


def run_livesync(base_url: str, api_key: str, count: int) -> float:
    done = threading.Event()
    received = [0]

    def on_message(message: livesync.LiveServerMessage) -> None:
        received[0] += 1
        content = message.server_content
        if content is not None and content.turn_complete:
            done.set()

    client = livesync.Client(api_key=api_key, base_url=base_url)
    session = client.connect(MODEL, config={"response_modalities": ["TEXT"]},
                             on_message=on_message)
    try:
        start = time.perf_counter()
        session.send_text(STREAM_PREFIX + str(count))
        if not done.wait(120):
            raise RuntimeError("livesync: no turnComplete after %d messages" % received[0])
        return time.perf_counter() - start
    finally:
        session.close()


def genai_runner() -> Optional[Callable[[str, str, int], float]]:
    """A google-genai consumer, or None (with the reason printed) if it cannot run."""
    try:
        import_genai()
    except ImportError:
        print("google-genai: %s" % NO_GENAI)
        return None

    async def one_run(base_url: str, api_key: str, count: int) -> float:
        client = genai_client(base_url, api_key)
        async with client.aio.live.connect(
                model=MODEL, config={"response_modalities": ["TEXT"]}) as session:
            start = time.perf_counter()
            await session.send_client_content(
                turns={"role": "user", "parts": [{"text": STREAM_PREFIX + str(count)}]},
                turn_complete=True)
            async for message in session.receive():  # ends after turnComplete
                content = message.server_content
                if content is not None and content.turn_complete:
                    break
            return time.perf_counter() - start

    def run(base_url: str, api_key: str, count: int) -> float:
        return asyncio.run(one_run(base_url, api_key, count))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 messages, 5 runs")
    parser.add_argument("--messages", type=int, help="messages per run (default 20,000)")
    parser.add_argument("--runs", type=int, help="runs per consumer (default 7)")
    args = parser.parse_args()
    count = args.messages or (5_000 if args.quick else 20_000)
    runs = args.runs or (5 if args.quick else 7)
    # 20k undelivered receive() messages would log "buffer full" warnings.
    logging.getLogger("livesync").setLevel(logging.ERROR)

    consumers: Dict[str, Callable[[str, str, int], float]] = {
        CEILING: partial(run_raw, decode=False), RAW: run_raw, "livesync": run_livesync}
    genai = genai_runner()
    with emulator_process() as (base_url, api_key):
        if genai is not None:
            try:
                genai(base_url, api_key, 10)
                consumers["google-genai"] = genai
            except Exception as exc:  # report and skip the baseline
                print("google-genai: skipped, cannot use the emulator: %r" % exc)
        print("%d messages of %d bytes per run, median of %d runs"
              % (count, len(encoded_chunk()), runs))
        for run in consumers.values():  # warm up connections, imports, caches
            run(base_url, api_key, min(count, 1000))
        rates: Dict[str, List[float]] = {name: [] for name in consumers}
        for _ in range(runs):
            for name, run in consumers.items():
                rates[name].append(count / run(base_url, api_key, count))

    result = {name: median(values) for name, values in rates.items()}
    for name, values in rates.items():
        print("  %-22s %8.0f msg/s   (runs: %s)" % (
            name, result[name], ", ".join("%.0f" % v for v in values)))
    ours = result["livesync"]
    print("  livesync / raw          %7.2fx   (target >= 0.6)" % (ours / result[RAW]))
    if "google-genai" in result:
        print("  livesync / google-genai %7.2fx   (target >= 2.5)"
              % (ours / result["google-genai"]))
    else:
        print("  livesync / google-genai  %s" % NO_GENAI)
    if result[RAW] > 0.85 * result[CEILING]:
        print("  note: raw is near the emulator's send rate; livesync / raw is an upper bound")


if __name__ == "__main__":
    main()
