"""The order in which each run of a batched training sees its examples (a documented contract).

Run i owns ``g_i = torch.Generator("cpu").manual_seed(seed_i)``. Each epoch draws, in this order:
one int64 ``torch.empty((), dtype=torch.int64).random_(generator=g_i)`` (discarded),
``perm = torch.randperm(N, generator=g_i)``, and one more ``torch.randperm(N, generator=g_i)``
(discarded). The first ``(N // B) * B`` entries of ``perm``, cut into consecutive groups of B, are
that epoch's batches in order; the last ``N % B`` indices are skipped. The two discarded draws are
what ``torch.utils.data.DataLoader`` consumes (its worker base seed, and the sampler's trailing
partial permutation), so the batches are exactly those of ``DataLoader(TensorDataset(x, y),
batch_size=B, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed_i))``
iterated epoch after epoch (checked by the tests against the installed torch). Indices are
generated a whole number of epochs at a time (about `CHUNK_STEPS` steps) and kept on the device;
the chunk, the position in it and every generator state are part of `BatchOrder.state_dict`, so a
restored order continues the same sequence.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

__all__ = ["CHUNK_STEPS", "BatchOrder"]

CHUNK_STEPS = 200


def _chunk(generators: list[torch.Generator], n: int, batch_size: int, epochs: int) -> Tensor:
    """Indices (epochs * (n // batch_size), R, batch_size) for the next ``epochs`` epochs of every run."""
    per_epoch = n // batch_size
    out = torch.empty(epochs * per_epoch, len(generators), batch_size, dtype=torch.long)
    for r, gen in enumerate(generators):
        for e in range(epochs):
            torch.empty((), dtype=torch.int64).random_(generator=gen)  # DataLoader's base seed
            perm = torch.randperm(n, generator=gen)[: per_epoch * batch_size]
            torch.randperm(n, generator=gen)  # RandomSampler's trailing (empty) partial permutation
            out[e * per_epoch : (e + 1) * per_epoch, r] = perm.view(per_epoch, batch_size)
    return out


class BatchOrder:
    """The batches of runs with the given seeds over ``num_examples`` examples, one step at a time."""

    def __init__(self, seeds: Sequence[int], num_examples: int, batch_size: int, device: torch.device):
        self.generators = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
        self.num_examples = int(num_examples)
        self.batch_size = int(batch_size)
        self.device = device
        self.chunk: Tensor | None = None  # (steps, R, B) on the device
        self.position = 0

    def next(self) -> Tensor:
        """The next step's indices, (R * B,): run r's batch is entries ``r*B .. (r+1)*B - 1``."""
        if self.chunk is None or self.position >= self.chunk.shape[0]:
            epochs = max(1, CHUNK_STEPS // (self.num_examples // self.batch_size))
            self.chunk = _chunk(self.generators, self.num_examples, self.batch_size, epochs).to(self.device)
            self.position = 0
        indices = self.chunk[self.position].view(-1)
        self.position += 1
        return indices

    def state_dict(self) -> dict[str, Any]:
        """Generator states, the current chunk (a CPU copy) and the position in it."""
        return {
            "generator_states": [g.get_state() for g in self.generators],
            "chunk": None if self.chunk is None else self.chunk.to("cpu", copy=True),
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g, s in zip(self.generators, state["generator_states"]):
            g.set_state(s)
        self.chunk = None if state["chunk"] is None else state["chunk"].to(self.device)
        self.position = int(state["position"])
