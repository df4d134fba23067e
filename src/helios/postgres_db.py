"""What the PostgreSQL stores share (the ledger, the pgvector index): connection settings,
where a URL points (for messages that never show the password) and one-line driver errors.

Imports nothing from psycopg, so each store keeps its own lazy import of the driver.
"""

from __future__ import annotations

import math
import os
from typing import Any


def connect_kwargs(
    *, application_name: str, options: str, connect_timeout_s: float
) -> dict[str, Any]:
    """psycopg connection arguments: autocommit (transactions are always explicit) and TCP
    keepalives, so a server that vanishes mid-statement is noticed in about a minute and the
    statement fails instead of waiting on a dead socket for hours."""
    return {
        "autocommit": True,
        # libpq takes whole seconds and treats less than 2 as 2
        "connect_timeout": max(2, math.ceil(connect_timeout_s)),
        "options": options,
        "application_name": application_name,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }


def location(info: dict[str, Any]) -> str:
    """``host:port/database`` of a parsed conninfo, with libpq's environment defaults."""
    host = info.get("host") or info.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = info.get("port") or os.environ.get("PGPORT") or "5432"
    database = info.get("dbname") or os.environ.get("PGDATABASE") or info.get("user") or ""
    return f"{host}:{port}/{database}"


def one_line(exc: BaseException) -> str:
    """The driver's (often multi-line) message on one line, for one-line errors."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__
