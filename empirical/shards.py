"""Split a sweep into shards: whole batched groups, balanced by cost, chosen the same way by every process.

A sweep's grid is trained in batched groups (``SweepConfig.groups``: consecutive runs in grid order,
``group_size`` at a time). A run's numbers depend on the group it is batched with, so a shard is
made of whole groups: shard K of N trains exactly the groups an unsharded sweep trains, one after
another, and writes the same run directories byte for byte. Which groups go to which shard depends
only on the settings and N (:func:`shard_groups`), so N processes started independently (a job
array, GNU parallel, one per GPU) agree on it without talking to each other.

Cost model (an estimate, used only for balance): all groups train the same number of steps, and a
step of a group of R runs costs about R + 1 times a step of one run, the extra one being the work
that does not grow with R (the Python loop, kernel launches, the per-step optimizer overhead). The
engine's measurements for the paper's MLP on 2 cores (about 25 ms of batched matrix products, 4 ms
of AdamW and 1 ms else per step at R = 30) put that fixed part near one run's worth.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

__all__ = ["GROUP_OVERHEAD_RUNS", "Shard", "partition_by_cost", "shard_groups"]

GROUP_OVERHEAD_RUNS = 1.0
_SHARD_TEXT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based, as job-array indices usually are) of ``count``."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"shard {name} must be an integer, got {value!r} (--shard K/N)")
        if not 1 <= self.index <= self.count:
            raise ValueError(f"--shard K/N needs 1 <= K <= N, got {self.index}/{self.count} (shards are numbered from 1)")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """``"K/N"`` (e.g. ``"2/3"``, the second of three shards)."""
        match = _SHARD_TEXT.match(str(text))
        if match is None:
            raise ValueError(f"--shard must look like K/N (shard K of N, numbered from 1), e.g. 2/3; got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def group_cost(runs_in_group: int) -> float:
    """Estimated cost of one step of a group of ``runs_in_group`` runs, in single-run steps (module docstring)."""
    return runs_in_group + GROUP_OVERHEAD_RUNS


def partition_by_cost(costs: Sequence[float], count: int) -> list[list[int]]:
    """Indices of ``costs`` split into ``count`` non-empty parts of nearly equal total cost.

    Longest processing time first: items in order of decreasing cost (ties by index) each go to the
    part with the smallest total so far (ties to the lowest part); each part is then sorted. The
    largest part exceeds the best possible by at most a third (Graham's bound for this rule).
    Deterministic: every process computes the same parts.
    """
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"the number of shards must be an integer >= 1, got {count!r}")
    if count > len(costs):
        raise ValueError(f"cannot split {len(costs)} batched group(s) into {count} shards: each shard needs a whole group")
    totals = [0.0] * count
    parts: list[list[int]] = [[] for _ in range(count)]
    for item in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        part = min(range(count), key=lambda p: (totals[p], p))
        parts[part].append(item)
        totals[part] += costs[item]
    return [sorted(part) for part in parts]


def shard_groups(config, shard: Shard) -> list[int]:
    """Indices into ``config.groups()`` of the groups shard ``shard`` trains, in order."""
    groups = config.groups()
    if shard.count > len(groups):
        runs = sum(len(group) for group in groups)
        size = "one group of all runs (no --group-size)" if config.group_size is None else f"--group-size {config.group_size}"
        raise ValueError(
            f"--shard {shard}: the grid of {runs} runs is {len(groups)} batched group(s) ({size}), and every shard "
            f"needs a whole group; pass --group-size {max(1, runs // shard.count)} or less, or use at most "
            f"{len(groups)} shards"
        )
    return partition_by_cost([group_cost(len(group)) for group in groups], shard.count)[shard.index - 1]
