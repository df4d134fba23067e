"""``helios ask``: one prompt, streamed, with its model, timings, tokens and cost."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from typing import Annotated

import typer
from rich.markup import escape

from helios.cli.context import cli_context, console_err
from helios.cli.formatting import usd
from helios.cli.logs import stdout_text
from helios.config.settings import Settings
from helios.errors import ConfigError
from helios.messages import Completion, Request, SamplingParams
from helios.runtime import Runtime


def ask(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model spec, catalogue id or alias.")
    ] = None,
    system: Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")] = None,
    persona: Annotated[
        str | None,
        typer.Option("--persona", "-p", help="Answer as a persona, e.g. zeitgeist or bard."),
    ] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1)] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", min=0.0, max=2.0)] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Wait for the whole answer.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Ask a model one question and stream the answer."""
    if not prompt.strip():
        raise ConfigError("the prompt is empty")
    settings = cli_context(ctx).settings()
    if persona is not None:
        request = _persona_request(persona, prompt, settings, model)
        if system is not None or max_tokens is not None or temperature is not None:
            update = {
                "system": system or request.system,
                "params": request.params.model_copy(
                    update={
                        k: v
                        for k, v in (("max_tokens", max_tokens), ("temperature", temperature))
                        if v is not None
                    }
                ),
            }
            request = request.model_copy(update=update)
    else:
        request = Request.of(
            prompt,
            model=model or "",
            system=system,
            params=SamplingParams(max_tokens=max_tokens, temperature=temperature),
        )
    streaming = not (no_stream or as_json)
    request = request.with_context(task_id=f"ask-{uuid.uuid4().hex}", stage="ask")
    completion = asyncio.run(_ask(settings, request, streaming))
    if as_json:
        document = _as_dict(completion, request.context.task_id)
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    if not streaming:
        stdout_text.write(completion.text)
    stdout_text.end_line()  # unless a warning on the same terminal has just ended it
    console_err.print(_summary(completion), style="dim", soft_wrap=True)


def _persona_request(name: str, prompt: str, settings: Settings, model: str | None) -> Request:
    """The persona's system text and template, with the prompt as its goal."""
    from helios.pipeline.personas import load_personas

    personas = load_personas(settings)
    if name not in personas:
        raise ConfigError(f"unknown persona '{name}': choose one of {', '.join(sorted(personas))}")
    chosen = personas[name]
    values = {field: "" for field in chosen.placeholders}
    values["goal"] = prompt
    return chosen.request(values, model=chosen.model_spec(settings, model), task_type="ask")


async def _ask(settings: Settings, request: Request, streaming: bool) -> Completion:
    async with Runtime.open(settings) as runtime:
        if not streaming:
            return await runtime.engine.complete(request)
        # A terminal reader can be told that the text above is abandoned when a broken
        # stream is tried again; a pipe cannot take text back, so there a stream that
        # breaks after its first text fails (one that breaks before is still retried).
        stream = runtime.engine.stream(request, restartable=sys.stdout.isatty())
        written = False
        async for chunk in stream:
            if chunk.restart is not None:
                if written:
                    stdout_text.end_line()
                    note = f"{chunk.restart}; the answer starts over below"
                else:
                    note = chunk.restart
                console_err.print(escape(note), style="yellow", soft_wrap=True)
                written = False
            elif chunk.text:
                stdout_text.write(chunk.text)
                written = True
        assert stream.completion is not None  # set once the stream is exhausted
        return stream.completion


def _summary(c: Completion) -> str:
    u = c.usage
    cost = usd(c.cost_usd) + (" (not in the catalogue)" if c.cost_usd is None else "")
    cache = (
        f", cache read {u.cache_read_tokens} / write {u.cache_write_tokens}"
        if u.cache_read_tokens or u.cache_write_tokens
        else ""
    )
    served = f" · served from the response cache ({c.cache_layer})" if c.cache_layer else ""
    retried = f" · after {len(c.retries)} failed attempt(s)" if c.retries else ""
    return (
        f"{c.provider}:{c.model}{served} · TTFT {c.ttft_s * 1000:.0f} ms"
        f" · total {c.duration_s * 1000:.0f} ms"
        f" · tokens in {u.total_input_tokens} / out {u.output_tokens}{cache} · cost {cost}"
        f"{retried}"
    )


def _as_dict(c: Completion, task_id: str | None) -> dict[str, object]:
    data = c.model_dump(mode="json")
    data["task_id"] = task_id
    data["usage"]["total_input_tokens"] = c.usage.total_input_tokens
    return data
