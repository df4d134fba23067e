"""What every command shares: the settings file named on the command line and the consoles."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from helios.config.settings import Settings, load_settings
from helios.errors import ConfigError
from helios.ledger.store import LedgerStore
from helios.runtime import Runtime

T = TypeVar("T")

console_out = Console(highlight=False)
console_err = Console(stderr=True, highlight=False)


def print_error(exc: BaseException) -> None:
    # Text, not markup: messages such as "pip install 'helios[local]'" hold brackets.
    console_err.print(Text("error: ", style="bold red") + Text(str(exc)), soft_wrap=True)


@dataclass
class CliContext:
    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> Settings:
        return load_settings(self.config_file, self.overrides)


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliContext) else CliContext()


def with_runtime(settings: Settings, work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run ``work`` on a runtime built from ``settings`` and closed afterwards."""

    async def run() -> T:
        async with Runtime.open(settings) as runtime:
            return await work(runtime)

    return asyncio.run(run())


def ledger_store(runtime: Runtime) -> LedgerStore:
    """The runtime's ledger store, or a clear refusal when the ledger is switched off."""
    if runtime.store is None:
        raise ConfigError(
            "the ledger is disabled (ledger.enabled: false): enable it to read or change it"
        )
    return runtime.store
