"""Input checks shared by every ``theory`` function.

Each check names the offending argument and says how to fix it, so a user mistake never surfaces as
a traceback from deep inside numpy. Torch tensors (or anything with ``.detach()``/``.numpy()``) are
accepted and converted without importing torch.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np


def to_numpy(value: Any) -> Any:
    """Return ``value`` as something numpy understands (a torch tensor becomes an ndarray)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    return value


def as_array(
    name: str,
    value: Any,
    *,
    ndim: int | tuple[int, ...] | None = None,
    shape: tuple[int | None, ...] | None = None,
    finite: bool = True,
    nonnegative: bool = False,
    dtype: Any = np.float64,
) -> np.ndarray:
    """Convert ``value`` to a float array and check its rank, shape and values.

    ``shape`` entries that are ``None`` match any length.
    """
    try:
        array = np.asarray(to_numpy(value), dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric array-like; could not convert it ({error})") from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if array.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), got shape {array.shape}"
            )
    if shape is not None:
        if array.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(array.shape, shape)
        ):
            pretty = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
            raise ValueError(f"{name} must have shape {pretty}, got {array.shape}")
    if finite and array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or fix them")
    if nonnegative and array.size and np.any(array < 0):
        raise ValueError(f"{name} must be non-negative, got minimum {array.min():.6g}")
    return array


def as_scalar(
    name: str,
    value: Any,
    *,
    positive: bool = False,
    nonnegative: bool = False,
    open_unit: bool = False,
    closed_unit: bool = False,
) -> float:
    """Convert ``value`` to a finite float and check its range.

    ``open_unit`` requires ``0 < value < 1``; ``closed_unit`` requires ``0 <= value <= 1``.
    """
    value = to_numpy(value)
    try:
        number = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a single number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {number}")
    if positive and number <= 0:
        raise ValueError(f"{name} must be > 0, got {number:g}")
    if nonnegative and number < 0:
        raise ValueError(f"{name} must be >= 0, got {number:g}")
    if open_unit and not 0 < number < 1:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {number:g}")
    if closed_unit and not 0 <= number <= 1:
        raise ValueError(f"{name} must lie in [0, 1], got {number:g}")
    return number


def as_count(name: str, value: Any, *, minimum: int = 1) -> int:
    """Convert ``value`` to an int and require ``value >= minimum``."""
    value = to_numpy(value)
    try:
        number = float(np.asarray(value).reshape(()))
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if not math.isfinite(number) or number != int(number):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if number < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {int(number)}")
    return int(number)


def as_priors(value: Any, num_classes: int, *, name: str = "priors") -> np.ndarray:
    """Class priors: ``None`` means uniform; otherwise K non-negative numbers summing to 1."""
    if value is None:
        return np.full(num_classes, 1.0 / num_classes)
    priors = as_array(name, value, shape=(num_classes,), nonnegative=True)
    total = priors.sum()
    if not np.isclose(total, 1.0, rtol=0, atol=1e-6):
        raise ValueError(f"{name} must sum to 1, got {total:.6g}; normalise them first")
    return priors / total


def as_psd_stack(name: str, value: Any, *, num_classes: int | None = None, tol: float = 1e-9) -> np.ndarray:
    """A stack of covariance matrices (K, p, p): symmetric and positive semi-definite."""
    covariances = as_array(name, value, ndim=3)
    if covariances.shape[1] != covariances.shape[2]:
        raise ValueError(f"{name} must be a stack of square matrices (K, p, p), got {covariances.shape}")
    if num_classes is not None and covariances.shape[0] != num_classes:
        raise ValueError(f"{name} must hold {num_classes} matrices, got {covariances.shape[0]}")
    scale = max(1.0, float(np.abs(covariances).max(initial=0.0)))
    if not np.allclose(covariances, np.swapaxes(covariances, 1, 2), atol=tol * scale):
        raise ValueError(f"{name} must be symmetric")
    smallest = np.linalg.eigvalsh(covariances).min(initial=0.0)
    if smallest < -tol * scale * covariances.shape[1]:
        raise ValueError(f"{name} must be positive semi-definite, smallest eigenvalue {smallest:.3g}")
    return covariances
