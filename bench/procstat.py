"""Memory and CPU time of a process, from Linux's /proc (no psutil).

The parsers are pure (tested on sample text); :func:`rss_bytes` and :func:`cpu_seconds` read
``/proc/<pid>/status`` and ``/proc/<pid>/stat`` of a running process.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cpu_seconds", "parse_cpu_seconds", "parse_rss_bytes", "rss_bytes"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def parse_rss_bytes(status: str) -> int:
    """Resident set size from the text of ``/proc/<pid>/status`` (its ``VmRSS`` line, in kB)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit != "kB":
                raise ValueError(f"unexpected VmRSS unit {unit!r}")
            return int(value) * 1024
    raise ValueError("no VmRSS line (is the process a zombie?)")


def parse_cpu_seconds(stat: str, clock_ticks: int = _CLOCK_TICKS) -> float:
    """User plus system CPU seconds of all the process's threads, from ``/proc/<pid>/stat``.

    The command name (field 2) is in parentheses and may hold spaces, so fields are counted
    after its closing parenthesis: ``utime`` and ``stime`` are fields 14 and 15 of the line.
    """
    after_name = stat.rsplit(")", 1)[1].split()
    utime, stime = int(after_name[11]), int(after_name[12])  # fields 14 and 15
    return (utime + stime) / clock_ticks


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` now."""
    return parse_rss_bytes(Path(f"/proc/{pid}/status").read_text())


def cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has used so far (all threads, user and system)."""
    return parse_cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
