"""Matplotlib for the simulation figures: the Agg backend (no display needed), loaded lazily so that
importing a simulator does not import matplotlib, and one way to save a PNG."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ncgrok.files import agg_pyplot, atomic_savefig

__all__ = ["pyplot", "save_png"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (:func:`ncgrok.files.agg_pyplot`)."""
    return agg_pyplot()


def save_png(figure: Any, path: str | os.PathLike, *, dpi: float, **savefig_options: Any) -> Path:
    """Save ``figure`` as PNG at ``path`` atomically (:func:`ncgrok.files.atomic_savefig`), then
    close it, also when saving fails. Returns the path."""
    try:
        return atomic_savefig(figure, path, dpi=dpi, format="png", **savefig_options)
    finally:
        pyplot().close(figure)
