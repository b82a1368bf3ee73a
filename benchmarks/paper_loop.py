"""The batched sweep against a loop built like the paper's own training script, timed in one process.

The paper's released training script (keitaroskmt/collapse-dynamics, ``train.py``) trains one
network per process: batches come from a shuffling ``torch.utils.data.DataLoader`` over a
``torchvision`` MNIST subset whose every image is converted to a tensor when it is drawn
(``ToTensor``); the step is ``nn.Module`` forward, summed squared error to one-hot targets,
``backward`` and ``torch.optim.AdamW``. At each logged step it evaluates accuracy and loss over the
training and the test loader and computes its collapse values with two more passes over the
training loader (class means, then within-class scatter), class by class.

That script needs torchvision, hydra and wandb, which ncgrok does not install, so this benchmark
times a **stand-in with the same structure**, written here: a ``Dataset`` of the raw uint8 MNIST
images converting each drawn image to a float tensor scaled to [0, 1] (``ToTensor``'s arithmetic,
without its PIL round trip, so the stand-in is if anything faster than the original), the same
``DataLoader`` settings (batch 100, shuffle), the same step, and per log the same four passes
(1000 + 10,000 + 2 x 1000 images) with ``.item()`` per batch. It omits the script's wandb and
logging calls. Against it, in interleaved rounds (``roofline.py`` says why), the batched engine: a
training step of all 30 runs and one ``measure_runs`` call (which computes every ncgrok column, far
more than the script's).

Printed: per-model-step and per-log seconds of both, the extrapolated paper sweep (30 runs x 100,000
steps, 193 logs each: ``log_schedule``) one run after another as the script runs them, and the
speed-up of the batched sweep over it, per round and its median.

Usage: ``python benchmarks/paper_loop.py [--rounds 5]`` (about a minute on 2 cores; needs ``ncgrok
data fetch mnist``).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ncgrok.machine import describe  # noqa: E402
from ncgrok.empirical.data import paper_split, read_dataset  # noqa: E402
from ncgrok.empirical.engine import BatchedTrainer, log_schedule  # noqa: E402
from ncgrok.empirical.measure import as_measurement_data, measure_runs  # noqa: E402
from ncgrok.empirical.models import ModelSpec, build_module  # noqa: E402
from ncgrok.empirical.sweep import SweepConfig  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_throughput import FULL_STEPS, WEIGHT_DECAYS  # noqa: E402
from roofline import timed  # noqa: E402

BATCH = 100
NUM_CLASSES = 10


class DrawnImages(torch.utils.data.Dataset):
    """Raw uint8 images converted to a float tensor in [0, 1] each time one is drawn."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.images[index]).to(torch.float32).div(255)
        return image.reshape(-1), int(self.labels[index])  # (the script's model flattens its input)


class ScriptLikeRun:
    """One network trained and evaluated the way the paper's script does it (module docstring)."""

    def __init__(self, spec: ModelSpec, train: DrawnImages, test: DrawnImages, *, weight_decay: float = 0.01):
        self.model = build_module(spec, 0)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3, weight_decay=weight_decay)
        self.train_loader = torch.utils.data.DataLoader(train, batch_size=BATCH, shuffle=True)
        self.test_loader = torch.utils.data.DataLoader(test, batch_size=BATCH, shuffle=False)
        self.eye = torch.eye(NUM_CLASSES)
        self.batches = self._forever()
        self.penultimate = None
        head = self.model.linears[-1]  # its input is the penultimate representation
        head.register_forward_hook(lambda _m, inputs, _out: setattr(self, "penultimate", inputs[0]))

    def _forever(self):
        while True:
            yield from self.train_loader

    def steps(self, n: int) -> None:
        self.model.train()
        for _ in range(n):
            x, y = next(self.batches)
            self.optimizer.zero_grad()
            loss = F.mse_loss(self.model(x), self.eye[y], reduction="sum")
            loss.backward()
            self.optimizer.step()

    def log(self) -> None:
        """The script's four evaluation passes at a logged step."""
        self.model.eval()
        with torch.no_grad():
            for loader in (self.train_loader, self.test_loader):  # accuracy and loss
                for x, y in loader:
                    out = self.model(x)
                    (out.argmax(1) == y).sum().item()
                    F.mse_loss(out, self.eye[y], reduction="sum").item()
            sums, counts = {}, [0] * NUM_CLASSES  # class means, then within-class scatter
            for x, y in self.train_loader:
                self.model(x)
                for c in range(NUM_CLASSES):
                    mask = y == c
                    sums[c] = sums.get(c, 0) + self.penultimate[mask].sum(0)
                    counts[c] += int(mask.sum().item())
            means = {c: s / max(counts[c], 1) for c, s in sums.items()}
            scatter = 0.0
            for x, y in self.train_loader:
                self.model(x)
                for c in range(NUM_CLASSES):
                    reps = self.penultimate[y == c]
                    if len(reps):
                        scatter += float(torch.linalg.vector_norm(reps - means[c]) ** 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--script-steps", type=int, default=100, help="steps of the script-like loop per round (default 100)")
    args = parser.parse_args()
    if args.rounds < 1 or args.script_steps < 1:
        parser.error("--rounds and --script-steps must be >= 1")

    config = SweepConfig(weight_decays=WEIGHT_DECAYS, seeds=tuple(range(5)), device="cpu")  # the paper's 30 runs
    runs = config.runs()
    split = paper_split("mnist", heldout_size=config.heldout_size)
    data = as_measurement_data(split, device="cpu")
    spec = ModelSpec(input_shape=tuple(data.train_x.shape[1:]))
    raw_train, train_labels = read_dataset("mnist", split="train")
    raw_test, test_labels = read_dataset("mnist", split="test")
    script = ScriptLikeRun(spec, DrawnImages(raw_train[: config.train_size], train_labels[: config.train_size]),
                           DrawnImages(raw_test, test_labels))
    batched = BatchedTrainer(spec, runs, data.train_x, data.train_y, batch_size=BATCH, device="cpu")
    script.steps(5), script.log(), batched.train(2), measure_runs(batched, data)  # warm up

    logs = len(log_schedule(FULL_STEPS))
    rows = []
    for _ in range(args.rounds):
        script_step = timed(lambda: script.steps(args.script_steps), args.script_steps)
        script_log = timed(script.log)
        batched_step = timed(lambda: batched.train(5), 5)
        batched_log = timed(lambda: measure_runs(batched, data))
        script_sweep = len(runs) * (FULL_STEPS * script_step + logs * script_log)
        batched_sweep = FULL_STEPS * batched_step + logs * batched_log
        rows.append((script_step, script_log, batched_step, batched_log, script_sweep, batched_sweep))

    def median(i: int) -> float:
        return statistics.median(row[i] for row in rows)

    speedups = [row[4] / row[5] for row in rows]
    print(describe())
    print(f"script-like loop (DataLoader drawing and converting each image, nn.Module, torch.optim.AdamW; "
          f"medians of {args.rounds} rounds): {median(0) * 1e3:.2f} ms per step, {median(1):.2f} s per log "
          f"(4 passes, 13,000 images)")
    print(f"batched engine, {len(runs)} runs: {median(2) * 1e3:.1f} ms per step = {median(2) / len(runs) * 1e3:.2f} ms "
          f"per model-step; measure_runs {median(3):.2f} s per log (every ncgrok column, 16,000 images)")
    print(f"paper sweep ({len(runs)} runs x {FULL_STEPS} steps, {logs} logs each), one run after another: "
          f"script-like {median(4) / 3600:.1f} h ({median(4) / len(runs) / 60:.1f} min per run), batched "
          f"{median(5) / 60:.1f} min")
    print(f"speed-up of the batched sweep: {statistics.median(speedups):.1f}x "
          f"(rounds {min(speedups):.1f}-{max(speedups):.1f}x)")


if __name__ == "__main__":
    main()
