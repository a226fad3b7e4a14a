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
  covers the messages sent at least ``replay_margin`` plus twice the measured
  round-trip time before it arrived: a message sent later may still have been
  in flight when the server issued the handle. A user turn sent while the model
  was idle is covered once the server completes a turn after it (the server
  reads in order, so that turn answered it);
  Buffered audio and video past ``max_buffered_media`` bytes is evicted oldest
  first; text, client content, activity markers and tool responses are never
  evicted: past ``max_buffered_messages`` a send raises :class:`SendQueueFull`;
- whether a **generation** or a **tool call** is in flight, and the ``goAway``
  **deadline**, which together decide when a rotation is safe;
- **tool calls across a resume**: a call received after the resumed handle was
  issued is unknown to the restored session, which asks again (with a new id)
  when the replayed input reaches it. Such calls are remembered by name and
  arguments; the re-issued call is matched, hidden from the application, and the
  application's response (held, or sent later under the old id) goes to the new id.
"""

from __future__ import annotations

import enum
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Deque, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

from ._codec import encode
from .exceptions import SendQueueFull
from .types import FunctionCall, LiveServerMessage, SessionResumptionUpdate

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
        held: a tool response kept back until the model re-issues its call.
        starts_turn: a user turn (clientContent with turnComplete, or realtime text).
        proof_turn: the server's turn count that proves this turn was read.
    """

    seq: int
    kind: str
    text: str
    tool_ids: Tuple[str, ...] = ()
    generation: int = 0
    index: int = 0
    sent_at: Optional[float] = None
    held: bool = False
    starts_turn: bool = False
    proof_turn: Optional[int] = None

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
        self._tool_calls: Set[str] = set()
        self._calls_since_handle: Dict[str, str] = {}  # id -> signature
        self._forgotten: Dict[str, str] = {}  # signature -> old id
        self._held: Dict[str, Outbound] = {}  # old id -> its response
        self._renamed: Dict[str, str] = {}  # old id -> new id
        self._evicted = 0
        self._rtts: Deque[float] = deque(maxlen=8)
        self._turns = 0
        self.lost_tool_responses: List[str] = []

    # Connections.

    def begin_connection(self) -> None:
        """A new connection is being set up: reset per-connection state."""
        self.generation += 1
        self._index = 0
        self._turns = 0
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

    def prepare_resume(self) -> None:
        """Before resuming: set aside tool calls and responses the restored session lacks.

        The calls received since the handle are remembered by signature; their
        responses are held until the model asks again (see the module docstring).
        """
        for call_id, signature in self._calls_since_handle.items():
            self._forgotten[signature] = call_id
            self._tool_calls.discard(call_id)
        forgotten = set(self._calls_since_handle)
        self._calls_since_handle = {}
        for entry in self._remove(lambda e: bool(set(e.tool_ids) & forgotten)):
            for call_id in entry.tool_ids:
                self._held[call_id] = entry

    def start_fresh(self) -> List[Outbound]:
        """The server refused the handle: forget it and the input it no longer has.

        Returns the dropped entries (messages sent on earlier connections);
        messages never sent stay queued for the fresh session.
        """
        self.resumption_handle = None
        self.handle_issued_at = None
        self._tool_calls.clear()
        self._calls_since_handle.clear()
        self._forgotten.clear()
        self._renamed.clear()
        self.lost_tool_responses.extend(self._held)
        self._held.clear()
        return self._remove(lambda e: e.sent_at is not None)

    def observe_rtt(self, seconds: float) -> None:
        """Record a round-trip time (setup → setupComplete, or ping → pong)."""
        self._rtts.append(max(0.0, seconds))

    @property
    def coverage_margin(self) -> float:
        """Seconds before a handle's arrival that a message must predate to be covered."""
        return self.replay_margin + 2 * max(self._rtts, default=0.0)

    def evicted_since_handle(self) -> int:
        """Media messages evicted from the buffer since the last handle (lost on resume)."""
        return self._evicted

    # Sending.

    def enqueue(
        self, kind: str, text: str, *, tool_ids: Tuple[str, ...] = (), starts_turn: bool = False
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
        entry = Outbound(self._seq, kind, text, tool_ids, starts_turn=starts_turn)
        forgotten = set(self._forgotten.values())
        if forgotten.intersection(tool_ids):
            entry.held = True
            for call_id in tool_ids:
                self._held[call_id] = entry
            return entry, 0
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
        entry.proof_turn = None
        if entry.starts_turn and not self.generating:
            entry.proof_turn = self._turns + 1
        self._tool_calls.difference_update(entry.tool_ids)
        return self._index

    def current_call_id(self, call_id: str) -> str:
        """The id under which the server now knows the call the application saw as ``call_id``."""
        return self._renamed.get(call_id, call_id)

    # Receiving.

    def receive(self, message: LiveServerMessage, now: float) -> List[Tuple[str, str, Outbound]]:
        """Update the state from one server message.

        Returns the held tool responses to send again now, as ``(old id, new id,
        entry)``, when the message re-issues calls the restored session had lost.
        """
        resend: List[Tuple[str, str, Outbound]] = []
        if message.setup_complete is not None:
            self.setup_complete = True
        content = message.server_content
        if content is not None:
            if content.model_turn is not None or content.output_transcription is not None:
                self.generating = True
            if content.turn_complete or content.interrupted:
                self.generating = False
            if content.turn_complete:
                self._turns += 1
            if content.turn_complete and self._held:
                # The model finished a turn without asking again: those answers are lost.
                self.lost_tool_responses.extend(self._held)
                self._held.clear()
                self._forgotten.clear()
        if message.tool_call is not None:
            for call in message.tool_call.function_calls or ():
                if call.id:
                    resend.extend(self._tool_call(call))
        if message.tool_call_cancellation is not None:
            for call_id in message.tool_call_cancellation.ids or ():
                self._tool_calls.discard(call_id)
        if message.go_away is not None:
            left = message.go_away.time_left
            self.go_away_deadline = now + (left.total_seconds() if left is not None else 0.0)
        update = message.session_resumption_update
        if update is not None:
            self._resumption_update(update, now)
        return resend

    def is_reissue(self, call_id: str) -> bool:
        """Whether ``call_id`` re-issues a call the application already saw."""
        return call_id in self._renamed.values()

    def _tool_call(self, call: FunctionCall) -> List[Tuple[str, str, Outbound]]:
        assert call.id is not None
        signature = json.dumps([call.name, call.args], sort_keys=True, default=str)
        self._calls_since_handle[call.id] = signature
        old = self._forgotten.pop(signature, None)
        if old is None:
            self._tool_calls.add(call.id)
            return []
        self._renamed[old] = call.id
        held = self._held.pop(old, None)
        if held is None:
            self._tool_calls.add(call.id)
            return []
        return [(old, call.id, held)]

    def _resumption_update(self, update: SessionResumptionUpdate, now: float) -> None:
        if not (update.resumable and update.new_handle):
            return
        self.resumption_handle = update.new_handle
        self.handle_issued_at = now
        self._evicted = 0
        self._calls_since_handle = {}
        generation = self.generation
        acked = update.last_consumed_client_message_index
        if acked is not None:
            self._remove(lambda e: e.generation == generation and 0 < e.index <= acked)
        else:
            cutoff = now - self.coverage_margin
            turns = self._turns
            self._remove(
                lambda e: e.generation == generation
                and e.sent_at is not None
                and (e.sent_at <= cutoff or (e.proof_turn is not None and turns >= e.proof_turn))
            )

    # Decisions.

    @property
    def pending_tool_calls(self) -> Set[str]:
        """Ids of tool calls the client has not answered yet."""
        return set(self._tool_calls)

    def renamed_response(self, entry: Outbound, old: str, new: str) -> Outbound:
        """A copy of tool response ``entry`` answering call ``new`` instead of ``old``."""
        message = json.loads(entry.text)
        for response in message["toolResponse"]["functionResponses"]:
            if response.get("id") == old:
                response["id"] = new
        ids = tuple(new if i == old else i for i in entry.tool_ids)
        return Outbound(0, "tool_response", encode(message), ids)

    def safe_to_rotate(self) -> bool:
        """No generation or tool call in flight, and a handle covers every message sent."""
        return (
            self.state is State.OPEN
            and self.resumption_handle is not None
            and not self.generating
            and not self._tool_calls
            and not self._held
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
