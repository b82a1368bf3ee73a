"""Named scratch tensors reused from call to call, for loops that would otherwise allocate afresh.

A tensor of a few tens of MB freed and allocated again at every chunk of a streamed evaluation is
handed back to the operating system and mapped again by the C allocator, and every page of it is
faulted in anew: measured, that made a float64 subtraction of (30, 512, 200) arrays take 37 ms
instead of 3-6 ms, and the page faults of one measurement of 30 paper MLPs varied from 7,000 to
450,000 between identical calls. Writing into a `Workspace` buffer changes where a result goes,
never how it is computed.
"""
from __future__ import annotations

import math

import torch


class Workspace:
    """Buffers by name, grown when a larger one is asked for and otherwise handed out again."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def take(self, name: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
        """An uninitialised contiguous tensor of ``shape`` (valid until ``name`` is taken again)."""
        size = math.prod(shape)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < size or buffer.dtype != dtype or buffer.device != torch.device(device):
            buffer = self._buffers[name] = torch.empty(size, dtype=dtype, device=device)
        return buffer[:size].view(shape)
