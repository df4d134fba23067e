import pytest
from pydantic import ValidationError

from helios.messages import (
    Completion,
    Message,
    Request,
    SamplingParams,
    ToolCall,
    ToolChoice,
    ToolSpec,
    Usage,
)


def test_request_of_builds_a_single_user_turn() -> None:
    request = Request.of("Hi", system="Be brief", model="local")
    assert request.messages == (Message(role="user", content="Hi"),)
    assert request.system == "Be brief"
    assert request.task_type == "general"
    assert request.context.tenant == "default"


def test_request_is_frozen() -> None:
    request = Request.of("Hi")
    with pytest.raises(ValidationError):
        request.model = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "messages",
    [(), (Message(role="user", content="a"), Message(role="assistant", content="b"))],
)
def test_request_needs_a_final_user_turn(messages: tuple[Message, ...]) -> None:
    with pytest.raises(ValidationError):
        Request(messages=messages)


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Request.of("Hi", temprature=0.2)


def test_sampling_params_are_range_checked() -> None:
    with pytest.raises(ValidationError):
        SamplingParams(temperature=3.0)
    with pytest.raises(ValidationError):
        SamplingParams(max_tokens=0)


def test_usage_totals_count_every_input_class() -> None:
    usage = Usage(
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=100,
        cache_write_5m_tokens=20,
        cache_write_1h_tokens=7,
    )
    assert usage.cache_write_tokens == 27
    assert usage.total_input_tokens == 137
    assert usage.total_tokens == 142


def test_with_model_returns_a_new_request() -> None:
    request = Request.of("Hi")
    other = request.with_model("sonnet")
    assert other.model == "sonnet" and request.model == ""


def test_completion_round_trips_through_json() -> None:
    completion = Completion(text="x", usage=Usage(input_tokens=1), model="m", provider="p")
    assert Completion.model_validate_json(completion.model_dump_json()) == completion


def test_with_context_replaces_only_the_named_fields_and_validates_them() -> None:
    request = Request.of("Hi").with_context(task_id="t-1", tenant="acme")
    staged = request.with_context(stage="thesis", pass_number=2)
    assert staged.context.task_id == "t-1" and staged.context.tenant == "acme"
    assert (staged.context.stage, staged.context.pass_number) == ("thesis", 2)
    with pytest.raises(ValidationError):
        request.with_context(pass_number=0)


def test_tool_turns_and_choices_are_checked() -> None:
    call = ToolCall(id="c1", name="lookup", arguments='{"q": "x"}')
    assistant = Message(role="assistant", content="", tool_calls=(call,))
    result = Message(role="tool", content="42", tool_call_id="c1")
    request = Request(
        messages=(Message(role="user", content="Find x"), assistant, result),
        tools=(ToolSpec(name="lookup"),),
        tool_choice=ToolChoice(mode="tool", name="lookup"),
    )
    assert request.messages[-1].role == "tool"
    with pytest.raises(ValidationError, match="tool_call_id"):
        Message(role="tool", content="42")
    with pytest.raises(ValidationError, match="only an assistant"):
        Message(role="user", content="hi", tool_calls=(call,))
    with pytest.raises(ValidationError, match="not among tools"):
        Request.of("hi", tool_choice=ToolChoice(mode="tool", name="other"))
    with pytest.raises(ValidationError, match="needs tools"):
        Request.of("hi", tool_choice=ToolChoice(mode="required"))
    with pytest.raises(ValidationError):
        ToolSpec(name="has space")
