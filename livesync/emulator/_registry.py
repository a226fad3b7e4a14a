"""The emulator's shared state: records, sessions, handles, tokens and pending faults.

One :class:`Registry` per emulator. The :class:`~livesync.emulator.Emulator`
(public API, upgrade handling, REST) and every connection's threads
(``emulator-conn-<id>``, ``emulator-gen-<id>``, ``emulator-read-<id>``) use it;
every field is guarded by :attr:`Registry.cond` (a condition over a reentrant
lock, notified on every state change so ``Emulator.wait_for`` wakes up).
"""

from __future__ import annotations

import copy
import dataclasses
import hmac
import re
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

from ._options import EmulatorOptions, bare
from ._records import (
    ConnectionRecord,
    HandleRecord,
    RestRecord,
    SessionRecord,
    TokenRecord,
    UpgradeRecord,
)
from ._wire import new_handle

if TYPE_CHECKING:  # pragma: no cover
    from ._conn import Connection

INVALID_ARGUMENT = "Request contains an invalid argument."
API_KEY_INVALID = "API key not valid. Please pass a valid API key."
UNREGISTERED = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API."
)
INTERNAL = "Internal error encountered."
TOKEN_INVALID = "The auth token is not valid."
TOKEN_USED_UP = "The auth token has no uses left."
TOKEN_TOO_MANY_USES = "Token has been used too many times"
TOKEN_NO_NEW_SESSIONS = (
    "The auth token can no longer start new sessions (newSessionExpireTime has passed)."
)
MODEL_CHANGED = INVALID_ARGUMENT + " The model cannot change when resuming a session."

RetryAfter = Union[None, float, str]
"""``Retry-After`` of a refused upgrade: seconds, a literal header value, or None (no header)."""

_VERTEX_MODEL = re.compile(
    r"(?:projects/[^/]+/locations/[^/]+/)?publishers/([^/]+)/models/([^/]+)"
)


@dataclasses.dataclass(frozen=True)
class Refusal:
    """How to answer a refused WebSocket upgrade."""

    status: int
    body: str
    retry_after: RetryAfter = None


@dataclasses.dataclass
class Faults:
    """Faults scheduled by tests and not consumed yet (guarded by ``Registry.cond``)."""

    refusals: List[Refusal] = dataclasses.field(default_factory=list)
    refuse_until: Optional[Tuple[float, Refusal]] = None
    refuse_resume: Optional[Tuple[int, str]] = None
    stall_setups: int = 0
    drop_setups: int = 0
    tool_response_closes: List[Tuple[int, str]] = dataclasses.field(default_factory=list)
    rest_refusals: List[Refusal] = dataclasses.field(default_factory=list)
    rest_delays: List[float] = dataclasses.field(default_factory=list)


class Registry:
    """Shared state of one emulator (see the module docstring). Methods are thread-safe."""

    def __init__(self, options: EmulatorOptions, api_key: str) -> None:
        self.options = options
        self.api_key = api_key
        self.cond = threading.Condition(threading.RLock())
        self.connections: List[ConnectionRecord] = []
        self.live: Dict[int, Connection] = {}
        self.sessions: Dict[str, SessionRecord] = {}
        self.handles: Dict[str, HandleRecord] = {}
        self.tokens: Dict[str, TokenRecord] = {}
        self.upgrades: List[UpgradeRecord] = []
        self.rest_requests: List[RestRecord] = []
        self.faults = Faults()
        self.input_lag = options.input_lag
        """Current input lag in real seconds (``Emulator.set_input_lag``)."""
        self.stopping = False

    def notify(self) -> None:
        """Wake every ``wait_for`` after a state change (any thread)."""
        with self.cond:
            self.cond.notify_all()

    def check_auth(self, conn: Connection) -> Optional[Tuple[int, str]]:
        """Authenticate a Gemini API connection after the upgrade (handler thread)."""
        if self.stopping:
            return (1001, "")
        info = conn.upgrade
        if info.backend == "vertex":
            return None
        headers, query = info.headers, info.query
        authorization = headers.get("authorization", "")
        token_header = authorization[6:].strip() if authorization[:6].lower() == "token " else ""
        token_query = query.get("access_token", "")
        key_header = headers.get("x-goog-api-key", "")
        key_query = query.get("key", "")
        auth = ""
        if key_header and _same(key_header, self.api_key):
            auth = "api_key_header"
        elif key_query and _same(key_query, self.api_key):
            auth = "api_key_query"
        failure: Optional[Tuple[int, str]] = None
        if info.method == "BidiGenerateContentConstrained":
            candidates = (
                (token_header, "token_header"),
                (token_query, "token_query"),
                (key_header, "token_header"),
                (key_query, "token_query"),
            )
            with self.cond:
                for value, kind in candidates:
                    if value and value in self.tokens:
                        conn.token = self.tokens[value]
                        auth = kind
                        break
            if not auth:
                credentials = token_header or token_query or key_header or key_query
                failure = (1007, TOKEN_INVALID) if credentials else (1008, UNREGISTERED)
        elif not auth:
            failure = (1008, UNREGISTERED) if token_header or token_query else (
                1007, API_KEY_INVALID)
        with self.cond:
            conn.record.auth = auth or "none"
            self.cond.notify_all()
        return failure

    def add_token(self, token: TokenRecord) -> None:
        """Register a minted ephemeral token (REST request thread)."""
        with self.cond:
            self.tokens[token.name] = token
            self.cond.notify_all()

    def use_token(self, token: TokenRecord, *, resume: bool) -> Optional[Tuple[int, str]]:
        """Check (and for a new session consume) an ephemeral token; return a close.

        A resume consumes a use only with ``resume_uses_token`` (then a used-up
        token closes 1011 "Token has been used too many times"). Handler thread.
        """
        now = time.monotonic()
        with self.cond:
            if now > token.expire_at:
                return (1007, "The auth token has expired.")
            if resume and not self.options.resume_uses_token:
                return None
            if not resume and now > token.new_session_expire_at:
                return (1007, TOKEN_NO_NEW_SESSIONS)
            if token.uses and token.used >= token.uses:
                return (1011, TOKEN_TOO_MANY_USES) if resume else (1007, TOKEN_USED_UP)
            token.used += 1
            self.cond.notify_all()
        return None

    def resolve_model(self, record: ConnectionRecord, model: Any
                       ) -> Union[str, Tuple[int, str]]:
        if not isinstance(model, str) or not model:
            return (1011, INTERNAL)  # as the real service answers a setup without model
        if record.backend == "vertex":
            match = _VERTEX_MODEL.fullmatch(model)
            if match is None:
                return (1007, INVALID_ARGUMENT
                        + " model must be projects/*/locations/*/publishers/*/models/*.")
            if match.group(2) in self.options.models:
                return match.group(2)
            return (1008, f"Publisher Model `{model}` not found.")
        name = bare(model)
        if self.options.serves(name, record.api_version):
            return name
        return (1008, f"models/{name} is not found for API version {record.api_version}, "
                "or is not supported for bidiGenerateContent")

    def attach(self, conn: Connection, session: SessionRecord) -> None:
        """Make ``conn`` the session's newest connection (caller holds ``cond``)."""
        session.connections.append(conn.record.id)
        conn.record.session_id = session.id
        conn.record.generation = len(session.connections)
        for message in conn.record.messages:
            message.generation = conn.record.generation

    def new_session(self, conn: Connection, model: str) -> SessionRecord:
        tools = conn.config.get("tools")
        with self.cond:
            session = SessionRecord(
                id=str(uuid.uuid4()),
                backend=conn.record.backend,
                model=model,
                started_at=time.monotonic(),
                system_instruction=copy.deepcopy(conn.config.get("systemInstruction")),
                tools=copy.deepcopy(tools) if isinstance(tools, list) else None,
            )
            self.sessions[session.id] = session
            self.attach(conn, session)
            self.cond.notify_all()
        return session

    def resume_session(self, conn: Connection, handle: str, model: str
                        ) -> Union[SessionRecord, Tuple[int, str]]:
        with self.cond:
            if self.faults.refuse_resume is not None:
                refusal, self.faults.refuse_resume = self.faults.refuse_resume, None
                return refusal
            snapshot = self.handles.get(handle)
            if snapshot is None or time.monotonic() > snapshot.expires_at:
                return self.options.resume_refusal
            session = self.sessions[snapshot.session_id]
            if session.ended == "deadline":
                return (1007, INVALID_ARGUMENT)
            if session.ended is not None:
                return self.options.resume_refusal
            if session.model != model:
                return (1007, MODEL_CHANGED)

            def others() -> List[Connection]:
                return [
                    c for c in self.live.values()
                    if c.record.session_id == session.id and c.record.open
                    and c is not conn
                ]

            for other in others():
                if other.record.stalled:
                    other.sock.abort()
            if self.options.reject_concurrent_resume:
                def idle() -> bool:
                    return all(c.record.stalled for c in others())

                self.cond.wait_for(idle, self.options.concurrent_resume_grace)
                if not idle():
                    return (1011, INTERNAL)
            session.history = copy.deepcopy(snapshot.history)
            session.messages = list(snapshot.messages)
            session.system_instruction = copy.deepcopy(snapshot.system_instruction)
            session.tools = copy.deepcopy(snapshot.tools)
            conn.record.resumed_from = handle
            self.attach(conn, session)
            self.cond.notify_all()
        return session

    def snapshot(self, conn: Connection, session: SessionRecord) -> HandleRecord:
        now = time.monotonic()
        with self.cond:
            snapshot = HandleRecord(
                handle=new_handle(),
                session_id=session.id,
                connection=conn.record.id,
                last_consumed_index=conn.index,
                issued_at=now,
                expires_at=now + self.options.handle_ttl * self.options.time_scale,
                history=copy.deepcopy(session.history),
                messages=list(session.messages),
                system_instruction=copy.deepcopy(session.system_instruction),
                tools=copy.deepcopy(session.tools),
            )
            expired = [h for h, r in self.handles.items() if r.expires_at < now]
            for handle in expired:
                del self.handles[handle]
            self.handles[snapshot.handle] = snapshot
            session.handles += 1
            self.cond.notify_all()
        return snapshot

    def record_close(self, conn: Connection, *, ended: bool = False) -> None:
        """Copy the close frames seen by websockets into the record (any thread)."""
        protocol = conn.ws.protocol
        sent = getattr(protocol, "close_sent", None)
        received = getattr(protocol, "close_rcvd", None)
        with self.cond:
            record = conn.record
            if (sent is not None and record.close_code is None
                    and record.closed_by != "drop" and not record.stalled):
                record.close_code = int(sent.code)
                record.close_reason = str(sent.reason)
            if received is not None:
                record.client_close_code = int(received.code)
            if record.closed_by is None and (received is not None or ended):
                record.closed_by = "client"
            if ended:
                record.open = False
                record.closed_at = time.time()
                self.live.pop(record.id, None)
            self.cond.notify_all()

    def connection_ended(self, conn: Connection) -> None:
        """Record the end of a connection and forget it (handler thread)."""
        self.record_close(conn, ended=True)


    def drop(self, target: Connection) -> None:
        """Record a drop and abort the TCP connection (any thread, no lock held)."""
        with self.cond:
            if target.record.closed_by is None:
                target.record.closed_by = "drop"
            target.record.open = False
            self.cond.notify_all()
        target.closing = True
        target.sock.abort()


    def take_drop_after_setup(self) -> bool:
        """Consume one ``drop_after_setup`` fault; True if there was one (handler thread)."""
        with self.cond:
            if self.faults.drop_setups:
                self.faults.drop_setups -= 1
                return True
            return False


    def take_stall_setup(self) -> bool:
        """Consume one ``stall_next_setup`` fault; True if there was one (handler thread)."""
        with self.cond:
            if self.faults.stall_setups:
                self.faults.stall_setups -= 1
                return True
            return False


    def take_refusal(self) -> Optional[Refusal]:
        """Return how to refuse the upgrade being processed, or None (caller holds ``cond``)."""
        if self.stopping:
            return Refusal(503, "Server is shutting down.\n")
        if self.faults.refusals:
            return self.faults.refusals.pop(0)
        window = self.faults.refuse_until
        if window is not None and time.monotonic() < window[0]:
            return window[1]
        self.faults.refuse_until = None
        return None


    def session(self, session_id: Optional[str]) -> SessionRecord:
        """The session with that id, or the newest open connection's (caller holds ``cond``)."""
        if session_id is not None:
            if session_id not in self.sessions:
                raise LookupError(f"no session {session_id}")
            return self.sessions[session_id]
        live = [c for c in self.live.values() if c.record.open and c.session is not None]
        if not live:
            raise LookupError("no open connection with a session")
        newest = max(live, key=lambda c: c.record.id)
        assert newest.session is not None
        return newest.session


    def take_tool_response_close(self) -> Optional[Tuple[int, str]]:
        """Consume one ``close_after_next_tool_response`` fault (handler thread)."""
        with self.cond:
            closes = self.faults.tool_response_closes
            return closes.pop(0) if closes else None



def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))
