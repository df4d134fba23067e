"""What the benchmarks share: a throwaway data directory, the simulator in its own pinned
process and the machine they ran on. Each script runs from this folder, so ``from common
import ...``. Percentiles come from :func:`helios.percentiles.percentile`, the definition
Helios itself reports."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATA_DIR_VARIABLE = "HELIOS_DATA_DIR"


@contextlib.contextmanager
def temporary_data_dir() -> Iterator[Path]:
    """``HELIOS_DATA_DIR`` set to a fresh temporary directory while the block runs, then
    restored (and the directory removed).

    Every file Helios keeps where the settings name no path (response cache, ledger,
    governor state) then lands there, so a benchmark never reads nor writes the user's
    own: a cached reply from an earlier run cannot answer a timed call, and timings never
    end up in the real ledger. Processes started inside the block (the simulator, a
    benchmark server) inherit it.
    """
    previous = os.environ.get(DATA_DIR_VARIABLE)
    with tempfile.TemporaryDirectory(prefix="helios-bench-data-") as folder:
        os.environ[DATA_DIR_VARIABLE] = folder
        try:
            yield Path(folder)
        finally:
            if previous is None:
                os.environ.pop(DATA_DIR_VARIABLE, None)
            else:
                os.environ[DATA_DIR_VARIABLE] = previous


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pin_cores(server_pid: int, client_pid: int) -> None:
    """Simulator on the last core, this process on the others: on 2 cores, two processes
    that wander between cores add more noise than the differences being measured."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2:
        return
    os.sched_setaffinity(server_pid, {cores[-1]})
    os.sched_setaffinity(client_pid, set(cores[:-1]))


def start_simulator(port: int, *options: str) -> subprocess.Popen[bytes]:
    """``helios sim --port PORT OPTIONS...`` pinned to its own core, once it accepts."""
    helios_cli = Path(sys.executable).with_name("helios")
    process = subprocess.Popen(
        [str(helios_cli), "sim", "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    pin_cores(process.pid, client_pid=os.getpid())
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    _, stderr = process.communicate()
    raise SystemExit(f"the simulator did not start: {stderr.decode(errors='replace')}")


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
    }


def write_result(path: Path, result: dict[str, Any]) -> None:
    """``result`` as indented JSON at ``path`` (its folder made if missing), and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
