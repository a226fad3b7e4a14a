"""The tool-call ledger: which calls are open, answered, cancelled or forgotten (pure).

No I/O, no threads, no clocks: :class:`~livesync.protocol.SessionProtocol` owns
one and calls it under the session lock; it returns decisions the session
carries out.

The rules (DESIGN.md §3.6):

- **Open calls.** Every ``toolCall`` id the application was shown is open until
  the application answers it or the server cancels it (``toolCallCancellation``).
- **Unknown ids are refused locally.** A response for an id the session never
  saw raises :class:`~livesync.exceptions.InvalidConfig` naming the id; nothing
  is sent (the server would end the whole session with 1008).
- **Cancelled calls are never answered.** A response to a cancelled call is not
  sent (on this connection or any later one); it is reported as dropped.
- **Calls of a refused session** (a fresh start) count as cancelled.
- **Calls across a resume.** The server only issues a resumable handle while the
  model is idle, so a call received after the handle being resumed is unknown
  to the restored session. The replayed input makes the model ask again, under a
  new id. Such calls are remembered by signature (name and arguments); the
  re-issued call is matched, hidden from the application, and the application's
  response (held, or given later under the old id) is sent under the new id.
  If the model ends a turn without asking again, the held response is lost and
  reported.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .exceptions import InvalidConfig
from .types import FunctionCall

__all__ = ["ResponseRoute", "ToolLedger"]

#: How many answered or cancelled ids are remembered (to tell "late" from "unknown").
MEMORY = 1000


@dataclass(frozen=True)
class ResponseRoute:
    """Where one function response goes.

    Attributes:
        send_ids: ids to send now (the server's current id of each open call).
        hold_ids: old ids whose call the restored session forgot; held until re-issued.
        dropped_ids: ids of cancelled calls; never sent.
    """

    send_ids: Tuple[str, ...]
    hold_ids: Tuple[str, ...]
    dropped_ids: Tuple[str, ...]


class ToolLedger:
    """Open, answered, cancelled and forgotten tool calls of one logical session."""

    def __init__(self) -> None:
        self._open: Dict[str, str] = {}  # current id -> signature
        self._since_handle: Dict[str, str] = {}  # ids received since the last handle
        self._closed: "OrderedDict[str, bool]" = OrderedDict()  # id -> cancelled?
        self._forgotten: Dict[str, List[str]] = {}  # signature -> old ids, oldest first
        self._renamed: Dict[str, str] = {}  # old id -> new id
        self._held: Set[str] = set()  # old ids whose response waits for a re-issue

    # Server events.

    def on_call(self, call: FunctionCall) -> Tuple[bool, Optional[str]]:
        """A ``toolCall`` arrived. Return ``(hide, resend)``.

        ``hide`` is True when the call re-issues one the application already saw;
        ``resend`` is then the old id whose held response is to be sent now under
        the new id (None when the application has not answered yet).
        """
        if not call.id:
            return False, None
        signature = _signature(call)
        for ids in self._forgotten.values():  # the same id again: not a forgotten call
            if call.id in ids:
                ids.remove(call.id)
        self._since_handle[call.id] = signature
        olds = self._forgotten.get(signature)
        old = olds.pop(0) if olds else None  # the same question may have been asked twice
        if olds is not None and not olds:
            del self._forgotten[signature]
        if old is None:
            self._open[call.id] = signature
            return False, None
        if old != call.id:
            self._renamed[old] = call.id
        if old not in self._held:
            self._open[call.id] = signature
            return True, None
        self._held.discard(old)
        self._remember(call.id, cancelled=False)  # answered by the held response
        return True, old

    def on_cancel(self, ids: Iterable[str]) -> None:
        """``toolCallCancellation``: these calls must never be answered."""
        for call_id in ids:
            self._open.pop(call_id, None)
            self._remember(call_id, cancelled=True)

    def on_handle(self) -> Set[str]:
        """A resumable handle arrived: the calls so far are part of the saved session.

        The server issues a handle only while the model is idle, so every call it
        made before the handle is settled: answered and read, or cancelled. Returns
        the calls received since the previous handle; those still open are closed
        as cancelled (an answer to them would be moot, or refused by the server).
        """
        settled = set(self._since_handle)
        self.on_cancel([i for i in settled if i in self._open])
        self._since_handle = {}
        return settled

    def on_turn_complete(self) -> List[str]:
        """The model answered every replayed turn: forgotten calls it did not ask again
        for are over; their held responses are lost (returned)."""
        lost = sorted(self._held)
        self._held.clear()
        for olds in self._forgotten.values():  # never asked again: a late answer is dropped
            for call_id in olds:
                self._remember(call_id, cancelled=True)
        self._forgotten.clear()
        return lost

    # Client sends.

    def route(self, ids: Sequence[str]) -> ResponseRoute:
        """Decide what to do with a response answering ``ids`` (application ids).

        Raises:
            InvalidConfig: an id was never seen in a ``toolCall`` or was answered
                already; nothing is sent.
        """
        send: List[str] = []
        hold: List[str] = []
        dropped: List[str] = []
        for call_id in ids:
            current = self.current_id(call_id)
            if current in self._open:
                send.append(current)
            elif self._closed.get(current):
                dropped.append(call_id)
            elif current in self._held or current in self._closed:
                raise InvalidConfig("tool call %s was answered already" % _short(call_id),
                                    field="function_responses")
            elif any(current in olds for olds in self._forgotten.values()):
                hold.append(current)
            else:
                raise InvalidConfig("no tool call with id %s is open" % _short(call_id),
                                    field="function_responses")
        return ResponseRoute(tuple(send), tuple(hold), tuple(dropped))

    def answered(self, ids: Iterable[str]) -> None:
        """The response for ``ids`` (current ids) is on its way."""
        for call_id in ids:
            self._open.pop(call_id, None)
            self._remember(call_id, cancelled=False)

    def hold(self, ids: Iterable[str]) -> None:
        """A response for forgotten calls ``ids`` (old ids) waits for the re-issue."""
        self._held.update(ids)

    # Connections.

    def prepare_resume(self) -> Set[str]:
        """Before resuming: forget the calls received since the handle.

        Returns their ids: responses to them (sent or not) must be held until the
        model asks again.
        """
        forgotten = [i for i in self._since_handle if not self._closed.get(i)]  # in order
        for call_id in forgotten:
            self._forgotten.setdefault(self._since_handle[call_id], []).append(call_id)
            self._open.pop(call_id, None)
        self._since_handle = {}
        return set(forgotten)

    def start_fresh(self) -> List[str]:
        """The server refused the handle: every call is gone; return held ids (lost).

        Calls the application was shown count as cancelled: a late answer to one is
        dropped and reported, not refused as unknown.
        """
        lost = sorted(self._held)
        gone = set(self._open) | set(self._renamed) | set(self._renamed.values())
        gone.update(i for olds in self._forgotten.values() for i in olds)
        for call_id in sorted(gone):
            self._remember(call_id, cancelled=True)
        self._open.clear()
        self._since_handle.clear()
        self._forgotten.clear()
        self._renamed.clear()
        self._held.clear()
        return lost

    # Queries.

    @property
    def open_ids(self) -> Set[str]:
        """Ids of calls waiting for an answer (server ids)."""
        return set(self._open)

    def held(self) -> Set[str]:
        """Old ids whose responses wait for the model to ask again."""
        return set(self._held)

    def current_id(self, call_id: str) -> str:
        """The server's id now for the call the application saw as ``call_id`` (a call
        may be re-issued once per resume, so renames chain)."""
        seen = 0
        while call_id in self._renamed and seen <= len(self._renamed):
            call_id = self._renamed[call_id]
            seen += 1
        return call_id

    def is_cancelled(self, call_id: str) -> bool:
        return bool(self._closed.get(call_id))

    def _remember(self, call_id: str, *, cancelled: bool) -> None:
        self._closed[call_id] = cancelled or self._closed.get(call_id, False)
        self._closed.move_to_end(call_id)
        while len(self._closed) > MEMORY:
            self._closed.popitem(last=False)


def _signature(call: FunctionCall) -> str:
    try:
        return json.dumps([call.name, call.args or {}], sort_keys=True, default=str)
    except (RecursionError, ValueError):  # absurdly deep arguments: match by name only
        return json.dumps([call.name, "?"])


def _short(call_id: str) -> str:
    return repr(call_id if len(call_id) <= 60 else call_id[:57] + "...")
