"""The threaded driver behind :class:`livesync.Session`: its three thread roles.

The public :class:`~livesync.Session` is a thin handle on a :class:`Driver`; the
threads reference only the driver, so a session the application dropped can be
noticed (garbage collected) and closed.

- **supervisor** ``livesync-supervisor-<sid>``: one per session. Dials, sends
  ``setup``, waits for ``setupComplete``, flushes buffered sends, watches the
  ``goAway`` deadline and keepalive on its own timer, rotates, reconnects with
  backoff, and tears down. A flat loop; every wait is an ``Event.wait``.
- **reader** ``livesync-reader-<sid>-<generation>``: one per connection. The only
  socket reader: decodes, updates the protocol state, hands messages on. Never
  runs user code.
- **dispatcher** ``livesync-dispatch-<sid>``: one per session. Runs every user
  callback and feeds ``receive()`` and ``ask()``, one at a time, in server order
  (see :mod:`livesync._dispatch`).

One lock (``_lock``) guards the protocol state, the current connection and the
counters; ``_send_lock`` orders writes (taken before ``_lock``, never after). User
code never runs with either held.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import statistics
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    FrozenSet,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _decode, _messages
from ._dispatch import Callbacks, Delivery, Dispatcher, collect_turn
from ._lease import Lease, acquire
from ._transport import Close, ConnectionLost, MessageTooBig, Transport, TransportOptions
from .events import Closed, ErrorEvent, Opened, Reconnected, SessionStats, Turn
from .exceptions import (
    ConnectError,
    ConnectTimeout,
    InvalidConfig,
    InvalidStatus,
    LiveSyncError,
    ProtocolError,
    ReconnectExhausted,
    SessionClosed,
    SessionClosedError,
    SessionClosedOK,
    SessionHandedOver,
    SetupRejected,
    TLSError,
)
from .protocol import MEDIA_KINDS, Outbound, SessionProtocol, turn_over
from .reconnect import (
    TOOL_RESPONSE_WINDOW,
    Action,
    Outage,
    Outcome,
    ReconnectPolicy,
    classify,
)
from .store import HandleStore, StoredHandle
from .types import Blob, Content, FunctionResponse, LiveServerMessage, Part, Tool, ToolCall

__all__ = ["Dialer", "Driver", "SessionOptions"]

LOGGER = logging.getLogger("livesync.session")

#: Payload of livesync's keepalive pings; the pong echoes it (an RTT sample).
PING_PAYLOAD = b"livesync"
_DEFAULT_POLICY = ReconnectPolicy()
#: The supervisor sleeps until something is due; what starts on another thread (a
#: turn sent, a generation begun, a message held back by pacing) wakes it. This is
#: only the longest it sleeps, a safety net, not a poll.
IDLE_RECHECK = 30.0
#: The uncompressed session limits (docs/protocol.md §7.1), warned about a minute ahead.
AUDIO_SESSION_LIMIT = 15 * 60.0
VIDEO_SESSION_LIMIT = 2 * 60.0


@dataclass(frozen=True)
class Dialer:
    """How to open a connection: ``endpoint(credential) -> (url, headers)``.

    ``renewable``: every dial gets a new credential (a ``token_provider``).
    """

    endpoint: Callable[[Optional[str]], Tuple[str, Dict[str, str]]]
    credential: Callable[[], Optional[str]]
    options: TransportOptions
    renewable: bool = False

    def dial(self, timeout: float) -> Transport:
        url, headers = self.endpoint(self.credential())
        return Transport.open(url, headers, timeout=timeout, options=self.options)


@dataclass(frozen=True)
class SessionOptions:
    """Everything ``Client.connect`` hands to a session, validated once there (internal).

    The meaning of each field is documented on ``Client.connect``.
    """

    callbacks: Callbacks
    policy: Optional[ReconnectPolicy]
    transparent: bool
    resumption_handle: Optional[str]
    handle_store: Optional[HandleStore]
    session_key: Optional[str]
    open_timeout: float
    close_timeout: float
    ping_interval: Optional[float]
    ping_timeout: Optional[float]
    stall_timeout: Optional[float]
    fail_fast: bool
    max_buffered_media: int
    max_buffered_messages: int
    max_receive_queue: int
    max_queue: int
    max_queue_bytes: int
    logger: Optional[Union[logging.Logger, logging.LoggerAdapter[Any]]] = None
    takeover: bool = False
    takeover_timeout: float = 30.0
    max_buffered_media_age: Optional[float] = None


@dataclass(eq=False)
class _Connection:
    """One connection generation; fields written by the reader are read after ``done``."""

    transport: Transport
    generation: int
    reader: Optional[threading.Thread] = None
    ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome = Outcome()
    go_away: bool = False
    opened_at: float = 0.0
    last_message_at: float = 0.0
    last_activity: float = field(default_factory=time.monotonic)
    server_session_id: Optional[str] = None
    setup_sent_at: float = 0.0
    progressed: bool = False
    abandoned: threading.Event = field(default_factory=threading.Event)
    ping_sent_at: Optional[float] = None
    standby_tried: bool = False
    resumed: bool = False  # set up with a resumption handle
    last_written: Optional[Outbound] = None  # the latest message written on it

    def ended(self, *, reached_setup: bool) -> Outcome:
        """How the connection ended, with what the supervisor knows about it."""
        now = time.monotonic()
        last = self.last_written
        after_tool = last is not None and last.kind == "tool_response" and (
            now - (last.sent_at or 0.0) < TOOL_RESPONSE_WINDOW)
        return dataclasses.replace(
            self.outcome, reached_setup=reached_setup, progressed=self.progressed,
            lived=max(0.0, now - self.opened_at) if reached_setup else 0.0,
            resumed=self.resumed,
            after_tool_response=after_tool)


class _Rejected(Exception):
    """A connection attempt failed; carries how (internal)."""

    def __init__(self, outcome: Outcome, error: LiveSyncError) -> None:
        super().__init__(str(error))
        self.outcome = outcome
        self.error = error


class Driver:
    """One logical Live session, kept alive across connections. Made by ``Client.connect``.

    Every public method may be called from any thread, including from inside a
    callback. Callbacks run on the dispatcher thread, one at a time, in server
    order; a callback that blocks delays later callbacks, not the connection.
    """

    def __init__(self, dialer: Dialer, setup: Mapping[str, Any], options: SessionOptions, *,
                 vertexai: bool = False, rng: Optional[random.Random] = None,
                 lease: Optional[Lease] = None) -> None:
        """Internal: use ``Client.connect`` (it validates ``options``, takes the lease
        on ``session_key`` if the store has leases, and starts the session)."""
        self.id = uuid.uuid4().hex[:8]
        """Short id of this session, used in thread names and log records."""
        self._dialer = dialer
        self._vertexai = vertexai
        policy = self._policy = options.policy
        self._store = options.handle_store
        self._session_key = options.session_key
        self._lease = lease  # supervisor thread (and close(forget=True) after the end)
        self._forget = False  # close(forget=True): delete the stored handle at teardown
        self._forget_seen = False  # teardown saw _forget (set on the supervisor)
        self._open_timeout = options.open_timeout
        self._close_timeout = options.close_timeout
        self._ping_interval = options.ping_interval
        self._ping_timeout = options.ping_timeout
        self._stall_timeout = options.stall_timeout
        self._fail_fast = options.fail_fast
        self._rng = rng or random.Random()
        self._log = logging.LoggerAdapter(options.logger or LOGGER, {"livesync_session": self.id})
        self._debug = self._log.isEnabledFor(logging.DEBUG)
        self._explicit_handle = options.resumption_handle is not None
        handle, issued = self._initial_handle(options.resumption_handle)
        self._protocol = SessionProtocol(
            setup, transparent=options.transparent,
            replay_margin=policy.replay_margin if policy else 0.0,
            max_buffered_media=options.max_buffered_media,
            max_buffered_messages=options.max_buffered_messages,
            max_buffered_media_age=options.max_buffered_media_age,
            handle=handle, handle_issued_at=issued,
        )
        self._has_compression = "contextWindowCompression" in setup
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._ask_lock = threading.Lock()
        self._wakeup = threading.Event()
        self._closing = threading.Event()
        self._closed = threading.Event()
        self._opened = threading.Event()
        self._conn: Optional[_Connection] = None
        self._state = "connecting"
        self._close_request: Tuple[int, str] = (1000, "")
        self._final_error: Optional[BaseException] = None
        self._open_error: Optional[BaseException] = None
        self._last_close: Tuple[Optional[int], str] = (None, "")
        self._counters: Dict[str, int] = dict.fromkeys(
            ("connections", "messages_in", "bytes_in",
             "protocol_errors", "rotations_planned", "rotations_unplanned",
             "resumed", "fresh", "stalls"), 0)
        self._messages_out = self._bytes_out = 0  # under _send_lock only: one lock per send
        self._reported = (0, 0, 0)  # protocol's replayed, dropped, unconfirmed at the last report
        self._loss_unlogged = 0  # queued media dropped since the last loss WARNING
        self._loss_logged_at = -10.0
        self._gaps: Deque[float] = deque(maxlen=1000)
        self._last_close_code: Optional[int] = None
        self._started_at = time.monotonic()
        self._media_since: Dict[str, float] = {}
        self._limit_warned: set[str] = set()
        # Reconnection bookkeeping, supervisor thread only.
        self._outage: Optional[Outage] = None  # the current outage, kept across connections
        self._fresh = False
        self._store_due = False  # a new handle waits to be saved (supervisor saves it)
        self._turn_ended = threading.Event()  # set by the reader when a generation ends
        self._standby: Optional[Transport] = None  # dialed at goAway, used at rotation
        self._supervisor = threading.Thread(
            target=self._supervise, name="livesync-supervisor-%s" % self.id, daemon=True
        )
        self._dispatch = Dispatcher(
            "livesync-dispatch-%s" % self.id, options.callbacks, self._log,
            max_receive=options.max_receive_queue, max_queue=options.max_queue,
            max_queue_bytes=options.max_queue_bytes, on_callback_error=self._callback_failed,
        )

    def __repr__(self) -> str:
        return "<livesync.Session id=%s state=%s generation=%d handle=%s>" % (
            self.id, self._state, self._protocol.generation,
            "yes" if self._protocol.resumption_handle else "none",
        )

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or not issubclass(exc_type, Exception):
            self.close()  # a normal exit, or Ctrl-C / SystemExit: a normal closure
        else:
            self.close(1011, "client error")

    # Public properties.

    @property
    def resumption_handle(self) -> Optional[str]:
        """See :meth:`livesync.Session.resumption_handle`."""
        with self._lock:
            return self._protocol.resumption_handle

    @property
    def state(self) -> str:
        """See :meth:`livesync.Session.state`."""
        return self._state

    @property
    def ending(self) -> bool:
        """True once closing has started (by the user, the server or an error)."""
        return self._closing.is_set()

    @property
    def closed(self) -> bool:
        """See :meth:`livesync.Session.closed`."""
        return self._closed.is_set()

    # Sending. Any thread; never blocks longer than the write timeout.

    def send_client_content(
        self,
        *,
        turns: Union[str, Content, Mapping[str, Any], Sequence[Any], None] = None,
        turn_complete: bool = True,
    ) -> None:
        """See :meth:`livesync.Session.send_client_content`."""
        message = _messages.client_content(turns, turn_complete=turn_complete)
        self._send("content", _messages.encode(message), turn_complete=turn_complete)

    def send_text(self, text: str, *, turn_complete: bool = True) -> None:
        """See :meth:`livesync.Session.send_text`."""
        if not isinstance(text, str):
            raise InvalidConfig("text must be a string", field="text")
        self.send_client_content(turns=text, turn_complete=turn_complete)

    def send_realtime_input(
        self,
        *,
        audio: Union[Blob, Mapping[str, Any], None] = None,
        video: Union[Blob, Mapping[str, Any], None] = None,
        text: Optional[str] = None,
        activity_start: Any = None,
        activity_end: Any = None,
        audio_stream_end: Optional[bool] = None,
    ) -> None:
        """See :meth:`livesync.Session.send_realtime_input`."""
        message = _messages.realtime_input(
            audio=audio, video=video, text=text, activity_start=activity_start,
            activity_end=activity_end, audio_stream_end=audio_stream_end,
        )
        given = (("audio", audio), ("video", video), ("text", text),
                 ("activity_start", activity_start), ("activity_end", activity_end),
                 ("audio_stream_end", audio_stream_end))
        self._send(next(k for k, v in given if v is not None), _messages.encode(message))

    def send_audio(self, pcm: bytes, sample_rate: int = 16000) -> None:
        """See :meth:`livesync.Session.send_audio`."""
        self._send("audio", _messages.audio_message(pcm, sample_rate))

    def send_tool_response(
        self,
        function_responses: Union[FunctionResponse, Mapping[str, Any], Sequence[Any]],
    ) -> None:
        """See :meth:`livesync.Session.send_tool_response`."""
        message = _messages.tool_response(function_responses, vertexai=self._vertexai)
        responses = message["toolResponse"]["functionResponses"]
        with self._send_lock:
            with self._lock:
                if self._closing.is_set():
                    raise self._closed_exception()
                dropped = self._protocol.counters.dropped
                entry = self._protocol.tool_response(responses, time.monotonic())
                conn = self._conn
                dropped = self._protocol.counters.dropped - dropped
            if dropped:
                self._log.warning("not sending %d tool responses: the server cancelled "
                                  "those calls", dropped)
            if entry is not None and conn is not None:
                self._write(conn, entry)
            self._wakeup.set()  # output is owed now, or the response waits for pacing

    def send_context_update(
        self,
        *,
        system_instruction: Union[str, Content, Part, Mapping[str, Any], None] = None,
        tools: Optional[Sequence[Union[Tool, Mapping[str, Any]]]] = None,
    ) -> None:
        """See :meth:`livesync.Session.send_context_update`."""
        message = _messages.context_update(
            system_instruction=system_instruction, tools=tools, vertexai=self._vertexai)
        self._send("context_update", _messages.encode(message))

    def _send(self, kind: str, text: str, *, turn_complete: bool = False,
              claim: Optional[Callable[[int], None]] = None) -> None:
        """Buffer one message and write it now unless it must wait (any thread).

        ``claim(seq)`` runs under the lock before the message can be written
        (``ask()`` uses it to recognise the answer).
        """
        with self._send_lock:
            with self._lock:
                if self._closing.is_set():
                    raise self._closed_exception()
                dropped = self._protocol.counters.dropped
                now = time.monotonic()
                entry = self._protocol.enqueue(kind, text, now, turn_complete=turn_complete)
                if claim is not None:
                    claim(self._protocol.last_seq)
                conn = self._conn
                lost = self._protocol.counters.dropped - dropped
                first_media = kind in MEDIA_KINDS and kind not in self._media_since
                if first_media:
                    self._media_since[kind] = now
                # The supervisor watches what this may start: output owed (a stall),
                # a message held back by pacing, the session limits of a media kind.
                wake = kind not in MEDIA_KINDS or first_media or (
                    entry is None and self._protocol.queued == 1)
            if lost:
                self._warn_loss(lost)
            if entry is not None and conn is not None:
                self._write(conn, entry)
            if wake:
                self._wakeup.set()

    def _write(self, conn: _Connection, entry: Outbound) -> bool:
        """Write ``entry`` (numbered by the protocol) on ``conn``; with ``_send_lock``
        held. False if the write failed (the reader then reports the loss)."""
        try:
            size = conn.transport.send_text(entry.text)
        except ConnectionLost:
            conn.transport.abort()
            return False
        entry.written_at = time.monotonic()  # only now may a handle cover it by time
        conn.last_written = entry
        self._messages_out += 1
        self._bytes_out += size
        if self._debug:
            self._log.debug("> %s #%d (%d bytes)", entry.kind, entry.index, size)
        return True

    def _warn_loss(self, lost: int) -> None:
        """One WARNING per 10 s at most while queued media is being dropped (send path,
        with ``_send_lock`` held)."""
        self._loss_unlogged += lost
        now = time.monotonic()
        if now - self._loss_logged_at >= 10.0:
            self._log.warning("dropped %d queued media messages while disconnected "
                              "(max_buffered_media or max_buffered_media_age reached)",
                              self._loss_unlogged)
            self._loss_unlogged, self._loss_logged_at = 0, now

    # Receiving without callbacks.

    def receive(self, timeout: Optional[float] = None) -> Iterator[LiveServerMessage]:
        """See :meth:`livesync.Session.receive`."""
        yield from self._dispatch.receive(timeout)
        if isinstance(self._final_error, SessionClosedError):
            raise self._final_error

    def ask(
        self,
        text: str,
        *,
        timeout: Optional[float] = 60.0,
        interrupt: bool = False,
        tools: Optional[Mapping[str, Callable[..., Any]]] = None,
    ) -> Turn:
        """See :meth:`livesync.Session.ask`."""
        if not isinstance(text, str):
            raise InvalidConfig("text must be a string", field="text")
        _check_timeout(timeout)
        if tools is not None and not (isinstance(tools, Mapping) and all(
                isinstance(k, str) and callable(v) for k, v in tools.items())):
            raise InvalidConfig("tools must map function names to callables", field="tools")
        if threading.current_thread() is self._dispatch.thread:
            raise InvalidConfig("ask() cannot be called from a callback", field="ask")
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._ask_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise TimeoutError("another ask() did not finish in time")
        claim = self._dispatch.claim()
        try:
            if not interrupt:
                self._wait_idle(deadline)
            if self._protocol.history is None:
                message = _messages.client_content(text, turn_complete=True)
                kind = "content"
            else:  # clientContent is history only here: the question goes as realtime text
                message, kind = _messages.realtime_input(text=text), "text"
            self._send(kind, _messages.encode(message), turn_complete=True, claim=claim.take)
            return collect_turn(claim, deadline, self._closed_exception, tools=tools,
                                respond=self.send_tool_response,
                                wait_for_others=self._dispatch.has_on_message)
        finally:
            self._dispatch.release(claim)
            self._ask_lock.release()

    def _wait_idle(self, deadline: Optional[float]) -> None:
        """Block until no reply is in progress (ask's default)."""
        while True:
            self._turn_ended.clear()
            with self._lock:
                if self._protocol.idle or self._closing.is_set():
                    return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise TimeoutError("the reply in progress did not end in time")
            self._turn_ended.wait(remaining)

    # Closing.

    def close(self, code: int = 1000, reason: str = "", *, timeout: Optional[float] = None,
              forget: bool = False) -> None:
        """See :meth:`livesync.Session.close`."""
        code, reason = _close_frame(code, reason)
        _check_timeout(timeout)
        if not isinstance(forget, bool):
            raise InvalidConfig("forget must be a bool", field="forget")
        if forget:
            self._forget = True  # read by the teardown on the supervisor
        if self.request_close(code, reason):
            return  # teardown finishes on the supervisor after this callback returns
        budget = self._close_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        self._join(self._supervisor, deadline)
        self._join(self._dispatch.thread, deadline)
        if forget and self._closed.is_set() and not self._forget_seen:
            self._forget_ended()

    def _forget_ended(self) -> None:
        """``close(forget=True)`` on a session that had already ended (caller's thread):
        delete the stored handle, unless the session was handed over or another
        session holds the key's lease now (its conversation is not ours to delete)."""
        store, key = self._store, self._session_key
        if store is None or key is None or self._lease_gone():
            return
        try:
            lease = acquire(store, key, takeover=False, timeout=0.0, log=self._log)
        except LiveSyncError as exc:  # SessionBusy
            self._log.warning("not forgetting the handle: %s", exc)
            return
        try:
            store.delete(key)
        except Exception:
            self._log.warning("handle store failed to delete session key %r", key,
                              exc_info=True)
        finally:
            if lease is not None:
                lease.release(self._log)

    def _lease_gone(self) -> bool:
        """The session key belongs to another session now (handed over, or lease lost)."""
        return isinstance(self._final_error, SessionHandedOver) or (
            self._lease is not None and self._lease.lost)

    def request_close(self, code: int = 1000, reason: str = "") -> bool:
        """Start closing without waiting (any thread; also the garbage-collection path).

        Returns True when called on a livesync thread (the caller must not join).
        """
        with self._lock:
            if not self._closing.is_set():
                self._close_request = (code, reason)
                self._closing.set()
                if self._state != "closed":
                    self._state = "closing"
            conn = self._conn
            setting_up = conn is not None and conn.reader is None
        if setting_up and conn is not None:  # the supervisor is reading for setupComplete
            conn.transport.abort()
        self._wakeup.set()
        self._dispatch.stop()
        current, conn = threading.current_thread(), self._conn
        return current in (self._dispatch.thread, self._supervisor) or (
            conn is not None and current is conn.reader)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """See :meth:`livesync.Session.wait_closed`."""
        if not self._closed.wait(timeout):
            return False
        if isinstance(self._final_error, SessionClosedError):
            raise self._final_error
        return True

    def stats(self) -> SessionStats:
        """See :meth:`livesync.Session.stats`."""
        with self._lock:
            c = dict(self._counters)
            gaps = list(self._gaps)
            issued = self._protocol.handle_issued_at
            handle = self._protocol.resumption_handle
            generation = self._protocol.generation
            counters = self._protocol.counters
            c.update(replayed=counters.replayed, dropped=counters.dropped,
                     unconfirmed=counters.unconfirmed)
        return SessionStats(
            state=self._state, generation=generation, connections=c["connections"],
            messages_in=c["messages_in"], bytes_in=c["bytes_in"],
            messages_out=self._messages_out, bytes_out=self._bytes_out,
            callback_errors=self._dispatch.callback_errors,
            protocol_errors=c["protocol_errors"],
            last_close_code=self._last_close_code,
            rotations_planned=c["rotations_planned"],
            rotations_unplanned=c["rotations_unplanned"],
            resumed=c["resumed"], fresh=c["fresh"],
            gap_last_ms=gaps[-1] if gaps else None, gap_max_ms=max(gaps) if gaps else None,
            gap_median_ms=statistics.median(gaps) if gaps else None,
            replayed=c["replayed"], dropped=c["dropped"],
            receive_dropped=self._dispatch.receive_dropped,
            handle_age=(time.monotonic() - issued) if handle and issued is not None else None,
            unconfirmed=c["unconfirmed"], backpressure=self._dispatch.backpressure,
            discarded=self._dispatch.discarded, stalls=c["stalls"],
        )

    # Start-up (caller's thread).

    def _start(self) -> None:
        """Start the threads and wait for the first ``setupComplete`` (``connect()``)."""
        self._dispatch.thread.start()
        self._supervisor.start()
        self._opened.wait()
        if self._open_error is not None:
            self._join(self._supervisor, time.monotonic() + self._close_timeout)
            self._join(self._dispatch.thread, time.monotonic() + self._close_timeout)
            raise self._open_error

    def _initial_handle(self, handle: Optional[str]) -> Tuple[Optional[str], Optional[float]]:
        if handle is not None or self._store is None or self._session_key is None:
            return handle, None
        stored = self._store.load(self._session_key)
        if stored is None:
            return None, None
        age = max(0.0, time.time() - stored.issued_at)
        return stored.handle, time.monotonic() - age

    # Supervisor thread.

    def _supervise(self) -> None:
        try:
            conn = self._first_connection()
            while conn is not None:
                conn = self._maintain(conn)
        except BaseException as exc:  # noqa: B036 - report, then end the session
            self._log.error("unexpected internal error", exc_info=True)
            self._final_error = SessionClosedError(None, "internal error")
            self._final_error.__cause__ = exc
        finally:
            self._teardown()

    def _first_connection(self) -> Optional[_Connection]:
        resume = self._protocol.resumption_handle is not None
        try:
            conn = self._resume_or_fresh(resume=resume, fallback=not self._explicit_handle)
        except _Rejected as exc:
            self._open_error = exc.error
            self._final_error = _as_closed(exc.error, exc.outcome)
            self._opened.set()
            return None
        self._state = "open"
        resumed = resume and not self._fresh
        self._fresh = False
        self._dispatch.emit("open", Opened(self.id, conn.server_session_id, resumed))
        self._opened.set()
        return conn

    def _maintain(self, conn: _Connection) -> Optional[_Connection]:
        """Serve ``conn`` until it ends; return the next connection, or None to stop."""
        why = self._serve(conn)
        if why == "closing":
            code, reason = self._close_request
            self._end_connection(conn, code, reason)
            self._final_error = self._final_error or SessionClosedOK(code, reason)
            self._last_close = (code, reason)
            return None
        if why in ("handover", "lease lost"):
            self._stop_holding(conn, handover=why == "handover")
            return None
        if why == "rotate":
            new = self._rotate(conn)
            if new is not None:
                self._report(new, attempts=1, planned=True, cause="goAway",
                             since=conn.last_message_at)
                return new
        self._end_connection(conn, 1000, "")
        return self._recover(conn, conn.ended(reached_setup=True))

    def _stop_holding(self, conn: _Connection, *, handover: bool) -> None:
        """End the session because another session gets the key (supervisor thread).

        From here sends raise; messages already received still reach the callbacks.
        The connection is closed first (so the server accepts the newcomer's
        resume), then the teardown saves the latest handle and only then releases
        the lease, so the newcomer resumes with it.
        """
        key = self._session_key or ""
        error: SessionClosed
        if handover:
            error, reason = SessionHandedOver(key), "handed over"
        else:
            reason = "lease lost to another connection"
            error = SessionClosedError(1000, reason)
        with self._send_lock, self._lock:
            self._closing.set()  # sends raise ``error`` from now on
            self._final_error = error
            if self._state != "closed":
                self._state = "closing"
        self._store_due = handover  # save the latest handle even if it was saved before
        self._end_connection(conn, 1000, reason)
        self._last_close = (1000, reason)
        if handover:
            self._log.info("handed session key %r over to another connection", key)

    def _serve(self, conn: _Connection) -> str:
        """Wait until ``conn`` ends ("lost"), rotation is due ("rotate") or "closing";
        with a lease, also "handover" or "lease lost" (see :meth:`_lease_due`)."""
        next_ping = time.monotonic() + (self._ping_interval or 0.0)
        while True:
            self._wakeup.clear()
            if self._closing.is_set():
                return "closing"
            if conn.done.is_set():
                return "lost"
            now = time.monotonic()
            with self._lock:
                deadline = self._protocol.go_away_deadline
                # Fixed by the notice, not the time remaining (a lead shrinking with it
                # would put a forced rotation at the deadline itself).
                lead = self._policy.rotation_lead(self._protocol.go_away_notice) if (
                    deadline is not None and self._policy is not None) else 0.0
                due = deadline is not None and self._policy is not None and (
                    self._protocol.rotation_due(now, lead))
            if due:
                return "rotate"
            self._flush(conn)
            self._save_handle()
            waits = [IDLE_RECHECK]
            lease = self._lease_due(now, waits)
            if lease is not None:
                return lease
            with self._lock:
                hold = self._protocol.hold_deadline()
            if hold is not None:
                waits.append(hold - now)
            if deadline is not None:
                if not conn.standby_tried:
                    conn.standby_tried = True
                    self._prepare_standby(max(0.1, min(self._open_timeout, deadline - lead - now)))
                    continue
                waits.append(deadline - lead - now)
            failure = self._watchdogs(conn, now, waits)
            if failure is not None:
                self._log.warning("%s; dropping the connection", failure)
                conn.outcome = Outcome(error=failure, after_go_away=conn.go_away)
                conn.transport.abort()
                conn.done.wait(self._close_timeout)
                return "lost"
            if self._ping_interval is not None:
                if now >= next_ping:
                    self._ping(conn)
                    next_ping = now + self._ping_interval
                waits.append(next_ping - now)
            self._warn_session_limits(now, waits)
            self._wakeup.wait(max(0.0, min(waits)))

    def _lease_due(self, now: float, waits: List[float]) -> Optional[str]:
        """Renew the lease and poll for a takeover when due (supervisor). Returns
        "handover" when a requested hand-over is to happen now (a safe point, or
        ``_lease.HANDOVER_TIMEOUT`` passed), "lease lost" when another session took the
        lease, else None after appending when to look again to ``waits``."""
        lease = self._lease
        if lease is None:
            return None
        lease.tick(now, self._log)
        if lease.lost:
            return "lease lost"
        if lease.requested_at is not None:
            with self._lock:
                safe = self._protocol.handover_safe()
            if safe or lease.overdue(now):
                if not safe:
                    self._log.warning("handing over session key %r before a safe point "
                                      "(none within %.0fs of the request): input not "
                                      "covered by the last handle is lost", lease.key,
                                      now - lease.requested_at)
                return "handover"
        waits.append(lease.next_due() - now)
        return None

    def _watchdogs(self, conn: _Connection, now: float, waits: List[float]) -> Optional[str]:
        """Why ``conn`` is to be treated as failed, if it is: no pong (keepalive), or a
        server silent mid-turn (stall). Appends when to check again to ``waits``."""
        if self._ping_interval is not None and self._keepalive_dead(conn, now):
            return "keepalive timeout"
        if self._stall_timeout is None:
            return None
        if self._dispatch.blocked:  # the watch resumes when the callbacks do
            waits.append(1.0)
            return None
        with self._lock:
            owed_since = self._protocol.output_owed_since()
        if owed_since is None:
            return None
        silent_since = max(conn.last_message_at, owed_since, conn.opened_at)
        if now - silent_since >= self._stall_timeout:
            with self._lock:
                self._counters["stalls"] += 1
            return "stall: no server message for %.0fs in the middle of a turn" % (
                now - silent_since)
        waits.append(silent_since + self._stall_timeout - now)
        return None

    def _keepalive_dead(self, conn: _Connection, now: float) -> bool:
        assert self._ping_interval is not None
        if self._dispatch.blocked:  # the reader waits for callbacks, not for the server
            return False
        silence = now - conn.last_activity
        return self._ping_timeout is not None and silence > self._ping_interval + self._ping_timeout

    def _ping(self, conn: _Connection) -> None:
        conn.ping_sent_at = time.monotonic()
        try:
            conn.transport.ping(PING_PAYLOAD)
        except ConnectionLost:
            conn.transport.abort()
        if self._debug:
            self._log.debug("% ping")

    def _warn_session_limits(self, now: float, waits: List[float]) -> None:
        if self._has_compression:
            return
        for kind, limit in (("audio", AUDIO_SESSION_LIMIT), ("video", VIDEO_SESSION_LIMIT)):
            since = self._media_since.get(kind)
            if since is None or kind in self._limit_warned:
                continue
            due = self._started_at + limit - min(60.0, limit / 4)
            if now < due:
                waits.append(due - now)
            else:
                self._limit_warned.add(kind)
                self._log.warning(
                    "session sends %s without context window compression: the server ends "
                    "such sessions after %d minutes; set context_window_compression",
                    kind, int(limit // 60),
                )

    def _prepare_standby(self, timeout: float) -> None:
        """After goAway, dial the next connection now, so that the dial (TCP, TLS,
        upgrade) overlaps the rest of the current turn instead of the gap."""
        try:
            self._standby = self._dialer.dial(timeout)
        except LiveSyncError as exc:
            self._log.info("standby dial failed (%s); will dial at rotation", exc)

    def _take_standby(self) -> Optional[Transport]:
        standby, self._standby = self._standby, None
        return standby

    def _rotate(self, old: _Connection) -> Optional[_Connection]:
        """Planned rotation: close the old socket, then resume on the standby (or a new one).

        The close frame goes first, so that its echo travels while the new socket is
        dialed; the setup (with the handle) waits until the old connection is closed.
        """
        with self._send_lock, self._lock:
            self._protocol.begin_rotation()  # sends queue from here on
        old.transport.send_close(1000, "rotating")
        transport = self._take_standby()
        if transport is None:
            try:
                transport = self._dialer.dial(self._open_timeout)
            except LiveSyncError as exc:
                self._log.warning("rotation dial failed (%s); reconnecting", type(exc).__name__)
                return None
        self._end_connection(old, 1000, "rotating")
        self._state = "reconnecting"
        try:
            return self._resume_or_fresh(transport)
        except _Rejected as exc:
            old.outcome = exc.outcome
            return None

    def _recover(self, old: _Connection, outcome: Outcome) -> Optional[_Connection]:
        """Reconnect after an unexpected end of ``old``; None ends the session.

        The :class:`~livesync.reconnect.Outage` decides (backoff, budget, storm);
        this loop only waits and dials.
        """
        if self._closing.is_set():
            return None
        self._state = "reconnecting"
        action = classify(outcome, renewable_credential=self._dialer.renewable)
        if self._policy is not None and self._policy.resume_refused(outcome) and (
                self._policy.on_resume_refused == "fresh"):
            self._start_fresh("the resumed session closed right after setup (%s)"
                              % _cause(outcome))
            action = Action.RETRY
        if action is Action.FATAL or self._policy is None:
            self._final_error = _as_closed(_describe(outcome), outcome)
            self._last_close = (outcome.code, outcome.reason)
            return None
        planned = classify(outcome) is Action.ROTATE
        now = time.monotonic()
        outage = (Outage.start(self._policy, outcome, now) if self._outage is None
                  else self._outage.record(outcome, now))
        while True:
            outage = self._maybe_fall_back(outage)
            try:
                outage = outage.next_attempt(self._rng, time.monotonic())
            except ReconnectExhausted as exc:
                return self._give_up(exc)
            self._log.info("reconnecting in %.2fs (attempt %d): %s", outage.delay,
                           outage.attempt, _cause(outage.cause))
            if self._closing.wait(outage.delay):
                return None
            try:
                conn = self._resume_or_fresh()
            except _Rejected as exc:
                outage = outage.record(exc.outcome, time.monotonic())
                if classify(exc.outcome, renewable_credential=self._dialer.renewable) is (
                        Action.FATAL):
                    self._final_error = _as_closed(exc.error, exc.outcome)
                    return None
                continue
            self._outage = outage
            self._report(conn, attempts=outage.attempt, planned=planned,
                         cause=_cause(outage.cause), since=old.last_message_at)
            return conn

    def _maybe_fall_back(self, outage: Outage) -> Outage:
        """A resume that the server closes right after setupComplete, again and again,
        is poisoned: fall back per ``on_resume_refused`` once before giving up."""
        assert self._policy is not None
        if not outage.storm() or outage.fell_back or self._policy.on_resume_refused != "fresh":
            return outage
        with self._lock:
            if self._protocol.resumption_handle is None:
                return outage
        self._start_fresh("the resumed session keeps closing right after setup (%s)"
                          % _cause(outage.cause))
        return outage.fall_back()

    def _resume_or_fresh(self, transport: Optional[Transport] = None, *,
                         resume: bool = True, fallback: bool = True) -> _Connection:
        """Connect (resuming if asked); if the server refuses the handle, apply the
        policy: start a fresh session (default) or fail. Without ``fallback`` (a
        handle the application passed to ``connect``) a refusal is an error."""
        try:
            return self._connect_once(transport, resume=resume)
        except _Rejected as exc:
            if not (resume and self._refused_resume(exc.outcome)):
                raise
            if not fallback:
                error = SetupRejected(exc.outcome.effective_code, "the resumption handle "
                                      "was refused (expired, unknown, or held by another "
                                      "connection): %s" % exc.outcome.reason[:80])
                raise _Rejected(exc.outcome, error) from exc
            if self._policy is not None and self._policy.on_resume_refused == "fail":
                raise
            self._start_fresh("resumption refused (%s)" % exc.error)
            return self._connect_once(None, resume=False)

    def _refused_resume(self, outcome: Outcome) -> bool:
        return (self._policy or _DEFAULT_POLICY).resume_refused(outcome)

    def _start_fresh(self, why: str) -> None:
        """The server will not restore the session: continue in a fresh one (supervisor)."""
        with self._lock:
            self._protocol.start_fresh()
            seeded = self._protocol.history is not None and len(self._protocol.history) > 0
        self._fresh = True
        self._log.warning("%s; starting a fresh session%s", why,
                          " with the conversation's text as history" if seeded else "")

    def _give_up(self, error: ReconnectExhausted) -> Optional[_Connection]:
        self._log.warning("%s", error)
        self._final_error = error
        self._last_close = (error.code, error.reason)
        return None

    def _connect_once(self, transport: Optional[Transport], *, resume: bool) -> _Connection:
        """Dial (unless given a dialed transport), set up, and flush buffered sends.

        Raises:
            _Rejected: with the outcome and the typed error.
        """
        deadline = time.monotonic() + self._open_timeout
        if transport is None:
            transport = self._dial()
        with self._send_lock, self._lock:
            setup = self._protocol.begin_connection(resume=resume)
            conn = _Connection(transport, self._protocol.generation,
                               resumed=resume and self._protocol.resumption_handle is not None)
            self._conn = conn
        try:
            conn.setup_sent_at = time.monotonic()
            size = transport.send_text(setup)
        except ConnectionLost as exc:
            transport.abort()
            raise _Rejected(Outcome(None, "", error="setup not sent"),
                            SetupRejected(1006, "connection lost")) from exc
        with self._send_lock:
            self._messages_out += 1
            self._bytes_out += size
        self._await_setup(conn, deadline)
        with self._lock:
            self._protocol.open()
            conn.opened_at = time.monotonic()
            self._counters["connections"] += 1
            conn.reader = threading.Thread(  # from here close() no longer aborts it
                target=self._read, args=(conn,), daemon=True,
                name="livesync-reader-%s-%d" % (self.id, conn.generation),
            )
        conn.reader.start()
        self._flush(conn)
        return conn

    def _dial(self) -> Transport:
        """Dial (or take the standby). Every failure becomes a :class:`_Rejected`
        with its outcome: this is the one place dial errors are classified."""
        standby = self._take_standby()
        if standby is not None:
            return standby
        try:
            return self._dialer.dial(self._open_timeout)
        except InvalidStatus as exc:
            outcome = Outcome(status_code=exc.status_code, error=str(exc),
                              retry_after=exc.retry_after)
            raise _Rejected(outcome, exc) from exc
        except TLSError as exc:
            raise _Rejected(Outcome(error=str(exc), fatal=True), exc) from exc
        except ConnectTimeout as exc:
            raise _Rejected(Outcome(error="connect timeout"), exc) from exc
        except InvalidConfig as exc:  # the token_provider returned no token
            error = ConnectError(str(exc))
            raise _Rejected(Outcome(error=str(error)), error) from exc
        except LiveSyncError as exc:
            raise _Rejected(Outcome(error=str(exc)), exc) from exc
        except Exception as exc:  # a token_provider that raised
            error = ConnectError("token_provider raised %s" % type(exc).__name__)
            raise _Rejected(Outcome(error=str(error)), error) from exc

    def _await_setup(self, conn: _Connection, deadline: float) -> None:
        """Read ``conn`` on this (supervisor) thread up to ``setupComplete``; its reader
        thread starts after. One thread hand-off fewer in every reconnect's gap.
        ``close()`` aborts the socket to end the wait (:meth:`request_close`)."""
        while not conn.ready.is_set() and not conn.done.is_set():
            remaining = deadline - time.monotonic()
            if self._closing.is_set() or remaining <= 0:
                break
            self._read_one(conn, remaining)
        if conn.ready.is_set():
            return
        if self._closing.is_set():
            conn.transport.abort()
            self._connection_ended(conn, Outcome(1000, "closing"))
            raise _Rejected(Outcome(1000, "closing"), SessionClosedOK(1000, "closed"))
        if conn.done.is_set():
            out = conn.ended(reached_setup=False)
            raise _Rejected(out, SetupRejected(out.effective_code, out.reason))
        conn.transport.abort()
        self._connection_ended(conn, Outcome(None, "", error="setup timeout"))
        raise _Rejected(Outcome(None, "", error="setup timeout"),
                        ConnectTimeout("no setupComplete within %.1fs" % self._open_timeout))

    def _flush(self, conn: _Connection) -> None:
        """Write the queued messages that may go now, in order (supervisor thread):
        replays after setupComplete, and messages released by pacing."""
        with self._send_lock:
            while True:
                with self._lock:
                    entry = self._protocol.next_to_send(time.monotonic())
                if entry is None or not self._write(conn, entry):
                    return

    def _save_handle(self) -> None:
        """Persist the latest handle in the handle store (supervisor thread)."""
        if not self._store_due or self._store is None or self._session_key is None:
            return
        self._store_due = False
        if self._lease is not None and self._lease.lost:
            return  # the key is another session's now: never overwrite its handle
        with self._lock:
            handle, issued = self._protocol.resumption_handle, self._protocol.handle_issued_at
        if handle is None:
            return
        age = time.monotonic() - issued if issued is not None else 0.0
        try:
            self._store.save(self._session_key, StoredHandle(handle, time.time() - age))
        except Exception as exc:
            self._log.warning("handle store failed: %s", type(exc).__name__, exc_info=True)
            self._dispatch.emit("error", ErrorEvent(exc, None))

    def _end_connection(self, conn: _Connection, code: int, reason: str) -> None:
        """Close ``conn`` within ``close_timeout``: close frame, wait for the echo, abort."""
        conn.abandoned.set()
        self._dispatch.wake()  # a reader waiting for room in the callback queue moves on
        if not conn.done.is_set():
            conn.transport.send_close(code, reason)
            conn.done.wait(self._close_timeout * 0.8)
        conn.transport.abort()
        if conn.reader is not None and conn.reader is not threading.current_thread():
            conn.reader.join(self._close_timeout * 0.2 + 0.1)
        with self._lock:
            if conn.outcome.code is not None:
                self._last_close_code = conn.outcome.code

    def _report(self, conn: _Connection, *, attempts: int, planned: bool, cause: str,
                since: float) -> None:
        """Count and announce a finished connection change (supervisor thread)."""
        gap = max(0.0, (conn.opened_at - since) * 1000.0) if since else 0.0
        fresh, self._fresh = self._fresh, False
        with self._lock:
            counters = self._protocol.counters
            totals = (counters.replayed, counters.dropped, counters.unconfirmed)
            dropped_tools = tuple(counters.dropped_tool_ids)
            counters.dropped_tool_ids.clear()
            self._gaps.append(gap)
            self._counters["rotations_planned" if planned else "rotations_unplanned"] += 1
            self._counters["fresh" if fresh else "resumed"] += 1
        replayed, dropped, unconfirmed = (a - b for a, b in zip(totals, self._reported))
        self._reported = totals
        self._state = "open"
        event = Reconnected(conn.generation, attempts, planned, not fresh, cause, gap,
                            replayed, dropped, dropped_tools, unconfirmed)
        log = self._log.warning if dropped else self._log.info
        log("reconnected (%s, %s): gap %.1f ms, replayed %d (%d unconfirmed), dropped %d",
            "planned" if planned else "unplanned",
            "resumed" if not fresh else "fresh session", gap, replayed, unconfirmed, dropped)
        self._dispatch.emit("reconnect", event)

    def _teardown(self) -> None:
        with self._lock:
            requested = self._closing.is_set()  # close() (or a handover) ended it
            self._closing.set()  # sends raise from now on
        standby = self._take_standby()
        if standby is not None:
            standby.abort()
        conn = self._conn
        if conn is not None and not conn.done.is_set():
            self._end_connection(conn, 1000, "")
        self._finish_store()
        with self._lock:
            self._protocol.close()
            handle = self._protocol.resumption_handle
        self._state = "closed"
        if self._final_error is None and requested:  # close() during a reconnect
            self._final_error = SessionClosedOK(*self._close_request)
        error = self._final_error
        code, reason = self._last_close
        if isinstance(error, SessionClosed) and error.code is not None:
            code, reason = error.code, error.reason
        clean = isinstance(error, SessionClosedOK) and not isinstance(error, SessionHandedOver)
        closed = Closed(code, reason, None if clean else error, handle)
        self._log.info("closed: %s %s", code, reason[:75])
        self._dispatch.emit("close", closed)
        self._join(self._dispatch.thread, time.monotonic() + self._close_timeout)
        self._closed.set()
        self._wakeup.set()

    def _finish_store(self) -> None:
        """Save the final handle, or delete it after ``close(forget=True)``; then
        release the lease (teardown, supervisor thread). The order matters: a
        session waiting to take over gets the lease only once the handle is saved."""
        self._forget_seen = self._forget
        forget = self._forget_seen and not self._lease_gone()
        if not forget:
            self._save_handle()
        elif self._store is not None and self._session_key is not None:
            try:
                self._store.delete(self._session_key)
            except Exception as exc:
                self._log.warning("handle store failed: %s", type(exc).__name__, exc_info=True)
                self._dispatch.emit("error", ErrorEvent(exc, None))
        if self._lease is not None:
            self._lease.release(self._log)

    def _join(self, thread: threading.Thread, deadline: float) -> None:
        if thread is threading.current_thread() or not thread.is_alive():
            return
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            self._log.warning("thread %s did not exit in time", thread.name)

    # Reader thread (and the supervisor, up to setupComplete).

    def _read(self, conn: _Connection) -> None:
        while self._read_one(conn):
            pass

    def _read_one(self, conn: _Connection, timeout: Optional[float] = None) -> bool:
        """Read one frame and act on it; False once ``conn`` has ended (its outcome and
        ``done`` set). ``timeout`` bounds the wait (the supervisor's setup deadline)."""
        try:
            item = conn.transport.recv(timeout)
            if item is None:
                return True
            now = conn.last_activity = time.monotonic()
            if isinstance(item, Close):
                outcome = Outcome(item.code, item.reason, after_go_away=conn.go_away)
            elif not item.control:
                self._handle_frame(conn, item.data, now)
                return True
            else:
                if item.data == PING_PAYLOAD and conn.ping_sent_at is not None:
                    with self._lock:
                        self._protocol.observe_rtt(now - conn.ping_sent_at)
                    conn.ping_sent_at = None
                return True
        except MessageTooBig as exc:
            self._log.warning("closing the connection: %s", exc)
            conn.transport.send_close(1009, "message too big")
            outcome = Outcome(1009, str(exc), fatal=True)
        except ConnectionLost as exc:
            outcome = Outcome(None, "", error=str(exc), after_go_away=conn.go_away)
        except BaseException:  # noqa: B036 - a reader must never die silently
            self._log.error("unexpected internal error in the reader", exc_info=True)
            outcome = Outcome(None, "", error="internal error", after_go_away=conn.go_away)
        self._connection_ended(conn, outcome)
        return False

    def _connection_ended(self, conn: _Connection, outcome: Outcome) -> None:
        """Record how ``conn`` ended (the first outcome wins) and wake the supervisor."""
        if conn.outcome == Outcome():
            conn.outcome = outcome
        conn.done.set()
        self._wakeup.set()
        if self._debug:
            self._log.debug("= connection %d ended: %s", conn.generation, conn.outcome)

    def _handle_frame(self, conn: _Connection, data: bytes, now: float) -> None:
        """Decode one data frame, update the state, hand the message on (reader thread)."""
        try:
            message = _decode.parse_server_message(data)
        except ProtocolError as exc:
            with self._lock:
                self._counters["protocol_errors"] += 1
            self._log.warning("skipped a malformed server message: %s", exc)
            self._dispatch.emit("error", ErrorEvent(exc))
            return
        conn.last_message_at = now
        if message.server_content is not None or message.tool_call is not None:
            conn.progressed = True
        with self._lock:
            if message.setup_complete is not None:
                self._protocol.observe_rtt(now - conn.setup_sent_at)
            dropped = self._protocol.counters.dropped
            received = self._protocol.receive(message, now, conn.transport.quiet_since)
            lost = self._protocol.counters.dropped - dropped
            self._counters["messages_in"] += 1
            self._counters["bytes_in"] += len(data)
            rotation_pending = self._protocol.go_away_deadline is not None
            content = message.server_content  # a reply may have ended (or a connection)
            ended = message.setup_complete is not None or turn_over(content) or (
                content is not None and bool(content.interrupted))
            idle = ended and self._protocol.idle
        if lost:
            self._log.warning("dropped %d tool responses: the model did not ask again "
                              "after the session was resumed", lost)
        if self._debug:
            self._log.debug("< %s (%d bytes)", message.kind, len(data))
        if message.go_away is not None:
            conn.go_away = True
            self._log.info("goAway received: %s left", message.go_away.time_left)
        delivered = _hide_calls(message, received.hidden) if received.hidden else message
        if delivered is not None:
            self._dispatch.deliver(Delivery(delivered, received.owner, conn.generation, len(data)),
                                   conn.abandoned.is_set)
            conn.last_activity = time.monotonic()
        update = message.session_resumption_update
        wake = received.flush or received.started or rotation_pending
        if update is not None and update.resumable and update.new_handle:
            self._store_due = self._store is not None
            wake = wake or self._store_due
        if idle:
            self._turn_ended.set()
            lease = self._lease
            wake = wake or (lease is not None and lease.requested_at is not None)
        if message.setup_complete is not None and not conn.ready.is_set():
            conn.server_session_id = message.setup_complete.session_id
            conn.ready.set()
            wake = True
        if wake:  # the supervisor flushes, saves the handle or re-checks for a safe point
            self._wakeup.set()

    # Dispatcher thread (hooks run by the Dispatcher).

    def _callback_failed(self, name: str, exc: Exception) -> None:
        if self._fail_fast and not self._closing.is_set():
            error = SessionClosedError(1011, "callback %s failed" % name)
            error.__cause__ = exc
            self._final_error = error
            self.close(1011, "client callback failed")

    # Helpers.

    def _closed_exception(self) -> SessionClosed:
        error = self._final_error
        if isinstance(error, (SessionClosedError, SessionHandedOver)):
            return error
        code, reason = self._close_request
        return SessionClosedOK(code, reason)


def _hide_calls(message: LiveServerMessage, hidden: FrozenSet[str]) -> Optional[LiveServerMessage]:
    """``message`` without the re-issued calls ``hidden`` (already delivered under
    their old id); None if nothing is left to deliver."""
    call = message.tool_call
    assert call is not None and call.function_calls
    kept = [c for c in call.function_calls if c.id not in hidden]
    if kept:
        return dataclasses.replace(message, tool_call=ToolCall(function_calls=kept))
    rest = dataclasses.replace(message, tool_call=None)
    return None if rest.kind == "unknown" and not rest.unknown else rest


#: Close codes a client may send (RFC 6455 §7.4; 1005, 1006 and 1015 never go on the wire).
CLIENT_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})


def _close_frame(code: int, reason: str) -> Tuple[int, str]:
    """Check a close code and cut ``reason`` to 123 UTF-8 bytes at a character boundary."""
    if (not isinstance(code, int) or isinstance(code, bool)
            or not (code in CLIENT_CLOSE_CODES or 3000 <= code <= 4999)):
        raise InvalidConfig("close code must be 1000-1003, 1007-1011 or 3000-4999",
                            field="code")
    if not isinstance(reason, str):
        raise InvalidConfig("reason must be a string", field="reason")
    data = reason.encode("utf-8", "replace")[:123]
    return code, data.decode("utf-8", "ignore")


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is None:
        return
    if (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
            or not math.isfinite(timeout) or timeout < 0):
        raise InvalidConfig("timeout must be a finite number of seconds >= 0, or None",
                            field="timeout")


def _cause(outcome: Outcome) -> str:
    """What ended a connection, for ``Reconnected.cause`` and the logs."""
    if outcome.after_go_away and outcome.code in (None, 1000, 1011):
        return "goAway"
    if outcome.code is not None:
        return ("close %d %s" % (outcome.code, outcome.reason[:120])).strip()
    if outcome.status_code is not None:
        return "HTTP %d" % outcome.status_code
    return outcome.error or "connection lost"


def _describe(outcome: Outcome) -> LiveSyncError:
    if outcome.status_code is not None:
        return InvalidStatus(outcome.status_code)
    if outcome.code == 1000:
        return SessionClosedOK(1000, outcome.reason)
    return SessionClosedError(outcome.effective_code, outcome.reason)


def _as_closed(error: BaseException, outcome: Outcome) -> SessionClosed:
    if isinstance(error, SessionClosed):
        return error
    closed = SessionClosedError(outcome.code, outcome.reason)
    closed.__cause__ = error
    return closed
