"""Split a sweep into shards (whole batched groups, balanced by cost) and run them: as subprocesses on
this machine, or as one job array through submitit (SLURM, or its local and debug executors).

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

Running them (no scheduler of our own): :func:`run_local` starts one subprocess per shard on this
machine, ``jobs`` at a time, or one per visible GPU (each child sees only its GPU through
``CUDA_VISIBLE_DEVICES``, so ``--device auto`` picks it and the run directories are those a CPU or
a scheduler-given GPU would write, ``config.json`` included); :func:`submit_shards` submits one job
array with submitit, whose jobs are :class:`ShardJob` objects: on preemption or timeout submitit
calls :meth:`ShardJob.checkpoint` and requeues the job, which resumes from the shard's last
checkpoint (at most ``--checkpoint-seconds`` of work is redone). Any other scheduler (PBS arrays,
GNU parallel) runs ``ncgrok sweep ... --shard K/N`` itself. A child process is
``python -m ncgrok.empirical.shards --out DIR --shard K/N --settings JSON`` (:func:`main`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["GROUP_OVERHEAD_RUNS", "ClusterOptions", "Shard", "ShardJob", "ShardOutcome", "group_slices", "partition_by_cost",
           "partition_groups", "require_submitit", "run_local",
           "shard_groups", "submit_shards", "unfinished_shards", "visible_gpus", "wait_for_jobs"]

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


def group_slices(run_count: int, group_size: int | None) -> list[range]:
    """Positions in the grid of each batched group: consecutive runs, ``group_size`` at a time (the
    last group may be smaller), all runs in one group when ``group_size`` is ``None``."""
    size = run_count if group_size is None else group_size
    return [range(start, min(start + size, run_count)) for start in range(0, run_count, size)]


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


def partition_groups(run_count: int, group_size: int | None, count: int) -> list[list[int]]:
    """The groups (indices into :func:`group_slices`) of each of ``count`` shards, in shard order.
    Too many shards for the groups is a ``ValueError`` naming the fix."""
    sizes = [len(positions) for positions in group_slices(run_count, group_size)]
    if count > len(sizes):
        given = "one group of all runs (no --group-size)" if group_size is None else f"--group-size {group_size}"
        raise ValueError(
            f"{count} shards: the grid of {run_count} runs is {len(sizes)} batched group(s) ({given}), and every "
            f"shard needs a whole group; pass --group-size {max(1, run_count // count)} or less, or use at most "
            f"{len(sizes)} shards"
        )
    return partition_by_cost([group_cost(size) for size in sizes], count)


def shard_groups(config, shard: Shard) -> list[int]:
    """Indices into ``config.groups()`` of the groups shard ``shard`` trains, in order."""
    return partition_groups(len(config.runs()), config.group_size, shard.count)[shard.index - 1]


# ---------------------------------------------------------------------------------------------
# Running shards


@dataclass(frozen=True)
class ShardOutcome:
    """How a shard's process or job ended: ``error`` is ``None`` on success, else its last message."""

    shard: Shard
    error: str | None
    seconds: float


def unfinished_shards(out_dir: Path | str, shards: Sequence[Shard]) -> list[Shard]:
    """The ``shards`` whose summary does not say ``completed`` (a launcher resuming a sweep skips the others)."""
    from ncgrok.empirical.runs import SweepDirectory

    directory = SweepDirectory(Path(out_dir))
    return [shard for shard in shards
            if (directory.shard(shard.index, shard.count).read_summary() or {}).get("status") != "completed"]


def shard_command(settings: dict[str, Any], out_dir: Path | str, shard: Shard) -> list[str]:
    """The command line of one shard's subprocess (:func:`main`), run by the current Python."""
    return [sys.executable, "-m", "ncgrok.empirical.shards", "--out", str(out_dir), "--shard", str(shard),
            "--settings", json.dumps(settings)]


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as ``CUDA_VISIBLE_DEVICES`` entries (what a child is given)."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(index) for index in range(count)]
    return [entry.strip() for entry in listed.split(",") if entry.strip()][:count]


def device_slots(device: str, jobs: int | None, gpus: Sequence[str]) -> list[dict[str, str]]:
    """The environment changes of each concurrent child: one per GPU when several are visible and
    ``device`` is ``auto`` (a child sees only its GPU), else ``jobs`` unchanged environments."""
    if jobs is not None and (not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1):
        raise ValueError(f"--jobs must be an integer >= 1, got {jobs!r}")
    if device == "auto" and len(gpus) > 1:
        return [{"CUDA_VISIBLE_DEVICES": gpu} for gpu in gpus[: jobs or len(gpus)]]
    return [{} for _ in range(jobs or 1)]


def run_local(config, out_dir: Path | str, shards: Sequence[Shard], *, jobs: int | None = None,
              on_done: Callable[[ShardOutcome], None] | None = None, poll_seconds: float = 0.05) -> list[ShardOutcome]:
    """Run ``shards`` of ``config`` as subprocesses of this one, as many at a time as
    :func:`device_slots` gives, each resuming its shard if it has started; returns their outcomes
    in shard order. Call ``empirical.sweep.prepare_shards`` first. If this process is interrupted,
    the children still running are stopped (SIGTERM) and can be resumed later."""
    slots = device_slots(config.device, jobs, visible_gpus())
    waiting, running, outcomes = list(shards), {}, {}
    try:
        while waiting or running:
            for slot in [slot for slot in range(len(slots)) if slot not in running]:
                if not waiting:
                    break
                shard = waiting.pop(0)
                log = tempfile.TemporaryFile()
                process = subprocess.Popen(shard_command(config.to_dict(), out_dir, shard), stdout=subprocess.DEVNULL,
                                           stderr=log, env={**os.environ, **slots[slot]})
                running[slot] = (shard, process, log, time.monotonic())
            time.sleep(poll_seconds)
            for slot, (shard, process, log, started) in list(running.items()):
                if process.poll() is None:
                    continue
                del running[slot]
                log.seek(0)
                lines = log.read().decode(errors="replace").strip().splitlines()
                log.close()
                error = None if process.returncode == 0 else (lines[-1] if lines else f"exit status {process.returncode}")
                outcomes[shard] = ShardOutcome(shard, error, time.monotonic() - started)
                if on_done is not None:
                    on_done(outcomes[shard])
    finally:
        for shard, process, log, _ in running.values():
            process.terminate()
            process.wait()
            log.close()
    return [outcomes[shard] for shard in shards]


class ShardJob:
    """One shard as a submitit job (picklable: the settings as a dict). Checkpointable in submitit's
    sense: :meth:`checkpoint` returns the same job, which resumes from the shard's checkpoint."""

    def __init__(self, settings: dict[str, Any], out_dir: str, shard: Shard):
        self.settings, self.out_dir, self.shard = dict(settings), str(out_dir), shard

    def __call__(self) -> dict[str, Any]:
        result = run_stored_shard(self.settings, self.out_dir, self.shard)
        return {"shard": str(self.shard), "runs": [path.name for path in result.run_dirs],
                "completed": bool(result.summaries)}

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def require_submitit() -> Any:
    """The submitit module, or a ``ValueError`` saying how to install it (call before writing anything)."""
    try:
        import submitit
    except ImportError:
        raise ValueError("--executor submitit needs the optional package submitit: pip install 'ncgrok[cluster]' "
                         "(or pip install submitit), or use --executor local or --shard K/N") from None
    return submitit


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how submitit runs the shard jobs: ``cluster`` ``slurm``, or ``local``/``debug`` on
    this machine; the SLURM partition, GPUs per shard (0 or 1: a shard trains on one device), time
    limit in minutes, memory in GB and CPUs per job (``None``: the cluster's default)."""

    cluster: str = "slurm"
    partition: str | None = None
    gpus_per_shard: int | None = None
    timeout_min: int | None = None
    mem_gb: float | None = None
    cpus_per_shard: int | None = None

    def __post_init__(self) -> None:
        if self.cluster not in ("slurm", "local", "debug"):
            raise ValueError(f"--cluster must be slurm, local or debug, got {self.cluster!r}")
        if self.gpus_per_shard not in (None, 0, 1):
            raise ValueError(f"--gpus-per-shard must be 0 or 1 (a shard trains on one device), got {self.gpus_per_shard!r}")
        for flag, value in (("--timeout", self.timeout_min), ("--mem", self.mem_gb), ("--cpus-per-shard", self.cpus_per_shard)):
            if value is not None and not value > 0:
                raise ValueError(f"{flag} must be > 0, got {value!r}")

    def parameters(self, name: str) -> dict[str, Any]:
        """``AutoExecutor.update_parameters`` keywords (the partition applies on SLURM only)."""
        given = {"name": name, "timeout_min": self.timeout_min, "gpus_per_node": self.gpus_per_shard,
                 "mem_gb": self.mem_gb, "cpus_per_task": self.cpus_per_shard, "slurm_partition": self.partition}
        return {key: value for key, value in given.items() if value is not None}


def submit_shards(config, out_dir: Path | str, shards: Sequence[Shard], options: ClusterOptions = ClusterOptions(),
                  *, folder: Path | str | None = None) -> list:
    """Submit ``shards`` as one job array with submitit; returns the submitit jobs. Call
    ``empirical.sweep.prepare_shards`` first. Job files and logs go to ``folder`` (default
    ``<out_dir>/submitit``)."""
    submitit = require_submitit()
    executor = submitit.AutoExecutor(folder=Path(folder) if folder else Path(out_dir) / "submitit", cluster=options.cluster)
    executor.update_parameters(**options.parameters(f"ncgrok-{Path(out_dir).name}"))
    with executor.batch():
        jobs = [executor.submit(ShardJob(config.to_dict(), str(out_dir), shard)) for shard in shards]
    return jobs


def wait_for_jobs(jobs: Sequence, shards: Sequence[Shard],
                  on_done: Callable[[ShardOutcome], None] | None = None) -> list[ShardOutcome]:
    """Wait for submitit ``jobs`` (one per shard, in order); a failed job's outcome holds its error."""
    outcomes = []
    started = time.monotonic()
    for job, shard in zip(jobs, shards):
        try:
            job.result()
            error = None
        except Exception as failure:  # submitit raises its own errors holding the job's traceback
            lines = str(failure).strip().splitlines()
            error = lines[-1] if lines else type(failure).__name__
        outcomes.append(ShardOutcome(shard, error, time.monotonic() - started))
        if on_done is not None:
            on_done(outcomes[-1])
    return outcomes


def run_stored_shard(settings: dict[str, Any], out_dir: Path | str, shard: Shard) -> Any:
    """Train shard ``shard`` of the sweep with ``settings`` (``SweepConfig.to_dict``), resuming it if
    it has started; what a child process or a job does."""
    from ncgrok.empirical.sweep import run_sweep
    from ncgrok.empirical.sweep_config import SweepConfig

    import sys

    return run_sweep(SweepConfig.from_dict(settings, source="the shard's settings"), out_dir, shard=shard, resume=True,
                     on_divergence=lambda line: print(line, file=sys.stderr, flush=True))


def main(argv: Sequence[str] | None = None) -> int:
    """A shard's subprocess (:func:`shard_command`): train it, print nothing but a one-line error."""
    parser = argparse.ArgumentParser(prog="python -m ncgrok.empirical.shards",
                                     description="Train one shard of a sweep (started by ncgrok sweep --executor local).")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--shard", required=True)
    parser.add_argument("--settings", required=True, help="the sweep's settings as JSON (SweepConfig.to_dict)")
    args = parser.parse_args(argv)
    try:
        run_stored_shard(json.loads(args.settings), args.out, Shard.parse(args.shard))
    except (ValueError, FileNotFoundError) as error:
        print(f"shard {args.shard}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # the module as imported (not this __main__ copy) owns the classes
    from ncgrok.empirical.shards import main as shard_main

    sys.exit(shard_main())
