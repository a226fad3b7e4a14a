"""Secrecy, end to end: no credential and no resumption handle ever shows.

A canary API key, an ephemeral token, Vertex bearer tokens and resumption
handles (the emulator's own, random, plus a canary handle the server hands out)
are pushed through every path a session can take against the emulator: connect
and ask, goAway rotation, drop and resume, refused resumes, fatal server closes,
bad models, wrong credentials, refused upgrades, close and sends after close.
Meanwhile every logger runs at DEBUG (root and every ``livesync*`` logger), and
each test collects the ``repr``/``str`` of every public object it meets (client,
session, ``stats()``, callback arguments, turns and their messages, handle
stores) and every exception raised (the formatted traceback, and each link of
the chain Python shows, ``__cause__`` or unsuppressed ``__context__``, with its
attributes), plus stdout, stderr and warnings.

A text leaks a secret when it holds it whole or any :data:`RUN` characters of it
in a row. :data:`RUN` is 9, as in ``tests/unit/test_secrets.py``: a handle may be
shown by its first 8 characters and its length, nothing more (stricter than a
12-character run). Each failure names the path, the source of the text (a logger,
a repr, an exception, stdout) and the secret.

Not checked: the ``websockets.*`` loggers. They belong to the emulator's server
library (the *server* side of the connection), which at DEBUG prints the upgrade
request headers, the key included (docs/emulator.md); a real client never runs
them. The emulator's own ``livesync.emulator`` logger is checked.

``tests/unit/test_secrets.py`` covers reprs of hand-made objects and the texts of
InvalidConfig; this file covers what a live session produces.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import traceback
import uuid
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import pytest

import livesync
from livesync import (
    InvalidStatus,
    ReconnectExhausted,
    ReconnectPolicy,
    SessionClosed,
    SessionClosedError,
    SessionClosedOK,
    SetupRejected,
)
from tests.utils import TIMEOUT, Recorder, wait_for

MODEL = "gemini-live-2.5-flash-preview"
TEXT = {"response_modalities": ["TEXT"]}
FAST = ReconnectPolicy(initial_delay=0.01, max_delay=0.05, rotation_margin=0.05)
WAIT = 10 * TIMEOUT

#: A text leaks a secret when it holds this many consecutive characters of it.
RUN = 9


def _canary(prefix: str, length: int = 16) -> str:
    return prefix + uuid.uuid4().hex[:length]


#: The API key the emulator accepts (also a valid Vertex bearer there: unused so).
KEY = _canary("emu-CANARYKEY-")
#: A Vertex bearer token from a token_provider, registered in ``emu.bearer_tokens``.
BEARER = _canary("ya29.CANARYBEARER-")
#: A Vertex bearer token the emulator does not know: HTTP 401 at the upgrade.
BEARER_UNKNOWN = _canary("ya29.CANARYBEARERX-")
#: A wrong Gemini API key: the server closes 1007.
WRONG_KEY = _canary("CANARYWRONGKEY-")
#: An ephemeral token the emulator never minted: the server closes 1007.
TOKEN_UNKNOWN = "auth_tokens/" + _canary("CANARYTOKENX", 28)
#: A handle the *server* hands out (send_raw); unknown to the emulator's sessions,
#: so resuming with it is refused. 64 URL-safe characters, like the real ones.
HANDLE = ("CiCANARYHANDLE" + uuid.uuid4().hex + uuid.uuid4().hex)[:64]
#: A handle inside server frames livesync cannot use (bad type, cut JSON).
HANDLE_BAD = ("CiCANARYBADHANDLE" + uuid.uuid4().hex + uuid.uuid4().hex)[:64]

KINDS = ["key", "ephemeral", "vertex"]
#: How each kind authenticates at the emulator (ConnectionRecord.auth).
AUTH = {"key": "api_key_header", "ephemeral": "token_header", "vertex": "bearer"}

#: Logger hierarchies not checked (see the module docstring).
SERVER_SIDE_LOGGERS = ("websockets",)


# The spy: every text the tests can see, and the secrets to look for in them.


class Spy(logging.Handler):
    """Collects log records, reprs, exceptions and output; checks them for secrets."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        super().__init__(logging.DEBUG)
        self.capsys = capsys
        self.formatter_ = logging.Formatter("%(message)s")
        self._path = "setup"
        self.secrets: Dict[str, str] = {}  # value -> name
        self.texts: List[Tuple[str, str, str]] = []  # (path, source, text)
        self._lock = threading.Lock()
        self._standard = set(vars(logging.LogRecord("n", 0, "p", 0, "m", (), None)))
        self._standard.update({"message", "asctime", "taskName"})

    @property
    def path(self) -> str:
        """The path being exercised; each text is labelled with it."""
        return self._path

    @path.setter
    def path(self, path: str) -> None:
        self.output()  # what was printed so far belongs to the previous path
        self._path = path

    def output(self) -> None:
        out, err = self.capsys.readouterr()
        self.add("stdout", out)
        self.add("stderr", err)

    # Secrets.

    def secret(self, name: str, value: Any) -> None:
        if value and isinstance(value, str):
            with self._lock:
                self.secrets.setdefault(value, name)

    def handles_from(self, emu: Any) -> None:
        """Every handle the emulator sent or still holds, and every minted token."""
        for record in list(emu.connections):
            for message in list(record.sent):
                update = message.get("sessionResumptionUpdate") or {}
                self.secret("resumption handle", update.get("newHandle"))
        for handle in list(emu.handles):
            self.secret("resumption handle", handle.handle)
        for token in list(emu.tokens):
            self.secret("ephemeral token", token.name.split("/", 1)[-1])

    # Texts.

    def add(self, source: str, text: str) -> None:
        with self._lock:
            self.texts.append((self.path, source, text))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in SERVER_SIDE_LOGGERS:
            return
        source = "log %s %s" % (record.name, record.levelname)
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not hide the raw parts
            text = "%r %r" % (record.msg, record.args)
        if record.exc_info:
            text += "\n" + self.formatter_.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        # What a structured (JSON) handler would dump: the extra attributes.
        extras = {k: v for k, v in vars(record).items() if k not in self._standard}
        if extras:
            text += "\n" + repr(extras)
        self.add(source, text)

    def show(self, obj: Any, source: str = "", depth: int = 0) -> None:
        """repr() and str() of ``obj`` and of the objects (not strings) it holds."""
        if obj is None or isinstance(obj, (str, bytes, int, float, bool)):
            return
        if isinstance(obj, BaseException):
            self.error(obj, source)
            return
        source = source or type(obj).__name__
        self.add("repr " + source, repr(obj))
        self.add("str " + source, str(obj))
        if depth >= 4:
            return
        if isinstance(obj, (list, tuple, set, frozenset)):
            for item in obj:
                self.show(item, source, depth + 1)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            for f in dataclasses.fields(obj):
                self.show(getattr(obj, f.name), "%s.%s" % (source, f.name), depth + 1)

    def error(self, exc: BaseException, source: str = "") -> None:
        """An exception: the formatted traceback, and each link of its shown chain
        (``__cause__``, or ``__context__`` unless suppressed), with its attributes."""
        source = "exception %s%s" % (type(exc).__name__, " (%s)" % source if source else "")
        self.add(source, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        seen: Set[int] = set()
        link: Optional[BaseException] = exc
        while link is not None and id(link) not in seen:
            seen.add(id(link))
            self.add(source + " repr", repr(link))
            self.add(source + " str", str(link))
            self.add(source + " args", repr(link.args))
            for name, value in vars(link).items():
                if isinstance(value, (str, bytes, int, float, bool)) or value is None:
                    self.add("%s .%s" % (source, name), repr(value))
                else:
                    self.show(value, "%s .%s" % (source, name), 3)
            # The chain Python shows: a context hidden by "raise ... from None" is not shown.
            link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)

    def raises(self, error: Any, call: Callable[[], Any], source: str) -> BaseException:
        """Run ``call``, which must raise ``error``; collect the exception."""
        with pytest.raises(error) as info:
            call()
        value: BaseException = info.value
        self.error(value, source)
        return value

    def session(self, session: livesync.Session, rec: Optional[Recorder] = None) -> None:
        """The session, its stats and handle, and every callback argument so far."""
        self.secret("resumption handle", session.resumption_handle)
        self.show(session, "Session")
        self.add("Session.state", session.state)
        self.show(session.stats(), "Session.stats()")
        if rec is not None:
            for name, calls in sorted(rec.calls.items()):
                for arg in list(calls):
                    self.show(arg, "%s argument" % name)
                    update = getattr(arg, "session_resumption_update", None) or arg
                    self.secret("resumption handle", getattr(update, "new_handle", None))
                    self.secret("resumption handle", getattr(arg, "resumption_handle", None))

    def turn(self, turn: livesync.Turn) -> None:
        self.show(turn, "Turn")
        for message in turn.messages:
            self.show(message, "Turn.messages[]")

    # The check.

    def leaks(self) -> List[str]:
        windows: Dict[str, str] = {}
        for value, name in self.secrets.items():
            for i in range(len(value) - RUN + 1):
                windows.setdefault(value[i : i + RUN], "%s %s..." % (name, value[:4]))
        found: List[str] = []
        for path, source, text in self.texts:
            for i in range(len(text) - RUN + 1):
                secret = windows.get(text[i : i + RUN])
                if secret is not None:
                    excerpt = text[max(0, i - 60) : i + RUN + 60].replace("\n", " | ")
                    found.append("[%s] %s shows %s: ...%s..." % (path, source, secret, excerpt))
                    break
        return found

    def assert_clean(self, emu: Any, *, handles: bool = True) -> None:
        """No secret in any text; ``handles``: the emulator issued some (a sanity check)."""
        self.handles_from(emu)
        if handles:
            issued = [h for r in emu.connections for m in r.sent
                      for h in [(m.get("sessionResumptionUpdate") or {}).get("newHandle")]
                      if isinstance(h, str) and h]
            assert issued and all(h in self.secrets for h in issued), "no handle to look for"
        self.output()
        assert any(source.startswith("log livesync.") for _, source, _ in self.texts), \
            "no livesync log record was captured"
        found = self.leaks()
        assert not found, "secrets leaked:\n" + "\n".join(found)


@pytest.fixture
def spy(capsys: pytest.CaptureFixture[str]) -> Iterator[Spy]:
    """DEBUG on the root logger and every ``livesync*`` logger, all captured."""
    spy = Spy(capsys)
    for value, name in [(KEY, "API key"), (BEARER, "bearer token"),
                        (BEARER_UNKNOWN, "bearer token"), (WRONG_KEY, "API key"),
                        (TOKEN_UNKNOWN.split("/", 1)[1], "ephemeral token"),
                        (HANDLE, "resumption handle"), (HANDLE_BAD, "resumption handle")]:
        spy.secret(name, value)
    names = ["livesync", "livesync.session", "livesync.transport", "livesync.emulator"]
    names += [n for n in logging.root.manager.loggerDict if n.startswith("livesync")]
    loggers = [logging.getLogger()] + [logging.getLogger(n) for n in sorted(set(names))]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        logger.addHandler(spy)  # also on livesync*: a logger may stop propagating
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield spy
        for warning in caught:
            spy.add("warning", str(warning.message))
    for logger, level, disabled in saved:
        logger.removeHandler(spy)
        logger.setLevel(level)
        logger.disabled = disabled


@pytest.fixture
def emu(make_emulator: Callable[..., Any], spy: Spy) -> Any:
    emu = make_emulator(api_key=KEY)
    emu.bearer_tokens.add(BEARER)
    return emu


def mint(emu: Any, spy: Spy, **body: Any) -> str:
    """An ephemeral token from the emulator's REST endpoint."""
    import requests

    reply = requests.post(emu.rest_url + "/v1alpha/auth_tokens", json=body,
                          headers={"x-goog-api-key": KEY}, timeout=5)
    assert reply.status_code == 200, reply.status_code
    name = reply.json()["name"]
    assert isinstance(name, str) and name.startswith("auth_tokens/")
    spy.secret("ephemeral token", name.split("/", 1)[1])
    return name


def client_for(emu: Any, spy: Spy, kind: str) -> livesync.Client:
    if kind == "key":
        client = livesync.Client(api_key=KEY, base_url=emu.base_url)
    elif kind == "ephemeral":
        client = livesync.Client(api_key=mint(emu, spy, uses=0), base_url=emu.base_url)
    else:
        client = livesync.Client(vertexai=True, project="p", location="us-central1",
                                 token_provider=lambda: BEARER, base_url=emu.base_url)
    spy.show(client, "Client")
    return client


def connect(client: livesync.Client, rec: Recorder, **kwargs: Any) -> livesync.Session:
    options: Dict[str, Any] = dict(rec.callbacks(), config=TEXT, reconnect=FAST)
    options.update(kwargs)
    return client.connect(MODEL, **options)


def resumable(rec: Recorder, count: int = 1) -> None:
    rec.wait("on_resumption_update", count, where=lambda u: bool(u.resumable and u.new_handle))


def after_close(spy: Spy, session: livesync.Session, error: Any = SessionClosed) -> None:
    """Every way of using a closed session raises ``error``; close() stays quiet."""
    spy.raises(error, lambda: session.send_text("too late"), "send_text after close")
    spy.raises(error, lambda: session.send_audio(b"\x00\x00" * 160), "send_audio after close")
    spy.raises(error, lambda: session.send_realtime_input(text="late"),
               "send_realtime_input after close")
    spy.raises(error, lambda: session.send_client_content(turns="late"),
               "send_client_content after close")
    spy.raises(error, lambda: session.ask("too late", timeout=WAIT), "ask after close")
    try:
        for message in session.receive(timeout=WAIT):
            spy.show(message, "receive() after close")
    except SessionClosedError as exc:
        spy.error(exc, "receive() after close")
    session.close()
    try:
        assert session.wait_closed(WAIT)
    except SessionClosedError as exc:  # how wait_closed reports an error end
        spy.error(exc, "wait_closed()")


# Paths.


@pytest.mark.parametrize("kind", KINDS)
def test_connect_ask_and_close(emu: Any, spy: Spy, kind: str) -> None:
    """Connect, ask, handle store, malformed frames (ErrorEvent), close, sends after close."""
    spy.path = "connect+ask (%s)" % kind
    client = client_for(emu, spy, kind)
    rec = Recorder()
    store = livesync.MemoryHandleStore()
    session = connect(client, rec, handle_store=store, session_key="chat")
    assert emu.connections[0].auth == AUTH[kind]
    spy.turn(session.ask("What is the capital of France?", timeout=WAIT))
    spy.turn(session.ask("What did I say?", timeout=WAIT))
    resumable(rec, 2)
    spy.session(session, rec)
    assert wait_for(lambda: store.load("chat") is not None)
    spy.show(store, "MemoryHandleStore")
    spy.show(store.load("chat"), "StoredHandle")
    spy.path = "malformed server frames (%s)" % kind
    emu.send_malformed()
    emu.send_malformed(b'{"sessionResumptionUpdate": {"newHandle": "%s", "resum'
                       % HANDLE_BAD.encode())
    emu.send_raw({"sessionResumptionUpdate": {"newHandle": HANDLE_BAD, "resumable": "yes"}})
    emu.send_raw({"sessionResumptionUpdate": {"newHandle": [HANDLE_BAD], "resumable": True}})
    rec.wait("on_error", 4)
    assert session.resumption_handle != HANDLE_BAD
    spy.path = "close (%s)" % kind
    session.close()
    closed = rec.wait("on_close")[0]
    assert closed.error is None and closed.resumption_handle
    after_close(spy, session, SessionClosedOK)
    spy.session(session, rec)
    spy.assert_clean(emu)


@pytest.mark.parametrize("kind", KINDS)
def test_go_away_rotation(emu: Any, spy: Spy, kind: str) -> None:
    """goAway: rotate to a new connection with the latest handle, twice."""
    spy.path = "goAway rotation (%s)" % kind
    client = client_for(emu, spy, kind)
    rec = Recorder()
    with connect(client, rec) as session:
        spy.turn(session.ask("My name is Ada.", timeout=WAIT))
        resumable(rec, 2)
        emu.send_go_away(time_left=30.0)
        assert rec.wait("on_reconnect")[0].resumed
        resumable(rec, 3)
        emu.send_go_away(time_left=0.5)  # short notice, enforced by the server
        assert rec.wait("on_reconnect", 2)[1].planned
        spy.turn(session.ask("What did I say?", timeout=WAIT))
        assert session.stats().rotations_planned == 2
        spy.session(session, rec)
    spy.session(session, rec)
    spy.assert_clean(emu)


@pytest.mark.parametrize("kind", KINDS)
def test_drop_and_resume(emu: Any, spy: Spy, kind: str) -> None:
    """A TCP drop and a 1011 close: both resume with the handle."""
    spy.path = "drop and resume (%s)" % kind
    client = client_for(emu, spy, kind)
    rec = Recorder()
    with connect(client, rec) as session:
        spy.turn(session.ask("hello", timeout=WAIT))
        resumable(rec, 2)
        emu.drop()
        assert rec.wait("on_reconnect")[0].resumed
        spy.turn(session.ask("What did I say?", timeout=WAIT))
        resumable(rec, 4)
        spy.path = "1011 close and resume (%s)" % kind
        emu.close(1011, "Internal error encountered.")
        assert rec.wait("on_reconnect", 2)[1].resumed
        spy.turn(session.ask("count to 5", timeout=WAIT))
        assert session.stats().resumed == 2
        spy.session(session, rec)
    spy.session(session, rec)
    spy.assert_clean(emu)


@pytest.mark.parametrize("kind", KINDS)
def test_refused_resume_falls_back_to_a_fresh_session(emu: Any, spy: Spy, kind: str) -> None:
    """A refused resume, then a server-sent canary handle the server does not know."""
    spy.path = "refused resume (%s)" % kind
    client = client_for(emu, spy, kind)
    rec = Recorder()
    with connect(client, rec) as session:
        resumable(rec)
        emu.refuse_next_resume()
        emu.drop()
        assert not rec.wait("on_reconnect")[0].resumed
        spy.turn(session.ask("hello", timeout=WAIT))
        spy.path = "server-sent unknown handle, refused (%s)" % kind
        emu.send_raw({"sessionResumptionUpdate": {"newHandle": HANDLE, "resumable": True}})
        assert wait_for(lambda: session.resumption_handle == HANDLE)
        emu.drop()
        assert not rec.wait("on_reconnect", 2)[1].resumed
        spy.turn(session.ask("hello again", timeout=WAIT))
        assert session.stats().fresh == 2
        spy.session(session, rec)
    spy.session(session, rec)
    spy.assert_clean(emu)


def test_refused_resume_with_fail_policy_ends_the_session(emu: Any, spy: Spy) -> None:
    """on_resume_refused='fail': the refusal ends the session; Closed keeps the handle."""
    spy.path = "refused resume, fail policy"
    client = client_for(emu, spy, "key")
    rec = Recorder()
    session = connect(client, rec, reconnect=ReconnectPolicy(
        initial_delay=0.01, max_delay=0.05, on_resume_refused="fail"))
    resumable(rec)
    emu.refuse_next_resume()
    emu.drop()
    closed = rec.wait("on_close")[0]
    assert isinstance(closed.error, SessionClosedError) and closed.resumption_handle
    after_close(spy, session, SessionClosedError)
    spy.session(session, rec)
    spy.assert_clean(emu)


@pytest.mark.parametrize("code, reason", [
    (1008, "Requested entity was not found."),
    (1007, "Request contains an invalid argument."),
])
@pytest.mark.parametrize("kind", KINDS)
def test_fatal_server_close(emu: Any, spy: Spy, kind: str, code: int, reason: str) -> None:
    """A fatal close (1007/1008) ends the session: on_close, errors, sends after it."""
    spy.path = "fatal close %d (%s)" % (code, kind)
    client = client_for(emu, spy, kind)
    rec = Recorder()
    session = connect(client, rec)
    spy.turn(session.ask("hello", timeout=WAIT))
    resumable(rec, 2)
    emu.close(code, reason)
    closed = rec.wait("on_close")[0]
    assert closed.code == code and isinstance(closed.error, SessionClosedError)
    after_close(spy, session, SessionClosedError)
    spy.session(session, rec)
    spy.assert_clean(emu)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_model_is_rejected(emu: Any, spy: Spy, kind: str) -> None:
    """An unknown model: SetupRejected (1008) from the server."""
    spy.path = "bad model (%s)" % kind
    client = client_for(emu, spy, kind)
    rec = Recorder()
    options: Dict[str, Any] = dict(rec.callbacks(), config=TEXT, reconnect=FAST)
    error = spy.raises(SetupRejected, lambda: client.connect("gemini-no-such-model", **options),
                       "connect")
    assert isinstance(error, SetupRejected) and error.code == 1008
    spy.show(client, "Client")
    for name, calls in rec.calls.items():  # on_close may or may not have run
        for arg in calls:
            spy.show(arg, "%s argument" % name)
    spy.assert_clean(emu, handles=False)


def test_wrong_credentials_are_rejected(emu: Any, spy: Spy) -> None:
    """A wrong key (1007), an unknown ephemeral token (1007), an unknown bearer (401)."""
    spy.path = "wrong credentials"
    for client, error in [
        (livesync.Client(api_key=WRONG_KEY, base_url=emu.base_url), SetupRejected),
        (livesync.Client(api_key=TOKEN_UNKNOWN, base_url=emu.base_url), SetupRejected),
        (livesync.Client(vertexai=True, project="p", location="us-central1",
                         token_provider=lambda: BEARER_UNKNOWN, base_url=emu.base_url),
         InvalidStatus),
    ]:
        spy.show(client, "Client")
        dial = functools.partial(client.connect, MODEL, config=TEXT, reconnect=FAST)
        spy.raises(error, dial, "connect with a wrong credential")
    spy.assert_clean(emu, handles=False)


@pytest.mark.parametrize("status", [401, 503])
@pytest.mark.parametrize("kind", KINDS)
def test_refused_upgrade_at_connect(emu: Any, spy: Spy, kind: str, status: int) -> None:
    """The first upgrade is refused with an HTTP status: InvalidStatus."""
    spy.path = "refused upgrade %d at connect (%s)" % (status, kind)
    client = client_for(emu, spy, kind)
    emu.refuse_next_upgrade(status=status, body='{"error": {"code": %d}}' % status)
    rec = Recorder()
    error = spy.raises(InvalidStatus, lambda: connect(client, rec), "connect")
    assert isinstance(error, InvalidStatus) and error.status_code == status
    for name, calls in rec.calls.items():
        for arg in calls:
            spy.show(arg, "%s argument" % name)
    spy.assert_clean(emu, handles=False)


@pytest.mark.parametrize("kind", KINDS)
def test_refused_upgrades_while_reconnecting(emu: Any, spy: Spy, kind: str) -> None:
    """503s (with Retry-After) during a reconnect are ridden out; a 401 ends the session."""
    spy.path = "503 while reconnecting (%s)" % kind
    client = client_for(emu, spy, kind)
    rec = Recorder()
    session = connect(client, rec)
    resumable(rec)
    emu.refuse_upgrades(2, status=503, body="Service Unavailable", retry_after=0.01)
    emu.drop()
    event = rec.wait("on_reconnect")[0]
    assert event.resumed and event.attempts == 3
    spy.turn(session.ask("hello", timeout=WAIT))
    spy.path = "401 while reconnecting (%s)" % kind
    emu.refuse_upgrades(5, status=401, body='{"error": {"status": "UNAUTHENTICATED"}}')
    emu.drop()
    closed = rec.wait("on_close")[0]
    assert isinstance(closed.error, SessionClosedError)
    after_close(spy, session, SessionClosedError)
    spy.session(session, rec)
    spy.assert_clean(emu)


def test_reconnect_exhausted(emu: Any, spy: Spy) -> None:
    """A policy that gives up: ReconnectExhausted with its attempts."""
    spy.path = "reconnect exhausted"
    client = client_for(emu, spy, "key")
    rec = Recorder()
    session = connect(client, rec, reconnect=ReconnectPolicy(
        initial_delay=0.01, max_delay=0.05, max_attempts=2))
    resumable(rec)
    emu.refuse_upgrades(10, status=503, body="Service Unavailable")
    emu.drop()
    closed = rec.wait("on_close")[0]
    assert isinstance(closed.error, ReconnectExhausted)
    after_close(spy, session, ReconnectExhausted)
    spy.session(session, rec)
    spy.assert_clean(emu)


@pytest.mark.parametrize("kind", KINDS)
def test_resume_later_from_a_handle(emu: Any, spy: Spy, kind: str) -> None:
    """A new session from the last handle; one from a handle the server does not know."""
    spy.path = "resume later (%s)" % kind
    client = client_for(emu, spy, kind)
    rec = Recorder()
    with connect(client, rec) as first:
        spy.turn(first.ask("My name is Ada.", timeout=WAIT))
        resumable(rec, 2)
    handle = rec.wait("on_close")[0].resumption_handle
    assert handle
    spy.secret("resumption handle", handle)
    spy.session(first, rec)
    rec = Recorder()
    with connect(client, rec, resumption_handle=handle) as second:
        assert rec.wait("on_open")[0].resumed
        spy.turn(second.ask("What did I say?", timeout=WAIT))
        spy.session(second, rec)
    spy.session(second, rec)
    spy.path = "resume later from an unknown handle (%s)" % kind
    rec = Recorder()
    with pytest.raises(livesync.SetupRejected) as info:  # an explicit handle refused
        connect(client, rec, resumption_handle=HANDLE)
    spy.error(info.value)
    spy.assert_clean(emu)


def test_close_against_a_stalled_server(emu: Any, spy: Spy) -> None:
    """close() against a server that stopped answering: bounded, nothing shown."""
    spy.path = "close while stalled"
    client = client_for(emu, spy, "key")
    rec = Recorder()
    session = connect(client, rec, close_timeout=2 * TIMEOUT)
    resumable(rec)
    emu.stall()
    session.close()
    assert session.closed
    rec.wait("on_close")
    after_close(spy, session, SessionClosed)
    spy.session(session, rec)
    spy.assert_clean(emu)


def test_the_spy_catches_a_leak(capsys: pytest.CaptureFixture[str]) -> None:
    """The check itself: a 9-character run of a secret is a leak, 8 characters are not."""
    spy = Spy(capsys)
    spy.secret("resumption handle", HANDLE)
    spy.add("repr", "handle=%s... (64 chars)" % HANDLE[:8])
    assert spy.leaks() == []
    spy.add("log", "x" + HANDLE[20 : 20 + RUN] + "y")
    assert len(spy.leaks()) == 1
    logger = logging.Logger("livesync.test_secrecy")  # not registered: nothing to undo
    logger.addHandler(spy)
    try:
        raise ValueError("boom " + KEY)
    except ValueError:
        logger.error("failed", exc_info=True)
    spy.secret("API key", KEY)
    assert len(spy.leaks()) == 2
