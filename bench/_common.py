"""Shared helpers for the benchmarks: paths, the raw setup message, stats, emulator process."""

from __future__ import annotations

import json
import math
import multiprocessing
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODEL = "gemini-live-2.5-flash-preview"
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
STREAM_PREFIX = "stream "  # user text "stream N" asks the bench responder for N messages
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


def stream_responder(turn: Any) -> Any:
    """Emulator responder: for "stream N", N pre-encoded ~200-byte messages, then turnComplete.

    Messages are encoded once, so the emulator spends its time sending, not in json.dumps.
    """
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

    with Emulator(responder=stream_responder, record_sent=False, **options) as emu:
        conn.send((emu.base_url, emu.api_key))
        conn.recv()  # any message (or EOF) stops the emulator


@contextmanager
def emulator_process(**options: Any) -> Iterator[Tuple[str, str]]:
    """Run an Emulator with :func:`stream_responder` in a child process.

    A separate process gives the server its own interpreter (and core), so the
    consumers being compared do not share a GIL with the producer.
    Yields ``(base_url, api_key)``.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(child, options), daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the emulator process did not start")
        yield parent.recv()
    finally:
        parent.send("stop")
        proc.join(10)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


def median(values: List[float]) -> float:
    return statistics.median(values)
