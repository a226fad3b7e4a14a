"""``python -m livesync emulator --load``: serve the lean load server, in one or more processes.

Threads and processes: the main thread waits for SIGINT/SIGTERM (the handlers
only set an Event) and prints the counters every ``--stats-every`` seconds;
each :class:`~livesync.emulator.LoadServer` runs its own ``emulator-load``
thread. With ``--processes N`` the main process serves too and starts N - 1
worker processes (``multiprocessing`` "spawn") bound to the same port with
``SO_REUSEPORT``: the kernel spreads connections over them, and handles issued
by one are accepted by all (they share the API key). Workers ignore SIGINT and
stop when the main process tells them to (or dies). Every process raises its
soft open-files limit to the hard one (one descriptor per connection).
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

from ._common import non_negative_seconds, positive_seconds

WORKER_START_TIMEOUT = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--load`` and the options that only apply to it."""
    group = parser.add_argument_group(
        "load server", "--load serves the lean load server instead: no VAD, model, REST or "
        "faults; canned audio replies at real time (docs/emulator.md, 'Load server')")
    group.add_argument("--load", action="store_true",
                       help="serve the lean load server (hundreds of audio sessions per core)")
    group.add_argument("--reply-every", type=non_negative_seconds, default=None,
                       metavar="SECONDS", help="seconds of input audio per reply; 0: replies "
                                               "to turns only (default 2)")
    group.add_argument("--reply-seconds", type=positive_seconds, default=None, metavar="SECONDS",
                       help="seconds of audio in each reply, sent at real time (default 1)")
    group.add_argument("--processes", type=_count, default=None, metavar="N",
                       help="serve the port from N processes (SO_REUSEPORT; default 1)")
    group.add_argument("--stats-every", type=positive_seconds, default=None, metavar="SECONDS",
                       help="print the counters every SECONDS (default: never)")


LOAD_ONLY = ("reply_every", "reply_seconds", "processes", "stats_every")
NOT_FOR_LOAD = (("interaction_status", "--interaction-status"), ("input_lag", "--input-lag"),
                ("chunk_delay", "--chunk-delay"), ("faults", "fault schedule flags"))


def usage_error(args: argparse.Namespace) -> Optional[str]:
    """Why ``args`` mix the load server's options with the emulator's, if they do."""
    if not args.load:
        given = [name for name in LOAD_ONLY if getattr(args, name) is not None]
        if given:
            return "--%s applies to the load server: add --load" % given[0].replace("_", "-")
        return None
    for name, flag in NOT_FOR_LOAD:
        if getattr(args, name):
            return "%s do not apply to --load" % flag if name == "faults" else (
                "%s does not apply to --load" % flag)
    return None


def options(args: argparse.Namespace) -> Dict[str, Any]:
    """``LoadOptions`` fields from the command line."""
    values: Dict[str, Any] = dict(
        host=args.host, port=args.port, api_key=args.api_key, time_scale=args.time_scale,
        connection_lifetime=args.lifetime, go_away_notice=args.go_away_notice,
        text_frames=args.text_frames, reuse_port=(args.processes or 1) > 1)
    if args.reply_every is not None:
        values["reply_every"] = args.reply_every
    if args.reply_seconds is not None:
        values["reply_seconds"] = args.reply_seconds
    return values


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM (main thread); return 0, or 1 if it cannot start."""
    try:
        from ..emulator import LoadServer
    except ImportError as exc:
        print("livesync: the load server needs the 'emulator' extra (%s): "
              "pip install 'livesync[emulator]'" % exc, file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda _signum, _frame: stop.set())
    raise_fd_limit()
    try:
        server = LoadServer(**options(args))
    except ValueError as exc:
        print("livesync emulator: %s" % exc, file=sys.stderr)
        return 2
    try:
        server.start()
    except OSError as exc:
        print("livesync emulator: cannot listen on %s:%d: %s"
              % (args.host, args.port, exc.strerror or exc), file=sys.stderr)
        return 1
    workers = Workers()
    try:
        values = dict(options(args), port=server.port, api_key=server.api_key)
        if not workers.start((args.processes or 1) - 1, values):
            print("livesync emulator: a worker process did not start", file=sys.stderr)
            return 1
        announce(server, args)
        period = args.stats_every
        while not stop.wait(period if period else 0.5):  # bounded: signals run between waits
            if period:
                print(summary([server.stats().to_dict()] + workers.stats()), flush=True)
    finally:
        workers.stop()
        server.stop()
    print("stopped", flush=True)
    return 0


def announce(server: Any, args: argparse.Namespace) -> None:
    """Print the URL, the key and what the server does."""
    opts = server.options
    print("base_url: %s" % server.base_url, flush=True)
    print("api_key:  %s" % server.api_key, flush=True)
    cadence = ("every %g s of input audio and " % opts.reply_every) if opts.reply_every else ""
    print("load server: %s audio replies %sto every turn, %d process(es)"
          % ("%g s" % opts.reply_seconds, cadence, args.processes or 1), flush=True)
    print("connections last %g s, goAway %g s before the end (real seconds)" % (
        opts.connection_lifetime * opts.time_scale, opts.go_away_notice * opts.time_scale),
        flush=True)
    print("Serving; press Ctrl-C to stop.", flush=True)


def summary(stats: List[Dict[str, Any]]) -> str:
    """One line of counters summed over the processes (CPU per process)."""
    def total(name: str) -> float:
        return float(sum(s[name] for s in stats))

    cpu = " ".join("%.1f" % s["cpu_seconds"] if s["cpu_seconds"] is not None else "?"
                   for s in stats)
    return ("stats: open %d, connections %d, audio in %.0f s, replies %d, chunks out %d, "
            "late chunks %d, backpressure %d, goAways %d, resumes %d (refused %d), "
            "CPU s per process: %s" % (
                total("open_connections"), total("connections"), total("audio_seconds_in"),
                total("replies"), total("chunks_out"), total("late_chunks"),
                total("backpressure"), total("go_aways"), total("resumes"),
                total("resumes_refused"), cpu))


class Workers:
    """The worker processes of ``--processes`` (main thread only)."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: List[Tuple[Any, Any]] = []

    def start(self, count: int, values: Dict[str, Any]) -> bool:
        """Start ``count`` workers serving ``values``; False if one did not start."""
        for _ in range(count):
            parent, child = self._ctx.Pipe()
            proc = self._ctx.Process(target=_worker, args=(child, values),
                                     name="livesync-load-worker", daemon=True)
            proc.start()
            self._procs.append((proc, parent))
            if not parent.poll(WORKER_START_TIMEOUT) or parent.recv() != "ready":
                return False
        return True

    def stats(self) -> List[Dict[str, Any]]:
        """Each live worker's counters."""
        found: List[Dict[str, Any]] = []
        for _proc, pipe in self._procs:
            try:
                pipe.send("stats")
                if pipe.poll(5.0):
                    found.append(pipe.recv())
            except (OSError, EOFError):
                continue  # the worker ended
        return found

    def stop(self) -> None:
        """Tell every worker to stop, then join it (terminate after 10 s)."""
        for _proc, pipe in self._procs:
            try:
                pipe.send("stop")
            except OSError:
                pass
        for proc, _pipe in self._procs:
            proc.join(10.0)
            if proc.is_alive():
                proc.terminate()
                proc.join(5.0)


def _worker(pipe: Any, values: Dict[str, Any]) -> None:
    """A worker process: serve until told to stop or the main process goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: main decides
    from ..emulator import LoadServer

    raise_fd_limit()

    with LoadServer(**values) as server:
        pipe.send("ready")
        while True:
            try:
                command = pipe.recv()
            except EOFError:
                return
            if command != "stats":
                return
            pipe.send(server.stats().to_dict())


def raise_fd_limit() -> None:
    """Raise the soft open-files limit to the hard one: each connection is a descriptor."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # e.g. an infinite hard limit the kernel caps
            pass


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a whole number: %r" % text) from None
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError("must be 1-256, not %d" % value)
    return value
