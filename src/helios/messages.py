"""The typed core every part of Helios speaks: requests in, chunks and completions out.

All models are frozen: a request that went into a cache key or a ledger event can never
change afterwards.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["user", "assistant", "tool"]
CacheTTL = Literal["5m", "1h"]
FinishReason = Literal["stop", "length", "tool_calls", "error", "cancelled", "other"]
Priority = Literal["high", "normal"]
ToolChoiceMode = Literal["auto", "none", "required", "tool"]
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CacheControl(_Frozen):
    """A prompt-cache breakpoint: the prefix up to and including this block may be cached."""

    ttl: CacheTTL = "5m"


class ToolSpec(_Frozen):
    """A function the model may call: its name, what it does, its arguments' JSON schema."""

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class ToolChoice(_Frozen):
    """Whether the model may (``auto``), must not (``none``), must (``required``) call a
    tool, or must call the one named (``tool``)."""

    mode: ToolChoiceMode = "auto"
    name: str | None = Field(default=None, pattern=TOOL_NAME_PATTERN)

    @model_validator(mode="after")
    def _a_named_tool_has_a_name(self) -> ToolChoice:
        if (self.mode == "tool") != (self.name is not None):
            raise ValueError("name the tool exactly when mode is 'tool'")
        return self


class ToolCall(_Frozen):
    """A call the model made: ``arguments`` is the JSON text as the model wrote it."""

    id: str
    name: str
    arguments: str = "{}"


class Message(_Frozen):
    """One conversation turn. ``cache`` marks an Anthropic ``cache_control`` breakpoint.

    An assistant turn may carry the ``tool_calls`` it made (its ``content`` may then be
    empty); a ``tool`` turn is one call's result, naming it by ``tool_call_id``.
    """

    role: Role
    content: str
    cache: CacheControl | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_fields_fit_the_role(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError("only an assistant turn carries tool_calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool turn, and only a tool turn, names its tool_call_id")
        return self


class SamplingParams(_Frozen):
    """Everything that shapes sampling; ``None`` leaves the provider's default."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: tuple[str, ...] = ()
    seed: int | None = None


class CacheDirectives(_Frozen):
    """What the caller allows the response cache to do with this call (HTTP
    ``Cache-Control`` and the like). None of it changes the answer; ``namespace`` keeps
    entries apart like a sub-tenant."""

    lookup: bool = True
    """``False`` (``no-cache``): never answer from the cache (the reply is still stored)."""
    store: bool = True
    """``False`` (``no-store``): never store the reply."""
    max_age_s: float | None = Field(default=None, ge=0)
    """Answer only from entries younger than this (``max-age``)."""
    semantic: bool = True
    """``False``: exact (L2) hits only, never a semantic (L3) one."""
    ttl_s: float | None = Field(default=None, gt=0)
    """How long the stored reply may answer (instead of the layers' configured TTLs)."""
    namespace: str | None = Field(default=None, max_length=200)


class CallContext(_Frozen):
    """Who a call is for and where it stands: set by every caller, read by the governor, the
    router and the ledger. It never changes the answer, so it is not part of a cache key;
    only ``tenant`` separates cache entries (one tenant never sees another's)."""

    task_id: str | None = None
    """The task (a dialectic run, a DAG run, one ``ask``) whose events this call joins."""
    stage: str | None = None
    """Where in the task: a pipeline stage (``thesis``) or a DAG node id."""
    persona: str | None = None
    pass_number: int = Field(default=1, ge=1)
    priority: Priority = "normal"
    tenant: str = "default"
    key_id: str | None = None
    """The API key the call came in with (the gateway's), for budgets and the ledger."""


class Request(_Frozen):
    """One model call, before any provider-specific translation.

    ``model`` is a model spec: ``"provider:model"``, a catalogue id or an alias; empty means
    the configured default model.
    """

    messages: tuple[Message, ...]
    model: str = ""
    system: str | None = None
    system_cache: CacheControl | None = None
    params: SamplingParams = SamplingParams()
    task_type: str = "general"
    response_schema: dict[str, Any] | None = None
    """A JSON schema the reply must follow, where the provider can enforce one (llama.cpp by
    grammar, OpenAI and Gemini natively); others only see it described in the prompt."""
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice | None = None
    """``None``: the provider's default (``auto`` when there are tools)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Provider hints that change the cost, never the answer (L1's ``prompt_cache_key``)."""
    context: CallContext = CallContext()
    cache: CacheDirectives = CacheDirectives()

    @field_validator("messages")
    @classmethod
    def _needs_a_user_turn(cls, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        if not messages:
            raise ValueError("a request needs at least one message")
        if messages[-1].role not in ("user", "tool"):
            raise ValueError("the last message must come from the user (or be a tool result)")
        return messages

    @model_validator(mode="after")
    def _tool_choice_names_a_tool(self) -> Request:
        choice = self.tool_choice
        named = {tool.name for tool in self.tools}
        if choice is not None and choice.mode == "tool" and choice.name not in named:
            raise ValueError(f"tool_choice names '{choice.name}', which is not among tools")
        if choice is not None and choice.mode == "required" and not self.tools:
            raise ValueError("tool_choice 'required' needs tools")
        return self

    @classmethod
    def of(cls, prompt: str, **fields: Any) -> Request:
        """A single-turn request: ``Request.of("Hi", model="local", system="Be brief")``."""
        return cls(messages=(Message(role="user", content=prompt),), **fields)

    def with_model(self, model: str) -> Request:
        return self.model_copy(update={"model": model})

    def with_context(self, **fields: Any) -> Request:
        """The same request with some context fields replaced (``task_id=``, ``stage=``, ...)."""
        context = CallContext.model_validate({**self.context.model_dump(), **fields})
        return self.model_copy(update={"context": context})


class Usage(_Frozen):
    """Token counts, split the way providers bill them.

    ``input_tokens`` are the uncached prompt tokens (Anthropic's meaning); prompt tokens read
    from or written to the provider's prompt cache are counted separately, so
    ``total_input_tokens`` is their sum whatever the provider.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_tokens(self) -> int:
        return self.total_input_tokens + self.output_tokens


class ToolCallDelta(_Frozen):
    """A piece of a streamed tool call: the first piece of call ``index`` names its ``id``
    and ``name``; the pieces' ``arguments`` join into the call's JSON text."""

    index: int = Field(ge=0)
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Chunk(_Frozen):
    """A piece of a streamed reply. The last chunk of a stream carries usage and finish,
    and, from wrappers that choose among providers (router, fallback chain), who answered."""

    text: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    provider: str | None = None
    model: str | None = None
    restart: str | None = None
    """Set on a marker (no text) from a retrying stream: the attempt before it failed, for
    this reason, and the reply starts over; text received before it is void."""


class Completion(_Frozen):
    """A finished reply with its measurements.

    ``ttft_s`` and ``duration_s`` are measured by the engine around the provider call; for a
    non-streamed call the first token arrives with the whole reply, so ``ttft_s`` equals
    ``duration_s``. ``cost_usd`` is ``None`` when the model is not in the catalogue, and 0
    for a reply served from the response cache (what it saved is reported separately).
    """

    text: str
    usage: Usage
    model: str
    provider: str
    finish_reason: FinishReason = "stop"
    tool_calls: tuple[ToolCall, ...] = ()
    ttft_s: float = 0.0
    duration_s: float = 0.0
    cost_usd: float | None = None
    streamed: bool = False
    cache_layer: str | None = None
    """The response-cache layer that answered (``"L2"``); ``None`` when the provider did."""
    saved_usd: float | None = None
    """For a cache hit: what the original call cost, at today's catalogue prices."""
    saved_s: float | None = None
    """For a cache hit: how long the original call took (``None`` when unknown)."""
    retries: tuple[str, ...] = ()
    """Why each failed attempt before this reply failed (a retried call), oldest first."""

    @property
    def perceived_improvement(self) -> float:
        """1 - TTFT / duration: the share of the wait a streaming reader already sees text."""
        if self.duration_s <= 0:
            return 0.0
        return max(0.0, 1.0 - self.ttft_s / self.duration_s)
