"""The embedded default provider: a GGUF model run by llama.cpp in a worker thread.

The models are listed in ``helios/data/local_models.yaml`` (the catalogue's ``local``
alias names the default); a model shipped in parts is assembled and its sha256 checked on
first use (:mod:`helios.providers.local_files`). A model spec
``llamacpp:/path/to/model.gguf`` runs any other GGUF file; ``local.model_path`` in the
settings replaces the default file.

With ``local.prefix_reuse`` (on), a call keeps the KV cache of the prompt prefix it
shares with the previous call to the same model: the dialectic personas share their long
first part (instructions and evidence), so only the first call pays to read it. The reused
tokens are reported as ``cache_read_tokens``.

Generation blocks, so it runs in a worker thread and hands chunks to the event loop
through a queue; a llama context is not thread-safe, so calls to one model take turns.
With temperature 0 (the default here) and a seed, replies are deterministic.

The small local model was not trained to call tools, and its chat template has no place
for them: a request that offers tools or carries tool turns is refused with
:class:`~helios.errors.BadRequest` before anything loads or generates.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

try:
    import llama_cpp
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter
    from llama_cpp.llama_grammar import LlamaGrammar
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from helios.errors import MissingDependency

    raise MissingDependency("llama-cpp-python", "local", "The local llama.cpp provider") from exc

from helios.config.providers import LocalModelSettings
from helios.config.settings import Settings
from helios.errors import BadRequest, ConfigError, ProviderUnavailable
from helios.messages import Chunk, Completion, FinishReason, Request, Usage
from helios.providers.base import Provider, StreamAssembler, complete_by_streaming
from helios.providers.local_model import model_path, ready_model_path

_END_OF_STREAM = object()


@dataclass
class LoadedModel:
    """One llama.cpp model in memory, its chat template and the lock that serialises it."""

    llama: Any
    formatter: Any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def prompt_tokens(self, request: Request) -> tuple[list[int], list[str]]:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        rendered = self.formatter(messages=messages)
        tokens = self.llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=True, special=True)
        stops = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop]
        return cast(list[int], tokens), [s for s in stops if s]

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))


# Loading weights is the one costly, immutable thing here: keep one copy per process and
# file, whatever number of engines or registries a process builds.
_load_lock = threading.Lock()


@lru_cache(maxsize=4)
def _load(path: str, n_ctx: int, n_threads: int | None, seed: int) -> LoadedModel:
    llama = llama_cpp.Llama(
        model_path=path, n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False
    )
    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        raise ConfigError(f"local model {path}: the GGUF file carries no chat template")
    # The template refers to bos/eos by their text, which only the vocabulary knows.
    eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "ignore")
    bos = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "ignore")
    formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
    return LoadedModel(llama=llama, formatter=formatter)


@lru_cache(maxsize=16)
def _grammar(schema: str) -> Any:
    """The GBNF grammar that holds sampling to a JSON schema (compiled once per schema)."""
    return LlamaGrammar.from_json_schema(schema, verbose=False)


def load_model(path: Path, local: LocalModelSettings) -> LoadedModel:
    with _load_lock:
        return _load(str(path), local.n_ctx, local.n_threads, local.seed)


class LlamaCppProvider(Provider):
    def __init__(self, name: str, model: str, model_path: Path, local: LocalModelSettings) -> None:
        self.name = name
        self.model = model
        self.model_path = model_path
        self.local = local

    def _load(self) -> LoadedModel:
        # assembles and verifies a model shipped in parts on first use (blocking: a thread)
        return load_model(ready_model_path(self.model, self.local), self.local)

    async def _model(self) -> LoadedModel:
        return await asyncio.to_thread(self._load)

    async def warm(self) -> None:
        """Load the weights now (once per process and file), not inside the first call."""
        await self._model()

    def _options(self, request: Request, stops: list[str]) -> dict[str, Any]:
        params = request.params
        options: dict[str, Any] = {
            "max_tokens": params.max_tokens or self.local.default_max_tokens,
            "temperature": 0.0 if params.temperature is None else params.temperature,
            "top_p": 1.0 if params.top_p is None else params.top_p,
            "stop": [*stops, *params.stop],
            "seed": self.local.seed if params.seed is None else params.seed,
            "repeat_penalty": self.local.repeat_penalty,
        }
        if request.response_schema is not None:
            options["grammar"] = _grammar(json.dumps(request.response_schema, sort_keys=True))
        return options

    async def complete(self, request: Request) -> Completion:
        return await complete_by_streaming(self, request)

    async def stream(self, request: Request) -> AsyncIterator[Chunk]:
        self._refuse_tools(request)
        loaded = await self._model()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()

        def put(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def generate() -> None:
            try:
                with loaded.lock:
                    for item in self._generate(loaded, request, cancelled):
                        put(item)
            except BaseException as exc:  # handed to the event loop, re-raised there
                put(exc)
            finally:
                put(_END_OF_STREAM)

        worker = loop.run_in_executor(None, generate)
        assembler = StreamAssembler(self.name, self.model)
        try:
            while (item := await queue.get()) is not _END_OF_STREAM:
                if isinstance(item, BaseException):
                    raise self._translate(item, assembler) from item
                chunk = cast(Chunk, item)
                assembler.add(chunk)
                yield chunk
        finally:
            cancelled.set()  # stops the worker between tokens if the caller went away
            with contextlib.suppress(BaseException):
                await asyncio.shield(worker)

    def _generate(
        self, loaded: LoadedModel, request: Request, cancelled: threading.Event
    ) -> Iterator[Chunk]:
        tokens, stops = loaded.prompt_tokens(request)
        if len(tokens) >= self.local.n_ctx:
            raise BadRequest(
                f"prompt is {len(tokens)} tokens; the local context holds {self.local.n_ctx} "
                "(raise local.n_ctx)",
                provider=self.name,
                model=self.model,
            )
        finish: FinishReason = "stop"
        parts: list[str] = []
        # llama.cpp keeps the KV cache of the prefix this prompt shares with the last one (the
        # penalties see only this call's own tokens: a fresh sampler per call). A prompt held
        # whole would have its last token replayed alone, whose logits can differ in the last
        # bits from a batched evaluation: that one is evaluated afresh, so that a reply
        # depends on the request alone.
        reused = _shared_prefix(loaded.llama, tokens) if self.local.prefix_reuse else 0
        if reused >= len(tokens):
            reused = 0
        if reused == 0:
            loaded.llama.reset()
        stream = loaded.llama.create_completion(
            prompt=tokens, stream=True, **self._options(request, stops)
        )
        for piece in stream:
            if cancelled.is_set():
                finish = "cancelled"
                break
            choice = piece["choices"][0]
            if choice["text"]:
                parts.append(choice["text"])
                yield Chunk(text=choice["text"])
            if choice.get("finish_reason"):
                finish = "length" if choice["finish_reason"] == "length" else "stop"
        usage = Usage(
            input_tokens=len(tokens) - reused,
            output_tokens=loaded.count_tokens("".join(parts)),
            cache_read_tokens=reused,
        )
        yield Chunk(usage=usage, finish_reason=finish)

    def _refuse_tools(self, request: Request) -> None:
        if request.tools or any(m.tool_calls or m.role == "tool" for m in request.messages):
            raise BadRequest(
                "the local model cannot call tools; use a model of a provider that can, "
                "e.g. openai:gpt-5-mini, anthropic:claude-haiku-4-5 or gemini:gemini-2.5-flash",
                provider=self.name,
                model=self.model,
            )

    def _translate(self, exc: BaseException, assembler: StreamAssembler) -> BaseException:
        if isinstance(exc, (BadRequest, ConfigError)):
            return exc
        if assembler.text:
            return assembler.broken(exc)
        return ProviderUnavailable(f"llama.cpp failed: {exc}", provider=self.name, model=self.model)


def _shared_prefix(llama: Any, tokens: list[int]) -> int:
    """How many leading prompt tokens llama.cpp holds evaluated from the previous call."""
    held = list(llama.input_ids[: llama.n_tokens])
    shared = 0
    for a, b in zip(held, tokens, strict=False):
        if a != b:
            break
        shared += 1
    return shared


def create(name: str, model: str, settings: Settings) -> Provider:
    return LlamaCppProvider(name, model, model_path(model, settings.local), settings.local)
