"""What every command shares: the settings file named on the command line and the consoles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from helios.config.settings import Settings, load_settings

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
