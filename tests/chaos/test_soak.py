"""Seeded chaos soak: several threads share one livesync session while the
emulator injects goAways, drops, 1011 closes, stalls, refused upgrades, server
input lag and (in the second test) refused resumes. See docs/chaos.md.

What the test controls is seeded (``--chaos-seed``): the emulator options, the
fault schedule, and every thread's workload and pacing. Thread timing is not,
so every invariant below holds for any interleaving; a failure names its seed
and the command that replays it.

Invariants (names as printed in failure reports):

- ``exactly-once``: every text turn, realtime text and tool response the
  application sent is in the final server session (``SessionRecord.messages``)
  exactly once. Allowed to be missing: tool responses to calls the model
  cancelled (barge-in) or that livesync reported in
  ``Reconnected.dropped_tool_responses``. With refused resumes: messages sent
  before the last fresh start (``Reconnected.resumed is False``) at most once.
- ``activity-markers``: the activityStart/activityEnd markers (one thread sends
  them) are in the session in the order sent, none extra, none missing.
- ``per-thread-order``: each thread's messages are consumed in the order sent.
- ``audio-at-most-once``: audio duplicates <= ``stats().unconfirmed``.
- ``drop-accounting``: messages missing from the server == ``stats().dropped``
  (strict part; with refused resumes: missing <= dropped).
- ``server-delivery``: for each emulator connection, what ``on_message`` got from
  it is a prefix of ``ConnectionRecord.sent`` (re-issued tool calls may be
  hidden), connections in order.
- ``session-survives``, ``liveness``, ``fresh-only-when-refused``,
  ``on-close-once``, ``close-timeout``, ``threads-stopped``, ``send-errors``,
  ``callback-errors``, ``internal-errors``, ``quiescence``.
"""

from __future__ import annotations

import base64
import collections
import difflib
import functools
import json
import logging
import queue
import random
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import pytest

import livesync
from livesync import LiveServerMessage
from livesync.protocol import MIN_COVERAGE_MARGIN
from tests.chaos.conftest import ChaosSettings
from tests.utils import wait_for

MODEL = "gemini-live-2.5-flash-preview"

WEATHER = {
    "name": "get_current_weather",
    "description": "The weather in a place.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"]},
}

#: One config for the whole run: manual activity markers need automatic activity
#: detection off (then audio counts only inside an activity; outside one it is
#: still consumed and recorded, which is all the soak checks).
CONFIG: Dict[str, Any] = {
    "response_modalities": ["TEXT"],
    "realtime_input_config": {"automatic_activity_detection": {"disabled": True}},
    "input_audio_transcription": {},
    "context_window_compression": {"sliding_window": {}},
    "tools": [{"function_declarations": [WEATHER]}],
}

POLICY = livesync.ReconnectPolicy(
    initial_delay=0.01, max_delay=0.05, rotation_margin=0.05,
    storm_threshold=100_000,   # faults repeat the same close code on purpose
    reset_after=0.5, max_attempts=50, max_elapsed=60.0,
    # The emulator runs in this process: under load it reads a burst of replays tens
    # of ms behind, and a handle issued mid-burst would cover by time what it has not
    # read (the documented limit; "Raise it for a server that lags behind its input").
    replay_margin=0.1,
)
OPEN_TIMEOUT = 1.5      # also bounds a stalled setup (stall_next_setup)
CLOSE_TIMEOUT = 2.0
CLOSE_SLACK = 0.5       # close() must return within CLOSE_TIMEOUT + this
PING_INTERVAL = 0.1     # keepalive detects a stall after PING_INTERVAL + PING_TIMEOUT
PING_TIMEOUT = 0.3
RECOVERY_TIMEOUT = 20.0  # a fault must be followed by a reconnect within this
QUIESCE_TIMEOUT = 20.0

#: Faults and their weights; ``refuse_resume`` only in the refused-resumes test.
WEIGHTS = {
    "goaway": 18, "drop": 15, "close1011": 13, "stall": 10, "refuse_upgrade": 12,
    "drop_after_setup": 9, "lag_drop": 9, "stall_setup": 4,
}
FRESH_WEIGHTS = dict(WEIGHTS, refuse_resume=22)


@dataclass(frozen=True)
class Size:
    rounds: int
    faults: int   # per round (one session per round)


#: CI (short) and --chaos-long sizes of each test.
SIZES = {
    ("strict", False): Size(rounds=5, faults=36),
    ("fresh", False): Size(rounds=3, faults=30),
    ("strict", True): Size(rounds=8, faults=250),
    ("fresh", True): Size(rounds=5, faults=200),
}

KEY = re.compile(r"^([A-Za-z]\d+-\d+)\b")


# ---------------------------------------------------------------------------- records


@dataclass
class Sent:
    """One client message the application tried to send."""

    thread: str
    seq: int
    kind: str            # text | rtext | start | end | audio | tool
    key: str             # unique marker (start/end: app-side only, the wire has none)
    t_start: float       # time.time() before the send call
    t_end: float = 0.0
    ok: bool = False
    error: str = ""
    call_id: str = ""    # tool responses: the call answered
    call_at: float = 0.0  # tool responses: when the call was delivered


@dataclass
class Fault:
    index: int
    kind: str
    pause: float                          # seconds of traffic before injecting
    params: Dict[str, Any] = field(default_factory=dict)
    target: Optional[int] = None          # emulator connection id hit
    at: float = 0.0                       # time.time() of the injection
    recovered: Optional[float] = None     # seconds until the next on_reconnect
    skipped: str = ""

    @property
    def label(self) -> str:
        extra = ",".join("%s=%s" % (k, _short(v)) for k, v in sorted(self.params.items()))
        return self.kind + ("(%s)" % extra if extra else "")


def _short(value: Any) -> str:
    return "%.3g" % value if isinstance(value, float) else str(value)


class Findings:
    """Invariant violations, grouped by invariant, with examples."""

    LIMIT = 6

    def __init__(self) -> None:
        self.items: Dict[str, List[Tuple[str, str]]] = collections.OrderedDict()

    def add(self, invariant: str, where: str, message: str) -> None:
        self.items.setdefault(invariant, []).append((where, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def report(self) -> str:
        lines = []
        for invariant, entries in self.items.items():
            lines.append("[%s] %d violation(s)" % (invariant, len(entries)))
            shown: Dict[str, int] = collections.Counter()
            hidden = 0
            for where, message in entries:
                if shown[where] >= self.LIMIT:
                    hidden += 1
                    continue
                shown[where] += 1
                lines.append("  %s: %s" % (where, message))
            if hidden:
                lines.append("  ... and %d more" % hidden)
        return "\n".join(lines)


class LogCounter(logging.Handler):
    """Counts livesync's WARNING+ log records (kept off the console during the soak)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Dict[Tuple[str, str, str], int] = collections.Counter()
        self.errors: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[(record.name, record.levelname, str(record.msg))] += 1
        if record.levelno >= logging.ERROR and len(self.errors) < 20:
            try:
                self.errors.append("%s %s: %s%s" % (
                    record.name, record.levelname, record.getMessage(),
                    "\n" + "".join(traceback.format_exception(*record.exc_info))
                    if record.exc_info else ""))
            except Exception:  # pragma: no cover - never break the logger
                self.errors.append(str(record.msg))

    def top(self, n: int = 8) -> List[str]:
        return ["%5d× %s %s: %s" % (c, lvl, name, msg[:90])
                for (name, lvl, msg), c in sorted(self.counts.items(),
                                                  key=lambda kv: -kv[1])[:n]]


# ---------------------------------------------------------------------------- the app


class App:
    """The application: user threads, callbacks, and what they sent and saw."""

    def __init__(self, root: str, t0: float) -> None:
        self.root = root
        self.t0 = t0
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.session: Optional[livesync.Session] = None
        self.sent: Dict[str, List[Sent]] = collections.OrderedDict()
        self.by_key: Dict[str, Sent] = {}
        self.delivered: List[LiveServerMessage] = []
        self.reconnects: List[Tuple[float, Any]] = []
        self.closes: List[Any] = []
        self.errors: List[Any] = []
        self.calls: Dict[str, Tuple[Any, float]] = {}      # call id -> (call, time delivered)
        self.cancelled: Dict[str, float] = {}              # call id -> time cancelled
        self.harness_errors: List[str] = []
        self.send_errors: List[Sent] = []
        self.queue_full = 0
        self.stop = threading.Event()        # user threads stop
        self.tool_stop = threading.Event()   # deferred tool answers stop
        self.closed = threading.Event()      # on_close ran
        self.tool_queue: "queue.Queue[Tuple[Any, float]]" = queue.Queue()
        self.tool_rng = random.Random(root + ":tools")
        self.answers = 0
        # End-of-round sentinel: a turn whose reply is followed by a resumable handle.
        self.expected_reply = ""
        self.sentinel_answered = False
        self.durable = threading.Event()
        self.sentinel_retry = threading.Event()
        self._turn_text: List[str] = []

    # Sending.

    def send(self, thread: str, kind: str, key: str, action: Callable[[], None], *,
             call_id: str = "", call_at: float = 0.0) -> bool:
        with self.lock:
            items = self.sent.setdefault(thread, [])
        item = Sent(thread, len(items), kind, key, time.time(), call_id=call_id, call_at=call_at)
        try:
            action()
        except livesync.SessionClosed:
            item.error = "closed"
        except livesync.SendQueueFull:
            item.error = "queue full"
            with self.lock:
                self.queue_full += 1
        except Exception as exc:  # anything else is a finding (see _check_callbacks)
            item.error = repr(exc)
            with self.lock:
                self.send_errors.append(item)
        else:
            item.ok = True
        item.t_end = time.time()
        with self.lock:
            items.append(item)
            self.by_key[key] = item
        return item.ok

    def _pace(self, rng: random.Random, low: float, high: float) -> None:
        """Load generation: a seeded pause between user actions (not synchronisation)."""
        pause = rng.uniform(low, high)
        if rng.random() < 0.15:
            pause += rng.uniform(0.2, 0.8)   # let the model go idle now and then
        self.stop.wait(pause)

    @staticmethod
    def pcm(key: str, size: int) -> bytes:
        marker = key.encode("ascii") + b"|"
        data = marker + b"\x00" * max(0, size - len(marker))
        return data + (b"\x00" if len(data) % 2 else b"")

    def user(self, tid: int) -> None:
        """A user thread: text turns (barge-ins), weather questions, realtime text, audio."""
        session = self.session
        assert session is not None
        rng = random.Random("%s:user%d" % (self.root, tid))
        name = "t%d" % tid
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                r = rng.random()
                if r < 0.34:
                    key = "t%d-%d" % (tid, n)
                    text = "%s count to %d" % (key, rng.randint(3, 40))
                    ok = self.send(name, "text", key, functools.partial(session.send_text, text))
                elif r < 0.48:
                    key = "t%d-%d" % (tid, n)
                    text = "%s what is the weather in c%dx%d" % (key, tid, n)
                    ok = self.send(name, "text", key, functools.partial(session.send_text, text))
                elif r < 0.70:
                    key = "r%d-%d" % (tid, n)
                    ok = self.send(name, "rtext", key, functools.partial(
                        session.send_realtime_input, text=key + " hello"))
                else:
                    ok = True
                    for j in range(rng.randint(1, 4)):
                        key = "A%d-%d.%d" % (tid, n, j)
                        pcm = self.pcm(key, rng.choice((640, 1280, 3200)))
                        ok = self.send(name, "audio", key,
                                       functools.partial(session.send_audio, pcm))
                        if not ok:
                            break
                if not ok and self.closed.is_set():
                    return
                self._pace(rng, 0.01, 0.25)
        except Exception:
            self.harness_errors.append("user %d: %s" % (tid, traceback.format_exc()))

    def voice(self) -> None:
        """The only thread sending activity markers: start, audio (+ text), end."""
        session = self.session
        assert session is not None
        rng = random.Random("%s:voice" % self.root)
        n = 0
        try:
            while not self.stop.is_set() and not self.closed.is_set():
                n += 1
                self.send("v", "start", "S9-%d" % n,
                          lambda: session.send_realtime_input(activity_start={}))
                for j in range(rng.randint(1, 6)):
                    key = "A9-%d.%d" % (n, j)
                    pcm = self.pcm(key, rng.choice((640, 1280, 3200)))
                    self.send("v", "audio", key, functools.partial(session.send_audio, pcm))
                    self.stop.wait(rng.uniform(0.002, 0.02))
                if rng.random() < 0.3:
                    key = "r9-%d" % n
                    self.send("v", "rtext", key,
                              functools.partial(session.send_realtime_input, text=key + " inside"))
                self.send("v", "end", "E9-%d" % n,
                          lambda: session.send_realtime_input(activity_end={}))
                self._pace(rng, 0.05, 0.4)
        except Exception:
            self.harness_errors.append("voice: %s" % traceback.format_exc())

    def answer(self, call: Any, thread: str) -> None:
        session = self.session
        assert session is not None
        with self.lock:
            self.answers += 1
            key = "a%d" % self.answers
            seen = self.calls.get(call.id, (None, 0.0))[1]
        response = livesync.FunctionResponse(
            id=call.id, name=call.name, response={"forecast": "sunny", "answer": key})
        self.send(thread, "tool", key, lambda: session.send_tool_response([response]),
                  call_id=call.id or "", call_at=seen)

    def tool_worker(self) -> None:
        """Answers the calls on_message deferred, after a seeded delay (late answers)."""
        try:
            while True:
                try:
                    call, delay = self.tool_queue.get(timeout=0.05)
                except queue.Empty:
                    if self.tool_stop.is_set():
                        return
                    continue
                self.tool_stop.wait(delay)
                self.answer(call, "tool")
        except Exception:
            self.harness_errors.append("tool worker: %s" % traceback.format_exc())

    # Callbacks (dispatcher thread).

    def on_message(self, message: LiveServerMessage) -> None:
        try:
            now = time.time()
            with self.lock:
                self.delivered.append(message)
            self._track_sentinel(message)
            cancel = message.tool_call_cancellation
            if cancel is not None:
                with self.lock:
                    for call_id in cancel.ids or ():
                        self.cancelled.setdefault(call_id, now)
            call = message.tool_call
            if call is not None:
                for fc in call.function_calls or ():
                    with self.lock:
                        self.calls[fc.id or ""] = (fc, now)
                    immediate = self.tool_rng.random() < 0.5
                    delay = self.tool_rng.uniform(0.0, 0.3)
                    if immediate or self.tool_stop.is_set():
                        self.answer(fc, "dispatch")
                    else:
                        self.tool_queue.put((fc, delay))
        except Exception:
            self.harness_errors.append("on_message: %s" % traceback.format_exc())

    def _track_sentinel(self, message: LiveServerMessage) -> None:
        if message.setup_complete is not None:
            self._turn_text = []
            if self.sentinel_answered and not self.durable.is_set():
                self.sentinel_answered = False     # answered, but no handle after it
                self.sentinel_retry.set()
        content = message.server_content
        if content is not None:
            if message.text:
                self._turn_text.append(message.text)
            if content.turn_complete:
                if self.expected_reply and "".join(self._turn_text) == self.expected_reply:
                    self.sentinel_answered = True
                self._turn_text = []
        update = message.session_resumption_update
        if update is not None and update.resumable and update.new_handle and (
                self.sentinel_answered):
            self.durable.set()

    def on_reconnect(self, event: Any) -> None:
        with self.cond:
            self.reconnects.append((time.time(), event))
            self.cond.notify_all()

    def on_close(self, closed: Any) -> None:
        with self.cond:
            self.closes.append(closed)
            self.cond.notify_all()
        self.closed.set()

    def on_error(self, event: Any) -> None:
        with self.lock:
            self.errors.append(event)

    def wait_reconnect(self, count: int, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(
                lambda: len(self.reconnects) > count or self.closed.is_set(), timeout)

    def items(self) -> Iterator[Sent]:
        for items in self.sent.values():
            yield from items


# ---------------------------------------------------------------------------- a round


def _tokens(record: Any) -> Tuple[str, Optional[str]]:
    """(kind, key) of one client message in the emulator's record."""
    payload = record.payload if isinstance(record.payload, dict) else {}
    if record.kind == "clientContent":
        for turn in payload.get("turns") or ():
            for part in (turn or {}).get("parts") or ():
                match = KEY.match(str((part or {}).get("text", "")))
                if match:
                    return "text", match.group(1)
        return "other", "clientContent %s" % json.dumps(payload)[:60]
    if record.kind == "realtimeInput":
        if "text" in payload:
            match = KEY.match(str(payload["text"]))
            return ("rtext", match.group(1)) if match else ("other", str(payload)[:60])
        if "audio" in payload:
            data = base64.b64decode((payload["audio"] or {}).get("data", ""))
            marker, bar, _ = data.partition(b"|")
            return ("audio", marker.decode("ascii", "replace")) if bar else ("other", "audio")
        if "activityStart" in payload:
            return "start", None
        if "activityEnd" in payload:
            return "end", None
        return "other", "realtimeInput %s" % sorted(payload)
    if record.kind == "toolResponse":
        for response in payload.get("functionResponses") or ():
            answer = ((response or {}).get("response") or {}).get("answer")
            if answer:
                return "tool", str(answer)
        return "other", "toolResponse %s" % json.dumps(payload)[:60]
    return "other", record.kind


KIND_NAMES = {"text": "text turn", "rtext": "realtime text", "audio": "audio chunk",
              "tool": "tool response", "start": "activityStart", "end": "activityEnd"}


class Round:
    """One session under one fault schedule, then the invariant checks."""

    def __init__(self, make_emulator: Callable[..., Any], settings: ChaosSettings,
                 part: str, index: int, life: int, schedule: List[Fault],
                 findings: Findings, logger: logging.Logger) -> None:
        from livesync.emulator import Emulator

        self.part = part
        self.index = index
        self.where = "%s round %d" % (part, index) + (" life %d" % life if life else "")
        round_root = "%d:%s:%d" % (settings.seed, part, index)
        self.root = round_root + (":%d" % life if life else "")
        self.findings = findings
        self.logger = logger
        self.make_emulator = make_emulator
        rng = random.Random(round_root + ":setup")
        self.emulator_options = dict(
            time_scale=rng.choice((0.003, 0.005, 0.01)),   # connections of 1.8-6 s
            chunk_delay=rng.choice((0.0, 0.002, 0.005)),
            handle_ttl=10.0 ** 7,
        )
        self.max_buffered_media = rng.choice((20_000, 100_000, 2_000_000))
        self.can_lag = hasattr(Emulator, "set_input_lag")
        # (start, end) of each injected input lag: audio sent then relies on the
        # documented timing fallback, which a lagging server can defeat.
        self.lag_windows: List[Tuple[float, float]] = []
        self._audio_reads: Optional[Dict[str, List[Tuple[int, float, float]]]] = None
        self._issued: Dict[int, List[float]] = collections.defaultdict(list)
        self.can_drop_after_setup = hasattr(Emulator, "drop_after_setup")
        self.schedule = schedule
        self.consumed = 0
        self.t0 = 0.0
        self.emu: Any = None
        self.app: Any = None
        self.session: Any = None
        self.close_elapsed = 0.0
        self.summary = ""

    @staticmethod
    def make_schedule(settings: ChaosSettings, part: str, index: int, n: int) -> List[Fault]:
        """The seeded fault schedule of one round."""
        rng = random.Random("%d:%s:%d:faults" % (settings.seed, part, index))
        weights = FRESH_WEIGHTS if part == "fresh" else WEIGHTS
        kinds, w = zip(*sorted(weights.items()))
        faults = []
        for i in range(n):
            kind = rng.choices(kinds, w)[0]
            pause = rng.choice((0.0, rng.uniform(0.05, 0.2), rng.uniform(0.1, 0.5)))
            params: Dict[str, Any] = {}
            if kind == "goaway":
                params["time_left"] = rng.uniform(0.05, 0.4)
            elif kind == "refuse_upgrade":
                params["n"] = rng.randint(1, 3)
                params["then"] = rng.choice(("drop", "goaway"))
            elif kind == "refuse_resume":
                params["then"] = rng.choice(("drop", "goaway", "close1011"))
            elif kind == "lag_drop":
                params["lag"] = rng.uniform(0.01, 0.08)
                params["hold"] = rng.uniform(0.05, 0.3)
            if params.get("then") == "goaway":
                params["time_left"] = rng.uniform(0.05, 0.3)
            faults.append(Fault(i + 1, kind, pause, params))
        return faults

    # Running.

    def run(self) -> None:
        self.t0 = time.time()
        started = time.monotonic()
        self.emu = emu = self.make_emulator(**self.emulator_options)
        self.app = app = App(self.root, self.t0)
        client = livesync.Client(api_key=emu.api_key, base_url=emu.base_url)
        self.session = session = client.connect(
            MODEL, config=CONFIG, reconnect=POLICY,
            on_message=app.on_message, on_reconnect=app.on_reconnect,
            on_close=app.on_close, on_error=app.on_error,
            open_timeout=OPEN_TIMEOUT, close_timeout=CLOSE_TIMEOUT, write_timeout=2.0,
            ping_interval=PING_INTERVAL, ping_timeout=PING_TIMEOUT,
            max_buffered_media=self.max_buffered_media, logger=self.logger,
        )
        app.session = session
        try:
            self._drive()
        finally:
            session.close()   # idempotent; here for a harness error
            emu.stop()
        self.elapsed = time.monotonic() - started

    def _drive(self) -> None:
        app, session = self.app, self.session
        threads = [threading.Thread(target=app.user, args=(i,), name="chaos-user-%d" % i)
                   for i in (1, 2, 3)]
        threads.append(threading.Thread(target=app.voice, name="chaos-voice"))
        tools = threading.Thread(target=app.tool_worker, name="chaos-tools")
        for thread in threads + [tools]:
            thread.start()
        try:
            self._inject_all()
        finally:
            app.stop.set()
            for thread in threads:
                thread.join(10)
            app.tool_stop.set()
            tools.join(10)
            stuck = [t.name for t in threads + [tools] if t.is_alive()]
            if stuck:
                self.findings.add("liveness", self.where, "user threads stuck in a send: %s"
                                  % ", ".join(stuck))
        if not app.closed.is_set() and not self._quiesce():
            self.findings.add("quiescence", self.where,
                              "the end-of-round turn got no reply + resumable handle within "
                              "%.0f s; %s" % (QUIESCE_TIMEOUT, self._progress()))
        early = app.closes[0] if app.closes else None
        begin = time.monotonic()
        session.close()
        self.close_elapsed = time.monotonic() - begin
        self.stats = session.stats()
        if early is not None:
            self.findings.add("session-survives", self.where, "the session ended before close(): "
                              "code %s %r, error %r (%s)%s" % (
                                  early.code, early.reason, early.error, self._last_fault(),
                                  self._explain_close(early.code)))
        def alive() -> List[str]:
            return [t.name for t in threading.enumerate()
                    if t.name.startswith("livesync-") and session.id in t.name]

        if not wait_for(lambda: not alive(), 5.0):
            self.findings.add("threads-stopped", self.where, "left running: %s" % alive())

    def _progress(self) -> str:
        """Is livesync still sending? (Diagnostics for a session that stopped making progress.)"""
        reached = {_tokens(m)[1] for r in self.emu.connections for m in r.messages
                   if m.kind != "setup"}
        waiting = [i for i in self.app.items() if i.ok and i.kind not in ("start", "end")
                   and i.key not in reached]
        last = max((m.received_at for r in self.emu.connections for m in r.messages
                    if m.kind != "setup"), default=self.t0)
        stats = self.session.stats()
        oldest = min(waiting, key=lambda i: i.t_start) if waiting else None
        return ("session state %s, %d reconnects; %d messages the app sent never reached the "
                "server%s; the last client message reached it at +%.2fs (now +%.2fs)" % (
                    self.session.state, len(self.app.reconnects), len(waiting),
                    " (oldest: %s %s sent at +%.2fs)" % (
                        KIND_NAMES[oldest.kind], oldest.key, oldest.t_start - self.t0)
                    if oldest else "", last - self.t0, time.time() - self.t0)
                + ("; stats: messages_out %d" % stats.messages_out) + self._last_connections())

    def _last_connections(self) -> str:
        """What the last connections carried, and what livesync still holds (diagnostics
        for a session that stopped making progress; peeks at private state)."""
        t0, parts = self.t0, []
        for record in self.emu.connections[-4:]:
            client = [next(iter(m.payload), "?") if m.kind == "realtimeInput" and isinstance(
                m.payload, dict) else m.kind for m in record.messages[1:]]
            server = [k for s in record.sent for k in s if k != "usageMetadata"]
            parts.append("\n    conn %d (+%.2fs..%s, closed by %s, %s): client %d %s; server "
                         "%d %s" % (
                             record.id, record.opened_at - t0,
                             "+%.2fs" % (record.closed_at - t0) if record.closed_at else "open",
                             record.closed_by, "resumed" if record.resumed else "fresh",
                             len(client), client[-8:], len(server), server[-8:]))
        protocol = getattr(getattr(self.session, "_driver", None), "_protocol", None)
        if protocol is not None:
            queue = list(getattr(protocol, "_queue", ()))
            parts.append("\n    livesync: %d queued %s; pending turn %s, owed %s, idle %s" % (
                len(queue), [e.kind for e in queue[:6]],
                getattr(getattr(protocol, "_pending", None), "kind", None),
                getattr(getattr(protocol, "_owed", None), "kind", None), protocol.idle))
        return "".join(parts)

    def _explain_close(self, code: Optional[int]) -> str:
        """What the server closed on: the last client message of the connection it closed."""
        closed = [r for r in self.emu.connections if r.closed_by == "server"
                  and r.close_code == code and r.messages]
        if code is None or not closed:
            return ""
        record = closed[-1]
        last = record.messages[-1]
        if last.kind == "setup":
            self._index()
            before = [r for r in self.emu.connections if r.id < record.id and r.sent
                      and "setupComplete" in r.sent[0]]
            return ("; the server refused the resume on conn %d and livesync ended the session "
                    "instead of starting fresh; previous connection: %s" % (
                        record.id, self._conn_end(before[-1].id) if before else "none"))
        kind, key = _tokens(last)
        text = "; the server closed conn %d (gen %d%s) after %s %s" % (
            record.id, record.generation, ", resumed" if record.resumed else "",
            KIND_NAMES.get(kind, kind), key or "")
        if kind == "tool" and key in self.app.by_key:
            item = self.app.by_key[key]
            ids = [r.get("id") for r in last.payload.get("functionResponses") or ()]
            issued = [r.id for r in self.emu.connections
                      if any(c.get("id") in ids for m in r.sent
                             for c in (m.get("toolCall") or {}).get("functionCalls") or ())]
            text += " answering %s (app answered %s at +%.2fs from %s; the call was issued " \
                    "on conn %s%s%s)" % (
                        ids, item.call_id, item.t_start - self.t0, item.thread,
                        issued or "none",
                        "; cancelled at +%.2fs" % (self.app.cancelled[item.call_id] - self.t0)
                        if item.call_id in self.app.cancelled else "",
                        "; this connection never issued it" if record.id not in issued else "")
        return text

    def _last_fault(self) -> str:
        done = [f for f in self.schedule if f.at]
        if not done:
            return "before any fault"
        last = done[-1]
        return "after fault #%d %s at +%.2f s" % (last.index, last.label, last.at - self.t0)

    def _current(self) -> Optional[int]:
        """The emulator connection serving the session now (set up, open, not stalled)."""
        for record in reversed(self.emu.connections):
            sent = record.sent
            if record.open and not record.stalled and sent and "setupComplete" in sent[0]:
                return int(record.id)
        return None

    def _inject_all(self) -> None:
        app, emu, session = self.app, self.emu, self.session
        for fault in self.schedule:
            if app.closed.is_set():
                return   # the next life takes the rest of the schedule
            ready = wait_for(lambda: app.closed.is_set() or (
                session.state == "open" and self._current() is not None), RECOVERY_TIMEOUT)
            if app.closed.is_set():
                return
            self.consumed += 1
            if not ready:
                self.findings.add("liveness", self.where, "session not open %.0f s after "
                                  "fault #%d" % (RECOVERY_TIMEOUT, fault.index - 1))
                return
            threading.Event().wait(fault.pause)   # traffic flows between faults
            before = len(app.reconnects)
            try:
                self._inject(fault)
            except LookupError:
                fault.skipped = "connection gone"
                continue
            if fault.target is None:
                fault.skipped = fault.skipped or "no connection"
                continue
            fault.at = fault.at or time.time()
            recovered = app.wait_reconnect(before, RECOVERY_TIMEOUT)
            if "lag" in fault.params and self.can_lag:
                emu.set_input_lag(0.0)
            if recovered and not app.closed.is_set():
                fault.recovered = time.time() - fault.at
            elif not recovered:
                self.findings.add("liveness", self.where, "no reconnect within %.0f s after "
                                  "fault #%d %s" % (RECOVERY_TIMEOUT, fault.index, fault.label))
                return

    def _inject(self, fault: Fault) -> None:
        emu = self.emu
        target = self._current()
        if target is None:
            return
        kind, params = fault.kind, fault.params
        if kind == "lag_drop":
            if not self.can_lag:
                kind = "drop"
            else:
                emu.set_input_lag(params["lag"])
                lag_from = time.time()
                threading.Event().wait(params["hold"])   # messages queue up behind the lag
                self.lag_windows.append((lag_from, time.time()))
                target = self._current()
                if target is None:
                    emu.set_input_lag(0.0)
                    return
                kind = "drop"
        if kind == "refuse_upgrade":
            emu.refuse_upgrades(params["n"], 503)
            kind = params["then"]
        elif kind == "refuse_resume":
            emu.refuse_next_resume()
            kind = params["then"]
        elif kind == "stall_setup":
            emu.stall_next_setup()
            kind = "drop"
        elif kind == "drop_after_setup":
            if self.can_drop_after_setup:
                emu.drop_after_setup(1)
                kind = "drop"
            else:
                fault.at = time.time()
                fault.target = target
                emu.drop(target)
                found = emu.wait_for(lambda: next((
                    r.id for r in emu.connections if r.id > target and r.sent
                    and "setupComplete" in r.sent[0]), None), timeout=RECOVERY_TIMEOUT)
                try:
                    emu.drop(found)
                except LookupError:
                    pass
                return
        fault.at = time.time()
        fault.target = target
        if kind == "goaway":
            emu.send_go_away(params.get("time_left", 0.2), conn=target)
        elif kind == "drop":
            emu.drop(target)
        elif kind == "close1011":
            emu.close(1011, "Internal error encountered.", conn=target)
        elif kind == "stall":
            emu.stall(target)
        else:  # pragma: no cover - schedule and injector out of sync
            raise AssertionError("unknown fault %s" % kind)

    def _quiesce(self) -> bool:
        """Send a last turn and wait for its reply and a resumable handle after it, so the
        server state is durable: every message sent before it was consumed."""
        app, session = self.app, self.session
        deadline = time.monotonic() + QUIESCE_TIMEOUT
        k = 0
        while time.monotonic() < deadline and not app.closed.is_set():
            k += 1
            key = "e%d-%d" % (self.index, k)
            text = key + " finish"
            app.sentinel_retry.clear()
            app.durable.clear()
            app.sentinel_answered = False
            app.expected_reply = "You said: " + text
            if not app.send("main", "text", key, functools.partial(session.send_text, text)):
                return False
            wait_for(lambda: app.durable.is_set() or app.sentinel_retry.is_set()
                     or app.closed.is_set(), max(0.0, deadline - time.monotonic()))
            if app.durable.is_set():
                return True
        return False

    # Checking.

    def check(self) -> None:
        emu = self.emu
        self._index()
        self.sessions = sorted(emu.sessions.values(), key=lambda s: min(s.connections or [0]))
        self._check_close()
        self._check_callbacks()
        self._check_delivery()
        if self.part == "strict":
            self._check_strict()
        else:
            self._check_fresh()
        self._summarise()

    def _index(self) -> None:
        """Index the emulator's connections and the faults that hit them."""
        self.conns = {int(r.id): r for r in self.emu.connections}
        self.fault_by_conn = {f.target: f for f in self.schedule if f.target is not None}

    def _where(self, record: Any) -> str:
        return "conn %d #%d @+%.2fs" % (record.connection, record.index,
                                        record.received_at - self.t0)

    def _conn_end(self, cid: Optional[int]) -> str:
        if cid is None:
            return "no connection"
        record = self.conns.get(cid)
        fault = self.fault_by_conn.get(cid)
        if record is None:
            return "conn %s (unknown)" % cid
        head = "conn %d (gen %d%s)" % (cid, record.generation,
                                       ", resumed" if record.resumed else "")
        if fault is not None:
            return "%s ended by fault #%d %s" % (head, fault.index, fault.label)
        go_away = any("goAway" in m for m in record.sent)
        if record.stalled:
            how = "stalled"
        elif record.closed_by == "server":
            how = "server close %s %r" % (record.close_code, (record.close_reason or "")[:40])
        elif record.closed_by == "client":
            how = "client close %s" % record.client_close_code
        else:
            how = str(record.closed_by)
        return "%s ended: %s%s" % (head, how, " after a natural goAway" if go_away else "")

    def _cause(self, cid: Optional[int]) -> str:
        """A short cause label for aggregation (the fault kind or 'natural')."""
        fault = self.fault_by_conn.get(cid) if cid is not None else None
        if fault is not None:
            return fault.kind
        record = self.conns.get(cid) if cid is not None else None
        if record is not None and any("goAway" in m for m in record.sent):
            return "natural goAway"
        return "no fault"

    def _conn_at(self, when: float) -> Optional[int]:
        best = None
        for cid, record in self.conns.items():
            sent = record.sent
            if not sent or "setupComplete" not in sent[0]:
                continue
            if record.opened_at <= when and (record.closed_at is None or when < record.closed_at):
                best = cid if best is None else max(best, cid)
        return best

    def _occurrences(self, session: Any) -> Tuple[Dict[str, List[Any]], List[Tuple[str, Any]]]:
        occ: Dict[str, List[Any]] = collections.defaultdict(list)
        seq: List[Tuple[str, Any]] = []  # (token kind or key, record) in consumption order
        for record in session.messages:
            kind, key = _tokens(record)
            if kind == "other" or (key is not None and key not in self.app.by_key):
                self.findings.add("no-foreign-messages", self.where,
                                  "the server consumed a message the app never sent: %s %s (%s)"
                                  % (kind, key, self._where(record)))
                continue
            if key is None:
                seq.append((kind, record))
            else:
                occ[key].append(record)
                seq.append((key, record))
        return occ, seq

    def _call_story(self, item: Sent) -> str:
        """Everything known about the call a tool response answered (for reports)."""
        app, t0 = self.app, self.t0
        call_id = item.call_id
        call = app.calls.get(call_id, (None, 0.0))[0]
        signature = _signature(call) if call is not None else None
        issued, reissued = [], []
        cancelled = {i: record.id for record in self.emu.connections for message in record.sent
                     for i in (message.get("toolCallCancellation") or {}).get("ids") or ()}
        for record in self.emu.connections:
            for message in record.sent:
                for fc in (message.get("toolCall") or {}).get("functionCalls") or ():
                    if fc.get("id") == call_id:
                        issued.append(record.id)
                    elif signature is not None and _signature(fc) == signature:
                        reissued.append("%s on conn %d%s" % (
                            fc.get("id"), record.id, " (cancelled on conn %d)" % cancelled[
                                fc["id"]] if fc.get("id") in cancelled else ""))
        consumed = [r.id for r in self.emu.connections for m in r.messages
                    if m.kind == "toolResponse" and _tokens(m) == ("tool", item.key)]
        ids = {call_id, *self._reissues(call_id)}
        reported = [n for n, (_, ev) in enumerate(app.reconnects, 1)
                    if ids & set(ev.dropped_tool_responses or ())]
        parts = ["call %s issued on conn %s" % (call_id, issued or "?")]
        if call_id in cancelled:
            parts.append("cancelled by the server on conn %d" % cancelled[call_id])
        if call_id in app.cancelled:
            parts.append("cancellation delivered to the app at +%.2fs"
                         % (app.cancelled[call_id] - t0))
        if reissued:
            parts.append("re-issued as %s" % ", ".join(reissued[:3]))
        parts.append("answered at +%.2fs by %s%s" % (item.t_start - t0, item.thread,
                                                    " (raised)" if not item.ok else ""))
        parts.append("response consumed on conn %s" % consumed if consumed
                     else "response never reached the server")
        parts.append("reported in reconnect #%s" % reported if reported
                     else "in no Reconnected.dropped_tool_responses")
        return "; ".join(parts)

    def _audio_story(self, item: Sent) -> str:
        """Where a missing audio chunk went (for reports)."""
        t0 = self.t0
        parts = ["sent at +%.3fs" % (item.t_start - t0)]
        for record in self.emu.connections:
            for m in record.messages:
                if m.kind == "realtimeInput" and _tokens(m) == ("audio", item.key):
                    parts.append("read on conn %d at +%.3fs (%s), conn closed by %s at %s" % (
                        record.id, m.received_at - t0,
                        "processed at +%.3fs" % (m.processed_at - t0) if m.processed_at
                        else "never processed", record.closed_by,
                        "+%.3fs" % (record.closed_at - t0) if record.closed_at else "-"))
                    parts.append("its index %d of %d read there; the server sent %s" % (
                        m.index, len(record.messages),
                        [next(iter(s), "?") for s in record.sent][:12]))
                    parts.append(self._handles_story(record.id, t0))
        if len(parts) == 1:
            parts.append("read on no connection")
        handles = [(r.id, m) for r in self.emu.connections for m in r.sent
                   if (m.get("sessionResumptionUpdate") or {}).get("newHandle")]
        parts.append("%d handles issued" % len(handles))
        near = [(a - t0, b - t0) for a, b in self.lag_windows if a - 1 <= item.t_start <= b + 1]
        if near:
            parts.append("lag windows nearby %s" % ["+%.3f..+%.3f" % w for w in near])
        return "; ".join(parts)

    def _server_lagged(self, item: Sent) -> bool:
        """Whether a missing audio chunk is the documented limit of coverage by time: the
        server lagged behind it by more than livesync's margin. Either it was sent while
        an injected ``input_lag`` held the server back, or (the emulator shares this
        process and its 2 cores) the emulator read it from the socket at least the margin
        before issuing a handle on that connection and processed it only after."""
        if any(a <= item.t_start <= b for a, b in self.lag_windows):
            return True
        if self._audio_reads is None:  # audio key -> [(connection, received, processed)]
            self._audio_reads = collections.defaultdict(list)
            for record in self.emu.connections:
                for m in record.messages:
                    kind, key = _tokens(m)
                    if kind == "audio":
                        self._audio_reads[key].append((record.id, m.received_at, m.processed_at))
            to_wall = time.time() - time.monotonic()
            for h in self.emu.handles:
                self._issued[h.connection].append(h.issued_at + to_wall)
        floor = POLICY.replay_margin + MIN_COVERAGE_MARGIN
        return any(received + floor <= at < processed
                   for conn, received, processed in self._audio_reads.get(item.key, ())
                   for at in self._issued.get(conn, ()))

    def _handles_story(self, conn: int, t0: float) -> str:
        """The handles issued on connection ``conn`` and the resumes that used them."""
        to_wall = time.time() - time.monotonic()
        issued = {h.handle: h for h in self.emu.handles if h.connection == conn}
        used = {r.resumed_from: r.id for r in self.emu.connections if r.resumed_from}
        return "handles issued there: %s" % (", ".join(
            "after index %d at +%.3fs%s" % (
                h.last_consumed_index, h.issued_at + to_wall - t0,
                " (resumed by conn %d)" % used[key] if key in used else "")
            for key, h in issued.items()) or "none")

    def _reissues(self, call_id: str) -> List[str]:
        """Ids under which the server issued the call ``call_id`` again after a resume."""
        call = self.app.calls.get(call_id, (None, 0.0))[0]
        if call is None:
            return []
        signature = _signature(call)
        return [fc.get("id") for record in self.emu.connections for message in record.sent
                for fc in (message.get("toolCall") or {}).get("functionCalls") or ()
                if fc.get("id") != call_id and _signature(fc) == signature]

    def _tool_excused(self, item: Sent) -> bool:
        """A missing tool response is by design when its call was cancelled (as the app saw
        it, or a re-issue of it after a resume, which livesync hides) or livesync reported
        it dropped. It must still be counted in stats().dropped (drop-accounting)."""
        ids = {item.call_id, *self._reissues(item.call_id)}
        reported = {i for _, ev in self.app.reconnects for i in ev.dropped_tool_responses or ()}
        cancelled = {i for record in self.emu.connections for message in record.sent
                     for i in (message.get("toolCallCancellation") or {}).get("ids") or ()}
        return item.call_id in self.app.cancelled or bool(ids & (reported | cancelled))

    def _exactly_once(self, items: Sequence[Sent], occ: Dict[str, List[Any]],
                      strict: bool) -> Tuple[List[Sent], List[Sent], int]:
        """Exactly-once (strict) or at-most-once checks; returns (lost audio, excused
        tool responses, audio duplicates)."""
        lost_audio: List[Sent] = []
        excused: List[Sent] = []
        audio_dups = 0
        lost: Dict[str, List[Sent]] = collections.defaultdict(list)
        for item in items:
            found = occ.get(item.key, [])
            if item.kind == "audio":
                audio_dups += max(0, len(found) - 1)
                if not found:
                    lost_audio.append(item)
                continue
            if len(found) > 1:
                prev = found[0].connection
                self.findings.add(
                    "exactly-once", self.where,
                    "%s %s (%s) consumed %d times: %s; first copy's connection: %s" % (
                        KIND_NAMES[item.kind], item.key, item.thread, len(found),
                        ", ".join(self._where(r) for r in found), self._conn_end(prev)))
                self._tally("duplicated", item.kind, self._cause(prev))
            elif not found and strict:
                if item.kind == "tool" and self._tool_excused(item):
                    excused.append(item)
                    continue
                lost[item.kind].append(item)
        for kind, items_lost in lost.items():
            for item in items_lost:
                cid = self._conn_at(item.t_start)
                seen = [r for r in self.emu.connections for m in r.messages
                        if m.kind != "setup" and _tokens(m)[1] == item.key]
                ids = sorted({r.id for r in seen})
                where = ("consumed on %s, then rewound by a resume and not replayed" % (
                    "conn %d" % ids[0] if len(ids) == 1 else "%d connections (conn %d..%d)" % (
                        len(ids), ids[0], ids[-1])) if seen else "never reached the server")
                story = "; " + self._call_story(item) if kind == "tool" else ""
                self.findings.add(
                    "exactly-once", self.where,
                    "%s %s (%s, sent at +%.2fs) is not in the server session: %s; connection "
                    "at send time: %s%s" % (KIND_NAMES[kind], item.key, item.thread,
                                            item.t_start - self.t0, where,
                                            self._conn_end(cid), story))
                self._tally("lost", kind, self._cause(cid))
        self.lost_count = sum(len(v) for v in lost.values())
        return lost_audio, excused, audio_dups

    def _tally(self, what: str, kind: str, cause: str) -> None:
        self.tallies[(what, KIND_NAMES[kind], cause)] += 1

    def _check_markers(self, seq: List[Tuple[str, Any]], expected: List[str],
                       prefix_free: bool) -> None:
        """activityStart/activityEnd of the voice thread: the consumed sequence of its
        non-audio messages equals what it sent (or, with ``prefix_free``, ends with
        ``expected`` and is otherwise a subsequence of what it sent)."""
        voice = [(tok, rec) for tok, rec in seq if tok in ("start", "end") or (
            tok in self.app.by_key and self.app.by_key[tok].thread == "v"
            and self.app.by_key[tok].kind != "audio")]
        got = [tok for tok, _ in voice]
        sent = [self._token(i) for i in self.app.sent.get("v", []) if i.ok and i.kind != "audio"]
        if not prefix_free:
            if got == sent:
                return
            matcher = difflib.SequenceMatcher(a=sent, b=got, autojunk=False)
            for op, a1, a2, b1, b2 in matcher.get_opcodes():
                if op == "equal":
                    continue
                extra = [t for t in got[b1:b2] if t in ("start", "end")]
                missing = [t for t in sent[a1:a2] if t in ("start", "end")]
                if not extra and not missing:
                    continue
                after = got[b1 - 1] if b1 else "(beginning)"
                rec = voice[b1][1] if b1 < len(voice) else None
                cid = rec.connection if rec is not None else None
                prev = self._previous_conn(cid)
                self.findings.add(
                    "activity-markers", self.where,
                    "%s%s after %s in the session (%s); previous connection: %s; voice thread "
                    "sent ...%s..., the session has ...%s..." % (
                        "extra %s" % _markers(extra) if extra else "",
                        "%smissing %s" % ("; " if extra else "", _markers(missing))
                        if missing else "",
                        after, self._where(rec) if rec is not None else "end",
                        self._conn_end(prev), " ".join(_short_token(t) for t in sent[
                            max(0, a1 - 4):a2 + 4]),
                        " ".join(_short_token(t) for t in got[max(0, b1 - 4):b2 + 4])))
                for t in extra:
                    self._tally("duplicated", t, self._cause(prev))
                for t in missing:
                    self._tally("lost", t, self._cause(prev))
            return
        post = [self._token(i) for i in self.app.sent.get("v", [])
                if i.ok and i.kind != "audio" and i.t_start > self.t_fresh]
        pre = sent[:len(sent) - len(post)]
        if got[len(got) - len(post):] != post if post else False:
            self.findings.add("activity-markers", self.where,
                              "the voice thread's messages sent after the last fresh start "
                              "are not exactly the end of the final session's (sent %s..., "
                              "session ends %s)" % (post[:6], got[-len(post):][:6]))
        elif not _is_subsequence(got[:len(got) - len(post)], pre):
            self.findings.add("activity-markers", self.where,
                              "the voice thread's earlier messages in the final session are "
                              "not a subsequence of what it sent (extra or reordered markers)")

    def _previous_conn(self, cid: Optional[int]) -> Optional[int]:
        if cid is None:
            return None
        record = self.conns.get(cid)
        if record is None:
            return None
        session = self.emu.sessions.get(record.session_id)
        if session is None or cid not in session.connections:
            return None
        i = session.connections.index(cid)
        return session.connections[i - 1] if i else None

    @staticmethod
    def _token(item: Sent) -> str:
        return item.kind if item.kind in ("start", "end") else item.key

    def _check_order(self, seq: List[Tuple[str, Any]], label: str) -> None:
        first: Dict[str, int] = {}
        for pos, (tok, _) in enumerate(seq):
            if tok not in ("start", "end"):
                first.setdefault(tok, pos)
        for items in self.app.sent.values():
            # Tool responses are not ordered with the rest: one waits while its call is
            # re-asked after a resume, and none waits behind paced user turns.
            present = [(first[i.key], i) for i in items
                       if i.ok and i.key in first and i.kind != "tool"]
            present.sort(key=lambda p: p[0])
            worst = 0
            for (_, a), (pos_b, b) in zip(present, present[1:]):
                if b.seq < a.seq:
                    worst += 1
                    if worst <= 3:
                        rec = seq[pos_b][1]
                        self.findings.add(
                            "per-thread-order", self.where,
                            "%s: %s %s consumed after %s %s although sent before it (%s; %s)"
                            % (label, KIND_NAMES[b.kind], b.key, KIND_NAMES[a.kind], a.key,
                               self._where(rec), self._conn_end(self._previous_conn(
                                   rec.connection))))

    def _check_strict(self) -> None:
        app = self.app
        self.tallies: Dict[Tuple[str, str, str], int] = collections.Counter()
        fresh = [ev for _, ev in app.reconnects if not ev.resumed]
        if fresh or len(self.sessions) != 1:
            self.findings.add("fresh-only-when-refused", self.where,
                              "no resume was refused, yet %d fresh start(s) and %d server "
                              "sessions" % (len(fresh), len(self.sessions)))
        final = self._final_session()
        if final is None:
            return
        occ, seq = self._occurrences(final)
        died = bool(app.closes) and app.closes[0].error is not None
        items = [i for i in app.items() if i.ok and i.kind not in ("start", "end")]
        lost_audio, excused, dups = self._exactly_once(items, occ, strict=not died)
        if not died:
            self._check_markers(seq, [], prefix_free=False)
        self._check_order(seq, "final session")
        self._check_audio(dups, lost_audio, excused, exact=not died)

    def _check_fresh(self) -> None:
        app = self.app
        self.tallies = collections.Counter()
        fresh_times = [t for t, ev in app.reconnects if not ev.resumed]
        refusals = sum(1 for f in self.schedule if f.kind == "refuse_resume" and f.at)
        if len(fresh_times) > refusals or len(self.sessions) != len(fresh_times) + 1:
            self.findings.add("fresh-only-when-refused", self.where,
                              "%d resume(s) refused, %d fresh start(s) reported, %d server "
                              "sessions" % (refusals, len(fresh_times), len(self.sessions)))
        self.t_fresh = fresh_times[-1] if fresh_times else float("-inf")
        final = self._final_session()
        if final is None:
            return
        died = bool(app.closes) and app.closes[0].error is not None
        all_occ: Dict[str, int] = collections.Counter()
        dups = 0
        for session in self.sessions:
            occ, seq = self._occurrences(session)
            label = "server session %d/%d" % (self.sessions.index(session) + 1,
                                              len(self.sessions))
            for key, records in occ.items():
                all_occ[key] += len(records)
            if session is not final:
                # at most once in every earlier session
                items = [i for i in app.items() if i.ok and i.kind not in ("start", "end")]
                _, _, d = self._exactly_once(items, occ, strict=False)
                dups += d
                self._check_order(seq, label)
        occ, seq = self._occurrences(final)
        items = [i for i in app.items() if i.ok and i.kind not in ("start", "end")]
        post = [i for i in items if (i.call_at if i.kind == "tool" else i.t_start) > self.t_fresh]
        pre = [i for i in items
               if (i.call_at if i.kind == "tool" else i.t_start) <= self.t_fresh]
        lost_audio, excused, d1 = self._exactly_once(post, occ, strict=not died)
        _, _, d2 = self._exactly_once(pre, occ, strict=False)
        dups += d1 + d2
        if not died:
            self._check_markers(seq, [], prefix_free=True)
        self._check_order(seq, "final session")
        # Accounting: a message missing from every server session must have been reported.
        missing = [i for i in items if all_occ.get(i.key, 0) == 0]
        unconfirmed = getattr(self.stats, "unconfirmed", 0) or 0
        if dups > unconfirmed:
            self.findings.add("audio-at-most-once", self.where,
                              "%d audio duplicates, stats().unconfirmed is %d"
                              % (dups, unconfirmed))
        lagged = sum(1 for i in missing if i.kind == "audio" and self._server_lagged(i))
        self.audio_lagged = lagged
        if not died and len(missing) - lagged > self.stats.dropped:
            kinds = collections.Counter(KIND_NAMES[i.kind] for i in missing)
            stories = "".join("\n    tool response %s: %s" % (i.key, self._call_story(i))
                              for i in missing if i.kind == "tool")
            stories += "".join("\n    audio chunk %s: %s" % (i.key, self._audio_story(i))
                               for i in missing if i.kind == "audio")
            self.findings.add("drop-accounting", self.where,
                              "%d messages are in no server session (%s) but stats().dropped "
                              "is %d%s" % (len(missing), _counts(kinds), self.stats.dropped,
                                           stories))
        self.audio_lost = len([i for i in missing if i.kind == "audio"])
        self.audio_dups = dups

    def _final_session(self) -> Any:
        if not self.sessions:
            self.findings.add("session-survives", self.where, "no server session at all")
            return None
        last = max((r for r in self.conns.values() if r.session_id and r.sent
                    and "setupComplete" in r.sent[0]), key=lambda r: r.id)
        return self.emu.sessions[last.session_id]

    def _check_audio(self, dups: int, lost_audio: List[Sent], excused: List[Sent],
                     exact: bool) -> None:
        stats = self.stats
        unconfirmed = getattr(stats, "unconfirmed", 0) or 0
        self.audio_lost, self.audio_dups = len(lost_audio), dups
        if dups > unconfirmed:
            self.findings.add("audio-at-most-once", self.where,
                              "%d audio chunks consumed twice or more, stats().unconfirmed is "
                              "%d" % (dups, unconfirmed))
        if not exact:
            return
        missing = len(lost_audio) + len(excused) + self.lost_count
        lagged = self.audio_lagged = sum(1 for i in lost_audio if self._server_lagged(i))
        # unconfirmed also counts evicted audio a handle may have covered: it is in
        # dropped whether or not the server had it.
        if not missing - lagged <= stats.dropped <= missing + unconfirmed:
            reached = {_tokens(m)[1] for r in self.emu.connections for m in r.messages
                       if m.kind == "realtimeInput"}
            unsent = sum(1 for i in lost_audio if i.key not in reached)
            self.findings.add(
                "drop-accounting", self.where,
                "%s: %d messages are missing from the server session (%d audio chunks: %d "
                "never reached the server, %d consumed then rewound; %d tool responses to "
                "cancelled calls; %d other) but stats().dropped is %d (sum of "
                "Reconnected.dropped: %d)" % (
                    "under-reported" if missing > stats.dropped else "over-reported",
                    missing, len(lost_audio), unsent, len(lost_audio) - unsent, len(excused),
                    self.lost_count, stats.dropped,
                    sum(ev.dropped for _, ev in self.app.reconnects))
                + "".join("\n    audio chunk %s: %s" % (i.key, self._audio_story(i))
                          for i in lost_audio[:5])
                + ("\n    (and %d more)" % (len(lost_audio) - 5) if len(lost_audio) > 5 else ""))

    def _check_delivery(self) -> None:
        """What on_message got from each connection is a prefix of what it sent."""
        app = self.app
        segments: List[List[LiveServerMessage]] = []
        for message in app.delivered:
            if message.setup_complete is not None:
                segments.append([message])
            elif not segments:
                self.findings.add("server-delivery", self.where,
                                  "a %s was delivered before any setupComplete" % message.kind)
            else:
                segments[-1].append(message)
        candidates = [r for r in sorted(self.conns.values(), key=lambda r: r.id)
                      if r.sent and "setupComplete" in r.sent[0]]
        seen_calls: Set[str] = set()
        start = 0
        for number, segment in enumerate(segments):
            best: Optional[Tuple[int, int, str]] = None
            for j in range(start, len(candidates)):
                matched, detail, calls = _match_prefix(segment, candidates[j].sent, seen_calls)
                if detail is None:
                    seen_calls |= calls
                    start = j + 1
                    best = None
                    break
                if best is None or matched > best[0]:
                    best = (matched, j, detail)
            else:
                if best is not None:
                    record = candidates[best[1]]
                    self.findings.add(
                        "server-delivery", self.where,
                        "connection segment %d (%d messages) is not a prefix of any later "
                        "connection's sent messages; closest: conn %d, first %d match, then %s"
                        % (number + 1, len(segment), record.id, best[0], best[2]))
                else:
                    self.findings.add("server-delivery", self.where,
                                      "more connection segments delivered than connections")
                return

    def _check_close(self) -> None:
        app = self.app
        if len(app.closes) != 1:
            self.findings.add("on-close-once", self.where,
                              "on_close called %d times" % len(app.closes))
        if self.close_elapsed > CLOSE_TIMEOUT + CLOSE_SLACK:
            self.findings.add("close-timeout", self.where, "close() took %.2f s (timeout %.1f)"
                              % (self.close_elapsed, CLOSE_TIMEOUT))

    def _check_callbacks(self) -> None:
        app = self.app
        for error in app.harness_errors[:5]:
            self.findings.add("harness", self.where, error)
        fresh = [t for t, ev in app.reconnects if not ev.resumed]
        for item in app.send_errors:
            if item.kind == "tool" and "InvalidConfig" in item.error and any(
                    item.call_at <= t <= item.t_start for t in fresh):
                continue   # a call of a session that is gone (fresh start): refused by design
            self.findings.add("send-errors", self.where, "%s %s %s at +%.2fs raised %s%s" % (
                item.thread, KIND_NAMES[item.kind], item.key, item.t_start - self.t0,
                item.error[:200], "; " + self._call_story(item) if item.kind == "tool" else ""))
        for event in app.errors[:10]:
            self.findings.add("callback-errors", self.where, repr(event))

    def _summarise(self) -> None:
        app, stats = self.app, self.stats
        kinds = collections.Counter(KIND_NAMES[i.kind] for i in app.items() if i.ok)
        faults = collections.Counter(f.kind for f in self.schedule if f.at)
        fresh = sum(1 for _, ev in app.reconnects if not ev.resumed)
        recov = sorted(f.recovered for f in self.schedule if f.recovered is not None)
        self.injected = sum(faults.values())
        skipped = [f for f in self.schedule[:self.consumed] if f.skipped]
        self.messages = sum(kinds.values())
        self.summary = (
            "%s: %.1f s, %d faults (%s); %d client messages (%s); %d connections, %d "
            "reconnects (%d fresh), replayed %d, dropped %d, unconfirmed %s; audio lost %d "
            "(%d behind the server's lag), duplicated %d; recovery median %.0f ms, max %.0f "
            "ms; %s" % (
                self.where, self.elapsed, self.injected, _counts(faults), self.messages,
                _counts(kinds), len(self.conns), len(app.reconnects), fresh, stats.replayed,
                stats.dropped, getattr(stats, "unconfirmed", "n/a"),
                getattr(self, "audio_lost", 0), getattr(self, "audio_lagged", 0),
                getattr(self, "audio_dups", 0),
                1000 * recov[len(recov) // 2] if recov else 0, 1000 * recov[-1] if recov else 0,
                "emulator %s, max_buffered_media %d" % (
                    ", ".join("%s=%s" % kv for kv in sorted(self.emulator_options.items())
                              if kv[0] != "handle_ttl"), self.max_buffered_media)))
        if app.queue_full:
            self.summary += "; SendQueueFull %d" % app.queue_full
        if skipped:
            self.summary += "; %d faults skipped (target gone)" % len(skipped)


def _short_token(token: str) -> str:
    return {"start": "[", "end": "]"}.get(token, token)


def _markers(tokens: List[str]) -> str:
    counts = collections.Counter(KIND_NAMES[t] for t in tokens)
    return ", ".join("%d %s" % (n, k) for k, n in counts.items())


def _counts(counter: Dict[str, int]) -> str:
    return ", ".join("%s %d" % kv for kv in sorted(counter.items(), key=lambda kv: -kv[1]))


def _is_subsequence(small: List[str], big: List[str]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def _signature(call: Any) -> str:
    if isinstance(call, dict):
        return json.dumps([call.get("name"), call.get("args")], sort_keys=True, default=str)
    return json.dumps([call.name, call.args], sort_keys=True, default=str)


def _match_prefix(segment: List[LiveServerMessage], sent: List[Dict[str, Any]],
                  seen_calls: Set[str]) -> Tuple[int, Optional[str], Set[str]]:
    """Match delivered ``segment`` against ``sent`` in order; a toolCall whose calls
    re-issue calls delivered before may be hidden (in part or whole).

    Returns (messages matched, None or what went wrong, call signatures delivered).
    """
    seen = set(seen_calls)
    i = 0
    for n, got in enumerate(segment):
        while True:
            if i >= len(sent):
                return n, "delivered %s that the connection never sent (%d sent)" % (
                    got.kind, len(sent)), seen
            raw = sent[i]
            expected = LiveServerMessage.from_dict(raw)
            i += 1
            if expected == got:
                break
            calls = ((raw.get("toolCall") or {}).get("functionCalls")) or []
            if calls:
                kept = [c for c in calls if _signature(c) not in seen]
                if len(kept) < len(calls):
                    if not kept and len(raw) == 1:
                        continue   # a re-issued call, hidden
                    reduced = dict(raw, toolCall={"functionCalls": kept})
                    if LiveServerMessage.from_dict(reduced) == got:
                        break
            return n, "delivered %s where the connection sent %s" % (
                _brief(got.to_dict()), _brief(raw)), seen
        if got.tool_call is not None:
            seen.update(_signature(c) for c in got.tool_call.function_calls or ())
    return len(segment), None, seen


def _brief(message: Dict[str, Any]) -> str:
    return json.dumps(message, sort_keys=True, default=str)[:110]


# ---------------------------------------------------------------------------- tests


_LOGGERS = iter(range(1, 1 << 30))


def _quiet_logger() -> Tuple[logging.Logger, LogCounter]:
    """A logger for the soak's sessions that counts livesync's warnings instead of
    printing thousands of them. Made inside the test so that pytest's log capture,
    which also hooks loggers that do not propagate when the test starts, misses it."""
    logger = logging.getLogger("chaos-soak.%d" % next(_LOGGERS))
    logger.propagate = False
    counter = LogCounter()
    logger.addHandler(counter)
    return logger, counter


def _soak(part: str, make_emulator: Callable[..., Any], chaos: ChaosSettings,
          summary: Callable[[str], None], nodeid: str) -> None:
    size = SIZES[(part, chaos.long)]
    logger, log_counter = _quiet_logger()
    findings = Findings()
    lines = []
    injected = messages = lives = 0
    started = time.monotonic()
    for index in range(size.rounds):
        schedule = Round.make_schedule(chaos, part, index, size.faults)
        position = life = 0
        while position < len(schedule):
            # One session per life; a session that dies hands the rest of the
            # schedule to a new one, so every fault is injected whatever happens.
            soak = Round(make_emulator, chaos, part, index, life, schedule[position:], findings,
                         logger)
            soak.run()
            soak.check()
            position += max(1, soak.consumed)
            life += 1
            lives += 1
            injected += soak.injected
            messages += soak.messages
            lines.append(soak.summary)
            for (what, kind, cause), n in sorted(getattr(soak, "tallies", {}).items()):
                lines.append("    %s %s: %d after %s" % (what, kind, n, cause))
    elapsed = time.monotonic() - started
    for error in log_counter.errors[:5]:
        findings.add("internal-errors", part, error)
    head = ("chaos %s: seed %d%s, %d rounds (%d sessions), %d faults, %d client messages, "
            "%.0f s: %s" % (part, chaos.seed, " (long)" if chaos.long else "", size.rounds,
                            lives, injected, messages, elapsed,
                            "FAILED" if findings else "ok"))
    summary(head)
    print(head)
    print("\n".join(lines))
    print("livesync warnings:\n  " + "\n  ".join(log_counter.top() or ["none"]))
    if findings:
        pytest.fail("%s\nreproduce: %s\n\n%s\n\nsessions:\n%s\nlivesync warnings:\n  %s" % (
            head, chaos.reproduce(nodeid), findings.report(), "\n".join(lines),
            "\n  ".join(log_counter.top() or ["none"])), pytrace=False)


def test_soak(make_emulator: Callable[..., Any], chaos: ChaosSettings,
              chaos_summary: Callable[[str], None], request: pytest.FixtureRequest) -> None:
    """Strict part: no refused resumes, so the server session must hold every text turn,
    realtime text, activity marker and tool response exactly once, in order."""
    _soak("strict", make_emulator, chaos, chaos_summary, request.node.nodeid)


def test_soak_with_refused_resumes(make_emulator: Callable[..., Any], chaos: ChaosSettings,
                                   chaos_summary: Callable[[str], None],
                                   request: pytest.FixtureRequest) -> None:
    """Refused resumes start fresh sessions (the earlier conversation is gone by design):
    exactly once from the last fresh start, at most once everywhere, losses reported."""
    _soak("fresh", make_emulator, chaos, chaos_summary, request.node.nodeid)
