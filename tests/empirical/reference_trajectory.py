"""A short float32 training trajectory of the paper's MLP, pinned so that speed work cannot change results.

``compute_trajectory()`` trains three runs of the paper's network (784-200-200-200-10, init x8, AdamW
lr 1e-3, summed squared loss, batch 100) for 60 steps on a deterministic synthetic data set and
measures every ``METRIC_COLUMNS`` entry at the paper's logging schedule. The stored file
``data/reference_trajectory.json`` was written by this script with the engine *before* the
performance work of issue 6 (commit fa173f9); ``test_reference_trajectory.py`` re-runs it with the
current engine and compares.

Regenerate only for a deliberate numerical change, and say why in the commit:
``python tests/empirical/reference_trajectory.py --write``.

The data use integer arithmetic only (no random number generator whose stream could change between
library versions): a class prototype plus a fixed pseudo-random texture, both in [0, 1] like pixels.
"""
from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ncgrok.empirical.engine import BatchedTrainer, RunConfig, log_schedule  # noqa: E402
from ncgrok.empirical.measure import METRIC_COLUMNS, MeasurementData, measure_runs  # noqa: E402
from ncgrok.empirical.models import ModelSpec  # noqa: E402

REFERENCE_FILE = Path(__file__).with_name("data") / "reference_trajectory.json"
STEPS = 60
TRAIN_SIZE, TEST_SIZE, HELDOUT_SIZE = 300, 500, 200
# two consecutive runs share (lr, weight decay): the optimizer's grouped path is exercised too
RUNS = (
    RunConfig(seed=0, lr=1e-3, weight_decay=0.1),
    RunConfig(seed=1, lr=1e-3, weight_decay=0.1),
    RunConfig(seed=2, lr=1e-3, weight_decay=0.01),
)
COLUMNS = METRIC_COLUMNS


def synthetic_images(count: int, offset: int, *, num_classes: int = 10, dim: int = 784) -> tuple[np.ndarray, np.ndarray]:
    """``count`` deterministic 'images' (count, dim) in [0, 1] with labels ``(offset + i) % num_classes``."""
    index = np.arange(offset, offset + count, dtype=np.int64)[:, None]
    pixel = np.arange(dim, dtype=np.int64)[None, :]
    labels = (index[:, 0] % num_classes).astype(np.int64)
    prototype = ((labels[:, None] * 131 + pixel * 31) % 97) / 96.0
    texture = ((index * 7919 + pixel * 104729) % 251) / 250.0
    images = (0.6 * prototype + 0.4 * texture).astype(np.float32)
    return images, labels


def measurement_data() -> MeasurementData:
    def part(count: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = synthetic_images(count, offset)
        return torch.from_numpy(images), torch.from_numpy(labels)

    train_x, train_y = part(TRAIN_SIZE, 0)
    test_x, test_y = part(TEST_SIZE, TRAIN_SIZE)
    heldout_x, heldout_y = part(HELDOUT_SIZE, TRAIN_SIZE + TEST_SIZE)
    return MeasurementData(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, num_classes=10,
                           heldout_x=heldout_x, heldout_y=heldout_y)


def compute_trajectory() -> dict[str, list[list[float]]]:
    """{column: [[value of run r at logged step s] for s] } plus ``step``, float32 engine on the CPU."""
    data = measurement_data()
    trainer = BatchedTrainer(ModelSpec(), list(RUNS), data.train_x, data.train_y, batch_size=100, device="cpu")
    trajectory: dict[str, list] = {"step": [], **{c: [] for c in COLUMNS}}
    for step in log_schedule(STEPS):
        trainer.train(step - trainer.step)
        rows = measure_runs(trainer, data)
        trajectory["step"].append(step)
        for column in COLUMNS:
            trajectory[column].append([float(row[column]) for row in rows])
    return trajectory


def main() -> None:
    if "--write" not in sys.argv[1:]:
        print(__doc__)
        return
    torch.set_num_threads(1)
    trajectory = compute_trajectory()
    record = {
        "about": "float32 BatchedTrainer + measure_runs, see tests/empirical/reference_trajectory.py",
        "torch": torch.__version__,
        "machine": platform.machine(),
        "runs": [{"seed": r.seed, "lr": r.lr, "weight_decay": r.weight_decay} for r in RUNS],
        "trajectory": trajectory,
    }
    REFERENCE_FILE.parent.mkdir(exist_ok=True)
    REFERENCE_FILE.write_text(json.dumps(record, indent=1, allow_nan=True) + "\n")
    print(f"wrote {REFERENCE_FILE} ({len(trajectory['step'])} logged steps x {len(RUNS)} runs)")


if __name__ == "__main__":
    main()
