"""How the simulated model answers a request that offers tools or asks for JSON by schema.

The rules are the same whichever protocol carried the request:

- **A tool call** comes when the request offers function tools, its tool choice allows a
  call (``auto``, ``required``/``any``, or a named tool; not ``none``) and its last turn
  is not a tool result. The reply is then exactly one call, of the named tool (Gemini:
  the first of ``allowedFunctionNames``) or else of the first tool offered, and no text.
- **After a tool result** the reply is text (or JSON by schema), whatever the tool choice,
  so a client's tool loop always ends.
- **Arguments** are a document made up from the tool's parameter schema
  (:mod:`helios.sim.schema`), every property filled in, drawn from an RNG seeded by the
  prompt: one prompt, one call, one id. They stream in pieces of four characters; a call
  is never cut by ``max_tokens`` or a stop sequence.
- **JSON by schema** (OpenAI ``response_format`` ``json_schema``, Gemini
  ``responseSchema``/``responseJsonSchema``): the reply's text is a document made up from
  the schema the same way, streamed in four-character (one-token) pieces and cut by
  ``max_tokens`` and stop sequences as plain text is.

Usage counts tool definitions, the calls of earlier assistant turns and tool results as
prompt, as the protocols' parsers put them into the prompt's segments.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from helios.sim.schema import example
from helios.sim.text import Reply, Segment, ToolCallReply, finished, prompt_key, prompt_rng

ToolMode = Literal["auto", "none", "required", "tool"]
PIECE_CHARACTERS = 4
"""One token's worth of text (see :func:`helios.sim.text.count_tokens`) per streamed piece."""

ANY_JSON_OBJECT: Mapping[str, Any] = {"type": "object", "properties": {"reply": {"type": "string"}}}
"""What a request for "some JSON object" (OpenAI's ``json_object``) gets."""


@dataclass(frozen=True)
class SimTool:
    """A function the request offers: its name and its parameters' JSON schema."""

    name: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolOffer:
    """The request's function tools and its tool choice (``name`` for ``mode="tool"``)."""

    tools: tuple[SimTool, ...] = ()
    mode: ToolMode = "auto"
    name: str | None = None

    def __post_init__(self) -> None:
        # A ValueError is answered as the protocol's 400, as a real API refuses such a call.
        if self.mode == "tool" and self.name not in {tool.name for tool in self.tools}:
            raise ValueError(f"tool_choice names '{self.name}', which is not among the tools")
        if self.mode == "required" and not self.tools:
            raise ValueError("tool_choice requires a tool call, but no tools are offered")

    def tool_to_call(self) -> SimTool | None:
        """The tool the simulated model calls, if it calls one."""
        if not self.tools or self.mode == "none":
            return None
        if self.mode == "tool":
            return next(tool for tool in self.tools if tool.name == self.name)
        return self.tools[0]


def planned_reply(
    segments: Sequence[Segment],
    *,
    offer: ToolOffer,
    after_tool_result: bool,
    response_schema: Mapping[str, Any] | None,
    max_tokens: int | None,
    stop: Sequence[str],
    seed: int,
) -> Reply | None:
    """The tool call or JSON document that answers this prompt; ``None``: plain text."""
    tool = None if after_tool_result else offer.tool_to_call()
    if tool is not None:
        return tool_call_reply(tool, segments, seed=seed)
    if response_schema is not None:
        return json_reply(response_schema, segments, max_tokens=max_tokens, stop=stop, seed=seed)
    return None


def tool_call_reply(tool: SimTool, segments: Sequence[Segment], *, seed: int) -> Reply:
    arguments = example(tool.parameters, prompt_rng(segments, seed))
    if not isinstance(arguments, dict):
        arguments = {}  # a schema that is not an object's still gets an arguments object
    call = ToolCallReply(
        name=tool.name,
        arguments=arguments,
        pieces=split(json.dumps(arguments, ensure_ascii=False)),
        key=prompt_key(segments, seed),
    )
    return Reply(pieces=(), finish="tool_call", tool_call=call)


def json_reply(
    schema: Mapping[str, Any],
    segments: Sequence[Segment],
    *,
    max_tokens: int | None,
    stop: Sequence[str],
    seed: int,
) -> Reply:
    document = example(schema, prompt_rng(segments, seed))
    pieces = split(json.dumps(document, ensure_ascii=False))
    cut = max_tokens is not None and max_tokens < len(pieces)
    return finished(pieces[:max_tokens] if cut else pieces, cut_by_length=cut, stop=stop)


def split(text: str) -> tuple[str, ...]:
    """``text`` in one-token pieces (the last may be shorter); an empty text is one piece."""
    if not text:
        return ("",)
    return tuple(
        text[start : start + PIECE_CHARACTERS] for start in range(0, len(text), PIECE_CHARACTERS)
    )
