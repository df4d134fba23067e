"""Tool calls and structured output through the gateway, end to end: the official SDKs in
front, Helios in the middle, the simulator's OpenAI and Anthropic wire protocols behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest
from pydantic import BaseModel

from helios.sim import SimServer
from tests.server.gateway_fixtures import Served, gateway_settings, serve

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
def gateway(sim: SimServer, tmp_path: Path) -> Iterator[Served]:
    with serve(gateway_settings(sim.base_url, tmp_path)) as served:
        yield served


def openai_client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize("model", ["openai:gpt-5.4-mini", "sonnet", "gemini:gemini-2.5-flash"])
def test_a_tool_call_then_its_result_then_the_answer(gateway: Served, model: str) -> None:
    with openai_client(gateway) as sdk:
        first = sdk.chat.completions.create(model=model, messages=ASK, tools=[WEATHER])
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        [call] = choice.message.tool_calls or []
        assert call.function.name == "get_weather"
        assert isinstance(json.loads(call.function.arguments)["city"], str)
        answer = sdk.chat.completions.create(
            model=model,
            tools=[WEATHER],
            messages=[
                *ASK,
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
            ],
        )
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.choices[0].message.content


def test_a_streamed_tool_call_and_its_replay_from_the_cache(gateway: Served) -> None:
    def streamed() -> tuple[str, str, str]:
        with openai_client(gateway) as sdk:
            response = sdk.chat.completions.with_raw_response.create(
                model="openai:gpt-5.4-mini", messages=ASK, tools=[WEATHER], stream=True
            )
            name, arguments, finish = "", "", ""
            for chunk in response.parse():
                if not chunk.choices:
                    continue
                for delta in chunk.choices[0].delta.tool_calls or []:
                    name += (delta.function.name or "") if delta.function else ""
                    arguments += (delta.function.arguments or "") if delta.function else ""
                finish = chunk.choices[0].finish_reason or finish
            return f"{name}{arguments}{finish}", response.headers["cache-status"], arguments

    call, status, arguments = streamed()
    assert call.startswith("get_weather") and call.endswith("tool_calls")
    assert isinstance(json.loads(arguments), dict) and status == "helios; fwd=miss"
    replayed, replay_status, _ = streamed()
    assert replayed == call and replay_status == 'helios; hit; detail="L2"'


class City(BaseModel):
    name: str
    population: int


def test_structured_output_parses_into_the_schema(gateway: Served) -> None:
    with openai_client(gateway) as sdk:
        parsed = sdk.chat.completions.parse(
            model="openai:gpt-5.4-mini",
            messages=[{"role": "user", "content": "A large city, please."}],
            response_format=City,
        )
    city = parsed.choices[0].message.parsed
    assert isinstance(city, City) and city.name


def test_anthropic_tools_whole_and_streamed(gateway: Served) -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
        }
    ]
    with anthropic.Anthropic(base_url=gateway.url, api_key="unused", max_retries=0) as sdk:
        message = sdk.messages.create(model="sonnet", max_tokens=100, messages=ASK, tools=tools)
        assert message.stop_reason == "tool_use"
        [use] = [block for block in message.content if block.type == "tool_use"]
        assert use.name == "get_weather" and isinstance(use.input["city"], str)
        with sdk.messages.stream(model="opus", max_tokens=100, messages=ASK, tools=tools) as stream:
            final = stream.get_final_message()
        [streamed] = [block for block in final.content if block.type == "tool_use"]
        assert streamed.name == "get_weather" and isinstance(streamed.input["city"], str)
        answer = sdk.messages.create(
            model="sonnet",
            max_tokens=100,
            tools=tools,
            messages=[
                *ASK,
                {"role": "assistant", "content": [use.model_dump()]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "Sunny"}],
                },
            ],
        )
    assert answer.stop_reason in ("end_turn", "max_tokens") and answer.content[0].type == "text"


def test_responses_with_a_function_tool(gateway: Served) -> None:
    spec = WEATHER["function"]
    assert isinstance(spec, dict)
    tool = {"type": "function", **spec}
    with openai_client(gateway) as sdk:
        response = sdk.responses.create(model="sonnet", input="Weather in Paris?", tools=[tool])
        [call] = [item for item in response.output if item.type == "function_call"]
        assert call.name == "get_weather" and json.loads(call.arguments)
        events = list(
            sdk.responses.create(
                model="sonnet", input="Weather in Rome?", tools=[tool], stream=True
            )
        )
    done = events[-1].response
    assert events[-1].type == "response.completed"
    assert [item.type for item in done.output] == ["function_call"]
    kinds = {event.type for event in events}
    assert "response.function_call_arguments.delta" in kinds


def test_the_local_model_refuses_tools_with_a_clear_400(gateway: Served) -> None:
    with openai_client(gateway) as sdk, pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(model="local", messages=ASK, tools=[WEATHER])
    assert "cannot call tools" in str(refused.value)


def test_auto_sends_a_call_with_tools_to_a_model_that_can_call_them(
    sim: SimServer, tmp_path: Path
) -> None:
    settings = gateway_settings(
        sim.base_url, tmp_path, tiers={"strong": "opus", "fast": "sonnet", "local": "local"}
    )
    with serve(settings) as served, openai_client(served) as sdk:
        response = sdk.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Hi"}], tools=[WEATHER]
        )
    assert response.headers["x-helios-model"] == "anthropic:claude-sonnet-5-5"
    assert response.parse().choices[0].finish_reason == "tool_calls"
