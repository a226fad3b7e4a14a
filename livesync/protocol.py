"""The sans-I/O state of one logical Live session: no sockets, threads or clocks.

The session layer feeds it server messages and client sends, passing the
current time in, and asks it what to do::

    CONNECTING ──setupComplete──▶ OPEN ──connection lost / rotation──▶ CONNECTING
        │                          │
        └──────────── close ───────┴──────────▶ CLOSING ──▶ CLOSED

What it tracks (DESIGN.md §3):

- the **handle ledger**: the latest ``resumable: true`` handle with a non-empty
  ``newHandle``; ``{}`` updates never erase it;
- the **replay buffer**: every client message not yet covered by a handle, in
  send order. With transparent resumption (Vertex) a handle covers the messages
  whose per-connection index is at most ``lastConsumedClientMessageIndex``
  (index 0 is ``setup``; 1, 2, … per connection). On the Gemini API a handle
  covers the messages sent ``replay_margin`` seconds or more before it arrived.
  Buffered audio and video past ``max_buffered_media`` bytes is evicted oldest
  first; text, client content, activity markers and tool responses are never
  evicted: past ``max_buffered_messages`` a send raises :class:`SendQueueFull`;
- whether a **generation** or a **tool call** is in flight, and the ``goAway``
  **deadline**, which together decide when a rotation is safe.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

from ._codec import encode
from .exceptions import SendQueueFull
from .types import LiveServerMessage, SessionResumptionUpdate

__all__ = ["MEDIA_KINDS", "Outbound", "SessionProtocol", "State"]

MEDIA_KINDS: FrozenSet[str] = frozenset({"audio", "video"})


class State(enum.IntEnum):
    """Connection state of a session."""

    CONNECTING = 0
    OPEN = 1
    CLOSING = 2
    CLOSED = 3


@dataclass
class Outbound:
    """One client message on its way (mutable; owned by :class:`SessionProtocol`).

    Attributes:
        seq: session-wide send order.
        kind: ``audio``, ``video``, ``text``, ``content``, ``activity`` or ``tool_response``.
        text: the encoded JSON.
        tool_ids: function call ids answered by a tool response.
        generation: connection it was last sent on (0: not sent yet).
        index: its index on that connection (1, 2, …).
        sent_at: when it was last sent.
    """

    seq: int
    kind: str
    text: str
    tool_ids: Tuple[str, ...] = ()
    generation: int = 0
    index: int = 0
    sent_at: Optional[float] = None

    @property
    def size(self) -> int:
        return len(self.text)


class SessionProtocol:
    """Pure session state; every method is called with the session lock held."""

    def __init__(
        self,
        setup: Mapping[str, Any],
        *,
        transparent: bool = False,
        replay_margin: float = 0.0,
        max_buffered_media: int = 2_000_000,
        max_buffered_messages: int = 1_000,
        handle: Optional[str] = None,
        handle_issued_at: Optional[float] = None,
    ) -> None:
        self._setup = dict(setup)
        self.transparent = transparent
        self.replay_margin = replay_margin
        self.max_buffered_media = max_buffered_media
        self.max_buffered_messages = max_buffered_messages
        self.state = State.CONNECTING
        self.generation = 0
        self.resumption_handle: Optional[str] = handle
        self.handle_issued_at: Optional[float] = handle_issued_at if handle else None
        self.setup_complete = False
        self.generating = False
        self.go_away_deadline: Optional[float] = None
        self.buffer: Deque[Outbound] = deque()
        self._index = 0
        self._seq = 0
        self._media_bytes = 0
        self._messages = 0
        self._tool_calls: Dict[str, float] = {}
        self._evicted = 0

    # Connections.

    def begin_connection(self) -> None:
        """A new connection is being set up: reset per-connection state."""
        self.generation += 1
        self._index = 0
        self.state = State.CONNECTING
        self.setup_complete = False
        self.generating = False
        self.go_away_deadline = None

    def setup_message(self, *, resume: bool) -> str:
        """The ``setup`` message for the connection being set up (index 0)."""
        setup = dict(self._setup)
        resumption: Dict[str, Any] = {}
        if resume and self.resumption_handle:
            resumption["handle"] = self.resumption_handle
        if self.transparent:
            resumption["transparent"] = True
        setup["sessionResumption"] = resumption
        return encode({"setup": setup})

    def open(self) -> List[Outbound]:
        """``setupComplete`` arrived: return the buffered messages to (re)send, in order."""
        self.state = State.OPEN
        self.setup_complete = True
        self._evicted = 0
        return list(self.buffer)

    def prepare_resume(self) -> List[Outbound]:
        """Before resuming: drop tool responses the restored session cannot know.

        A tool call received after the handle was issued is not part of the
        state the handle restores; the server will ask again when the replayed
        input reaches it. Returns the dropped entries.
        """
        issued = self.handle_issued_at if self.handle_issued_at is not None else float("inf")
        unknown = {i for i, at in self._tool_calls.items() if at >= issued}
        for call_id in unknown:
            del self._tool_calls[call_id]
        return self._remove(lambda e: bool(set(e.tool_ids) & unknown))

    def start_fresh(self) -> List[Outbound]:
        """The server refused the handle: forget it and the input it no longer has.

        Returns the dropped entries (messages sent on earlier connections);
        messages never sent stay queued for the fresh session.
        """
        self.resumption_handle = None
        self.handle_issued_at = None
        self._tool_calls.clear()
        return self._remove(lambda e: e.sent_at is not None)

    def evicted_since_handle(self) -> int:
        """Media messages evicted from the buffer since the last handle (lost on resume)."""
        return self._evicted

    # Sending.

    def enqueue(
        self, kind: str, text: str, *, tool_ids: Tuple[str, ...] = ()
    ) -> Tuple[Outbound, int]:
        """Buffer a new client message; return it and how many media entries were evicted.

        Raises:
            SendQueueFull: too many non-media messages are waiting for a handle.
        """
        if kind not in MEDIA_KINDS and self._messages >= self.max_buffered_messages:
            raise SendQueueFull(
                "%d messages are waiting for the server to acknowledge them" % self._messages
            )
        self._seq += 1
        entry = Outbound(self._seq, kind, text, tool_ids)
        self.buffer.append(entry)
        evicted = 0
        if kind in MEDIA_KINDS:
            self._media_bytes += entry.size
            evicted = self._evict_media()
        else:
            self._messages += 1
        return entry, evicted

    def sent(self, entry: Outbound, now: float) -> int:
        """``entry`` was written to the current connection; return its index."""
        self._index += 1
        entry.generation = self.generation
        entry.index = self._index
        entry.sent_at = now
        for call_id in entry.tool_ids:
            self._tool_calls.pop(call_id, None)
        return self._index

    # Receiving.

    def receive(self, message: LiveServerMessage, now: float) -> None:
        """Update the state from one server message."""
        if message.setup_complete is not None:
            self.setup_complete = True
        content = message.server_content
        if content is not None:
            if content.model_turn is not None or content.output_transcription is not None:
                self.generating = True
            if content.turn_complete or content.interrupted:
                self.generating = False
        if message.tool_call is not None:
            for call in message.tool_call.function_calls or ():
                if call.id:
                    self._tool_calls[call.id] = now
        if message.tool_call_cancellation is not None:
            for call_id in message.tool_call_cancellation.ids or ():
                self._tool_calls.pop(call_id, None)
        if message.go_away is not None:
            left = message.go_away.time_left
            self.go_away_deadline = now + (left.total_seconds() if left is not None else 0.0)
        update = message.session_resumption_update
        if update is not None:
            self._resumption_update(update, now)

    def _resumption_update(self, update: SessionResumptionUpdate, now: float) -> None:
        if not (update.resumable and update.new_handle):
            return
        self.resumption_handle = update.new_handle
        self.handle_issued_at = now
        self._evicted = 0
        generation = self.generation
        acked = update.last_consumed_client_message_index
        if acked is not None:
            self._remove(lambda e: e.generation == generation and 0 < e.index <= acked)
        else:
            cutoff = now - self.replay_margin
            self._remove(
                lambda e: e.generation == generation
                and e.sent_at is not None
                and e.sent_at <= cutoff
            )

    # Decisions.

    @property
    def pending_tool_calls(self) -> Set[str]:
        """Ids of tool calls the client has not answered yet."""
        return set(self._tool_calls)

    def safe_to_rotate(self) -> bool:
        """No generation or tool call in flight, and a handle covers every message sent."""
        return (
            self.state is State.OPEN
            and self.resumption_handle is not None
            and not self.generating
            and not self._tool_calls
            and not self.buffer
        )

    def rotation_due(self, now: float, lead: float) -> bool:
        """After ``goAway``: rotate now (safe point reached, or deadline − lead passed)."""
        if self.go_away_deadline is None:
            return False
        return self.safe_to_rotate() or now >= self.go_away_deadline - lead

    # Internals.

    def _evict_media(self) -> int:
        evicted = 0
        while self._media_bytes > self.max_buffered_media:
            victim = next((e for e in self.buffer if e.kind in MEDIA_KINDS), None)
            if victim is None:  # pragma: no cover - media bytes imply a media entry
                break
            self.buffer.remove(victim)
            self._media_bytes -= victim.size
            evicted += 1
        self._evicted += evicted
        return evicted

    def _remove(self, predicate: Any) -> List[Outbound]:
        removed = [e for e in self.buffer if predicate(e)]
        if removed:
            self.buffer = deque(e for e in self.buffer if not predicate(e))
            for e in removed:
                if e.kind in MEDIA_KINDS:
                    self._media_bytes -= e.size
                else:
                    self._messages -= 1
        return removed
