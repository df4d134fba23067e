"""Every engine call as ledger events, whoever made it (pipeline, DAG node, CLI, server).

:class:`LedgerRecorder` is the engine's observer: from one :class:`~helios.engine.CallRecord`
it emits, all under the call's task id,

- one ``cache_lookup`` per answering layer the lookup consulted (L2, then L3 when L2
  missed), so each layer's hit rate has its own denominator;
- one ``route_decision`` for a route the router chose (``auto``, or a model the governor
  moved to a cheaper tier), and one per fallback down its chain;
- one ``error`` of kind ``provider_retry`` per failed attempt that was tried again
  (a dropped stream, a first token that never came, a 429, ...), saying which model
  failed, on which attempt, and why;
- one ``persona_llm_run`` for a call that answered: TTFT, duration, tokens, cost, the
  cache layer that answered and what it saved.

The governor records its own decisions (``governor_decision``) with the same task id.
A failed call leaves its fallbacks here and its error to the caller, who knows what the
failure meant for the task (a DAG node may retry, a pipeline records the failed stage).
"""

from __future__ import annotations

from helios.engine import CallRecord
from helios.ledger.events import CacheLookup, ErrorEvent, Event, PersonaLLMRun, RouteDecision
from helios.ledger.sink import EventSink

NO_PERSONA = "-"
DEFAULT_STAGE = "call"
RETRY_KIND = "provider_retry"


class LedgerRecorder:
    """A :class:`~helios.engine.CallObserver` that writes each call's events to ``sink``."""

    def __init__(self, sink: EventSink) -> None:
        self.sink = sink

    def on_call(self, record: CallRecord) -> None:
        for event in call_events(record):
            self.sink.emit(event)


def call_events(record: CallRecord) -> list[Event]:
    context = record.request.context
    task_id = context.task_id or "-"
    persona = context.persona or NO_PERSONA
    events: list[Event] = []
    lookup = record.lookup
    if lookup is not None:
        for layer, report in (("L2", lookup.l2), ("L3", lookup.l3)):
            if report.checked:
                hit = lookup.layer == layer
                events.append(CacheLookup(task_id=task_id, persona=persona, layer=layer, hit=hit))
    route = record.route
    if route is not None:

        def decision(spec: str, tier: str | None, reason: str) -> RouteDecision:
            return RouteDecision(
                task_id=task_id,
                persona=context.persona,
                model=spec,
                tier=tier or "explicit",
                score=route.score,
                reason=reason,
            )

        if not route.explicit:
            budgeted = not route.budget.startswith("no budget")
            reason = f"{route.reason}; budget: {route.budget}" if budgeted else route.reason
            events.append(decision(route.model, route.tier, reason))
        for hop, why in record.unavailable:
            events.append(decision(hop.spec, hop.tier, f"fallback unavailable: {why}"))
        for fallback in record.fallbacks:
            events.append(decision(fallback.next.spec, fallback.next.tier, fallback.reason))
    for retry in record.retries:
        events.append(
            ErrorEvent(
                task_id=task_id,
                kind=RETRY_KIND,
                message=f"{retry.spec}: {retry.reason}",
                stage=context.stage or context.persona or DEFAULT_STAGE,
            )
        )
    completion = record.completion
    if completion is not None:
        usage = completion.usage
        events.append(
            PersonaLLMRun(
                task_id=task_id,
                persona=persona,
                stage=context.stage or context.persona or DEFAULT_STAGE,
                pass_number=context.pass_number,
                provider=completion.provider,
                model=completion.model,
                streaming=completion.streamed,
                ttft_s=completion.ttft_s,
                duration_s=completion.duration_s,
                perceived_improvement=completion.perceived_improvement,
                input_tokens=usage.total_input_tokens,
                output_tokens=usage.output_tokens,
                cache_read_tokens=usage.cache_read_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                cost_usd=completion.cost_usd,
                cost_saved_usd=completion.saved_usd,
                time_saved_s=completion.saved_s,
                cache_layer=completion.cache_layer,
            )
        )
    return events
