"""What a simulator instance is told at start-up: latency, reply length, seeds, faults.

A :class:`Fault` is the same object whichever way it arrives: built in Python, posted as
JSON to ``/_sim/faults``, or written in an ``x-sim-fault`` request header such as
``rate_limit;retry_after=1`` (see :meth:`Fault.parse`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ProtocolName = Literal["anthropic", "openai", "gemini"]
PROTOCOLS: tuple[ProtocolName, ...] = ("anthropic", "openai", "gemini")

FaultKind = Literal[
    "rate_limit", "server_error", "overloaded", "drop", "timeout", "auth", "bad_request"
]
# Kinds that replace the reply with an error status; `drop` and `timeout` act on a reply.
ERROR_KINDS: frozenset[str] = frozenset(
    {"rate_limit", "server_error", "overloaded", "auth", "bad_request"}
)

# Short names accepted in the header, so `retry_after=1` works as well as `retry_after_s=1`.
_HEADER_ALIASES = {
    "retry_after": "retry_after_s",
    "chunks": "after_chunks",
    "after": "after_chunks",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LatencyProfile(_Frozen):
    """How fast the simulated model answers.

    ``ttft_s`` passes before the first content chunk, then each further chunk waits
    ``1 / tokens_per_s`` (``None``: no wait). ``jitter`` varies every delay by up to that
    fraction either way, drawn from an RNG seeded by ``seed`` (or the config's seed).
    """

    ttft_s: float = Field(default=0.0, ge=0.0)
    tokens_per_s: float | None = Field(default=None, gt=0.0)
    jitter: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int | None = None


class Fault(_Frozen):
    """A failure to inject into a reply.

    - ``rate_limit``: 429 with ``retry-after: retry_after_s``.
    - ``server_error``: 500.  ``overloaded``: 529 (Anthropic) or 503 (OpenAI, Gemini).
    - ``auth``: 401.  ``bad_request``: 400.
    - ``drop``: a stream sends ``after_chunks`` content chunks, then the connection is
      closed mid-body; a plain reply sends its headers and closes before the body.
    - ``timeout``: waits ``seconds`` before answering normally.
    """

    kind: FaultKind
    retry_after_s: float = Field(default=1.0, ge=0.0)
    after_chunks: int = Field(default=0, ge=0)
    seconds: float = Field(default=30.0, ge=0.0)
    message: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """A fault from header syntax: ``kind[;name=value]...``, e.g. ``drop;after_chunks=3``."""
        kind, *params = (part.strip() for part in spec.split(";"))
        fields: dict[str, str] = {"kind": kind}
        for param in params:
            if not param:
                continue
            name, sep, value = param.partition("=")
            if not sep:
                raise ValueError(f"fault parameter '{param}' is not name=value")
            fields[_HEADER_ALIASES.get(name.strip(), name.strip())] = value.strip()
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(step) for step in first["loc"]) or "fault"
            raise ValueError(f"bad fault '{spec}': {where}: {first['msg']}") from exc


class FaultOrder(Fault):
    """The body of ``POST /_sim/faults``: a fault plus how often and for which protocol.

    ``times: null`` keeps the fault firing until ``/_sim/reset``.
    """

    times: int | None = Field(default=1, ge=1)
    protocol: ProtocolName | None = None

    def fault(self) -> Fault:
        return Fault.model_validate(self.model_dump(exclude={"times", "protocol"}))


class SimConfig(_Frozen):
    """Settings of one simulator instance.

    ``reply_tokens`` words make a reply (fewer when the request's max tokens is lower).
    ``seed`` changes every reply text and, unless the latency profile has its own, the
    jitter. Prompt-cache minimums come from the model catalogue; ``cache_min_tokens``
    overrides them per model id and ``default_cache_min_tokens`` covers unknown ids.
    ``implicit_cache_ttl_s`` is how long OpenAI/Gemini-style automatic prefixes stay warm
    after their last use. ``record_limit`` bounds the log of received requests.
    """

    latency: LatencyProfile = LatencyProfile()
    reply_tokens: int = Field(default=24, ge=1)
    seed: int = 0
    default_cache_min_tokens: int = Field(default=1024, ge=1)
    cache_min_tokens: dict[str, int] = Field(default_factory=dict)
    implicit_cache_ttl_s: float = Field(default=300.0, gt=0.0)
    record_limit: int = Field(default=1000, ge=0)
