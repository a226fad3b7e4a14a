"""Frozen event dataclasses handed to callbacks, plus :class:`Turn` and :class:`SessionStats`.

Every callback takes exactly one of these (or a wire message from
:mod:`livesync.types`), so adding a field later never breaks a callback.
All are immutable and safe to pass between threads.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Optional, Tuple, Union

from . import audio as _audio

if TYPE_CHECKING:
    from .types import FunctionCall, LiveServerMessage, UsageMetadata

__all__ = ["Closed", "ErrorEvent", "Opened", "Reconnected", "SessionStats", "Turn"]


@dataclass(frozen=True)
class Opened:
    """The session is open: the first ``setupComplete`` arrived (``on_open``).

    Attributes:
        session_id: livesync's id of the session (also in thread names and logs).
        server_session_id: the server's ``setupComplete.sessionId`` (Vertex), if any.
        resumed: the session continues an earlier one from ``resumption_handle``.
    """

    session_id: str
    server_session_id: Optional[str]
    resumed: bool


@dataclass(frozen=True)
class Reconnected:
    """The session moved to a new connection (``on_reconnect``).

    Attributes:
        generation: number of the new connection (the first is 1).
        attempts: connection attempts this change took.
        planned: a rotation after ``goAway`` (True) or recovery from a drop (False).
        resumed: the server restored the session from the handle; False means a
            fresh session: the conversation so far is gone.
        cause: what ended the previous connection, e.g. ``"goAway"`` or ``"close 1011"``.
        gap_ms: last server message on the old connection → ``setupComplete`` on the new.
        replayed: client messages sent again on the new connection.
        dropped: client messages lost since the previous connection change: audio
            or video evicted from a full buffer that the resumed handle did not
            cover, a fresh session's lost input, tool responses to calls that were
            cancelled or that the resumed model never asked again.
        dropped_tool_responses: call ids of the tool responses among ``dropped``.
        unconfirmed: messages whose fate livesync cannot know (audio or video sent
            just before the handle arrived, with no evidence either way): replayed
            ones may be duplicated, evicted ones (counted in ``dropped``) may have
            reached the server after all (see ``livesync.protocol``).
    """

    generation: int
    attempts: int
    planned: bool
    resumed: bool
    cause: str
    gap_ms: float
    replayed: int
    dropped: int
    dropped_tool_responses: Tuple[str, ...] = ()
    unconfirmed: int = 0


@dataclass(frozen=True)
class Closed:
    """The session ended (``on_close``, exactly once per session).

    Attributes:
        code: the last close code (1000 for a user close), None if none was seen.
        reason: the last close reason.
        error: why the session failed, None for a clean close; a session that handed
            its conversation over to another connection carries
            :class:`~livesync.SessionHandedOver` (a ``SessionClosedOK``, not a failure).
        resumption_handle: the last resumable handle, to resume later (not in repr).
    """

    code: Optional[int]
    reason: str
    error: Optional[BaseException]
    resumption_handle: Optional[str] = field(default=None, repr=False)


@dataclass(frozen=True)
class ErrorEvent:
    """Something went wrong that did not end the session (``on_error``).

    Attributes:
        error: the exception (a user callback's exception, or a ProtocolError for
            a malformed server frame).
        callback: the name of the callback that raised, or None.
    """

    error: BaseException
    callback: Optional[str] = None


@dataclass(frozen=True)
class Turn:
    """One model turn, as returned by :meth:`Session.ask`.

    A turn ends at ``turnComplete``; when the server sends ``interactionStatus``,
    at ``IDLE``: background output after an ``IN_PROGRESS`` turnComplete is part
    of the turn.

    Attributes:
        text: the joined text of the model's parts ("" if none).
        audio: the joined audio bytes (24 kHz 16-bit PCM) ("" if none).
        transcript: the output transcription of the model's audio.
        input_transcript: the input transcription of the user's audio.
        tool_calls: function calls the model made during the turn.
        usage: the usage metadata of the turn, if the server sent it.
        interrupted: the turn was interrupted.
        messages: every server message of the turn, in order.
        complete_reason: the server's ``turnCompleteReason`` (e.g.
            ``"PROHIBITED_INPUT_CONTENT"``), if it gave one.
    """

    text: str
    audio: bytes
    transcript: str
    input_transcript: str
    tool_calls: Tuple[FunctionCall, ...]
    usage: Optional[UsageMetadata]
    interrupted: bool
    messages: Tuple[LiveServerMessage, ...] = field(repr=False, default=())
    complete_reason: Optional[str] = None

    def wav_bytes(self) -> bytes:
        """Return :attr:`audio` as the bytes of a WAV file (24 kHz, 16-bit, mono).

        A turn without audio gives a valid WAV file with no frames. Pure; any
        thread; never blocks.
        """
        return _audio.pcm_to_wav(self.audio, _audio.OUTPUT_RATE)

    def save_wav(self, path: Union[str, os.PathLike[str], IO[bytes]]) -> None:
        """Write :attr:`audio` to ``path`` (a path or a binary file) as a 24 kHz mono WAV.

        Any thread; blocks while the file is written; overwrites an existing file.

        Raises:
            OSError: the file cannot be written.
        """
        _audio.write_wav(path, self.audio, _audio.OUTPUT_RATE)

    def __repr__(self) -> str:
        # The generated repr would print every byte of the audio: show its length.
        seconds = len(self.audio) / (_audio.SAMPLE_WIDTH * _audio.OUTPUT_RATE)
        return (
            "Turn(text=%r, audio=<%d bytes, %.2f s>, transcript=%r, input_transcript=%r, "
            "tool_calls=%r, usage=%r, interrupted=%r, complete_reason=%r)" % (
                self.text, len(self.audio), seconds, self.transcript, self.input_transcript,
                self.tool_calls, self.usage, self.interrupted, self.complete_reason)
        )

    def _repr_html_(self) -> str:
        """Render in Jupyter: the text, an inline audio player, the transcripts.

        IPython calls it when a Turn is a cell's value. Everything the server
        sent is HTML-escaped; the audio is embedded as a base64 WAV data URI.
        """
        parts = []
        if self.text:
            parts.append('<div style="white-space: pre-wrap">%s</div>' % html.escape(self.text))
        if self.audio:
            parts.append('<audio controls src="data:audio/wav;base64,%s"></audio>'
                         % base64.b64encode(self.wav_bytes()).decode("ascii"))
        if self.transcript:
            parts.append('<div style="white-space: pre-wrap"><small>transcript:</small> %s</div>'
                         % html.escape(self.transcript))
        if self.input_transcript:
            parts.append("<div><small>you said:</small> %s</div>"
                         % html.escape(self.input_transcript))
        for call in self.tool_calls:
            parts.append("<div><small>tool call:</small> <code>%s(%s)</code></div>" % (
                html.escape(call.name or ""), html.escape(repr(call.args or {}))))
        if self.interrupted:
            parts.append("<div><small>(interrupted)</small></div>")
        if not parts:
            parts.append("<div><small>(empty turn)</small></div>")
        return '<div class="livesync-turn">%s</div>' % "".join(parts)


@dataclass(frozen=True)
class SessionStats:
    """A snapshot of a session's counters (``Session.stats()``).

    Attributes:
        state: ``"connecting"``, ``"open"``, ``"reconnecting"``, ``"closing"`` or ``"closed"``.
        generation: number of the current connection (the first is 1).
        connections: connections that completed setup.
        messages_in / bytes_in: server messages and payload bytes received.
        messages_out / bytes_out: client messages and bytes sent (setup included).
        callback_errors: exceptions raised by user callbacks.
        protocol_errors: malformed server frames skipped.
        last_close_code: code of the last connection close, if any.
        rotations_planned / rotations_unplanned: connection changes after goAway / drops.
        resumed / fresh: reconnects that resumed the session / started a new one.
        gap_last_ms / gap_max_ms / gap_median_ms: server silence across reconnects.
        replayed / dropped: client messages re-sent / lost (see :class:`Reconnected`).
        receive_dropped: messages evicted from a full ``receive()`` buffer.
        handle_age: seconds since the current resumption handle was issued, or None.
        unconfirmed: replayed messages that may have been duplicates (see :class:`Reconnected`).
        backpressure: times the reader paused because callbacks fell ``max_queue`` behind.
        discarded: server messages not delivered to callbacks because ``close()`` was called.
        stalls: connections dropped because the server went silent mid-turn.
    """

    state: str
    generation: int
    connections: int
    messages_in: int
    bytes_in: int
    messages_out: int
    bytes_out: int
    callback_errors: int
    protocol_errors: int
    last_close_code: Optional[int]
    rotations_planned: int
    rotations_unplanned: int
    resumed: int
    fresh: int
    gap_last_ms: Optional[float]
    gap_max_ms: Optional[float]
    gap_median_ms: Optional[float]
    replayed: int
    dropped: int
    receive_dropped: int
    handle_age: Optional[float]
    unconfirmed: int = 0
    backpressure: int = 0
    discarded: int = 0
    stalls: int = 0
