"""How the dashboard writes numbers and times, and the Jinja2 environment its templates use.

Every time is ISO 8601 in UTC with its offset; a price nobody knows reads ``unknown``,
never ``$0``; a rate with nothing to divide reads ``-``.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates

from helios.ledger.events import Event

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def iso_time(timestamp: float | None) -> str:
    if timestamp is None or not math.isfinite(timestamp):
        return "-"
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "-"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 1000:.0f} ms" if abs(value) < 1.0 else f"{value:.2f} s"


def dollars(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "unknown"
    return f"${value:.4f}" if abs(value) < 100 else f"${value:,.2f}"


def number(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def raw(value: Any) -> str:
    """A number as the page's ``data-value`` attributes carry it: the exact figure, for
    scripts and tests to read, beside the rounded one people read."""
    if value is None:
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def event_json(event: Event) -> str:
    return json.dumps(event.model_dump(mode="json"), indent=2, ensure_ascii=False)


def root_of(request: Request) -> str:
    """The path prefix the app is served under (an ASGI ``root_path``), for the links."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        iso=iso_time,
        percent=percent,
        seconds=seconds,
        dollars=dollars,
        number=number,
        raw=raw,
        event_json=event_json,
    )
    return Jinja2Templates(env=environment, context_processors=[_root])


def _root(request: Request) -> dict[str, Any]:
    return {"root": root_of(request)}
