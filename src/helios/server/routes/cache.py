"""``/api/v1/helios/cache``: the three-layer response cache over HTTP.

Lookups and stores speak the reference design's fields (``input_text``, ``task_type``,
``system_prompt``, ``use_l1``..., layer names such as ``L2_REDIS_EXACT``) so that its
clients keep working, plus what Helios adds: earlier conversation turns, the model, the
tenant and the temperature. Both build the :class:`~helios.messages.Request` the engine
would build, so an entry stored here answers the engine's calls and the other way round.

The cache fails open (:mod:`helios.cache.manager`): a store that is down turns a lookup
into a miss and a store into a no-op, both still answered 200, and ``/health`` names the
degraded layer. Only an invalidation that could not be carried out is an error (503): an
operator who asked for a purge must learn that it did not happen.

Input is bounded by :data:`LIMITS`, checked before any work: a body above its limit is 413
before it is read; a text above its limit is 413 naming the field; a malformed body is 422
naming the field (FastAPI's ``{"detail": [{"loc", "msg", "type"}]}``, which the 413s of
fields share). No user input reaches a 500. The hot path (``/lookup``) builds no registry
and no response model: the body is validated once, and the answer is written as JSON
straight from the manager's reports.

Every route knows its caller (:mod:`helios.server.auth`) and acts for the caller's tenant:
a lookup never sees, a store never writes and an invalidation never removes another
tenant's entries, and the L2 entries listed are the tenant's own. The ``tenant`` a body or
query names is honoured only for an admin key (another key naming another tenant: 403);
without one, an admin key acts for its own tenant, and an admin invalidation that names
no tenant spans them all. The counters (``/metrics``, ``/summary``, a layer's stats) are
the server's, across tenants: numbers, never an entry, a key or a tenant's name. Why a
store fails (its errors name file paths and ``host:port/db``) only an operator reads (an
admin key, or a call from this machine to a server without keys); other callers learn that
it fails.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import fields
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic_core import PydanticSerializationError, to_json
from starlette.responses import Response

from helios.cache.backends.base import EntryInfo
from helios.cache.keys import namespace_of
from helios.cache.manager import CacheManager
from helios.cache.reports import (
    API_LAYER_NAMES,
    CacheHealth,
    CacheLookup,
    L1Report,
    Layer,
    LayerReport,
)
from helios.cache.supplied import (
    handed_back,
    selection_problem,
    supplied_reply,
    supplied_request,
)
from helios.errors import CacheBackendError, ConfigError, UnknownModel
from helios.messages import Request
from helios.providers.registry import ProviderRegistry
from helios.server.auth import Authenticated, Caller
from helios.server.openapi import errors
from helios.server.routes.cache_bodies import (
    LIMITS,
    VALID_LAYERS,
    ConversationBody,
    HealthResult,
    InvalidateBody,
    InvalidateResult,
    LookupBody,
    LookupResult,
    StoreBody,
    StoreResult,
    parse_layer,
)
from helios.server.state import ServerState

PREFIX = "/api/v1/helios/cache"
UNKNOWN_PROVIDER = "unknown"
"""Where a model no provider knows is keyed (see ``_parse_model``)."""


# -- the routes -----------------------------------------------------------------------------
def router(state: ServerState) -> APIRouter:
    # FastAPI refuses a larger body (413) while reading it, before any parsing
    routes = APIRouter(prefix=PREFIX, tags=["cache"], max_body_size=LIMITS.body_bytes)

    def ready() -> tuple[CacheManager, ProviderRegistry]:
        if state.cache is None or state.registry is None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the response cache is disabled (cache.enabled is false)",
            )
        return state.cache, state.registry

    @routes.post(
        "/lookup",
        response_model=LookupResult,
        responses=errors(400, 401, 403, 413, 422, 503),
        summary="L2 exact, then L3 semantic; with what L1 (the prompt cache) will do",
    )
    async def lookup(body: LookupBody, caller: Authenticated) -> Response:
        manager, registry = ready()
        _check_conversation(body)
        provider, model = _parse_model(registry, body.model, "model")
        request = _request(body, body.model, caller.tenant_for(body.tenant))
        found = await manager.lookup(
            request,
            provider,
            model,
            use_l1=body.use_l1,
            use_l2=body.use_l2,
            use_l3=body.use_l3,
            similarity_threshold=body.similarity_threshold,
        )
        return _json(_lookup_answer(found))

    @routes.post(
        "/store",
        response_model=StoreResult,
        responses=errors(400, 401, 403, 413, 422, 503),
        summary="Cache a reply in L2 and L3 (and mark its prompt prefix warm in L1 if asked)",
    )
    async def store(body: StoreBody, caller: Authenticated) -> Response:
        manager, registry = ready()
        _check_conversation(body)
        _check_response(body.response_data)
        provider, model = _parse_model(registry, body.model_used, "model_used")
        request = _request(body, body.model_used, caller.tenant_for(body.tenant))
        reply = supplied_reply(
            body.response_data,
            provider,
            model,
            input_tokens=body.input_tokens,
            output_tokens=body.tokens_used,
        )
        asked: tuple[tuple[Layer, bool], ...] = (
            ("L1", body.store_in_l1),
            ("L2", body.store_in_l2),
            ("L3", body.store_in_l3),
        )
        layers = [layer for layer, wanted in asked if wanted]
        key = manager.exact.key_for(request, provider, model) if manager.exact else None
        stored = await manager.store(request, provider, model, reply, key=key, layers=layers)
        return _json({"layers_stored": [API_LAYER_NAMES[layer] for layer in stored], "key": key})

    @routes.get(
        "/metrics",
        responses=errors(401, 503),
        summary="Hit rates, savings and entries per layer since start-up",
    )
    async def metrics(caller: Authenticated) -> dict[str, Any]:
        manager, _ = ready()
        return await _metrics(manager, caller.operator)

    @routes.post(
        "/invalidate",
        response_model=InvalidateResult,
        responses=errors(
            400, 401, 403, 422, 503, why={503: "a store could not be purged; nothing is promised"}
        ),
        summary="Remove the entries of a key, tenant or task type, or all, from one layer or all",
    )
    async def invalidate(body: InvalidateBody, caller: Authenticated) -> InvalidateResult:
        manager, _ = ready()
        layer = parse_layer(body.layer) if body.layer is not None else None
        _check_selection(layer, body)
        tenant = _tenant_to_invalidate(caller, layer, body)
        try:
            removed = await manager.invalidate(
                layer=layer, key=body.key, tenant=tenant, task_type=body.task_type
            )
        except CacheBackendError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        counts = {API_LAYER_NAMES[name]: count for name, count in removed.items()}
        return InvalidateResult(removed=counts, total=sum(counts.values()))

    @routes.get(
        "/health",
        response_model=HealthResult,
        responses=errors(401, 503),
        summary="Each layer's store, probed now",
    )
    async def health(caller: Authenticated) -> dict[str, Any]:
        """``ok``, or ``degraded`` while a layer's store fails; always HTTP 200, because the
        cache fails open: a degraded layer only misses, and calls still get answered."""
        if state.cache is None:
            return _disabled_health()
        return _health(await state.cache.health(), caller.operator)

    @routes.get("/summary", responses=errors(401, 503), summary="Metrics and health in one answer")
    async def summary(caller: Authenticated) -> dict[str, Any]:
        manager, _ = ready()
        return {
            "metrics": await _metrics(manager, caller.operator),
            "health": _health(await manager.health(), caller.operator),
        }

    @routes.get(
        "/stats/layer/{layer}",
        responses=errors(401, 403, 404, 422, 503, why={404: f"not a layer: one of {VALID_LAYERS}"}),
        summary="One layer's counters, entries and configuration",
    )
    async def layer_stats(
        layer: Annotated[str, Path(examples=["L2", "L3_SEMANTIC"])],
        caller: Authenticated,
        tenant: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        task_type: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        limit: Annotated[int, Query(ge=0, le=100, description="L2: recent entries listed")] = 20,
    ) -> dict[str, Any]:
        """For L2, also the entries most recently hit (of a tenant / task type if given)."""
        manager, _ = ready()
        chosen = parse_layer(layer)
        if chosen is None:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"unknown layer '{layer}': one of {VALID_LAYERS}"
            )
        scope = caller.tenant_for(tenant) if tenant is not None or not caller.admin else None
        stats = await _layer_stats(manager, chosen, scope, task_type, limit)
        if not caller.operator:
            _hide_reasons(stats)
        return stats

    return routes


# -- request building and checks ------------------------------------------------------------
def _request(body: ConversationBody, spec: str | None, tenant: str) -> Request:
    return supplied_request(
        body.input_text,
        turns=body.messages,
        model=spec,
        system=body.system_prompt,
        task_type=body.task_type,
        tenant=tenant,
        temperature=body.temperature,
    )


def _parse_model(registry: ProviderRegistry, spec: str | None, field: str) -> tuple[str, str]:
    """Where a spec resolves, as the engine would key it. A model no provider knows (the
    reference design's clients name theirs, e.g. ``claude-opus-4``) keys as given under
    ``unknown``, so that its lookups find what its stores kept; its cost is unknown."""
    try:
        return registry.parse(spec or "")
    except UnknownModel as exc:
        given = (spec or "").strip()
        if given and not given.endswith(":"):
            return UNKNOWN_PROVIDER, given
        _refuse(status.HTTP_422_UNPROCESSABLE_CONTENT, (field,), str(exc), "value_error")
    except ConfigError as exc:  # an alias loop in the settings
        _refuse(status.HTTP_422_UNPROCESSABLE_CONTENT, (field,), str(exc), "value_error")


def _check_conversation(body: ConversationBody) -> None:
    _check_text("input_text", body.input_text, LIMITS.text_chars)
    if body.system_prompt is not None:
        _check_text("system_prompt", body.system_prompt, LIMITS.text_chars)
    if len(body.messages) > LIMITS.messages:
        message = f"messages: {len(body.messages)} turns, above the limit of {LIMITS.messages}"
        _refuse(status.HTTP_413_CONTENT_TOO_LARGE, ("messages",), message, "too_large")
    for index, turn in enumerate(body.messages):
        _check_text(f"messages.{index}.content", turn.content, LIMITS.text_chars)


def _check_response(response: str | dict[str, Any]) -> None:
    """The reply must say something, and fit (an object is measured as its JSON)."""
    text = response if isinstance(response, str) else json.dumps(response, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no store can keep it as text
        _refuse(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            ("response_data",),
            "response_data: holds text that is not valid Unicode (a lone surrogate)",
            "value_error",
        )
    if not response:
        _refuse(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            ("response_data",),
            "response_data: an empty reply is not worth caching",
            "value_error",
        )
    _check_text("response_data", text, LIMITS.response_chars)


def _check_text(field: str, text: str, limit: int) -> None:
    if len(text) > limit:
        location = tuple(int(part) if part.isdigit() else part for part in field.split("."))
        message = f"{field}: {len(text)} characters, above the limit of {limit}"
        _refuse(status.HTTP_413_CONTENT_TOO_LARGE, location, message, "too_large")


def _check_selection(layer: Layer | None, body: InvalidateBody) -> None:
    """Combinations the manager would silently ignore: an error names them instead."""
    problem = selection_problem(layer, key=body.key, tenant=body.tenant, task_type=body.task_type)
    if problem is not None:
        field, message = problem
        unprocessable = status.HTTP_422_UNPROCESSABLE_CONTENT
        _refuse(unprocessable, (field,), f"{field}: {message}", "value_error")


def _tenant_to_invalidate(caller: Caller, layer: Layer | None, body: InvalidateBody) -> str | None:
    """The tenant whose entries go: the body's for an admin key (none: every tenant's), the
    key's own for any other, which may neither name another's L2 key nor drop the warm
    prefixes of L1, which every tenant shares."""
    if caller.admin:
        return body.tenant
    forbidden = status.HTTP_403_FORBIDDEN
    if layer == "L1":
        raise HTTPException(forbidden, "L1 warm prefixes are shared: only an admin key drops them")
    if body.key is not None:
        namespace = namespace_of(body.key)
        if namespace is None or namespace[0] != caller.tenant:
            raise HTTPException(forbidden, f"that key is not an entry of tenant '{caller.tenant}'")
        return None  # a key selects one entry: the tenant is in it
    return caller.tenant_for(body.tenant)


def _refuse(code: int, location: tuple[str | int, ...], message: str, kind: str) -> NoReturn:
    """An error in FastAPI's validation shape, so clients read every refusal one way."""
    raise HTTPException(code, [{"loc": ["body", *location], "msg": message, "type": kind}])


# -- answers --------------------------------------------------------------------------------
_L1_FIELDS = tuple(field.name for field in fields(L1Report))
_LAYER_FIELDS = tuple(field.name for field in fields(LayerReport))


def _json(content: Mapping[str, Any]) -> Response:
    try:
        body = to_json(content)  # 4x faster than json.dumps on the hot path
    except PydanticSerializationError:  # text no UTF-8 can hold (a lone surrogate)
        body = json.dumps(content).encode()
    return Response(body, media_type="application/json")


def _lookup_answer(found: CacheLookup) -> dict[str, Any]:
    reply = found.reply
    return {
        "hit": reply is not None,
        "layer": API_LAYER_NAMES[found.layer] if found.layer is not None else None,
        "cached_response": handed_back(reply) if reply is not None else None,
        "confidence": found.confidence or 0.0,
        "l1_result": {name: getattr(found.l1, name) for name in _L1_FIELDS},
        "l2_result": {name: getattr(found.l2, name) for name in _LAYER_FIELDS},
        "l3_result": {name: getattr(found.l3, name) for name in _LAYER_FIELDS},
        "lookup_time_ms": found.lookup_time_ms,
        "tokens_saved": found.tokens_saved,
        "cost_saved": found.cost_saved_usd,
    }


HIDDEN = "failing (why: admin keys only)"
"""What a caller that is not an operator reads in place of a store's error."""
_SHOWN_TO_ALL = {"ok": "reachable", "degraded": HIDDEN, "disabled": "disabled"}


def _hide_reasons(stats: dict[str, Any]) -> None:
    if stats.get("error") is not None:
        stats["error"] = HIDDEN
    config = stats.get("config", {})
    if config.get("unavailable") is not None:
        config["unavailable"] = "unavailable (why: admin keys only)"
    if isinstance(config.get("backend"), str):
        config["backend"] = _kind(config["backend"])


def _kind(backend: str | None) -> str | None:
    """``"redis"`` of a store's name, whatever address a name may carry after it."""
    return None if backend is None else backend.split(" ", 1)[0]


async def _metrics(manager: CacheManager, detailed: bool) -> dict[str, Any]:
    snapshot = manager.snapshot()
    entries = await manager.entries()
    snapshot["layers"] = {API_LAYER_NAMES[k]: v for k, v in snapshot["layers"].items()}
    snapshot["last_errors"] = {
        API_LAYER_NAMES[k]: v if detailed or v is None else HIDDEN
        for k, v in snapshot["last_errors"].items()
    }
    snapshot["breakers"] = {API_LAYER_NAMES[k]: v for k, v in snapshot["breakers"].items()}
    for layer, count in entries.items():
        snapshot[f"{layer.lower()}_entries"] = count  # None: that store could not be counted
    # the reference design's summary reads these groupings: the same figures, grouped
    snapshot["savings"] = {
        "total_cost_saved_dollars": snapshot["total_cost_saved"],
        "total_tokens_saved": snapshot["total_tokens_saved"],
    }
    snapshot["storage"] = {f"{layer}_entries": count for layer, count in entries.items()}
    return snapshot


def _health(health: CacheHealth, detailed: bool) -> dict[str, Any]:
    return {
        "status": health.status,
        "layers": {
            API_LAYER_NAMES[layer]: {
                "status": layer_health.status,
                "backend": layer_health.backend if detailed else _kind(layer_health.backend),
                "detail": layer_health.detail if detailed else _SHOWN_TO_ALL[layer_health.status],
                "breaker": layer_health.breaker,
            }
            for layer, layer_health in health.layers.items()
        },
    }


def _disabled_health() -> dict[str, Any]:
    detail = "the response cache is disabled (cache.enabled is false)"
    layer = {"status": "disabled", "backend": None, "detail": detail}
    return {"status": "disabled", "layers": {name: layer for name in API_LAYER_NAMES.values()}}


async def _layer_stats(
    manager: CacheManager, layer: Layer, tenant: str | None, task_type: str | None, limit: int
) -> dict[str, Any]:
    entries = await manager.entries()
    answer: dict[str, Any] = {
        "layer": API_LAYER_NAMES[layer],
        "entries": entries[layer],
        "metrics": manager.metrics[layer].snapshot(),
    }
    if layer == "L1":
        planner = manager.planner
        answer["config"] = {
            "enabled": planner is not None,
            "ttl": planner.ttl if planner is not None else None,
        }
    elif layer == "L2":
        exact = manager.exact
        answer["config"] = {
            "enabled": exact is not None,
            "backend": exact.backend.name if exact else None,
            "ttl_s": exact.ttl_s if exact else None,
        }
        if exact is not None:
            answer["recent_entries"], answer["error"] = await _recent(
                manager, tenant, task_type, limit
            )
    else:
        semantic = manager.semantic
        answer["config"] = {"enabled": semantic is not None}
        if semantic is not None:
            settings = semantic.settings
            answer["config"].update(
                index=semantic.index.name,
                embedder=semantic.embedder.name,
                threshold=settings.threshold,
                task_thresholds=settings.task_thresholds,
                ttl_s=settings.ttl_s,
                max_temperature=settings.max_temperature,
                verify=settings.verify,
            )
            answer["counts"] = semantic.counts.snapshot()
        elif "L3" in manager.unavailable:
            answer["config"]["unavailable"] = manager.unavailable["L3"]
    return answer


async def _recent(
    manager: CacheManager, tenant: str | None, task_type: str | None, limit: int
) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The L2 entries most recently hit; ``(None, why)`` when the store cannot list them."""
    assert manager.exact is not None
    try:
        infos = await manager.exact.entries(tenant=tenant, task_type=task_type, limit=limit)
    except CacheBackendError as exc:
        return None, str(exc)
    return [_entry(info) for info in infos], None


def _entry(info: EntryInfo) -> dict[str, Any]:
    namespace = namespace_of(info.key)
    return {
        "key": info.key,
        "tenant": namespace[0] if namespace else None,
        "task_type": namespace[1] if namespace else None,
        "size_bytes": info.size_bytes,
        "access_count": info.access_count,
        "last_access": info.last_access,
        "created_at": info.created_at,
        "expires_at": info.expires_at,
    }
