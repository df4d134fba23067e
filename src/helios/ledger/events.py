"""Typed, versioned events: what happened during a task, step by step.

Every event carries the schema ``version``, its ``type``, the ``task_id`` it belongs to and
a ``timestamp`` (seconds since the epoch). ``task_started`` stamps the active feature flags
so that any later analysis can split tasks by them.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1
FlagValue = bool | int | float | str


class _Event(BaseModel):
    # NaN/inf as strings: pydantic would write null, which cannot be read back as a float
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")

    version: int = SCHEMA_VERSION
    task_id: str
    timestamp: float = Field(default_factory=time.time)


class TaskStarted(_Event):
    type: Literal["task_started"] = "task_started"
    kind: str = "dialectic"
    goal: str
    documents: int = 0
    flags: dict[str, FlagValue] = Field(default_factory=dict)
    queue_wait_s: float | None = None
    """A durable task: seconds between its submission and a worker starting it."""


class TaskQueued(_Event):
    """A durable task was accepted (``POST /api/v1/tasks``) and waits for a worker."""

    type: Literal["task_queued"] = "task_queued"
    kind: str
    goal: str
    queue: str
    priority: int
    tenant: str = "default"
    key_id: str | None = None
    documents: int = 0


class TaskRecovered(_Event):
    """A durable task runs again after its worker stopped (a restart, or a takeover)."""

    type: Literal["task_recovered"] = "task_recovered"
    executor_id: str
    attempt: int
    previous_executor_id: str | None = None


class TaskCancellation(_Event):
    """Someone cancelled a durable task (it ends with an ``error`` of kind cancelled)."""

    type: Literal["task_cancelled"] = "task_cancelled"
    status_before: str
    tenant: str = "default"
    key_id: str | None = None


class EvidenceGathered(_Event):
    type: Literal["evidence_gathered"] = "evidence_gathered"
    documents: int
    chunks: int
    passages: int
    embedded_chunks: int
    from_cache: bool
    duration_s: float


class PersonaLLMRun(_Event):
    """One persona call: where it went, how long it took, what it cost."""

    type: Literal["persona_llm_run"] = "persona_llm_run"
    persona: str
    stage: str
    pass_number: int = 1
    provider: str
    model: str
    streaming: bool
    ttft_s: float
    duration_s: float
    perceived_improvement: float
    """1 - ttft/duration: the share of the wait a streaming reader does not spend idle."""
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None
    cost_saved_usd: float | None = None
    """What a cache hit saved: the original call's cost at catalogue prices."""
    time_saved_s: float | None = None
    """What a cache hit saved in waiting: the original call's duration (when known)."""
    cache_layer: str | None = None
    """The response-cache layer that answered (``"L2"``), or ``None`` for a provider call."""


class AsyncFallback(_Event):
    type: Literal["async_fallback"] = "async_fallback"
    reason: str


class CacheLookup(_Event):
    type: Literal["cache_lookup"] = "cache_lookup"
    persona: str
    layer: str
    hit: bool


class GateVerdict(_Event):
    type: Literal["gate_verdict"] = "gate_verdict"
    pass_number: int
    passed: bool
    evidence_ok: bool
    evidence_problems: list[str] = Field(default_factory=list)
    judge_pass: bool
    judge_score: float
    judge_valid: bool
    reasons: list[str] = Field(default_factory=list)


class SecondPass(_Event):
    type: Literal["second_pass"] = "second_pass"
    pass_number: int
    feedback: str


class TaskFinished(_Event):
    type: Literal["task_finished"] = "task_finished"
    success: bool
    duration_s: float
    accepted_pass: int | None = None
    passes: int = 0
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


class FlagChanged(_Event):
    """A feature flag's runtime override was set or removed (``new=None``), and by whom."""

    type: Literal["flag_changed"] = "flag_changed"
    task_id: str = "-"
    flag: str
    old: FlagValue | None
    new: FlagValue | None
    reason: str
    actor: str


class GovernorDecision(_Event):
    type: Literal["governor_decision"] = "governor_decision"
    decision: Literal["allow", "downgrade", "defer", "reject"]
    account: str
    window: str = ""
    details: dict[str, FlagValue] = Field(default_factory=dict)


class RouteDecision(_Event):
    type: Literal["route_decision"] = "route_decision"
    persona: str | None = None
    model: str
    tier: str
    score: float
    reason: str = ""


class GatewayRequest(_Event):
    """One request to the gateway (``helios serve``'s ``/v1/...`` endpoints): who sent it
    (tenant, key id — never the key — and the client's end user), what it asked for and how
    it ended. The engine's events of the same call share its ``task_id``."""

    type: Literal["gateway_request"] = "gateway_request"
    endpoint: str
    tenant: str
    key_id: str | None = None
    end_user: str | None = None
    model: str
    """The model spec the client asked for (``auto``, an alias, ``provider:model``)."""
    streaming: bool = False
    status: int
    duration_s: float
    cache_layer: str | None = None
    error: str | None = None


INPUT_ERROR = "input_error"
"""The ``kind`` of an error in what a task was given (a prompt too long for the model):
the caller's to fix, no failure of Helios (the health monitor's error rate leaves it out)."""
INTERRUPTED = "interrupted"
"""What ledgers written before :data:`CANCELLED` existed hold for a Ctrl-C: read the same."""


CANCELLED = "cancelled"
"""The ``kind`` of the error a task ends with when it was cancelled (Ctrl-C, a client that
went away, a cancelled DAG run): neither a success nor a failure. Summaries count it apart
and leave it out of success rates; the health monitor leaves it out of its error rate."""

CANCELLED_KINDS = frozenset({CANCELLED, INTERRUPTED})
"""Error kinds that mean a cancellation."""


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    kind: str
    message: str
    stage: str | None = None


Event = Annotated[
    TaskStarted
    | EvidenceGathered
    | PersonaLLMRun
    | AsyncFallback
    | CacheLookup
    | GateVerdict
    | SecondPass
    | TaskFinished
    | FlagChanged
    | GovernorDecision
    | RouteDecision
    | GatewayRequest
    | TaskQueued
    | TaskRecovered
    | TaskCancellation
    | ErrorEvent,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
"""Parses any event from its JSON form: ``EVENT_ADAPTER.validate_json(line)``."""
