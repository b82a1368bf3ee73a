"""The three packages install under one namespace, ``ncgrok.theory|simulate|empirical``.

Generic top-level names (``theory``, ``simulate``, ``empirical``) would collide with any other
project's modules of that name in site-packages; they must not be importable once the working
directory is outside the repository.
"""
import os
import subprocess
import sys


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    """Run ``code`` as an installed user would: outside the repository and without PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_generic_top_level_names_are_not_importable(tmp_path):
    for name in ("theory", "simulate", "empirical"):
        result = _python(f"import {name}", tmp_path)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, name


def test_namespaced_packages_import_outside_the_repository(tmp_path):
    result = _python("import ncgrok.theory.collapse, ncgrok.simulate.ufm, ncgrok.cli; print('ok')", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_theory_imports_neither_torch_nor_the_cli(tmp_path):
    code = ("import sys, ncgrok.theory.collapse, ncgrok.theory.generalization, ncgrok.theory.timescales;"
            "print(sorted(m for m in ('torch', 'ncgrok.cli', 'matplotlib') if m in sys.modules))")
    result = _python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
