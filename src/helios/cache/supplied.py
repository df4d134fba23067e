"""Entries supplied from outside the engine: the REST API's ``/store`` and ``helios cache warm``.

Both describe a question and its answer in the reference design's flat fields (input text,
system prompt, earlier turns, model, tenant, task type). This module turns those fields into
the :class:`~helios.messages.Request` the engine would have made, so that an entry stored
from outside is found by the engine's own lookups (same L2 key, same L3 context), and checks
an invalidation's selection once for both front ends.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from helios.cache.exact import CachedReply
from helios.cache.reports import Layer
from helios.messages import CallContext, Message, Request, SamplingParams, Usage


class Turn(BaseModel):
    """An earlier turn of the conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str


def supplied_request(
    input_text: str,
    *,
    turns: Sequence[Turn] = (),
    model: str | None = None,
    system: str | None = None,
    task_type: str = "general",
    tenant: str = "default",
    temperature: float | None = None,
) -> Request:
    """The request whose last user message is ``input_text``, after the earlier ``turns``."""
    messages = [Message(role=turn.role, content=turn.content) for turn in turns]
    messages.append(Message(role="user", content=input_text))
    return Request(
        messages=tuple(messages),
        model=model or "",
        system=system,
        params=SamplingParams(temperature=temperature),
        task_type=task_type,
        context=CallContext(tenant=tenant),
    )


def supplied_reply(
    response: str | dict[str, Any],
    provider: str,
    model: str,
    *,
    input_tokens: int = 0,
    output_tokens: int = 0,
) -> CachedReply:
    """A whole reply (one chunk) as ``provider:model`` gave it, priced by its token counts.
    A JSON object is kept as its JSON text and handed back as an object."""
    as_object = isinstance(response, dict)
    text = json.dumps(response, ensure_ascii=False) if as_object else str(response)
    return CachedReply(
        text=text,
        chunks=(text,),
        usage=Usage(input_tokens=input_tokens, output_tokens=output_tokens),
        model=model,
        provider=provider,
        created_at=time.time(),
        json_object=as_object,
    )


def handed_back(reply: CachedReply) -> str | Any:
    """What the cache API returns for ``reply``: its text, or the object it was stored as."""
    return json.loads(reply.text) if reply.json_object else reply.text


def selection_problem(
    layer: Layer | None, *, key: str | None, tenant: str | None, task_type: str | None
) -> tuple[str, str] | None:
    """``(field, message)`` for a selection the manager would silently ignore, else ``None``.

    A key is an L2 key and selects one entry; warm prefixes (L1) have no tenant or task type.
    """
    if key is not None and (tenant is not None or task_type is not None):
        return "key", "select by key, or by tenant/task_type, not both"
    if key is not None and layer in ("L1", "L3"):
        return "key", f"a key is an L2 key: it selects nothing in {layer}"
    if layer == "L1" and (tenant is not None or task_type is not None):
        return "layer", "L1 warm prefixes belong to no tenant or task type"
    return None
