"""What the benchmarks share: the simulator in its own pinned process and the machine they
ran on. Each script runs from this folder, so ``from common import ...``. Percentiles come
from :func:`helios.percentiles.percentile`, the definition Helios itself reports."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


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
