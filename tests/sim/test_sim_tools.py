"""Tool calls and JSON by schema in the three protocols, through the official SDKs and raw
HTTP: one call when the tool choice allows it, text after a tool result."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types
from pydantic import BaseModel, Field

ANTHROPIC_MODEL = "claude-opus-4-8"
OPENAI_MODEL = "gpt-5"
GEMINI_MODEL = "gemini-2.5-flash"


class Weather(BaseModel):
    city: str
    days: int = Field(ge=1, le=7)
    unit: str = Field(json_schema_extra={"enum": ["celsius", "fahrenheit"]})
    hourly: bool = False


class Forecast(BaseModel):
    title: str
    days: list[Weather]


WEATHER = Weather.model_json_schema()
TIME: dict[str, Any] = {"type": "object", "properties": {"zone": {"type": "string"}}}
QUESTION = "What is the weather in Oslo?"


def openai_tools() -> list[Any]:
    return [
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
        {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
    ]


def openai_create(client: openai.OpenAI, **fields: Any) -> Any:
    fields.setdefault("messages", [{"role": "user", "content": QUESTION}])
    return client.chat.completions.create(model=OPENAI_MODEL, tools=openai_tools(), **fields)


# --- OpenAI ---------------------------------------------------------------------------


def test_openai_calls_the_first_tool_with_arguments_by_its_schema(
    openai_client: openai.OpenAI,
) -> None:
    completion = openai_create(openai_client)
    [choice] = completion.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather"
    weather = Weather.model_validate_json(call.function.arguments)
    assert weather.unit == "celsius"
    assert set(json.loads(call.function.arguments)) == set(Weather.model_fields)
    assert call.id.startswith("call_") and openai_create(openai_client).choices[0] == choice


def test_openai_streams_a_call_as_a_named_opening_and_argument_pieces(
    openai_client: openai.OpenAI,
) -> None:
    plain = openai_create(openai_client).choices[0].message.tool_calls[0]
    chunks = list(openai_create(openai_client, stream=True, stream_options={"include_usage": True}))
    first = chunks[0].choices[0].delta
    assert first.role == "assistant" and first.content is None
    [opening] = first.tool_calls or []
    assert (opening.index, opening.id, opening.type) == (0, plain.id, "function")
    assert opening.function is not None and opening.function.name == "get_weather"
    pieces = [chunk.choices[0].delta.tool_calls for chunk in chunks[1:-2]]
    assert len(pieces) > 3
    assert all(p and p[0].index == 0 and p[0].id is None and p[0].function for p in pieces)
    arguments = "".join(p[0].function.arguments or "" for p in pieces if p and p[0].function)
    assert arguments == plain.function.arguments
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("none", None),
        ("auto", "get_weather"),
        ("required", "get_weather"),
        ({"type": "function", "function": {"name": "get_time"}}, "get_time"),
    ],
)
def test_openai_honours_the_tool_choice(
    openai_client: openai.OpenAI, choice: Any, expected: str | None
) -> None:
    message = openai_create(openai_client, tool_choice=choice).choices[0].message
    if expected is None:
        assert message.tool_calls is None and message.content
    else:
        assert [call.function.name for call in message.tool_calls] == [expected]


def test_openai_answers_a_tool_result_with_text(openai_client: openai.OpenAI) -> None:
    call = openai_create(openai_client).choices[0].message.tool_calls[0]
    messages: list[Any] = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees."},
    ]
    completion = openai_create(openai_client, messages=messages, tool_choice="required")
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.content and not completion.choices[0].message.tool_calls
    # The tool definitions, the earlier call and its result are all prompt.
    bare = openai_client.chat.completions.create(model=OPENAI_MODEL, messages=messages[:1])
    assert completion.usage.prompt_tokens > bare.usage.prompt_tokens + 100


def test_openai_structured_output_parses_into_the_model(openai_client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Forecast, please."}]
    parsed = openai_client.chat.completions.parse(
        model=OPENAI_MODEL, messages=messages, response_format=Forecast
    )
    forecast = parsed.choices[0].message.parsed
    assert isinstance(forecast, Forecast) and len(forecast.days) == 2
    with openai_client.chat.completions.stream(
        model=OPENAI_MODEL, messages=messages, response_format=Forecast
    ) as stream:
        streamed = stream.get_final_completion().choices[0].message.parsed
    assert streamed == forecast
    schema = {"type": "json_schema", "json_schema": {"name": "f", "schema": WEATHER}}
    whole = openai_client.chat.completions.create(
        model=OPENAI_MODEL, messages=messages, response_format=schema
    )
    Weather.model_validate_json(whole.choices[0].message.content or "")
    short = openai_client.chat.completions.create(
        model=OPENAI_MODEL, messages=messages, response_format=schema, max_completion_tokens=3
    )
    assert short.choices[0].finish_reason == "length"
    assert short.choices[0].message.content == (whole.choices[0].message.content or "")[:12]


@pytest.mark.parametrize(
    "fields",
    [
        {"tool_choice": {"type": "function", "function": {"name": "nowhere"}}},
        {"tools": [{"type": "function", "function": {"parameters": TIME}}]},
        {"tool_choice": "sometimes"},
    ],
)
def test_openai_refuses_malformed_tools(http: httpx2.Client, fields: dict[str, Any]) -> None:
    body = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "Hi"}]}
    body["tools"] = openai_tools()
    response = http.post("/v1/chat/completions", json={**body, **fields})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


# --- Anthropic ------------------------------------------------------------------------


def anthropic_tools() -> list[Any]:
    return [
        {"name": "get_weather", "description": "Weather", "input_schema": WEATHER},
        {"name": "get_time", "input_schema": TIME},
    ]


def anthropic_create(client: anthropic.Anthropic, **fields: Any) -> Any:
    fields.setdefault("messages", [{"role": "user", "content": QUESTION}])
    return client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=200, tools=anthropic_tools(), **fields
    )


def test_anthropic_calls_a_tool_in_a_tool_use_block(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_create(anthropic_client)
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.id.startswith("toolu_")
    assert Weather.model_validate(block.input).unit == "celsius"
    assert message.usage.output_tokens > 0


def test_anthropic_streams_a_call_as_input_json_deltas(
    anthropic_client: anthropic.Anthropic,
) -> None:
    plain = anthropic_create(anthropic_client)
    events = list(anthropic_create(anthropic_client, stream=True))
    kinds = [event.type for event in events]
    deltas = kinds.count("content_block_delta")
    assert deltas > 3
    assert kinds == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    block = events[1].content_block
    assert (block.type, block.id, block.name, block.input) == (
        "tool_use",
        plain.content[0].id,
        "get_weather",
        {},
    )
    assert all(event.delta.type == "input_json_delta" for event in events[2:-3])
    partial = "".join(event.delta.partial_json for event in events[2:-3])
    assert json.loads(partial) == plain.content[0].input
    assert events[-2].delta.stop_reason == "tool_use"
    assert events[-2].usage.output_tokens == plain.usage.output_tokens
    with anthropic_client.messages.stream(
        model=ANTHROPIC_MODEL,
        max_tokens=200,
        tools=anthropic_tools(),
        messages=[{"role": "user", "content": QUESTION}],
    ) as stream:
        assert stream.get_final_message().content == plain.content


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "none"}, None),
        ({"type": "auto"}, "get_weather"),
        ({"type": "any"}, "get_weather"),
        ({"type": "tool", "name": "get_time"}, "get_time"),
    ],
)
def test_anthropic_honours_the_tool_choice(
    anthropic_client: anthropic.Anthropic, choice: Any, expected: str | None
) -> None:
    message = anthropic_create(anthropic_client, tool_choice=choice)
    if expected is None:
        assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    else:
        assert [block.name for block in message.content if block.type == "tool_use"] == [expected]


def test_anthropic_answers_a_tool_result_with_text(anthropic_client: anthropic.Anthropic) -> None:
    call = anthropic_create(anthropic_client).content[0]
    messages: list[Any] = [
        {"role": "user", "content": QUESTION},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "Sunny."}],
        },
    ]
    message = anthropic_create(anthropic_client, messages=messages, tool_choice={"type": "any"})
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    bare = anthropic_client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=200, messages=messages[:1]
    )
    assert message.usage.input_tokens > bare.usage.input_tokens + 100


def test_anthropic_refuses_a_tool_choice_naming_no_tool(http: httpx2.Client) -> None:
    body = {
        "model": ANTHROPIC_MODEL,
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "Hi"}],
        "tools": anthropic_tools(),
        "tool_choice": {"type": "tool", "name": "nowhere"},
    }
    response = http.post("/v1/messages", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


# --- Gemini ---------------------------------------------------------------------------


def gemini_config(**fields: Any) -> types.GenerateContentConfig:
    declarations = [
        types.FunctionDeclaration(name="get_weather", parameters_json_schema=WEATHER),
        types.FunctionDeclaration(
            name="get_time",
            parameters=types.Schema(
                type=types.Type.OBJECT, properties={"zone": types.Schema(type=types.Type.STRING)}
            ),
        ),
    ]
    return types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=declarations)],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        **fields,
    )


def calling(mode: str, names: list[str] | None = None) -> types.ToolConfig:
    config = types.FunctionCallingConfig(
        mode=types.FunctionCallingConfigMode(mode), allowed_function_names=names
    )
    return types.ToolConfig(function_calling_config=config)


def test_gemini_calls_a_tool_in_a_function_call_part(gemini_client: genai.Client) -> None:
    response = gemini_client.models.generate_content(
        model=GEMINI_MODEL, contents=QUESTION, config=gemini_config()
    )
    [call] = response.function_calls or []
    assert call.name == "get_weather" and call.id is None  # the Gemini API sends no id
    assert Weather.model_validate(call.args).unit == "celsius"
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP


def test_gemini_streams_a_call_whole_in_one_chunk(
    gemini_client: genai.Client, http: httpx2.Client
) -> None:
    plain = gemini_client.models.generate_content(
        model=GEMINI_MODEL, contents=QUESTION, config=gemini_config()
    )
    chunks = list(
        gemini_client.models.generate_content_stream(
            model=GEMINI_MODEL, contents=QUESTION, config=gemini_config()
        )
    )
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert calls == plain.function_calls
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == "STOP"
    # On the wire: an SSE event whose part is a functionCall with name and args.
    body = {
        "contents": [{"role": "user", "parts": [{"text": QUESTION}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "parameters": WEATHER}]}],
    }
    path = f"/v1beta/models/{GEMINI_MODEL}:streamGenerateContent?alt=sse"
    events = [
        json.loads(line.removeprefix("data: "))
        for line in http.post(path, json=body).text.splitlines()
        if line.startswith("data: ")
    ]
    [part] = events[0]["candidates"][0]["content"]["parts"]
    assert set(part["functionCall"]) == {"name", "args"}
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize(
    ("tool_config", "expected"),
    [
        (calling("NONE"), None),
        (calling("AUTO"), "get_weather"),
        (calling("ANY"), "get_weather"),
        (calling("ANY", ["get_time"]), "get_time"),
    ],
)
def test_gemini_honours_the_function_calling_mode(
    gemini_client: genai.Client, tool_config: types.ToolConfig, expected: str | None
) -> None:
    response = gemini_client.models.generate_content(
        model=GEMINI_MODEL, contents=QUESTION, config=gemini_config(tool_config=tool_config)
    )
    if expected is None:
        assert response.function_calls is None and response.text
    else:
        assert [call.name for call in response.function_calls or []] == [expected]


def test_gemini_answers_a_function_response_with_text(gemini_client: genai.Client) -> None:
    call = types.FunctionCall(name="get_weather", args={"city": "Oslo"})
    contents = [
        types.Content(role="user", parts=[types.Part(text=QUESTION)]),
        types.Content(role="model", parts=[types.Part(function_call=call)]),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        name="get_weather", response={"result": "Sunny."}
                    )
                )
            ],
        ),
    ]
    response = gemini_client.models.generate_content(
        model=GEMINI_MODEL, contents=contents, config=gemini_config(tool_config=calling("ANY"))
    )
    assert response.function_calls is None and response.text
    assert response.usage_metadata and response.usage_metadata.prompt_token_count
    assert response.usage_metadata.prompt_token_count > 100  # declarations and turns counted


@pytest.mark.parametrize("field", ["response_schema", "response_json_schema"])
def test_gemini_structured_output_parses_into_the_model(
    gemini_client: genai.Client, field: str
) -> None:
    schema: Any = Forecast if field == "response_schema" else Forecast.model_json_schema()
    config = types.GenerateContentConfig.model_validate(
        {"response_mime_type": "application/json", field: schema}
    )
    response = gemini_client.models.generate_content(
        model=GEMINI_MODEL, contents="Forecast, please.", config=config
    )
    forecast = Forecast.model_validate_json(response.text or "")
    if field == "response_schema":
        assert response.parsed == forecast
    assert len(forecast.days) == 2
