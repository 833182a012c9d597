"""Rolling key/value cache for the causal transformer's banded attention."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["KVCache"]


@dataclass
class KVCache:
    """Per-layer keys/values (B, H, L_c, Dh) of committed tokens, RoPE already applied to the keys.

    ``length`` is the absolute number of committed tokens; only the last ``max_entries = window - 1`` of
    them are kept, because with a banded causal mask of width ``window`` no later query can attend to
    anything older. Created by ``CausalTransformer.new_cache``; treat it as opaque.
    """

    keys: list[Tensor]
    values: list[Tensor]
    max_entries: int
    length: int = 0

    @property
    def batch_size(self) -> int:
        """Number of rollouts in the cache."""
        return int(self.keys[0].shape[0])

    @property
    def num_entries(self) -> int:
        """Number of tokens currently held (``min(length, max_entries)``)."""
        return int(self.keys[0].shape[2])

    def clone(self) -> KVCache:
        """An independent copy (e.g. to branch a rollout)."""
        return KVCache(
            keys=[k.clone() for k in self.keys],
            values=[v.clone() for v in self.values],
            max_entries=self.max_entries,
            length=self.length,
        )

    def repeat_interleave(self, repeats: int) -> KVCache:
        """A copy with every rollout repeated ``repeats`` times along the batch axis (sample fan-out)."""
        return KVCache(
            keys=[k.repeat_interleave(repeats, dim=0) for k in self.keys],
            values=[v.repeat_interleave(repeats, dim=0) for v in self.values],
            max_entries=self.max_entries,
            length=self.length,
        )

    def keep_last(self, layer: int, keys: Tensor, values: Tensor) -> None:
        """Store the trailing ``max_entries`` entries of ``keys``/``values`` (B, H, L, Dh) for ``layer``."""
        start = max(int(keys.shape[2]) - self.max_entries, 0)
        self.keys[layer] = keys[:, :, start:]  # (B, H, <=window-1, Dh)
        self.values[layer] = values[:, :, start:]  # (B, H, <=window-1, Dh)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> KVCache:
        """Move/cast the cached tensors in place; returns self."""
        self.keys = [k.to(device=device, dtype=dtype) for k in self.keys]
        self.values = [v.to(device=device, dtype=dtype) for v in self.values]
        return self
