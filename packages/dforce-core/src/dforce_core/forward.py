"""Per-token forward (noising) process q(x_k | x_0) (paper Eq. 3.1, reference §1.3)."""

from __future__ import annotations

import torch
from torch import Tensor

from .schedules import NoiseSchedule
from .shapes import check_sequence, per_token

__all__ = ["clipped_noise", "q_sample"]


def clipped_noise(
    shape: tuple[int, ...] | torch.Size,
    clip: float | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard Gaussian noise clamped to +-``clip`` (reference §1.5; None = no clamp)."""
    if generator is not None and device is None:
        device = generator.device
    eps = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    return eps if clip is None else eps.clamp(-clip, clip)


def q_sample(schedule: NoiseSchedule, x0: Tensor, noise_levels: Tensor, noise: Tensor) -> Tensor:
    """x_k = sqrt(alpha_bar_k) x_0 + sqrt(1 - alpha_bar_k) eps, one level per token; level -1 returns x_0."""
    check_sequence(x0, noise_levels, "x0")
    if noise.shape != x0.shape:
        raise ValueError(f"noise must have the shape of x0 {tuple(x0.shape)}, got {tuple(noise.shape)}")
    a = per_token(schedule.alpha_bar(noise_levels), x0)  # (B, T, 1...)
    return a.sqrt() * x0 + (1.0 - a).sqrt() * noise  # (B, T, ...)
