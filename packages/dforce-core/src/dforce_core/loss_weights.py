"""Per-token loss weights: min-SNR, fused SNR (paper App. B.1) and padding masks (reference §1.4, §1.6)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .parameterization import Objective

__all__ = ["apply_padding", "constant_weights", "fused_snr_weights", "min_snr_weights", "snr_to_weights"]


def _objective_weight(objective: Objective, clipped: Tensor, unclipped: Tensor) -> Tensor:
    """Min-SNR style weight from a (clipped, unclipped) SNR pair, per objective."""
    if objective is Objective.PRED_NOISE:
        return clipped / unclipped
    if objective is Objective.PRED_X0:
        return clipped
    return clipped / (unclipped + 1.0)


def min_snr_weights(snr: Tensor, objective: str | Objective, snr_clip: float = 5.0) -> Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023): eps min(snr,C)/snr, x0 min(snr,C), v min(snr,C)/(snr+1)."""
    objective = Objective.parse(objective)
    return _objective_weight(objective, snr.clamp(max=snr_clip), snr)  # (B, T)


def fused_snr_weights(
    snr: Tensor,
    objective: str | Objective,
    snr_clip: float = 5.0,
    decay: float = 0.96,
    variant: Literal["paper", "official"] = "paper",
) -> Tensor:
    """Fused SNR weights over the token axis (paper App. B.1): S'_t = 1 - (1 - S_t)(1 - Sbar_{t-1}).

    ``snr`` is (B, T) with tokens along dim 1; ``decay`` is gamma (cum_snr_decay ** frame_stack). The
    ``official`` variant reproduces the authors' ``main:`` code, which multiplies Sbar_{t-1} by an extra gamma.
    """
    objective = Objective.parse(objective)
    if snr.dim() != 2:
        raise ValueError(f"snr must have shape (B, T), got {tuple(snr.shape)}")
    if variant not in ("paper", "official"):
        raise ValueError(f"variant must be 'paper' or 'official', got {variant!r}")
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must lie in [0, 1], got {decay}")
    ncs = snr.clamp(max=snr_clip) / snr_clip  # (B, T) normalised clipped SNR in [0, 1]
    ns = snr / snr_clip  # (B, T) normalised unclipped SNR
    cum = torch.empty_like(ncs)  # (B, T) running mean Sbar_t
    cum[:, 0] = ncs[:, 0]
    for t in range(1, ncs.shape[1]):
        cum[:, t] = decay * cum[:, t - 1] + (1.0 - decay) * ncs[:, t]
    cum_prev = torch.cat([torch.zeros_like(cum[:, :1]), cum[:, :-1]], dim=1)  # (B, T) Sbar_{t-1}, 0 at t=0
    if variant == "official":
        cum_prev = decay * cum_prev
    clipped_fused = 1.0 - (1.0 - cum_prev) * (1.0 - ncs)  # (B, T)
    fused = 1.0 - (1.0 - cum_prev) * (1.0 - ns)  # (B, T)
    if objective is Objective.PRED_NOISE:
        return clipped_fused / fused
    if objective is Objective.PRED_X0:
        return clipped_fused * snr_clip
    return clipped_fused * snr_clip / (fused * snr_clip + 1.0)


def constant_weights(noise_levels: Tensor, value: float = 1.0) -> Tensor:
    """A constant weight per token (the ``paper:`` branch uses 0.5 * snr_clip = 2.5 for maze and time series)."""
    return torch.full(noise_levels.shape, float(value), device=noise_levels.device)  # (B, T)


def snr_to_weights(
    snr: Tensor,
    weighting: str,
    objective: str | Objective,
    snr_clip: float = 5.0,
    decay: float = 0.96,
    fused_variant: Literal["paper", "official"] = "paper",
    constant: float = 1.0,
) -> Tensor:
    """Dispatch on ``weighting`` in {"min_snr", "fused_snr", "constant"}."""
    if weighting == "min_snr":
        return min_snr_weights(snr, objective, snr_clip)
    if weighting == "fused_snr":
        return fused_snr_weights(snr, objective, snr_clip, decay, fused_variant)
    if weighting == "constant":
        return torch.full_like(snr, float(constant))
    raise ValueError(f"unknown loss weighting {weighting!r}; choose min_snr, fused_snr or constant")


def apply_padding(
    noise_levels: Tensor, weights: Tensor, valid: Tensor, num_steps: int, pad_weight: float = 0.05
) -> tuple[Tensor, Tensor]:
    """Put padded tokens (``valid`` False) at full noise K-1 and scale their weight by ``pad_weight``.

    Mirrors the flexible-horizon training of reference §1.6: padding is "pure noise" with 5% loss weight.
    """
    if valid.shape != noise_levels.shape or weights.shape != noise_levels.shape:
        raise ValueError("noise_levels, weights and valid must all have shape (B, T)")
    valid = valid.bool()
    levels = torch.where(valid, noise_levels, torch.full_like(noise_levels, num_steps - 1))  # (B, T)
    weights = torch.where(valid, weights, weights * pad_weight)  # (B, T)
    return levels, weights
