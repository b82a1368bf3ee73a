"""Argument types shared by every ``ncgrok`` command.

Each type parses one command-line value, checks it, and when it is wrong says what a right value
looks like, in one line. argparse puts the option in front and exits with status 2::

    ncgrok train: error: argument --lr: must be a finite number > 0, got 'nan' (see: ncgrok train --help)

so a bad value is refused while the command line is parsed: before any data is read, any
computation starts or anything is written. Checks that need two options at once (``--batch-size``
against ``--train-size``) or the data (``--train-size`` against the images a data set holds) belong
to the library code that owns those settings.

The types describe their own domain (:class:`Number` has ``kind``, ``low``, ``high`` and which ends
are open), so a test can walk the parser and derive the values each option must refuse.

Nothing here imports numpy, torch or matplotlib: building the parser stays fast.
"""
from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

# The largest count any option accepts: the int32 range most tensor kernels index with. Larger
# step counts, sizes or widths are never meant (and overflow or exhaust memory further down).
MAX_COUNT = 2**31 - 1
# Seeds: every generator we seed (numpy, torch, Python's random) accepts the uint32 range.
MAX_SEED = 2**32 - 1


class Number:
    """An ``int`` or ``float`` option value that is finite and lies between ``low`` and ``high``.

    ``low``/``high`` ``None`` means unbounded on that side; ``low_open``/``high_open`` exclude the
    end point. Whole numbers may be written ``100000``, ``100_000`` or ``1e5``; ``1.5`` is refused.
    """

    def __init__(self, kind: type, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> None:
        if kind not in (int, float):
            raise ValueError(f"kind must be int or float, got {kind!r}")
        self.kind = kind
        self.low, self.high = low, high
        self.low_open, self.high_open = low_open, high_open

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (already a number) lies in the domain."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if value != value or value in (float("inf"), float("-inf")):
            return False
        if self.kind is int and value != int(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return False
        return True

    def describe(self) -> str:
        """The domain in words: ``a finite number > 0``, ``a number in (0, 1)``, ``a whole number
        from 1 to 2147483647``."""
        low, high = _format(self.low), _format(self.high)
        if self.kind is int and self.low is not None and self.high is not None:
            return f"a whole number from {low} to {high}"
        if self.low is not None and self.high is not None:
            return f"a number in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"
        kind = "a whole number" if self.kind is int else "a finite number"
        if self.low is not None:
            return f"{kind} {'>' if self.low_open else '>='} {low}"
        if self.high is not None:
            return f"{kind} {'<' if self.high_open else '<='} {high}"
        return kind

    def __call__(self, text: str) -> int | float:
        value = _parse_whole(text) if self.kind is int else _parse_float(text)
        if value is None or not self.contains(value):
            raise argparse.ArgumentTypeError(f"must be {self.describe()}, got {text!r}")
        return value

    def __repr__(self) -> str:
        return f"Number({self.kind.__name__}, {self.describe()})"


def _format(bound: float | None) -> str:
    return "" if bound is None else (str(bound) if float(bound).is_integer() and abs(bound) < 1e15 else f"{bound:g}")


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _parse_whole(text: str) -> int | float | None:
    """``int`` of a whole-number literal (``12``, ``1_000``, ``1e5``); ``None`` when ``text`` is no
    number; a non-whole or out-of-range number comes back as a float so that the caller refuses it."""
    try:
        return int(text)
    except (TypeError, ValueError):
        pass
    try:
        number = Decimal(str(text).strip().replace("_", ""))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    if number.adjusted() > 30:  # far beyond any bound, and int() of 1e999999999 would take forever
        return float("inf")
    if number != number.to_integral_value():
        return float(number)
    return int(number)


def count(minimum: int = 1, maximum: int = MAX_COUNT) -> Number:
    """A whole number from ``minimum`` to ``maximum`` (step counts, sizes, widths, class counts)."""
    return Number(int, low=minimum, high=maximum)


def number(low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False) -> Number:
    """A finite real number, optionally bounded (see :class:`Number`)."""
    return Number(float, low=low, high=high, low_open=low_open, high_open=high_open)


positive_count = count(1)
non_negative_count = count(0)
seed = count(0, MAX_SEED)
finite_number = number()
positive_number = number(0, low_open=True)
non_negative_number = number(0)
probability = number(0, 1, low_open=True, high_open=True)  # a failure probability delta, a confidence
fraction = number(0, 1)  # an error rate, a prior, a threshold on accuracy


class Text:
    """A non-empty string option value that ``accept`` (if given) approves; ``convert`` turns it into
    the value the command receives (``Path`` for paths)."""

    def __init__(self, what: str, *, accept: Callable[[str], bool] | None = None,
                 convert: Callable[[str], Any] = str) -> None:
        self.what = what
        self.accept = accept
        self.convert = convert

    def __call__(self, text: str) -> Any:
        if not str(text).strip():
            raise argparse.ArgumentTypeError(f"must be {self.what}, got an empty string")
        if self.accept is not None and not self.accept(text):
            raise argparse.ArgumentTypeError(f"must be {self.what}, got {text!r}")
        return self.convert(text)

    def __repr__(self) -> str:
        return f"Text({self.what})"


FIGURE_SUFFIXES = ("", ".png", ".pdf", ".svg")

# Paths: an empty path would silently mean the current directory (Path("") is Path(".")).
path = Text("a path (non-empty; spaces are fine)", convert=Path)
path_text = Text("a path (non-empty; spaces are fine)")  # for commands that keep paths as strings
name = Text("a name (non-empty)")
figure_path = Text("a file path ending in .png, .pdf or .svg (no suffix: .png)",
                   accept=lambda text: Path(text).suffix.lower() in FIGURE_SUFFIXES, convert=Path)
figure_path_text = Text(figure_path.what, accept=figure_path.accept)
device = Text("auto, cpu, cuda, cuda:N, mps, xpu or xpu:N",
              accept=lambda text: re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", text) is not None)


class NumberList:
    """A comma-separated list of numbers of one :class:`Number` domain in a single argument
    (``8`` or ``4,8,16``); the command receives the text unchanged once every item is valid."""

    def __init__(self, item: Number, what: str, *, total: float | None = None) -> None:
        self.item = item
        self.what = what
        self.total = total  # the items must add up to this (within 1e-6), if given

    def __call__(self, text: str) -> str:
        items = [part.strip() for part in str(text).split(",")]
        if not any(items):
            raise argparse.ArgumentTypeError(f"must be {self.what}, got an empty string")
        values = []
        for part in items:
            try:
                values.append(self.item(part))
            except argparse.ArgumentTypeError:
                raise argparse.ArgumentTypeError(
                    f"must be {self.what}, each {self.item.describe()}; {part!r} in {text!r} is not"
                ) from None
        if self.total is not None and abs(sum(values) - self.total) > 1e-6:
            raise argparse.ArgumentTypeError(f"must be {self.what}; {text!r} sums to {sum(values):.6g}")
        return text

    def __repr__(self) -> str:
        return f"NumberList({self.what})"


count_list = NumberList(positive_count, "one count or comma-separated counts (8 or 4,8,16)")
priors_list = NumberList(fraction, "comma-separated class priors summing to 1 (0.5,0.3,0.2)", total=1.0)


def distinct(at_least: int = 1) -> type[argparse.Action]:
    """An ``action`` for a list option (``nargs="+"``) whose values must all differ (a repeated
    learning rate or seed would train the same run twice), at least ``at_least`` of them."""

    class Distinct(argparse.Action):
        def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                     values: Any, option_string: str | None = None) -> None:
            values = list(values)
            repeated = sorted({value for value in values if values.count(value) > 1})
            if repeated:
                raise argparse.ArgumentError(
                    self, f"must not repeat a value, got {', '.join(map(str, repeated))} more than once; "
                          "give each value once")
            if len(values) < at_least:
                raise argparse.ArgumentError(self, f"needs at least {at_least} different values, got {len(values)}")
            setattr(namespace, self.dest, values)

    Distinct.at_least = at_least  # type: ignore[attr-defined]
    return Distinct
