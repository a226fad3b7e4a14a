"""The sans-I/O state of one logical Live session: no sockets, threads or clocks.

The session layer feeds it server messages and client sends, passing the
current time in, and asks it what to do::

    CONNECTING ──setupComplete──▶ OPEN ──connection lost / rotation──▶ CONNECTING
        │                          │
        └──────────── close ───────┴──────────▶ CLOSED

What it tracks (DESIGN.md §3): the **handle ledger** (the latest ``resumable``
handle with a non-empty ``newHandle``; ``{}`` updates never erase it), the
**replay buffer**, the **tool ledger** (:mod:`livesync.tool_ledger`), whether a
generation is in flight, and the ``goAway`` deadline, which decide when a
rotation is safe.

Replay coverage — which sent messages a handle covers
=====================================================

A message covered by the handle being resumed is not sent again; every other
message is replayed on the new connection, in order. With Vertex transparent
resumption the server says what it consumed (``lastConsumedClientMessageIndex``;
index 0 is ``setup``, then 1, 2, … per connection). The Gemini API says nothing,
so coverage follows **evidence**, resting on three properties of the service:

1. it reads client messages in order, and sends its output in order;
2. each user turn it reads makes it either interrupt the generation in flight
   (``interrupted``) or start a generation of its own;
3. it issues a resumable handle only in answer to ``setup`` (restoring the old
   state: it covers nothing sent on the new connection, even when a ``goAway``
   came between ``setupComplete`` and it) and when a generation has ended with
   nothing else pending and no user turn half read, e.g. inside an open
   activity (the model is idle).

A message is **proven read** once server output it caused, or caused by a later
message, has arrived. Evidence: a user turn (``clientContent`` with
``turnComplete``, realtime ``text`` outside an activity, ``activityEnd``) is
proven by the ``interrupted`` of the generation it cut or by the first output of
its own generation; a tool response that answers the last open call by the
model's continuation; ``activityStart`` and everything inside the activity by
the proof of its ``activityEnd``. A handle covers exactly what was proven before
it arrived: by property 3, a user turn read before the handle was answered
before it, so an unproven one was not read and is replayed — exactly once,
either way.

To keep the mapping from output to turn unambiguous, user turns are **paced**:
a turn (and anything sent after it) waits until the previous turn is proven
and its generation has started — typically one time-to-first-token, and only
when a turn follows another that quickly. ``activityStart`` and ``clientContent``
are paced too, so that they never cancel a turn whose generation has not started.
After ``HOLD_TIMEOUT`` seconds without evidence the pacing gives up and sends; a
replayed turn holds the next one again, as the new connection reads it anew.

Evidence proves the unproven turns **oldest first**, one per interruption or
generation (the generation that follows a turn's interruption proves nothing
more). With the pacing, that is the turn just sent; once it gave up, the first
output may be the older turn's, read late, so it never proves a newer one.

**What evidence cannot cover.** Audio and video outside an activity,
``audioStreamEnd``, ``clientContent`` without ``turnComplete``, tool responses
that leave calls open and answers to calls the server cancelled cause no output
of their own.
They are proven by later evidence when there is some. Otherwise a handle
covers them by time: if their write was over at least ``replay_margin`` plus twice
the measured round-trip time (at least ``MIN_COVERAGE_MARGIN``) before it arrived
(and they follow no unproven turn). Both ends are measured conservatively, since a
thread may pause at any point (a garbage collection, a busy interpreter): the end
of the write, not the claim, and the arrival of the handle as the transport bounds
it (the last time nothing was left to read before it), not when the reader got to
it. Written later than that, they are replayed and
counted as ``unconfirmed``: the server may have read them before issuing the
handle, so they may be duplicated. A server that lags its input by more than the
margin may lose such input at a drop; so may one that issues a handle while still
reading a burst (the replays written right after a reconnect) and takes longer than
the margin to read it.
Speech audio mixed with text turns under automatic activity detection can start
generations livesync did not ask for; their output may be taken as evidence for
a text turn sent at the same moment. Once the pacing gave up, a server that answers
two turns with one generation (or never answers one) leaves the newer turn
unproven one evidence longer: a resume before that evidence sends it again, and it
may be duplicated. A turn the server never answers holds the next one for
``HOLD_TIMEOUT`` after each of its writes: reconnects more often than that hold it
back for as long as they come.

A fresh session (the server refused the handle) gets what was never sent, plus
the ``activityStart`` of an activity whose ``activityEnd`` was not written yet
(still open, or its end queued), so that it is inside the same activity as the
application and never gets an ``activityEnd`` alone.

Audio and video are evicted oldest first while they take more than
``max_buffered_media`` bytes and, with ``max_buffered_media_age``, while the
oldest was enqueued more than that many seconds ago; both bounds are applied,
by one rule, whenever a message is enqueued.
Evicting sent media loses nothing unless a resume happens before a handle covers
it: only then is it counted as dropped. Evicting unsent media (queued during an
outage) is a loss at once; so is evicting media queued again by a resume, which
also counts as unconfirmed when a handle may have covered it. Text, activity
markers and tool responses are never evicted: past ``max_buffered_messages`` a
send raises :class:`SendQueueFull`.
"""

from __future__ import annotations

import enum
import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, FrozenSet, List, Mapping, Optional, Sequence, Tuple

from . import history
from ._messages import encode
from .exceptions import SendQueueFull
from .tool_ledger import ToolLedger
from .types import LiveServerMessage, ServerContent, SessionResumptionUpdate

__all__ = ["MEDIA_KINDS", "Outbound", "Received", "SessionProtocol", "State", "turn_over"]

MEDIA_KINDS: FrozenSet[str] = frozenset({"audio", "video"})
#: Kinds that can barge in; they wait for the previous user turn's generation to start.
PACED_KINDS: FrozenSet[str] = frozenset({"content", "text", "activity_start", "activity_end"})
#: Seconds a paced message waits for evidence before it is sent anyway.
HOLD_TIMEOUT = 5.0
#: Coverage by time waits at least this long before a handle's arrival, whatever the
#: round trip: on loopback or a LAN, twice a 1 ms round trip says little about how
#: fast a server reads its input (a few ms behind lost audio at a rotation).
MIN_COVERAGE_MARGIN = 0.02
#: Evicted media kept as (index, sent_at) pairs; older ones are only counted.
MAX_EVICTED = 50_000


class State(enum.IntEnum):
    """Connection state of a session."""

    CONNECTING = 0
    OPEN = 1
    CLOSED = 3


class _Gen(enum.Enum):
    IDLE = "idle"
    ACTIVE = "active"
    CUT = "cut"  # interrupted; a bare turnComplete may still close it


@dataclass(eq=False)
class Outbound:
    """One client message on its way (mutable; owned by :class:`SessionProtocol`).

    Attributes:
        seq: session-wide send order.
        kind: ``audio``, ``video``, ``audio_stream_end``, ``text``, ``content``,
            ``activity_start``, ``activity_end`` or ``tool_response``.
        text: the encoded JSON.
        tool_ids: function call ids answered by a tool response.
        turn: a user turn (expects an interruption or a generation of its own).
        generation: connection it was last sent on (0: not sent yet).
        index: its index on that connection (1, 2, …).
        sent_at: when it was last claimed for sending.
        written_at: when its write on that connection was over; None while the write
            is in flight. The writing thread sets it, outside the session lock: a
            message claimed and not written yet may reach the server after a handle
            that arrives meanwhile, however long ago it was claimed.
        expects: the evidence that will prove it read: ``"turn"``, ``"tool"`` or ``""``.
        unconfirmed: a handle arrived that may or may not have covered it.
        in_history: its words are in the history that seeds a fresh session.
        queued_at: when it was enqueued (media older than ``max_buffered_media_age``
            is evicted).
    """

    seq: int
    kind: str
    text: str
    tool_ids: Tuple[str, ...] = ()
    turn: bool = False
    generation: int = 0
    index: int = 0
    sent_at: Optional[float] = None
    written_at: Optional[float] = None
    expects: str = ""
    unconfirmed: bool = False
    in_history: bool = False
    queued_at: float = 0.0

    @property
    def size(self) -> int:
        return len(self.text)


@dataclass(frozen=True)
class Received:
    """What one server message means for the session.

    Attributes:
        owner: ``seq`` of the user turn whose generation the message belongs to.
        hidden: ids of re-issued tool calls to hide from the application.
        flush: queued messages may now be sent.
        started: a generation began (the server owes output until it ends).
    """

    owner: Optional[int] = None
    hidden: FrozenSet[str] = frozenset()
    flush: bool = False
    started: bool = False


@dataclass
class Counters:
    """Cumulative counts of replay outcomes (reported in ``stats()`` and ``Reconnected``)."""

    replayed: int = 0
    dropped: int = 0
    unconfirmed: int = 0
    dropped_tool_ids: List[str] = field(default_factory=list)


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
        max_buffered_media_age: Optional[float] = None,
        handle: Optional[str] = None,
        handle_issued_at: Optional[float] = None,
        hold_timeout: float = HOLD_TIMEOUT,
    ) -> None:
        self._setup = dict(setup)
        self.transparent = transparent
        self.replay_margin = replay_margin
        self.max_buffered_media = max_buffered_media
        self.max_buffered_messages = max_buffered_messages
        self.max_buffered_media_age = max_buffered_media_age
        self.hold_timeout = hold_timeout
        self.state = State.CONNECTING
        self.generation = 0
        self.resumption_handle: Optional[str] = handle
        self.handle_issued_at: Optional[float] = handle_issued_at if handle else None
        self.go_away_deadline: Optional[float] = None
        self.go_away_notice = 0.0  # the goAway's timeLeft, in seconds
        self.tools = ToolLedger()
        self.counters = Counters()
        self._tool_evidence = not _non_blocking_tools(self._setup)
        self.history = history.History() if history.enabled(self._setup) else None
        self._contexts = 0  # context updates among the buffered messages
        self._sent: Deque[Outbound] = deque()  # written, not covered by a handle
        self._queue: Deque[Outbound] = deque()  # not written on this connection yet
        self._held: Dict[str, Outbound] = {}  # old call id -> response awaiting a re-issue
        self._evicted: Deque[Tuple[int, float]] = deque()  # evicted sent media: index, written_at
        self._evicted_older = 0
        self._unsure_below = 0  # evicted media below this index may or may not be covered
        self._seq = 0
        self._media_bytes = 0
        self._messages = 0
        self._in_activity = False
        self._open_activity: Optional[Outbound] = None  # written activityStart, end not written
        self._rtts: Deque[float] = deque(maxlen=8)
        self._reset_connection()

    def _reset_connection(self) -> None:
        self._index = 0
        self._proven = 0
        self._gen = _Gen.IDLE
        self._setup_handle = False  # no handle since setupComplete, nor model output
        self._owner: Optional[int] = None
        self._pending: Optional[Outbound] = None  # latest user turn, awaiting evidence
        self._unproven: Deque[Outbound] = deque()  # sent user turns not proven, in order
        self._cut_by_turn = False  # a turn's interruption; its generation has not started
        self._owed: Optional[Outbound] = None  # proven by an interruption; no output yet
        self._tool_wait: Optional[Outbound] = None  # last tool response, awaiting continuation
        self._blocked_since = 0.0

    # Connections.

    def begin_connection(self, *, resume: bool) -> str:
        """A new connection is being set up; return its ``setup`` message (index 0).

        Everything sent before and not covered by a handle goes back to the front
        of the queue, in order. With ``resume``, responses to tool calls the
        restored session has not seen are held (see :mod:`livesync.tool_ledger`),
        and evicted media the handle does not cover is counted as dropped.
        """
        # Answers to cancelled calls are never replayed: those the handle does not
        # cover are lost with the old connection.
        for entry in self._take(self._answers_cancelled, sent=True):
            self._count_dropped(1, list(entry.tool_ids))
            self.counters.unconfirmed += entry.unconfirmed  # a handle may have covered it
        self._queue.extendleft(reversed(self._sent))
        self._sent.clear()
        if resume:
            forgotten = self.tools.prepare_resume()
            for entry in self._take(lambda e: bool(set(e.tool_ids) & forgotten)):
                if set(entry.tool_ids) & set(self._held):  # a second answer to one id
                    self._count_dropped(1, list(entry.tool_ids))
                    continue
                self.tools.hold(entry.tool_ids)
                self._messages += 1  # still waiting for the server: it counts
                for call_id in entry.tool_ids:
                    self._held[call_id] = entry
        self.counters.dropped += len(self._evicted) + self._evicted_older
        # Those a handle may have covered (sent just before it) are also unconfirmed.
        self.counters.unconfirmed += sum(1 for i, _ in self._evicted if i < self._unsure_below)
        self._evicted.clear()
        self._evicted_older = 0
        self._unsure_below = 0
        self.generation += 1
        self.state = State.CONNECTING
        self.go_away_deadline = None
        self._reset_connection()
        setup = dict(self._setup)
        resumption: Dict[str, Any] = {}
        if resume and self.resumption_handle:
            resumption["handle"] = self.resumption_handle
        if self.transparent:
            resumption["transparent"] = True
        setup["sessionResumption"] = resumption
        return encode({"setup": setup})

    def open(self) -> None:
        """``setupComplete`` arrived: queued messages may be sent (see :meth:`next_to_send`)."""
        self.state = State.OPEN

    def begin_rotation(self) -> None:
        """A planned rotation starts: new sends queue from now on."""
        self.state = State.CONNECTING

    def close(self) -> None:
        self.state = State.CLOSED

    def start_fresh(self) -> None:
        """The server refused the handle: forget it and the input it no longer has.

        Messages sent on earlier connections are dropped (counted); messages never
        sent stay queued for the fresh session.
        """
        self.resumption_handle = None
        self.handle_issued_at = None
        # Sent context updates are in the setup already; a fresh session needs no copy.
        self._take(lambda e: e.kind in ("context_update", "history") and e.sent_at is not None)
        # An activity written without its activityEnd is opened again: what follows
        # until that activityEnd (queued, or still to come) is inside an activity for
        # the fresh session too; an activityEnd alone is one the server ignores.
        reopen = self._open_activity
        lost = [e for e in self._take(lambda e: e.sent_at is not None and e is not reopen)
                if not e.in_history]
        if reopen is not None and reopen not in self._queue:
            if reopen in self._sent:
                self._sent.remove(reopen)
            else:  # a handle covered it already: it goes again, and counts again
                self._messages += 1
            self._queue.appendleft(reopen)
        lost_ids = self.tools.start_fresh()
        lost_ids += [i for i in self._held if i not in lost_ids]
        self._release_held(list(self._held))
        self._count_dropped(len(lost) + len(set(lost_ids)),
                            [i for e in lost for i in e.tool_ids] + lost_ids)
        seed = self.history.message() if self.history is not None else None
        if seed is not None:  # the conversation so far, as context the model does not answer
            self._seq += 1
            self._queue.appendleft(Outbound(self._seq, "history", encode(seed)))
            self._messages += 1

    def observe_rtt(self, seconds: float) -> None:
        """Record a round-trip time (setup → setupComplete, or ping → pong)."""
        self._rtts.append(max(0.0, seconds))

    @property
    def queued(self) -> int:
        """How many messages wait in the queue (not written on this connection)."""
        return len(self._queue)

    @property
    def last_seq(self) -> int:
        """``seq`` of the newest message enqueued."""
        return self._seq

    @property
    def coverage_margin(self) -> float:
        """Seconds before a handle's arrival that a message without evidence must predate."""
        return self.replay_margin + max(MIN_COVERAGE_MARGIN, 2 * max(self._rtts, default=0.0))

    # Sending.

    def enqueue(self, kind: str, text: str, now: float, *, turn_complete: bool = False,
                tool_ids: Tuple[str, ...] = ()) -> Optional[Outbound]:
        """Buffer a new client message; return it when it is to be written now.

        A returned entry is already numbered as sent: write it at once. Otherwise
        it waits in the queue for :meth:`next_to_send`.

        Raises:
            SendQueueFull: too many non-media messages wait for the server.
        """
        if kind not in MEDIA_KINDS:
            self._check_room()
        self._seq += 1
        entry = Outbound(self._seq, kind, text, tool_ids,
                         turn=self._is_turn(kind, turn_complete), queued_at=now)
        claimed = None
        if self.state is State.OPEN and self._may_send(entry, now) and (
                not self._queue or kind == "tool_response" and self._held_back(now)):
            claimed = self._claim(entry, now)
        else:
            self._queue.append(entry)
        if kind in MEDIA_KINDS:
            self._media_bytes += entry.size
        else:
            self._messages += 1
            self._contexts += kind == "context_update"
            if self.history is not None and kind == "content" and not entry.turn:
                self._remember(entry)  # context, not a question: kept as it is sent
        self._evict_media(now)
        return claimed

    def next_to_send(self, now: float) -> Optional[Outbound]:
        """Claim the next queued message if it may be written now (in order), else None."""
        if self.state is not State.OPEN or not self._queue:
            return None
        if not self._held_back(now):
            return self._claim(self._queue.popleft(), now)
        # Tool responses never wait for pacing: the model waits for them.
        entry = next((e for e in self._queue if e.kind == "tool_response"), None)
        if entry is None:
            return None
        self._queue.remove(entry)
        return self._claim(entry, now)

    def _check_room(self) -> None:
        """Raise SendQueueFull when ``max_buffered_messages`` non-media messages wait."""
        if self._messages >= self.max_buffered_messages:
            raise SendQueueFull(
                "%d messages are waiting for the server to acknowledge them" % self._messages
            )

    def _held_back(self, now: float) -> bool:
        """The head of the queue waits for pacing."""
        return bool(self._queue) and not self._may_send(self._queue[0], now)

    def hold_deadline(self) -> Optional[float]:
        """When pacing stops waiting for evidence, if a queued message waits for it."""
        if (self.state is not State.OPEN or not self._queue
                or self._queue[0].kind not in PACED_KINDS):
            return None
        if self._pending is None and self._owed is None:
            return None
        return self._blocked_since + self.hold_timeout

    def tool_response(self, responses: Sequence[Dict[str, Any]], now: float
                      ) -> Optional[Outbound]:
        """Route a ``toolResponse`` through the tool ledger and buffer what is to be sent.

        Responses for calls the restored session forgot are held until the model
        asks again; responses for cancelled calls are dropped (counted). Returns
        the entry to write now, as :meth:`enqueue` does.

        Raises:
            InvalidConfig: an id is unknown or was answered already (nothing is sent).
        """
        self._check_room()  # before the ledger changes
        route = self.tools.route([r["id"] for r in responses if r.get("id")])
        current = [dict(r, id=self.tools.current_id(r["id"])) if r.get("id") else r
                   for r in responses]
        hold = [r for r in current if r.get("id") in route.hold_ids]
        if hold:
            ids = tuple(r["id"] for r in hold)
            entry = Outbound(0, "tool_response", _tool_message(hold), ids)
            self.tools.hold(ids)
            self._messages += 1
            for call_id in ids:
                self._held[call_id] = entry
        if route.dropped_ids:
            self._count_dropped(len(route.dropped_ids), list(route.dropped_ids))
        send = [r for r in current if not r.get("id") or r["id"] in route.send_ids]
        if not send:
            return None
        self.tools.answered(route.send_ids)
        return self.enqueue("tool_response", _tool_message(send), now, tool_ids=route.send_ids)

    # Receiving.

    def receive(self, message: LiveServerMessage, now: float,
                arrived_after: Optional[float] = None) -> Received:
        """Update the state from one server message (see :class:`Received`).

        ``arrived_after``: a time the message is known to have arrived after (the
        transport's ``quiet_since``); ``now`` if not given. Coverage by time counts
        from it, since the reader may get to a message long after its arrival.
        """
        idle = self._gen is not _Gen.ACTIVE
        owner = self._evidence(message)
        started = idle and self._gen is _Gen.ACTIVE
        hidden: List[str] = []
        flush = False
        if message.tool_call is not None:
            for call in message.tool_call.function_calls or ():
                hide, resend = self.tools.on_call(call)
                if hide and call.id:
                    hidden.append(call.id)
                if resend is not None:
                    flush |= self._resend_held(resend)
        if message.tool_call_cancellation is not None:
            self._cancel(message.tool_call_cancellation.ids or ())
        content = message.server_content
        if self.history is not None:
            self.history.record_received(message, turn_over(content))
        if turn_over(content) and self.idle:
            # The model answered every (replayed) turn without asking again.
            lost = self.tools.on_turn_complete()
            if lost:
                self._count_dropped(len(lost), lost)
                gone = {id(self._held[i]) for i in lost if i in self._held}
                self._release_held([i for i, e in self._held.items() if id(e) in gone])
        if message.go_away is not None:
            left = message.go_away.time_left
            self.go_away_notice = max(0.0, left.total_seconds()) if left is not None else 0.0
            self.go_away_deadline = now + self.go_away_notice
        update = message.session_resumption_update
        if update is not None:
            self._resumption_update(
                update, now, now if arrived_after is None else min(now, arrived_after))
        model_went_on = (message.server_content is not None or message.tool_call is not None
                         or message.tool_call_cancellation is not None)
        if message.setup_complete is not None:
            self._setup_handle = True  # the next handle answers the setup...
        elif model_went_on or (update is not None and update.new_handle):
            self._setup_handle = False  # ...unless the model went on meanwhile
        if self._queue and self.state is State.OPEN:
            flush = flush or self._may_send(self._queue[0], now)
        return Received(owner, frozenset(hidden), flush, started)

    def _evidence(self, message: LiveServerMessage) -> Optional[int]:
        """Advance the generation state; prove what the message proves; return its owner."""
        content = message.server_content
        if content is None and message.tool_call is None:
            return None
        if content is not None and content.interrupted:
            return self._interrupted(turn_over(content))
        produces = message.tool_call is not None or content is not None and (
            content.model_turn is not None or content.output_transcription is not None
            or bool(content.generation_complete))
        ends = turn_over(content)
        if not (produces or ends):  # an IN_PROGRESS turnComplete belongs to the generation
            return self._owner if content is not None and content.turn_complete else None
        if self._gen is _Gen.ACTIVE:
            if self._tool_wait is not None:
                self._prove(self._tool_wait)
                self._tool_wait = None
        elif not (self._gen is _Gen.CUT and not produces):
            self._start_generation()
        owner = self._owner
        if ends:
            self._gen = _Gen.IDLE
            self._tool_wait = None
        return owner

    def _interrupted(self, ends: bool) -> Optional[int]:
        owner = self._owner
        if self._unproven:  # the barge-in that cut the generation was read
            self._prove(self._unproven.popleft())
            self._cut_by_turn = True
            self._owed, self._pending = self._pending, None
        self._gen = _Gen.IDLE if ends else _Gen.CUT
        self._tool_wait = None
        return owner

    def _start_generation(self) -> None:
        starter = self._owed or self._pending
        if not self._cut_by_turn and self._unproven:  # the turn that started it was read
            self._prove(self._unproven.popleft())
        self._cut_by_turn = False
        self._owed = self._pending = None
        self._owner = starter.seq if starter is not None else None
        self._gen = _Gen.ACTIVE

    def _prove(self, entry: Outbound) -> None:
        if entry.generation == self.generation:
            self._proven = max(self._proven, entry.index)
        if self.history is not None and entry.turn and not entry.in_history:
            self._remember(entry)  # a question the model took up

    def _remember(self, entry: Outbound) -> None:
        assert self.history is not None
        self.history.record_sent(entry.kind, entry.text)
        entry.in_history = True

    def _resumption_update(self, update: SessionResumptionUpdate, now: float,
                           arrived: float) -> None:
        if not (update.resumable and update.new_handle):
            return
        self.resumption_handle = update.new_handle
        self.handle_issued_at = now
        settled = self.tools.on_handle() if self._tool_evidence else set()
        if settled:  # answers to calls settled before the handle are never replayed
            # (a sent answer to a cancelled call may still be on its way: the rules for
            # input without evidence decide it, and begin_connection drops it if uncovered)
            for entry in self._take(lambda e: bool(e.tool_ids) and set(e.tool_ids) <= settled
                                    and not (e.sent_at and self._answers_cancelled(e))):
                if entry.sent_at is None:
                    self._count_dropped(1, list(entry.tool_ids))
        acked = update.last_consumed_client_message_index
        if acked is not None:
            self._take(lambda e: 0 < e.index <= acked, sent=True)
            self._prune_evicted(lambda index, _: index <= acked)
            return
        if self._setup_handle:
            return  # sent with setupComplete: it restores the old state, read nothing new
        proven, cutoff = self._proven, arrived - self.coverage_margin
        limit = min((e.index for e in self._sent if e.expects and e.index > proven),
                    default=self._index + 1)

        def timed(index: int, written_at: float) -> bool:
            return index <= proven or index < limit and written_at <= cutoff

        self._take(lambda e: e.index <= proven or not e.expects and e.kind != "context_update"
                   and timed(e.index, _written(e)), sent=True)
        for entry in self._sent:
            if entry.index < limit and not entry.expects and entry.kind != "context_update":
                entry.unconfirmed = True
        self._prune_evicted(timed)
        self._unsure_below = max(self._unsure_below, limit)

    # Decisions.

    @property
    def idle(self) -> bool:
        """No generation in flight and no user turn waiting to be answered."""
        return (self._gen is _Gen.IDLE and self._pending is None and self._owed is None
                and not any(e.turn for e in self._queue))

    def output_owed_since(self) -> Optional[float]:
        """Since when the server owes output, if it does (for the stall watchdog).

        A generation in flight (and no tool call waiting for the client), a user
        turn or a completing tool response not answered yet. 0.0 means "since the
        last server message".
        """
        waiting = [e.sent_at or 0.0 for e in (self._pending, self._owed, self._tool_wait)
                   if e is not None]
        if waiting:
            return max(waiting)
        if self._gen is _Gen.ACTIVE and not self.tools.open_ids:
            return 0.0
        return None

    @property
    def pending_tool_calls(self) -> FrozenSet[str]:
        """Ids of tool calls the client has not answered yet."""
        return frozenset(self.tools.open_ids)

    def safe_to_rotate(self) -> bool:
        """Idle model, no open tool call, nothing queued, only media uncovered."""
        return (
            self.state is State.OPEN
            and self.resumption_handle is not None
            and self._gen is _Gen.IDLE
            and self._pending is None and self._owed is None
            and not self.tools.open_ids and not self._held
            and not self._queue and self._messages == self._contexts
        )

    def handover_safe(self) -> bool:
        """:meth:`safe_to_rotate`, and the latest handle covers everything sent,
        media and context updates included: another process resuming with that
        handle (a hand-over) loses nothing, since this replay buffer goes away."""
        return (self.safe_to_rotate() and not self._sent and not self._evicted
                and not self._evicted_older)

    def rotation_due(self, now: float, lead: float) -> bool:
        """After ``goAway``: rotate now (safe point reached, or deadline − lead passed)."""
        if self.go_away_deadline is None:
            return False
        return self.safe_to_rotate() or now >= self.go_away_deadline - lead

    # Internals.

    def _is_turn(self, kind: str, turn_complete: bool) -> bool:
        if kind == "activity_start":
            self._in_activity = True
        elif kind == "activity_end":
            self._in_activity = False
            return True
        return kind == "content" and turn_complete or kind == "text" and not self._in_activity

    def _may_send(self, entry: Outbound, now: float) -> bool:
        if self.transparent or entry.kind not in PACED_KINDS:
            return True
        if self._pending is None and self._owed is None:
            return True
        if now < self._blocked_since + self.hold_timeout:
            return False
        self._pending = self._owed = None  # no evidence came: stop waiting for it
        return True

    def _claim(self, entry: Outbound, now: float) -> Outbound:
        if entry.sent_at is not None:
            self.counters.replayed += 1
            if entry.unconfirmed:
                self.counters.unconfirmed += 1
        if entry.kind == "context_update":
            self._fold_context(json.loads(entry.text)["contextUpdate"])
        self._index += 1
        entry.generation, entry.index, entry.sent_at = self.generation, self._index, now
        entry.written_at = None
        entry.unconfirmed = False
        entry.expects = ""
        if entry.turn:
            entry.expects = "turn"
            self._pending = entry
            self._unproven.append(entry)
            self._blocked_since = now
            if entry.kind == "activity_end":
                self._open_activity = None
        elif entry.kind == "activity_start":
            # No handle is issued while an activity is open, so its activityEnd being
            # proven is the evidence for it and everything inside the activity.
            entry.expects = "activity"
            self._open_activity = entry
        elif (entry.kind == "tool_response" and self._tool_evidence and entry.tool_ids
              and not self.tools.open_ids):
            entry.expects = "tool"
            self._tool_wait = entry
        self._sent.append(entry)
        return entry

    def _fold_context(self, update: Mapping[str, Any]) -> None:
        """Make a ``contextUpdate`` being written part of the setup of later connections,
        so a fresh session starts with the instruction and tools it set."""
        if "systemInstruction" in update:
            self._setup["systemInstruction"] = update["systemInstruction"]
        if "tools" in update:
            tools = (update["tools"] or {}).get("tools") or []
            if tools:
                self._setup["tools"] = tools
            else:
                self._setup.pop("tools", None)
            self._tool_evidence = not _non_blocking_tools(self._setup)

    def _resend_held(self, old: str) -> bool:
        """Queue the held response of ``old`` once the model re-issued all its calls."""
        entry = self._held.get(old)
        if entry is None or set(entry.tool_ids) & self.tools.held():
            return False  # some of its calls have not been asked again yet
        self._release_held(entry.tool_ids)
        message = json.loads(entry.text)
        for response in message["toolResponse"]["functionResponses"]:
            if response.get("id"):
                response["id"] = self.tools.current_id(response["id"])
        ids = tuple(self.tools.current_id(i) for i in entry.tool_ids)
        self._seq += 1
        self._queue.append(Outbound(self._seq, "tool_response", encode(message), ids))
        self._messages += 1
        return True

    def _release_held(self, ids: Sequence[str]) -> None:
        """Forget held responses under ``ids``; an entry no longer held stops counting."""
        entries = {id(self._held[i]): self._held[i] for i in ids if i in self._held}
        for call_id in ids:
            self._held.pop(call_id, None)
        held = {id(e) for e in self._held.values()}
        self._messages -= sum(1 for key in entries if key not in held)

    def _cancel(self, ids: Sequence[str]) -> None:
        """``toolCallCancellation``: responses to these calls are never sent (again)."""
        self.tools.on_cancel(ids)
        cancelled = set(ids)
        # Not sent on this connection: never send it. Sent on it: the server reads it
        # (and ignores it) unless the connection ends first: begin_connection decides.
        for entry in self._take(lambda e: bool(set(e.tool_ids) & cancelled)
                                and (e.sent_at is None or e.generation != self.generation)):
            self._count_dropped(1, list(entry.tool_ids))
        if self._tool_wait is not None and set(self._tool_wait.tool_ids) & cancelled:
            self._tool_wait = None
        for entry in self._sent:  # no continuation will prove a cancelled call's answer
            if set(entry.tool_ids) & cancelled:
                entry.expects = ""
        for call_id in cancelled & set(self._held):
            self._count_dropped(1, [call_id])
            self._release_held([call_id])

    def _answers_cancelled(self, entry: Outbound) -> bool:
        return bool(entry.tool_ids) and all(self.tools.is_cancelled(i) for i in entry.tool_ids)

    def _count_dropped(self, n: int, tool_ids: List[str]) -> None:
        self.counters.dropped += n
        self.counters.dropped_tool_ids.extend(tool_ids)

    def _evict_media(self, now: float) -> None:
        """The one eviction rule: evict the oldest media while media takes more than
        ``max_buffered_media`` bytes or the oldest was enqueued more than
        ``max_buffered_media_age`` seconds before ``now``.

        Media is in send order (what was sent on this connection, then the queue), so
        the age bound stops at the first entry young enough: one look per enqueue
        when nothing is old.
        """
        age = self.max_buffered_media_age
        cutoff = float("-inf") if age is None else now - age
        while self._media_bytes > 0:
            over = self._media_bytes > self.max_buffered_media
            if not over and age is None:
                return  # bounded by bytes only: nothing to look at
            victim = next((e for e in self._sent if e.kind in MEDIA_KINDS), None)
            where = self._sent
            if victim is None:
                victim = next((e for e in self._queue if e.kind in MEDIA_KINDS), None)
                where = self._queue
            if victim is None:  # pragma: no cover - media bytes imply a media entry
                return
            if not over and victim.queued_at >= cutoff:
                return  # young enough, and so is all the media after it
            where.remove(victim)
            self._media_bytes -= victim.size
            if where is self._queue:  # never sent, or sent on an older connection: lost now
                self.counters.dropped += 1
                self.counters.unconfirmed += victim.unconfirmed  # a handle may have covered it
            else:
                self._evicted.append((victim.index, _written(victim)))
                if len(self._evicted) > MAX_EVICTED:
                    self._evicted.popleft()
                    self._evicted_older += 1

    def _prune_evicted(self, covered: Any) -> None:
        while self._evicted and covered(*self._evicted[0]):
            self._evicted_older = 0  # older than a covered entry: covered too
            self._evicted.popleft()

    def _take(self, predicate: Any, *, sent: bool = False) -> List[Outbound]:
        """Remove and return the buffered entries matching ``predicate``."""
        taken: List[Outbound] = []
        for buffer in (self._sent,) if sent else (self._sent, self._queue):
            kept: Deque[Outbound] = deque()
            for entry in buffer:
                (taken if predicate(entry) else kept).append(entry)
            buffer.clear()
            buffer.extend(kept)
        for entry in taken:
            if entry.kind in MEDIA_KINDS:
                self._media_bytes -= entry.size
            else:
                self._messages -= 1
                self._contexts -= entry.kind == "context_update"
        return taken


def turn_over(content: Optional[ServerContent]) -> bool:
    """Whether ``content`` ends the model's turn (any thread; pure).

    ``turnComplete`` ends it, unless ``interactionStatus`` says ``IN_PROGRESS``
    (background output follows); ``IDLE`` (or the deprecated ``REQUIRES_ACTION``)
    ends it even alone. The official SDK's ``receive()`` follows the same rule.
    """
    if content is None:
        return False
    status = content.interaction_status
    if status == "IN_PROGRESS":
        return False
    return bool(content.turn_complete) or status in ("IDLE", "REQUIRES_ACTION")


def _written(entry: Outbound) -> float:
    """When ``entry``'s write was over (infinity while in flight)."""
    return math.inf if entry.written_at is None else entry.written_at


def _tool_message(responses: Sequence[Dict[str, Any]]) -> str:
    return encode({"toolResponse": {"functionResponses": list(responses)}})


def _non_blocking_tools(setup: Mapping[str, Any]) -> bool:
    """Whether a declared function is NON_BLOCKING (the model talks while it runs)."""
    for tool in setup.get("tools") or ():
        for decl in (tool or {}).get("functionDeclarations") or ():
            if (decl or {}).get("behavior") == "NON_BLOCKING":
                return True
    return False
