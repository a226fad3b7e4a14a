"""Settings, timeouts and failure reports of the chaos soak (docs/chaos.md).

The command-line options ``--chaos-long`` and ``--chaos-seed`` are declared in
the root ``tests/conftest.py`` (pytest only reads ``pytest_addoption`` there).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any, Generator, List

import pytest

#: The seed used when ``--chaos-seed`` is not given (CI runs this one).
DEFAULT_SEED = 20250611

#: Per-test time limit (pytest-timeout) of the short and the long soak, in seconds.
SHORT_TIMEOUT = 600
LONG_TIMEOUT = 3 * 3600

_SUMMARIES = pytest.StashKey[List[str]]()


@dataclass(frozen=True)
class ChaosSettings:
    """What the command line asked for."""

    seed: int
    long: bool

    def reproduce(self, nodeid: str) -> str:
        """The command that replays this soak (same seed, same length)."""
        words = ["python", "-m", "pytest", nodeid, "--chaos-seed", str(self.seed)]
        if self.long:
            words.append("--chaos-long")
        return " ".join(shlex.quote(w) for w in words)


def _settings(config: pytest.Config) -> ChaosSettings:
    seed = config.getoption("--chaos-seed", default=None)
    return ChaosSettings(seed=DEFAULT_SEED if seed is None else int(seed),
                         long=bool(config.getoption("--chaos-long", default=False)))


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> ChaosSettings:
    """The soak's seed and length."""
    return _settings(request.config)


@pytest.fixture
def chaos_summary(request: pytest.FixtureRequest) -> Any:
    """Append a line to the terminal summary printed at the end of the run."""
    lines = request.config.stash.setdefault(_SUMMARIES, [])
    return lines.append


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    limit = LONG_TIMEOUT if _settings(config).long else SHORT_TIMEOUT
    for item in items:
        if "tests/chaos/" in item.nodeid.replace("\\", "/") and item.get_closest_marker(
                "timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and "tests/chaos/" in item.nodeid.replace("\\", "/"):
        settings = _settings(item.config)
        report.sections.append((
            "chaos soak: seed and reproduction",
            "seed %d%s\nreproduce: %s" % (settings.seed, " (long)" if settings.long else "",
                                          settings.reproduce(item.nodeid)),
        ))


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config
                            ) -> None:
    lines = config.stash.get(_SUMMARIES, [])
    if lines:
        terminalreporter.section("chaos soak")
        for line in lines:
            terminalreporter.write_line(line)
