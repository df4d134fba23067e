"""Prometheus metrics fed by the event stream.

:class:`HeliosMetrics` is an :class:`~helios.ledger.sink.EventSink`: put it beside the
ledger in a :class:`~helios.ledger.sink.FanOut` (or behind a
:class:`~helios.ledger.tail.LedgerTail`, as ``helios serve`` does) and every event updates
counters and histograms (a few dictionary look-ups and additions, no I/O). Each instance
owns its ``CollectorRegistry`` - never prometheus_client's global one - so two engines, or
two tests, never share samples. ``render()`` produces the text exposition format.

One family per meaning, named as Prometheus asks (base units in the name, ``_total`` on
counters). Tasks end in ``helios_tasks_ended_total{status}`` (:mod:`helios.ops.task_outcomes`
says how a status is decided; ``abandoned`` is counted when a scrape sweeps), and those whose
answer passed the quality gate in ``helios_tasks_accepted_total``. Cache lookups of model
calls are ``helios_cache_lookups_total{layer,persona,result}``. An event with implausible
values (:mod:`helios.ledger.validation`) updates nothing: it is counted in
``helios_ledger_events_skipped_total`` and logged. docs/operations.md lists every family.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from helios.config.ledger import DEFAULT_ABANDONED_AFTER_S
from helios.errors import MissingDependency
from helios.ledger.events import (
    AsyncFallback,
    CacheLookup,
    ErrorEvent,
    Event,
    EvidenceGathered,
    FlagChanged,
    FlagValue,
    GateVerdict,
    GatewayRequest,
    PersonaLLMRun,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.validation import problem
from helios.ops.monitor import HealthReport
from helios.ops.task_outcomes import REMEMBERED, TASK_STATUSES, TaskOutcomes

try:
    from prometheus_client import (
        CONTENT_TYPE_PLAIN_0_0_4,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
except ImportError:
    raise MissingDependency("prometheus-client", "metrics", "Prometheus metrics") from None

# One model call: from a cache hit (5 ms) to a long local-model generation (5 minutes).
LLM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
# A whole task is several calls in a row.
TASK_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
# What the gateway adds to the provider's time: sub-millisecond when all is well.
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
NO_LABEL = "-"  # a label with no value (a gateway call without a key id)
MAX_GATEWAY_MODELS = 200
"""Distinct ``model`` values of ``helios_gateway_requests_total``; later ones count as
``OTHER_MODEL``: the model is what a client typed, and each value is a series Prometheus keeps."""
OTHER_MODEL = "other"
PROVIDER = "provider"  # the ``source`` of a call no cache layer answered

logger = logging.getLogger(__name__)


class HeliosMetrics:
    """Helios's Prometheus metrics in a registry of their own."""

    content_type = CONTENT_TYPE_PLAIN_0_0_4
    """The content type of :meth:`render`'s output (the classic text format)."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        abandoned_after_s: float = DEFAULT_ABANDONED_AFTER_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.abandoned_after_s = abandoned_after_s
        self._clock = clock
        self._outcomes = TaskOutcomes()
        # provider seconds of gateway calls (tasks with no task_started) until their
        # gateway_request arrives: its duration less these is the gateway's overhead
        self._provider_s: OrderedDict[str, float] = OrderedDict()
        self._gateway_models: set[str] = set()
        self._lock = threading.Lock()
        r = self.registry
        self.calls = Counter(
            "helios_llm_calls",
            "Model calls that answered, by persona, provider, model and source (provider, or "
            "the cache layer that answered).",
            ["persona", "provider", "model", "source"],
            registry=r,
        )
        self.tasks_started = Counter("helios_tasks_started", "Tasks started.", registry=r)
        self.tasks_ended = Counter(
            "helios_tasks_ended",
            "Tasks ended, by status: succeeded, failed, cancelled, invalid_input, abandoned.",
            ["status"],
            registry=r,
        )
        self.tasks_accepted = Counter(
            "helios_tasks_accepted",
            "Tasks that succeeded with an answer the quality gate passed.",
            registry=r,
        )
        self.gate_verdicts = Counter(
            "helios_gate_verdicts",
            "Quality-gate verdicts (one per synthesis pass), by result: passed, failed.",
            ["result"],
            registry=r,
        )
        # Every status from the start, at 0: a series born at its first increment hides
        # that increment from rate() and increase().
        for status in TASK_STATUSES:
            self.tasks_ended.labels(status)
        for result in ("passed", "failed"):
            self.gate_verdicts.labels(result)
        self.tasks_running = Gauge(
            "helios_tasks_running", "Tasks started and not yet ended or abandoned.", registry=r
        )
        self.events_skipped = Counter(
            "helios_ledger_events_skipped",
            "Events left out for implausible values (a timestamp in ms, a NaN cost).",
            registry=r,
        )
        self.cache_lookups = Counter(
            "helios_cache_lookups",
            "Response-cache lookups of model calls, by layer (L2, L3), persona and result "
            "(hit, miss).",
            ["layer", "persona", "result"],
            registry=r,
        )
        self.tokens = Counter(
            "helios_tokens",
            "Tokens, by persona, model and kind (input, output, cache_read, cache_write).",
            ["persona", "model", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "helios_cost_usd",
            "Money spent on provider calls (USD).",
            ["persona", "model"],
            registry=r,
        )
        self.cost_saved = Counter(
            "helios_cost_saved_usd",
            "Money the caches saved (USD), by persona, model and layer (L1: provider prompt "
            "caching).",
            ["persona", "model", "layer"],
            registry=r,
        )
        self.time_saved = Counter(
            "helios_time_saved_seconds",
            "Provider time the response cache spared (the original calls' durations).",
            ["persona", "layer"],
            registry=r,
        )
        self.async_theses = Counter(
            "helios_async_theses",
            "Tasks started with the async thesis on.",
            registry=r,
        )
        self.async_fallbacks = Counter(
            "helios_async_fallbacks", "Async theses that fell back to sequential.", registry=r
        )
        self.second_passes = Counter(
            "helios_second_passes", "Synthesis passes after a failed quality gate.", registry=r
        )
        self.errors = Counter(
            "helios_errors", "Error events, by kind and stage.", ["kind", "stage"], registry=r
        )
        self.flag_changes = Counter(
            "helios_flag_changes", "Feature-flag overrides set or removed.", ["flag"], registry=r
        )
        self.gateway_requests = Counter(
            "helios_gateway_requests",
            "Gateway requests, by endpoint, tenant, key id (never the key), requested model "
            "and HTTP status.",
            ["endpoint", "tenant", "key_id", "model", "status"],
            registry=r,
        )
        self.stage_latency = Histogram(
            "helios_stage_duration_seconds",
            "Duration of each pipeline stage (persona calls and evidence gathering).",
            ["stage"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.call_latency = Histogram(
            "helios_llm_call_duration_seconds",
            "Duration of each model call that answered, by persona and source.",
            ["persona", "source"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "helios_ttft_seconds",
            "Time to first token of each model call, by persona and source.",
            ["persona", "source"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.task_latency = Histogram(
            "helios_task_duration_seconds",
            "Duration of tasks that ended (not abandoned ones).",
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.gateway_latency = Histogram(
            "helios_gateway_request_duration_seconds",
            "Duration of gateway requests, by endpoint.",
            ["endpoint"],
            buckets=LLM_BUCKETS,
            registry=r,
        )
        self.gateway_overhead = Histogram(
            "helios_gateway_overhead_seconds",
            "Time a gateway request spent outside the provider (its duration less the "
            "provider's; all of it for a cache hit), by endpoint.",
            ["endpoint"],
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.flag_value = Gauge(
            "helios_flag_value",
            "Feature flags in force (booleans as 0/1), as of the latest task or change.",
            ["flag"],
            registry=r,
        )
        self.ledger_lag = Gauge(
            "helios_ledger_write_lag_seconds",
            "Age of the oldest event this process has not yet written to the ledger.",
            registry=r,
        )
        self.ledger_pending = Gauge(
            "helios_ledger_pending_events", "Events waiting to be written.", registry=r
        )
        self.health_value = Gauge(
            "helios_health_value",
            "The health monitor's metrics over its window.",
            ["metric"],
            registry=r,
        )
        self.health_samples = Gauge(
            "helios_health_samples", "Tasks behind each health metric.", ["metric"], registry=r
        )
        self.health_rule_firing = Gauge(
            "helios_health_rule_firing",
            "1 when a monitor rule fires, else 0 (by the rule's name: several rules may watch"
            " one metric, and an alert-only rule rolls no flag back).",
            ["rule", "metric"],
            registry=r,
        )

    def emit(self, event: Event) -> None:
        """Update the metrics from one event (an :class:`EventSink`)."""
        found = problem(event, now=self._clock())
        if found is not None:
            self.events_skipped.inc()
            logger.warning(
                "metrics: skipped %s event of task %r: %s", event.type, event.task_id, found
            )
            return
        match event:
            case PersonaLLMRun():
                self._persona_run(event)
            case TaskStarted():
                self._task_started(event)
            case TaskFinished():
                self._task_finished(event)
            case CacheLookup():
                result = "hit" if event.hit else "miss"
                self.cache_lookups.labels(event.layer, event.persona, result).inc()
            case GateVerdict():
                self.gate_verdicts.labels("passed" if event.passed else "failed").inc()
                self._outcomes.verdict(event)
            case GatewayRequest():
                self._gateway_request(event)
            case EvidenceGathered():
                self.stage_latency.labels("evidence").observe(event.duration_s)
            case AsyncFallback():
                self.async_fallbacks.inc()
            case SecondPass():
                self.second_passes.inc()
            case ErrorEvent():
                self.errors.labels(event.kind, event.stage or "").inc()
                self._outcomes.error(event)
            case FlagChanged():
                self.flag_changes.labels(event.flag).inc()
                if event.new is not None:
                    self.set_flags({event.flag: event.new})
            case _:
                pass  # decisions of the governor and router have no metric yet

    def set_flags(self, flags: Mapping[str, FlagValue]) -> None:
        """Set the flag gauges; text values have no number and are skipped."""
        for flag, value in flags.items():
            if isinstance(value, bool | int | float):
                self.flag_value.labels(flag).set(float(value))

    def set_ledger_lag(self, lag_s: float, pending: int) -> None:
        """The ledger writer's backlog: age of its oldest unwritten event and their count."""
        self.ledger_lag.set(lag_s)
        self.ledger_pending.set(pending)

    def observe_health(self, report: HealthReport) -> None:
        """Publish a health monitor report."""
        for name, measured in report.metrics.items():
            if measured.value is not None:
                self.health_value.labels(name).set(measured.value)
            self.health_samples.labels(name).set(measured.samples)
        for outcome in report.rules:
            firing = self.health_rule_firing.labels(outcome.rule.label, outcome.rule.metric)
            firing.set(1 if outcome.fired else 0)

    def sweep(self) -> int:
        """Count the tasks that have been running longer than ``abandoned_after_s`` as
        abandoned; how many were. ``render`` sweeps first."""
        gone = self._outcomes.sweep(self._clock() - self.abandoned_after_s)
        self.tasks_running.set(self._outcomes.running)
        if gone:
            self.tasks_ended.labels("abandoned").inc(gone)
        return gone

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        self.sweep()
        return generate_latest(self.registry)

    def _task_started(self, event: TaskStarted) -> None:
        self.tasks_started.inc()
        if event.flags.get("async_thesis") is True:
            self.async_theses.inc()
        self._outcomes.started(event)
        self.tasks_running.set(self._outcomes.running)
        self.set_flags(event.flags)

    def _task_finished(self, event: TaskFinished) -> None:
        ending = self._outcomes.finished(event)
        self.tasks_running.set(self._outcomes.running)
        if ending is None:
            return  # already counted as abandoned
        self.tasks_ended.labels(ending.status).inc()
        if ending.accepted:
            self.tasks_accepted.inc()
        self.task_latency.observe(event.duration_s)

    def _gateway_request(self, event: GatewayRequest) -> None:
        key_id = event.key_id or NO_LABEL
        model = event.model
        if model not in self._gateway_models:
            if len(self._gateway_models) < MAX_GATEWAY_MODELS:
                self._gateway_models.add(model)
            else:
                model = OTHER_MODEL
        labels = (event.endpoint, event.tenant, key_id, model, str(event.status))
        self.gateway_requests.labels(*labels).inc()
        self.gateway_latency.labels(event.endpoint).observe(event.duration_s)
        with self._lock:
            provider_s = self._provider_s.pop(event.task_id, None)
        if provider_s is not None:  # a call answered: what the gateway added to it
            overhead = max(0.0, event.duration_s - provider_s)
            self.gateway_overhead.labels(event.endpoint).observe(overhead)

    def _persona_run(self, event: PersonaLLMRun) -> None:
        persona, model = event.persona, event.model
        source = event.cache_layer or PROVIDER
        self.calls.labels(persona, event.provider, model, source).inc()
        self.stage_latency.labels(event.stage).observe(event.duration_s)
        self.call_latency.labels(persona, source).observe(event.duration_s)
        self.ttft.labels(persona, source).observe(event.ttft_s)
        if not self._outcomes.is_open(event.task_id):
            provider_s = 0.0 if event.cache_layer else event.duration_s
            with self._lock:
                self._provider_s[event.task_id] = (
                    self._provider_s.get(event.task_id, 0.0) + provider_s
                )
                while len(self._provider_s) > REMEMBERED:
                    self._provider_s.popitem(last=False)
        tokens = {
            "input": event.input_tokens,
            "output": event.output_tokens,
            "cache_read": event.cache_read_tokens,
            "cache_write": event.cache_write_tokens,
        }
        for kind, count in tokens.items():
            if count:
                self.tokens.labels(persona, model, kind).inc(count)
        if event.cost_usd:
            self.cost.labels(persona, model).inc(event.cost_usd)
        # A counter only grows: a prompt-cache write that cost more than it saved (a
        # negative saving) is left out here; the ledger keeps it for `helios ledger`.
        # Without a response-cache layer, a saving comes from provider prompt caching.
        layer = event.cache_layer or "L1"
        if event.cost_saved_usd and event.cost_saved_usd > 0:
            self.cost_saved.labels(persona, model, layer).inc(event.cost_saved_usd)
        if event.cache_layer and event.time_saved_s and event.time_saved_s > 0:
            self.time_saved.labels(persona, event.cache_layer).inc(event.time_saved_s)
