"""A legacy-style Flask app: one Gemini Live conversation per browser user.

- ``POST /chat`` (JSON ``{"message": "..."}`` or a form field ``message``) returns
  ``{"reply": "..."}``: the model's answer, from ``session.ask()``.
- ``GET /events`` streams that user's conversation as Server-Sent Events
  (``event: message`` with ``{"text", "turn_complete"}``; ``event: closed`` when
  this worker's session ends, e.g. handed over to another worker: the browser's
  ``EventSource`` reconnects by itself).
- ``POST /forget`` ends the conversation for good (``close(forget=True)``).
- ``GET /`` a tiny page using both; ``GET /healthz`` for load balancers.

A user is a random id in the ``uid`` cookie. Each worker process keeps a live
session per user, created on the first request and closed after
``LIVESYNC_IDLE_TIMEOUT`` seconds without use by a janitor thread (and the
least recently used one when ``LIVESYNC_MAX_SESSIONS`` are open).

Several gunicorn workers (or hosts) share conversations through Redis: the
handle store keeps each user's latest resumption handle under
``session_key="user:<uid>"``, and ``takeover=True`` makes whichever worker
gets a request ask the worker holding that user's session to hand it over.
Sticky sessions at the load balancer avoid most hand-overs (each costs about a
second); see docs/handle-stores.md.

Configuration (environment variables):

- ``GEMINI_API_KEY``: the API key (any string against the emulator).
- ``LIVESYNC_BASE_URL``: e.g. the emulator's ``ws://127.0.0.1:PORT``; unset for Google.
- ``REDIS_URL``: e.g. ``redis://localhost:6379/0``; unset: an in-process store
  (one worker only).
- ``LIVESYNC_MODEL``: default ``gemini-live-2.5-flash-preview``.
- ``LIVESYNC_IDLE_TIMEOUT``: seconds, default 300. ``LIVESYNC_MAX_SESSIONS``: default 100.

Run it::

    REDIS_URL=redis://localhost:6379/0 GEMINI_API_KEY=... \\
        gunicorn -w 4 -k gthread --threads 8 'app:create_app()'

(``gthread`` workers, because each open ``/events`` stream occupies a thread.)

Threads: Flask request threads call :meth:`Sessions.get`/``ask``; livesync's
dispatcher thread of each session runs :meth:`UserSession.on_message`; the
janitor thread ``flask-app-janitor`` closes idle sessions. One lock guards the
pool; user code never holds it across a network call except ``connect``/``close``
of the session being created or dropped.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional

from flask import Flask, Response, jsonify, request

import livesync

log = logging.getLogger("flask_app")

COOKIE = "uid"
#: Events kept per /events stream for a slow browser before new ones are dropped.
MAX_PENDING_EVENTS = 1000
#: Seconds between SSE keepalive comments (proxies close silent streams).
KEEPALIVE = 15.0


@dataclass(frozen=True)
class Settings:
    """The app's configuration, from environment variables by default."""

    api_key: Optional[str] = None
    base_url: Optional[str] = None
    redis_url: Optional[str] = None
    model: str = "gemini-live-2.5-flash-preview"
    idle_timeout: float = 300.0
    max_sessions: int = 100
    ask_timeout: float = 60.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            api_key=env.get("GEMINI_API_KEY") or None,
            base_url=env.get("LIVESYNC_BASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            model=env.get("LIVESYNC_MODEL") or cls.model,
            idle_timeout=float(env.get("LIVESYNC_IDLE_TIMEOUT") or cls.idle_timeout),
            max_sessions=int(env.get("LIVESYNC_MAX_SESSIONS") or cls.max_sessions),
        )


class UserSession:
    """One user's live session in this worker, and the /events streams listening to it."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.session: Optional[livesync.Session] = None
        self.last_used = time.monotonic()
        self._streams: List["queue.Queue[Optional[Dict[str, Any]]]"] = []
        self._lock = threading.Lock()  # guards _streams
        self.connect_lock = threading.Lock()  # one connect per user at a time

    @property
    def usable(self) -> bool:
        """A session is open here (not closing: e.g. handed over to another worker)."""
        return self.session is not None and self.session.state not in ("closing", "closed")

    @property
    def streaming(self) -> bool:
        """An /events stream listens: the session is in use."""
        with self._lock:
            return bool(self._streams)

    def subscribe(self) -> "queue.Queue[Optional[Dict[str, Any]]]":
        stream: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue(MAX_PENDING_EVENTS)
        with self._lock:
            self._streams.append(stream)
        return stream

    def unsubscribe(self, stream: "queue.Queue[Optional[Dict[str, Any]]]") -> None:
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)

    def on_message(self, message: livesync.LiveServerMessage) -> None:
        """livesync dispatcher thread: fan the model's text out to the /events streams."""
        content = message.server_content
        if content is None:
            return
        text = message.text or ""
        if text or content.turn_complete:
            self._publish({"text": text, "turn_complete": bool(content.turn_complete)})

    def on_close(self, closed: livesync.Closed) -> None:
        """livesync dispatcher thread: end the /events streams (None is the end mark)."""
        self._publish(None)

    def _publish(self, event: Optional[Dict[str, Any]]) -> None:
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            try:
                stream.put_nowait(event)
            except queue.Full:  # a stalled browser: drop rather than block livesync
                log.warning("dropping an event for a slow /events stream")


class Sessions:
    """The live sessions of this worker, one per user, created lazily, closed on idle."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = livesync.Client(api_key=settings.api_key, base_url=settings.base_url)
        self.store: livesync.HandleStore
        if settings.redis_url:
            self.store = livesync.RedisHandleStore(settings.redis_url)
        else:
            self.store = livesync.MemoryHandleStore()
        self._users: Dict[str, UserSession] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._janitor = threading.Thread(target=self._sweep, name="flask-app-janitor",
                                         daemon=True)
        self._janitor.start()

    def get(self, user: str) -> UserSession:
        """The user's session in this worker, connecting (or taking it over) if needed.

        Blocks for the connect: up to the hand-over by another worker plus setup.
        """
        with self._lock:
            entry = self._users.get(user)
            if entry is None:
                entry = self._users[user] = UserSession(user)
            entry.last_used = time.monotonic()
        with entry.connect_lock:
            if not entry.usable:
                entry.session = self.client.connect(
                    self.settings.model,
                    config={"response_modalities": ["TEXT"]},
                    handle_store=self.store,
                    session_key="user:" + user,
                    takeover=True,  # another worker may hold this user's session
                    on_message=entry.on_message,
                    on_close=entry.on_close,
                )
        self._evict_beyond_limit()
        return entry

    def ask(self, user: str, text: str) -> str:
        """Ask in the user's conversation; if the session was handed over to another
        worker just now, take it back once and ask again."""
        for attempt in (1, 2):
            entry = self.get(user)
            session = entry.session
            assert session is not None
            try:
                return session.ask(text, timeout=self.settings.ask_timeout).text
            except livesync.SessionClosed:
                if attempt == 2 or entry.usable:
                    raise
        raise AssertionError("unreachable")

    def forget(self, user: str) -> None:
        """End the user's conversation for good: the stored handle is deleted."""
        entry = self.get(user)
        with self._lock:
            self._users.pop(user, None)
        if entry.session is not None:
            entry.session.close(forget=True)

    def open_users(self) -> List[str]:
        with self._lock:
            return [u for u, e in self._users.items() if e.usable]

    def close(self) -> None:
        """Stop the janitor and close every session (kept resumable in the store)."""
        self._stop.set()
        self._janitor.join(5.0)
        with self._lock:
            entries = list(self._users.values())
            self._users.clear()
        for entry in entries:
            if entry.session is not None:
                entry.session.close()
        if isinstance(self.store, livesync.RedisHandleStore):
            self.store.close()

    def _sweep(self) -> None:
        """Janitor thread: close sessions unused for ``idle_timeout`` seconds."""
        interval = max(0.05, min(self.settings.idle_timeout / 4, 5.0))
        while not self._stop.wait(interval):
            cutoff = time.monotonic() - self.settings.idle_timeout
            with self._lock:
                idle = [e for e in self._users.values()
                        if e.last_used < cutoff and not e.streaming]
                for entry in idle:
                    del self._users[entry.user]
            for entry in idle:
                self._close(entry, "idle")

    def _evict_beyond_limit(self) -> None:
        with self._lock:
            extra = len(self._users) - self.settings.max_sessions
            oldest = sorted(self._users.values(), key=lambda e: e.last_used)[:max(0, extra)]
            for entry in oldest:
                del self._users[entry.user]
        for entry in oldest:
            self._close(entry, "too many sessions")

    @staticmethod
    def _close(entry: UserSession, why: str) -> None:
        if entry.session is not None and not entry.session.closed:
            log.info("closing the session of user %s (%s)", entry.user[:8], why)
            entry.session.close()  # the handle stays in the store: the chat can go on


PAGE = """<!doctype html><title>livesync chat</title>
<form id=f><input id=m autofocus><button>Send</button></form><pre id=log></pre>
<script>
const log = document.getElementById("log");
new EventSource("/events").addEventListener("message", e => {
  const m = JSON.parse(e.data); log.textContent += m.text + (m.turn_complete ? "\\n" : "");
});
document.getElementById("f").onsubmit = async e => {
  e.preventDefault(); const m = document.getElementById("m");
  log.textContent += "> " + m.value + "\\n";
  await fetch("/chat", {method: "POST", headers: {"Content-Type": "application/json"},
                        body: JSON.stringify({message: m.value})});
  m.value = "";
};
</script>"""


def create_app(settings: Optional[Settings] = None) -> Flask:
    """Build the app (``gunicorn 'app:create_app()'``); settings default to the env."""
    app = Flask(__name__)
    sessions = Sessions(settings or Settings.from_env())
    app.extensions["livesync_sessions"] = sessions

    def user_id() -> str:
        return request.cookies.get(COOKIE) or uuid.uuid4().hex

    def with_cookie(response: Response, user: str) -> Response:
        response.set_cookie(COOKIE, user, httponly=True, samesite="Lax")
        return response

    @app.get("/")
    def index() -> Response:
        return with_cookie(Response(PAGE, mimetype="text/html"), user_id())

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(ok=True, pid=os.getpid())

    @app.post("/chat")
    def chat() -> Any:
        body = request.get_json(silent=True) or request.form
        message = body.get("message") if body else None
        if not isinstance(message, str) or not message.strip():
            return jsonify(error="message is required"), 400
        user = user_id()
        try:
            reply = sessions.ask(user, message)
        except livesync.SessionBusy as exc:  # another worker did not hand over in time
            return jsonify(error=str(exc)), 503
        except (livesync.LiveSyncError, TimeoutError) as exc:
            log.warning("chat failed: %s", exc)
            return jsonify(error=type(exc).__name__), 502
        return with_cookie(jsonify(reply=reply, pid=os.getpid()), user)

    @app.post("/forget")
    def forget() -> Any:
        sessions.forget(user_id())
        return jsonify(ok=True)

    @app.get("/events")
    def events() -> Response:
        user = user_id()
        entry = sessions.get(user)
        stream = entry.subscribe()
        return with_cookie(Response(_sse(entry, stream), mimetype="text/event-stream",
                                    headers={"Cache-Control": "no-cache"}), user)

    return app


def _sse(entry: UserSession, stream: "queue.Queue[Optional[Dict[str, Any]]]") -> Iterator[str]:
    """Format one user's events as Server-Sent Events until their session here ends."""
    try:
        yield ": connected\n\n"
        while True:
            entry.last_used = time.monotonic()
            try:
                event = stream.get(timeout=KEEPALIVE)
            except queue.Empty:
                yield ": keepalive\n\n"
                continue
            if event is None:
                yield "event: closed\ndata: {}\n\n"
                return
            yield "event: message\ndata: %s\n\n" % json.dumps(event)
    finally:
        entry.unsubscribe(stream)
