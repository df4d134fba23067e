"""The cache API (``/api/v1/helios/cache``) on a real three-layer cache: memory L2, usearch L3
with the local embedder and verifier, and the L1 planner; reached through the ASGI transport
with the app's lifespan running."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from helios.cache.manager import CacheManager
from helios.config.settings import Settings
from helios.ledger.memory import MemoryLedgerStore
from helios.server import create_app
from helios.server.routes.cache import LIMITS, PREFIX
from tests.server.cache_fixtures import BrokenBackend, build_manager, client_for, create_key

QUESTION = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"
ANSWER = "Open Settings, choose Security, then Reset password."
CANCEL = "Can I cancel my order online?"
NEGATION = "Can't I cancel my order online?"
SONNET = "claude-sonnet-4-6"


def settings(**values: object) -> Settings:
    return Settings.model_validate({"ledger": {"enabled": False}, **values})


@pytest.fixture
def manager(tmp_path: Path) -> CacheManager:
    return build_manager(tmp_path)


@pytest.fixture
async def admin(tmp_path: Path) -> tuple[Settings, str]:
    """Settings whose key store holds an admin key, and that key: most tests here act for
    several tenants, which only an admin key may name (tests/server/test_auth.py has the
    rest)."""
    path = tmp_path / "keys.sqlite3"
    _, key = await create_key(path, "default", admin=True)
    return settings(keys={"path": str(path)}), key


@pytest.fixture
async def client(
    manager: CacheManager, admin: tuple[Settings, str]
) -> AsyncIterator[httpx2.AsyncClient]:
    config, key = admin
    async with client_for(create_app(config, cache=manager), key) as client:
        yield client
    await manager.aclose()


async def post(client: httpx2.AsyncClient, path: str, **body: Any) -> httpx2.Response:
    return await client.post(f"{PREFIX}{path}", json=body)


async def store(client: httpx2.AsyncClient, **body: Any) -> dict[str, Any]:
    fields = {"input_text": QUESTION, "response_data": ANSWER, "tokens_used": 12, **body}
    response = await post(client, "/store", **fields)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def lookup(client: httpx2.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await post(client, "/lookup", **{"input_text": QUESTION, **body})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def detail_of(response: httpx2.Response) -> tuple[list[Any], str]:
    """``(loc, msg)`` of the first error in FastAPI's validation shape."""
    first = response.json()["detail"][0]
    return first["loc"], first["msg"]


# -- lookup and store -----------------------------------------------------------------------
async def test_a_lookup_in_an_empty_cache_misses(client: httpx2.AsyncClient) -> None:
    answer = await lookup(client)

    assert (answer["hit"], answer["layer"], answer["cached_response"]) == (False, None, None)
    assert (answer["confidence"], answer["tokens_saved"], answer["cost_saved"]) == (0.0, 0, 0.0)
    assert answer["l2_result"]["checked"] is True
    assert answer["l2_result"]["reason"] == "no entry"
    assert answer["l3_result"]["checked"] is True
    assert answer["l3_result"]["hit"] is False
    assert answer["l1_result"]["applicable"] is False  # the local model has no prompt cache
    assert answer["lookup_time_ms"] >= 0


async def test_a_stored_reply_answers_the_same_request_from_l2(
    client: httpx2.AsyncClient,
) -> None:
    stored = await store(client, model_used=SONNET, input_tokens=30, task_type="support")

    assert stored["layers_stored"] == ["L2_REDIS_EXACT", "L3_SEMANTIC"]
    assert stored["key"].startswith("l2:default:support:")
    answer = await lookup(client, model=SONNET, task_type="support")
    assert (answer["hit"], answer["layer"], answer["cached_response"]) == (
        True,
        "L2_REDIS_EXACT",
        ANSWER,
    )
    assert answer["confidence"] == 1.0
    assert answer["l3_result"]["reason"] == "L2 answered"
    assert answer["tokens_saved"] == 42
    # Sonnet's catalogue prices: 30 input and 12 output tokens
    assert answer["cost_saved"] == pytest.approx((30 * 3 + 12 * 15) / 1e6)


async def test_everything_that_shapes_the_request_is_part_of_the_entry(
    client: httpx2.AsyncClient,
) -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    same = {"system_prompt": "Be brief.", "messages": turns, "tenant": "acme", "temperature": 0}
    await store(client, **same)

    assert (await lookup(client, **same))["layer"] == "L2_REDIS_EXACT"
    for changed in (
        {"tenant": "globex"},
        {"system_prompt": "Be verbose."},
        {"messages": [*turns[:1], {"role": "assistant", "content": "Hey."}]},
        {"task_type": "billing"},
    ):
        assert (await lookup(client, **{**same, **changed}))["hit"] is False, changed


async def test_a_paraphrase_is_answered_by_l3(client: httpx2.AsyncClient) -> None:
    await store(client)

    answer = await lookup(client, input_text=PARAPHRASE)

    assert (answer["hit"], answer["layer"], answer["cached_response"]) == (
        True,
        "L3_SEMANTIC",
        ANSWER,
    )
    assert answer["l2_result"]["hit"] is False
    assert answer["l3_result"]["similarity"] >= 0.85
    assert 0 < answer["confidence"] <= 1


async def test_a_negation_is_not_answered_by_l3(client: httpx2.AsyncClient) -> None:
    await store(client, input_text=CANCEL, response_data="Yes: Orders, then Cancel.")

    answer = await lookup(client, input_text=NEGATION)

    assert answer["hit"] is False
    # close in cosine, so it was a candidate; the verifier turned it down
    assert answer["l3_result"]["similarity"] >= 0.85
    assert "rejected by the verifier" in answer["l3_result"]["reason"]


async def test_layers_can_be_skipped_and_the_threshold_raised(client: httpx2.AsyncClient) -> None:
    await store(client)

    no_l3 = await lookup(client, input_text=PARAPHRASE, use_l3=False)
    strict = await lookup(client, input_text=PARAPHRASE, similarity_threshold=0.999)
    no_l2 = await lookup(client, use_l2=False)

    assert no_l3["hit"] is False
    assert no_l3["l3_result"]["reason"] == "not asked"
    assert strict["hit"] is False
    assert no_l2["layer"] == "L3_SEMANTIC"  # the same question, found by meaning
    assert no_l2["l2_result"]["reason"] == "not asked"


async def test_a_store_can_skip_layers(client: httpx2.AsyncClient) -> None:
    stored = await store(client, store_in_l2=False)

    assert stored["layers_stored"] == ["L3_SEMANTIC"]
    assert (await lookup(client))["layer"] == "L3_SEMANTIC"


async def test_l1_reports_a_prefix_the_store_marked_warm(client: httpx2.AsyncClient) -> None:
    system = "You answer questions about the Helios account settings. " * 300
    cold = await lookup(client, model=SONNET, system_prompt=system)
    stored = await store(client, model_used=SONNET, system_prompt=system, store_in_l1=True)
    warm = await lookup(client, model=SONNET, system_prompt=system, input_text="Other?")

    assert cold["l1_result"]["applicable"] is True
    assert cold["l1_result"]["warm"] is False
    assert stored["layers_stored"] == ["L1_CLAUDE_NATIVE", "L2_REDIS_EXACT", "L3_SEMANTIC"]
    assert warm["l1_result"]["warm"] is True
    assert warm["l1_result"]["expected_savings_usd"] > 0
    assert warm["hit"] is False  # L1 never answers: it makes the provider call cheaper


# -- limits and malformed input -------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/lookup", {"input_text": "x" * (LIMITS.text_chars + 1)}, ["body", "input_text"]),
        (
            "/lookup",
            {"input_text": "q", "system_prompt": "s" * (LIMITS.text_chars + 1)},
            ["body", "system_prompt"],
        ),
        (
            "/lookup",
            {"input_text": "q", "messages": [{"role": "user", "content": "m"}] * 101},
            ["body", "messages"],
        ),
        (
            "/store",
            {
                "input_text": "q",
                "response_data": "r",
                "messages": [{"role": "user", "content": "m" * (LIMITS.text_chars + 1)}],
            },
            ["body", "messages", 0, "content"],
        ),
        (
            "/store",
            {"input_text": "q", "response_data": "r" * (LIMITS.response_chars + 1)},
            ["body", "response_data"],
        ),
    ],
)
async def test_oversized_text_is_413_naming_the_field(
    client: httpx2.AsyncClient, path: str, body: dict[str, Any], location: list[Any]
) -> None:
    response = await post(client, path, **body)

    assert response.status_code == 413
    loc, message = detail_of(response)
    assert loc == location
    assert ".".join(map(str, location[1:])) in message
    assert "above the limit" in message


async def test_a_body_above_the_limit_is_413_before_it_is_parsed(
    client: httpx2.AsyncClient,
) -> None:
    json_type = {"content-type": "application/json"}
    huge = b'{"input_text": "' + b"x" * LIMITS.body_bytes + b'"}'
    declared = await client.post(f"{PREFIX}/lookup", content=huge, headers=json_type)
    chunked = await client.post(f"{PREFIX}/lookup", content=chunks(huge), headers=json_type)
    small = await client.post(
        f"{PREFIX}/lookup", content=chunks(b'{"input_text": "q"}'), headers=json_type
    )

    assert (declared.status_code, chunked.status_code) == (413, 413)
    assert small.status_code == 200
    assert small.json()["hit"] is False


async def chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    """The body without a content-length: chunked transfer encoding."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_a_lone_surrogate_is_422_not_500(client: httpx2.AsyncClient) -> None:
    json_type = {"content-type": "application/json"}
    body = b'{"input_text": "q", "response_data": "\\udfff"}'

    response = await client.post(f"{PREFIX}/store", content=body, headers=json_type)

    assert response.status_code == 422
    assert detail_of(response)[0] == ["body", "response_data"]


@pytest.mark.parametrize(
    ("path", "body", "location"),
    [
        ("/lookup", {}, ["body", "input_text"]),
        ("/lookup", {"input_text": ""}, ["body", "input_text"]),
        ("/lookup", {"input_text": 42}, ["body", "input_text"]),
        ("/lookup", {"input_text": "q", "use_l2": "maybe"}, ["body", "use_l2"]),
        (
            "/lookup",
            {"input_text": "q", "similarity_threshold": 1.5},
            ["body", "similarity_threshold"],
        ),
        ("/lookup", {"input_text": "q", "temperature": -1}, ["body", "temperature"]),
        ("/lookup", {"input_text": "q", "tempreature": 0}, ["body", "tempreature"]),
        (
            "/lookup",
            {"input_text": "q", "messages": [{"role": "system", "content": "x"}]},
            ["body", "messages", 0, "role"],
        ),
        ("/lookup", {"input_text": "q", "model": "openai:"}, ["body", "model"]),
        ("/store", {"input_text": "q"}, ["body", "response_data"]),
        (
            "/store",
            {"input_text": "q", "response_data": "r", "tokens_used": -1},
            ["body", "tokens_used"],
        ),
        (
            "/store",
            {"input_text": "q", "response_data": "r", "model_used": "x:"},
            ["body", "model_used"],
        ),
        ("/invalidate", {"layer": "L4"}, ["body", "layer"]),
        ("/invalidate", {"key": "l2:a:b:c", "tenant": "a"}, ["body", "key"]),
        ("/invalidate", {"layer": "L3", "key": "l2:a:b:c"}, ["body", "key"]),
        ("/invalidate", {"layer": "L1", "tenant": "a"}, ["body", "layer"]),
    ],
)
async def test_malformed_input_is_422_naming_the_field(
    client: httpx2.AsyncClient, path: str, body: dict[str, Any], location: list[Any]
) -> None:
    response = await post(client, path, **body)

    assert response.status_code == 422, response.text
    assert detail_of(response)[0] == location


async def test_a_body_that_is_not_json_is_422(client: httpx2.AsyncClient) -> None:
    response = await client.post(
        f"{PREFIX}/lookup", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert response.status_code == 422


# -- invalidate -----------------------------------------------------------------------------
async def test_invalidate_counts_what_it_removed_per_layer(client: httpx2.AsyncClient) -> None:
    await store(client, tenant="acme")
    await store(client, tenant="acme", input_text="How do I delete my account?")
    kept = await store(client, tenant="globex")

    by_tenant = await post(client, "/invalidate", tenant="acme")
    by_key = await post(client, "/invalidate", key=kept["key"])
    rest = await post(client, "/invalidate", layer="L3_SEMANTIC")

    assert by_tenant.status_code == 200
    assert by_tenant.json() == {"removed": {"L2_REDIS_EXACT": 2, "L3_SEMANTIC": 2}, "total": 4}
    assert by_key.json() == {"removed": {"L2_REDIS_EXACT": 1}, "total": 1}
    assert rest.json() == {"removed": {"L3_SEMANTIC": 1}, "total": 1}
    assert (await lookup(client, tenant="globex"))["hit"] is False


async def test_invalidate_by_task_type_across_tenants(client: httpx2.AsyncClient) -> None:
    await store(client, tenant="acme", task_type="billing")
    await store(client, tenant="globex", task_type="billing")
    await store(client, tenant="globex", task_type="support")

    response = await post(client, "/invalidate", task_type="billing", layer="l2")

    assert response.json() == {"removed": {"L2_REDIS_EXACT": 2}, "total": 2}
    assert (await lookup(client, tenant="globex", task_type="support"))["hit"] is True


async def test_an_invalidation_the_store_refuses_is_503(
    tmp_path: Path, admin: tuple[Settings, str]
) -> None:
    manager = build_manager(tmp_path, backend=BrokenBackend(), semantic=False)
    config, key = admin
    async with client_for(create_app(config, cache=manager), key) as client:
        response = await post(client, "/invalidate", tenant="acme")

    assert response.status_code == 503
    assert response.json()["detail"] == "redis 127.0.0.1:1: connection refused"


# -- health, metrics, stats -----------------------------------------------------------------
async def test_health_is_ok_with_every_store_reachable(client: httpx2.AsyncClient) -> None:
    response = await client.get(f"{PREFIX}/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["layers"]) == {"L1_CLAUDE_NATIVE", "L2_REDIS_EXACT", "L3_SEMANTIC"}
    assert {layer["status"] for layer in body["layers"].values()} == {"ok"}
    assert body["layers"]["L2_REDIS_EXACT"]["backend"] == "memory"


async def test_a_broken_l2_is_degraded_while_lookups_still_answer(tmp_path: Path) -> None:
    manager = build_manager(tmp_path, backend=BrokenBackend())
    async with client_for(create_app(settings(), cache=manager)) as client:
        health = await client.get(f"{PREFIX}/health")
        overall = await client.get("/health")
        stored = await store(client)
        answer = await lookup(client, input_text="What is the capital of France?")
        metrics = (await client.get(f"{PREFIX}/metrics")).json()
    await manager.aclose()

    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert overall.status_code == 200 and overall.json()["status"] == "degraded"
    assert overall.json()["cache"]["layers"]["L2_REDIS_EXACT"]["status"] == "degraded"
    l2 = health.json()["layers"]["L2_REDIS_EXACT"]
    assert (l2["status"], l2["backend"]) == ("degraded", "redis 127.0.0.1:1")
    assert "connection refused" in l2["detail"]
    assert health.json()["layers"]["L3_SEMANTIC"]["status"] == "ok"
    assert stored["layers_stored"] == ["L3_SEMANTIC"]  # L2 failed open
    assert answer["hit"] is False
    assert answer["l2_result"]["error"] == "redis 127.0.0.1:1 unavailable"
    assert metrics["l2_entries"] is None  # could not be counted
    assert metrics["layers"]["L2_REDIS_EXACT"]["errors"] >= 2


async def test_metrics_count_lookups_hits_entries_and_savings(
    client: httpx2.AsyncClient,
) -> None:
    await store(client, model_used=SONNET, input_tokens=30)
    await lookup(client, model=SONNET)  # L2 hit
    await lookup(client, model=SONNET, input_text=PARAPHRASE)  # L3 hit
    await lookup(client, model=SONNET, input_text="What is the capital of France?")  # miss

    response = await client.get(f"{PREFIX}/metrics")

    assert response.status_code == 200
    body = response.json()
    assert (body["total_lookups"], body["total_hits"]) == (3, 2)
    assert body["overall_hit_rate"] == pytest.approx(2 / 3)
    assert body["l2_hit_rate"] == pytest.approx(1 / 3)
    assert body["l3_hit_rate"] == pytest.approx(1 / 2)
    assert body["total_tokens_saved"] == 2 * 42
    assert body["total_cost_saved"] == pytest.approx(2 * (30 * 3 + 12 * 15) / 1e6)
    # the L3 hit left an exact alias of the paraphrase in L2 (a lookup, not a store)
    assert (body["l1_entries"], body["l2_entries"], body["l3_entries"]) == (0, 2, 1)
    assert body["layers"]["L2_REDIS_EXACT"]["stores"] == 1


async def test_summary_is_metrics_and_health(client: httpx2.AsyncClient) -> None:
    await lookup(client)

    body = (await client.get(f"{PREFIX}/summary")).json()

    assert body["metrics"]["total_lookups"] == 1
    assert body["health"]["status"] == "ok"


async def test_layer_stats_list_the_recently_hit_l2_entries(client: httpx2.AsyncClient) -> None:
    first = await store(client, tenant="acme")
    second = await store(client, tenant="acme", input_text="How do I delete my account?")
    await store(client, tenant="globex")
    await lookup(client, tenant="acme")

    response = await client.get(f"{PREFIX}/stats/layer/L2", params={"tenant": "acme"})
    by_api_name = await client.get(f"{PREFIX}/stats/layer/l2_redis_exact")

    assert response.status_code == 200
    body = response.json()
    assert (body["layer"], body["entries"]) == ("L2_REDIS_EXACT", 3)
    assert body["config"] == {"enabled": True, "backend": "memory", "ttl_s": 3600.0}
    recent = body["recent_entries"]
    assert [entry["key"] for entry in recent] == [first["key"], second["key"]]
    assert (recent[0]["tenant"], recent[0]["task_type"], recent[0]["access_count"]) == (
        "acme",
        "general",
        1,
    )
    assert by_api_name.json()["entries"] == 3


async def test_layer_stats_of_l3_and_l1(client: httpx2.AsyncClient) -> None:
    await store(client)
    await lookup(client, input_text=PARAPHRASE)

    l3 = (await client.get(f"{PREFIX}/stats/layer/L3_SEMANTIC")).json()
    l1 = (await client.get(f"{PREFIX}/stats/layer/L1")).json()

    assert (l3["entries"], l3["metrics"]["hits"], l3["counts"]["stores"]) == (1, 1, 1)
    assert l3["config"]["threshold"] == 0.85
    assert l1["config"] == {"enabled": True, "ttl": "5m"}


async def test_an_unknown_layer_is_404_naming_the_valid_ones(client: httpx2.AsyncClient) -> None:
    response = await client.get(f"{PREFIX}/stats/layer/L4")

    assert response.status_code == 404
    assert "L1_CLAUDE_NATIVE, L2_REDIS_EXACT, L3_SEMANTIC" in response.json()["detail"]


# -- the app's own cache --------------------------------------------------------------------
@pytest.fixture
def own_cache_settings(tmp_path: Path) -> Iterator[Settings]:
    yield settings(
        cache={"backend": "memory", "semantic": {"path": str(tmp_path / "semantic.sqlite3")}}
    )


async def test_the_app_builds_its_cache_from_the_settings_and_closes_it(
    own_cache_settings: Settings,
) -> None:
    app = create_app(own_cache_settings)
    async with client_for(app) as client:
        built = app.state.helios.cache
        await store(client)
        exact = await lookup(client)
        paraphrase = await lookup(client, input_text=PARAPHRASE)
        health = (await client.get(f"{PREFIX}/health")).json()

    assert exact["layer"] == "L2_REDIS_EXACT"
    assert paraphrase["layer"] == "L3_SEMANTIC"
    assert health["layers"]["L3_SEMANTIC"]["status"] == "ok"
    assert built is not None
    assert app.state.helios.cache is None  # closed with the app


async def test_a_disabled_cache_says_so(tmp_path: Path) -> None:
    app = create_app(settings(cache={"enabled": False}), store=MemoryLedgerStore())
    async with client_for(app) as client:
        health = await client.get(f"{PREFIX}/health")
        answer = await post(client, "/lookup", input_text=QUESTION)

    assert health.status_code == 200
    assert health.json()["status"] == "disabled"
    assert answer.status_code == 503
    assert "cache.enabled is false" in answer.json()["detail"]


async def test_the_cache_routes_are_documented(client: httpx2.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    cache_paths = {path for path in document["paths"] if path.startswith(PREFIX)}
    assert cache_paths == {
        f"{PREFIX}/{name}"
        for name in (
            "lookup",
            "store",
            "metrics",
            "invalidate",
            "health",
            "summary",
            "stats/layer/{layer}",
        )
    }
    for path in cache_paths:
        for operation in document["paths"][path].values():
            assert operation["tags"] == ["cache"]
    lookup_answer = document["paths"][f"{PREFIX}/lookup"]["post"]["responses"]["200"]
    assert lookup_answer["content"]["application/json"]["schema"]["$ref"].endswith("LookupResult")


async def test_auto_keys_entries_like_the_engine(client: httpx2.AsyncClient) -> None:
    await store(client, model_used="auto")
    answer = await lookup(client, model="auto")
    assert answer["hit"] is True and answer["layer"] == "L2_REDIS_EXACT"


async def test_prometheus_metrics_carry_the_cache_managers_counters(
    client: httpx2.AsyncClient,
) -> None:
    await store(client, model_used=SONNET)
    await lookup(client, model=SONNET)
    await lookup(client, model=SONNET, input_text="Something else entirely?")
    text = (await client.get("/metrics")).text
    assert 'helios_cache_manager_lookups_total{layer="L2",result="hit"} 1.0' in text
    assert 'helios_cache_manager_lookups_total{layer="L2",result="miss"} 1.0' in text
    assert 'helios_cache_manager_writes_total{layer="L3"} 1.0' in text
    assert 'helios_cache_manager_lookup_duration_seconds{layer="L2",quantile="0.5"}' in text
    # the cache API's lookups are no model calls: the ledger's family does not count them
    assert "helios_cache_lookups_total{" not in text


async def test_the_cache_apis_lookups_are_counted_per_persona(client: httpx2.AsyncClient) -> None:
    await store(client, model_used=SONNET)
    await lookup(client, model=SONNET)
    await lookup(client, model=SONNET, input_text="Something else entirely?")
    # the REST API's lookups carry no persona: they count under "-"
    metrics = (await client.get(f"{PREFIX}/metrics")).json()
    assert metrics["personas"]["-"]["lookups"] == 2 and metrics["personas"]["-"]["hits"] == 1
    assert metrics["personas"]["-"]["hits_by_layer"] == {"L2": 1}


async def test_the_reference_designs_own_client_example_works(client: httpx2.AsyncClient) -> None:
    """Store (an object reply, a model Helios does not know), look up, read the summary: as
    the reference design's client wrote it."""
    reply = {"answer": "Paris", "sources": ["atlas"], "confidence": 0.97}
    stored = await post(
        client,
        "/store",
        input_text="What is the capital of France?",
        response_data=reply,
        model_used="claude-opus-4",
        tokens_used=12,
        task_type="qa",
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["layers_stored"]
    found = await post(
        client,
        "/lookup",
        input_text="What is the capital of France?",
        task_type="qa",
        model="claude-opus-4",
    )
    answer = found.json()
    assert answer["hit"] is True and answer["cached_response"] == reply  # the same object
    summary = (await client.get(f"{PREFIX}/summary")).json()
    metrics = summary["metrics"]
    assert metrics["savings"]["total_cost_saved_dollars"] == metrics["total_cost_saved"]
    assert metrics["storage"]["L2_entries"] >= 1 and "L1_entries" in metrics["storage"]
    assert metrics["total_hits"] == 1  # today's fields stay
