"""The default task runner: DAG tasks as engine calls, in process.

A ``persona`` task's prompt (already rendered by the scheduler from ``{goal}`` and its
dependencies' outputs) becomes the persona template's ``{goal}``: the persona keeps its own
framing (system text, instructions) and the task says what to work on. Other placeholders a
persona may have (``{evidence}``, ``{thesis}``, ...) render empty. A ``dialectic`` task runs
the whole dialectic pipeline on the prompt over its ``docs``; its output is the answer.
(``dag`` tasks never reach a runner: the scheduler nests itself for them.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from helios.config.settings import Settings
from helios.engine import Engine
from helios.errors import InputError
from helios.ledger.sink import EventSink
from helios.messages import CallContext
from helios.pipeline.dag import TaskSpec
from helios.pipeline.dialectic import DialecticPipeline, Gatherer
from helios.pipeline.documents import load_documents
from helios.pipeline.personas import Persona, load_personas
from helios.pipeline.runner import build_gatherer
from helios.runtime import Runtime

GathererFactory = Callable[[], Gatherer]


class EngineTaskRunner:
    """Runs persona and dialectic tasks through one engine (so every call is cached, routed,
    budgeted and recorded like any other)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        personas: Mapping[str, Persona] | None,
        gatherer_factory: GathererFactory,
        *,
        sink: EventSink | None = None,
        model_override: str | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.personas = dict(personas) if personas is not None else load_personas(settings)
        self._gatherer_factory = gatherer_factory
        self._gatherer: Gatherer | None = None
        self.sink = sink
        self.model_override = model_override

    async def run(self, task: TaskSpec, prompt: str, context: CallContext) -> str:
        if task.kind == "persona":
            return await self._persona(task, prompt, context)
        if task.kind == "dialectic":
            return await self._dialectic(task, prompt, context)
        raise InputError(f"task '{task.id}': the engine runner cannot run kind '{task.kind}'")

    async def _persona(self, task: TaskSpec, prompt: str, context: CallContext) -> str:
        name = task.persona or ""
        persona = self.personas.get(name)
        if persona is None:
            raise InputError(f"task '{task.id}': unknown persona '{name}'")
        values = dict.fromkeys(persona.placeholders, "")
        values["goal"] = prompt
        model = task.model or persona.model_spec(self.settings, self.model_override)
        request = persona.request(values, model=model, task_type="dag", context=context)
        completion = await self.engine.complete(request)
        return completion.text

    async def _dialectic(self, task: TaskSpec, prompt: str, context: CallContext) -> str:
        limit = self.settings.orchestration.evidence.max_document_bytes
        documents = (
            await load_documents([Path(p) for p in task.docs], max_document_bytes=limit)
            if task.docs
            else []
        )
        pipeline = DialecticPipeline(
            self.engine,
            self.settings,
            self._gatherer_for_dialectic(),
            sink=self.sink,
            model_override=task.model or self.model_override,
        )
        # a task of its own, as a nested DAG is: its events join its own task id
        own = context.model_copy(update={"task_id": None, "stage": None})
        result = await pipeline.run(prompt, documents, context=own)
        return result.answer

    def _gatherer_for_dialectic(self) -> Gatherer:
        if self._gatherer is None:
            self._gatherer = self._gatherer_factory()
        return self._gatherer

    @classmethod
    def for_runtime(
        cls,
        runtime: Runtime,
        personas: Mapping[str, Persona] | None = None,
        *,
        model_override: str | None = None,
    ) -> EngineTaskRunner:
        """The runner over ``runtime``'s engine, recording into its ledger."""
        return cls(
            runtime.engine,
            runtime.settings,
            personas,
            lambda: build_gatherer(runtime),
            sink=runtime.sink,
            model_override=model_override,
        )

    async def aclose(self) -> None:
        """Close the evidence gatherer, if one was made (the engine belongs to the caller)."""
        gatherer, self._gatherer = self._gatherer, None
        close = getattr(gatherer, "aclose", None)
        if close is not None:
            await close()
