"""The conversation's text, kept to seed a fresh session. Pure: no I/O, no clock.

When the server refuses a resumption handle, the session it held is gone. With
``history_config.initial_history_in_client_content`` on, livesync starts the
fresh session with the conversation's text so far (user text turns, input
transcriptions, model text and output transcriptions) as one ``clientContent``
of history, which the server takes as context without answering it. Audio,
images and tool calls are not kept: the model gets the words, not the media.

Only the newest ``max_chars`` characters are kept, in whole turns, so a
session of hours holds a bounded amount. :class:`History` is used by
:class:`livesync.protocol.SessionProtocol` with the session lock held.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional

from .types import LiveServerMessage

__all__ = ["History", "enabled"]

#: Characters of conversation text kept for a fresh session.
MAX_CHARS = 32_000


def enabled(setup: Mapping[str, Any]) -> bool:
    """Whether ``setup`` asks for history in ``clientContent`` (either key spelling)."""
    config = setup.get("historyConfig") or {}
    return bool(config.get("initialHistoryInClientContent")
                or config.get("initial_history_in_client_content"))


class History:
    """Text turns of one conversation, newest last, at most ``max_chars`` characters."""

    def __init__(self, max_chars: int = MAX_CHARS) -> None:
        self.max_chars = max_chars
        self._turns: Deque[List[str]] = deque()  # [role, text]
        self._chars = 0
        self._model_open = False  # the model's current turn still grows

    def __len__(self) -> int:
        return len(self._turns)

    def record_sent(self, kind: str, text: str) -> None:
        """Record a client message the application sent (its encoded JSON)."""
        message = json.loads(text)
        if kind == "content":
            for turn in message["clientContent"].get("turns") or ():
                role = turn.get("role") or "user"
                words = "".join(p.get("text") or "" for p in turn.get("parts") or ()
                                if not p.get("thought"))
                self._add(role if role == "model" else "user", words)
        elif kind == "text":
            self._add("user", message["realtimeInput"]["text"])

    def record_received(self, message: LiveServerMessage, ends_turn: bool) -> None:
        """Record the words of a server message; ``ends_turn`` closes the model's turn."""
        content = message.server_content
        if content is not None:
            if content.input_transcription is not None:
                self._add("user", content.input_transcription.text or "")
            words = message.text
            if words is None and content.output_transcription is not None:
                words = content.output_transcription.text
            if words:
                self._add("model", words)
            if content.interrupted:
                ends_turn = True
        if ends_turn:
            self._model_open = False

    def message(self) -> Optional[Dict[str, Any]]:
        """The ``clientContent`` message that replays the history, or None if empty."""
        if not self._turns:
            return None
        turns = [{"role": role, "parts": [{"text": text}]} for role, text in self._turns]
        return {"clientContent": {"turns": turns, "turnComplete": True}}

    def _add(self, role: str, text: str) -> None:
        if not text:
            return
        last = self._turns[-1] if self._turns else None
        if last is not None and last[0] == role and (role == "user" or self._model_open):
            last[1] += text if role == "model" else "\n" + text
            self._chars += len(text) + (role == "user")
        else:
            self._turns.append([role, text])
            self._chars += len(text)
        self._model_open = role == "model"
        while self._chars > self.max_chars and len(self._turns) > 1:
            self._chars -= len(self._turns.popleft()[1])
        if self._chars > self.max_chars:  # one turn longer than the limit: keep its end
            only = self._turns[0]
            only[1] = only[1][-self.max_chars:]
            self._chars = len(only[1])
