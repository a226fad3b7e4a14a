"""Long session: a simulated 2-hour audio conversation with rotations and drops.

Usage: ``python bench/longsession.py [--quick] [--minutes M] [--time-scale X]
[--chunk-ms MS] [--drops N] [--seed S] [--sample-every M] [--input-lag S]
[--replay-margin S]``

The emulator runs in a child process with ``time_scale`` X, so a nominal
(simulated) second lasts X real seconds: its connections get a goAway after 9
simulated minutes and end at 10 (the emulator's defaults; the real service also
ends connections after about 10 minutes), which gives about 12 planned
rotations in 2 simulated hours when nothing else ends a connection. The child also injects
TCP drops (no close frame) at simulated times drawn from ``--seed``; the client
process only tells it when the clock starts, so the drops cost the client
nothing.

The client is one livesync session (AUDIO replies, ``context_window_compression``
so the session has no 15-minute limit, the default ReconnectPolicy but for
``--replay-margin``). The main
thread streams 16 kHz PCM in ``--chunk-ms`` chunks at the scaled real-time rate:
every 20 ms of real time it sends the chunks that are due (at X = 1/30 that is
30 chunks of 20 ms). The audio is a 20-second cycle: 3 s of a tone (the
emulator's VAD hears a turn and the scripted model answers with audio), 17 s of
silence; every 5 simulated minutes a text turn ("note N") is sent as well. The
first 16 bytes of every chunk carry its sequence number in eight 4-bit samples
(inaudible to the VAD), so at the end the emulator's record of the session can
be checked: every chunk and every note exactly once, in order.

Every ``--sample-every`` simulated minutes the client samples its RSS (VmRSS),
thread count, process CPU (getrusage: the emulator is in another process) and
``Session.stats()``. Printed at the end: the timeline, RSS growth after warm-up
(target < 5 MB), thread count min/max (target: constant), client CPU per audio
second (first vs last part of the run), rotations, drops injected vs
reconnects seen, replayed/dropped/unconfirmed, and what the emulator holds.
For every resume, the *seam*: the last chunk the resumed handle's snapshot
holds against the first chunk the new connection received; a gap there is
audio lost, an overlap audio sent twice. Lost chunks are explained from the
emulator's records and the send times (both processes read the same
CLOCK_MONOTONIC). Nothing is asserted.

livesync's own timers (backoff, rotation margin, keepalive) run in real time,
not scaled: a reconnect that backs off 0.3 s real is a 9 s gap in simulated
audio (queued by livesync and sent after the resume). Round trips are not
scaled either, and the emulator receives a burst of chunks at once: it lags its
input by a few ms, which is long against loopback's round trip (see
``--replay-margin``; ``--input-lag`` makes the emulator lag on purpose). The
CPU per audio second leaves out most of the cost of waking up for each chunk,
which a real-time sender pays 50 times a second. The emulator keeps every
client message and every handle's snapshot for the checks: its process grows
to about 1.4 GB in the full run (``gc.freeze()`` every second keeps the
collector from pausing it for seconds).
"""

from __future__ import annotations

import argparse
import array
import base64
import dataclasses
import gc
import json
import logging
import math
import multiprocessing
import random
import resource
import struct
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from _common import MODEL, median, process_cpu, table, vm_rss_kb

RATE = 16000
CYCLE = 20.0  # simulated seconds per speech/silence cycle
SPEECH = 3.0  # seconds of tone at the start of each cycle
NOTE_EVERY = 300.0  # a text turn every 5 simulated minutes...
NOTE_AT = 10.0  # ...10 s into a cycle, well after the reply to the speech
TICK = 0.02  # real seconds between send bursts
SETTLE = 0.5  # real seconds after the last chunk for the last reply and handle
SEQ_SAMPLES = 8  # 4 bits of the sequence number per sample
CONFIG: Dict[str, Any] = {
    "response_modalities": ["AUDIO"],
    "context_window_compression": {"sliding_window": {}},
}
LIFETIME = 600.0  # nominal connection lifetime and goAway notice (the real service's)
NOTICE = 60.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one run does; times in simulated seconds unless named ``real``."""

    duration: float
    time_scale: float
    chunk_ms: int
    drops: Tuple[float, ...]
    sample_every: float
    warmup: float
    seed: int
    replay_margin: float
    input_lag: float

    @property
    def chunk_s(self) -> float:
        return self.chunk_ms / 1000.0

    @property
    def chunks(self) -> int:
        return int(round(self.duration / self.chunk_s))


def note_times(duration: float) -> List[float]:
    times, at = [], NOTE_EVERY + NOTE_AT
    while at < duration - CYCLE:
        times.append(at)
        at += NOTE_EVERY
    return times


def build_plan(args: argparse.Namespace) -> Plan:
    minutes = args.minutes or (36.0 if args.quick else 120.0)
    scale = args.time_scale or (1 / 40 if args.quick else 1 / 30)
    count = args.drops if args.drops is not None else (2 if args.quick else 5)
    duration = minutes * 60.0
    rng = random.Random(args.seed)
    drops = tuple(sorted(round(rng.uniform(0.05, 0.95) * duration, 1) for _ in range(count)))
    every = (args.sample_every or (3.0 if args.quick else 5.0)) * 60.0
    warmup = max(every, round(duration / 8.0 / every) * every)
    return Plan(duration, scale, args.chunk_ms, drops, every, warmup, args.seed,
                args.replay_margin, args.input_lag)


# --------------------------------------------------------------------- audio


class Audio:
    """PCM chunks of the cycle, each stamped with its sequence number."""

    def __init__(self, chunk_s: float) -> None:
        self.chunk_s = chunk_s
        count = int(round(RATE * chunk_s))
        self.tone = b"".join(struct.pack("<h", int(4000 * math.sin(2 * math.pi * 440 * i / RATE)))
                             for i in range(count))
        self.silence = bytes(2 * count)

    def chunk(self, seq: int) -> bytes:
        start = (seq * self.chunk_s) % CYCLE
        body = self.tone if start < SPEECH - 1e-9 else self.silence
        return stamp(seq) + body[2 * SEQ_SAMPLES:]


def chunk_json_bytes(chunk_s: float) -> int:
    """About how many bytes of JSON one chunk is (what ``max_buffered_media`` counts)."""
    pcm = bytes(2 * int(round(RATE * chunk_s)))
    return len(json.dumps({"realtimeInput": {"audio": {
        "data": base64.b64encode(pcm).decode(), "mimeType": "audio/pcm;rate=%d" % RATE}}}))


def stamp(seq: int) -> bytes:
    return struct.pack("<%dh" % SEQ_SAMPLES, *((seq >> (4 * i)) & 0xF for i in range(SEQ_SAMPLES)))


def unstamp(pcm: bytes) -> int:
    values = struct.unpack_from("<%dh" % SEQ_SAMPLES, pcm)
    return sum((v & 0xF) << (4 * i) for i, v in enumerate(values))


# ------------------------------------------------------------ emulator child


class GcPauses:
    """``gc.callbacks`` entry: the emulator process's garbage-collection pauses."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = 0
        self.full = 0
        self.total = 0.0
        self.long: List[Tuple[float, float]] = []  # (start monotonic, seconds) of those >= 20 ms

    def __call__(self, phase: str, info: Dict[str, Any]) -> None:
        now = time.monotonic()
        if phase == "start":
            self.started = now
            return
        took = now - self.started
        self.count += 1
        self.full += info.get("generation") == 2
        self.total += took
        if took >= 0.02 and len(self.long) < 200:
            self.long.append((self.started, took))


def serve(conn: Any, options: Dict[str, Any], scale: float, drops: Sequence[float]) -> None:
    """Child process: run the emulator, inject the drops, report its records at the end.

    Commands on ``conn``: ``("start", t0)`` (the client's ``time.monotonic()`` of
    simulated time 0; CLOCK_MONOTONIC is system-wide), ``("finish", chunks)``
    (answered with :func:`summarize`), then anything to stop.
    """
    from livesync.emulator import Emulator

    logging.getLogger("livesync.emulator").setLevel(logging.ERROR)
    pauses = GcPauses()
    gc.callbacks.append(pauses)
    with Emulator(**options) as emu:
        conn.send((emu.base_url, emu.api_key))
        _, t0 = conn.recv()
        stop = threading.Event()
        injected: List[Dict[str, Any]] = []
        threads = [
            threading.Thread(target=inject, args=(emu, t0, scale, drops, stop, injected),
                             name="bench-drops", daemon=True),
            threading.Thread(target=freeze, args=(stop,), name="bench-gc", daemon=True),
        ]
        for thread in threads:
            thread.start()
        _, chunks = conn.recv()
        stop.set()
        for thread in threads:
            thread.join(5)
        summary = summarize(emu, injected, chunks)
        summary["gc"] = {"count": pauses.count, "full": pauses.full, "total": pauses.total,
                         "long": pauses.long}
        conn.send(summary)
        conn.recv()


def freeze(stop: threading.Event) -> None:
    """Move the emulator's heap out of the collector's reach every second.

    The emulator keeps every client message (over a million objects in the full
    run); without this, a full collection stops it for a second or more, and a
    server that stalls while issuing a handle is a test of that stall, not of
    livesync's steady state (``--input-lag`` tests a lagging server on purpose).
    """
    while not stop.wait(1.0):
        gc.freeze()


def inject(emu: Any, t0: float, scale: float, drops: Sequence[float], stop: threading.Event,
           injected: List[Dict[str, Any]]) -> None:
    """Drop the newest open connection at each simulated time in ``drops``."""
    for at in drops:
        if stop.wait(max(0.0, t0 + at * scale - time.monotonic())):
            return
        sim = (time.monotonic() - t0) / scale
        live = [c for c in emu.connections if c.open and not c.stalled]
        target = max(live, key=lambda c: c.id) if live else None
        entry: Dict[str, Any] = {"at": sim, "conn": None, "generation": None, "error": None}
        try:
            if target is None:
                raise LookupError("no open connection")
            entry.update(conn=target.id, generation=target.generation,
                         age=(time.time() - target.opened_at) / scale)
            emu.drop(target.id)
        except LookupError as exc:
            entry["error"] = str(exc)
        injected.append(entry)


def seq_of(record: Any) -> Optional[int]:
    """The sequence number of an audio chunk's ClientMessageRecord, else None."""
    if record.kind != "realtimeInput" or not isinstance(record.payload, dict):
        return None
    data = (record.payload.get("audio") or {}).get("data")
    return unstamp(base64.b64decode(data[:24])) if data else None


def resumes(emu: Any) -> List[Dict[str, Any]]:
    """For every resumed connection: what its handle covered and where the new one began.

    ``covered``: the last chunk in the handle's snapshot; ``first``: the first
    chunk the new connection received (a replay or a new chunk). ``first -
    covered - 1`` chunks were skipped (lost) when positive, sent twice when
    negative. ``lagging``: chunks the issuing connection had received before it
    issued the handle but had not processed yet (so the snapshot lacks them).
    """
    clock = time.time() - time.monotonic()  # HandleRecord times are monotonic
    records = {c.id: c for c in emu.connections}
    handles = {h.handle: h for h in emu.handles}
    out: List[Dict[str, Any]] = []
    for conn in emu.connections:
        handle = handles.get(conn.resumed_from) if conn.resumed_from else None
        if handle is None:
            continue
        covered = next((s for s in map(seq_of, reversed(handle.messages)) if s is not None), -1)
        first = next((s for s in map(seq_of, conn.messages) if s is not None), None)
        issuer = records[handle.connection]
        issued = handle.issued_at + clock
        lagging = [m for m in issuer.messages
                   if m.index > handle.last_consumed_index and m.received_at <= issued]
        out.append({
            "conn": conn.id, "generation": conn.generation, "issuer": issuer.id,
            "covered": covered, "first": first,
            "issued": handle.issued_at, "lagging": len(lagging),
            "lag": max((issued - m.received_at for m in lagging), default=0.0),
        })
    return out


def summarize(emu: Any, injected: List[Dict[str, Any]], chunks: int) -> Dict[str, Any]:
    """What the emulator holds: connections, sessions, the chunks and notes in the state.

    Called after the client has sent its last chunk and waited ``SETTLE``, with
    its session still open and idle, so the records are at rest.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    resumed = resumes(emu)
    connections = [{
        "id": c.id, "generation": c.generation, "resumed": c.resumed,
        "closed_by": c.closed_by, "close_code": c.close_code,
        "seconds": ((c.closed_at or time.time()) - c.opened_at),
        "messages": len(c.messages),
    } for c in emu.connections]
    sessions = list(emu.sessions.values())
    seqs: List[int] = []
    notes: List[str] = []
    for session in sessions:
        for record in session.messages:
            seq = seq_of(record)
            if seq is not None:
                seqs.append(seq)
            elif record.kind == "clientContent":
                for turn in record.payload.get("turns") or []:
                    notes.extend(p.get("text", "") for p in turn.get("parts") or [])
    handles = sum(s.handles for s in sessions)
    live_handles = len(emu.handles)
    return {
        "connections": connections, "sessions": len(sessions), "handles": handles,
        "live_handles": live_handles, "injected": injected, "audio": check(seqs, chunks),
        "resumes": resumed,
        "notes": notes, "rss_mb": vm_rss_kb() / 1024.0,
        "cpu": usage.ru_utime + usage.ru_stime,
    }


def check(seqs: List[int], expected: int) -> Dict[str, Any]:
    """Compare the sequence numbers the server kept with 0..expected-1."""
    seen: Dict[int, int] = {}
    firsts: List[int] = []  # first occurrences, in the order the server kept them
    for seq in seqs:
        if seq not in seen:
            firsts.append(seq)
        seen[seq] = seen.get(seq, 0) + 1
    missing = [s for s in range(expected) if s not in seen]
    return {
        "kept": len(seqs), "distinct": len(seen),
        "missing": missing[:2000], "missing_count": len(missing),
        "duplicates": sum(n - 1 for n in seen.values()),
        "duplicated": sorted(s for s, n in seen.items() if n > 1)[:2000],
        "out_of_order": sum(1 for a, b in zip(firsts, firsts[1:]) if b < a),
        "extra": sorted(s for s in seen if not 0 <= s < expected)[:20],
    }


# -------------------------------------------------------------------- client


@dataclasses.dataclass
class Sample:
    sim: float
    real: float
    rss_kb: int
    threads: int
    os_threads: int
    cpu: float
    main_cpu: float
    audio: float
    messages: int
    replies: int
    stats: Any


class Counter:
    """The session's callbacks: count messages and replies, keep reconnects."""

    def __init__(self) -> None:
        self.messages = 0
        self.replies = 0
        self.reconnects: List[Tuple[float, Any]] = []
        self.handles: List[float] = []  # time.monotonic() when each resumable handle was seen
        self.closed: Any = None
        self.clock = lambda: 0.0

    def on_message(self, message: Any) -> None:
        self.messages += 1
        content = message.server_content
        if content is not None and content.turn_complete:
            self.replies += 1

    def on_resumption_update(self, update: Any) -> None:
        if update.resumable and update.new_handle:
            self.handles.append(time.monotonic())

    def on_reconnect(self, event: Any) -> None:
        self.reconnects.append((self.clock(), event))

    def on_close(self, event: Any) -> None:
        self.closed = event


def os_threads() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def run_client(base_url: str, api_key: str, plan: Plan, pipe: Any) -> Dict[str, Any]:
    import livesync

    logging.getLogger("livesync").setLevel(logging.ERROR)
    counter = Counter()
    # When each chunk was handed to send_audio (time.monotonic()), allocated up front
    # so that it does not count as growth.
    sent_at = array.array("d", bytes(8 * plan.chunks))
    client = livesync.Client(api_key=api_key, base_url=base_url)
    policy = livesync.ReconnectPolicy(replay_margin=plan.replay_margin)
    session = client.connect(MODEL, config=CONFIG, on_message=counter.on_message,
                             on_resumption_update=counter.on_resumption_update,
                             on_reconnect=counter.on_reconnect, on_close=counter.on_close,
                             reconnect=policy)
    t0 = time.monotonic()
    counter.clock = lambda: (time.monotonic() - t0) / plan.time_scale
    pipe.send(("start", t0))
    try:
        stream = stream_audio(session, plan, t0, sent_at, counter)
        time.sleep(SETTLE)
        stream["samples"].append(take_sample(session, plan, t0, stream["sent"], counter,
                                             plan.duration))
        final = session.stats()
        wall = time.monotonic() - t0
        # Read the server's records with the session still open: closing during a
        # rotation would resume (rewinding the server's state to the handle) and then
        # close before the audio after the handle is replayed.
        pipe.send(("finish", stream["sent"]))
        if not pipe.poll(120):
            raise RuntimeError("the emulator process did not report")
        emulator = pipe.recv()
    finally:
        session.close()
    return dict(stream, reconnects=counter.reconnects, final=final, closed=counter.closed,
                sent_at=sent_at, handles=counter.handles, wall=wall, t0=t0,
                messages=counter.messages, replies=counter.replies, emulator=emulator)


def take_sample(session: Any, plan: Plan, t0: float, sent: int, counter: Counter,
                sim: float) -> Sample:
    return Sample(sim, time.monotonic() - t0, vm_rss_kb(), threading.active_count(),
                  os_threads(), process_cpu(), time.thread_time(), sent * plan.chunk_s,
                  counter.messages, counter.replies, session.stats())


def stream_audio(session: Any, plan: Plan, t0: float, sent_at: "array.array[float]",
                 counter: Counter) -> Dict[str, Any]:
    """Send every chunk (and the notes) on schedule, sampling as it goes (main thread)."""
    audio = Audio(plan.chunk_s)
    notes = note_times(plan.duration)
    samples: List[Sample] = []
    sent, note, next_sample = 0, 0, 0.0
    late = (0.0, 0.0)  # the most audio due at once beyond one burst, and when (simulated s)
    slowest = (0.0, 0.0)  # the longest burst of sends (real s), and when
    next_tick = t0
    while sent < plan.chunks:
        start = time.monotonic()
        sim = (start - t0) / plan.time_scale
        due = min(plan.chunks, int(sim / plan.chunk_s) + 1)
        late = max(late, ((due - sent) * plan.chunk_s - TICK / plan.time_scale, sim))
        while sent < due:
            sent_at[sent] = time.monotonic()
            session.send_audio(audio.chunk(sent), RATE)
            sent += 1
            if note < len(notes) and sent * plan.chunk_s > notes[note]:
                session.send_text("note %d" % note)
                note += 1
        slowest = max(slowest, (time.monotonic() - start, sim))
        if sim >= next_sample:
            samples.append(take_sample(session, plan, t0, sent, counter, next_sample))
            next_sample += plan.sample_every
        next_tick += TICK
        delay = next_tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_tick = time.monotonic()
    return {"samples": samples, "sent": sent, "notes": note, "late": late, "slowest": slowest}


# -------------------------------------------------------------------- report


def window_cpu(samples: List[Sample], start: float, end: float) -> Optional[float]:
    """Client CPU ms per audio second between the samples at ``start`` and ``end``."""
    first = next((s for s in samples if s.sim >= start - 1e-6), None)
    last = next((s for s in reversed(samples) if s.sim <= end + 1e-6), None)
    if first is None or last is None or last.audio <= first.audio:
        return None
    return (last.cpu - first.cpu) / (last.audio - first.audio) * 1e3


def timeline(samples: List[Sample]) -> None:
    rows = []
    for prev, cur in zip([None] + samples[:-1], samples):
        st = cur.stats
        cpu = ""
        if prev is not None and cur.audio > prev.audio:
            cpu = "%.2f" % ((cur.cpu - prev.cpu) / (cur.audio - prev.audio) * 1e3)
        rows.append(["%.0f" % (cur.sim / 60), "%.1f" % cur.real, "%.2f" % (cur.rss_kb / 1024),
                     "%d / %d" % (cur.threads, cur.os_threads), cpu, st.connections,
                     "%d / %d" % (st.rotations_planned, st.rotations_unplanned), st.replayed,
                     st.dropped, st.unconfirmed,
                     "" if st.gap_max_ms is None else "%.0f" % st.gap_max_ms, cur.replies])
    table("timeline (sampled in the client process)", [
        "sim min", "real s", "RSS MB", "threads (py / OS)", "CPU ms per audio-s",
        "connections", "rotations planned / unplanned", "replayed", "dropped",
        "unconfirmed", "gap max ms", "replies"], rows)


def reconnect_table(reconnects: List[Tuple[float, Any]], resumed: List[Dict[str, Any]]) -> None:
    """One row per ``on_reconnect``, with what the emulator's records say about it."""
    server = {r["generation"]: r for r in resumed}
    rows = []
    for at, e in reconnects:
        r = server.get(e.generation)
        if r is None or r["first"] is None:
            seam = ["", "", "", ""]
        else:
            skipped = r["first"] - r["covered"] - 1
            seam = [r["covered"], r["first"],
                    "exact" if skipped == 0 else
                    ("%d LOST" % skipped if skipped > 0 else "%d twice" % -skipped),
                    "%d (%.1f ms)" % (r["lagging"], r["lag"] * 1e3) if r["lagging"] else "0"]
        rows.append(["%.1f" % (at / 60), e.generation, "planned" if e.planned else "unplanned",
                     e.cause, "yes" if e.resumed else "NO", e.attempts, "%.0f" % e.gap_ms,
                     e.replayed, e.dropped, e.unconfirmed] + seam)
    table("reconnects: livesync's on_reconnect, and the seam in the emulator's records", [
        "sim min", "connection", "kind", "cause", "resumed", "attempts", "gap ms", "replayed",
        "dropped", "unconfirmed", "handle covers chunks to", "new connection starts at",
        "seam", "received, not in handle (lag)"], rows)
    print("seam: chunks between the last one the resumed handle holds and the first one the"
          " new connection got (livesync's replay or new audio): 'exact' = nothing lost or"
          " doubled. The last column counts chunks the old connection had received but not"
          " yet processed when it issued that handle, and how long before the handle the"
          " oldest arrived.")


def drop_table(plan: Plan, injected: List[Dict[str, Any]]) -> None:
    rows = []
    for entry in injected:
        if entry["error"]:
            rows.append(["%.1f" % (entry["at"] / 60), "", "", "", "skipped: " + entry["error"]])
        else:
            rows.append(["%.1f" % (entry["at"] / 60), entry["conn"], entry["generation"],
                         "%.1f" % (entry["age"] / 60),
                         "dropped (after its goAway)"
                         if entry["age"] >= LIFETIME - NOTICE else "dropped"])
    table("drops injected by the emulator process (seed %d)" % plan.seed,
          ["sim min", "connection", "of session", "connection age (sim min)", "result"], rows)


def ranges(values: Sequence[int]) -> str:
    out: List[str] = []
    start = prev = None
    for v in list(values) + [None]:  # type: ignore[list-item]
        if v is not None and prev is not None and v == prev + 1:
            prev = v
            continue
        if start is not None:
            out.append(str(start) if start == prev else "%d-%d" % (start, prev))
        start = prev = v
    return ", ".join(out[:12]) + (" ..." if len(out) > 12 else "")


def report(plan: Plan, result: Dict[str, Any], emu: Dict[str, Any]) -> None:
    samples: List[Sample] = result["samples"]
    final = result["final"]
    timeline(samples)
    reconnect_table(result["reconnects"], emu["resumes"])
    drop_table(plan, emu["injected"])

    after = [s for s in samples if s.sim >= plan.warmup - 1e-6]
    base, end = after[0], samples[-1]
    growth = (end.rss_kb - base.rss_kb) / 1024.0
    peak = max(s.rss_kb for s in after) / 1024.0
    threads = [s.threads for s in samples]
    osthreads = [s.os_threads for s in samples]
    window = min(1800.0, plan.duration / 3)
    first = window_cpu(samples, 0.0, window)
    last = window_cpu(samples, plan.duration - window, plan.duration)
    audio_s = end.audio
    total_cpu = end.cpu - samples[0].cpu
    main_cpu = end.main_cpu - samples[0].main_cpu
    per = [(b.cpu - a.cpu) / (b.audio - a.audio) * 1e3
           for a, b in zip(samples, samples[1:]) if b.audio > a.audio]
    drops = [d for d in emu["injected"] if not d["error"]]
    reconnects = result["reconnects"]
    unplanned = [e for _, e in reconnects if not e.planned]
    planned = [e for _, e in reconnects if e.planned]
    check = emu["audio"]
    notes_kept = emu["notes"]
    notes_sent = ["note %d" % i for i in range(result["notes"])]

    late, late_at = result["late"]
    slowest, slowest_at = result["slowest"]
    print("simulated %.0f min in %.0f s real: time_scale %.4f (1 real s = %.0f simulated s);"
          " %d ms chunks of 16 kHz PCM, sent in bursts every %.0f ms real (%.0f chunks per"
          " burst)" % (plan.duration / 60, result["wall"], plan.time_scale, 1 / plan.time_scale,
                       plan.chunk_ms, TICK * 1000, TICK / plan.time_scale / plan.chunk_s))
    print("sender: longest burst of sends %.1f ms real (at simulated %.1f min); most audio"
          " behind schedule %.2f simulated s (%.0f ms real, at %.1f min)"
          % (slowest * 1e3, slowest_at / 60, max(0.0, late), max(0.0, late) * plan.time_scale
             * 1e3, late_at / 60))
    print("emulator: connection lifetime %.0f s, goAway %.0f s before (simulated), input_lag"
          " %g s real; drops at simulated minutes %s (seed %d); client"
          " ReconnectPolicy(replay_margin=%g)"
          % (LIFETIME, NOTICE, plan.input_lag, ", ".join("%.1f" % (d / 60) for d in plan.drops),
             plan.seed, plan.replay_margin))
    print()
    print("RSS growth, %.0f simulated min (after %.0f min of warm-up) to the end: %+.2f MB"
          " (target < 5 MB); %.1f MB at warm-up, %.1f MB peak, %.1f MB at the end"
          % ((end.sim - base.sim) / 60, plan.warmup / 60, growth, base.rss_kb / 1024, peak,
             end.rss_kb / 1024))
    print("threads: threading.active_count() min %d / max %d, OS threads min %d / max %d"
          " (target: constant)" % (min(threads), max(threads), min(osthreads), max(osthreads)))
    print("client CPU per audio second (getrusage, whole client process): %.2f ms overall,"
          " median of intervals %.2f ms; of which the sending thread %.2f ms"
          % (total_cpu / audio_s * 1e3, median(per), main_cpu / audio_s * 1e3))
    print("  first %.0f simulated min %.2f ms, last %.0f min %.2f ms: last / first %s"
          " (target ~1: no growth)"
          % (window / 60, first or 0, window / 60, last or 0,
             "%.2f×" % (last / first) if first and last else "n/a"))
    print("rotations: %d planned, %d unplanned (stats); connections %d; resumed %d, fresh %d;"
          " gap median %s ms, max %s ms" % (
              final.rotations_planned, final.rotations_unplanned, final.connections,
              final.resumed, final.fresh, fmt(final.gap_median_ms), fmt(final.gap_max_ms)))
    if planned:
        print("  planned gap median %.1f ms; unplanned gap median %s ms" % (
            median([e.gap_ms for e in planned]),
            "%.0f" % median([e.gap_ms for e in unplanned]) if unplanned else "n/a"))
    print("drops: %d planned, %d injected, %d skipped; unplanned reconnects seen %d"
          % (len(plan.drops), len(drops), len(plan.drops) - len(drops), len(unplanned)))
    print("replayed %d, dropped %d, unconfirmed %d; stalls %d, backpressure %d,"
          " callback errors %d, receive_dropped %d" % (
              final.replayed, final.dropped, final.unconfirmed, final.stalls,
              final.backpressure, final.callback_errors, final.receive_dropped))
    print("  largest replay %d chunks (%d bytes of PCM); max_buffered_media is 2,000,000"
          " bytes of JSON, about %d chunks" % (
              max((e.replayed for _, e in reconnects), default=0),
              max((e.replayed for _, e in reconnects), default=0) * plan.chunk_s * RATE * 2,
              2_000_000 // chunk_json_bytes(plan.chunk_s)))
    print("turns: %d audio turns and %d text notes sent, %d replies (turnComplete), %d server"
          " messages" % (int(plan.duration // CYCLE), result["notes"], result["replies"],
                         result["messages"]))
    print("server record (emulator's session state at the end): %d of %d chunks kept, %d"
          " missing, %d duplicated, %d out of order%s; notes %s" % (
              check["kept"], result["sent"], check["missing_count"], check["duplicates"],
              check["out_of_order"],
              ", %d unknown (e.g. %s)" % (len(check["extra"]), check["extra"][:3])
              if check["extra"] else "",
              "all once, in order" if notes_kept == notes_sent else
              "MISMATCH: %d kept of %d sent" % (len(notes_kept), len(notes_sent))))
    if check["missing_count"]:
        print("  missing chunks (simulated s): %s" % ranges(check["missing"]))
        explain(check["missing"], emu, result, plan.replay_margin)
    if check["duplicates"]:
        print("  duplicated chunks: %s; livesync reported %d replayed chunks as unconfirmed"
              " (sent too close before the newest handle to know whether the server had"
              " read them; replayed, so possibly twice). Time is scaled but the round trip"
              " is not: one burst (%.0f ms real) holds %.1f simulated seconds of audio"
              % (ranges(check["duplicated"]), final.unconfirmed, TICK * 1000,
                 TICK / plan.time_scale))
    conns = emu["connections"]
    ended = [c for c in conns if c["closed_by"] is not None]
    if ended:
        ways: Dict[str, int] = {}
        for c in ended:
            key = "%s %s" % (c["closed_by"], c["close_code"] or "")
            ways[key.strip()] = ways.get(key.strip(), 0) + 1
        print("connections (emulator's records): %d%s, lasting %.1f simulated min median (%.1f"
              " min to %.1f max); ended: %s" % (
                  len(conns), "" if len(conns) == final.connections else
                  " (livesync's stats(): %d)" % final.connections,
                  median([c["seconds"] for c in ended]) / plan.time_scale / 60,
                  min(c["seconds"] for c in ended) / plan.time_scale / 60,
                  max(c["seconds"] for c in ended) / plan.time_scale / 60,
                  ", ".join("%s × %d" % kv for kv in sorted(ways.items()))))
    pauses = emu["gc"]
    longest = max(pauses["long"], key=lambda p: p[1], default=None)
    print("emulator garbage collection: %d collections (%d full), %.1f s in all; longest pause"
          " %s" % (pauses["count"], pauses["full"], pauses["total"],
                   "n/a" if longest is None else "%.0f ms (at simulated %.1f min)" % (
                       longest[1] * 1e3, (longest[0] - result["t0"]) / plan.time_scale / 60)))
    print("emulator: %d connection(s), %d session(s), %d handles issued (%d still valid);"
          " its process: RSS %.0f MB, CPU %.1f s" % (
              len(emu["connections"]), emu["sessions"], emu["handles"], emu["live_handles"],
              emu["rss_mb"], emu["cpu"]))
    if result["closed"] is not None and result["closed"].error is not None:
        print("session ended with an error: %r" % result["closed"].error)


def explain(missing: List[int], emu: Dict[str, Any], result: Dict[str, Any],
            margin: float) -> None:
    """Say where the missing chunks went, from the seams in the emulator's records.

    Handle issue times (emulator) and send times (client) are both
    ``time.monotonic()``: CLOCK_MONOTONIC is one clock for every process.
    """
    events = {e.generation: e for _, e in result["reconnects"]}
    sent_at, seen = result["sent_at"], result["handles"]
    left = set(missing)
    for r in emu["resumes"]:
        if r["first"] is None or r["first"] - r["covered"] - 1 <= 0:
            continue
        lost = range(r["covered"] + 1, r["first"])
        left.difference_update(lost)
        e = events.get(r["generation"])
        told = "" if e is None else (
            " (on_reconnect: %s, replayed %d, dropped %d, unconfirmed %d)"
            % (e.cause, e.replayed, e.dropped, e.unconfirmed))
        print("  connection %d resumed with a handle issued on connection %d that holds chunks up"
              " to %d; livesync's replay began at %d%s: chunks %d-%d were never sent again."
              % (r["conn"], r["issuer"], r["covered"], r["first"], told, lost[0], lost[-1]))
        after = [(sent_at[q] - r["issued"]) * 1e3 for q in lost]
        arrival = next((t for t in seen if t >= r["issued"]), None)
        before = sum(1 for a in after if a < 0)
        print("    They were handed to send_audio %+.1f to %+.1f ms from the handle's issue (%d"
              " before it); on_resumption_update saw the handle %s after the issue."
              % (min(after), max(after), before,
                 "n/a" if arrival is None else "%.1f ms" % ((arrival - r["issued"]) * 1e3)))
        if before:
            print("    At the issue the server had read %d of those %d without processing"
                  " them yet and not read the other %d: it lagged its input by %.1f ms or"
                  " more." % (min(r["lagging"], before), before,
                              max(0, before - r["lagging"]), -min(after)))
            start = r["issued"] + min(after) / 1e3
            inside = [(max(a, start), min(a + d, r["issued"])) for a, d in emu["gc"]["long"]
                      if a < r["issued"] and a + d > start]
            if inside:
                print("    The emulator process spent %.0f ms of those %.0f ms in garbage"
                      " collection pauses of 20 ms or more (longest %.0f ms): its heap holds"
                      " every client message and handle snapshot." % (
                          sum(b - a for a, b in inside) * 1e3, -min(after),
                          max(b - a for a, b in inside) * 1e3))
        else:
            print("    None was sent before the issue, so the server cannot hold them: the"
                  " client saw the handle more than its margin after sending them.")
        print("    livesync (Gemini API, no acks) takes a handle to cover audio sent more than"
              " replay_margin (here %g s) + 2 x RTT before it saw the handle, so it did not"
              " replay them: a server lagging its input by more than that margin loses audio"
              " at a resume (documented in livesync.protocol), here at a %s. Counted nowhere:"
              " not in Reconnected/stats() dropped, nor unconfirmed." % (
                  margin, "reconnect" if e is None else
                  "planned rotation" if e.planned else "drop"))
    if left:
        print("  %d missing chunks are not at a seam: %s" % (len(left), ranges(sorted(left))))


def fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else "%.0f" % value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="36 simulated minutes at time_scale 1/40, 2 drops")
    parser.add_argument("--minutes", type=float, help="simulated minutes (default 120)")
    parser.add_argument("--time-scale", type=float,
                        help="real seconds per simulated second (default 1/30)")
    parser.add_argument("--chunk-ms", type=int, default=20, help="audio chunk (default 20 ms)")
    parser.add_argument("--drops", type=int, help="drops injected (default 5)")
    parser.add_argument("--seed", type=int, default=10, help="seed of the drop times")
    parser.add_argument("--input-lag", type=float, default=0.0,
                        help="the emulator's input_lag in real seconds (default 0): a server"
                             " that processes each message that long after it arrives")
    parser.add_argument("--replay-margin", type=float, default=0.0,
                        help="ReconnectPolicy.replay_margin in real seconds (default 0, as"
                             " livesync's default)")
    parser.add_argument("--sample-every", type=float,
                        help="simulated minutes between samples (default 5)")
    args = parser.parse_args()
    plan = build_plan(args)

    options = {"time_scale": plan.time_scale, "connection_lifetime": LIFETIME,
               "go_away_notice": NOTICE, "record_sent": False, "input_lag": plan.input_lag}
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(child, options, plan.time_scale, plan.drops),
                       daemon=True)
    proc.start()
    try:
        if not parent.poll(30):
            raise RuntimeError("the emulator process did not start")
        base_url, api_key = parent.recv()
        result = run_client(base_url, api_key, plan, parent)
        emu = result["emulator"]
    finally:
        parent.send("stop")
        proc.join(15)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
    report(plan, result, emu)


if __name__ == "__main__":
    main()
