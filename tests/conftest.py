"""Fixtures shared by the whole suite.

``sim`` is one provider simulator for the session (starting uvicorn per test would cost
more than the tests), reset before and after every test so no warm prefix, queued fault,
stat or clock override leaks between tests. ``make_sim`` starts extra simulators with
their own config (latency profiles, reply length, seeds) and stops them after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from helios.sim import SimConfig, SimServer


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
