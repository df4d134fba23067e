"""Schemathesis against the app's own OpenAPI schema: every operation (cache API, gateway,
admin, health, metrics), data that fits the schema and data that does not, sent with an
admin key. No answer may be a 5xx, and every answer must be one the schema declares, in
the shape it declares. The gateway's models are served by the provider simulator.

Seeded (hypothesis ``derandomize``) and bounded (:data:`EXAMPLES` per operation and mode),
so a run is repeatable and short.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.python import asgi

from helios.cache.manager import CacheManager
from helios.server import create_app
from helios.sim import SimServer
from tests.server.app_routes import every_route
from tests.server.cache_fixtures import build_manager, create_key
from tests.server.gateway_fixtures import gateway_settings

NO_KNOWN_ID = {
    "GET /api/v1/admin/keys/{key_id}",
    "DELETE /api/v1/admin/keys/{key_id}",
    "GET /api/v1/tasks/{task_id}",
    "DELETE /api/v1/tasks/{task_id}",
    "GET /api/v1/tasks/{task_id}/events",
}
"""Operations on an id no generated case can know: they answer 404 (declared)."""

EXAMPLES = 25
"""Cases per operation and generation mode."""

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[CacheManager]:
    built = build_manager(tmp_path)  # memory L2, L3 with the local embedder and verifier
    yield built
    asyncio.run(built.aclose())


# DBOS's background threads (queue polls, its once-a-second jobs) draw from the global
# `random` while hypothesis generates a case; hypothesis then reports the strategy as using
# `random`. No strategy here does: the warning is about those threads, not the cases.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
def test_no_operation_answers_a_5xx_or_outside_its_schema(
    sim: SimServer, tmp_path: Path, manager: CacheManager
) -> None:
    settings = gateway_settings(
        sim.base_url,
        tmp_path,
        default_model="sonnet",
        server={"allowed_hosts": ["testserver"]},  # the Host schemathesis's client sends
        # the fuzzed tasks stay queued: in a database of their own, so no later test runs them
        tasks={"system_database_url": f"sqlite:///{tmp_path / 'tasks.sqlite'}"},
    )
    _, admin = asyncio.run(create_key(tmp_path / "keys.sqlite3", "ops", admin=True))
    # tasks are taken, not run: the fuzzed ones would otherwise run on the simulator
    app = create_app(settings, cache=manager, task_worker=False)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [getattr(schemathesis.checks, name) for name in CHECKS]
    failures: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    try:
        for operation in operations:
            seen = statuses.setdefault(operation.label, Counter())
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failures += _fuzz(operation, mode, admin, checks, seen)
    finally:
        asgi.shutdown_lifespans()
    assert set(statuses) == {route.label for route in every_route(app) if route.documented}
    assert failures == []
    # the key opened every door, and every operation answered 2xx at least once
    assert {label: 401 in seen or 421 in seen for label, seen in statuses.items()} == {
        label: False for label in statuses
    }
    answered = {label for label, seen in statuses.items() if any(200 <= c < 300 for c in seen)}
    assert answered == set(statuses) - NO_KNOWN_ID, statuses


def _fuzz(
    operation: Any, mode: GenerationMode, key: str, checks: list[Any], seen: Counter[int]
) -> list[str]:
    found: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}

    @hypothesis.settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def run(case: Any) -> None:
        response = case.call(headers=headers)
        seen[response.status_code] += 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (AssertionError, FailureGroup) as failure:
            found.append(f"{operation.label} [{mode}] {case.body!r:.300}: {failure}"[:2000])

    run()
    return found
