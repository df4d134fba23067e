"""Hostile callers against ``helios serve``: every route behind a key (enumerated from the
app, so a new route is covered without touching this file), the Host allow-list of a
loopback server, what ``/health`` and ``/metrics`` tell whom, strict request types, and no
key or provider secret anywhere a caller or an operator can read."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from helios.config.settings import Settings
from helios.ledger.memory import MemoryLedgerStore
from helios.server import create_app
from helios.server.routes.cache import HIDDEN, PREFIX
from tests.server.app_routes import every_route
from tests.server.cache_fixtures import BrokenBackend, build_manager, client_for, create_key

PUBLIC = {"GET /openapi.json", "GET /docs", "GET /docs/oauth2-redirect", "GET /redoc"}
"""The OpenAPI pages: the schema is no secret (``/health`` answers anyone too, tested apart)."""
ADMIN_ONLY = ("/api/v1/admin/", "/metrics", "/dashboard")
"""Path prefixes only an admin key may use."""
PATH_VALUES = {"{layer}": "L2", "{key_id}": "0123456789ab"}


def settings(keys: Path, **values: Any) -> Settings:
    config: dict[str, Any] = {
        "ledger": {"enabled": False},
        "cache": {"backend": "memory", "semantic": {"enabled": False}},
        "keys": {"path": str(keys)},
    }
    return Settings.model_validate({**config, **values})


def bearer(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def concrete(path: str) -> str:
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, value)
    return path


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "keys.sqlite3"


# -- every route, every kind of caller --------------------------------------------------------
async def test_every_route_needs_a_key_and_admin_routes_an_admin_key(keys: Path) -> None:
    _, tenant = await create_key(keys, "acme")
    _, admin = await create_key(keys, "ops", admin=True)
    wrong = tenant[:-1] + ("a" if tenant[-1] != "a" else "b")
    app = create_app(settings(keys))
    routes = every_route(app)
    answers: dict[str, dict[str, httpx2.Response]] = {}
    async with client_for(app) as client:
        for route in routes:
            answers[route.label] = {
                who: await client.request(
                    route.method,
                    concrete(route.path),
                    headers=headers,
                    json={} if route.method in ("POST", "PUT", "PATCH") else None,
                )
                for who, headers in (
                    ("nobody", {}),
                    ("wrong", bearer(wrong)),
                    ("wrong x-api-key", {"x-api-key": wrong}),
                    ("tenant", bearer(tenant)),
                    ("tenant x-api-key", {"x-api-key": tenant}),
                    ("admin", bearer(admin)),
                )
            }
        health = {who: answer for who, answer in answers.pop("GET /health").items()}

    assert len(answers) >= 20 and set(answers) >= PUBLIC
    for label, by_caller in answers.items():
        codes = {who: response.status_code for who, response in by_caller.items()}
        assert all(code < 500 for code in codes.values()), (label, codes)
        for response in by_caller.values():
            assert tenant not in response.text and admin not in response.text
        if label in PUBLIC:
            assert set(codes.values()) == {200}, (label, codes)
            continue
        assert (codes["nobody"], codes["wrong"], codes["wrong x-api-key"]) == (401,) * 3, label
        admin_only = label.split(" ", 1)[1].startswith(ADMIN_ONLY)
        for who in ("tenant", "tenant x-api-key"):
            if admin_only:
                assert codes[who] == 403, (label, codes)
            else:
                assert codes[who] not in (401, 403), (label, codes)
        assert codes["admin"] not in (401, 403), (label, codes)
    # /health answers everyone, but only its status unless the caller is an admin
    assert {who: r.status_code for who, r in health.items()} == dict.fromkeys(health, 200)
    assert {who: set(r.json()) for who, r in health.items()} == {
        **{who: {"status"} for who in health},
        "admin": {"status", "ledger", "monitor", "cache", "tasks"},
    }


async def test_without_keys_on_loopback_everything_but_the_admin_api_is_open(
    keys: Path,
) -> None:
    app = create_app(settings(keys))
    async with client_for(app) as client:
        health = await client.get("/health")
        metrics = await client.get("/metrics")
        admin = await client.get("/api/v1/admin/keys")
    assert set(health.json()) == {
        "status",
        "ledger",
        "monitor",
        "cache",
        "tasks",
    }  # from this machine
    assert metrics.status_code == 200
    assert admin.status_code == 401


async def test_an_open_server_on_another_address_serves_only_when_told_to(keys: Path) -> None:
    open_settings = settings(keys, server={"allow_unauthenticated": True})
    app = create_app(open_settings, host="0.0.0.0")
    async with client_for(app) as client:
        stored = await client.post(
            f"{PREFIX}/store", json={"input_text": "q", "response_data": "a"}
        )
        health = await client.get("/health", headers={"Host": "helios.example"})
        naming = await client.post(f"{PREFIX}/lookup", json={"input_text": "q", "tenant": "x"})
    assert stored.status_code == 200 and stored.json()["key"].startswith("l2:default:")
    assert health.json() == {"status": "ok"}  # no Host check, and no details for strangers
    assert naming.status_code == 403


@pytest.mark.parametrize("announce", [True, False])
async def test_an_app_on_another_address_warns_once_unless_its_server_did(
    keys: Path, caplog: pytest.LogCaptureFixture, announce: bool
) -> None:
    await create_key(keys, "acme")
    caplog.set_level(logging.INFO, logger="helios.server")
    async with client_for(create_app(settings(keys), host="::", announce_exposure=announce)):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = "serving on ::, which other machines can reach: every call needs an API key"
    assert [w.startswith(expected) for w in warnings] == ([True] if announce else [])


async def test_public_metrics_need_no_key(keys: Path) -> None:
    await create_key(keys, "acme")
    app = create_app(settings(keys, server={"public_metrics": True}))
    async with client_for(app) as client:
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and "helios_" in metrics.text


# -- the Host header of a loopback server -----------------------------------------------------
@pytest.mark.parametrize(
    ("host", "served"),
    [
        ("localhost:8002", True),
        ("127.0.0.1:8002", True),
        ("[::1]:8002", True),
        ("LocalHost", True),
        ("helios.internal:8002", True),
        ("localhost:8003", False),
        ("evil.example:8002", False),
        ("evil.example", False),
        ("127.0.0.1.nip.io:8002", False),
        ("localhost.evil.example", False),
        ("[::1", False),
        ("::1", False),
        ("localhost:80x", False),
        ("", False),
    ],
)
async def test_a_loopback_server_answers_only_its_own_names(
    keys: Path, host: str, served: bool
) -> None:
    config = settings(keys, server={"allowed_hosts": ["helios.internal"]})
    app = create_app(config, port=8002)
    async with client_for(app) as client:
        answer = await client.get("/health", headers={"Host": host})
    if served:
        assert answer.status_code == 200
        return
    assert answer.status_code == 421
    assert answer.json()["detail"] == (
        f"Host '{host}' is not served here: a server on a loopback address answers only"
        " 127.0.0.1, [::1], helios.internal, localhost (add names to server.allowed_hosts)"
    )


async def test_the_host_check_comes_before_keys_and_bodies(keys: Path) -> None:
    _, tenant = await create_key(keys, "acme")
    app = create_app(settings(keys), host="127.0.0.2")
    async with client_for(app) as client:
        evil = await client.post(
            f"{PREFIX}/invalidate", json={}, headers={"Host": "evil.example", **bearer(tenant)}
        )
        own_address = await client.get(f"{PREFIX}/health", headers={"Host": "127.0.0.2:1234"})
    assert evil.status_code == 421  # nothing was invalidated, and the key was never checked
    assert own_address.status_code == 401  # the bound address is a name of its own


async def test_a_request_without_a_host_header_is_refused(keys: Path) -> None:
    app = create_app(settings(keys))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.0",
        "method": "GET",
        "path": "/health",
        "raw_path": b"/health",
        "query_string": b"",
        "headers": [],
        "scheme": "http",
        "server": ("127.0.0.1", 8002),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b'{"detail": "missing Host header"}'


# -- strict types ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("route", "body", "field"),
    [
        ("lookup", {"input_text": "q", "similarity_threshold": False}, "similarity_threshold"),
        ("lookup", {"input_text": "q", "similarity_threshold": "0.5"}, "similarity_threshold"),
        ("lookup", {"input_text": "q", "use_l2": "yes"}, "use_l2"),
        ("lookup", {"input_text": "q", "temperature": True}, "temperature"),
        ("lookup", {"input_text": 5}, "input_text"),
        ("store", {"input_text": "q", "response_data": "a", "tokens_used": 2**70}, "tokens_used"),
        ("store", {"input_text": "q", "response_data": "a", "tokens_used": True}, "tokens_used"),
        ("store", {"input_text": "q", "response_data": "a", "input_tokens": -1}, "input_tokens"),
        ("store", {"input_text": "q", "response_data": "a", "extra": 1}, "extra"),
        ("invalidate", {"tenant": 7}, "tenant"),
    ],
)
async def test_cache_bodies_are_strictly_typed_and_bounded(
    keys: Path, route: str, body: dict[str, Any], field: str
) -> None:
    async with client_for(create_app(settings(keys))) as client:
        answer = await client.post(f"{PREFIX}/{route}", json=body)
    assert answer.status_code == 422
    assert [problem["loc"] for problem in answer.json()["detail"]] == [["body", field]]


@pytest.mark.parametrize(
    ("body", "field"),
    [({"tenant": "acme", "rpm": True}, "rpm"), ({"tenant": "acme", "rpm": 2**40}, "rpm")],
)
async def test_admin_bodies_are_strictly_typed_and_bounded(
    keys: Path, body: dict[str, Any], field: str
) -> None:
    _, admin = await create_key(keys, "ops", admin=True)
    async with client_for(create_app(settings(keys)), admin) as client:
        answer = await client.post("/api/v1/admin/keys", json=body)
    assert answer.status_code == 422
    assert [problem["loc"] for problem in answer.json()["detail"]] == [["body", field]]


MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/chat/completions", {"temperature": False}, "temperature"),
        ("/v1/chat/completions", {"max_tokens": 2**70}, "max_tokens"),
        ("/v1/chat/completions", {"max_tokens": 1.5}, "max_tokens"),
        ("/v1/chat/completions", {"stream": "true"}, "stream"),
        ("/v1/chat/completions", {"seed": 2**64}, "seed"),
        ("/v1/messages/count_tokens", {"system": 12}, "system"),
    ],
)
async def test_protocol_bodies_are_strictly_typed(
    keys: Path, path: str, body: dict[str, Any], param: str
) -> None:
    async with client_for(create_app(settings(keys))) as client:
        answer = await client.post(path, json={"model": "sonnet", "messages": MESSAGES, **body})
    assert answer.status_code == 400
    if path.startswith("/v1/messages"):  # Anthropic's shape names the field in the message
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert error["message"].startswith(param)
    else:
        error = answer.json()["error"]
        assert (error["type"], error["param"]) == ("invalid_request_error", param)


async def test_protocol_bodies_tolerate_fields_helios_does_not_know(keys: Path) -> None:
    body = {
        "model": "sonnet",
        "messages": [{"role": "user", "content": "Hello", "some_new_field": {"x": 1}}],
        "service_tier": "auto",
        "betas": ["a-new-feature"],
    }
    async with client_for(create_app(settings(keys))) as client:
        counted = await client.post("/v1/messages/count_tokens", json=body)
        not_a_number = await client.post(
            "/v1/chat/completions",
            content=b'{"model": "sonnet", "messages": [], "temperature": NaN}',
            headers={"content-type": "application/json"},
        )
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0
    assert not_a_number.status_code == 400
    assert not_a_number.json()["error"]["message"] == "body: NaN is not a JSON number"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_protocol_bodies_must_say_they_are_json(keys: Path, content_type: str | None) -> None:
    """A web page may POST text/plain anywhere without a preflight: never a model call."""
    body = b'{"model": "sonnet", "messages": [{"role": "user", "content": "Hello"}]}'
    headers = {} if content_type is None else {"content-type": content_type}
    async with client_for(create_app(settings(keys))) as client:
        counted = await client.post("/v1/messages/count_tokens", content=body, headers=headers)
        chat = await client.post("/v1/chat/completions", content=body, headers=headers)
        planted = await client.post(
            f"{PREFIX}/store",
            content=b'{"input_text": "Hello", "response_data": "Planted."}',
            headers=headers,
        )
        as_json = await client.post(
            "/v1/messages/count_tokens",
            content=body,
            headers={"content-type": "application/json; charset=utf-8"},
        )
    assert [counted.status_code, chat.status_code, as_json.status_code] == [400, 400, 200]
    assert planted.status_code == 422  # FastAPI reads only JSON bodies on the cache API
    assert chat.json()["error"]["message"] == (
        f"body: Content-Type must be application/json (got {content_type or 'none'})"
    )


async def test_a_gateway_body_above_the_limit_is_a_413_in_the_protocols_shape(
    keys: Path,
) -> None:
    from helios.server.limits import GATEWAY_BODY_BYTES

    text = b"a" * (GATEWAY_BODY_BYTES + 1)
    body = b'{"model": "sonnet", "messages": [{"role": "user", "content": "' + text + b'"}]}'
    json_type = {"content-type": "application/json"}

    async def in_pieces() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    async with client_for(create_app(settings(keys))) as client:
        declared = await client.post("/v1/chat/completions", content=body, headers=json_type)
        streamed = await client.post("/v1/messages", content=in_pieces(), headers=json_type)
    assert (declared.status_code, streamed.status_code) == (413, 413)
    assert declared.json()["error"]["param"] == "body"
    assert streamed.json()["error"]["message"].endswith(f"above the limit of {GATEWAY_BODY_BYTES}")


# -- a store's errors are an operator's business ---------------------------------------------
async def test_only_operators_read_why_a_store_fails(keys: Path, tmp_path: Path) -> None:
    _, tenant = await create_key(keys, "acme")
    _, admin = await create_key(keys, "ops", admin=True)
    manager = build_manager(tmp_path, backend=BrokenBackend(), semantic=False)
    app = create_app(settings(keys), cache=manager)
    reads = ("/health", "/metrics", "/summary", "/stats/layer/L2")
    async with client_for(app) as client:
        await client.post(f"{PREFIX}/lookup", json={"input_text": "q"}, headers=bearer(tenant))
        as_tenant = [await client.get(PREFIX + path, headers=bearer(tenant)) for path in reads]
        as_admin = [await client.get(PREFIX + path, headers=bearer(admin)) for path in reads]
    await manager.aclose()
    assert [r.status_code for r in as_tenant + as_admin] == [200] * 8
    for answer in as_tenant:  # the store's kind, never its address or error
        assert "127.0.0.1:1" not in answer.text and "connection refused" not in answer.text
    assert as_tenant[0].json()["layers"]["L2_REDIS_EXACT"]["backend"] == "redis"
    assert as_tenant[0].json()["layers"]["L2_REDIS_EXACT"]["detail"] == HIDDEN
    assert as_tenant[1].json()["last_errors"]["L2_REDIS_EXACT"] == HIDDEN
    assert as_tenant[3].json()["error"] == HIDDEN
    assert "redis 127.0.0.1:1: connection refused" in as_admin[0].text
    assert all("connection refused" in answer.text for answer in as_admin)


# -- one tenant never sees, hits or removes another's entries ---------------------------------
async def test_tenants_are_apart_in_both_layers_whatever_they_ask(
    keys: Path, tmp_path: Path
) -> None:
    _, acme = await create_key(keys, "acme")
    _, globex = await create_key(keys, "globex")
    _, admin = await create_key(keys, "ops", admin=True)
    manager = build_manager(tmp_path)  # L2 and L3 (the local embedder and verifier)
    question, paraphrase = "How do I reset my password?", "How can I reset my password?"
    async with client_for(create_app(settings(keys), cache=manager)) as client:

        async def call(who: str, route: str, **body: Any) -> httpx2.Response:
            return await client.post(f"{PREFIX}/{route}", json=body, headers=bearer(who))

        stored = await call(acme, "store", input_text=question, response_data="Settings.")
        acme_key = stored.json()["key"]
        # globex tries every way in: lookups, invalidations, listings
        tries = [
            await call(globex, "lookup", input_text=question),
            await call(globex, "lookup", input_text=paraphrase),
            await call(globex, "lookup", input_text=paraphrase, similarity_threshold=0.0),
            await call(globex, "invalidate", task_type="general"),
            await call(globex, "invalidate", layer="L3"),
            await call(globex, "invalidate", layer="L2", key=acme_key),
            await call(globex, "invalidate", tenant="acme"),
            await call(
                globex, "store", input_text=question, response_data="Poisoned.", tenant="acme"
            ),
        ]
        listing = await client.get(f"{PREFIX}/stats/layer/L2", headers=bearer(globex))
        exact = await call(acme, "lookup", input_text=question)
        semantic = await call(acme, "lookup", input_text=paraphrase)
        # an admin may act for acme, and remove its entries
        removed = await call(admin, "invalidate", tenant="acme")
        after = await call(acme, "lookup", input_text=question)
    await manager.aclose()

    assert [r.json()["hit"] for r in tries[:3]] == [False, False, False]
    assert [r.json()["total"] for r in tries[3:5]] == [0, 0]
    assert [r.status_code for r in tries[5:]] == [403, 403, 403]
    assert acme_key not in listing.text and listing.json()["recent_entries"] == []
    assert (exact.json()["layer"], exact.json()["cached_response"]) == (
        "L2_REDIS_EXACT",
        "Settings.",
    )
    assert (semantic.json()["layer"], semantic.json()["cached_response"]) == (
        "L3_SEMANTIC",
        "Settings.",
    )
    # the L3 hit left an exact alias of its wording in L2: invalidated with the entry
    assert removed.json()["removed"] == {"L2_REDIS_EXACT": 2, "L3_SEMANTIC": 1}
    assert after.json()["hit"] is False


# -- no key and no provider secret anywhere ---------------------------------------------------
SETTINGS_SECRET = "sk-settings-0123456789abcdefSECRET"
ENV_SECRET = "sk-ant-env-0123456789abcdefSECRET"


async def test_no_key_or_provider_secret_reaches_what_anyone_reads(
    keys: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from helios.sim import Fault, SimServer

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_SECRET)
    _, tenant = await create_key(keys, "acme")
    _, admin = await create_key(keys, "ops", admin=True)
    ledger = MemoryLedgerStore()
    with SimServer() as sim:
        config = settings(
            keys,
            ledger={"enabled": True, "path": str(tmp_path / "ledger.sqlite3")},
            default_model="sonnet",
            tiers={"strong": "opus", "fast": "sonnet", "local": "openai:gpt-5.4-mini"},
            providers={
                "openai": {"base_url": sim.base_url + "/v1", "api_key": SETTINGS_SECRET},
                "anthropic": {"base_url": sim.base_url, "max_retries": 0},
            },
        )
        app = create_app(config, store=ledger)
        async with client_for(app) as client:
            bodies = {"model": "openai:gpt-5.4-mini", "messages": MESSAGES}
            answers = [
                await client.post("/v1/chat/completions", json=bodies, headers=bearer(tenant)),
                await client.post(
                    "/v1/messages",
                    json={"model": "sonnet", "max_tokens": 16, "messages": MESSAGES},
                    headers={"x-api-key": tenant},
                ),
                await client.post("/v1/chat/completions", json=bodies, headers=bearer("hk-x-y")),
            ]
            # a provider refusing the key may quote it back (some OpenAI-compatible servers do)
            echoed = f"Incorrect API key provided: {SETTINGS_SECRET} / {ENV_SECRET}"
            sim.state.inject(Fault(kind="auth", message=echoed), times=None)
            answers += [
                await client.post(
                    "/v1/chat/completions",
                    json={**bodies, "messages": [{"role": "user", "content": "Other"}]},
                    headers=bearer(tenant),
                ),
                await client.post(
                    "/v1/messages",
                    json={"model": "sonnet", "max_tokens": 16, "messages": [MESSAGES[0]] * 2},
                    headers=bearer(admin),
                ),
            ]
            answers += [
                await client.get("/metrics", headers=bearer(admin)),
                await client.get("/health", headers=bearer(admin)),
                await client.get(f"{PREFIX}/summary", headers=bearer(admin)),
                await client.get("/v1/models", headers=bearer(tenant)),
                await client.get("/openapi.json"),
            ]
    events = await ledger.query()
    assert [r.status_code for r in answers[:5]] == [200, 200, 401, 502, 502]
    assert "Incorrect API key provided: [redacted] / [redacted]" in answers[3].text
    readable = [
        *(answer.text for answer in answers),
        *(str(dict(answer.headers)) for answer in answers),
        caplog.text,
        *(event.model_dump_json() for event in events),
    ]
    assert len(events) > 0
    for secret in (SETTINGS_SECRET, ENV_SECRET, tenant, admin):
        for text in readable:
            assert secret not in text
        assert secret.rsplit("-", 1)[-1] not in caplog.text
