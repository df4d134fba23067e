"""The resource governor: reserve budget before a call, commit the real usage after it.

::

    reservation = await governor.reserve(request, provider, model, priority="normal")
    # reservation.decision: "allow"     -> call; then commit(reservation, usage) or release()
    #                       "downgrade" -> the router retries with reservation.suggested_tier
    #                       "defer"     -> the scheduler waits reservation.eta_s, then retries
    # no room and the budget says "reject" (or nothing cheaper / no wait short enough):
    #                       BudgetExceeded(account=, window=, resets_at=)

A call is charged against every window of every budget that covers its provider, all or
nothing (see :mod:`helios.governance.state.base`). Normal priority may fill each window only
up to ``(1 - high_priority_share)`` of its limit; high priority may use all of it. Units are
tier-weighted tokens, requests or dollars, per budget. Each decision is one
``GovernorDecision`` event.

Besides the configured budgets (held while ``hold_budgets``; :meth:`Governor.status` shows
them either way), a ``budget_source`` may add budgets that depend on who calls: an API
key's own budget and rate limit (:mod:`helios.keys.budgets`), asked at every reservation and
held the same way. A call that no budget of either kind concerns is allowed silently: no
state is touched and no event recorded.

When the state store cannot be reached (:class:`~helios.errors.GovernorStateError`: a
Redis that is down or hangs, past its deadline or behind its open circuit breaker), a
budget cannot be checked, and a budget is a safety control: by default the call is refused
(``on_state_error="reject"``: the error reaches the caller, a 503 with ``Retry-After`` at
the gateway), or, where availability matters more than the spending cap, let through
unbudgeted (``"allow"``: a warning and an ``allow`` event marked ``state_unavailable``).
Either way it is decided within the store's deadline, never by waiting on the store. A
commit or release that fails after the call is logged and dropped: the call was made and
answered, and its reservation expires after ``stale_reservation_s``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal, Protocol

from helios.breaker import failure_log_level
from helios.catalog import Catalog, ModelEntry, Tier
from helios.config.governor import BudgetSettings, GovernorSettings, WindowKind, WindowSettings
from helios.errors import BudgetExceeded, GovernorStateError
from helios.governance.estimate import TokenEstimate, Tokenizer, estimate_tokens
from helios.governance.state import GovernorState, open_state
from helios.governance.windows import Charge, ReserveResult, WindowSpec
from helios.ledger.events import FlagValue, GovernorDecision
from helios.ledger.sink import EventSink
from helios.messages import CallContext, Priority, Request, Usage

Decision = Literal["allow", "downgrade", "defer"]
OnStateError = Literal["reject", "allow"]
Clock = Callable[[], float]
TIERS_BY_COST: tuple[Tier, ...] = ("strong", "fast", "local")

logger = logging.getLogger(__name__)


def cheaper_tier(tier: Tier | None) -> Tier | None:
    """One step down strong -> fast -> local; ``None`` when nothing is cheaper."""
    if tier is None or tier == TIERS_BY_COST[-1]:
        return None
    return TIERS_BY_COST[TIERS_BY_COST.index(tier) + 1]


@dataclass(frozen=True)
class Reservation:
    """The governor's answer. Only an ``allow`` holds units; commit or release it once."""

    id: str
    decision: Decision
    provider: str
    model: str
    tier: Tier | None
    priority: Priority
    task_id: str
    estimate: TokenEstimate
    units: tuple[tuple[str, float], ...] = ()
    """(account, units reserved) per covering budget."""
    account: str = ""
    window: str = ""
    """downgrade / defer: the window that had no room."""
    suggested_tier: Tier | None = None
    eta_s: float | None = None
    tenant: str = "default"
    key_id: str | None = None
    """The API key the call came in with (its budgets are among ``units``)."""

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"


@dataclass(frozen=True)
class WindowStatus:
    account: str
    window: str
    kind: WindowKind
    used: float
    reserved: float
    limit: float
    remaining: float
    resets_at: float | None


class BudgetSource(Protocol):
    """Budgets that depend on who makes a call (an API key's), asked at every reservation.
    Their accounts must differ from the configured ones (a key's hold a ``:``)."""

    async def budgets_for(self, context: CallContext) -> Sequence[BudgetSettings]: ...


@dataclass(frozen=True)
class _Slot:
    budget: BudgetSettings
    window: WindowSettings
    spec: WindowSpec


class Governor:
    def __init__(
        self,
        state: GovernorState,
        budgets: Sequence[BudgetSettings],
        catalog: Catalog,
        *,
        sink: EventSink | None = None,
        clock: Clock = time.time,
        tokenizer: Tokenizer | None = None,
        default_max_tokens: int = 1024,
        hold_budgets: bool = True,
        budget_source: BudgetSource | None = None,
        on_state_error: OnStateError = "reject",
    ) -> None:
        """``clock`` is wall-clock epoch seconds (windows persist across processes).
        ``hold_budgets`` false: calls are not held to ``budgets`` (``governor.enabled`` is
        off), only to those of ``budget_source``. ``on_state_error``: see the module doc."""
        self.state = state
        self.budgets = list(budgets)
        self.hold_budgets = hold_budgets
        self.budget_source = budget_source
        self.catalog = catalog
        self.sink = sink
        self.clock = clock
        self.tokenizer = tokenizer
        self.default_max_tokens = default_max_tokens
        self.on_state_error = on_state_error
        self._open: dict[str, list[tuple[_Slot, Charge]]] = {}

    @classmethod
    def from_settings(
        cls,
        settings: GovernorSettings,
        catalog: Catalog,
        *,
        sink: EventSink | None = None,
        clock: Clock = time.time,
        tokenizer: Tokenizer | None = None,
        hold_budgets: bool = True,
        budget_source: BudgetSource | None = None,
    ) -> Governor:
        return cls(
            open_state(settings),
            settings.budgets,
            catalog,
            sink=sink,
            clock=clock,
            tokenizer=tokenizer,
            default_max_tokens=settings.default_max_tokens,
            hold_budgets=hold_budgets,
            budget_source=budget_source,
            on_state_error=settings.on_state_error,
        )

    async def close(self) -> None:
        await self.state.close()

    async def reserve(
        self, request: Request, provider: str, model: str, *, priority: Priority = "normal"
    ) -> Reservation:
        """Reserve the call's estimated units, or say what to do instead (see module doc)."""
        budgets = await self._budgets_for(request.context)
        entry = self._entry(provider, model)
        tier = entry.tier if entry is not None else None
        estimate = estimate_tokens(
            request, tokenizer=self.tokenizer, default_max_tokens=self.default_max_tokens
        )
        planned = Usage(input_tokens=estimate.input_tokens, output_tokens=estimate.output_tokens)
        held: list[tuple[_Slot, Charge]] = []
        units: dict[str, float] = {}
        for budget in budgets:
            if not budget.covers(provider):
                continue
            amount = _units(budget, entry, planned)
            units[budget.account] = amount
            share = 1.0 if priority == "high" else 1.0 - budget.high_priority_share
            for window in budget.windows:
                slot = _Slot(budget, window, _spec(budget, window))
                held.append((slot, Charge(slot.spec, amount, window.limit * share)))
        reservation = Reservation(
            id=uuid.uuid4().hex,
            decision="allow",
            provider=provider,
            model=model,
            tier=tier,
            priority=priority,
            task_id=request.context.task_id or "-",
            estimate=estimate,
            units=tuple(units.items()),
            tenant=request.context.tenant,
            key_id=request.context.key_id,
        )
        if not budgets:
            return reservation  # nothing concerns this call: allowed, nothing recorded
        if held:
            try:
                result = await self.state.try_reserve(
                    reservation.id, [charge for _, charge in held], self.clock()
                )
            except GovernorStateError as exc:
                return self._state_unavailable(reservation, exc)
            if not result.ok:
                return self._refuse(reservation, held, result)
            self._open[reservation.id] = held
        account = ",".join(units) if units else ""
        self._emit(reservation, "allow", account, "")
        return reservation

    async def commit(
        self,
        reservation: Reservation,
        usage: Usage,
        *,
        provider: str | None = None,
        model: str | None = None,
    ) -> None:
        """The actual usage replaces the estimate (once; later calls do nothing), priced at
        the model that answered (``provider``/``model``: a fallback's) when it is given."""
        held = self._open.pop(reservation.id, None)
        if held is None:
            return
        entry = self._entry(provider or reservation.provider, model or reservation.model)
        charges = [
            Charge(charge.window, _units(slot.budget, entry, usage), charge.limit)
            for slot, charge in held
        ]
        try:
            await self.state.commit(reservation.id, charges, self.clock())
        except GovernorStateError as exc:
            self._settle_failed("commit", reservation, exc)

    async def release(self, reservation: Reservation) -> None:
        """Give the units back (the call failed before using any)."""
        held = self._open.pop(reservation.id, None)
        if held is None:
            return
        try:
            await self.state.release(reservation.id, [c.window for _, c in held], self.clock())
        except GovernorStateError as exc:
            self._settle_failed("release", reservation, exc)

    def _state_unavailable(self, reservation: Reservation, exc: GovernorStateError) -> Reservation:
        """No state to check the budgets against: refuse the call, or let it through
        unbudgeted, as ``on_state_error`` says (see the module doc)."""
        account = ",".join(name for name, _ in reservation.units)
        level = failure_log_level(self.state.breaker)
        if self.on_state_error == "reject":
            self._emit(reservation, "reject", account, "", unavailable=True)
            logger.log(level, "governor refuses %s: %s", reservation.model, exc)
            raise exc
        self._emit(reservation, "allow", account, "", unavailable=True)
        logger.log(level, "governor lets %s through unbudgeted: %s", reservation.model, exc)
        return reservation  # holds nothing: commit and release have nothing to settle

    def _settle_failed(self, what: str, reservation: Reservation, exc: GovernorStateError) -> None:
        level = failure_log_level(self.state.breaker)
        logger.log(
            level,
            "governor could not %s reservation %s (it expires on its own): %s",
            what,
            reservation.id,
            exc,
        )

    async def status(self, context: CallContext | None = None) -> list[WindowStatus]:
        """Every window of every configured budget, for ``helios budget``; with a
        ``context``, also those of its caller's (its API key's) budgets."""
        budgets = list(self.budgets)
        if context is not None and self.budget_source is not None:
            budgets.extend(await self.budget_source.budgets_for(context))
        slots = [
            _Slot(budget, window, _spec(budget, window))
            for budget in budgets
            for window in budget.windows
        ]
        usages = await self.state.usage([slot.spec for slot in slots], self.clock())
        return [
            WindowStatus(
                account=slot.budget.account,
                window=slot.window.name,
                kind=slot.window.kind,
                used=usage.used,
                reserved=usage.reserved,
                limit=slot.window.limit,
                remaining=max(0.0, slot.window.limit - usage.used - usage.reserved),
                resets_at=usage.resets_at,
            )
            for slot, usage in zip(slots, usages, strict=True)
        ]

    def _refuse(
        self, reservation: Reservation, held: list[tuple[_Slot, Charge]], result: ReserveResult
    ) -> Reservation:
        blocked = result.blocked
        slot = held[blocked[0]][0]
        budget = slot.budget
        frees = [result.windows[index].frees_at for index in blocked]
        known = [at for at in frees if at is not None]
        frees_at = max(known) if len(known) == len(frees) else None
        eta_s = None if frees_at is None else max(0.0, frees_at - result.now)
        suggested = cheaper_tier(reservation.tier)
        if budget.on_exhausted == "downgrade" and suggested is not None:
            answer = replace(
                reservation,
                decision="downgrade",
                account=budget.account,
                window=slot.window.name,
                suggested_tier=suggested,
            )
        elif budget.on_exhausted == "defer" and eta_s is not None and eta_s <= budget.max_defer_s:
            answer = replace(
                reservation,
                decision="defer",
                account=budget.account,
                window=slot.window.name,
                eta_s=eta_s,
            )
        else:
            resets_at = frees_at if frees_at is not None else result.windows[blocked[0]].resets_at
            self._emit(reservation, "reject", budget.account, slot.window.name, resets_at)
            when = "" if resets_at is None else f"; room again at {_local_iso(resets_at)}"
            raise BudgetExceeded(
                f"budget '{budget.account}' window '{slot.window.name}' has no room for "
                f"{reservation.model} ({reservation.priority} priority){when}",
                account=budget.account,
                window=slot.window.name,
                resets_at=resets_at,
            )
        self._emit(answer, answer.decision, budget.account, slot.window.name)
        return answer

    async def _budgets_for(self, context: CallContext) -> list[BudgetSettings]:
        budgets = self.budgets if self.hold_budgets else []
        if self.budget_source is None:
            return budgets
        return [*budgets, *await self.budget_source.budgets_for(context)]

    def _entry(self, provider: str, model: str) -> ModelEntry | None:
        return (
            self.catalog.lookup(provider, model)
            or self.catalog.find(f"{provider}:{model}")
            or self.catalog.find(model)
        )

    def _emit(
        self,
        reservation: Reservation,
        decision: Literal["allow", "downgrade", "defer", "reject"],
        account: str,
        window: str,
        resets_at: float | None = None,
        *,
        unavailable: bool = False,
    ) -> None:
        if self.sink is None:
            return
        details: dict[str, FlagValue] = {
            "provider": reservation.provider,
            "model": reservation.model,
            "priority": reservation.priority,
            "estimated_tokens": reservation.estimate.total,
        }
        for name, amount in reservation.units:
            details[f"units.{name}"] = amount
        if reservation.tier is not None:
            details["tier"] = reservation.tier
        if reservation.key_id is not None:  # the key's id, never the key itself
            details["tenant"] = reservation.tenant
            details["key_id"] = reservation.key_id
        if reservation.suggested_tier is not None:
            details["suggested_tier"] = reservation.suggested_tier
        if reservation.eta_s is not None:
            details["eta_s"] = reservation.eta_s
        if resets_at is not None:
            details["resets_at"] = resets_at
        if unavailable:
            details["state_unavailable"] = True
        self.sink.emit(
            GovernorDecision(
                task_id=reservation.task_id,
                decision=decision,
                account=account,
                window=window,
                details=details,
            )
        )


def _spec(budget: BudgetSettings, window: WindowSettings) -> WindowSpec:
    return WindowSpec(f"{budget.account}:{window.name}", window.kind, window.length_s)


def _units(budget: BudgetSettings, entry: ModelEntry | None, usage: Usage) -> float:
    """What one call counts against ``budget``. An unknown model counts tokens at weight 1
    and costs nothing in dollars (it has no price to count)."""
    if budget.unit == "requests":
        return 1.0
    if budget.unit == "usd":
        return entry.cost(usage) if entry is not None else 0.0
    weight = budget.tier_weights.get(entry.tier, 1.0) if entry is not None else 1.0
    return usage.total_tokens * weight


def _local_iso(epoch: float) -> str:
    """ISO 8601 in the local time zone, with its offset: ``2026-12-06T14:00:00+01:00``."""
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
