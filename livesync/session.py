"""The public :class:`Session`: one logical Live session, kept alive across connections.

A :class:`Session` is a handle on the threaded :class:`~livesync._driver.Driver`
(supervisor, reader and dispatcher threads). Only the handle is the
application's: when the last reference to an open session is dropped (a notebook
cell re-run, a forgotten variable), livesync closes it and says so with a
``ResourceWarning``. At interpreter exit, open sessions get a bounded close.
"""

from __future__ import annotations

import atexit
import random
import warnings
import weakref
from typing import Any, Callable, Iterator, List, Mapping, Optional, Sequence, Union

from ._driver import LOGGER, Dialer, Driver, SessionOptions
from ._lease import acquire
from .events import SessionStats, Turn
from .types import Blob, Content, FunctionResponse, LiveServerMessage, Part, Tool

__all__ = ["Session", "open_session"]

#: Seconds each still-open session gets to close when the interpreter exits.
EXIT_CLOSE_TIMEOUT = 2.0

_LIVE: "weakref.WeakSet[Driver]" = weakref.WeakSet()


class Session:
    """One logical Live session, kept alive across connections. Made by ``Client.connect``.

    Every public method may be called from any thread, including from inside a
    callback. Callbacks run on the dispatcher thread, one at a time, in server
    order; a callback that blocks delays later callbacks, not the connection.
    Use it as a context manager, or call :meth:`close`.
    """

    __slots__ = ("_driver", "__weakref__")

    def __init__(self, driver: Driver) -> None:
        self._driver = driver

    @property
    def id(self) -> str:
        """Short id of this session, used in thread names and log records."""
        return self._driver.id

    def __repr__(self) -> str:
        return self._driver.__repr__()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        """Close: normally (1000) on a clean exit or Ctrl-C, with 1011 on an error."""
        self._driver.__exit__(exc_type, exc, tb)

    @property
    def resumption_handle(self) -> Optional[str]:
        """The latest resumable handle, or None. Pass it to ``connect`` to resume later."""
        return self._driver.resumption_handle

    @property
    def state(self) -> str:
        """``connecting``, ``open``, ``reconnecting``, ``closing`` or ``closed``."""
        return self._driver.state

    @property
    def closed(self) -> bool:
        """True once the session has ended (``on_close`` has run)."""
        return self._driver.closed

    def send_client_content(
        self,
        *,
        turns: Union[str, Content, Mapping[str, Any], Sequence[Any], None] = None,
        turn_complete: bool = True,
    ) -> None:
        """Send ``clientContent`` (conversation turns; ``turn_complete`` starts a reply).

        Any thread. Queued during a reconnect and sent, in order, after it.

        Raises:
            InvalidConfig: bad turns. SessionClosed: the session is closed.
            SendQueueFull: too many messages wait for the server to acknowledge them.
        """
        self._driver.send_client_content(turns=turns, turn_complete=turn_complete)

    def send_text(self, text: str, *, turn_complete: bool = True) -> None:
        """Send one user text turn as ``clientContent``. Any thread."""
        self._driver.send_text(text, turn_complete=turn_complete)

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
        """Send one ``realtimeInput`` field (exactly one argument). Any thread.

        Audio and video queued during a reconnect may be dropped oldest first past
        ``max_buffered_media`` or ``max_buffered_media_age`` (counted and reported);
        the rest is never dropped.
        """
        self._driver.send_realtime_input(
            audio=audio, video=video, text=text, activity_start=activity_start,
            activity_end=activity_end, audio_stream_end=audio_stream_end)

    def send_audio(self, pcm: bytes, sample_rate: int = 16000) -> None:
        """Send raw 16-bit little-endian mono PCM as realtime audio. Any thread.

        Safe from audio-device callbacks: it never waits on the network for longer
        than the write timeout, and only for the write itself.
        """
        self._driver.send_audio(pcm, sample_rate)

    def send_tool_response(
        self,
        function_responses: Union[FunctionResponse, Mapping[str, Any], Sequence[Any]],
    ) -> None:
        """Answer tool calls with ``toolResponse``. Any thread; never dropped.

        If the session moves to a new connection first, the response is replayed
        there as needed: a response to a call the restored session never saw is
        held until the model asks again and then sent under the new id, or reported
        in ``Reconnected.dropped_tool_responses`` if it never does. A response to a
        call the server cancelled (``toolCallCancellation``) is not sent; it is
        logged and counted in ``stats().dropped``.

        Raises:
            InvalidConfig: a response names a call id the session never saw, or one
                answered already; nothing is sent.
        """
        self._driver.send_tool_response(function_responses)

    def send_context_update(
        self,
        *,
        system_instruction: Union[str, Content, Part, Mapping[str, Any], None] = None,
        tools: Optional[Sequence[Union[Tool, Mapping[str, Any]]]] = None,
    ) -> None:
        """Change the system instruction and/or the tools mid-session (``contextUpdate``).

        The server applies it in order with the rest of the input: turns sent
        after it are answered under the new instruction and tools. ``tools=[]``
        removes every tool; an argument left at None is unchanged. Any thread;
        never blocks on the network.

        It survives reconnects: a resumed session gets it again when its handle
        may not cover it (an update sets state, so a second copy changes
        nothing), and a fresh session (the server refused the handle) starts
        with the updated instruction and tools in its setup.

        Raises:
            InvalidConfig: neither argument given, or an invalid value (nothing is sent).
            SessionClosed: the session is closed.
        """
        self._driver.send_context_update(system_instruction=system_instruction, tools=tools)

    def receive(self, timeout: Optional[float] = None) -> Iterator[LiveServerMessage]:
        """Yield every server message, across turns and reconnects, until the session ends.

        Without an ``on_message`` callback, messages are kept from the start of the
        session (up to ``max_receive_queue``), so nothing is missed between a send and
        the call; with one, from the first ``receive()`` call on. Any thread; one
        reader at a time. Stops when the session is closed normally.

        Args:
            timeout: the longest wait for the next message; None waits forever.

        Raises:
            TimeoutError: no message within ``timeout``.
            SessionClosedError: the session ended with an error (after everything
                received before was yielded).
        """
        yield from self._driver.receive(timeout)

    def ask(
        self,
        text: str,
        *,
        timeout: Optional[float] = 60.0,
        interrupt: bool = False,
        tools: Optional[Mapping[str, Callable[..., Any]]] = None,
    ) -> Turn:
        """Send ``text`` as a user turn and block until the model has answered it.

        Returns the :class:`Turn` that answers ``text``, never another one. If the
        model is still answering an earlier turn, ``ask`` first waits for that reply
        to end (within ``timeout``); with ``interrupt=True`` it barges in at once and
        skips the interrupted reply (``receive()`` and ``on_message`` still get it).
        One ``ask`` at a time per session; others wait their turn. The answer's
        messages go to ``on_message`` and into the Turn, not to ``receive()``.

        If the connection changes before the answer is complete, the question is
        replayed on the new one and the partial answer is discarded: the turn holds
        the complete new answer.

        Args:
            text: the question.
            timeout: seconds for the whole call (waiting, sending, answering);
                None waits forever.
            interrupt: barge in on a reply in progress instead of waiting for it.
            tools: ``{function name: callable}``. When the model calls one of them,
                ``ask`` calls it with the call's arguments (on this thread) and
                sends what it returns as the response (a dict as it is, anything
                else as ``{"result": value}``, an exception as ``{"error": "..."}``).

        Any thread except the dispatcher (do not call it from a callback).

        Raises:
            TimeoutError: the turn did not complete within ``timeout`` (the message
                names any tool call still waiting for a response).
            ToolCallPending: the model called a function that ``tools`` does not
                cover and no ``on_message`` callback exists that could answer it.
            SessionClosed: the session closed first.
            InvalidConfig: a bad argument (nothing is sent).
        """
        return self._driver.ask(text, timeout=timeout, interrupt=interrupt, tools=tools)

    def close(self, code: int = 1000, reason: str = "", *, timeout: Optional[float] = None,
              forget: bool = False) -> None:
        """Close the session. Idempotent; never raises "already closed".

        From a normal thread: blocks until ``on_close`` has run and every livesync
        thread has stopped, at most ``timeout`` (default ``close_timeout``) seconds,
        even against a server that stopped answering. From inside a callback:
        returns at once; teardown finishes after the callback returns. From the
        moment it is called no callback starts except ``on_close`` (once): server
        messages still queued for callbacks are discarded and counted in
        ``stats().discarded``.

        Args:
            code: 1000 (normal), 1001, 1002, 1003, 1007–1011 or 3000–4999.
            reason: cut at a character boundary to fit the 123 bytes of a close frame.
            timeout: seconds; None uses ``close_timeout``.
            forget: the conversation is really over: delete its stored handle
                (``handle_store``/``session_key``) instead of saving it, then
                release the lease, so the next ``connect`` with that key starts
                a new conversation. On a session that already ended it still
                deletes the handle, unless the session was handed over or
                another session holds the key now (blocking for one store call).

        Raises:
            InvalidConfig: a close code a client may not send, or a bad argument.
        """
        self._driver.close(code, reason, timeout=timeout, forget=forget)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Block until the session has ended; return False on timeout. Any thread.

        Raises:
            SessionClosedError: the session ended because of an error (a user
                ``close()`` or a normal end returns True).
        """
        return self._driver.wait_closed(timeout)

    def stats(self) -> SessionStats:
        """A snapshot of the session's counters. Any thread; never blocks for long."""
        return self._driver.stats()


def open_session(dialer: Dialer, setup: Mapping[str, Any], options: SessionOptions, *,
                 vertexai: bool = False, rng: Optional[random.Random] = None) -> Session:
    """Make a session, start its threads and wait for the first ``setupComplete``
    (on the caller's thread; ``Client.connect``)."""
    # Take the session key's lease before anything is dialed, and before the
    # stored handle is loaded: a holder handing over saves its last handle first.
    log = options.logger or LOGGER
    lease = acquire(options.handle_store, options.session_key, takeover=options.takeover,
                    timeout=options.takeover_timeout, log=log)
    try:
        driver = Driver(dialer, setup, options, vertexai=vertexai, rng=rng, lease=lease)
    except BaseException:
        if lease is not None:
            lease.release(log)
        raise
    driver._start()  # on failure the supervisor's teardown has released the lease
    session = Session(driver)
    weakref.finalize(session, _abandoned, driver).atexit = False  # _close_at_exit does it
    _LIVE.add(driver)
    return session


def _abandoned(driver: Driver) -> None:
    """The application dropped an open session: close it (garbage collector)."""
    if driver.ending:
        return
    warnings.warn("livesync session %s was not closed; closing it now "
                  "(use `with client.connect(...)` or session.close())" % driver.id,
                  ResourceWarning, stacklevel=2)
    driver.request_close(1000, "")


@atexit.register
def _close_at_exit() -> None:
    """Give every open session a bounded, normal close when the interpreter exits."""
    drivers: List[Driver] = [d for d in list(_LIVE) if not d.closed]
    for driver in drivers:
        driver.request_close(1001, "going away")
    for driver in drivers:
        driver.close(timeout=EXIT_CLOSE_TIMEOUT)
