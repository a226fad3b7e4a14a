"""Leases on session keys: one connection holds a Live session at a time (internal).

The Live API refuses a resume while another connection of the session is open
(1011 "Internal error encountered."). With a handle store that is a
:class:`~livesync.store.LeaseStore`, a session that connects with a
``session_key`` first takes the key's lease:

- :func:`acquire` runs on the caller's thread in ``Client.connect``, before
  anything is dialed. A held key raises :class:`~livesync.SessionBusy`, or with
  ``takeover=True`` records a takeover request and polls (bounded by
  ``takeover_timeout``) until the holder releases the lease.
- :class:`Lease` belongs to the session's supervisor thread: :meth:`Lease.tick`
  renews the lease every ``lease_ttl / 3`` seconds and polls for takeover
  requests every :data:`TAKEOVER_POLL` seconds (no extra thread); the driver
  hands over at its next safe point, or at the latest :data:`HANDOVER_TIMEOUT`
  seconds after it saw the request, and :meth:`Lease.release` frees the lease
  after the final handle was saved.

A store error never ends a session: it is logged (once per outage) and the
next tick tries again. A lease whose renewal finds another owner is *lost*.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Final, Optional, Union

from .exceptions import SessionBusy
from .store import LeaseStore

__all__ = ["HANDOVER_TIMEOUT", "TAKEOVER_POLL", "Lease", "acquire", "new_owner"]

#: Seconds a holder keeps serving after it saw a takeover request, waiting for a
#: safe point (model idle, no open tool call, everything sent covered by a handle),
#: before it hands over anyway.
HANDOVER_TIMEOUT: Final = 10.0
#: The longest interval between two polls of a holder for takeover requests.
TAKEOVER_POLL: Final = 1.0
#: Poll intervals of a connect() waiting for a lease (doubling from min to max).
_WAIT_MIN: Final = 0.02
_WAIT_MAX: Final = 0.25

Log = Union[logging.Logger, "logging.LoggerAdapter[Any]"]


def new_owner() -> str:
    """A unique lease owner id: ``host:pid:random`` (helps find a stuck holder)."""
    return "%s:%d:%s" % (socket.gethostname()[:40], os.getpid(), uuid.uuid4().hex[:12])


class Lease:
    """A lease this session holds on ``key``.

    :meth:`tick`, :meth:`next_due` and :meth:`release` run on the supervisor
    thread (``release`` also on the caller's thread when ``connect`` fails);
    :attr:`requested_at` and :attr:`lost` may be read from any thread.
    """

    def __init__(self, store: LeaseStore, key: str, owner: str) -> None:
        self.store = store
        self.key = key
        self.owner = owner
        ttl = float(store.lease_ttl)
        self.renew_every = ttl / 3.0
        self.poll_every = min(TAKEOVER_POLL, ttl / 3.0)
        now = time.monotonic()
        self.next_renew = now + self.renew_every
        self.next_poll = now + self.poll_every
        self.requested_at: Optional[float] = None
        """``time.monotonic()`` when a takeover request by another session was seen."""
        self.lost = False
        """True once a renewal found the lease held by another owner."""
        self._released = False
        self._failing = False  # a store call failed; logged once until one succeeds

    def tick(self, now: float, log: Log) -> None:
        """Renew the lease and poll for a takeover request when due (supervisor)."""
        if self._released or self.lost:
            return
        if now >= self.next_renew:
            self.next_renew = now + self.renew_every
            try:
                held = self.store.renew_lease(self.key, self.owner)
            except Exception as exc:
                self._failed("renew the lease", exc, log)
                # Try again soon: the lease expires after lease_ttl without a renewal.
                self.next_renew = now + min(self.renew_every, TAKEOVER_POLL)
            else:
                self._recovered(log)
                if not held:
                    self.lost = True
                    log.warning("lost the lease on session key %r: another connection "
                                "holds it now", self.key)
                    return
        if self.requested_at is None and now >= self.next_poll:
            self.next_poll = now + self.poll_every
            try:
                requester = self.store.takeover_requested(self.key)
            except Exception as exc:
                self._failed("poll for takeover requests", exc, log)
            else:
                self._recovered(log)
                if requester is not None and requester != self.owner:
                    self.requested_at = now
                    log.info("another connection asked for session key %r; handing over at "
                             "the next safe point (within %.0fs)", self.key, HANDOVER_TIMEOUT)

    def overdue(self, now: float) -> bool:
        """A takeover was requested :data:`HANDOVER_TIMEOUT` seconds ago or more."""
        return self.requested_at is not None and now >= self.requested_at + HANDOVER_TIMEOUT

    def next_due(self) -> float:
        """When :meth:`tick` has work next (``time.monotonic()`` time)."""
        if self.requested_at is None:
            return min(self.next_renew, self.next_poll)
        return min(self.next_renew, self.requested_at + HANDOVER_TIMEOUT)

    def release(self, log: Log) -> None:
        """Free the lease unless it was lost (compare-and-delete); idempotent."""
        if self._released or self.lost:
            return
        self._released = True
        try:
            self.store.release_lease(self.key, self.owner)
        except Exception:
            log.warning("could not release the lease on session key %r; it expires in "
                        "%.0fs", self.key, self.store.lease_ttl, exc_info=True)

    def _failed(self, what: str, exc: Exception, log: Log) -> None:
        if not self._failing:
            self._failing = True
            log.warning("handle store failed to %s (%s); retrying", what,
                        type(exc).__name__, exc_info=True)

    def _recovered(self, log: Log) -> None:
        if self._failing:
            self._failing = False
            log.info("handle store answers again")


def acquire(store: Any, key: Optional[str], *, takeover: bool, timeout: float,
            log: Log) -> Optional[Lease]:
    """Take the lease on ``key`` before dialing (caller's thread, in ``connect``).

    Returns None when the store has no leases (or no ``key``), or when it failed
    (logged: the session carries on without a lease, as it does with a store
    that cannot save). With ``takeover``, records a takeover request and polls
    until the holder releases the lease, at most ``timeout`` seconds.

    Raises:
        SessionBusy: another session holds the lease (and did not hand over
            within ``timeout`` when ``takeover`` is set).
    """
    if key is None or not isinstance(store, LeaseStore):
        return None
    owner = new_owner()
    try:
        if store.acquire_lease(key, owner):
            return Lease(store, key, owner)
    except Exception as exc:
        log.warning("handle store failed to take the lease on session key %r (%s); "
                    "connecting without a lease", key, type(exc).__name__, exc_info=True)
        return None
    if not takeover:
        raise SessionBusy(key)
    log.info("session key %r is held by another connection; asking it to hand over", key)
    return _wait_for_handover(store, key, owner, timeout, log)


def _wait_for_handover(store: LeaseStore, key: str, owner: str, timeout: float,
                       log: Log) -> Lease:
    """Keep a takeover request fresh and poll for the lease until ``timeout``."""
    deadline = time.monotonic() + timeout
    delay, pause = _WAIT_MIN, threading.Event()  # never set: an interruptible-style sleep
    error: Optional[Exception] = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            # Refreshed on every poll: the latest requester wins (docs/handle-stores.md).
            store.request_takeover(key, owner, remaining)
            pause.wait(min(delay, remaining))
            if store.acquire_lease(key, owner):
                return Lease(store, key, owner)
        except Exception as exc:
            if error is None:
                log.warning("handle store failed while waiting for a hand-over (%s); "
                            "retrying", type(exc).__name__, exc_info=True)
            error = exc
            pause.wait(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, _WAIT_MAX)
    try:
        store.cancel_takeover(key, owner)
    except Exception:
        log.warning("could not withdraw the takeover request on session key %r", key,
                    exc_info=True)
    raise SessionBusy(key, waited=timeout) from error
