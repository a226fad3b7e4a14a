"""Every ```python block of README.md runs against the emulator and prints what it says.

The snippets name no ``base_url`` (they talk to Google); here ``livesync.Client``
is replaced by a subclass whose ``base_url`` defaults to the emulator, and
``GEMINI_API_KEY`` holds the emulator's key. Placeholders the snippets leave to
the reader (``speaker``, ``microphone``, ``credentials``, the ``auth_tokens/...``
token) are stubbed. A block runs with the README's own line numbers, so a
traceback points into README.md.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import livesync
from tests.utils import TIMEOUT, wait_for

README = Path(__file__).resolve().parents[2] / "README.md"

#: Each python block of the README, named by a string only it contains.
BLOCKS = {
    "callbacks": "Tell me a short story.",
    "blocking": "session.receive(",
    "audio": "session.send_audio",
    "tools": "tools={",
    "vertex": "vertexai=True",
    "emulator": "from livesync.emulator import Emulator",
    "logging": "logging.basicConfig",
    "jupyter": "client.close()     # re-running",
    "tokens": "EphemeralTokenProvider(os.environ",
}


def python_blocks() -> List[Tuple[int, str]]:
    """(first line number, source) of every ```python block in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```$", text, re.M | re.S)]


def block(name: str) -> Tuple[int, str]:
    (found,) = [b for b in python_blocks() if BLOCKS[name] in b[1]]
    return found


def run(name: str, namespace: Dict[str, Any], source: str = "") -> Dict[str, Any]:
    """Execute README block ``name`` (or ``source``, an edited copy) in ``namespace``."""
    line, text = block(name)
    code = compile("\n" * (line - 1) + (source or text), str(README), "exec")
    exec(code, namespace)  # noqa: S102 - the README's own code
    return namespace


class Readme:
    """The emulator the README's snippets talk to, and the clients they made."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.clients: List[livesync.Client] = []

    def namespace(self, **names: Any) -> Dict[str, Any]:
        """A fresh module namespace holding what the Quickstart's first block defines."""
        return {"__name__": "readme", "livesync": livesync, "client": livesync.Client(),
                **names}


@pytest.fixture
def readme(emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Readme]:
    state = Readme(emulator)
    real = livesync.Client

    class EmulatorClient(real):  # type: ignore[misc, valid-type]
        """livesync.Client whose default service root is the emulator."""

        def __init__(self, api_key: Any = None, **kwargs: Any) -> None:
            kwargs.setdefault("base_url", emulator.base_url)
            super().__init__(api_key, **kwargs)
            state.clients.append(self)

    monkeypatch.setattr(livesync, "Client", EmulatorClient)
    monkeypatch.setenv("GEMINI_API_KEY", emulator.api_key)
    yield state


def test_every_python_block_is_exercised() -> None:
    """Each python block of the README is one of the blocks the tests below run."""
    blocks = python_blocks()
    names = [[n for n, marker in BLOCKS.items() if marker in source] for _, source in blocks]
    assert all(len(n) == 1 for n in names), names
    assert sorted(n for (n,) in names) == sorted(BLOCKS)


def test_callbacks_block_prints_the_streamed_reply_then_the_close(
    readme: Readme, capsys: pytest.CaptureFixture[str]
) -> None:
    """The callback Quickstart prints the reply as it streams, then "closed: 1000"."""
    namespace = run("callbacks", readme.namespace())
    assert namespace["session"].closed
    assert capsys.readouterr().out == "You said: Tell me a short story.\nclosed: 1000 \n"


def test_blocking_block_prints_each_answer_once(
    readme: Readme, capsys: pytest.CaptureFixture[str]
) -> None:
    """The blocking Quickstart prints the France answer (with its token count), then the
    Germany answer from receive(), each once."""
    run("blocking", readme.namespace())
    out = capsys.readouterr().out
    assert re.fullmatch(r"The capital of France is Paris\.\n\d+ tokens\n"
                        r"The capital of Germany is Berlin\.\n", out), out


def test_audio_block_plays_the_spoken_reply(readme: Readme) -> None:
    """Microphone chunks go to send_audio; every byte of the reply audio reaches the speaker."""
    lock = threading.Lock()
    played = bytearray()

    def write(data: bytes) -> None:
        with lock:
            played.extend(data)

    speaker = SimpleNamespace(write=write)
    microphone = SimpleNamespace(on_chunk=None)
    namespace = run("audio", readme.namespace(speaker=speaker, microphone=microphone))
    session = namespace["session"]
    try:
        loud, quiet = (8000).to_bytes(2, "little", signed=True), b"\0\0"
        for sample, chunks in ((loud, 15), (quiet, 30)):  # 300 ms of speech, 600 ms of silence
            for _ in range(chunks):
                microphone.on_chunk(sample * 320)  # 20 ms at 16 kHz
        (conn,) = readme.emulator.connections
        readme.emulator.wait_for(lambda: any(
            (m.get("serverContent") or {}).get("turnComplete") for m in conn.sent))
        sent = b"".join(base64.b64decode(p["inlineData"]["data"]) for m in conn.sent
                        for p in ((m.get("serverContent") or {}).get("modelTurn") or {})
                        .get("parts", []) if "inlineData" in p)
        assert sent
        assert wait_for(lambda: bytes(played) == sent), (len(played), len(sent))
    finally:
        session.close()


def test_tools_block_prints_the_answer_using_the_function_result(
    readme: Readme, capsys: pytest.CaptureFixture[str]
) -> None:
    """ask(tools=…) calls get_current_weather and the answer uses its result."""
    run("tools", readme.namespace())
    assert capsys.readouterr().out == (
        "{'location': 'Paris'} get_current_weather returned "
        '{"location": "Paris", "temperature": "18C"}\n')


def test_vertex_and_ephemeral_token_clients_connect(readme: Readme) -> None:
    """The Vertex client (bearer from token_provider) and the ephemeral-token client both
    open sessions that answer."""
    import requests

    emu = readme.emulator
    reply = requests.post(emu.rest_url + "/v1alpha/auth_tokens", json={"uses": 1},
                          headers={"x-goog-api-key": emu.api_key}, timeout=5)
    token = reply.json()["name"]
    _, source = block("vertex")
    assert '"auth_tokens/..."' in source
    credentials = SimpleNamespace(token=emu.api_key, valid=True, refresh=lambda request: None)
    run("vertex", readme.namespace(credentials=credentials),
        source.replace('"auth_tokens/..."', repr(token)))
    vertex, ephemeral = readme.clients[-2:]
    for client in (vertex, ephemeral):
        with client.connect("gemini-live-2.5-flash-preview",
                            config={"response_modalities": ["TEXT"]}) as session:
            turn = session.ask("What is the capital of France?", timeout=10 * TIMEOUT)
            assert turn.text == "The capital of France is Paris."
    first, second = emu.connections
    assert "LlmBidiService/BidiGenerateContent" in first.path and first.auth == "bearer"
    assert first.setup["model"].startswith("projects/my-project/locations/us-central1/")
    assert "BidiGenerateContentConstrained" in second.path and second.auth == "token_header"


def test_emulator_block_prints_the_answer(
    readme: Readme, capsys: pytest.CaptureFixture[str]
) -> None:
    """The offline snippet starts its own emulator and prints the answer from it."""
    run("emulator", readme.namespace())
    assert capsys.readouterr().out == "The capital of Japan is Tokyo.\n"


def test_logging_block_shows_debug_records_without_the_key(
    readme: Readme, caplog: pytest.LogCaptureFixture
) -> None:
    """The logging snippet turns on livesync's DEBUG records; none holds the key or a prompt."""
    root, logger = logging.getLogger(), logging.getLogger("livesync")
    saved = (list(root.handlers), root.level, logger.level)
    try:
        run("logging", readme.namespace())
        assert logger.getEffectiveLevel() == logging.DEBUG
        with livesync.Client().connect("gemini-live-2.5-flash-preview",
                                       config={"response_modalities": ["TEXT"]}) as session:
            session.ask("What is the capital of France?", timeout=10 * TIMEOUT)
        debug = [r for r in caplog.records
                 if r.name.startswith("livesync.") and r.levelno == logging.DEBUG]
        assert debug
        assert readme.emulator.api_key not in caplog.text
        assert "capital of France" not in caplog.text  # nor prompts
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logger.setLevel(saved[2])


def test_jupyter_block_renders_the_turn_with_an_audio_player(
    readme: Readme, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Re-running the cell closes the previous session; the Turn saves and renders audio."""
    monkeypatch.chdir(tmp_path)
    namespace = readme.namespace()
    try:
        run("jupyter", namespace)
        first = namespace["session"]
        run("jupyter", namespace)  # the cell, run again
        assert first.closed and not namespace["session"].closed
        html = namespace["turn"]._repr_html_()
        assert "<audio" in html and "Paris" in html
        assert (tmp_path / "answer.wav").stat().st_size > 44
    finally:
        namespace["client"].close()


def test_tokens_block_mints_a_token_per_dial(
    readme: Readme, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The token snippet mints with the key and connects with a fresh token."""
    import livesync.auth

    monkeypatch.setattr(livesync.auth, "REST_ROOT", readme.emulator.rest_url)
    run("tokens", readme.namespace())
    assert capsys.readouterr().out == "The capital of Germany is Berlin.\n"
    assert len(readme.emulator.tokens) == 2  # the one token, then one for the dial
    (conn,) = readme.emulator.connections
    assert conn.auth == "token_header"
