"""The OpenAI-compatible gateway, driven by the official ``openai`` SDK (sync and async)
against a real ``helios serve`` with the provider simulator behind it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from helios.ledger.sqlite import SQLiteLedgerStore
from helios.ledger.store import EventQuery
from helios.sim import Fault, SimServer
from tests.server.gateway_fixtures import Served, gateway_settings, serve

QUESTION = [{"role": "user", "content": "Explain HNSW in two sentences."}]


@pytest.fixture
def gateway(sim: SimServer, tmp_path: Path) -> Iterator[Served]:
    with serve(gateway_settings(sim.base_url, tmp_path)) as served:
        yield served


def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)


def async_client(served: Served) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)


async def ledger_events(tmp_path: Path) -> list[dict[str, object]]:
    store = SQLiteLedgerStore(tmp_path / "ledger.sqlite3")
    try:
        return [event.model_dump() for event in await store.query(EventQuery())]
    finally:
        await store.aclose()


def test_a_chat_completion_and_its_repeat_from_the_cache(gateway: Served) -> None:
    with client(gateway) as sdk:
        first = sdk.chat.completions.with_raw_response.create(
            model="sonnet", messages=QUESTION, max_tokens=40, temperature=0
        )
        again = sdk.chat.completions.with_raw_response.create(
            model="sonnet", messages=QUESTION, max_tokens=40, temperature=0
        )
    answer, repeat = first.parse(), again.parse()
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    assert first.headers["cache-status"] == "helios; fwd=miss"
    assert first.headers["x-helios-model"] == "anthropic:claude-sonnet-5-5"
    assert float(first.headers["x-helios-cost-usd"]) > 0
    assert first.headers["x-request-id"].startswith("req_")
    assert again.headers["cache-status"] == 'helios; hit; detail="L2"'
    assert int(again.headers["age"]) >= 0
    assert float(again.headers["x-helios-cost-saved-usd"]) > 0
    assert repeat.choices[0].message.content == answer.choices[0].message.content


async def test_a_streamed_completion_with_usage_then_the_same_stream_replayed(
    gateway: Served,
) -> None:
    async def stream() -> tuple[str, int, str]:
        async with async_client(gateway) as sdk:
            response = await sdk.chat.completions.with_raw_response.create(
                model="openai:gpt-5.4-mini",
                messages=QUESTION,
                stream=True,
                stream_options={"include_usage": True},
            )
            text, tokens = [], 0
            async for chunk in response.parse():
                if chunk.choices and chunk.choices[0].delta.content:
                    text.append(chunk.choices[0].delta.content)
                if chunk.usage is not None:
                    tokens = chunk.usage.completion_tokens
            return "".join(text), tokens, response.headers["cache-status"]

    text, tokens, status = await stream()
    assert text and tokens > 0 and status == "helios; fwd=miss"
    again, again_tokens, again_status = await stream()
    assert again == text and again_tokens == tokens
    assert again_status == 'helios; hit; detail="L2"'


def test_bad_input_is_a_400_naming_the_field(gateway: Served) -> None:
    with client(gateway) as sdk:
        with pytest.raises(openai.BadRequestError) as hot:
            sdk.chat.completions.create(model="sonnet", messages=QUESTION, temperature=5)
        assert "temperature" in str(hot.value)
        with pytest.raises(openai.BadRequestError, match="n: only one choice"):
            sdk.chat.completions.create(model="sonnet", messages=QUESTION, n=2)
        with pytest.raises(openai.BadRequestError, match="image_url"):
            sdk.chat.completions.create(
                model="sonnet",
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://x"}}],
                    }
                ],
            )
        with pytest.raises(openai.NotFoundError, match="unknown model 'nope'"):
            sdk.chat.completions.create(model="nope", messages=QUESTION)


def test_a_provider_failure_is_a_5xx_with_its_reason(gateway: Served, sim: SimServer) -> None:
    sim.state.inject(Fault(kind="server_error", message="the simulated backend broke"))
    with client(gateway) as sdk, pytest.raises(openai.InternalServerError) as failure:
        sdk.chat.completions.create(model="sonnet", messages=QUESTION)
    assert failure.value.status_code in (502, 503)
    assert "anthropic:claude-sonnet-5-5" in str(failure.value)
    sim.state.inject(Fault(kind="rate_limit", retry_after_s=7))
    with client(gateway) as sdk, pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "b"}])
    assert limited.value.response.headers["retry-after"] == "7"


def test_auto_is_routed_and_says_where(gateway: Served) -> None:
    with client(gateway) as sdk:
        response = sdk.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Capital of France?"}]
        )
    assert response.parse().choices[0].message.content
    # a lookup goes to the fast tier (router.local_intents names none by default)
    assert response.headers["x-helios-model"] == "anthropic:claude-sonnet-5-5"


def test_cache_controls_from_headers_and_from_litellms_body(gateway: Served) -> None:
    ask = [{"role": "user", "content": "What is a bloom filter?"}]
    with client(gateway) as sdk:
        raw = sdk.chat.completions.with_raw_response
        unstored = raw.create(
            model="sonnet", messages=ask, extra_headers={"Cache-Control": "no-store"}
        )
        assert unstored.headers["cache-status"] == "helios; fwd=miss"
        stored = raw.create(model="sonnet", messages=ask)
        assert stored.headers["cache-status"] == "helios; fwd=miss"  # nothing had been stored
        bypass = raw.create(
            model="sonnet", messages=ask, extra_headers={"Cache-Control": "no-cache"}
        )
        assert bypass.headers["cache-status"] == "helios; fwd=bypass"
        aged = raw.create(
            model="sonnet", messages=ask, extra_headers={"Cache-Control": "max-age=0"}
        )
        assert aged.headers["cache-status"] == "helios; fwd=miss"
        hit = raw.create(model="sonnet", messages=ask, extra_body={"cache": {"s-maxage": 3600}})
        assert hit.headers["cache-status"] == 'helios; hit; detail="L2"'
        other = raw.create(
            model="sonnet", messages=ask, extra_headers={"X-Helios-Cache-Namespace": "eu"}
        )
        assert other.headers["cache-status"] == "helios; fwd=miss"
        with pytest.raises(openai.BadRequestError, match=r"cache\.ttl"):
            raw.create(model="sonnet", messages=ask, extra_body={"cache": {"ttl": "soon"}})
        with pytest.raises(openai.BadRequestError, match=r"cache\.forever"):
            raw.create(model="sonnet", messages=ask, extra_body={"cache": {"forever": True}})


async def test_every_request_is_in_the_ledger_with_its_end_user(
    gateway: Served, tmp_path: Path
) -> None:
    with client(gateway) as sdk:
        sdk.chat.completions.create(model="sonnet", messages=QUESTION, user="alice@example.com")
        with pytest.raises(openai.NotFoundError):
            sdk.chat.completions.create(model="nope", messages=QUESTION, user="bob")
    # the server's writer commits every few milliseconds, on the server's own event loop
    deadline = time.monotonic() + 10
    while True:
        events = await ledger_events(tmp_path)
        requests = [e for e in events if e["type"] == "gateway_request"]
        if len(requests) == 2 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [(r["end_user"], r["status"], r["tenant"]) for r in requests] == [
        ("alice@example.com", 200, "default"),
        ("bob", 404, "default"),
    ]
    served = requests[0]["task_id"]
    kinds = {e["type"] for e in events if e["task_id"] == served}
    assert {"cache_lookup", "persona_llm_run", "gateway_request"} <= kinds


def test_models_lists_the_catalogue_auto_and_readiness(gateway: Served) -> None:
    with client(gateway) as sdk:
        models = {model.id: model for model in sdk.models.list()}
    assert "auto" in models and "claude-sonnet-5-5" in models
    extra = models["claude-sonnet-5-5"].model_extra or {}
    assert extra["helios"]["ready"] is True and "sonnet" in extra["helios"]["aliases"]


def test_embeddings_local_and_openai(gateway: Served) -> None:
    with client(gateway) as sdk:
        local = sdk.embeddings.create(model="local", input=["a cat", "a dog"])
        assert [len(item.embedding) for item in local.data] == [384, 384]
        floats = sdk.embeddings.create(model="local", input="a cat", encoding_format="float")
        assert floats.data[0].embedding == pytest.approx(local.data[0].embedding, abs=1e-5)
        remote = sdk.embeddings.create(model="text-embedding-3-small", input="a cat", dimensions=64)
        assert len(remote.data[0].embedding) == 64
        with pytest.raises(openai.NotFoundError):
            sdk.embeddings.create(model="ada", input="x")
        with pytest.raises(openai.BadRequestError, match="input"):
            sdk.embeddings.create(model="local", input=[])


def test_responses_whole_and_streamed(gateway: Served) -> None:
    with client(gateway) as sdk:
        whole = sdk.responses.create(
            model="sonnet", input="Name a colour.", instructions="Be brief.", max_output_tokens=30
        )
        assert whole.output_text and whole.status in ("completed", "incomplete")
        assert whole.usage is not None and whole.usage.output_tokens > 0
        events = list(
            sdk.responses.create(model="openai:gpt-5.4-mini", input="Name a fruit.", stream=True)
        )
    kinds = [event.type for event in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = events[-1].response
    assert deltas and done.output_text == deltas
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with (
        client(gateway) as sdk,
        pytest.raises(openai.BadRequestError, match="previous_response_id"),
    ):
        sdk.responses.create(model="sonnet", input="x", previous_response_id="resp_1")


def test_the_local_model_answers_through_the_gateway(gateway: Served) -> None:
    pytest.importorskip("llama_cpp", reason="needs helios[local]")
    with client(gateway) as sdk:
        reply = sdk.chat.completions.create(
            model="local", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8
        )
    assert reply.choices[0].message.content
    assert reply.model == "smollm2-135m-instruct"


def test_a_streaming_error_after_the_headers_ends_the_stream_with_an_error_event(
    gateway: Served, sim: SimServer
) -> None:
    sim.state.inject(Fault(kind="drop", after_chunks=2))
    with client(gateway) as sdk, pytest.raises(openai.APIError):
        for _ in sdk.chat.completions.create(model="sonnet", messages=QUESTION, stream=True):
            pass
    # a broken stream is never stored: the next call asks the provider again
    with client(gateway) as sdk:
        response = sdk.chat.completions.with_raw_response.create(model="sonnet", messages=QUESTION)
    assert response.headers["cache-status"] == "helios; fwd=miss"
    assert json.loads(response.text)["choices"][0]["message"]["content"]
