"""Send cost: one ``send_audio`` of 20 ms of 16 kHz PCM on an open session.

Usage: ``python bench/send.py [--quick] [--calls N] [--runs R]``

The emulator runs in its own process, with automatic activity detection off in
the setup (so it only decodes and records the audio; no VAD, no replies). Three
senders push the same 640-byte chunk ``N`` times in a tight loop on a fresh
connection per run, interleaved run by run:

* raw: websocket-client ``ws.send()`` of the same JSON text livesync builds
  (``binascii.b2a_base64`` + one ``%`` format), the baseline;
* livesync: ``Session.send_audio(pcm)``;
* google-genai: ``await session.send_realtime_input(audio=Blob(...))`` in an
  asyncio loop (n/a when google-genai is not installed).

For each: CPU of the calling thread per call (``time.thread_time``), CPU of the
whole process per call (``getrusage``: includes the other threads' share, e.g.
the event loop's writer), and wall per call. Medians over runs. Target (issue
#10): <= 10 us per chunk; livesync's own work is livesync - raw.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import logging
import time
from typing import Callable, Dict, List, Optional, Tuple

import websocket
from _common import (
    MODEL,
    NO_GENAI,
    PATH,
    emulator_process,
    genai_client,
    import_genai,
    median,
    process_cpu,
    ratio,
    table,
)

import livesync

RATE = 16000
PCM = bytes(range(256)) * 2 + bytes(128)  # 640 bytes = 20 ms of 16 kHz s16 mono
NO_VAD = {"automatic_activity_detection": {"disabled": True}}
RAW_SETUP = ('{"setup":{"model":"models/%s","generationConfig":{"responseModalities":["TEXT"]},'
             '"realtimeInputConfig":{"automaticActivityDetection":{"disabled":true}}}}' % MODEL)
WARMUP = 100

Sample = Tuple[float, float, float]  # thread CPU, process CPU, wall (seconds, whole run)


def timed(loop: Callable[[], None]) -> Sample:
    thread0, proc0, wall0 = time.thread_time(), process_cpu(), time.perf_counter()
    loop()
    return time.thread_time() - thread0, process_cpu() - proc0, time.perf_counter() - wall0


def run_raw(base_url: str, api_key: str, calls: int) -> Sample:
    ws = websocket.create_connection(base_url + PATH, header=["x-goog-api-key: " + api_key],
                                     skip_utf8_validation=True)
    try:
        ws.send(RAW_SETUP)
        ws.recv_data()  # setupComplete

        def send(count: int) -> None:
            template = '{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=%d","data":"%s"}}}'
            for _ in range(count):
                ws.send(template % (RATE, binascii.b2a_base64(PCM, newline=False).decode("ascii")))

        send(WARMUP)
        return timed(lambda: send(calls))
    finally:
        ws.close()


def run_livesync(base_url: str, api_key: str, calls: int) -> Sample:
    client = livesync.Client(api_key=api_key, base_url=base_url)
    session = client.connect(MODEL, config={"response_modalities": ["TEXT"],
                                            "realtime_input_config": NO_VAD})
    try:
        def send(count: int) -> None:
            send_audio = session.send_audio
            for _ in range(count):
                send_audio(PCM)

        send(WARMUP)
        return timed(lambda: send(calls))
    finally:
        session.close()


def genai_runner() -> Optional[Callable[[str, str, int], Sample]]:
    try:
        types = import_genai().types
    except ImportError:
        return None

    async def one_run(base_url: str, api_key: str, calls: int) -> Sample:
        client = genai_client(base_url, api_key)
        config = {"response_modalities": ["TEXT"], "realtime_input_config": NO_VAD}
        async with client.aio.live.connect(model=MODEL, config=config) as session:
            async def send(count: int) -> None:
                for _ in range(count):
                    await session.send_realtime_input(
                        audio=types.Blob(data=PCM, mime_type="audio/pcm;rate=%d" % RATE))

            await send(WARMUP)
            thread0, proc0, wall0 = time.thread_time(), process_cpu(), time.perf_counter()
            await send(calls)
            await asyncio.sleep(0)  # let the transport hand buffered writes to the kernel
            return time.thread_time() - thread0, process_cpu() - proc0, \
                time.perf_counter() - wall0

    def run(base_url: str, api_key: str, calls: int) -> Sample:
        return asyncio.run(one_run(base_url, api_key, calls))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 calls, 5 runs")
    parser.add_argument("--calls", type=int, help="calls per run (default 3,000)")
    parser.add_argument("--runs", type=int, help="runs per sender (default 9)")
    args = parser.parse_args()
    calls = args.calls or (1_000 if args.quick else 3_000)
    runs = args.runs or (5 if args.quick else 9)
    logging.getLogger("livesync").setLevel(logging.ERROR)

    senders: Dict[str, Callable[[str, str, int], Sample]] = {
        "raw websocket-client": run_raw, "livesync": run_livesync}
    genai = genai_runner()
    samples: Dict[str, List[Sample]] = {}
    with emulator_process() as (base_url, api_key):
        if genai is not None:
            try:
                genai(base_url, api_key, 10)
                senders["google-genai"] = genai
            except Exception as exc:  # report and skip the baseline
                print("google-genai: skipped, cannot use the emulator: %r" % exc)
                genai = None
        samples = {name: [] for name in senders}
        for _ in range(runs):
            for name, run in senders.items():
                samples[name].append(run(base_url, api_key, calls))
                time.sleep(0.2)  # let the emulator drain what it has not read yet

    def per_call(name: str, index: int) -> float:
        return median([s[index] for s in samples[name]]) / calls * 1e6

    raw = per_call("raw websocket-client", 0)
    rows = []
    for name in ("raw websocket-client", "livesync", "google-genai"):
        if name not in samples:
            rows.append([name, NO_GENAI, "", "", "", ""])
            continue
        thread_us = per_call(name, 0)
        rows.append([name, "%.1f µs" % thread_us, "%.1f µs" % per_call(name, 1),
                     "%.1f µs" % per_call(name, 2), ratio(thread_us, raw),
                     "%+.1f µs" % (thread_us - raw)])
    print("send_audio(20 ms of 16 kHz PCM, 640 bytes): %d calls per run, median of %d runs, "
          "fresh connection per run, emulator in another process (no VAD)" % (calls, runs))
    table("send cost per 20 ms chunk",
          ["sender", "caller-thread CPU/call", "process CPU/call", "wall/call", "CPU vs raw",
           "above raw"], rows)
    ours = per_call("livesync", 0)
    print("livesync: %.1f µs CPU per chunk (target <= 10 µs); its own work above raw: "
          "%.1f µs" % (ours, ours - raw))
    if "google-genai" in samples:
        print("livesync / google-genai (caller-thread CPU): %s"
              % ratio(ours, per_call("google-genai", 0)))
    else:
        print("livesync / google-genai: %s" % NO_GENAI)


if __name__ == "__main__":
    main()
