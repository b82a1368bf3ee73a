"""ncgrok: Sakamoto & Sato, arXiv:2509.20829, as runnable and checked code.

Packages: :mod:`ncgrok.theory` (the paper's results, pure numpy/scipy/sympy), :mod:`ncgrok.simulate`
(toy dynamics), :mod:`ncgrok.empirical` (real networks, torch), :mod:`ncgrok.cli` (the console
script), :mod:`ncgrok.files` (atomic writes shared by every package).

The first three live in the folders ``theory/``, ``simulate/`` and ``empirical/`` at the top of the
repository. An installed wheel holds them inside this package (``package-dir`` in pyproject.toml);
in a source checkout (an editable install, or ``PYTHONPATH`` pointing at the checkout) the lines
below let the import system find them beside this folder, so ``import ncgrok.theory`` means the
same thing in both and nothing is installed under a generic top-level name such as ``theory``.
"""
from __future__ import annotations

from pathlib import Path as _Path

_here = _Path(__file__).resolve().parent
if not (_here / "theory").is_dir() and (_here.parent / "theory" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # noqa: F821 (the package's own __path__)


def main(argv: list[str] | None = None) -> int:
    """The ``ncgrok`` command (see :mod:`ncgrok.cli`); imported lazily so that ``import ncgrok.theory``
    does not load the command-line layer."""
    from ncgrok.cli import main as cli_main

    return cli_main(argv)
