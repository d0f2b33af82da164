"""The machine a benchmark ran on: CPU model, cores, memory, Python and ONNX Runtime."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["cores", "describe", "machine_info"]


def _cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib(meminfo: str) -> float | None:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 2**20
    return None


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_info() -> dict[str, Any]:
    """What the figures depend on, and the load average when they were taken."""
    import onnxruntime

    return {
        "cpu": _cpu_model(_read("/proc/cpuinfo")),
        "cores": cores(),
        "memory_gib": _memory_gib(_read("/proc/meminfo")),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "platform": platform.platform(),
        "load_average": list(os.getloadavg()),
    }


def describe(machine: dict[str, Any]) -> str:
    """One line for a report's heading."""
    memory = machine.get("memory_gib")
    ram = f"{memory:.0f} GiB RAM" if memory else "RAM unknown"
    load = ", ".join(f"{value:.2f}" for value in machine.get("load_average", []))
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {ram}, Python {machine['python']}, "
        f"onnxruntime {machine['onnxruntime']} (load average at start: {load})"
    )
