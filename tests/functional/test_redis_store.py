"""Functional tests for RedisHandleStore against a real redis-server.

The ``redis_server`` fixture starts its own ``redis-server`` on a free loopback
port. Without the binary or the ``redis`` package the tests are skipped
locally, but fail when ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from livesync.exceptions import InvalidConfig
from livesync.store import RedisHandleStore, StoredHandle
from tests.utils import wait_for

pytestmark = pytest.mark.redis

TIMEOUT = 0.5 * float(os.environ.get("LIVESYNC_TESTS_TIMEOUT_FACTOR", "1"))
SECRET = "SECRETHANDLE-0123456789abcdefghijklmnopqrstuvwxyz"
STARTUP_TIMEOUT = 10 * TIMEOUT


def skip_or_fail(reason: str) -> None:
    """Skip locally; fail in CI, where a missing dependency is a setup bug."""
    if os.environ.get("CI") == "true":
        pytest.fail("%s (required when CI=true)" % reason, pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process on 127.0.0.1, for one test module."""

    def __init__(self, binary: str, directory: str) -> None:
        self.binary = binary
        self.directory = directory
        self.port = 0
        self.process = None

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self) -> None:
        """Start on a free port; the port may be taken before the bind, so retry a few times."""
        for _ in range(3):
            output = self._spawn(free_port())
            if output is None:
                return
            if "Address already in use" not in output:
                break
        pytest.fail("redis-server did not answer PING:\n%s" % output, pytrace=False)

    def restart(self) -> None:
        """Stop the server and start a new one on the same port."""
        self.stop()
        output = self._spawn(self.port)
        if output is not None:
            pytest.fail("redis-server did not restart:\n%s" % output, pytrace=False)

    def _spawn(self, port: int):
        """Start redis-server on port; return None once it answers PING, else its output."""
        import redis

        self.port = port
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", self.directory,
            ],
            cwd=self.directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = redis.Redis.from_url(
            self.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
        )
        try:
            if wait_for(lambda: self._answers(client), STARTUP_TIMEOUT) and self.alive():
                return None
        finally:
            client.close()
        return self.stop()

    def _answers(self, client) -> bool:
        import redis

        if self.process.poll() is not None:
            return True  # exited: stop the wait; _spawn() reports the output
        try:
            return bool(client.ping())
        except redis.exceptions.ConnectionError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> str:
        """Terminate the server (bounded wait, then kill) and return its output."""
        process, self.process = self.process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.terminate()
        try:
            output, _ = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=5)
        return output.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def redis_py():
    """The redis package (redis-py)."""
    try:
        import redis
    except ImportError:
        skip_or_fail("redis package not installed (pip install 'livesync[redis]')")
    return redis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory, redis_py):
    """Start a real redis-server on a free loopback port for this module."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server binary not found on PATH (apt-get install redis-server)")
    server = RedisServer(binary, str(tmp_path_factory.mktemp("redis")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def raw(redis_server):
    """A plain redis-py client on the test server, flushed before each test."""
    import redis

    client = redis.Redis.from_url(
        redis_server.url, socket_timeout=TIMEOUT * 4, socket_connect_timeout=TIMEOUT * 4
    )
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def make_store(redis_server, raw):
    """Build RedisHandleStores on the test server, closed at teardown."""
    stores = []

    def make(**kwargs):
        kwargs.setdefault("url", redis_server.url)
        store = RedisHandleStore(**kwargs)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def handle(text: str = SECRET, issued_at=None) -> StoredHandle:
    return StoredHandle(handle=text, issued_at=time.time() if issued_at is None else issued_at)


def test_save_load_delete(make_store):
    """A saved handle loads back equal and is gone after delete; delete is idempotent."""
    store = make_store()
    assert store.load("chat-1") is None
    saved = handle()
    store.save("chat-1", saved)
    assert store.load("chat-1") == saved
    store.delete("chat-1")
    assert store.load("chat-1") is None
    store.delete("chat-1")


def test_overwrite_keeps_latest(make_store):
    """A second save under the same key replaces the first."""
    store = make_store()
    store.save("k", handle("first-handle-xxxxxxxxxx"))
    latest = handle("second-handle-yyyyyyyyy")
    store.save("k", latest)
    assert store.load("k") == latest


def test_key_expires_in_redis(make_store, raw):
    """The Redis key carries an expiry computed from issued_at."""
    store = make_store(ttl=100.0)
    store.save("k", handle(issued_at=time.time() - 40))
    pttl = raw.pttl("livesync:handle:k")
    assert 55_000 < pttl <= 60_000


def test_key_vanishes_by_itself(make_store, raw):
    """With ttl=1 s and a handle issued 0.9 s ago, Redis drops the key within about 0.1 s."""
    store = make_store(ttl=1.0)
    store.save("k", handle(issued_at=time.time() - 0.9))
    assert raw.exists("livesync:handle:k")
    assert wait_for(lambda: not raw.exists("livesync:handle:k"), 4 * TIMEOUT)
    assert store.load("k") is None


def test_save_expired_handle_deletes(make_store, raw):
    """Saving a handle older than ttl deletes the key instead."""
    store = make_store(ttl=10.0)
    store.save("k", handle())
    store.save("k", handle(issued_at=time.time() - 10.0))
    assert not raw.exists("livesync:handle:k")
    assert store.load("k") is None


def test_load_checks_ttl_with_its_clock(make_store):
    """load returns None for a handle older than ttl even if Redis still has it (clock skew)."""
    now = [time.time()]
    store = make_store(ttl=60.0, clock=lambda: now[0])
    store.save("k", handle(issued_at=now[0]))
    assert store.load("k") is not None
    now[0] += 60.0
    assert store.load("k") is None


def test_two_workers_share_handles(make_store):
    """A handle saved by one worker's store is loaded by another's, and deletes are shared."""
    worker_a = make_store()
    worker_b = make_store()
    saved = handle()
    worker_a.save("chat-1", saved)
    assert worker_b.load("chat-1") == saved
    newer = handle("newer-handle-zzzzzzzzzzzz")
    worker_b.save("chat-1", newer)
    assert worker_a.load("chat-1") == newer
    worker_a.delete("chat-1")
    assert worker_b.load("chat-1") is None


def test_many_threads(make_store):
    """One store used from many threads at once keeps every key."""
    store = make_store()
    errors = []

    def work(t: int) -> None:
        try:
            for i in range(20):
                store.save("t%d-%d" % (t, i), handle("h-%d-%d-%s" % (t, i, SECRET)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,), name="test-redis-%d" % t) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert errors == []
    for t in range(6):
        for i in range(20):
            assert store.load("t%d-%d" % (t, i)).handle == "h-%d-%d-%s" % (t, i, SECRET)


def test_prefix_isolation(make_store, raw):
    """Stores with different prefixes do not see each other's keys."""
    app_a = make_store(prefix="app-a:")
    app_b = make_store(prefix="app-b:")
    app_a.save("k", handle("handle-of-a-xxxxxxxxxx"))
    assert app_b.load("k") is None
    app_b.save("k", handle("handle-of-b-yyyyyyyyyy"))
    assert app_a.load("k").handle == "handle-of-a-xxxxxxxxxx"
    app_b.delete("k")
    assert app_a.load("k") is not None
    assert sorted(raw.keys("*")) == [b"app-a:k"]
    assert app_a.redis_key("k") == "app-a:k"


def test_user_client_with_decode_responses(redis_server, make_store):
    """A user-supplied client, even one decoding responses to str, works and stays open."""
    import redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=2)
    try:
        store = RedisHandleStore(client=client, ttl=60.0)
        saved = handle()
        store.save("k", saved)
        assert make_store().load("k") == saved
        assert store.load("k") == saved
        store.close()
        assert client.ping()
    finally:
        client.close()


def test_malformed_value_is_absent_with_warning(make_store, raw, caplog):
    """A value that is not a stored handle loads as None with a WARNING."""
    store = make_store()
    raw.set("livesync:handle:k", b"\xff" + SECRET.encode())
    raw.set("livesync:handle:j", '{"handle": 5, "issued_at": 1}')
    with caplog.at_level("WARNING", logger="livesync.session"):
        assert store.load("k") is None
        assert store.load("j") is None
    assert len(caplog.records) == 2
    assert SECRET[:8] not in caplog.text


def test_repr_and_validation(make_store):
    """The repr never shows a handle; bad keys and handles raise InvalidConfig."""
    store = make_store()
    store.save("k", handle())
    assert SECRET[:8] not in repr(store)
    with pytest.raises(InvalidConfig) as excinfo:
        store.load("")
    assert excinfo.value.field == "key"
    with pytest.raises(InvalidConfig) as excinfo:
        store.save("k", SECRET)
    assert excinfo.value.field == "handle"
    assert SECRET not in str(excinfo.value)


def test_connection_refused_is_prompt(redis_py):
    """With nothing listening, every call raises a redis ConnectionError quickly."""
    store = RedisHandleStore("redis://127.0.0.1:%d/0" % free_port())
    try:
        for call in (lambda: store.load("k"), lambda: store.save("k", handle())):
            started = time.monotonic()
            with pytest.raises(redis_py.exceptions.ConnectionError) as excinfo:
                call()
            assert time.monotonic() - started < 4 * TIMEOUT
            assert SECRET[:8] not in str(excinfo.value)
    finally:
        store.close()


def test_unresponsive_server_times_out(redis_py):
    """A server that accepts but never answers makes a call fail within the timeout."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes handshakes; nobody ever replies
        url = "redis://127.0.0.1:%d/0" % listener.getsockname()[1]
        store = RedisHandleStore(url, timeout=0.2)
        try:
            started = time.monotonic()
            with pytest.raises(redis_py.exceptions.TimeoutError):
                store.load("k")
            assert time.monotonic() - started < 1.0 + 4 * TIMEOUT
        finally:
            store.close()


def test_server_restart_is_survived(redis_server, make_store):
    """After redis-server restarts, the next call reconnects at once, without retries."""
    store = make_store()
    store.save("k", handle())
    redis_server.restart()  # the store's pooled connection is now dead
    assert store.load("k") is None  # no persistence: the handle is gone
    saved = handle()
    store.save("k", saved)
    assert store.load("k") == saved


# Leases


def test_lease_keys_and_expiry(make_store, raw):
    """A lease is <lease_prefix>lease:<key> holding the owner with a PX expiry of lease_ttl;
    a takeover request is <lease_prefix>takeover:<key> with the requester's ttl."""
    store = make_store(lease_ttl=30.0)
    assert store.acquire_lease("chat", "owner-a")
    assert raw.get("livesync:lease:chat") == b"owner-a"
    assert 29_000 < raw.pttl("livesync:lease:chat") <= 30_000
    store.request_takeover("chat", "owner-b", 5.0)
    assert raw.get("livesync:takeover:chat") == b"owner-b"
    assert 4_000 < raw.pttl("livesync:takeover:chat") <= 5_000
    assert store.takeover_requested("chat") == "owner-b"
    assert store.lease_key("chat") == "livesync:lease:chat"
    assert make_store(lease_prefix="app:").takeover_key("chat") == "app:takeover:chat"


def test_lease_compare_and_set(make_store):
    """Only the owner renews or releases; another owner is refused until release or expiry."""
    worker_a, worker_b = make_store(lease_ttl=30.0), make_store(lease_ttl=30.0)
    assert worker_a.acquire_lease("chat", "a")
    assert worker_a.acquire_lease("chat", "a")  # one's own lease: idempotent
    assert not worker_b.acquire_lease("chat", "b")
    assert not worker_b.renew_lease("chat", "b")
    assert not worker_b.release_lease("chat", "b")
    assert worker_a.renew_lease("chat", "a")
    assert worker_a.release_lease("chat", "a")
    assert not worker_a.release_lease("chat", "a")
    assert worker_b.acquire_lease("chat", "b")


def test_lease_expires_in_redis(make_store, raw):
    """An unrenewed lease vanishes after lease_ttl; renewing extends it."""
    store = make_store(lease_ttl=4 * TIMEOUT)
    assert store.acquire_lease("chat", "a")
    assert store.renew_lease("chat", "a")
    assert wait_for(lambda: not raw.exists("livesync:lease:chat"), 16 * TIMEOUT)
    assert make_store().acquire_lease("chat", "b")
    assert not store.renew_lease("chat", "a")


def test_acquire_withdraws_only_ones_own_request(make_store, raw):
    """Acquiring deletes the acquirer's takeover request, never another's."""
    store = make_store()
    store.request_takeover("chat", "b", 5.0)
    assert store.acquire_lease("chat", "a")
    assert store.takeover_requested("chat") == "b"
    store.cancel_takeover("chat", "a")
    assert store.takeover_requested("chat") == "b"
    assert store.release_lease("chat", "a")
    assert store.acquire_lease("chat", "b")
    assert not raw.exists("livesync:takeover:chat")


def test_lease_acquire_is_atomic_across_workers(make_store):
    """Many workers (own connections, one thread each) race for a key: exactly one wins."""
    stores = [make_store() for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    wins = []

    def race(n: int) -> None:
        barrier.wait(10)
        if stores[n].acquire_lease("chat", "owner-%d" % n):
            wins.append(n)

    threads = [threading.Thread(target=race, args=(n,), name="test-redis-lease-%d" % n)
               for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(wins) == 1


def test_leases_with_a_decoding_client(redis_server, make_store):
    """A user client that decodes responses works with the lease scripts too."""
    import redis

    client = redis.Redis.from_url(redis_server.url, decode_responses=True, socket_timeout=2)
    try:
        store = RedisHandleStore(client=client)
        assert store.acquire_lease("chat", "a")
        assert not make_store().acquire_lease("chat", "b")
        store.request_takeover("chat", "b", 5.0)
        assert store.takeover_requested("chat") == "b"
        assert store.release_lease("chat", "a")
    finally:
        client.close()


def test_redis_holder_hands_over_to_another_worker(redis_server, make_store, emulator):
    """Two 'workers' (own RedisHandleStore each): the second connects with takeover=True,
    the first hands over; one server session, each turn consumed once."""
    import livesync

    client = livesync.Client(api_key=emulator.api_key, base_url=emulator.base_url)
    kwargs = dict(config={"response_modalities": ["TEXT"]}, session_key="user-1")
    first = client.connect("gemini-live-2.5-flash-preview", handle_store=make_store(), **kwargs)
    try:
        first.ask("My name is Ada.", timeout=20 * TIMEOUT)
        with pytest.raises(livesync.SessionBusy):
            client.connect("gemini-live-2.5-flash-preview", handle_store=make_store(), **kwargs)
        with client.connect("gemini-live-2.5-flash-preview", handle_store=make_store(),
                            takeover=True, **kwargs) as second:
            assert first.wait_closed(10 * TIMEOUT)
            assert second.ask("What did I say?", timeout=20 * TIMEOUT).text == (
                "Earlier you said: My name is Ada.")
    finally:
        first.close()
    assert len(emulator.sessions) == 1
