"""What machine a number was measured on: every benchmark prints this line with its results.

Performance here is reported as ratios measured in one process, but the ratios themselves depend on
the CPU (an AMD EPYC with AVX2 and an Intel Xeon with AVX-512 differ), so the model goes with them.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """One line: CPU model, logical cores, and (when torch is already imported) its kernel capability."""
    parts = [f"CPU: {cpu_model()}", f"{os.cpu_count()} logical cores"]
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels, "
                     f"{torch.get_num_threads()} threads)")
    return "; ".join(parts)
