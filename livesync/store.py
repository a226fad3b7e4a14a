"""Resumption-handle stores.

A handle store persists ``(session key -> latest handle, issued at)`` so that a
process restarted within the handle lifetime (about two hours on the Live API)
can resume its session, e.g. after a Jupyter kernel restart::

    session = client.connect(
        model,
        handle_store=livesync.FileHandleStore("~/.cache/livesync/handles.json"),
        session_key="chat-1",
    )

Three stores ship with livesync:

- :class:`MemoryHandleStore`: a dict behind a lock; survives reconnects, not restarts.
- :class:`FileHandleStore`: one JSON file holding many keys; written atomically
  (temp file + ``os.replace``, mode ``0o600``) and locked with ``fcntl.flock``
  on POSIX so that several processes can share it.
- :class:`RedisHandleStore`: keys with an expiry in Redis, shared by many worker
  processes or hosts. Needs the optional ``redis`` package
  (``pip install 'livesync[redis]'``).

Any object with ``load``, ``save`` and ``delete`` methods satisfies
:class:`HandleStore`. A store that also has the lease methods of
:class:`LeaseStore` (:class:`MemoryHandleStore` and :class:`RedisHandleStore`)
lets only one session at a time hold a session key: a second ``connect`` raises
:class:`~livesync.SessionBusy`, or with ``takeover=True`` asks the holder to hand
the conversation over (see ``docs/handle-stores.md``). Methods of every store
may be called from any thread; they are quick and bounded, and they raise store
errors (``OSError``, Redis errors, ``TimeoutError``) to the caller as they are.

Handles are bearer capabilities: they never appear in logs, reprs or exception
text (at most their length and an 8-character prefix).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Final,
    Iterator,
    Optional,
    Protocol,
    Tuple,
    Union,
    cast,
    runtime_checkable,
)

from .exceptions import InvalidConfig

if sys.platform != "win32":
    import fcntl

__all__ = [
    "DEFAULT_LEASE_TTL",
    "DEFAULT_TTL",
    "FileHandleStore",
    "HandleStore",
    "LeaseStore",
    "MemoryHandleStore",
    "RedisHandleStore",
    "StoredHandle",
]

logger = logging.getLogger("livesync.session")

DEFAULT_TTL: Final = 7200.0
"""Default lifetime of a stored handle in seconds (the Live API's two hours)."""

DEFAULT_LEASE_TTL: Final = 15.0
"""Default lifetime of a lease in seconds; its holder renews it every third of that."""

DEFAULT_LOCK_TIMEOUT: Final = 2.0
"""Default bound, in seconds, on waiting for a :class:`FileHandleStore` lock."""

DEFAULT_REDIS_TIMEOUT: Final = 2.0
"""Default Redis socket and connect timeout, in seconds."""

_FILE_FORMAT_VERSION: Final = 1
_LOCK_POLL_MIN: Final = 0.001
_LOCK_POLL_MAX: Final = 0.02
_REDIS_SCHEMES: Final = ("redis", "rediss", "unix")

Clock = Callable[[], float]
StrPath = Union[str, "os.PathLike[str]"]


def _handle_summary(handle: str) -> str:
    """Describe a handle without revealing it: a short prefix and the length.

    The prefix is at most 8 characters and at most half of the handle, so a
    short handle is never shown in full.
    """
    prefix = handle[: min(8, len(handle) // 2)]
    return "%s... (%d chars)" % (prefix, len(handle))


@dataclass(frozen=True)
class StoredHandle:
    """A resumption handle and the time the server issued it.

    Instances are immutable and safe to share between threads. The repr shows
    only an 8-character prefix and the length of the handle.

    Raises:
        InvalidConfig: ``handle`` is not a non-empty string or ``issued_at`` is
            not a finite number.
    """

    handle: str = field(repr=False)
    """The opaque handle from ``sessionResumptionUpdate.newHandle``."""

    issued_at: float
    """``time.time()`` when the server issued the handle."""

    def __post_init__(self) -> None:
        if not isinstance(self.handle, str) or not self.handle:
            raise InvalidConfig("handle must be a non-empty string", field="handle")
        issued_at: object = self.issued_at
        if (
            isinstance(issued_at, bool)
            or not isinstance(issued_at, (int, float))
            or not math.isfinite(issued_at)
        ):
            raise InvalidConfig("issued_at must be a finite number", field="issued_at")

    def __repr__(self) -> str:
        return "StoredHandle(handle=%s, issued_at=%r)" % (
            _handle_summary(self.handle),
            self.issued_at,
        )

    def expired(self, ttl: float, now: float) -> bool:
        """Return whether the handle is at least ``ttl`` seconds old at ``now``."""
        return now - self.issued_at >= ttl


@runtime_checkable
class HandleStore(Protocol):
    """Where a session keeps its latest resumption handle.

    Implementations must be safe to call from any thread and should return
    quickly (a bounded wait at most); a session calls them from its
    dispatcher and supervisor threads, logs any exception and carries on.
    """

    def load(self, key: str) -> Optional[StoredHandle]:
        """Return the handle stored under ``key``, or None when absent or expired."""
        ...

    def save(self, key: str, handle: StoredHandle) -> None:
        """Store ``handle`` under ``key``, replacing any earlier one."""
        ...

    def delete(self, key: str) -> None:
        """Forget the handle stored under ``key``; a missing key is not an error."""
        ...


@runtime_checkable
class LeaseStore(Protocol):
    """A store that also decides which session holds a session key: a lease.

    A lease is ``(key -> owner)`` with an expiry of :attr:`lease_ttl` seconds.
    The session holding it renews it every ``lease_ttl / 3`` seconds from its
    supervisor thread and releases it when it closes; a holder that died loses
    it when it expires. A session that wants the key while another holds it
    records a takeover request, which the holder polls (see
    ``docs/handle-stores.md``, "hand-over").

    Owners and requesters are opaque, unique strings made by the session. Every
    method must be atomic with respect to other processes sharing the store,
    safe to call from any thread, and bounded; store errors are raised.
    """

    @property
    def lease_ttl(self) -> float:
        """Lifetime of a lease in seconds, from its last acquire or renewal."""
        ...

    def acquire_lease(self, key: str, owner: str) -> bool:
        """Take the lease on ``key`` for ``owner`` if it is free, expired or ``owner``'s
        already; return whether ``owner`` holds it now. Withdraws ``owner``'s own
        takeover request when it succeeds."""
        ...

    def renew_lease(self, key: str, owner: str) -> bool:
        """Extend ``owner``'s lease by ``lease_ttl`` (taking it again if it expired and
        nobody else took it); False if another owner holds it."""
        ...

    def release_lease(self, key: str, owner: str) -> bool:
        """Free the lease if ``owner`` holds it (compare-and-delete); return whether it did."""
        ...

    def request_takeover(self, key: str, requester: str, ttl: float) -> None:
        """Ask the holder of ``key`` to hand over to ``requester``; the request
        lapses after ``ttl`` seconds. The latest request replaces earlier ones."""
        ...

    def takeover_requested(self, key: str) -> Optional[str]:
        """The requester of a pending takeover of ``key``, or None."""
        ...

    def cancel_takeover(self, key: str, requester: str) -> None:
        """Withdraw ``requester``'s takeover request (another's is left alone)."""
        ...


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidConfig("key must be a non-empty string", field="key")
    return key


def _check_handle(handle: object) -> StoredHandle:
    if not isinstance(handle, StoredHandle):
        raise InvalidConfig(
            "handle must be a StoredHandle, not %s" % type(handle).__name__, field="handle"
        )
    return handle


def _check_positive(value: object, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or not math.isfinite(value)
    ):
        raise InvalidConfig("%s must be a positive number of seconds" % name, field=name)
    return float(value)


def _check_clock(clock: object) -> Clock:
    if not callable(clock):
        raise InvalidConfig("clock must be callable", field="clock")
    return cast(Clock, clock)


class MemoryHandleStore:
    """Keep handles in a dict, for reconnects within one process.

    It is also a :class:`LeaseStore`: sessions of one process sharing it hold a
    session key one at a time.

    Args:
        ttl: lifetime of a handle in seconds, counted from ``issued_at``.
        lease_ttl: lifetime of a lease in seconds (see :class:`LeaseStore`).
        clock: returns the current time as ``time.time()`` does (for tests);
            handle and lease expiry both follow it.

    Raises:
        InvalidConfig: ``ttl`` or ``lease_ttl`` is not a positive number.

    All methods may be called from any thread; they take one lock briefly,
    never block otherwise and never raise except for invalid arguments.
    """

    def __init__(self, *, ttl: float = DEFAULT_TTL, lease_ttl: float = DEFAULT_LEASE_TTL,
                 clock: Clock = time.time) -> None:
        self._ttl = _check_positive(ttl, "ttl")
        self._lease_ttl = _check_positive(lease_ttl, "lease_ttl")
        self._clock = _check_clock(clock)
        self._lock = threading.Lock()
        self._handles: Dict[str, StoredHandle] = {}
        self._leases: Dict[str, Tuple[str, float]] = {}  # key -> (owner, expires at)
        self._takeovers: Dict[str, Tuple[str, float]] = {}  # key -> (requester, expires at)

    @property
    def ttl(self) -> float:
        """Lifetime of a handle in seconds."""
        return self._ttl

    def __repr__(self) -> str:
        with self._lock:
            count = len(self._handles)
        return "MemoryHandleStore(ttl=%r, keys=%d)" % (self._ttl, count)

    def load(self, key: str) -> Optional[StoredHandle]:
        """Return the handle stored under ``key``, or None when absent or expired.

        An expired handle is removed.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string.
        """
        _check_key(key)
        now = self._clock()
        with self._lock:
            stored = self._handles.get(key)
            if stored is not None and stored.expired(self._ttl, now):
                del self._handles[key]
                stored = None
        return stored

    def save(self, key: str, handle: StoredHandle) -> None:
        """Store ``handle`` under ``key``; an already expired handle deletes the key.

        Expired entries of other keys are pruned at the same time, so the
        store does not grow without bound.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string or ``handle`` is
                not a :class:`StoredHandle`.
        """
        _check_key(key)
        _check_handle(handle)
        now = self._clock()
        with self._lock:
            self._handles = {
                k: v for k, v in self._handles.items() if not v.expired(self._ttl, now)
            }
            if handle.expired(self._ttl, now):
                self._handles.pop(key, None)
            else:
                self._handles[key] = handle

    def delete(self, key: str) -> None:
        """Forget the handle stored under ``key``; idempotent.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string.
        """
        _check_key(key)
        with self._lock:
            self._handles.pop(key, None)

    # Leases (LeaseStore).

    @property
    def lease_ttl(self) -> float:
        """Lifetime of a lease in seconds."""
        return self._lease_ttl

    def acquire_lease(self, key: str, owner: str) -> bool:
        """See :meth:`LeaseStore.acquire_lease`."""
        _check_key(key)
        _check_owner(owner)
        with self._lock:
            if not self._take_lease(key, owner):
                return False
            if _live(self._takeovers, key, self._clock()) == owner:
                del self._takeovers[key]
            return True

    def renew_lease(self, key: str, owner: str) -> bool:
        """See :meth:`LeaseStore.renew_lease`."""
        _check_key(key)
        _check_owner(owner)
        with self._lock:
            return self._take_lease(key, owner)

    def release_lease(self, key: str, owner: str) -> bool:
        """See :meth:`LeaseStore.release_lease`."""
        _check_key(key)
        _check_owner(owner)
        with self._lock:
            if _live(self._leases, key, self._clock()) != owner:
                return False
            del self._leases[key]
            return True

    def request_takeover(self, key: str, requester: str, ttl: float) -> None:
        """See :meth:`LeaseStore.request_takeover`."""
        _check_key(key)
        _check_owner(requester, "requester")
        ttl = _check_positive(ttl, "ttl")
        with self._lock:
            self._takeovers[key] = (requester, self._clock() + ttl)

    def takeover_requested(self, key: str) -> Optional[str]:
        """See :meth:`LeaseStore.takeover_requested`."""
        _check_key(key)
        with self._lock:
            return _live(self._takeovers, key, self._clock())

    def cancel_takeover(self, key: str, requester: str) -> None:
        """See :meth:`LeaseStore.cancel_takeover`."""
        _check_key(key)
        _check_owner(requester, "requester")
        with self._lock:
            if _live(self._takeovers, key, self._clock()) == requester:
                del self._takeovers[key]

    def _take_lease(self, key: str, owner: str) -> bool:
        """With ``_lock`` held: (re)take the lease if free, expired or ``owner``'s."""
        now = self._clock()
        holder = _live(self._leases, key, now)
        if holder is not None and holder != owner:
            return False
        self._leases[key] = (owner, now + self._lease_ttl)
        return True


def _check_owner(owner: object, name: str = "owner") -> str:
    if not isinstance(owner, str) or not owner:
        raise InvalidConfig("%s must be a non-empty string" % name, field=name)
    return owner


def _live(entries: Dict[str, Tuple[str, float]], key: str, now: float) -> Optional[str]:
    """The owner in ``entries[key]`` unless it expired (an expired entry is removed)."""
    entry = entries.get(key)
    if entry is None:
        return None
    if now >= entry[1]:
        del entries[key]
        return None
    return entry[0]


# One in-process lock per file path. flock() already excludes other open file
# descriptions, but on some file systems (NFS) it is emulated with per-process
# POSIX locks, and on Windows there is no flock at all; this lock serializes
# FileHandleStore instances of the same process in every case.
_PATH_LOCKS: Dict[str, threading.Lock] = {}
_PATH_LOCKS_GUARD = threading.Lock()


def _path_lock(path: str) -> threading.Lock:
    key = os.path.normcase(path)
    with _PATH_LOCKS_GUARD:
        lock = _PATH_LOCKS.get(key)
        if lock is None:
            lock = _PATH_LOCKS[key] = threading.Lock()
        return lock


def _decode_file(text: str) -> Tuple[Dict[str, StoredHandle], int]:
    """Parse the JSON document of a :class:`FileHandleStore`.

    Returns:
        The valid entries and the number of malformed entries skipped.

    Raises:
        ValueError: the document is not JSON or not in the expected format.
    """
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("version") != _FILE_FORMAT_VERSION:
        raise ValueError("not a livesync handle store (version %d)" % _FILE_FORMAT_VERSION)
    entries = document.get("handles")
    if not isinstance(entries, dict):
        raise ValueError("missing handles")
    handles: Dict[str, StoredHandle] = {}
    skipped = 0
    for key, entry in entries.items():
        stored = _decode_entry(entry)
        if key and stored is not None:
            handles[key] = stored
        else:
            skipped += 1
    return handles, skipped


def _decode_entry(entry: object) -> Optional[StoredHandle]:
    if not isinstance(entry, dict):
        return None
    try:
        handle: Any = entry.get("handle")
        issued_at: Any = entry.get("issued_at")
        return StoredHandle(handle=handle, issued_at=issued_at)
    except InvalidConfig:
        return None


def _encode_file(handles: Dict[str, StoredHandle]) -> str:
    entries = {
        key: {"handle": stored.handle, "issued_at": stored.issued_at}
        for key, stored in sorted(handles.items())
    }
    return json.dumps({"version": _FILE_FORMAT_VERSION, "handles": entries}, indent=1)


class FileHandleStore:
    """Keep handles in one JSON file, shared by threads and processes.

    The file holds many keys. Every change rewrites it atomically: the new
    content goes to a temporary file in the same directory (mode ``0o600``,
    because handles are bearer capabilities), is flushed to disk, then
    replaces the old file with ``os.replace``. A crash therefore leaves
    either the old or the new file, never a torn one. Missing parent
    directories are created with mode ``0o700``.

    Changes (``save``, ``delete``) are read-modify-write cycles serialized by
    an exclusive ``fcntl.flock`` on a sidecar lock file (``<path>.lock``,
    left in place on purpose: removing it would race with other processes),
    so instances in several processes on the same path never lose each
    other's keys. ``load`` takes no lock, as the file is only ever replaced
    whole. On Windows there is no ``flock``: instances in one process are
    still serialized, but concurrent changes from several processes are best
    effort (the last writer may drop a key another process just wrote, and
    ``os.replace`` may fail with ``PermissionError`` while another process
    is reading the file).

    A file that cannot be read or parsed is treated as empty, with a WARNING
    on the ``livesync.session`` logger; the next change replaces it.

    Args:
        path: the JSON file; ``~`` is expanded and the path made absolute.
        ttl: lifetime of a handle in seconds, counted from ``issued_at``.
        lock_timeout: how long a change waits for the lock before raising
            ``TimeoutError``.
        clock: returns the current time as ``time.time()`` does (for tests).

    Raises:
        InvalidConfig: ``path`` is empty, or ``ttl`` or ``lock_timeout`` is
            not a positive number.

    All methods may be called from any thread. ``load`` reads one small file;
    ``save`` and ``delete`` wait at most ``lock_timeout`` for the lock, then
    write and ``fsync`` one small file. ``OSError`` is raised as is.
    """

    def __init__(
        self,
        path: StrPath,
        *,
        ttl: float = DEFAULT_TTL,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        clock: Clock = time.time,
    ) -> None:
        try:
            raw_path = os.fspath(path)
        except TypeError:
            raise InvalidConfig("path must be a str or os.PathLike", field="path") from None
        if not isinstance(raw_path, str) or not raw_path:
            raise InvalidConfig("path must be a non-empty str path", field="path")
        self._path = os.path.abspath(os.path.expanduser(raw_path))
        self._lock_path = self._path + ".lock"
        self._ttl = _check_positive(ttl, "ttl")
        self._lock_timeout = _check_positive(lock_timeout, "lock_timeout")
        self._clock = _check_clock(clock)
        self._thread_lock = _path_lock(self._path)

    @property
    def path(self) -> str:
        """Absolute path of the JSON file."""
        return self._path

    @property
    def ttl(self) -> float:
        """Lifetime of a handle in seconds."""
        return self._ttl

    def __repr__(self) -> str:
        return "FileHandleStore(%r, ttl=%r)" % (self._path, self._ttl)

    def load(self, key: str) -> Optional[StoredHandle]:
        """Return the handle stored under ``key``, or None when absent or expired.

        Does not modify the file; expired entries are pruned by the next change.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string.
        """
        _check_key(key)
        stored = self._read(strict=False).get(key)
        if stored is None or stored.expired(self._ttl, self._clock()):
            return None
        return stored

    def save(self, key: str, handle: StoredHandle) -> None:
        """Store ``handle`` under ``key``; an already expired handle deletes the key.

        Expired entries of other keys are pruned in the same write.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string or ``handle`` is
                not a :class:`StoredHandle`.
            TimeoutError: the lock was not acquired within ``lock_timeout``.
            OSError: the file could not be read or written.
        """
        _check_key(key)
        _check_handle(handle)
        with self._locked():
            handles = self._read(strict=True)
            now = self._clock()
            kept = {k: v for k, v in handles.items() if not v.expired(self._ttl, now)}
            if handle.expired(self._ttl, now):
                kept.pop(key, None)
            else:
                kept[key] = handle
            if kept != handles:
                self._write(kept)

    def delete(self, key: str) -> None:
        """Forget the handle stored under ``key``; idempotent.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string.
            TimeoutError: the lock was not acquired within ``lock_timeout``.
            OSError: the file could not be read or written.
        """
        _check_key(key)
        with self._locked():
            handles = self._read(strict=True)
            if key in handles:
                del handles[key]
                self._write(handles)

    def _read(self, *, strict: bool) -> Dict[str, StoredHandle]:
        """Read every entry, expired ones included.

        A missing file is empty. A corrupt file is empty with a WARNING. An
        unreadable file (``OSError``) is empty with a WARNING, unless
        ``strict``, where the error is raised so that a change never replaces
        a file it could not read.
        """
        try:
            with open(self._path, "rb") as file:
                data = file.read()
        except FileNotFoundError:
            return {}
        except OSError:
            if strict:
                raise
            logger.warning(
                "cannot read handle store %s; treating it as empty", self._path, exc_info=True
            )
            return {}
        try:
            handles, skipped = _decode_file(data.decode("utf-8"))
        except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
            # These messages hold a position and at most one byte, never file content.
            logger.warning(
                "handle store %s is corrupt (%s: %s); treating it as empty",
                self._path,
                type(exc).__name__,
                exc,
            )
            return {}
        if skipped:
            logger.warning("handle store %s: ignored %d malformed entries", self._path, skipped)
        return handles

    def _write(self, handles: Dict[str, StoredHandle]) -> None:
        """Replace the file atomically with ``handles`` (mode 0o600)."""
        directory = os.path.dirname(self._path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        data = _encode_file(handles).encode("utf-8")
        # mkstemp creates the file with mode 0o600 in the target directory, so
        # os.replace is a same-file-system rename.
        fd, tmp_path = tempfile.mkstemp(
            dir=directory, prefix="." + os.path.basename(self._path) + ".", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp_path, self._path)
        except BaseException:
            try:
                os.unlink(tmp_path)
            except OSError:
                logger.warning("could not remove temporary file %s", tmp_path, exc_info=True)
            raise

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the in-process lock and the file lock, waiting at most lock_timeout."""
        deadline = time.monotonic() + self._lock_timeout
        if not self._thread_lock.acquire(timeout=self._lock_timeout):
            raise TimeoutError(
                "timed out after %.1fs waiting for the lock on %s"
                % (self._lock_timeout, self._path)
            )
        try:
            if sys.platform == "win32":
                yield
            else:
                with self._flocked(deadline):
                    yield
        finally:
            self._thread_lock.release()

    if sys.platform != "win32":

        @contextmanager
        def _flocked(self, deadline: float) -> Iterator[None]:
            """Hold an exclusive flock on the lock file, polling until ``deadline``."""
            os.makedirs(os.path.dirname(self._lock_path), mode=0o700, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                delay = _LOCK_POLL_MIN
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            raise TimeoutError(
                                "timed out after %.1fs waiting for the lock on %s"
                                % (self._lock_timeout, self._path)
                            ) from None
                        # A short poll: flock has no timeout of its own.
                        time.sleep(min(delay, remaining))
                        delay = min(delay * 2, _LOCK_POLL_MAX)
                try:
                    yield
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


#: The lease scripts; each touches exactly one key, so it is atomic in Redis.
_LUA: Final = {
    # Take or extend: set KEYS[1] to ARGV[1] for ARGV[2] ms if it is free or already
    # ARGV[1]'s; 0 if another owner holds it.
    "take": """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
""",
    # Compare-and-delete: delete KEYS[1] only if it holds ARGV[1].
    "unlock": """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
""",
}


def _redact_url(url: str) -> str:
    """Return ``url`` without credentials or query, for reprs."""
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = "[secure]@" + netloc.rsplit("@", 1)[1]
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    except ValueError:
        return "[invalid url]"


def _url_scheme(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).scheme
    except ValueError:
        return ""


def _import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:
        raise ImportError(
            "RedisHandleStore needs the redis package: pip install 'livesync[redis]'",
            name="redis",
        ) from exc
    return redis


class RedisHandleStore:
    """Keep handles in Redis, shared by many worker processes or hosts.

    Each key is stored as ``<prefix><key>`` holding a small JSON document, with
    a Redis expiry (``SET ... PX``) computed from ``issued_at`` so entries
    vanish by themselves when the handle lifetime ends. The last ``save``
    wins.

    It is also a :class:`LeaseStore`: the lease on a session key is the Redis key
    ``<lease_prefix>lease:<key>`` holding its owner with a ``PX`` expiry, taken
    and extended by a compare-and-set Lua script and released by a
    compare-and-delete one; a takeover request is ``<lease_prefix>takeover:<key>``.

    The ``redis`` package is optional: install it with
    ``pip install 'livesync[redis]'``.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL, ignored when
            ``client`` is given. Credentials in it never appear in reprs.
        client: a ready ``redis.Redis`` client to use instead of ``url``;
            its timeouts and retries are left as they are and ``close()``
            does not close it.
        prefix: prepended to every handle key, to share one database between uses.
        lease_prefix: prepended to the lease and takeover keys
            (``<lease_prefix>lease:<key>``, ``<lease_prefix>takeover:<key>``); give
            each app sharing a database its own.
        ttl: lifetime of a handle in seconds, counted from ``issued_at``.
        lease_ttl: lifetime of a lease in seconds (see :class:`LeaseStore`).
        timeout: socket connect and read timeout in seconds for the client
            built from ``url``; that client does not retry, so a call fails
            within about ``2 * timeout`` when Redis is unreachable.
        clock: returns the current time as ``time.time()`` does (for tests).

    Raises:
        ImportError: the ``redis`` package is not installed.
        InvalidConfig: an argument is invalid.

    All methods may be called from any thread (redis-py clients are
    thread-safe); each does one round trip. Redis errors are raised as is.
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        client: Optional[Any] = None,
        prefix: str = "livesync:handle:",
        lease_prefix: str = "livesync:",
        ttl: float = DEFAULT_TTL,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        timeout: float = DEFAULT_REDIS_TIMEOUT,
        clock: Clock = time.time,
    ) -> None:
        if not isinstance(prefix, str):
            raise InvalidConfig("prefix must be a string", field="prefix")
        if not isinstance(lease_prefix, str):
            raise InvalidConfig("lease_prefix must be a string", field="lease_prefix")
        self._prefix = prefix
        self._lease_prefix = lease_prefix
        self._ttl = _check_positive(ttl, "ttl")
        self._lease_ttl = _check_positive(lease_ttl, "lease_ttl")
        timeout = _check_positive(timeout, "timeout")
        self._clock = _check_clock(clock)
        self._scripts: Dict[str, Any] = {}
        if client is not None:
            self._client = client
            self._owns_client = False
            self._description = "client=%s" % type(client).__name__
            return
        if not isinstance(url, str) or _url_scheme(url) not in _REDIS_SCHEMES:
            # The URL itself is not echoed: it may hold a password.
            raise InvalidConfig("url must start with redis://, rediss:// or unix://", field="url")
        redis = _import_redis()
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # redis-py 6+ retries up to 10 times with backoff by default;
            # a handle store must fail fast instead.
            retry=Retry(NoBackoff(), 0),
        )
        self._owns_client = True
        self._description = "%r" % _redact_url(url)

    @property
    def ttl(self) -> float:
        """Lifetime of a handle in seconds."""
        return self._ttl

    @property
    def prefix(self) -> str:
        """Prefix of every Redis key this store uses."""
        return self._prefix

    def __repr__(self) -> str:
        return "RedisHandleStore(%s, prefix=%r, ttl=%r)" % (
            self._description,
            self._prefix,
            self._ttl,
        )

    def redis_key(self, key: str) -> str:
        """Return the Redis key under which ``key`` is stored."""
        return self._prefix + _check_key(key)

    def load(self, key: str) -> Optional[StoredHandle]:
        """Return the handle stored under ``key``, or None when absent or expired.

        A malformed value is treated as absent, with a WARNING.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string.
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        redis_key = self.redis_key(key)
        raw = self._client.get(redis_key)
        if raw is None:
            return None
        stored = self._decode(raw)
        if stored is None:
            logger.warning("ignoring malformed handle in Redis key %r", redis_key)
            return None
        # Redis expires the key itself; this check covers clock skew between
        # hosts. The key is not deleted here, so as not to race with a save.
        if stored.expired(self._ttl, self._clock()):
            return None
        return stored

    def save(self, key: str, handle: StoredHandle) -> None:
        """Store ``handle`` under ``key`` until it expires; an expired handle deletes the key.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string or ``handle`` is
                not a :class:`StoredHandle`.
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        redis_key = self.redis_key(key)
        _check_handle(handle)
        remaining = min(self._ttl, handle.issued_at + self._ttl - self._clock())
        milliseconds = int(math.ceil(remaining * 1000.0))
        if milliseconds <= 0:
            self._client.delete(redis_key)
            return
        value = json.dumps({"handle": handle.handle, "issued_at": handle.issued_at})
        self._client.set(redis_key, value, px=milliseconds)

    def delete(self, key: str) -> None:
        """Forget the handle stored under ``key``; idempotent.

        Raises:
            InvalidConfig: ``key`` is not a non-empty string.
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        self._client.delete(self.redis_key(key))

    # Leases (LeaseStore).

    @property
    def lease_ttl(self) -> float:
        """Lifetime of a lease in seconds."""
        return self._lease_ttl

    def lease_key(self, key: str) -> str:
        """Return the Redis key holding the lease on ``key``: ``<lease_prefix>lease:<key>``."""
        return self._lease_prefix + "lease:" + _check_key(key)

    def takeover_key(self, key: str) -> str:
        """Return the Redis key holding a takeover request: ``<lease_prefix>takeover:<key>``."""
        return self._lease_prefix + "takeover:" + _check_key(key)

    def acquire_lease(self, key: str, owner: str) -> bool:
        """See :meth:`LeaseStore.acquire_lease`: one atomic script on the lease key
        (``SET ... PX`` when free or ``owner``'s), then a compare-and-delete of
        ``owner``'s own takeover request.

        Raises:
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        if not self._run("take", self.lease_key(key), _check_owner(owner), self._lease_ms()):
            return False
        self._run("unlock", self.takeover_key(key), owner)
        return True

    def renew_lease(self, key: str, owner: str) -> bool:
        """See :meth:`LeaseStore.renew_lease` (compare-and-extend, atomic).

        Raises:
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        return self._run("take", self.lease_key(key), _check_owner(owner), self._lease_ms())

    def release_lease(self, key: str, owner: str) -> bool:
        """See :meth:`LeaseStore.release_lease` (compare-and-delete, atomic).

        Raises:
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        return self._run("unlock", self.lease_key(key), _check_owner(owner))

    def request_takeover(self, key: str, requester: str, ttl: float) -> None:
        """See :meth:`LeaseStore.request_takeover` (``SET ... PX ttl``).

        Raises:
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        redis_key = self.takeover_key(key)
        _check_owner(requester, "requester")
        milliseconds = max(1, int(math.ceil(_check_positive(ttl, "ttl") * 1000.0)))
        self._client.set(redis_key, requester, px=milliseconds)

    def takeover_requested(self, key: str) -> Optional[str]:
        """See :meth:`LeaseStore.takeover_requested`.

        Raises:
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        raw = self._client.get(self.takeover_key(key))
        if raw is None:
            return None
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)

    def cancel_takeover(self, key: str, requester: str) -> None:
        """See :meth:`LeaseStore.cancel_takeover` (compare-and-delete, atomic).

        Raises:
            redis.exceptions.RedisError: Redis failed or is unreachable.
        """
        self._run("unlock", self.takeover_key(key), _check_owner(requester, "requester"))

    def _lease_ms(self) -> int:
        return max(1, int(math.ceil(self._lease_ttl * 1000.0)))

    def _run(self, name: str, redis_key: str, *args: Any) -> bool:
        """Run one of the lease scripts on one key (one key each: cluster-safe)."""
        script = self._scripts.get(name)
        if script is None:
            # register_script makes no round trip; EVALSHA falls back to EVAL once.
            script = self._scripts[name] = self._client.register_script(_LUA[name])
        return bool(script(keys=[redis_key], args=list(args)))

    def close(self) -> None:
        """Close the connections of the client built from ``url``; idempotent.

        A client passed as ``client`` is left open.
        """
        if self._owns_client:
            self._client.close()

    @staticmethod
    def _decode(raw: object) -> Optional[StoredHandle]:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            if not isinstance(text, str):
                return None
            return _decode_entry(json.loads(text))
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            return None
