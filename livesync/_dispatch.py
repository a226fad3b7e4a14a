"""The dispatcher thread ``livesync-dispatch-<sid>``: user callbacks, ``receive()`` and ``ask()``.

Other threads :meth:`Dispatcher.emit` typed events; the dispatcher handles them
one at a time, in order, on its own thread, so user code never runs on the reader
or the supervisor and never under a livesync lock. It is a leaf: it calls user
code and nothing of the session. A ``close`` event is the last: it ends
``receive()`` iterators and ``ask()`` calls, runs ``on_close`` and stops the thread.

**One consumer cursor.** A server message goes to ``on_message`` always, and then
to exactly one of: the ``ask()`` whose question it answers (its ``owner`` is the
question's ``seq``), or the ``receive()`` buffer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Tuple,
)

from .events import Closed, ErrorEvent, Turn
from .exceptions import ToolCallPending
from .protocol import turn_over
from .types import FunctionCall, FunctionResponse, LiveServerMessage, UsageMetadata

__all__ = ["Callbacks", "Claim", "Delivery", "Dispatcher", "collect_turn"]

#: Seconds between two back-pressure warnings.
WARN_EVERY = 10.0


class Delivery(NamedTuple):
    """A server message with what the protocol knows of it (a tuple: one per message).

    Attributes:
        message: the message.
        owner: ``seq`` of the user turn whose generation it belongs to, if known.
        generation: the connection it arrived on.
        size: its size on the wire, in bytes.
    """

    message: LiveServerMessage
    owner: Optional[int]
    generation: int
    size: int = 0


class Claim:
    """An ``ask()`` waiting for the answer to its question (``seq``, set when sent)."""

    def __init__(self) -> None:
        self.seq: Optional[int] = None
        self.inbox: SimpleQueue[Tuple[str, Any]] = SimpleQueue()

    def take(self, seq: int) -> None:
        self.seq = seq


@dataclass(frozen=True)
class Callbacks:
    """The user's callbacks; each takes one argument (see ``Client.connect``)."""

    on_message: Optional[Callable[[LiveServerMessage], Any]] = None
    on_goaway: Optional[Callable[[Any], Any]] = None
    on_resumption_update: Optional[Callable[[Any], Any]] = None
    on_close: Optional[Callable[[Closed], Any]] = None
    on_open: Optional[Callable[[Any], Any]] = None
    on_reconnect: Optional[Callable[[Any], Any]] = None
    on_error: Optional[Callable[[ErrorEvent], Any]] = None


class Dispatcher:
    """Runs callbacks and feeds ``receive()``/``ask()`` on one thread.

    Args:
        name: the thread name.
        callbacks: the user's callbacks.
        log: where callback failures and backlog warnings go.
        max_receive: messages kept for ``receive()``; the oldest are dropped beyond.
        max_queue: server messages waiting for callbacks before the reader waits.
        max_queue_bytes: their total size before the reader waits.
        on_callback_error: called (on this thread) after a callback raised.
    """

    def __init__(
        self,
        name: str,
        callbacks: Callbacks,
        log: logging.LoggerAdapter[Any],
        *,
        max_receive: int,
        max_queue: int = 1000,
        max_queue_bytes: int = 32 * 1024 * 1024,
        on_callback_error: Callable[[str, Exception], None],
    ) -> None:
        self._callbacks = callbacks
        self._log = log
        self._max_receive = max_receive
        self._on_callback_error = on_callback_error
        self._queue: SimpleQueue[Tuple[str, Any]] = SimpleQueue()
        self._lock = threading.Lock()
        self._claims: Tuple[Claim, ...] = ()  # replaced, never mutated
        self._received: Deque[LiveServerMessage] = deque()
        self._ended = False
        self._cond = threading.Condition()
        self._waiting = 0  # receive() calls blocked in wait, under _cond
        # Keep messages for receive() from the start only when no on_message callback
        # consumes them; otherwise from the first receive() call on. Retaining thousands
        # of unread messages costs memory and garbage-collector time.
        self._buffering = callbacks.on_message is None
        self._stopping = False
        self._room = threading.Event()  # set by the dispatcher when a blocked reader may go on
        self._max_queue = max_queue
        self._max_queue_bytes = max_queue_bytes
        # Lock-free counters: each is written by one thread only (in: the reader, out:
        # the dispatcher), so the hot path takes no lock the other thread wants.
        self._in = self._in_bytes = 0
        self._out = self._out_bytes = 0
        self._warned_at = -WARN_EVERY
        self.blocked = False
        """True while the reader waits for room (back-pressure)."""
        self.backpressure = 0
        self.callback_errors = 0
        self.receive_dropped = 0
        self.discarded = 0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def emit(self, kind: str, payload: Any) -> None:
        """Queue a lifecycle event (not a server message). Any thread; never blocks."""
        self._queue.put((kind, payload))

    def deliver(self, delivery: Delivery, abandoned: Callable[[], bool]) -> None:
        """Queue a server message (reader thread).

        While ``max_queue`` messages or ``max_queue_bytes`` wait for callbacks, this
        blocks: back-pressure. The reader stops reading, TCP flow control slows the
        server, and memory stays bounded. It returns when there is room, when
        ``close()`` was called, or when ``abandoned()`` (the connection is being
        torn down; :meth:`wake` re-checks it).
        """
        if not self._has_room():
            self.backpressure += 1
            self._warn_full()
            self.blocked = True
            while not (self._has_room() or self._stopping or abandoned()):
                self._room.clear()
                if self._has_room():
                    break
                self._room.wait(1.0)
            self.blocked = False
        self._in += 1
        self._in_bytes += delivery.size
        self._queue.put(("message", delivery))

    def _has_room(self) -> bool:
        return (self._in - self._out < self._max_queue
                and self._in_bytes - self._out_bytes < self._max_queue_bytes)

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            self._log.warning("callbacks are %d messages (%d bytes) behind the connection; "
                              "reading paused until they catch up", self._in - self._out,
                              self._in_bytes - self._out_bytes)

    def wake(self) -> None:
        """Make a blocked :meth:`deliver` re-check its conditions. Any thread."""
        self._room.set()

    def stop(self) -> None:
        """``close()`` was called: from now on only the close event is delivered;
        queued events are discarded (counted). Any thread."""
        self._stopping = True
        self.wake()

    def claim(self) -> Claim:
        """Register an ``ask()``: messages owned by its question (and the final
        close) go to its inbox instead of ``receive()``. Any thread."""
        claim = Claim()
        with self._lock:
            self._claims += (claim,)
        return claim

    def release(self, claim: Claim) -> None:
        with self._lock:
            self._claims = tuple(c for c in self._claims if c is not claim)

    @property
    def has_on_message(self) -> bool:
        return self._callbacks.on_message is not None

    def receive(self, timeout: Optional[float]) -> Iterator[LiveServerMessage]:
        """Yield buffered messages until the close event (see ``Session.receive``)."""
        self._buffering = True
        while True:
            with self._cond:
                self._waiting += 1
                try:
                    ready = self._cond.wait_for(lambda: self._received or self._ended, timeout)
                finally:
                    self._waiting -= 1
                if not ready:
                    raise TimeoutError("no message within %.1fs" % (timeout or 0.0))
                if not self._received:
                    return
                message = self._received.popleft()
            yield message

    # The dispatcher thread.

    def _run(self) -> None:
        while True:
            kind, payload = self._queue.get()
            try:
                if kind == "close":
                    self._close(payload)
                    return
                if kind == "message":
                    self._dequeued(payload.size)
                if self._stopping:
                    self.discarded += kind == "message"
                    continue
                self._deliver(kind, payload)
            except BaseException:  # noqa: B036 - the dispatcher must keep going
                self._log.error("unexpected internal error in the dispatcher", exc_info=True)

    def _dequeued(self, size: int) -> None:
        self._out += 1
        self._out_bytes += size
        if self.blocked:
            self._room.set()

    def _deliver(self, kind: str, payload: Any) -> None:
        cb = self._callbacks
        if kind == "message":
            message = payload.message
            claim = None
            if self._claims and payload.owner is not None:  # only while an ask() waits
                claim = next((c for c in self._claims if c.seq == payload.owner), None)
            if claim is not None:
                claim.inbox.put((kind, payload))
            elif self._buffering:
                self._feed_receive(message)
            self.call("on_message", cb.on_message, message)
            if message.go_away is not None:
                self.call("on_goaway", cb.on_goaway, message.go_away)
            if message.session_resumption_update is not None:
                self.call("on_resumption_update", cb.on_resumption_update,
                          message.session_resumption_update)
        elif kind == "open":
            self.call("on_open", cb.on_open, payload)
        elif kind == "reconnect":
            self.call("on_reconnect", cb.on_reconnect, payload)
        elif kind == "error":
            self.report_error(payload)

    def _close(self, closed: Closed) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        for claim in self._claims:
            claim.inbox.put(("close", closed))
        if self._callbacks.on_close is not None:
            try:
                self._callbacks.on_close(closed)
            except Exception:
                self._log.error("callback on_close raised", exc_info=True)

    def _feed_receive(self, message: LiveServerMessage) -> None:
        with self._cond:
            self._received.append(message)
            if len(self._received) > self._max_receive:
                self._received.popleft()
                self.receive_dropped += 1
                if self.receive_dropped == 1 or self.receive_dropped % 1000 == 0:
                    self._log.warning("receive() buffer full: dropped %d oldest messages "
                                      "(nobody is reading them)", self.receive_dropped)
            if self._waiting:  # notify() is pure Python: skip it when nobody waits
                self._cond.notify_all()

    def call(self, name: str, callback: Optional[Callable[[Any], Any]], arg: Any) -> None:
        """Run one callback; log, count and report what it raises (dispatcher thread)."""
        if callback is None:
            return
        try:
            callback(arg)
        except Exception as exc:
            self.callback_errors += 1
            self._log.error("callback %s raised", name, exc_info=True)
            self.report_error(ErrorEvent(exc, name))
            self._on_callback_error(name, exc)

    def report_error(self, event: ErrorEvent) -> None:
        """Hand ``event`` to ``on_error``; its own exceptions are only logged."""
        if self._callbacks.on_error is None:
            return
        try:
            self._callbacks.on_error(event)
        except Exception:
            self._log.error("callback on_error raised", exc_info=True)


Tools = Mapping[str, Callable[..., Any]]


def collect_turn(
    claim: Claim,
    deadline: Optional[float],
    closed_error: Callable[[], BaseException],
    *,
    tools: Optional[Tools] = None,
    respond: Callable[[List[FunctionResponse]], None],
    wait_for_others: bool = False,
) -> Turn:
    """Gather the model turn answering ``claim`` (runs on the thread calling ``ask``).

    Tool calls in the turn are answered with ``tools``; a call ``tools`` does not
    cover raises :class:`ToolCallPending`, unless ``wait_for_others`` (an
    ``on_message`` callback may answer it).
    """
    messages: List[LiveServerMessage] = []
    generation = None
    waiting: List[FunctionCall] = []
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        try:
            if remaining is not None and remaining <= 0:
                raise Empty
            kind, payload = claim.inbox.get(timeout=remaining)
        except Empty:
            raise TimeoutError(_late(waiting)) from None
        if kind == "close":
            raise closed_error()
        if payload.generation != generation:
            messages = []  # replayed on a new connection: the answer starts anew
            generation = payload.generation
        message = payload.message
        messages.append(message)
        if message.tool_call is not None:
            waiting = _run_tools(message.tool_call.function_calls or [], tools, respond,
                                 wait_for_others)
        if turn_over(message.server_content):
            return _turn(messages)


def _late(waiting: List[FunctionCall]) -> str:
    if not waiting:
        return "the turn did not complete in time"
    return "the turn did not complete in time; it waits for a response to %s" % (
        _describe_calls(waiting))


def _describe_calls(calls: List[FunctionCall]) -> str:
    return ", ".join("%s (id %s)" % (c.name, (c.id or "-")[:40]) for c in calls)


def _run_tools(calls: List[FunctionCall], tools: Optional[Tools],
               respond: Callable[[List[FunctionResponse]], None],
               wait_for_others: bool) -> List[FunctionCall]:
    """Answer the calls ``tools`` covers; return those left to someone else."""
    missing = [c for c in calls if not tools or c.name not in tools]
    if missing and not wait_for_others:
        raise ToolCallPending(tuple(missing))
    answers = [FunctionResponse(id=c.id, name=c.name, response=_call(tools, c))
               for c in calls if tools and c.name in tools]
    if answers:
        respond(answers)
    return missing


def _call(tools: Optional[Tools], call: FunctionCall) -> Dict[str, Any]:
    assert tools is not None and call.name is not None
    try:
        result = tools[call.name](**(call.args or {}))
    except Exception as exc:
        return {"error": "%s: %s" % (type(exc).__name__, exc)}
    return result if isinstance(result, dict) else {"result": result}


def _turn(messages: List[LiveServerMessage]) -> Turn:
    text: List[str] = []
    audio: List[bytes] = []
    transcript: List[str] = []
    heard: List[str] = []
    calls: List[FunctionCall] = []
    usage: Optional[UsageMetadata] = None
    interrupted = False
    reason: Optional[str] = None
    for m in messages:
        text.append(m.text or "")
        audio.append(m.data or b"")
        content = m.server_content
        if content is not None:
            if content.output_transcription is not None:
                transcript.append(content.output_transcription.text or "")
            if content.input_transcription is not None:
                heard.append(content.input_transcription.text or "")
            interrupted = interrupted or bool(content.interrupted)
            reason = content.turn_complete_reason or reason
        if m.tool_call is not None:
            calls.extend(m.tool_call.function_calls or ())
        if m.usage_metadata is not None:
            usage = m.usage_metadata
    return Turn("".join(text), b"".join(audio), "".join(transcript), "".join(heard),
                tuple(calls), usage, interrupted, tuple(messages), reason)
