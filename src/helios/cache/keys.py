"""Exact-match cache keys: ``l2:<tenant>:<task_type>:<sha256>``.

The hash covers everything that decides the answer: the resolved provider and model, the
system prompt, every message (role and content), every sampling parameter, the task type
and the tenant. It leaves out what changes only the cost or the bookkeeping: prompt-cache
breakpoints (``Message.cache``, ``Request.system_cache``), ``metadata``, the call context
(task, stage, persona, priority, key: who asks never changes the answer; only its tenant
separates entries), the caller's cache directives (but their ``namespace``, which
separates entries like a sub-tenant) and the model *spec* (``Request.model``, which may be
an alias; the resolved provider and model are hashed instead, so two aliases of one model
share entries).

The request is hashed from its full dump minus those exclusions, so a field added to
:class:`~helios.messages.Request` later is part of the key unless someone decides
otherwise: a forgotten field costs hit rate, never a wrong answer.

Tenant and task type also appear in clear in the key so that ``scan(prefix)`` can find them
for invalidation; ``%`` and ``:`` in them are percent-encoded so that a tenant called
``"a:b"`` can never fall inside the namespace of tenant ``"a"``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from helios.messages import Request

L2_NAMESPACE = "l2"
KEY_VERSION = 2
"""Bump when the hashed payload changes shape, so old entries miss instead of colliding."""

# cost and bookkeeping only; see the module docstring
_NOT_IN_KEY: Mapping[str, bool | Mapping[str, set[str]]] = {
    "model": True,
    "metadata": True,
    "context": True,
    "cache": True,
    "system_cache": True,
    "messages": {"__all__": {"cache"}},
}


def escape_part(part: str) -> str:
    """Percent-encode ``%`` and ``:`` so that a key part never contains a separator."""
    return part.replace("%", "%25").replace(":", "%3A")


def unescape_part(part: str) -> str:
    return part.replace("%3A", ":").replace("%25", "%")


def request_fingerprint(request: Request, provider: str, model: str) -> str:
    """The canonical JSON that the key hashes: stable across processes and runs."""
    payload = request.model_dump(mode="json", exclude=_NOT_IN_KEY)
    payload.update(
        {
            "key_version": KEY_VERSION,
            "provider": provider,
            "resolved_model": model,
            "tenant": request.context.tenant,
            "namespace": request.cache.namespace,
        }
    )
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: Request, provider: str, model: str) -> str:
    """The exact-match key of ``request`` once it resolved to ``provider:model``."""
    # surrogatepass: a lone surrogate in user text must hash, not fail the call
    canonical = request_fingerprint(request, provider, model).encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(canonical).hexdigest()
    return f"{prefix_for(request.context.tenant, request.task_type)}{digest}"


def prefix_for(tenant: str | None = None, task_type: str | None = None) -> str:
    """The key prefix of a tenant, or of one task type of a tenant; all L2 keys with neither.

    A task type on its own has no prefix (tenant comes first in the key); use
    :func:`namespace_of` on scanned keys to select it across tenants.
    """
    if tenant is None:
        if task_type is not None:
            raise ValueError("a task_type prefix needs a tenant; filter with namespace_of")
        return f"{L2_NAMESPACE}:"
    prefix = f"{L2_NAMESPACE}:{escape_part(tenant)}:"
    return prefix if task_type is None else f"{prefix}{escape_part(task_type)}:"


def namespace_of(key: str) -> tuple[str, str] | None:
    """``(tenant, task_type)`` of an L2 key, or ``None`` when ``key`` is not one."""
    parts = key.split(":")
    if len(parts) != 4 or parts[0] != L2_NAMESPACE:
        return None
    return unescape_part(parts[1]), unescape_part(parts[2])
