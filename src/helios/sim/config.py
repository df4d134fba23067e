"""What a simulator instance is told at start-up: latency, reply length, seeds, faults.

Latency comes in two shapes (see :class:`LatencyProfile`): a per-token pace (``ttft_s``,
``tokens_per_s``, ``jitter``) for protocol and streaming tests, or a whole call's duration
drawn from a normal distribution (``total_mean_s``, ``total_sd_s``) for benchmarks that
replay measured stage latencies. :attr:`SimConfig.latency_by_model` gives models their own
profile, so one simulator can stand in for a fast and a slow model at once.

A :class:`Fault` is the same object whichever way it arrives: built in Python, posted as
JSON to ``/_sim/faults``, or written in an ``x-sim-fault`` request header such as
``rate_limit;retry_after=1`` (see :meth:`Fault.parse`). A :class:`FaultProfile` instead
gives each kind a rate: every request that brings no fault of its own draws one (or none)
from an RNG seeded by the config, so a faulty run can be replayed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ProtocolName = Literal["anthropic", "openai", "gemini"]
PROTOCOLS: tuple[ProtocolName, ...] = ("anthropic", "openai", "gemini")

FaultKind = Literal[
    "rate_limit",
    "server_error",
    "overloaded",
    "drop",
    "timeout",
    "auth",
    "bad_request",
    "connect",
    "stall",
    "slow",
]
# Kinds that replace the reply with an error status; the others act on a reply (or, for
# `connect`, on the connection).
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
    """How fast the simulated model answers, in one of two shapes.

    **Paced** (the default): ``ttft_s`` passes before the first content chunk, then each
    further chunk waits ``1 / tokens_per_s`` (``None``: no wait). ``jitter`` varies every
    delay by up to that fraction either way.

    **Drawn** (``total_mean_s`` set): each call's whole duration is drawn from a normal
    distribution with mean ``total_mean_s`` and standard deviation ``total_sd_s``, clamped
    to at least ``total_min_s`` (a normal draw can be negative). ``ttft_fraction`` of it
    passes before the first content chunk and the rest is spread evenly over the gaps
    between the chunks; a reply of one chunk or none waits the whole duration up front, and
    a plain (non-streamed) reply is sent after the whole duration. This reproduces measured
    stage latencies (mean +- sd) whatever the reply's length. The paced fields must then
    stay unset: one profile, one meaning.

    Draws come from an RNG seeded by ``seed``, else by the config's seed (see
    :attr:`SimConfig.latency_by_model` for how per-model profiles are seeded).
    """

    ttft_s: float = Field(default=0.0, ge=0.0)
    tokens_per_s: float | None = Field(default=None, gt=0.0)
    jitter: float = Field(default=0.0, ge=0.0, le=1.0)
    total_mean_s: float | None = Field(default=None, ge=0.0)
    total_sd_s: float = Field(default=0.0, ge=0.0)
    total_min_s: float = Field(default=0.0, ge=0.0)
    ttft_fraction: float = Field(default=0.15, ge=0.0, le=1.0)
    seed: int | None = None

    @property
    def drawn(self) -> bool:
        """Whether whole-call durations are drawn (``total_mean_s`` set) rather than paced."""
        return self.total_mean_s is not None

    @model_validator(mode="after")
    def _one_shape(self) -> LatencyProfile:
        # Compared with the defaults rather than checked as "given", so that a full dump
        # (model_dump_json, as a config file for `helios sim --config`) loads back.
        if self.drawn:
            paced = self._changed("ttft_s", "tokens_per_s", "jitter")
            if paced:
                raise ValueError(
                    f"total_mean_s draws the whole duration; {', '.join(paced)} cannot be "
                    "combined with it (use ttft_fraction for the first token)"
                )
        else:
            drawn = self._changed("total_sd_s", "total_min_s", "ttft_fraction")
            if drawn:
                raise ValueError(f"{', '.join(drawn)} need total_mean_s")
        return self

    def _changed(self, *names: str) -> list[str]:
        fields = type(self).model_fields
        return [name for name in names if getattr(self, name) != fields[name].default]


class Fault(_Frozen):
    """A failure to inject into a reply.

    - ``rate_limit``: 429 with ``retry-after: retry_after_s``.
    - ``server_error``: 500.  ``overloaded``: 529 (Anthropic) or 503 (OpenAI, Gemini).
    - ``auth``: 401.  ``bad_request``: 400.
    - ``drop``: a stream sends ``after_chunks`` content chunks, then the connection is
      closed mid-body; a plain reply sends its headers and closes before the body.
    - ``timeout``: waits ``seconds`` before answering normally.
    - ``connect``: closes the connection without answering at all, as a refused or reset
      connection looks to a client.
    - ``stall``: a stream sends its headers, then holds ``seconds`` before the first token
      (a first-token timeout for any client that waits less); a plain reply waits
      ``seconds`` before answering.
    - ``slow``: every chunk (a plain reply: every token) waits ``seconds_per_chunk`` more.
    """

    kind: FaultKind
    retry_after_s: float = Field(default=1.0, ge=0.0)
    after_chunks: int = Field(default=0, ge=0)
    seconds: float = Field(default=30.0, ge=0.0)
    seconds_per_chunk: float = Field(default=0.5, ge=0.0)
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


# The kinds a profile draws, in drawing order; `server_error` draws 500 or an overloaded
# status (503, Anthropic's 529) evenly.
PROFILE_KINDS: tuple[str, ...] = ("rate_limit", "server_error", "connect", "stall", "drop", "slow")
# How `--fault-rate R` splits R among them: throttling and drops most, as seen in practice.
DEFAULT_MIX: dict[str, float] = {
    "rate_limit": 0.25,
    "server_error": 0.2,
    "connect": 0.1,
    "stall": 0.1,
    "drop": 0.25,
    "slow": 0.1,
}


class FaultProfile(_Frozen):
    """Rates of faults drawn per request, for requests that bring no fault of their own.

    Each rate is the share of requests that get that fault: ``rate_limit`` (429 with
    ``retry-after: retry_after_s``), ``server_error`` (500, or 503/529 overloaded),
    ``connect`` (the connection closed unanswered), ``stall`` (no first token for
    ``stall_s``), ``drop`` (a stream cut after ``drop_after_chunks`` chunks, a plain reply
    after its headers) and ``slow`` (``slow_s_per_chunk`` more per chunk). The rates add up
    to at most 1. Draws come from an RNG seeded by ``seed``, else by the config's seed, so
    the same requests in the same order meet the same faults.
    """

    rate_limit: float = Field(default=0.0, ge=0.0, le=1.0)
    server_error: float = Field(default=0.0, ge=0.0, le=1.0)
    connect: float = Field(default=0.0, ge=0.0, le=1.0)
    stall: float = Field(default=0.0, ge=0.0, le=1.0)
    drop: float = Field(default=0.0, ge=0.0, le=1.0)
    slow: float = Field(default=0.0, ge=0.0, le=1.0)
    retry_after_s: float = Field(default=1.0, ge=0.0)
    stall_s: float = Field(default=60.0, ge=0.0)
    drop_after_chunks: int = Field(default=1, ge=0)
    slow_s_per_chunk: float = Field(default=0.5, ge=0.0)
    seed: int | None = None

    @classmethod
    def mix(cls, rate: float, **overrides: float | int | None) -> FaultProfile:
        """``rate`` of all requests faulted, split by :data:`DEFAULT_MIX`; ``overrides``
        set single fields (a kind's own rate, ``stall_s``, ...)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"the fault rate must be from 0 to 1, not {rate:g}")
        values: dict[str, float | int | None] = {
            kind: rate * share for kind, share in DEFAULT_MIX.items()
        }
        values.update(overrides)
        return cls.model_validate(values)

    @property
    def total(self) -> float:
        """The share of requests that get some fault."""
        return sum(self.rate(kind) for kind in PROFILE_KINDS)

    def rate(self, kind: str) -> float:
        value: float = getattr(self, kind)
        return value

    @model_validator(mode="after")
    def _at_most_one(self) -> FaultProfile:
        # A little slack: 0.1 + 0.2 + ... in floating point can land just above 1.
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {self.total:g}; at most 1 is possible")
        return self

    def fault(self, kind: str, overloaded: bool) -> Fault:
        """The fault a draw of ``kind`` injects."""
        if kind == "rate_limit":
            return Fault(kind="rate_limit", retry_after_s=self.retry_after_s)
        if kind == "server_error":
            return Fault(kind="overloaded" if overloaded else "server_error")
        if kind == "stall":
            return Fault(kind="stall", seconds=self.stall_s)
        if kind == "drop":
            return Fault(kind="drop", after_chunks=self.drop_after_chunks)
        if kind == "slow":
            return Fault(kind="slow", seconds_per_chunk=self.slow_s_per_chunk)
        return Fault(kind="connect")


class SimConfig(_Frozen):
    """Settings of one simulator instance.

    ``reply_tokens`` words make a reply (fewer when the request's max tokens is lower).
    ``seed`` changes every reply text and, unless the latency profile has its own, the
    jitter. Prompt-cache minimums come from the model catalogue; ``cache_min_tokens``
    overrides them per model id and ``default_cache_min_tokens`` covers unknown ids.
    ``implicit_cache_ttl_s`` is how long OpenAI/Gemini-style automatic prefixes stay warm
    after their last use. ``record_limit`` bounds the log of received requests.
    ``faults`` gives faults rates, drawn per request (see :class:`FaultProfile`).

    ``latency`` applies to every model not named in ``latency_by_model``, whose keys are
    model ids as the request sends them (``"gpt-5"``, or any made-up id such as
    ``"thesis"``). Each model named there draws from its own RNG, so its delays do not
    depend on how its calls interleave with other models' calls. That RNG is seeded by the
    profile's ``seed`` when set (two models given the same profile and seed draw the same
    sequence, which a benchmark can use to pair its arms), else by the config's seed and
    the model id together.
    """

    latency: LatencyProfile = LatencyProfile()
    latency_by_model: dict[str, LatencyProfile] = Field(default_factory=dict)
    reply_tokens: int = Field(default=24, ge=1)
    seed: int = 0
    default_cache_min_tokens: int = Field(default=1024, ge=1)
    cache_min_tokens: dict[str, int] = Field(default_factory=dict)
    implicit_cache_ttl_s: float = Field(default=300.0, gt=0.0)
    record_limit: int = Field(default=1000, ge=0)
    faults: FaultProfile = FaultProfile()

    def latency_for(self, model: str | None) -> LatencyProfile:
        """The profile that paces replies of ``model``."""
        if model is not None and model in self.latency_by_model:
            return self.latency_by_model[model]
        return self.latency
