"""An API key's budget and rate limit, as budgets the governor holds a call to.

A key created with ``--budget 20usd/5h --rpm 60`` gives every call made with it two more
budgets besides the configured ones:

- ``key:<id>``: 20 usd per sliding 5-hour window (the unit as written: usd, tokens or
  requests; tokens count as they are, whatever the model's tier);
- ``key:<id>:rpm``: 60 requests per sliding 60-second window (named ``1m``).

Both reject a call that does not fit (a 429 at the gateway, naming the window and when it
has room again); neither keeps a share for high priority, and an admin key is held to its
own budget like any other. The governor asks :class:`KeyBudgets` at every reservation;
the key's row comes from the process's :class:`~helios.keys.directory.KeyDirectory`, so
this costs no store read on the hot path.
"""

from __future__ import annotations

from helios.catalog import Tier
from helios.config.governor import BudgetSettings, BudgetUnit, WindowSettings
from helios.keys.directory import KeyDirectory
from helios.keys.model import ApiKey
from helios.messages import CallContext

_TOKENS_AS_THEY_ARE: dict[Tier, float] = {"strong": 1.0, "fast": 1.0, "local": 1.0}


class KeyBudgets:
    """The governor's source of per-call budgets: those of the call's API key."""

    def __init__(self, directory: KeyDirectory) -> None:
        self.directory = directory

    async def budgets_for(self, context: CallContext) -> list[BudgetSettings]:
        if context.key_id is None:
            return []
        key = await self.directory.get(context.key_id)
        return [] if key is None else key_budgets(key)


def key_budgets(key: ApiKey) -> list[BudgetSettings]:
    budgets: list[BudgetSettings] = []
    if key.budget is not None:
        spec = key.budget
        window = WindowSettings(
            name=spec.window, kind="sliding", length_s=spec.window_s, limit=spec.amount
        )
        budgets.append(_budget(f"key:{key.id}", spec.unit, window))
    if key.rpm is not None:
        window = WindowSettings(name="1m", kind="sliding", length_s=60.0, limit=float(key.rpm))
        budgets.append(_budget(f"key:{key.id}:rpm", "requests", window))
    return budgets


def _budget(account: str, unit: BudgetUnit, window: WindowSettings) -> BudgetSettings:
    # Built without validation on purpose: the account holds ':', which a configured
    # account's pattern forbids, so a key's windows can never be those of a configured
    # budget. Every other value was checked when the key was created.
    return BudgetSettings.model_construct(
        account=account,
        providers=[],
        unit=unit,
        tier_weights=dict(_TOKENS_AS_THEY_ARE),
        windows=[window],
        high_priority_share=0.0,
        on_exhausted="reject",
        max_defer_s=0.0,
    )
