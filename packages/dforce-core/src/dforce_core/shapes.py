"""Shape checks and broadcasting of per-token scalars over token features."""

from __future__ import annotations

from torch import Tensor

__all__ = ["check_sequence", "per_token"]


def check_sequence(x: Tensor, noise_levels: Tensor, name: str = "x") -> None:
    """Raise ValueError unless ``x`` is (B, T, ...) and ``noise_levels`` is (B, T)."""
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape (B, T, *token_shape), got {tuple(x.shape)}")
    if noise_levels.dim() != 2 or tuple(noise_levels.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"noise_levels must have shape (B, T) = {tuple(x.shape[:2])} matching {name}, "
            f"got {tuple(noise_levels.shape)}"
        )


def per_token(values: Tensor, like: Tensor) -> Tensor:
    """View per-token scalars (B, T) as (B, T, 1, ..., 1) to broadcast against ``like`` (B, T, ...)."""
    return values.reshape(tuple(values.shape) + (1,) * (like.dim() - values.dim()))
