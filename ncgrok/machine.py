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


# the CPU flags (Linux /proc/cpuinfo names) of native bfloat16 arithmetic on x86
BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bfloat16(cpuinfo: str | None = None) -> tuple[str, ...]:
    """Which of `BFLOAT16_FLAGS` the CPU has (empty: no native bfloat16), from ``cpuinfo`` (the text of
    /proc/cpuinfo; read from the machine when None, empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return ()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return tuple(flag for flag in BFLOAT16_FLAGS if flag in flags)
    return ()


def describe() -> str:
    """One line: CPU model, logical cores, native bfloat16 (AVX512-BF16/AMX flags or none), and (when
    torch is already imported) its kernel capability."""
    parts = [f"CPU: {cpu_model()}", f"{os.cpu_count()} logical cores",
             f"native bfloat16: {', '.join(native_bfloat16()) or 'none'}"]
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch {torch.__version__} ({torch.backends.cpu.get_cpu_capability()} kernels, "
                     f"{torch.get_num_threads()} threads)")
    return "; ".join(parts)
