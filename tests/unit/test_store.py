"""Unit tests for livesync.store: memory and file handle stores."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading

import pytest

from livesync.exceptions import InvalidConfig
from livesync.store import (
    FileHandleStore,
    HandleStore,
    MemoryHandleStore,
    RedisHandleStore,
    StoredHandle,
)

SECRET = "SECRETHANDLE-0123456789abcdefghijklmnopqrstuvwxyz"
LOGGER = "livesync.session"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class FakeClock:
    """A settable clock standing in for time.time()."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(params=["memory", "file"])
def make_store(request, tmp_path, clock):
    """Build a memory or file store with the fake clock."""

    def make(**kwargs):
        kwargs.setdefault("clock", clock)
        if request.param == "memory":
            return MemoryHandleStore(**kwargs)
        return FileHandleStore(tmp_path / "handles.json", **kwargs)

    return make


def handle(text: str = SECRET, issued_at: float = 1_000_000.0) -> StoredHandle:
    return StoredHandle(handle=text, issued_at=issued_at)


# StoredHandle


def test_stored_handle_repr_hides_handle():
    """The repr of a StoredHandle shows an 8-character prefix and the length only."""
    text = repr(handle())
    assert SECRET not in text
    assert SECRET[:8] in text
    assert SECRET[:9] not in text
    assert str(len(SECRET)) in text
    assert str(handle()) == text


def test_stored_handle_repr_short_handle():
    """A short handle is never shown in full, not even as its prefix."""
    text = repr(handle("abcdefgh"))
    assert "abcdefgh" not in text
    assert "8 chars" in text


@pytest.mark.parametrize("value", ["", None, 42, b"bytes"])
def test_stored_handle_rejects_bad_handle(value):
    """A handle that is not a non-empty str raises InvalidConfig naming the field."""
    with pytest.raises(InvalidConfig) as excinfo:
        StoredHandle(handle=value, issued_at=1.0)
    assert excinfo.value.field == "handle"
    assert isinstance(excinfo.value, ValueError)


@pytest.mark.parametrize("value", [None, "1.0", True, float("nan"), float("inf")])
def test_stored_handle_rejects_bad_issued_at(value):
    """issued_at must be a finite number."""
    with pytest.raises(InvalidConfig) as excinfo:
        StoredHandle(handle=SECRET, issued_at=value)
    assert excinfo.value.field == "issued_at"


def test_stored_handle_is_frozen_and_comparable():
    """StoredHandle is immutable and compares by value."""
    stored = handle()
    with pytest.raises(AttributeError):
        stored.handle = "other"  # type: ignore[misc]
    assert stored == handle()
    assert stored != handle(issued_at=1.0)


def test_stores_satisfy_protocol(tmp_path):
    """Every shipped store, and any duck-typed object, is a HandleStore."""

    class Custom:
        def load(self, key):
            return None

        def save(self, key, handle):
            pass

        def delete(self, key):
            pass

    assert isinstance(MemoryHandleStore(), HandleStore)
    assert isinstance(FileHandleStore(tmp_path / "h.json"), HandleStore)
    assert isinstance(Custom(), HandleStore)
    assert not isinstance(object(), HandleStore)


# Behaviour shared by the memory and file stores


def test_save_load_delete(make_store):
    """A saved handle loads back equal, and is gone after delete."""
    store = make_store()
    assert store.load("chat-1") is None
    store.save("chat-1", handle())
    assert store.load("chat-1") == handle()
    store.delete("chat-1")
    assert store.load("chat-1") is None


def test_delete_is_idempotent(make_store):
    """Deleting a missing key is not an error."""
    store = make_store()
    store.delete("missing")
    store.save("k", handle())
    store.delete("k")
    store.delete("k")
    assert store.load("k") is None


def test_overwrite_keeps_latest(make_store, clock):
    """A second save under the same key replaces the first."""
    store = make_store()
    store.save("k", handle("first-handle-xxxxxxxx"))
    store.save("k", handle("second-handle-yyyyyyy", issued_at=clock.now + 5))
    assert store.load("k") == handle("second-handle-yyyyyyy", issued_at=clock.now + 5)


def test_many_keys(make_store):
    """Many keys coexist independently."""
    store = make_store()
    for i in range(50):
        store.save("session-%d" % i, handle("handle-%d-%s" % (i, SECRET)))
    store.delete("session-7")
    for i in range(50):
        expected = None if i == 7 else handle("handle-%d-%s" % (i, SECRET))
        assert store.load("session-%d" % i) == expected


def test_ttl_expiry(make_store, clock):
    """load returns None once ttl seconds have passed since issued_at."""
    store = make_store(ttl=100.0)
    issued = clock.now - 30.0  # expiry counts from issued_at, not from the save
    store.save("k", handle(issued_at=issued))
    clock.now = issued + 99.9
    assert store.load("k") == handle(issued_at=issued)
    clock.now = issued + 100.0
    assert store.load("k") is None


def test_save_expired_handle_deletes(make_store, clock):
    """Saving a handle already older than ttl removes the key."""
    store = make_store(ttl=10.0)
    store.save("k", handle(issued_at=clock.now))
    store.save("k", handle(issued_at=clock.now - 10.0))
    clock.now -= 5  # even back in time, the key is gone
    assert store.load("k") is None


def test_save_prunes_other_expired_keys(make_store, clock):
    """A save drops expired entries of other keys."""
    store = make_store(ttl=10.0)
    store.save("old", handle(issued_at=clock.now))
    clock.now += 20
    store.save("new", handle(issued_at=clock.now))
    clock.now -= 20  # "old" would be valid again if it had been kept
    assert store.load("old") is None
    assert store.load("new") is not None


def test_future_issued_at_is_valid(make_store, clock):
    """A handle issued "in the future" (clock skew) is kept."""
    store = make_store(ttl=10.0)
    store.save("k", handle(issued_at=clock.now + 60))
    assert store.load("k") is not None


@pytest.mark.parametrize("key", ["", None, 3])
def test_bad_key(make_store, key):
    """An empty or non-str key raises InvalidConfig naming the key."""
    store = make_store()
    for call in (
        lambda: store.load(key),
        lambda: store.save(key, handle()),
        lambda: store.delete(key),
    ):
        with pytest.raises(InvalidConfig) as excinfo:
            call()
        assert excinfo.value.field == "key"


@pytest.mark.parametrize("value", [SECRET, None, {"handle": SECRET, "issued_at": 1.0}])
def test_save_requires_stored_handle(make_store, value):
    """save() only accepts a StoredHandle, and the error does not echo the handle."""
    store = make_store()
    with pytest.raises(InvalidConfig) as excinfo:
        store.save("k", value)
    assert excinfo.value.field == "handle"
    assert SECRET not in str(excinfo.value)


@pytest.mark.parametrize("ttl", [0, -1, 0.0, float("nan"), float("inf"), "10", True, None])
def test_bad_ttl(make_store, ttl):
    """ttl must be a positive finite number."""
    with pytest.raises(InvalidConfig) as excinfo:
        make_store(ttl=ttl)
    assert excinfo.value.field == "ttl"


def test_bad_clock(make_store):
    """clock must be callable."""
    with pytest.raises(InvalidConfig) as excinfo:
        make_store(clock=12.0)
    assert excinfo.value.field == "clock"


def test_repr_hides_handles(make_store):
    """A store's repr never contains a handle."""
    store = make_store()
    store.save("k", handle())
    assert SECRET[:8] not in repr(store)
    assert "ttl=7200.0" in repr(store)


def test_default_clock_is_time_time(tmp_path):
    """Without a clock, a handle issued now is valid and one issued 2 h ago is not."""
    import time

    for store in (MemoryHandleStore(), FileHandleStore(tmp_path / "h.json")):
        store.save("fresh", handle(issued_at=time.time()))
        store.save("stale", handle(issued_at=time.time() - 7200.0))
        assert store.load("fresh") is not None
        assert store.load("stale") is None


def test_memory_store_threads(clock):
    """Concurrent saves from many threads on a MemoryHandleStore are all kept."""
    store = MemoryHandleStore(clock=clock)
    run_threads(store, store, threads=8, per_thread=50)
    for t in range(8):
        for i in range(50):
            assert store.load("t%d-k%d" % (t, i)) is not None


def run_threads(store_a, store_b, *, threads: int, per_thread: int) -> None:
    """Save per_thread keys from each of threads threads, alternating stores."""
    errors = []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            start.wait(timeout=5)
            for i in range(per_thread):
                store = store_a if (t + i) % 2 else store_b
                store.save("t%d-k%d" % (t, i), handle("h-%d-%d-%s" % (t, i, SECRET)))
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [
        threading.Thread(target=work, args=(t,), name="test-store-%d" % t) for t in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert not any(worker.is_alive() for worker in workers)
    assert errors == []


# FileHandleStore specifics


def test_file_persists_across_instances(tmp_path, clock):
    """A new FileHandleStore on the same path (a restarted process) sees saved handles."""
    path = tmp_path / "handles.json"
    FileHandleStore(path, clock=clock).save("chat-1", handle())
    assert FileHandleStore(str(path), clock=clock).load("chat-1") == handle()


def test_file_two_instances_many_threads(tmp_path, clock):
    """Two instances on one path, used from several threads, lose no key."""
    path = tmp_path / "handles.json"
    store_a = FileHandleStore(path, clock=clock)
    store_b = FileHandleStore(path, clock=clock)
    run_threads(store_a, store_b, threads=6, per_thread=20)
    saved = json.loads(path.read_text())["handles"]
    assert len(saved) == 6 * 20
    reader = FileHandleStore(path, clock=clock)
    for t in range(6):
        for i in range(20):
            assert reader.load("t%d-k%d" % (t, i)) == handle("h-%d-%d-%s" % (t, i, SECRET))


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX only")
def test_file_two_processes(tmp_path):
    """Two processes saving into one file at once lose no key."""
    path = tmp_path / "handles.json"
    script = textwrap.dedent(
        """
        import sys, time
        from livesync.store import FileHandleStore, StoredHandle
        store = FileHandleStore(sys.argv[1])
        for i in range(30):
            store.save("%s-%d" % (sys.argv[2], i), StoredHandle("h" * 20, time.time()))
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(path), name], env=env)
        for name in ("p1", "p2")
    ]
    for proc in procs:
        assert proc.wait(timeout=20) == 0
    saved = json.loads(path.read_text())["handles"]
    assert sorted(saved) == sorted("%s-%d" % (p, i) for p in ("p1", "p2") for i in range(30))


def test_file_mode_0600(tmp_path, clock):
    """The handle file is created with mode 0o600, also after a rewrite."""
    path = tmp_path / "handles.json"
    store = FileHandleStore(path, clock=clock)
    store.save("k", handle())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)
    store.save("k2", handle())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(str(path) + ".lock").st_mode) == 0o600


def test_file_creates_parent_directory(tmp_path, clock):
    """Missing parent directories are created, private to the user."""
    path = tmp_path / "a" / "b" / "handles.json"
    FileHandleStore(path, clock=clock).save("k", handle())
    assert FileHandleStore(path, clock=clock).load("k") == handle()
    assert stat.S_IMODE(os.stat(tmp_path / "a" / "b").st_mode) & 0o077 == 0


def test_file_expands_user(tmp_path, monkeypatch):
    """A leading ~ in the path is expanded."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))
    store = FileHandleStore("~/handles.json")
    assert store.path == str(tmp_path / "handles.json")


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"\xff\xfe\x00garbage",
        b"[1, 2, 3]",
        b'{"version": 99, "handles": {}}',
        b'{"version": 1, "handles": []}',
    ],
)
def test_file_corrupt_is_empty_with_warning(tmp_path, clock, caplog, content):
    """A corrupt file loads as empty with a WARNING, and the next save replaces it."""
    path = tmp_path / "handles.json"
    path.write_bytes(content)
    store = FileHandleStore(path, clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.load("k") is None
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert caplog.records[0].name == LOGGER
    assert "corrupt" in caplog.records[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        store.save("k", handle())
    assert store.load("k") == handle()
    assert json.loads(path.read_text())["version"] == 1


def test_file_malformed_entries_skipped(tmp_path, clock, caplog):
    """Malformed entries are skipped with a WARNING that does not show them; others load."""
    path = tmp_path / "handles.json"
    document = {
        "version": 1,
        "handles": {
            "good": {"handle": SECRET, "issued_at": clock.now},
            "no-time": {"handle": SECRET + "-x"},
            "bad-handle": {"handle": 12, "issued_at": clock.now},
            "not-a-dict": SECRET + "-y",
            "": {"handle": SECRET, "issued_at": clock.now},
        },
    }
    path.write_text(json.dumps(document))
    store = FileHandleStore(path, clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.load("good") == handle()
        assert store.load("no-time") is None
        assert store.load("not-a-dict") is None
    assert caplog.records
    assert all(SECRET[:8] not in r.getMessage() for r in caplog.records)
    assert "4 malformed" in caplog.records[0].getMessage()


def test_file_corrupt_warning_never_shows_content(tmp_path, clock, caplog):
    """The corrupt-file warning, traceback included, contains no handle text."""
    path = tmp_path / "handles.json"
    path.write_text('{"version": 1, "handles": {"k": {"handle": "%s", "issued_at": 1' % SECRET)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert FileHandleStore(path, clock=clock).load("k") is None
    assert caplog.text and SECRET[:8] not in caplog.text


def test_file_unreadable_load_warns_save_raises(tmp_path, clock, caplog, monkeypatch):
    """An unreadable file loads as empty with a WARNING, but save raises instead of replacing it."""
    import livesync.store

    path = tmp_path / "handles.json"
    FileHandleStore(path, clock=clock).save("k", handle())
    before = path.read_bytes()

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    # Root ignores file modes, so simulate EACCES where the store opens the file.
    monkeypatch.setattr(livesync.store, "open", denied, raising=False)
    store = FileHandleStore(path, clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.load("k") is None
    assert caplog.records[0].levelno == logging.WARNING
    with pytest.raises(PermissionError):
        store.save("k2", handle())
    monkeypatch.undo()
    assert path.read_bytes() == before


def test_file_directory_path_load_warns_save_raises(tmp_path, clock, caplog):
    """A path that is a directory: load warns and returns None, save raises OSError."""
    store = FileHandleStore(tmp_path, clock=clock)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert store.load("k") is None
    assert caplog.records[0].levelno == logging.WARNING
    with pytest.raises(OSError):
        store.save("k", handle())


def test_file_failed_write_keeps_old_file(tmp_path, clock, monkeypatch):
    """If writing fails midway, the old file is intact and no temporary file is left."""
    path = tmp_path / "handles.json"
    store = FileHandleStore(path, clock=clock)
    store.save("k", handle())
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        store.save("k2", handle())
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["handles.json", "handles.json.lock"]
    assert store.load("k") == handle()


def test_file_readers_never_see_torn_writes(tmp_path, clock, caplog):
    """Loads concurrent with saves never find a corrupt file."""
    path = tmp_path / "handles.json"
    writer_store = FileHandleStore(path, clock=clock)
    writer_store.save("k", handle())
    done = threading.Event()

    def writer() -> None:
        for i in range(100):
            writer_store.save("k", handle("h-%d-%s" % (i, SECRET) * 20))
        done.set()

    thread = threading.Thread(target=writer, name="test-store-writer")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        thread.start()
        reader = FileHandleStore(path, clock=clock)
        loads = 0
        while not done.is_set():
            assert reader.load("k") is not None
            loads += 1
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert loads > 0
    assert caplog.records == []


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX only")
def test_file_lock_timeout(tmp_path, clock):
    """A change waits at most lock_timeout for a lock held elsewhere, then raises TimeoutError."""
    import fcntl
    import time

    path = tmp_path / "handles.json"
    store = FileHandleStore(path, lock_timeout=0.2, clock=clock)
    store.save("k", handle())
    fd = os.open(str(path) + ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process's lock, as far as flock knows
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            store.save("k2", handle())
        assert 0.15 <= time.monotonic() - started < 2.0
        with pytest.raises(TimeoutError):
            store.delete("k")
        assert store.load("k") == handle()  # loads take no lock
    finally:
        os.close(fd)
    store.save("k2", handle())
    assert store.load("k2") == handle()


def test_file_no_rewrite_when_unchanged(tmp_path, clock):
    """Deleting a missing key or re-saving the same handle does not rewrite the file."""
    path = tmp_path / "handles.json"
    store = FileHandleStore(path, clock=clock)
    store.delete("k")
    assert not path.exists()
    store.save("k", handle())
    inode = os.stat(path).st_ino
    store.save("k", handle())
    store.delete("other")
    assert os.stat(path).st_ino == inode


def test_file_repr_and_validation(tmp_path):
    """The repr shows the path and ttl; bad path and lock_timeout raise InvalidConfig."""
    store = FileHandleStore(tmp_path / "h.json", ttl=60)
    assert repr(store) == "FileHandleStore(%r, ttl=60.0)" % str(tmp_path / "h.json")
    for bad in ("", None, 3):
        with pytest.raises(InvalidConfig) as excinfo:
            FileHandleStore(bad)
        assert excinfo.value.field == "path"
    with pytest.raises(InvalidConfig) as excinfo:
        FileHandleStore(tmp_path / "h.json", lock_timeout=0)
    assert excinfo.value.field == "lock_timeout"


def test_file_content_format(tmp_path, clock):
    """The file is a versioned JSON document keyed by session key."""
    path = tmp_path / "handles.json"
    FileHandleStore(path, clock=clock).save("chat-1", handle())
    assert json.loads(path.read_text()) == {
        "version": 1,
        "handles": {"chat-1": {"handle": SECRET, "issued_at": clock.now}},
    }


# RedisHandleStore without a server (the functional tests use a real one)


def test_module_imports_without_redis():
    """livesync.store imports without redis; RedisHandleStore then explains how to install it."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # make "import redis" fail
        from livesync.store import RedisHandleStore
        try:
            RedisHandleStore()
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("no ImportError")
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'livesync[redis]'" in result.stdout


def test_redis_missing_raises_import_error(monkeypatch):
    """Without the redis package, RedisHandleStore raises an ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(ImportError, match=r"pip install 'livesync\[redis\]'"):
        RedisHandleStore()


def test_redis_validation_before_import(monkeypatch):
    """Bad arguments raise InvalidConfig, without echoing the URL."""
    monkeypatch.setitem(sys.modules, "redis", None)
    for kwargs, name in [
        ({"url": "http://user:hunter2@host/"}, "url"),
        ({"url": "redis://[::1"}, "url"),
        ({"ttl": 0}, "ttl"),
        ({"timeout": -1}, "timeout"),
        ({"prefix": None}, "prefix"),
    ]:
        with pytest.raises(InvalidConfig) as excinfo:
            RedisHandleStore(**kwargs)
        assert excinfo.value.field == name
        assert "hunter2" not in str(excinfo.value)


def test_redis_repr_hides_password():
    """The repr of a RedisHandleStore never shows the URL's password."""
    pytest.importorskip("redis")
    store = RedisHandleStore("redis://user:hunter2@example.invalid:6380/1?password=hunter2")
    try:
        text = repr(store)
    finally:
        store.close()
    assert "hunter2" not in text
    assert "example.invalid:6380/1" in text


def test_redis_with_client_object(clock):
    """A supplied client is used as is; the store never needs redis-py to be installed for it."""

    class FakeRedis:
        def __init__(self):
            self.data = {}
            self.px = {}

        def get(self, key):
            return self.data.get(key)

        def set(self, key, value, px):
            self.data[key] = value.encode()
            self.px[key] = px

        def delete(self, key):
            self.data.pop(key, None)

    fake = FakeRedis()
    store = RedisHandleStore(client=fake, prefix="p:", ttl=100.0, clock=clock)
    store.save("k", handle(issued_at=clock.now - 40))
    assert fake.px == {"p:k": 60_000}
    assert store.load("k") == handle(issued_at=clock.now - 40)
    assert SECRET[:8] not in repr(store)
    store.save("k", handle(issued_at=clock.now - 100))
    assert fake.data == {}
    store.close()  # does not close a client it did not create


# Leases (MemoryHandleStore; RedisHandleStore in tests/functional/test_redis_store.py)


def test_lease_stores_satisfy_the_lease_protocol(tmp_path):
    """Memory and Redis stores have leases; the file store and a bare HandleStore do not."""
    from livesync.store import LeaseStore

    assert isinstance(MemoryHandleStore(), LeaseStore)
    assert not isinstance(FileHandleStore(tmp_path / "h.json"), LeaseStore)
    assert MemoryHandleStore(lease_ttl=3.0).lease_ttl == 3.0


def test_lease_is_exclusive_until_released(clock):
    """One owner at a time; re-acquiring one's own lease succeeds; only the owner releases."""
    store = MemoryHandleStore(clock=clock)
    assert store.acquire_lease("k", "a")
    assert store.acquire_lease("k", "a")
    assert not store.acquire_lease("k", "b")
    assert store.acquire_lease("other", "b")  # keys are independent
    assert not store.release_lease("k", "b")
    assert not store.acquire_lease("k", "b")
    assert store.release_lease("k", "a")
    assert not store.release_lease("k", "a")  # idempotent: already free
    assert store.acquire_lease("k", "b")


def test_lease_expires_unless_renewed(clock):
    """A lease lasts lease_ttl from its last acquire or renewal; then anyone may take it."""
    store = MemoryHandleStore(lease_ttl=10.0, clock=clock)
    assert store.acquire_lease("k", "a")
    clock.now += 9.0
    assert store.renew_lease("k", "a")
    clock.now += 9.0
    assert not store.acquire_lease("k", "b")  # renewed 9 s ago: still a's
    clock.now += 1.0
    assert store.acquire_lease("k", "b")  # expired
    assert not store.renew_lease("k", "a")  # a lost it
    assert not store.release_lease("k", "a")
    assert store.release_lease("k", "b")


def test_renew_retakes_a_free_lease(clock):
    """Renewing an expired lease nobody took takes it again."""
    store = MemoryHandleStore(lease_ttl=1.0, clock=clock)
    assert store.acquire_lease("k", "a")
    clock.now += 5.0
    assert store.renew_lease("k", "a")
    assert not store.acquire_lease("k", "b")


def test_takeover_requests(clock):
    """The latest request wins, lapses after its ttl, is withdrawn only by its
    requester, and an acquire by the requester withdraws it."""
    store = MemoryHandleStore(clock=clock)
    assert store.takeover_requested("k") is None
    store.request_takeover("k", "b", 5.0)
    store.request_takeover("k", "c", 5.0)
    assert store.takeover_requested("k") == "c"
    store.cancel_takeover("k", "b")
    assert store.takeover_requested("k") == "c"
    clock.now += 5.0
    assert store.takeover_requested("k") is None
    store.request_takeover("k", "b", 5.0)
    assert store.acquire_lease("k", "c")  # someone else's request stays
    assert store.takeover_requested("k") == "b"
    assert store.release_lease("k", "c")
    assert store.acquire_lease("k", "b")
    assert store.takeover_requested("k") is None


def test_lease_argument_validation():
    """Empty keys, owners and requesters, and a bad lease_ttl raise InvalidConfig."""
    store = MemoryHandleStore()
    for call, field in ((lambda: store.acquire_lease("", "a"), "key"),
                        (lambda: store.acquire_lease("k", ""), "owner"),
                        (lambda: store.renew_lease("k", None), "owner"),
                        (lambda: store.request_takeover("k", "", 1.0), "requester"),
                        (lambda: store.request_takeover("k", "b", 0), "ttl"),
                        (lambda: MemoryHandleStore(lease_ttl=0), "lease_ttl")):
        with pytest.raises(InvalidConfig) as excinfo:
            call()
        assert excinfo.value.field == field


def test_lease_acquire_is_atomic_across_threads(clock):
    """Many threads racing for one free key: exactly one gets it."""
    store = MemoryHandleStore(clock=clock)
    barrier = threading.Barrier(8)
    wins = []

    def race(n):
        barrier.wait(5)
        if store.acquire_lease("k", "owner-%d" % n):
            wins.append(n)

    threads = [threading.Thread(target=race, args=(n,), name="test-lease-%d" % n)
               for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert len(wins) == 1
