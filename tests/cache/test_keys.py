"""Exact-match keys: everything that decides the answer is in, nothing else is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helios.cache.keys import namespace_of, prefix_for, request_key
from helios.messages import (
    CacheControl,
    CacheDirectives,
    CallContext,
    Message,
    Request,
    SamplingParams,
    ToolSpec,
)

BASE = Request(
    messages=(
        Message(role="user", content="What is the capital of France?"),
        Message(role="assistant", content="Paris."),
        Message(role="user", content="And of Spain?"),
    ),
    system="Be brief.",
    params=SamplingParams(temperature=0.2, top_p=0.9, max_tokens=64, stop=("\n",), seed=7),
    task_type="qa",
    context=CallContext(tenant="acme", persona="thesis"),
)


def changed(**update: Any) -> Request:
    return BASE.model_copy(update=update)


def with_params(**update: Any) -> Request:
    return changed(params=BASE.params.model_copy(update=update))


def key(request: Request, provider: str = "anthropic", model: str = "claude-x") -> str:
    return request_key(request, provider, model)


ANSWER_CHANGES = {
    "system": changed(system="Be verbose."),
    "no system": changed(system=None),
    "last message": changed(messages=(*BASE.messages[:2], Message(role="user", content="Italy?"))),
    "earlier message": changed(
        messages=(Message(role="user", content="Capital of Peru?"), *BASE.messages[1:])
    ),
    "role": changed(
        messages=(BASE.messages[0], Message(role="user", content="Paris."), BASE.messages[2])
    ),
    "fewer messages": changed(messages=BASE.messages[2:]),
    "temperature": with_params(temperature=0.3),
    "default temperature": with_params(temperature=None),
    "top_p": with_params(top_p=0.5),
    "max_tokens": with_params(max_tokens=65),
    "stop": with_params(stop=("\n", "END")),
    "seed": with_params(seed=8),
    "task_type": changed(task_type="summarise"),
    "tenant": BASE.with_context(tenant="globex"),
    "response schema": changed(response_schema={"type": "object"}),
    "tools": changed(tools=(ToolSpec(name="lookup"),)),
    "cache namespace": changed(cache=CacheDirectives(namespace="eu")),
}


@pytest.mark.parametrize("variant", ANSWER_CHANGES.values(), ids=ANSWER_CHANGES.keys())
def test_every_field_that_decides_the_answer_changes_the_key(variant: Request) -> None:
    assert key(variant) != key(BASE)


def test_long_texts_are_hashed_whole() -> None:
    one = changed(messages=(Message(role="user", content="x" * 100_000 + "a"),))
    two = changed(messages=(Message(role="user", content="x" * 100_000 + "b"),))
    assert key(one) != key(two)


def test_provider_and_resolved_model_change_the_key() -> None:
    assert key(BASE, provider="openai") != key(BASE)
    assert key(BASE, model="claude-y") != key(BASE)


def test_message_boundaries_are_not_ambiguous() -> None:
    one = changed(messages=(Message(role="user", content="ab"),))
    two = changed(
        messages=(
            Message(role="user", content="a"),
            Message(role="assistant", content=""),
            Message(role="user", content="b"),
        )
    )
    assert key(one) != key(two)


COST_ONLY = {
    "message cache marker": changed(
        messages=(*BASE.messages[:2], BASE.messages[2].model_copy(update={"cache": CacheControl()}))
    ),
    "1h cache marker": changed(
        messages=(
            BASE.messages[0].model_copy(update={"cache": CacheControl(ttl="1h")}),
            *BASE.messages[1:],
        )
    ),
    "system cache marker": changed(system_cache=CacheControl(ttl="1h")),
    "metadata": changed(metadata={"trace_id": "abc", "attempt": 2}),
    "model spec alias": changed(model="fast"),
    "persona": BASE.with_context(persona="antithesis"),
    "no persona": BASE.with_context(persona=None),
    "task and stage": BASE.with_context(task_id="t-1", stage="thesis", pass_number=2),
    "priority": BASE.with_context(priority="high"),
    "caller key": BASE.with_context(key_id="key-1"),
    "cache directives": changed(cache=CacheDirectives(lookup=False, store=False, max_age_s=60)),
}


@pytest.mark.parametrize("variant", COST_ONLY.values(), ids=COST_ONLY.keys())
def test_cost_and_bookkeeping_fields_leave_the_key_alone(variant: Request) -> None:
    assert key(variant) == key(BASE)


def test_request_fields_are_all_accounted_for() -> None:
    """A new Request field must be decided: in the key (the default) or listed as cost-only."""
    assert set(Request.model_fields) == {
        "messages",
        "model",
        "system",
        "system_cache",
        "params",
        "task_type",
        "response_schema",
        "tools",
        "tool_choice",
        "metadata",
        "context",
        "cache",
    }
    assert set(CallContext.model_fields) == {
        "task_id",
        "stage",
        "persona",
        "pass_number",
        "priority",
        "tenant",
        "key_id",
    }
    assert set(SamplingParams.model_fields) == {
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "seed",
    }


def test_key_shape_and_stability_within_a_process() -> None:
    first = key(BASE)
    assert first == key(BASE.model_copy()) == key(Request.model_validate(BASE.model_dump()))
    namespace, tenant, task_type, digest = first.split(":")
    assert (namespace, tenant, task_type) == ("l2", "acme", "qa")
    assert len(digest) == 64 and int(digest, 16) >= 0


def test_key_is_stable_across_processes() -> None:
    """Hash randomisation or dict order must not leak in: another interpreter agrees."""
    script = "from tests.cache.test_keys import BASE, key\nprint(key(BASE))\n"
    keys = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
            cwd=Path(__file__).resolve().parents[2],
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert keys == {key(BASE)}


def test_colons_in_tenant_and_task_type_keep_namespaces_apart() -> None:
    tricky = changed(task_type="c").with_context(tenant="a:b")
    plain = changed(task_type="b:c").with_context(tenant="a")
    tricky_key, plain_key = key(tricky), key(plain)
    assert tricky_key.startswith(prefix_for("a:b"))
    assert not tricky_key.startswith(prefix_for("a"))
    assert not plain_key.startswith(prefix_for("a:b"))
    assert plain_key.startswith(prefix_for("a", "b:c"))
    assert len(tricky_key.split(":")) == len(plain_key.split(":")) == 4
    assert namespace_of(tricky_key) == ("a:b", "c")
    assert namespace_of(plain_key) == ("a", "b:c")


@pytest.mark.parametrize("tenant", ["%3A", "100%", "%25:%", "東京", ":"])
def test_escaping_round_trips(tenant: str) -> None:
    found = key(changed(task_type=tenant).with_context(tenant=tenant))
    assert namespace_of(found) == (tenant, tenant)
    assert found.startswith(prefix_for(tenant, tenant))


def test_prefixes() -> None:
    assert prefix_for() == "l2:"
    assert prefix_for("acme") == "l2:acme:"
    assert prefix_for("acme", "qa") == "l2:acme:qa:"
    assert key(BASE).startswith(prefix_for("acme", "qa"))
    with pytest.raises(ValueError, match="tenant"):
        prefix_for(task_type="qa")


def test_namespace_of_rejects_other_keys() -> None:
    assert namespace_of("evidence:abc") is None
    assert namespace_of("l3:a:b:c") is None
