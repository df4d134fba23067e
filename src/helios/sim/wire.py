"""What every simulated protocol provides, and the small helpers they share.

A protocol turns a request body into a :class:`SimCall`, and a reply plus usage into a
JSON body or a :class:`StreamParts` (SSE bytes split into preamble, one part per content
chunk, and trailer, so the response can pace chunks and drop the connection between them).
A :class:`SimCall` carries the tools a request offers and the schema it asks JSON by;
:mod:`helios.sim.tools` decides what the reply is.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from helios.sim.cache import PromptUsage
from helios.sim.config import FaultKind, ProtocolName
from helios.sim.text import Reply, Segment
from helios.sim.tools import ToolOffer

JSONObject = dict[str, Any]
_T = TypeVar("_T")


class BadRequest(ValueError):
    """The request body does not follow the protocol; answered with a 400."""


@dataclass(frozen=True)
class SimCall:
    """A request as the simulator needs it, whichever protocol carried it."""

    model: str
    segments: tuple[Segment, ...]
    max_tokens: int | None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False  # OpenAI's stream_options.include_usage
    tools: ToolOffer = field(default_factory=ToolOffer)
    after_tool_result: bool = False  # the last turn is a tool's result
    response_schema: Mapping[str, Any] | None = None  # JSON by this schema, not text


@dataclass(frozen=True)
class StreamParts:
    """An SSE reply: ``pieces`` holds one encoded event (or more) per content chunk."""

    preamble: tuple[bytes, ...]
    pieces: tuple[bytes, ...]
    trailer: tuple[bytes, ...]


@dataclass(frozen=True)
class ErrorReply:
    status: int
    body: JSONObject
    headers: Mapping[str, str] = field(default_factory=dict)


class WireProtocol(ABC):
    """One provider's wire format. Instances hold no state."""

    name: ProtocolName
    explicit_cache: bool  # True: cache_control breakpoints; False: automatic prefixes

    @abstractmethod
    def parse(self, body: Mapping[str, Any], model: str | None = None) -> SimCall:
        """The call in ``body``; ``model`` comes from the URL where the protocol puts it there."""

    @abstractmethod
    def body(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> JSONObject:
        """The whole reply as one JSON body."""

    @abstractmethod
    def stream(self, call: SimCall, reply: Reply, usage: PromptUsage, number: int) -> StreamParts:
        """The reply as server-sent events."""

    @abstractmethod
    def error(self, kind: FaultKind, message: str | None, retry_after_s: float) -> ErrorReply:
        """The protocol's error status and body for an error fault kind."""


def sse(data: Mapping[str, Any] | str, event: str | None = None) -> bytes:
    """One server-sent event (``event:`` line optional), terminated by a blank line."""
    payload = data if isinstance(data, str) else dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def dumps(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def need(body: Mapping[str, Any], key: str, kind: type[_T], where: str = "") -> _T:
    """``body[key]``, which must be present and of ``kind``."""
    value = want(body, key, kind, where, default=None)
    if value is None:
        raise BadRequest(f"{where}{key}: field required")
    return value


def want(
    body: Mapping[str, Any], key: str, kind: type[_T], where: str = "", *, default: _T | None
) -> _T | None:
    """``body[key]`` if present and not null (then it must be of ``kind``), else ``default``."""
    value = body.get(key)
    if value is None:
        return default
    # bool is an int in Python, but no JSON API accepts true as a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise BadRequest(f"{where}{key}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def positive_int(body: Mapping[str, Any], key: str, where: str = "") -> int | None:
    value = want(body, key, int, where, default=None)
    if value is not None and value < 1:
        raise BadRequest(f"{where}{key}: must be at least 1")
    return value


def stop_list(value: object, key: str) -> tuple[str, ...]:
    """Stop sequences given as one string or a list of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise BadRequest(f"{key}: expected a string or a list of strings")


def schema_object(value: object, where: str) -> Mapping[str, Any]:
    """A JSON schema given in the request: an object, or absent (any object)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"{where}: expected a JSON schema object")
    return value


def block_text(block: Mapping[str, Any]) -> str:
    """The countable text of a content block: its text, else its JSON without cache marks."""
    text = block.get("text")
    if isinstance(text, str):
        return text
    return dumps({k: v for k, v in block.items() if k != "cache_control"})
