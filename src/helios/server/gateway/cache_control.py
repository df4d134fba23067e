"""What a client may tell the cache about its call, and what the cache tells it back.

Request controls (any protocol):

- ``Cache-Control: no-cache`` — never answer from the cache (the reply is still stored);
  ``no-store`` — never store the reply; ``max-age=N`` — answer only from entries younger
  than N seconds (HTTP's meanings);
- ``X-Helios-Cache-Namespace: NAME`` — entries kept apart from every other namespace;
- ``X-Helios-Cache-Semantic: off`` — exact (L2) hits only;
- LiteLLM's body controls, for clients that migrate: ``"cache": {"no-cache": true,
  "no-store": true, "s-maxage": N, "ttl": N, "namespace": "..."}`` (``ttl``: how long the
  stored reply may answer).

Response: the standard ``Cache-Status`` (RFC 9211), ``hit`` with the layer (and a
semantic hit's similarity) or ``fwd=miss`` / ``fwd=bypass``, and ``Age`` for a hit. A
miss whose near candidates the L3 verifier refused says why in ``detail`` ("number 7pm vs
7am").
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from helios.cache.reports import CacheLookup
from helios.cache.semantic import REFUSED
from helios.messages import CacheDirectives
from helios.server.gateway.errors import invalid

CACHE_NAME = "helios"
NAMESPACE_HEADER = "x-helios-cache-namespace"
SEMANTIC_HEADER = "x-helios-cache-semantic"
_OFF = frozenset({"off", "false", "0", "no"})
_ON = frozenset({"on", "true", "1", "yes"})
_LITELLM_FIELDS = frozenset({"no-cache", "no-store", "s-maxage", "ttl", "namespace"})


def directives_from(headers: Mapping[str, str], body_cache: Any) -> CacheDirectives:
    """The directives of the request's headers and LiteLLM-style ``cache`` body field;
    raises a 400 naming the header or field that makes no sense."""
    fields: dict[str, Any] = {}
    for directive in headers.get("cache-control", "").split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            fields["lookup"] = False
        elif name == "no-store":
            fields["store"] = False
        elif name == "max-age":
            fields["max_age_s"] = _seconds("Cache-Control max-age", value)
    if NAMESPACE_HEADER in headers:
        fields["namespace"] = headers[NAMESPACE_HEADER].strip() or None
    if SEMANTIC_HEADER in headers:
        fields["semantic"] = _switch("X-Helios-Cache-Semantic", headers[SEMANTIC_HEADER])
    if body_cache is not None:
        fields.update(_litellm(body_cache))
    try:
        return CacheDirectives.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise invalid(f"cache.{first['loc'][0]}", first["msg"]) from None


def _litellm(body_cache: Any) -> dict[str, Any]:
    if not isinstance(body_cache, dict):
        raise invalid("cache", 'expected an object such as {"no-cache": true}')
    unknown = sorted(set(body_cache) - _LITELLM_FIELDS)
    if unknown:
        raise invalid(f"cache.{unknown[0]}", f"unknown; use {', '.join(sorted(_LITELLM_FIELDS))}")
    fields: dict[str, Any] = {}
    if body_cache.get("no-cache") is True:
        fields["lookup"] = False
    if body_cache.get("no-store") is True:
        fields["store"] = False
    if "s-maxage" in body_cache:
        fields["max_age_s"] = _seconds("cache.s-maxage", body_cache["s-maxage"])
    if "ttl" in body_cache:
        fields["ttl_s"] = _seconds("cache.ttl", body_cache["ttl"])
    if "namespace" in body_cache:
        fields["namespace"] = body_cache["namespace"]
    return fields


def _seconds(where: str, value: object) -> float:
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise invalid(where, f"expected a number of seconds, not {value!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise invalid(where, f"expected a number of seconds, not {value!r}")
    return seconds


def _switch(where: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _OFF:
        return False
    if lowered in _ON:
        return True
    raise invalid(where, f"expected on or off, not {value!r}")


def cache_status(lookup: CacheLookup | None, directives: CacheDirectives) -> dict[str, str]:
    """``Cache-Status`` (RFC 9211) and, for a hit, ``Age``."""
    if lookup is None:
        return {"Cache-Status": f"{CACHE_NAME}; fwd=bypass; detail=disabled"}
    reply = lookup.reply
    if reply is None:
        if not directives.lookup:
            return {"Cache-Status": f"{CACHE_NAME}; fwd=bypass"}
        if lookup.l3.checked and REFUSED in lookup.l3.reason:
            # say why a near question was not served: the verifier's first difference
            refused = _sf_string(f"L3 {lookup.l3.reason}")
            return {"Cache-Status": f"{CACHE_NAME}; fwd=miss; detail={refused}"}
        return {"Cache-Status": f"{CACHE_NAME}; fwd=miss"}
    detail: str = lookup.layer or "cache"
    if lookup.layer == "L3" and lookup.l3.similarity is not None:
        detail = f"L3 similarity={lookup.l3.similarity:.3f}"
    age = max(0, int(time.time() - reply.created_at))
    return {"Cache-Status": f"{CACHE_NAME}; hit; detail={_sf_string(detail)}", "Age": str(age)}


def _sf_string(text: str) -> str:
    """An RFC 8941 string: printable ASCII, quotes and backslashes escaped (a header value
    must not carry the question's other characters)."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in text[:200])
    return '"' + printable.replace("\\", "\\\\").replace('"', '\\"') + '"'
