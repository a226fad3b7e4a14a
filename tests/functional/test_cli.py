"""``python -m livesync`` (demo, chat, emulator) run as subprocesses, as a user runs them."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import wave
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest

import livesync
from livesync._cli import _schedule
from tests.utils import TIMEOUT, Recorder

ROOT = Path(__file__).resolve().parents[2]
WAIT = 20 * TIMEOUT
"""Bound on waiting for one line of a subprocess's output."""

# A resumption handle is 64 URL-safe characters; the CLI prints at most 6 of them.
LONG_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,}")


def command(*args: str, module: str = "livesync", sigint_ignored: bool = False) -> List[str]:
    """The command line; ``sigint_ignored`` starts it as a background job of a
    non-interactive shell would (SIGINT inherited as ignored)."""
    line = [sys.executable, "-m", module, *args]
    return ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *line] if sigint_ignored else line


def environment() -> Dict[str, str]:
    """The test environment (no API key, no proxy) with this checkout first on the path."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))


def run(*args: str, stdin: str = "", timeout: float = 50) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=environment(), cwd=str(ROOT))


class Running:
    """A subprocess whose stdout and stderr are read line by line on helper threads."""

    def __init__(self, *args: str, stdin: bool = False, module: str = "livesync",
                 sigint_ignored: bool = False) -> None:
        self.process = subprocess.Popen(
            command(*args, module=module, sigint_ignored=sigint_ignored),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment(),
            cwd=str(ROOT))
        self.queues: Dict[str, "queue.Queue[Optional[str]]"] = {}
        self.seen: Dict[str, List[str]] = {}
        self._readers = [self._reader(name) for name in ("stdout", "stderr")]

    def _reader(self, name: str) -> threading.Thread:
        self.queues[name], self.seen[name] = queue.Queue(), []
        thread = threading.Thread(target=self._read, args=(name,), name="test-cli-" + name,
                                  daemon=True)
        thread.start()
        return thread

    def _read(self, name: str) -> None:
        stream = getattr(self.process, name)
        for line in stream:
            self.queues[name].put(line.rstrip("\n"))
        self.queues[name].put(None)

    def expect(self, predicate: Callable[[str], bool], stream: str = "stdout",
               timeout: float = WAIT) -> str:
        """Return the next line of ``stream`` matching ``predicate`` (fail on EOF or timeout)."""
        while True:
            try:
                line = self.queues[stream].get(timeout=timeout)
            except queue.Empty:
                pytest.fail("no matching line within %.0f s; seen: %r" % (timeout, self.seen))
            if line is None:
                pytest.fail("process ended; seen: %r" % (self.seen,))
            self.seen[stream].append(line)
            if predicate(line):
                return line

    def write(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def finish(self, timeout: float = WAIT, *, eof: bool = True) -> str:
        """Wait for the exit (kill after ``timeout``); return the stderr not yet expected.

        ``eof``: close stdin first (end of input); else only after the exit.
        """
        if eof and self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout)
        finally:  # even after a timeout: no process or pipe outlives the test
            if self.process.stdin is not None:
                self.process.stdin.close()
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            for thread in self._readers:
                thread.join(timeout)
            for stream in (self.process.stdout, self.process.stderr):
                if stream is not None:
                    stream.close()
        rest = []
        while True:
            line = self.queues["stderr"].get_nowait() if not self.queues["stderr"].empty() else None
            if line is None:
                return "\n".join(self.seen["stderr"] + rest)
            rest.append(line)


@pytest.fixture
def running() -> Iterator[Callable[..., Running]]:
    """Start CLI subprocesses; kill any still running after the test."""
    started: List[Running] = []

    def start(*args: str, stdin: bool = False, module: str = "livesync",
              sigint_ignored: bool = False) -> Running:
        started.append(Running(*args, stdin=stdin, module=module,
                               sigint_ignored=sigint_ignored))
        return started[-1]

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.finish()


def test_demo_prints_timeline() -> None:
    """The demo runs offline in well under a minute: rotations, a drop, turns, stats."""
    result = run("demo")
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    stats = re.search(r"^stats: (\d+) connections \((\d+) planned, (\d+) unplanned\)", out,
                      re.MULTILINE)
    assert stats is not None, out
    assert int(stats.group(2)) >= 2 and int(stats.group(3)) >= 1
    assert len(re.findall(r"goAway\s+the server ends", out)) >= 2
    assert re.search(r"drop\s+injected", out)
    assert re.search(r"conn 3\s+resumed", out)
    assert "What is the capital of France? → The capital of France is Paris." in out
    assert re.search(r"handle\s+\S{6}…", out)
    assert not LONG_TOKEN.search(out), "a full handle or key was printed"
    assert "\x1b[" not in out  # no colours when stdout is not a terminal
    assert result.stderr == ""


def test_chat_emulator_pipe() -> None:
    """Piped questions are answered in order; end of input closes with 1000 and exits 0."""
    result = run("chat", "--emulator", stdin="What is the capital of France?\n\n"
                                              "What did I just say?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "The capital of France is Paris.",
        "Earlier you said: What is the capital of France?",
    ]
    assert "[closed: 1000]" in result.stderr


def test_chat_reports_reconnections(running: Callable[..., Running]) -> None:
    """With a fast emulator, a rotation shows as one status line on stderr."""
    proc = running("chat", "--emulator", "--time-scale", "0.002", stdin=True)
    proc.write("Are you there?\n")
    proc.expect(lambda line: line.startswith("Yes, I'm here"))
    # 600 s x 0.002: the connection rotates after about 1.1 s.
    status = proc.expect(lambda line: True, stream="stderr")
    assert re.fullmatch(r"\[reconnected: planned, resumed, \d+ ms\]", status), status
    proc.write("What did I say?\n")
    proc.expect(lambda line: line == "Earlier you said: Are you there?")
    stderr = proc.finish()
    assert proc.process.returncode == 0, stderr
    assert stderr.endswith("[closed: 1000]")


def test_chat_audio_out(tmp_path: Path) -> None:
    """--audio-out prints the transcript and writes the reply audio as a 24 kHz WAV."""
    path = tmp_path / "reply.wav"
    result = run("chat", "--emulator", "--audio-out", str(path),
                 stdin="What is the capital of Japan?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "The capital of Japan is Tokyo."
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        # The emulator speaks 0.02 s per character of the reply.
        assert wav.getnframes() == round(len("The capital of Japan is Tokyo.") * 0.02 * 24000)


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
@pytest.mark.parametrize("sigint_ignored", [False, True])
def test_chat_ctrl_c(running: Callable[..., Running], sigint_ignored: bool) -> None:
    """SIGINT after an answer closes the session with 1000 and exits 130, no traceback,
    even when started with SIGINT ignored (a CI job in the background hung here)."""
    proc = running("chat", "--emulator", stdin=True, sigint_ignored=sigint_ignored)
    proc.write("What is the capital of Germany?\n")
    proc.expect(lambda line: line == "The capital of Germany is Berlin.")
    proc.process.send_signal(signal.SIGINT)
    stderr = proc.finish(eof=False)  # an end of input racing the signal would exit 0
    assert proc.process.returncode == 130
    assert "Traceback" not in stderr
    assert "[closed: 1000]" in stderr


def test_chat_without_key_exits_2() -> None:
    """Without --emulator and without a key, chat says what to do and exits 2."""
    result = run("chat", stdin="hello\n")
    assert result.returncode == 2
    assert "GEMINI_API_KEY" in result.stderr and "--emulator" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("module, args", [
    ("livesync", ["emulator"]),
    ("livesync.emulator", []),  # the older entry point, same options
])
def test_emulator_scheduled_drop(running: Callable[..., Running], module: str,
                                 args: List[str]) -> None:
    """The emulator serves a client, drops it on schedule (the client resumes), stops on SIGTERM."""
    proc = running(*args, "--port", "0", "--drop-every", "0.5", module=module)
    values = {}
    for key in ("base_url", "rest_url", "api_key"):
        line = proc.expect(lambda line: line.startswith(key + ":"))  # noqa: B023 (called now)
        values[key] = line.split(":", 1)[1].strip()
    proc.expect(lambda line: line.startswith("Serving"))
    recorder = Recorder()
    client = livesync.Client(api_key=values["api_key"], base_url=values["base_url"])
    with client.connect("gemini-live-2.5-flash-preview", config={"response_modalities": ["TEXT"]},
                        reconnect=livesync.ReconnectPolicy(initial_delay=0.05),
                        **recorder.callbacks()) as session:
        proc.expect(lambda line: re.search(r"\] drop -> connection \d+$", line) is not None)
        event = recorder.wait("on_reconnect")[0]
        assert not event.planned and event.resumed
        assert session.ask("Are you there?", timeout=WAIT).text.startswith("Yes")
    proc.process.send_signal(signal.SIGTERM)
    stderr = proc.finish()
    assert proc.process.returncode == 0, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("args", [[], ["demo"], ["chat"], ["emulator"]])
def test_help(args: List[str]) -> None:
    """--help exits 0 and shows examples, for the program and each command."""
    result = run(*args, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m livesync")
    assert "examples:" in result.stdout


@pytest.mark.parametrize("args, message", [
    ([], "COMMAND"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["demo", "--lifetime", "-1"], "--lifetime: must be a positive number of seconds"),
    (["demo", "--rotations", "0"], "--rotations: must be a whole number from 1 to 20"),
    (["chat", "--emulator", "--time-scale", "inf"], "--time-scale: must be a positive number"),
    (["chat", "--time-scale", "0.5"], "--time-scale applies to the emulator: add --emulator"),
    (["emulator", "--port", "65536"], "--port: port must be 0-65535"),
    (["emulator", "--port", "http"], "--port: not a port number"),
    (["emulator", "--drop-every", "-5"], "--drop-every: must be a positive number of seconds"),
    (["emulator", "--close-every", "60:1006"], "close code 1006 cannot be sent"),
    (["emulator", "--close-every", "60"], "expected SECONDS:CODE[:REASON]"),
    (["emulator", "--refuse-upgrades-every", "10:2:200"], "STATUS must be an HTTP error"),
    (["emulator", "--go-away-notice", "600"], "must be shorter than --lifetime"),
])
def test_bad_arguments(args: List[str], message: str) -> None:
    """Bad arguments give a one-line message naming the problem and exit 2."""
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("flag, text, expected", [
    ("--close-every", "60:1011", _schedule.Fault("close", 60.0, code=1011, reason="")),
    ("--close-every", "2.5:4000:a: b", _schedule.Fault("close", 2.5, code=4000, reason="a: b")),
    ("--go-away-every", "30:5", _schedule.Fault("go-away", 30.0, seconds=5.0)),
    ("--refuse-resume-every", "9", _schedule.Fault("refuse-resume", 9.0)),
    ("--refuse-upgrades-every", "9:2:429",
     _schedule.Fault("refuse-upgrades", 9.0, seconds=2.0, status=429)),
])
def test_schedule_grammar(flag: str, text: str, expected: _schedule.Fault) -> None:
    """Each schedule flag parses its documented SECONDS[:...] form."""
    parse = {f: p for f, p, _, _ in _schedule.FLAGS}[flag]
    assert parse(text) == expected
