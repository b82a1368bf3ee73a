"""The numerically sensitive tests pass under other CPU kernel kinds, not only this machine's.

Developers, CI and users run on different x86-64 parts (AMD with AVX2, Intel with AVX-512). torch picks
its vectorised kernels by the CPU, and ``ATEN_CPU_CAPABILITY`` forces a lower kind. This test re-runs
every test marked ``cpu_kernels`` (the pinned reference trajectory, byte-for-byte resume, batched ==
alone, the optimizers against torch.optim) in a child pytest under ``default`` (scalar code) and
``avx2``, so a tolerance that only holds for the local kernels fails here, on the developer's machine,
instead of on a user's. Kinds above the CPU's own (``avx512`` on an AVX2 part) cannot be emulated.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("capability", ["default", "avx2"])
def test_kernel_sensitive_tests_pass_under(capability):
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cpu_kernels", "-p", "no:cacheprovider", "-x"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    tail = "\n".join(result.stdout.splitlines()[-30:])
    assert result.returncode == 0, f"ATEN_CPU_CAPABILITY={capability}:\n{tail}\n{result.stderr[-2000:]}"
    assert " passed" in tail and "no tests ran" not in tail
