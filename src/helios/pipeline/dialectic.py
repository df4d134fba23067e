"""The dialectic pipeline: thesis -> antithesis -> synthesis over evidence, with a gate.

::

    goal (+ documents)
      ├─ evidence gathering        ┐ concurrent when orchestration.async_thesis is on
      └─ thesis                    ┘ (on timeout or error: evidence first, then thesis;
                                     not on an input error, which a retry cannot mend)
      → antithesis → synthesis → quality gate → pass, or synthesis again with feedback

Every persona call goes through the engine, so it is cached, routed, budgeted, timed,
priced and recorded there (the call's context names this task, stage and pass); the
pipeline records the task's own events (start, evidence, gate, second pass, end) and keeps
a :class:`StageRecord` per call for its result.

A task that fails on its input (:class:`~helios.errors.InputError`, or a request the model
refused as such, :class:`~helios.errors.BadRequest`: a prompt too long for its context) is
recorded as an ``error`` of kind ``input_error``, never as an ``async_fallback``: the
async thesis did nothing wrong, and its rollback rule must not count the user's mistakes.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from helios.config.settings import Settings
from helios.engine import Engine
from helios.errors import BadRequest, HeliosError, InputError, TaskCancelled
from helios.ledger.events import (
    CANCELLED,
    INPUT_ERROR,
    AsyncFallback,
    ErrorEvent,
    Event,
    EvidenceGathered,
    GateVerdict,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.sink import EventSink, MemorySink
from helios.messages import CallContext, Completion, Message
from helios.pipeline.documents import Document
from helios.pipeline.evidence import Evidence
from helios.pipeline.gate import GateResult, gate_verdict
from helios.pipeline.personas import Persona, load_personas, with_run_cache_key
from helios.pipeline.results import (
    DialecticResult,
    PassOutcome,
    PipelineObserver,
    SilentObserver,
    StageRecord,
)
from helios.pipeline.single_call import split_dialectic

NO_EVIDENCE = "Evidence: none was provided; answer from general knowledge and cite nothing."
EVIDENCE_PENDING = ""  # the async thesis argues before evidence exists: say nothing of it
ROLES = ("thesis", "antithesis", "synthesis", "judge")
INPUT_ERRORS = (InputError, BadRequest)


class SettingsSource(Protocol):
    """Settings as they stand now, runtime flag overrides applied (``FlagRegistry``)."""

    async def current(self) -> Settings: ...


class StageCalls(Protocol):
    """Runs one persona call's ``body`` (``name`` says which, unique within the task): as it
    is, or as a durable step that a recovered task does not run again (``helios.tasks``)."""

    async def run(self, name: str, body: Callable[[], Awaitable[Completion]]) -> Completion: ...


class _DirectCalls:
    async def run(self, name: str, body: Callable[[], Awaitable[Completion]]) -> Completion:
        return await body()


class Gatherer(Protocol):
    """Finds the passages of the documents that bear on the goal (``EvidenceGatherer``)."""

    async def gather(self, goal: str, documents: Sequence[Document]) -> Evidence: ...


class DialecticPipeline:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        gatherer: Gatherer,
        *,
        sink: EventSink | None = None,
        observer: PipelineObserver | None = None,
        model_override: str | None = None,
        settings_source: SettingsSource | None = None,
        calls: StageCalls | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.gatherer = gatherer
        self.sink: EventSink = sink if sink is not None else MemorySink()
        self.observer: PipelineObserver = observer if observer is not None else SilentObserver()
        self.model_override = model_override
        self.settings_source = settings_source
        self.calls: StageCalls = calls if calls is not None else _DirectCalls()
        self.personas = _dialectic_personas(settings)

    async def _settings_for_task(self) -> tuple[Settings, dict[str, Persona]]:
        """The settings a new task runs with: runtime flag overrides are read here, once per
        task, so a task never changes course midway."""
        if self.settings_source is not None:
            settings = await self.settings_source.current()
            if settings is not self.settings:
                self.settings, self.personas = settings, _dialectic_personas(settings)
        return self.settings, self.personas

    async def run(
        self,
        goal: str,
        documents: Sequence[Document] = (),
        *,
        context: CallContext | None = None,
    ) -> DialecticResult:
        """One task; ``context`` says for whom (tenant, priority, key) and may name the task
        id; each persona call adds its stage, persona and pass."""
        goal = goal.strip()
        if not goal:
            raise InputError("the goal is empty")
        settings, personas = await self._settings_for_task()
        run = _Run(self, settings, personas, goal, documents, context or CallContext())
        return await run.execute()


def _dialectic_personas(settings: Settings) -> dict[str, Persona]:
    personas = load_personas(settings)
    missing = [role for role in ROLES if role not in personas]
    if missing:
        raise InputError(f"the dialectic pipeline needs personas: {', '.join(missing)}")
    return personas


def task_flags(
    settings: Settings, personas: Mapping[str, Persona], *, response_cache: bool
) -> dict[str, bool | int | float | str]:
    """The feature flags stamped on every task, so analyses can split by them."""
    orchestration = settings.orchestration
    flags: dict[str, bool | int | float | str] = {
        "async_thesis": orchestration.async_thesis.enabled,
        "parallel_prep": orchestration.parallel_prep.enabled,
        "single_call": orchestration.single_call.enabled,
        "response_cache": response_cache,
        "max_passes": orchestration.max_passes,
    }
    for role in ("thesis", "antithesis", "synthesis"):
        flags[f"{role}_streaming"] = personas[role].streaming
    return flags


class _Run:
    """One execution of the pipeline: its task id, settings, timings, records and events."""

    def __init__(
        self,
        pipeline: DialecticPipeline,
        settings: Settings,
        personas: dict[str, Persona],
        goal: str,
        documents: Sequence[Document],
        context: CallContext,
    ) -> None:
        self.p = pipeline
        self.settings = settings
        self.personas = personas
        self.goal = goal
        self.documents = documents
        self.task_id = context.task_id or uuid.uuid4().hex
        self.context = context.model_copy(update={"task_id": self.task_id})
        self.stages: list[StageRecord] = []
        self.current_stage = "evidence"
        self.fallback_reason: str | None = None
        self._calls_made = 0
        self._prep: asyncio.Task[dict[str, str]] | None = None

    def emit(self, event: Event) -> None:
        self.p.sink.emit(event)

    async def execute(self) -> DialecticResult:
        started = time.perf_counter()
        flags = task_flags(
            self.settings, self.personas, response_cache=self.p.engine.cache is not None
        )
        self.emit(
            TaskStarted(
                task_id=self.task_id, goal=self.goal, documents=len(self.documents), flags=flags
            )
        )
        try:
            if self.settings.orchestration.single_call.enabled:
                evidence, passes = await self._single_call()
            else:
                evidence, thesis = await self._evidence_and_thesis()
                self.current_stage = "antithesis"
                antithesis = await self._stage(
                    "antithesis", self._values(evidence, thesis=thesis.text)
                )
                passes = await self._synthesise(evidence, thesis.text, antithesis.text)
        except BaseException as exc:
            self._record_failure(exc, started)
            raise
        accepted = next((outcome for outcome in passes if outcome.gate.passed), None)
        final = accepted if accepted is not None else passes[-1]
        result = DialecticResult(
            task_id=self.task_id,
            goal=self.goal,
            answer=final.text,
            accepted_pass=accepted.number if accepted is not None else None,
            passes=tuple(passes),
            evidence=evidence,
            stages=tuple(self.stages),
            async_fallback=self.fallback_reason,
            duration_s=time.perf_counter() - started,
            flags=flags,
        )
        self.emit(
            TaskFinished(
                task_id=self.task_id,
                success=True,
                duration_s=result.duration_s,
                accepted_pass=result.accepted_pass,
                passes=len(passes),
                cost_usd=result.cost_usd,
                input_tokens=result.input_tokens,
                output_tokens=result.output_tokens,
            )
        )
        return result

    # -- evidence and thesis ------------------------------------------------------------
    async def _evidence_and_thesis(self) -> tuple[Evidence, Completion]:
        settings = self.settings.orchestration.async_thesis
        if not settings.enabled:
            evidence = await self._gather()
            self._start_prep(evidence)
            self.current_stage = "thesis"
            return evidence, await self._stage("thesis", self._values(evidence))
        thesis_started = time.perf_counter()
        thesis_task = asyncio.create_task(
            self._stage("thesis", self._values(None)), name=f"thesis-{self.task_id}"
        )
        try:
            evidence = await self._gather()
        except BaseException:
            thesis_task.cancel()
            await asyncio.gather(thesis_task, return_exceptions=True)
            raise
        self._start_prep(evidence)
        self.current_stage = "thesis"
        remaining = settings.timeout_sec - (time.perf_counter() - thesis_started)
        try:
            thesis = await asyncio.wait_for(thesis_task, timeout=max(remaining, 0.0))
        except TimeoutError:
            reason = f"timeout: no thesis within {settings.timeout_sec:g} s"
        except INPUT_ERRORS:
            raise  # the sequential thesis asks as much, and more: it would fail the same way
        except TaskCancelled:
            raise  # nothing to fall back to: the task is over
        except HeliosError as exc:
            reason = f"error: {type(exc).__name__}: {exc}"
        else:
            return evidence, thesis
        # The sequential path: the thesis again, now with the evidence in hand.
        self.fallback_reason = reason
        self.emit(AsyncFallback(task_id=self.task_id, reason=reason))
        self.p.observer.note(f"async thesis fell back to sequential ({reason})")
        return evidence, await self._stage("thesis", self._values(evidence))

    # -- the parallel preparation experiment ---------------------------------------------
    def _start_prep(self, evidence: Evidence) -> None:
        """With ``orchestration.parallel_prep``, prepare the antithesis while the thesis runs."""
        if self.settings.orchestration.parallel_prep.enabled:
            self._prep = asyncio.create_task(asyncio.to_thread(self._prepare, evidence))
            # A run that fails before the antithesis never awaits it: retrieve its outcome
            # here so that asyncio does not report an unretrieved exception.
            self._prep.add_done_callback(lambda task: task.cancelled() or task.exception())

    def _prepare(self, evidence: Evidence) -> dict[str, str]:
        """Everything the antithesis needs but the thesis text: its evidence context, its
        template checked, its provider resolved (SDK imported, client built). An ``auto``
        model is only known once the engine routes the call, so nothing is resolved then."""
        values = self._values(evidence)
        persona = self.personas["antithesis"]
        persona.render({**values, "thesis": ""})
        registry = self.p.engine.registry
        spec = persona.model_spec(self.settings, self.p.model_override)
        if not registry.is_auto(spec):
            registry.resolve(spec)
        return values

    async def _gather(self) -> Evidence:
        evidence = await self.p.gatherer.gather(self.goal, self.documents)
        self.emit(
            EvidenceGathered(
                task_id=self.task_id,
                documents=evidence.documents,
                chunks=evidence.chunks,
                passages=len(evidence.passages),
                embedded_chunks=evidence.embedded_chunks,
                from_cache=evidence.from_cache,
                duration_s=evidence.duration_s,
            )
        )
        self.p.observer.note(_describe(evidence))
        return evidence

    # -- the dialectic in one call (orchestration.single_call) ---------------------------
    async def _single_call(self) -> tuple[Evidence, list[PassOutcome]]:
        """Evidence, then one ``dialectic`` call for all three voices; its synthesis is the
        first pass. A second pass, if the gate asks for one, is a plain synthesis call."""
        evidence = await self._gather()
        self.current_stage = "dialectic"
        reply = await self._stage("dialectic", self._values(evidence))
        sections = split_dialectic(reply.text)
        if not sections.complete:
            self.p.observer.note("the one-call reply lacked a section: judged as it is")
        self.current_stage = "gate"
        gate = await self._gate(evidence, sections.synthesis, 1)
        first = PassOutcome(number=1, text=sections.synthesis, gate=gate)
        if gate.passed or self.settings.orchestration.max_passes == 1:
            return evidence, [first]
        self._second_pass_note(2)
        rest = await self._synthesise(
            evidence,
            sections.thesis,
            sections.antithesis,
            first_pass=2,
            feedback=gate.feedback(sections.synthesis),
        )
        return evidence, [first, *rest]

    def _second_pass_note(self, number: int) -> None:
        self.p.observer.note(f"gate failed on pass {number - 1}: synthesis again")

    # -- synthesis and the gate ---------------------------------------------------------
    async def _synthesise(
        self,
        evidence: Evidence,
        thesis: str,
        antithesis: str,
        *,
        first_pass: int = 1,
        feedback: str = "",
    ) -> list[PassOutcome]:
        orchestration = self.settings.orchestration
        passes: list[PassOutcome] = []
        if feedback:
            self.emit(SecondPass(task_id=self.task_id, pass_number=first_pass, feedback=feedback))
        for number in range(first_pass, orchestration.max_passes + 1):
            self.current_stage = "synthesis"
            values = self._values(evidence, thesis=thesis, antithesis=antithesis)
            draft = await self._stage("synthesis", {**values, "feedback": feedback}, number)
            self.current_stage = "gate"
            gate = await self._gate(evidence, draft.text, number)
            passes.append(PassOutcome(number=number, text=draft.text, gate=gate))
            if gate.passed:
                break
            if number < orchestration.max_passes:
                feedback = gate.feedback(draft.text)
                self.emit(
                    SecondPass(task_id=self.task_id, pass_number=number + 1, feedback=feedback)
                )
                self._second_pass_note(number + 1)
        return passes

    async def _gate(self, evidence: Evidence, draft: str, number: int) -> GateResult:
        values = {**self._values(evidence), "draft": draft}

        async def ask(followup: tuple[Message, ...]) -> str:
            completion = await self._stage("judge", values, number, followup=followup)
            return completion.text

        check, verdict = await gate_verdict(draft, [p.id for p in evidence.passages], ask)
        result = GateResult(
            pass_number=number,
            evidence=check,
            verdict=verdict,
            min_score=self.settings.orchestration.gate.min_judge_score,
        )
        self.emit(
            GateVerdict(
                task_id=self.task_id,
                pass_number=number,
                passed=result.passed,
                evidence_ok=result.evidence.ok,
                evidence_problems=list(result.evidence.problems),
                judge_pass=result.verdict.passed,
                judge_score=result.verdict.score,
                judge_valid=result.verdict.valid,
                reasons=list(result.verdict.reasons),
            )
        )
        return result

    # -- one persona call ---------------------------------------------------------------
    def _values(
        self, evidence: Evidence | None, *, thesis: str = "", antithesis: str = ""
    ) -> dict[str, str]:
        if evidence is None:
            block = EVIDENCE_PENDING
        elif evidence.absent:
            block = NO_EVIDENCE
        else:
            block = evidence.as_prompt_block()
        return {
            "goal": self.goal,
            "evidence": block,
            "thesis": thesis,
            "antithesis": antithesis,
            "feedback": "",
            "draft": "",
        }

    async def _stage(
        self,
        role: str,
        values: Mapping[str, str],
        pass_number: int = 1,
        *,
        followup: tuple[Message, ...] = (),
    ) -> Completion:
        persona: Persona = self.personas[role]
        model = persona.model_spec(self.settings, self.p.model_override)
        context = self.context.model_copy(update={"stage": role, "pass_number": pass_number})
        request = persona.request(values, model=model, context=context)
        request = with_run_cache_key(request, self.goal)
        if followup:
            request = request.model_copy(update={"messages": request.messages + followup})
        observer = self.p.observer

        async def call() -> Completion:
            observer.stage_started(role, persona.name, pass_number, model)
            if not persona.streaming:
                completion = await self.p.engine.complete(request)
                observer.chunk(role, completion.text)
                return completion
            # restartable: a stream that breaks midway is tried again, and the observer
            # is told to drop what it showed
            stream = self.p.engine.stream(request, restartable=True)
            async for chunk in stream:
                if chunk.restart is not None:
                    observer.stage_restarted(role, chunk.restart)
                elif chunk.text:
                    observer.chunk(role, chunk.text)
            assert stream.completion is not None  # set once the stream is exhausted
            return stream.completion

        self._calls_made += 1
        completion = await self.p.calls.run(f"{role}:{pass_number}:{self._calls_made}", call)
        record = StageRecord.of(role, persona.name, pass_number, completion)
        self.stages.append(record)
        observer.stage_finished(record)
        return completion

    def _record_failure(self, exc: BaseException, started: float) -> None:
        if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError, TaskCancelled)):
            kind = CANCELLED
        elif isinstance(exc, INPUT_ERRORS):
            kind = INPUT_ERROR
        else:
            kind = type(exc).__name__
        self.emit(
            ErrorEvent(
                task_id=self.task_id,
                kind=kind,
                message=str(exc) or type(exc).__name__,
                stage=self.current_stage,
            )
        )
        self.emit(
            TaskFinished(
                task_id=self.task_id,
                success=False,
                duration_s=time.perf_counter() - started,
                passes=0,
                cost_usd=sum(stage.cost_usd or 0.0 for stage in self.stages),
                input_tokens=sum(stage.input_tokens for stage in self.stages),
                output_tokens=sum(stage.output_tokens for stage in self.stages),
            )
        )


def _describe(evidence: Evidence) -> str:
    if evidence.documents == 0:
        return "no documents: the pipeline runs without evidence"
    source = "from cache" if evidence.from_cache else f"embedded {evidence.embedded_chunks} chunks"
    return (
        f"evidence: {len(evidence.passages)} passages from {evidence.documents} documents "
        f"({source}, {evidence.duration_s * 1000:.0f} ms)"
    )
