"""Tool calls through every remote adapter, against the simulator's tool behaviour.

:class:`ToolContract` is mixed into each adapter's contract class beside
:class:`~tests.providers.remote.RemoteContract`; the simulator calls the named tool (else
the first) when the tool choice allows a call and answers a tool result with text.
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from helios.errors import ProviderUnavailable
from helios.messages import Completion, Message, Request, ToolCall, ToolChoice, ToolSpec
from helios.providers.base import StreamAssembler
from helios.sim import Fault, SimServer
from tests.providers.remote import Connect, collect


class Weather(BaseModel):
    city: str
    days: int = Field(ge=1, le=7)
    unit: str = Field(json_schema_extra={"enum": ["celsius", "fahrenheit"]})
    hourly: bool = False


class Forecast(BaseModel):
    title: str
    days: list[Weather]


WEATHER = ToolSpec(
    name="get_weather", description="The weather ahead", parameters=Weather.model_json_schema()
)
CLOCK = ToolSpec(
    name="get_time",
    parameters={"type": "object", "properties": {"zone": {"type": "string"}}, "required": []},
)
QUESTION = Message(role="user", content="What is the weather in Oslo?")


def asking(*, choice: ToolChoice | None = None, after: tuple[Message, ...] = ()) -> Request:
    return Request(messages=(QUESTION, *after), tools=(WEATHER, CLOCK), tool_choice=choice)


def answered(call: ToolCall, result: str = "Sunny, 21 degrees.") -> tuple[Message, ...]:
    """The call's assistant turn and its tool result, to follow the question."""
    return (
        Message(role="assistant", content="", tool_calls=(call,)),
        Message(role="tool", content=result, tool_call_id=call.id),
    )


class ToolContract:
    """Tool calls and the tool loop, through the adapter's official SDK."""

    async def test_a_tool_call_comes_back_with_arguments_by_its_schema(
        self, connect: Connect
    ) -> None:
        completion = await connect().complete(asking())
        assert completion.finish_reason == "tool_calls"
        assert completion.text == ""
        [call] = completion.tool_calls
        assert call.name == "get_weather" and call.id
        weather = Weather.model_validate_json(call.arguments)
        assert weather.unit == "celsius"
        assert set(json.loads(call.arguments)) == set(Weather.model_fields)
        assert completion.usage.input_tokens > 0 and completion.usage.output_tokens > 0

    async def test_a_streamed_tool_call_assembles_to_the_same_call(self, connect: Connect) -> None:
        provider = connect()
        completion = await provider.complete(asking())
        chunks = await collect(provider.stream(asking()))
        assembler = StreamAssembler(provider.name, provider.model)
        for chunk in chunks:
            assembler.add(chunk)
        assert assembler.tool_calls == completion.tool_calls
        assert not assembler.text
        assert chunks[-1].finish_reason == "tool_calls"
        assert chunks[-1].usage == completion.usage
        assert chunks[0].tool_calls[0].name == "get_weather"  # the first piece names it

    async def test_a_tool_stream_cut_midway_starts_over(
        self, connect: Connect, sim: SimServer
    ) -> None:
        # Nothing was run yet (the call was never complete), so trying again is safe, as
        # long as the consumer is told to drop the fragments it has.
        whole = await connect().complete(asking())
        provider = connect(max_retries=2)
        sim.state.inject(Fault(kind="drop", after_chunks=2), times=1)
        chunks = await collect(provider.stream(asking()))
        [restart] = [index for index, chunk in enumerate(chunks) if chunk.restart]
        assert restart >= 1 and "attempt 1 of 3 failed" in (chunks[restart].restart or "")
        assembler = StreamAssembler(provider.name, provider.model)
        for chunk in chunks[restart + 1 :]:
            assembler.add(chunk)
        assert assembler.tool_calls == whole.tool_calls
        assert sim.state.stats.total_requests == 3

    async def test_a_tool_stream_cut_without_retries_fails(
        self, connect: Connect, sim: SimServer
    ) -> None:
        provider = connect(max_retries=0)
        sim.state.inject(Fault(kind="drop", after_chunks=2), times=1)
        with pytest.raises(ProviderUnavailable):
            await collect(provider.stream(asking()))
        assert sim.state.stats.total_requests == 1

    async def test_a_tool_result_gets_a_text_answer(self, connect: Connect) -> None:
        provider = connect()
        [call] = (await provider.complete(asking())).tool_calls
        follow_up = asking(after=answered(call), choice=ToolChoice(mode="auto"))
        completion = await provider.complete(follow_up)
        assert completion.finish_reason == "stop" and not completion.tool_calls
        assert completion.text
        streamed = await collect(provider.stream(follow_up))
        assert "".join(chunk.text for chunk in streamed) == completion.text
        # The tool definitions and both tool turns count as prompt.
        assert completion.usage.total_input_tokens > 150

    @pytest.mark.parametrize(
        ("choice", "expected"),
        [
            (ToolChoice(mode="none"), None),
            (ToolChoice(mode="required"), "get_weather"),
            (ToolChoice(mode="tool", name="get_time"), "get_time"),
        ],
    )
    async def test_the_tool_choice_is_honoured(
        self, connect: Connect, choice: ToolChoice, expected: str | None
    ) -> None:
        completion = await connect().complete(asking(choice=choice))
        if expected is None:
            assert completion.text and completion.finish_reason == "stop"
            assert not completion.tool_calls
        else:
            assert [call.name for call in completion.tool_calls] == [expected]
            assert completion.finish_reason == "tool_calls"


def structured(completion: Completion) -> Forecast:
    return Forecast.model_validate_json(completion.text)
