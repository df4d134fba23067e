"""The embedded provider with the real SmolLM2 model (no doubles), the fastest real model."""

import asyncio
import json
from pathlib import Path

import pytest

from helios.config.providers import LocalModelSettings
from helios.config.settings import Settings
from helios.errors import BadRequest, ConfigError, UnknownModel
from helios.messages import Message, Request, SamplingParams, ToolCall, ToolSpec
from helios.providers.local_model import SMALLEST_MODEL_ID, packaged_model_path

llamacpp = pytest.importorskip("helios.providers.llamacpp", reason="needs helios[local]")

PROMPT = Request.of("What is the capital of Japan?", params=SamplingParams(max_tokens=24))


@pytest.fixture(scope="module")
def provider() -> "llamacpp.LlamaCppProvider":
    made = llamacpp.create("llamacpp", SMALLEST_MODEL_ID, Settings())
    assert isinstance(made, llamacpp.LlamaCppProvider)
    return made


async def streamed_text(provider: "llamacpp.LlamaCppProvider", request: Request) -> str:
    return "".join([chunk.text async for chunk in provider.stream(request)])


async def test_stream_and_complete_give_the_same_text(
    provider: "llamacpp.LlamaCppProvider",
) -> None:
    completion = await provider.complete(PROMPT)
    assert completion.text.strip()
    assert await streamed_text(provider, PROMPT) == completion.text
    assert completion.usage.input_tokens > 5
    assert 0 < completion.usage.output_tokens <= 24
    assert completion.provider == "llamacpp"
    assert completion.model == SMALLEST_MODEL_ID


async def test_deterministic_at_temperature_zero(provider: "llamacpp.LlamaCppProvider") -> None:
    request = Request.of("Name three fruits.", params=SamplingParams(max_tokens=20))
    first = await provider.complete(request)
    second = await provider.complete(request)
    assert first.text == second.text


async def test_seeded_sampling_is_repeatable(provider: "llamacpp.LlamaCppProvider") -> None:
    request = Request.of(
        "Write a word.", params=SamplingParams(max_tokens=12, temperature=0.9, seed=7)
    )
    assert (await provider.complete(request)).text == (await provider.complete(request)).text


async def test_max_tokens_reports_length(provider: "llamacpp.LlamaCppProvider") -> None:
    request = Request.of(
        "Tell me a long story about a dragon.", params=SamplingParams(max_tokens=4)
    )
    completion = await provider.complete(request)
    assert completion.finish_reason == "length"
    assert completion.usage.output_tokens <= 5


def test_model_is_loaded_once_per_process() -> None:
    path = packaged_model_path()
    local = LocalModelSettings()
    assert llamacpp.load_model(path, local) is llamacpp.load_model(path, local)


async def test_event_loop_keeps_running_during_generation(
    provider: "llamacpp.LlamaCppProvider",
) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    request = Request.of("Explain photosynthesis.", params=SamplingParams(max_tokens=48))
    try:
        await provider.complete(request)
    finally:
        task.cancel()
    # generation takes a good fraction of a second; a blocked loop would not tick at all
    assert ticks >= 10


async def test_abandoned_stream_releases_the_model(provider: "llamacpp.LlamaCppProvider") -> None:
    request = Request.of("Count from one to fifty.", params=SamplingParams(max_tokens=200))
    stream = provider.stream(request)
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()  # type: ignore[attr-defined]
    # the next call must not wait for the abandoned generation to finish its 200 tokens
    completion = await asyncio.wait_for(provider.complete(PROMPT), timeout=30)
    assert completion.text


async def test_prompt_longer_than_the_context_is_a_bad_request() -> None:
    small = Settings(local=LocalModelSettings(n_ctx=256))
    provider = llamacpp.create("llamacpp", SMALLEST_MODEL_ID, small)
    with pytest.raises(BadRequest, match=r"local\.n_ctx"):
        await provider.complete(Request.of("word " * 400))


def test_unknown_models_and_missing_files() -> None:
    with pytest.raises(UnknownModel, match="llamacpp has no model 'other'"):
        llamacpp.create("llamacpp", "other", Settings())
    with pytest.raises(ConfigError, match="does not exist"):
        llamacpp.create("llamacpp", "/nowhere/model.gguf", Settings())
    with pytest.raises(ConfigError, match=r"local\.model_path"):
        llamacpp.create(
            "llamacpp", "x", Settings(local=LocalModelSettings(model_path=Path("/nowhere.gguf")))
        )


async def test_reply_does_not_depend_on_what_ran_before(
    provider: "llamacpp.LlamaCppProvider",
) -> None:
    first = await provider.complete(PROMPT)
    await provider.complete(Request.of("Write a haiku about rivers."))
    # the same prompt prefix again, after other work: same tokens, same penalties
    assert (await provider.complete(PROMPT)).text == first.text


async def test_response_schema_is_enforced_by_grammar(
    provider: "llamacpp.LlamaCppProvider",
) -> None:
    schema = {
        "type": "object",
        "properties": {"pass": {"type": "boolean"}, "score": {"type": "number"}},
        "required": ["pass", "score"],
        "additionalProperties": False,
    }
    request = Request.of(
        "Is Tokyo the capital of Japan? Answer as JSON.",
        params=SamplingParams(max_tokens=60),
        response_schema=schema,
    )
    reply = json.loads((await provider.complete(request)).text)
    assert set(reply) == {"pass", "score"}
    assert isinstance(reply["pass"], bool)


@pytest.mark.parametrize(
    "request_",
    [
        Request.of("What time is it?", tools=(ToolSpec(name="get_time"),)),
        Request(
            messages=(
                Message(role="user", content="What time is it?"),
                Message(role="assistant", content="", tool_calls=(ToolCall(id="c", name="t"),)),
                Message(role="tool", content="12:00", tool_call_id="c"),
            )
        ),
    ],
    ids=["tools offered", "tool turns"],
)
async def test_tools_are_refused_before_anything_loads(request_: Request) -> None:
    # A file that does not exist: the refusal must come before any attempt to load it.
    provider = llamacpp.LlamaCppProvider(
        "llamacpp", "absent", Path("/nowhere/model.gguf"), LocalModelSettings()
    )
    with pytest.raises(BadRequest, match="cannot call tools") as info:
        await provider.complete(request_)
    assert "openai:" in str(info.value) and info.value.provider == "llamacpp"
    with pytest.raises(BadRequest, match="cannot call tools"):
        await streamed_text(provider, request_)


async def test_a_shared_prefix_is_reused_and_changes_nothing() -> None:
    system = "You answer questions about geography in one short sentence. " * 8
    first = Request.of("What is the capital of Japan?", system=system)
    second = Request.of("What is the capital of France?", system=system)
    reuse = llamacpp.create("llamacpp", SMALLEST_MODEL_ID, Settings())
    fresh = llamacpp.create(
        "llamacpp", SMALLEST_MODEL_ID, Settings(local=LocalModelSettings(prefix_reuse=False))
    )
    await reuse.complete(first)
    reused = await reuse.complete(second)
    alone = await fresh.complete(second)
    # the system prompt's tokens were not evaluated again, and reported as cache reads
    assert reused.usage.cache_read_tokens > 60
    assert reused.usage.total_input_tokens == alone.usage.input_tokens
    assert alone.usage.cache_read_tokens == 0
    assert reused.text == alone.text
