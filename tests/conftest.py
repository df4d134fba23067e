"""Fixtures shared by the whole suite.

``sim`` is one provider simulator for the session (starting uvicorn per test would cost
more than the tests), reset before and after every test so no warm prefix, queued fault,
stat or clock override leaks between tests. ``make_sim`` starts extra simulators with
their own config (latency profiles, reply length, seeds) and stops them after the test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from helios.sim import SimConfig, SimServer


TEST_LOCAL_MODEL = "llamacpp:smollm2-135m-instruct"


@pytest.fixture(scope="session", autouse=True)
def _private_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Caches and ledgers default to the user's data directory: never the developer's real
    one during tests (subprocesses inherit the variable too)."""
    values = {
        "HELIOS_DATA_DIR": str(tmp_path_factory.mktemp("helios-data")),
        # One int8 embedding model build (about 4 s) for the whole run, however many tests
        # and servers bring their own data directory.
        "HELIOS_EMBEDDINGS__BUILD_DIR": str(tmp_path_factory.mktemp("helios-models")),
        # Tests need the real local code path, not good answers: `local` is the fastest real
        # model there, rather than the default (assembled from 1.1 GB of parts).
        "HELIOS_ALIASES__LOCAL": TEST_LOCAL_MODEL,
    }
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    yield
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def _shared_sim() -> Iterator[SimServer]:
    from helios.sim import SimServer  # imported here so suites without the sim extra still load

    with SimServer() as server:
        yield server


@pytest.fixture
def sim(_shared_sim: SimServer) -> Iterator[SimServer]:
    """The session's simulator (default ``SimConfig``), freshly reset."""
    _shared_sim.state.reset()
    yield _shared_sim
    _shared_sim.state.reset()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimServer]]:
    """``make_sim(config)`` or ``make_sim(reply_tokens=8, ...)``: a running simulator."""
    from helios.sim import SimConfig, SimServer

    servers: list[SimServer] = []

    def make(config: SimConfig | None = None, **fields: Any) -> SimServer:
        server = SimServer(config if config is not None else SimConfig(**fields)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ``HELIOS_REQUIRE_SERVICES=1`` (CI), a skipped test fails: nothing may go untested
    because a service, an extra or the local model was missing on the machine. A skip whose
    reason starts with "not applicable" is by design (a test of a capability one backend
    does not have, e.g. a fake clock for Redis's own expiry) and stays a skip."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get("HELIOS_REQUIRE_SERVICES") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        if str(reason).startswith(("not applicable", "Skipped: not applicable")):
            return
        report.outcome = "failed"
        report.longrepr = f"skipped, but HELIOS_REQUIRE_SERVICES=1 requires it to run: {reason}"


def pytest_unconfigure(config: pytest.Config) -> None:
    """llama-cpp-python opens /dev/null twice at import and never closes it; at interpreter
    exit that can print a ResourceWarning after pytest's summary line, which CI reads last."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None:
            handle.close()
