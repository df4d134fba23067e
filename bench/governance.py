"""Governance benchmarks in one run: the DAG scheduler's overhead, the governor's
reserve+commit latency per backend, and the economic router's cost simulation.

Each part is its own script (run alone for details or other options); this one runs the
three in turn, prints their tables and merges their results into
bench/results/governance.json.

The parts run in one temporary ``HELIOS_DATA_DIR`` (bench/common.py), which they inherit.

Usage: .venv/bin/python bench/governance.py   (set HELIOS_TEST_REDIS_URL for Redis)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from common import machine, temporary_data_dir

HERE = Path(__file__).parent
PARTS = {
    "scheduler": ("scheduler_overhead.py", "scheduler.json"),
    "governor": ("governor_latency.py", "governor.json"),
    "routing": ("routing_cost.py", "routing_cost.json"),
}


def main() -> None:
    merged: dict[str, object] = {"benchmark": "governance", "machine": machine()}
    with temporary_data_dir():
        for name, (script, result) in PARTS.items():
            print(f"\n== {name}: {script}", flush=True)
            subprocess.run([sys.executable, str(HERE / script)], check=True)
            merged[name] = json.loads((HERE / "results" / result).read_text())
    out = HERE / "results" / "governance.json"
    out.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
