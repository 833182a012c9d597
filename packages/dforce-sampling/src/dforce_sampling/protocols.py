"""The denoiser protocol samplers talk to (docs/ARCHITECTURE.md) and the reward signature used by guidance."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from torch import Tensor

__all__ = ["Denoiser", "FanOutCache", "RewardFn"]

RewardFn = Callable[[Tensor], Tensor]
"""Reward of clean estimates: x0_hat (B, T, *token_shape) -> (B,), to be maximised (reference §3)."""


@runtime_checkable
class Denoiser(Protocol):
    """A causal network with per-token noise levels and an optional rollout cache (ARCHITECTURE.md).

    ``model(x, noise_levels, cond, cache=cache, commit=n)`` returns the raw output (B, T, *token_shape) in
    the objective's parameterisation. With a cache, ``x`` continues the cached prefix and its first
    ``commit`` tokens are appended to the cache after the call. ``new_cache`` raises NotImplementedError
    when the model cannot cache.
    """

    def __call__(
        self,
        x: Tensor,
        noise_levels: Tensor,
        cond: Tensor | None = None,
        *,
        cache: Any = None,
        commit: int = 0,
    ) -> Tensor:
        """Raw network output (B, T, *token_shape) for noisy tokens x (B, T, ...) at levels (B, T) >= 0."""
        ...

    def new_cache(self, batch_size: int) -> Any:
        """An empty per-rollout cache for ``batch_size`` sequences."""
        ...


@runtime_checkable
class FanOutCache(Protocol):
    """Optional cache capability used by Monte Carlo Guidance: replicate every rollout along the batch."""

    def repeat_interleave(self, repeats: int) -> Any:
        """An independent copy whose batch holds every rollout ``repeats`` times in a row (b*R + r)."""
        ...
