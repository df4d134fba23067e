"""``helios route``: explain where the economic router would send a prompt, calling no model.

It asks the same router the engine asks (the runtime's: the same tiers, the same readiness
of each model here, the same model health from the ledger), so the decision it explains is
the one a call of this prompt would take. The governor may still send a call to a cheaper
tier when a budget has no room; that is decided at call time and recorded as
``governor_decision``.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from helios.cli.context import cli_context, console_out, with_runtime
from helios.cli.formatting import print_table
from helios.config.router import RouterSettings
from helios.errors import ConfigError
from helios.governance.router import NO_BUDGET, Route
from helios.messages import CallContext, Request, SamplingParams
from helios.runtime import Runtime

BUDGET_AT_CALL_TIME = "checked at call time by the governor (see `helios budget`)"


def route(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="The prompt to route.")],
    task_type: Annotated[str, typer.Option("--task-type", "-t", help="Task type.")] = "general",
    persona: Annotated[str | None, typer.Option("--persona", "-p", help="Persona.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option("--max-tokens", min=1, help="Expected reply length cap.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Explain the router's choice for a prompt: intent, score, features, rule, tier, model,
    fallbacks."""
    if not prompt.strip():
        raise ConfigError("the prompt is empty")
    settings = cli_context(ctx).settings()
    request = Request.of(
        prompt,
        model="auto",
        task_type=task_type,
        params=SamplingParams(max_tokens=max_tokens),
        context=CallContext(persona=persona),
    )

    async def decide(runtime: Runtime) -> tuple[Route, str]:
        governor = runtime.engine.governor
        budget = NO_BUDGET if governor is None else BUDGET_AT_CALL_TIME
        return runtime.router.decide(request), budget

    decision, budget = with_runtime(settings, decide)
    decision = decision.with_budget(budget)
    policy = settings.router
    if as_json:
        sys.stdout.write(json.dumps(_as_dict(decision, policy), indent=2) + "\n")
        return
    _print(decision, policy)


def _as_dict(decision: Route, policy: RouterSettings) -> dict[str, Any]:
    return {
        "intent": decision.intent,
        "cue": decision.cue,
        "score": decision.score,
        "features": {
            name: {
                "value": value,
                "weight": policy.feature_weight(name),
                "contribution": decision.contributions.get(name, 0.0),
            }
            for name, value in decision.features.items()
        },
        "thresholds": {"strong_above": policy.strong_above, "fast_above": policy.fast_above},
        "local_intents": list(policy.local_intents),
        "rule": decision.rule,
        "scored_tier": decision.scored_tier,
        "budget": decision.budget,
        "tier": decision.tier,
        "model": decision.model,
        "reason": decision.reason,
        "skipped": list(decision.skipped),
        "fallbacks": [{"tier": hop.tier, "model": hop.spec} for hop in decision.fallbacks],
    }


def _print(decision: Route, policy: RouterSettings) -> None:
    table = Table(title=f"complexity score {decision.score:.3f}")
    table.add_column("feature", no_wrap=True)
    for numeric in ("value", "weight", "contribution"):
        table.add_column(numeric, justify="right", no_wrap=True)
    for name, value in decision.features.items():
        weight = policy.feature_weight(name)
        contribution = decision.contributions.get(name, 0.0)
        table.add_row(name, f"{value:.3f}", f"{weight:.2f}", f"{contribution:.3f}")
    print_table(table, console_out)
    cue = f" (cue '{decision.cue}')" if decision.cue else " (no cue matched)"
    local = ", ".join(policy.local_intents) or "none"
    lines = [
        f"intent: {decision.intent}{cue}",
        f"thresholds: strong > {policy.strong_above:g}; local only for intents [{local}] "
        f"scoring <= {policy.fast_above:g}; else fast",
        f"score picks: {decision.scored_tier} ({decision.rule})",
        f"budget: {decision.budget}",
        *(f"passed over: {reason}" for reason in decision.skipped),
        f"chosen: {decision.tier} -> {decision.model}",
        "fallbacks: "
        + (" -> ".join(f"{hop.tier} ({hop.spec})" for hop in decision.fallbacks) or "none"),
    ]
    for line in lines:
        console_out.print(line, markup=False, soft_wrap=True)
