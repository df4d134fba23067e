"""How every command writes money, moments and tables, the same way everywhere.

- Money: ``$0.001234``. A price nobody knows (a model missing from the catalogue, a local
  model without one) is ``unknown``, never ``$0.000000``; a sum with some unknown parts is
  ``at least $0.001234``.
- Moments: ISO 8601 with the local time zone's offset, ``2026-12-06T09:15:00+01:00``.
- Tables: on a terminal, at its width (rich wraps the cells); piped or redirected, at the
  table's own width, so that no cell is cut at 80 columns.
"""

from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.table import Table

UNKNOWN = "unknown"
NO_MOMENT = "—"
_UNLIMITED = 100_000  # columns a table may take to be measured whole


def usd(value: float | None, *, digits: int = 6) -> str:
    """``$0.001234``, or ``unknown`` for ``None``."""
    return UNKNOWN if value is None else f"${value:.{digits}f}"


def usd_total(total: float, *, unpriced: int, calls: int, digits: int = 6) -> str:
    """A sum over ``calls`` of which ``unpriced`` had no known price: ``unknown`` when none
    had one, ``at least $X`` when some had none."""
    if calls and unpriced >= calls:
        return UNKNOWN
    amount = f"${total:.{digits}f}"
    return f"at least {amount}" if unpriced else amount


def moment(epoch: float | None, *, missing: str = NO_MOMENT) -> str:
    """Seconds since the epoch as local ISO 8601 with the offset, to the second."""
    if epoch is None:
        return missing
    try:
        return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):  # a stamp no calendar holds (year 56971)
        return missing


def print_table(table: Table, console: Console) -> None:
    """Print ``table`` whole: at the terminal's width on a terminal, else at its own."""
    if console.is_terminal:
        console.print(table)
        return
    wide = console.options.update_width(_UNLIMITED)
    natural = console.measure(table, options=wide).maximum
    if natural <= console.width:
        console.print(table)
        return
    # The console's width bounds every print; a console of the table's width does not.
    Console(file=console.file, width=natural, highlight=False, no_color=console.no_color).print(
        table
    )
