"""``GET /v1/models``: the catalogue (and ``auto``), with whether each model can run here."""

from __future__ import annotations

from typing import Any

from helios.providers.registry import AUTO_SPEC
from helios.runtime import Runtime
from helios.server.auth import Caller


def listing(runtime: Runtime, caller: Caller) -> dict[str, Any]:
    """OpenAI's model list; each entry adds ``helios``: provider, tier, aliases, whether it
    is ready (SDK, key, local file) and why not. A key limited to some models sees those."""
    registry = runtime.registry
    data: list[dict[str, Any]] = [
        {
            "id": "auto",
            "object": "model",
            "created": 0,
            "owned_by": "helios",
            "helios": {"ready": True, "routes": "the economic router chooses per call"},
        }
    ]
    for entry in runtime.catalog:
        problem = registry.unready(f"{entry.provider}:{entry.id}")
        data.append(
            {
                "id": entry.id,
                "object": "model",
                "created": 0,
                "owned_by": entry.provider,
                "helios": {
                    "provider": entry.provider,
                    "tier": entry.tier,
                    "aliases": list(entry.aliases),
                    "context_window": entry.context_window,
                    "ready": problem is None,
                    "not_ready_because": problem,
                },
            }
        )
    if caller.models is not None:
        allowed = set(caller.models)
        data = [item for item in data if _names(item) & allowed]
    return {"object": "list", "data": data}


def _names(item: dict[str, Any]) -> set[str]:
    """Every spec that names a listed model: its id, ``provider:id`` and its aliases."""
    if item["id"] == "auto":
        return {"auto", AUTO_SPEC}
    return {item["id"], f"{item['owned_by']}:{item['id']}", *item["helios"]["aliases"]}
