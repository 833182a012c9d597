"""The Diffusion Forcing training loss (paper Alg. 1): per-token noise, denoise, weighted regression."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .config import DiffusionConfig
from .forward import clipped_noise, q_sample
from .loss_weights import apply_padding, snr_to_weights
from .noise_levels import sample_noise_levels
from .parameterization import objective_target
from .schedules import NoiseSchedule
from .shapes import check_sequence

__all__ = ["DiffusionLoss", "LossOutput", "weighted_mse"]


@dataclass
class LossOutput:
    """The scalar loss plus what produced it, for logging and tests."""

    loss: Tensor
    per_token: Tensor  # (B, T) unweighted MSE per token
    weights: Tensor  # (B, T) final weights (SNR weight x mask)
    noise_levels: Tensor  # (B, T)


def weighted_mse(output: Tensor, target: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """(sum_t w_t mse_t / sum_t [w_t > 0], mse per token); mse is averaged over each token's features."""
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} must match")
    if tuple(weights.shape) != tuple(output.shape[:2]):
        raise ValueError(f"weights must be (B, T) = {tuple(output.shape[:2])}, got {tuple(weights.shape)}")
    mse = (output.float() - target.float()).pow(2).flatten(2).mean(-1)  # (B, T)
    count = (weights > 0).sum().clamp_min(1)
    return (mse * weights).sum() / count, mse


class DiffusionLoss:
    """Callable computing the Diffusion Forcing loss of a denoiser on a batch of clean sequences.

    ``model(x_noisy (B,T,...), noise_levels (B,T), cond) -> output`` in the configured parameterisation.
    """

    def __init__(self, config: DiffusionConfig, schedule: NoiseSchedule | None = None):
        self.config = config
        self.schedule = schedule if schedule is not None else config.build_schedule()

    def sample_levels(
        self, batch_size: int, seq_len: int, generator: torch.Generator | None, device
    ) -> tuple[Tensor, Tensor]:
        """Training noise levels (B, T) and loss mask (B, T) for the configured mode."""
        s = sample_noise_levels(
            self.config.noise_level_mode,
            batch_size,
            seq_len,
            self.config.num_steps,
            generator=generator,
            device=device,
            first_token_known_prob=self.config.first_token_known_prob,
            level_power=self.config.level_power,
        )
        return s.levels, s.loss_mask

    def token_weights(self, noise_levels: Tensor) -> Tensor:
        """SNR-based weight per token (B, T)."""
        c = self.config
        return snr_to_weights(
            self.schedule.snr(noise_levels),
            c.loss_weighting,
            c.objective,
            c.snr_clip,
            c.fused_decay,
            c.fused_variant,  # type: ignore[arg-type]
            c.constant_weight,
        )

    def __call__(
        self,
        model: Callable[..., Tensor],
        x0: Tensor,
        cond: Tensor | None = None,
        *,
        valid: Tensor | None = None,
        generator: torch.Generator | None = None,
        noise_levels: Tensor | None = None,
        noise: Tensor | None = None,
        shard: Callable[[Tensor], Tensor] | None = None,
    ) -> LossOutput:
        """Loss on clean tokens ``x0`` (B, T, ...); ``valid`` (B, T) marks real (non-padding) tokens.

        Random draws are made for the whole batch from ``generator``; ``shard`` (e.g. a DDP rank's slice of
        the global batch) is then applied to x0, cond, valid and the draws, so data-parallel training sees the
        same randomness as a single process.
        """
        b, t = x0.shape[:2]  # the global batch when ``shard`` is given
        device = x0.device
        if noise_levels is None:
            noise_levels, mask = self.sample_levels(b, t, generator, device)
        else:
            mask = torch.ones(noise_levels.shape, device=device)
        if noise is None:
            noise = clipped_noise(x0.shape, self.config.clip_noise, generator=generator, device=device, dtype=x0.dtype)
        if shard is not None:
            x0, noise_levels, mask, noise = shard(x0), shard(noise_levels), shard(mask), shard(noise)
            cond = shard(cond) if cond is not None else None
            valid = shard(valid) if valid is not None else None
        check_sequence(x0, noise_levels, "x0")
        if valid is not None:  # padding is "pure noise" (reference §1.6)
            noise_levels = torch.where(
                valid.bool(), noise_levels, torch.full_like(noise_levels, self.config.num_steps - 1)
            )
        weights = self.token_weights(noise_levels) * mask  # (B, T)
        if valid is not None:
            noise_levels, weights = apply_padding(noise_levels, weights, valid, self.config.num_steps)
        x_noisy = q_sample(self.schedule, x0, noise_levels, noise)  # (B, T, ...)
        output = model(x_noisy, noise_levels, cond)  # (B, T, ...)
        target = objective_target(self.config.objective, self.schedule, noise_levels, x0, noise)  # (B, T, ...)
        loss, mse = weighted_mse(output, target, weights)
        return LossOutput(loss=loss, per_token=mse.detach(), weights=weights, noise_levels=noise_levels)
