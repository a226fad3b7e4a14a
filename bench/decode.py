"""Decode speed: bare json.loads vs parse_server_message vs dataclasses-json from_dict.

Usage: ``python bench/decode.py [--quick] [--runs N] [--generated]``

Messages come from the recorded sessions in ``../shared/recordings`` (server
frames, as bytes, the way the reader gets them); when those are absent, or
with ``--generated``, from the seeded message generator of the unit tests.
Prints the median over several runs of the mean time per message, in µs, the
ratio parse_server_message / json.loads (target: at most 2), and the ratio to
json.loads + base64-decoding the ``inlineData`` payloads, the floor for any
decoder that hands out audio as bytes (issue #10 target: at most 1.2).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import statistics
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from recordings import generated_payloads, recordings_available, server_payloads  # noqa: E402

from livesync._decode import parse_server_message  # noqa: E402
from livesync.types import LiveServerMessage  # noqa: E402


def per_message_us(func, messages, runs, number):
    def loop():
        for raw in messages:
            func(raw)

    times = timeit.repeat(loop, repeat=runs, number=number)
    return statistics.median(times) / (number * len(messages)) * 1e6


def loads_and_b64(raw):
    """json.loads plus base64-decoding every inlineData payload: the floor for any
    decoder that hands out audio as bytes."""
    message = json.loads(raw)
    turn = message.get("serverContent", {}).get("modelTurn")
    if turn:
        for part in turn.get("parts", ()):
            blob = part.get("inlineData")
            if blob and "data" in blob:
                try:
                    base64.b64decode(blob["data"])
                except binascii.Error:  # generated messages may carry URL-safe base64
                    base64.urlsafe_b64decode(blob["data"] + "==")
    return message


def bench(label, messages, runs, number):
    loads = per_message_us(json.loads, messages, runs, number)
    floor = per_message_us(loads_and_b64, messages, runs, number)
    parse = per_message_us(parse_server_message, messages, runs, number)
    slow = per_message_us(
        lambda raw: LiveServerMessage.from_dict(json.loads(raw)),
        messages,
        runs,
        max(1, number // 20),
    )
    size = sum(len(m) for m in messages) / len(messages)
    print("%s: %d messages, %.0f bytes on average" % (label, len(messages), size))
    print("  json.loads                        %8.2f us/message" % loads)
    print("  parse_server_message              %8.2f us/message" % parse)
    print("  json.loads + from_dict            %8.2f us/message" % slow)
    print("  json.loads + base64 of inlineData %8.2f us/message" % floor)
    print("  ratio parse/json.loads            %8.2f  (target <= 2)" % (parse / loads))
    print("  ratio parse/(json.loads + base64) %8.2f  (issue #10 target <= 1.2)"
          % (parse / floor))
    print("  speed-up over from_dict           %8.1fx" % (slow / parse))
    return parse / loads


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 runs of 50 passes")
    parser.add_argument("--runs", type=int, help="repeats; the median is reported (default 7)")
    parser.add_argument("--number", type=int, help="passes over the messages per run (default 200)")
    parser.add_argument("--generated", action="store_true", help="use generated messages only")
    args = parser.parse_args()
    args.runs = args.runs or (3 if args.quick else 7)
    args.number = args.number or (50 if args.quick else 200)

    print("Python %s" % sys.version.split()[0])
    if recordings_available() and not args.generated:
        messages = [raw for _, raw in server_payloads()]
        bench("recorded server messages", messages, args.runs, args.number)
        small = [raw for raw in messages if len(raw) < 1000]
        bench("recorded, small only (no audio)", small, args.runs, args.number)
        audio = [raw for raw in messages if len(raw) >= 1000]
        bench("recorded, audio chunks only", audio, args.runs, args.number)
        print("  (audio: base64-decoding the payload into bytes, which any decoder that hands\n"
              "   out bytes must do, costs about twice json.loads itself)")
    else:
        print("(recordings not found; using generated messages)")
    generated = [raw for _, raw, _ in generated_payloads(300, seed=7)]
    bench("generated messages (every field)", generated, args.runs, max(1, args.number // 10))


if __name__ == "__main__":
    main()
