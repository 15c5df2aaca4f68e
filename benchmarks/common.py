"""What every benchmark script prints: the machine it ran on, and latency percentiles."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Iterable
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> str:
    return f"nproc={os.cpu_count()}, {cpu_model()}, Python {platform.python_version()}"


def percentile(values: Iterable[float], pct: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least `pct` % of samples at or below it."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]
