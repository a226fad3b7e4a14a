"""examples/flask_app against the emulator: Flask's test client in-process, and two
gunicorn processes sharing conversations through a real redis-server."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import types
from pathlib import Path
from typing import Any, Iterator, List, Tuple

import pytest

from tests.functional.test_redis_store import redis_py, redis_server  # noqa: F401 (fixtures)
from tests.utils import TIMEOUT, client_messages, wait_for

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "flask_app"

pytest.importorskip("flask")


def load_app_module() -> types.ModuleType:
    """Import examples/flask_app/app.py (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("flask_example_app", APP_DIR / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def make_app(emulator: Any) -> Iterator[Any]:
    """Build the example app on the emulator; close its sessions at teardown."""
    module = load_app_module()
    apps: List[Any] = []

    def make(**settings: Any) -> Any:
        app = module.create_app(module.Settings(
            api_key=emulator.api_key, base_url=emulator.base_url, **settings))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["livesync_sessions"].close()


def user_texts(emu: Any) -> List[str]:
    """The user texts the server consumed, over its (single) session."""
    (record,) = emu.sessions.values()
    return [m.message["clientContent"]["turns"][0]["parts"][0]["text"]
            for m in client_messages(record) if "clientContent" in m.message]


def chat(client: Any, message: str) -> str:
    response = client.post("/chat", json={"message": message})
    assert response.status_code == 200, response.get_data(as_text=True)
    return str(response.get_json()["reply"])


def test_chat_keeps_one_conversation_per_user(make_app: Any, emulator: Any) -> None:
    """POST /chat answers with ask(); the uid cookie keeps the user's conversation."""
    client = make_app().test_client()
    assert chat(client, "My name is Ada.") == "You said: My name is Ada."
    assert client.get_cookie("uid") is not None
    assert chat(client, "What did I say?") == "Earlier you said: My name is Ada."
    other = client.application.test_client()  # another browser: another conversation
    assert chat(other, "What did I say?") == "You have not said anything before."
    assert len(emulator.sessions) == 2
    assert client.post("/chat", json={}).status_code == 400


def test_events_stream_the_users_messages(make_app: Any) -> None:
    """GET /events streams the model's text as Server-Sent Events, ending each turn."""
    client = make_app().test_client()
    client.set_cookie("uid", "user-1")
    response = client.get("/events", buffered=False)
    try:
        assert response.mimetype == "text/event-stream"
        chunks = (chunk.decode("utf-8") for chunk in response.response)
        assert next(chunks) == ": connected\n\n"  # subscribed
        reply = chat(client, "count to 5")
        texts: List[str] = []
        for chunk in chunks:
            if chunk.startswith("event: message"):
                event = json.loads(chunk.split("data: ", 1)[1])
                texts.append(event["text"])
                if event["turn_complete"]:
                    break
        assert "".join(texts) == reply == "1, 2, 3, 4, 5."
    finally:
        response.close()


def test_idle_sessions_are_closed_and_resumed_later(make_app: Any, emulator: Any) -> None:
    """The janitor closes a session unused for idle_timeout; the next request resumes
    the conversation from the handle store; at most max_sessions stay open."""
    app = make_app(idle_timeout=2 * TIMEOUT, max_sessions=1)
    sessions = app.extensions["livesync_sessions"]
    client = app.test_client()
    chat(client, "My name is Ada.")
    assert sessions.open_users() != []
    assert wait_for(lambda: sessions.open_users() == [], 20 * TIMEOUT)
    assert wait_for(lambda: emulator.connections[0].client_close_code == 1000)
    assert chat(client, "What did I say?") == "Earlier you said: My name is Ada."
    assert len(emulator.sessions) == 1  # resumed, not a new conversation
    other = app.test_client()
    chat(other, "hello")  # a second user: the least recently used session is closed
    assert len(sessions.open_users()) == 1


def test_forget_ends_the_conversation(make_app: Any, emulator: Any) -> None:
    """POST /forget deletes the stored handle: the next chat starts a new conversation."""
    client = make_app().test_client()
    chat(client, "My name is Ada.")
    assert client.post("/forget").status_code == 200
    assert chat(client, "What did I say?") == "You have not said anything before."
    assert len(emulator.sessions) == 2


# Two gunicorn processes, one Redis.


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gunicorn(env: Any) -> Tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "4",
         "-b", "127.0.0.1:%d" % port, "--chdir", str(APP_DIR), "--graceful-timeout", "5",
         "app:create_app()"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    return process, "http://127.0.0.1:%d" % port


def healthy(requests: Any, base: str) -> bool:
    try:
        return bool(requests.get(base + "/healthz", timeout=TIMEOUT).ok)
    except requests.RequestException:
        return False


def stop(process: Any) -> str:
    if process.poll() is None:
        process.terminate()
    try:
        output, _ = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate(timeout=10)
    return output.decode("utf-8", "replace")


def test_two_gunicorn_workers_share_a_conversation(emulator: Any, redis_server: Any) -> None:  # noqa: F811
    """Requests alternate between two gunicorn processes sharing Redis: each takes the
    user's session over from the other and the conversation continues; the server
    sees one session and every user turn exactly once."""
    pytest.importorskip("gunicorn")
    import redis
    import requests

    redis.Redis.from_url(redis_server.url).flushdb()
    env = dict(os.environ, GEMINI_API_KEY=emulator.api_key, LIVESYNC_BASE_URL=emulator.base_url,
               REDIS_URL=redis_server.url, no_proxy="127.0.0.1,localhost",
               PYTHONPATH=os.pathsep.join([str(APP_DIR.parents[1])] + sys.path))
    processes: List[Any] = []
    try:
        for _ in range(2):
            processes.append(start_gunicorn(env))
        for process, base in processes:
            assert wait_for(lambda p=process, b=base: healthy(requests, b) or p.poll() is not None,
                            60 * TIMEOUT), "gunicorn did not start"
            assert process.poll() is None, stop(process)
        (_, worker_a), (_, worker_b) = processes
        cookies = {"uid": "user-1"}
        script = [(worker_a, "My name is Ada.", "You said: My name is Ada."),
                  (worker_b, "What did I say?", "Earlier you said: My name is Ada."),
                  (worker_a, "I like tea.", "You said: I like tea."),
                  (worker_b, "What did I just say?", "Earlier you said: I like tea.")]
        pids = []
        for base, message, expected in script:
            response = requests.post(base + "/chat", json={"message": message},
                                     cookies=cookies, timeout=60 * TIMEOUT)
            assert response.status_code == 200, response.text
            assert response.json()["reply"] == expected
            pids.append(response.json()["pid"])
        assert pids[0] == pids[2] != pids[1] == pids[3]
        assert len(emulator.sessions) == 1
        assert user_texts(emulator) == [message for _, message, _ in script]
    finally:
        outputs = [stop(process) for process, _ in processes]
    assert all("Traceback" not in output for output in outputs), outputs
