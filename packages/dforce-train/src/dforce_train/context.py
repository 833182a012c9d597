"""Per-step context handed to the loss function: step, rank, a rank-identical generator, batch sharding."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed derived from (seed, step), the same in every process."""
    digest = hashlib.blake2b(f"dforce:{int(seed)}:{int(step)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on `device` seeded from (seed, step)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(step_seed(seed, step))
    return gen


@dataclass
class StepContext:
    """What the loss function knows about the current step.

    Draw random numbers for the whole *global* batch with `generator` (identical on every rank), then keep
    this rank's part with `shard`; DDP training then matches single-process training on the same batch.
    """

    step: int
    rank: int
    world_size: int
    generator: torch.Generator
    device: torch.device

    def shard(self, tensor: Tensor) -> Tensor:
        """This rank's contiguous slice of `tensor` along dim 0, moved to `device`."""
        if not isinstance(tensor, Tensor) or tensor.dim() == 0:
            raise ValueError(f"shard expects a tensor with a batch dimension, got {type(tensor).__name__}")
        n = tensor.shape[0]
        if n % self.world_size:
            raise ValueError(
                f"global batch of {n} along dim 0 cannot be split evenly over {self.world_size} ranks; "
                f"make the global batch size a multiple of {self.world_size}"
            )
        per = n // self.world_size
        return tensor[self.rank * per : (self.rank + 1) * per].to(self.device, non_blocking=True)

    def shard_batch(self, batch: Any) -> Any:
        """`shard` every tensor in a (nested) dict / list / tuple; other values pass through unchanged."""
        if isinstance(batch, Tensor):
            return self.shard(batch)
        if isinstance(batch, Mapping):
            return {k: self.shard_batch(v) for k, v in batch.items()}
        if isinstance(batch, tuple) and hasattr(batch, "_fields"):
            return type(batch)(*(self.shard_batch(v) for v in batch))
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.shard_batch(v) for v in batch)
        return batch
