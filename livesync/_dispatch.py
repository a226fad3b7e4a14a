"""The dispatcher thread ``livesync-dispatch-<sid>``: user callbacks, ``receive()`` and ``ask()``.

Other threads :meth:`Dispatcher.emit` events; the dispatcher handles them one at
a time, in order, on its own thread, so user code never runs on the reader or
the supervisor and never under a livesync lock. A ``close`` event is the last:
it ends ``receive()`` iterators and ``ask()`` calls, runs ``on_close`` and stops
the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from .events import Closed, ErrorEvent, Turn
from .types import FunctionCall, LiveServerMessage, UsageMetadata

__all__ = ["Callbacks", "Dispatcher", "collect_turn"]

#: Warn when the dispatcher falls this many events behind.
HIGH_WATER = 1000

Inbox = SimpleQueue  # of (kind, payload) pairs


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
        handlers: extra event kinds run on this thread (``kind -> handler(payload)``).
        on_callback_error: called (on this thread) after a callback raised.
    """

    def __init__(
        self,
        name: str,
        callbacks: Callbacks,
        log: logging.LoggerAdapter[Any],
        *,
        max_receive: int,
        handlers: Dict[str, Callable[[Any], None]],
        on_callback_error: Callable[[str, Exception], None],
    ) -> None:
        self._callbacks = callbacks
        self._log = log
        self._max_receive = max_receive
        self._handlers = handlers
        self._on_callback_error = on_callback_error
        self._queue: SimpleQueue[Tuple[str, Any]] = SimpleQueue()
        self._lock = threading.Lock()
        self._subscribers: Tuple[Inbox[Tuple[str, Any]], ...] = ()  # replaced, never mutated
        self._received: Deque[LiveServerMessage] = deque()
        self._ended = False
        self._cond = threading.Condition()
        self._waiting = 0  # receive() calls blocked in wait, under _cond
        # Keep messages for receive() from the start only when no on_message callback
        # consumes them; otherwise from the first receive() call on. Retaining thousands
        # of unread messages costs memory and garbage-collector time.
        self._buffering = callbacks.on_message is None
        self.callback_errors = 0
        self.receive_dropped = 0
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def emit(self, kind: str, payload: Any) -> None:
        """Queue an event. Any thread; never blocks."""
        self._queue.put((kind, payload))
        if self._queue.qsize() == HIGH_WATER:
            self._log.warning("callbacks are %d events behind the connection", HIGH_WATER)

    def subscribe(self) -> Inbox[Tuple[str, Any]]:
        """Start copying messages (and the final close) into a new inbox. Any thread."""
        inbox: Inbox[Tuple[str, Any]] = SimpleQueue()
        with self._lock:
            self._subscribers += (inbox,)
        return inbox

    def unsubscribe(self, inbox: Inbox[Tuple[str, Any]]) -> None:
        with self._lock:
            self._subscribers = tuple(i for i in self._subscribers if i is not inbox)

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
            subscribers = self._subscribers
            try:
                if kind == "close":
                    self._close(payload, subscribers)
                    return
                self._deliver(kind, payload, subscribers)
            except BaseException:  # noqa: B036 - the dispatcher must keep going
                self._log.error("unexpected internal error in the dispatcher", exc_info=True)

    def _deliver(
        self, kind: str, payload: Any, subscribers: Tuple[Inbox[Tuple[str, Any]], ...]
    ) -> None:
        cb = self._callbacks
        if kind == "message":
            if self._buffering:
                self._feed_receive(payload)
            for inbox in subscribers:
                inbox.put((kind, payload))
            self.call("on_message", cb.on_message, payload)
            if payload.go_away is not None:
                self.call("on_goaway", cb.on_goaway, payload.go_away)
            if payload.session_resumption_update is not None:
                self.call("on_resumption_update", cb.on_resumption_update,
                          payload.session_resumption_update)
        elif kind == "open":
            self.call("on_open", cb.on_open, payload)
        elif kind == "reconnect":
            self.call("on_reconnect", cb.on_reconnect, payload)
        elif kind == "error":
            self.report_error(payload)
        else:
            self._handlers[kind](payload)

    def _close(self, closed: Closed, subscribers: Tuple[Inbox[Tuple[str, Any]], ...]) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        for inbox in subscribers:
            inbox.put(("close", closed))
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


def collect_turn(
    inbox: Inbox[Tuple[str, Any]],
    deadline: Optional[float],
    closed_error: Callable[[], BaseException],
) -> Turn:
    """Gather one model turn from ``inbox`` (runs on the thread calling ``ask``)."""
    messages: List[LiveServerMessage] = []
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError("the turn did not complete in time")
        try:
            kind, payload = inbox.get(timeout=remaining)
        except Empty:
            raise TimeoutError("the turn did not complete in time") from None
        if kind == "close":
            raise closed_error()
        if payload.setup_complete is not None:
            # A new connection: an unanswered question is replayed and answered anew.
            messages = []
            continue
        messages.append(payload)
        content = payload.server_content
        if content is not None and content.turn_complete:
            return _turn(messages)


def _turn(messages: List[LiveServerMessage]) -> Turn:
    text: List[str] = []
    audio: List[bytes] = []
    transcript: List[str] = []
    heard: List[str] = []
    calls: List[FunctionCall] = []
    usage: Optional[UsageMetadata] = None
    interrupted = False
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
        if m.tool_call is not None:
            calls.extend(m.tool_call.function_calls or ())
        if m.usage_metadata is not None:
            usage = m.usage_metadata
    return Turn("".join(text), b"".join(audio), "".join(transcript), "".join(heard),
                tuple(calls), usage, interrupted, tuple(messages))
