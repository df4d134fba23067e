"""Prometheus metrics fed by the event stream.

:class:`HeliosMetrics` is an :class:`~helios.ledger.sink.EventSink`: put it beside the
ledger in a :class:`~helios.ledger.sink.FanOut` and every event updates counters and
histograms (a few dictionary look-ups and additions, no I/O). Each instance owns its
``CollectorRegistry`` - never prometheus_client's global one - so two engines, or two
tests, never share samples. ``render()`` produces the text exposition format.

Tasks end in ``helios_tasks_total{outcome}``: ``success``, ``failure``, or ``abandoned``
when a task started more than ``abandoned_after_s`` ago and no end arrived (its process
was killed); an end that arrives after that is not counted twice. ``helios_tasks_running``
counts the tasks started and not yet ended or abandoned. An event with implausible values
(:mod:`helios.ledger.validation`) updates nothing: it is counted in
``helios_ledger_events_skipped_total`` and logged.
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
    PersonaLLMRun,
    SecondPass,
    TaskFinished,
    TaskStarted,
)
from helios.ledger.validation import problem
from helios.ops.monitor import HealthReport

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

# From a cached reply (milliseconds) to a long local-model generation (minutes).
LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
TASK_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200)
REMEMBERED_ABANDONED = 10_000  # abandoned task ids kept to ignore their late ends

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
        # render() runs in a worker thread while events arrive on the loop
        self._lock = threading.Lock()
        self._open: dict[str, float] = {}  # task id -> start time, neither ended nor abandoned
        self._abandoned: OrderedDict[str, None] = OrderedDict()
        r = self.registry
        self.requests = Counter(
            "helios_requests",
            "Persona calls, by persona, provider and model (cache hits included).",
            ["persona", "provider", "model"],
            registry=r,
        )
        self.tasks_started = Counter("helios_tasks_started", "Tasks started.", registry=r)
        self.tasks = Counter(
            "helios_tasks",
            "Tasks ended, by outcome (success, failure, abandoned: no end in time).",
            ["outcome"],
            registry=r,
        )
        self.tasks_running = Gauge(
            "helios_tasks_running", "Tasks started and not yet ended or abandoned.", registry=r
        )
        self.events_skipped = Counter(
            "helios_ledger_events_skipped",
            "Events left out for implausible values (a timestamp in ms, a NaN cost).",
            registry=r,
        )
        self.cache_hits = Counter(
            "helios_cache_hits", "Response-cache hits, by layer.", ["layer"], registry=r
        )
        self.cache_misses = Counter(
            "helios_cache_misses", "Response-cache misses, by layer.", ["layer"], registry=r
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
            "Money the caches saved (USD), by layer.",
            ["persona", "model", "layer"],
            registry=r,
        )
        self.async_fallbacks = Counter(
            "helios_async_fallbacks", "Async theses that fell back to sequential.", registry=r
        )
        self.second_passes = Counter(
            "helios_second_passes", "Synthesis passes after a failed quality gate.", registry=r
        )
        self.errors = Counter(
            "helios_errors", "Errors, by kind and stage.", ["kind", "stage"], registry=r
        )
        self.flag_changes = Counter(
            "helios_flag_changes", "Feature-flag overrides set or removed.", ["flag"], registry=r
        )
        self.stage_latency = Histogram(
            "helios_stage_duration_seconds",
            "Duration of each stage (persona calls and evidence gathering).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.task_latency = Histogram(
            "helios_task_duration_seconds",
            "Duration of whole tasks.",
            buckets=TASK_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "helios_ttft_seconds",
            "Time to first token, by persona.",
            ["persona"],
            buckets=TTFT_BUCKETS,
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
            "Age of the oldest event not yet written to the ledger.",
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
            "1 when a monitor rule fires, else 0.",
            ["metric", "flag"],
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
                self.tasks_started.inc()
                with self._lock:
                    self._open[event.task_id] = event.timestamp
                    self.tasks_running.set(len(self._open))
                self.set_flags(event.flags)
            case TaskFinished():
                self._task_finished(event)
            case CacheLookup():
                counter = self.cache_hits if event.hit else self.cache_misses
                counter.labels(event.layer).inc()
            case EvidenceGathered():
                self.stage_latency.labels("evidence").observe(event.duration_s)
            case AsyncFallback():
                self.async_fallbacks.inc()
            case SecondPass():
                self.second_passes.inc()
            case ErrorEvent():
                self.errors.labels(event.kind, event.stage or "").inc()
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
            firing = self.health_rule_firing.labels(outcome.rule.metric, outcome.rule.flag)
            firing.set(1 if outcome.fired else 0)

    def sweep(self) -> int:
        """Count the tasks that have been running longer than ``abandoned_after_s`` as
        abandoned; how many were. ``render`` sweeps first."""
        deadline = self._clock() - self.abandoned_after_s
        with self._lock:
            gone = [task for task, started in self._open.items() if started < deadline]
            for task in gone:
                del self._open[task]
                self._abandoned[task] = None
            while len(self._abandoned) > REMEMBERED_ABANDONED:
                self._abandoned.popitem(last=False)
            self.tasks_running.set(len(self._open))
        if gone:
            self.tasks.labels("abandoned").inc(len(gone))
        return len(gone)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        self.sweep()
        return generate_latest(self.registry)

    def _task_finished(self, event: TaskFinished) -> None:
        with self._lock:
            self._open.pop(event.task_id, None)
            self.tasks_running.set(len(self._open))
            late = event.task_id in self._abandoned
            if late:
                del self._abandoned[event.task_id]
        if late:
            return  # already counted as abandoned
        self.tasks.labels("success" if event.success else "failure").inc()
        self.task_latency.observe(event.duration_s)

    def _persona_run(self, event: PersonaLLMRun) -> None:
        persona, model = event.persona, event.model
        self.requests.labels(persona, event.provider, model).inc()
        self.stage_latency.labels(event.stage).observe(event.duration_s)
        self.ttft.labels(persona).observe(event.ttft_s)
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
        if event.cost_saved_usd and event.cost_saved_usd > 0:
            # A counter only grows: a prompt-cache write that cost more than it saved (a
            # negative saving) is left out here; the ledger keeps it for `helios ledger`.
            # Without a response-cache layer, a saving comes from provider prompt caching.
            layer = event.cache_layer or "L1"
            self.cost_saved.labels(persona, model, layer).inc(event.cost_saved_usd)
