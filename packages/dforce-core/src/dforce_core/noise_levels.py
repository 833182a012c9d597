"""Training noise-level samplers: Diffusion Forcing and the baselines it is compared with (paper §3.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["NOISE_LEVEL_MODES", "NoiseLevelSample", "sample_noise_levels"]

NOISE_LEVEL_MODES = ("diffusion_forcing", "full_sequence", "teacher_forcing", "causal")


@dataclass
class NoiseLevelSample:
    """Noise levels (B, T) int64 and the per-token loss mask (B, T) float (0 = not trained on)."""

    levels: Tensor
    loss_mask: Tensor


def _randint(low: int, high: int, shape: tuple[int, ...], generator, device) -> Tensor:
    return torch.randint(low, high, shape, generator=generator, device=device)


def _levels(num_steps: int, shape: tuple[int, ...], power: float, generator, device) -> Tensor:
    """Levels on 0..K-1: uniform when ``power`` is 1, else floor(K u^power) with u ~ U[0, 1) (skewed low)."""
    if power == 1.0:
        return _randint(0, num_steps, shape, generator, device)
    u = torch.rand(shape, generator=generator, device=device)  # (*shape,)
    return (num_steps * u.pow(power)).long().clamp_(0, num_steps - 1)


def sample_noise_levels(
    mode: str,
    batch_size: int,
    seq_len: int,
    num_steps: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    first_token_known_prob: float = 0.0,
    level_power: float = 1.0,
) -> NoiseLevelSample:
    """Draw training noise levels for a (batch_size, seq_len) token grid.

    Modes:
      * ``diffusion_forcing``: k_t i.i.d. uniform on 0..K-1 per token (paper Alg. 1).
      * ``full_sequence``: one level shared by all tokens of a sequence (full-sequence diffusion).
      * ``teacher_forcing``: next-token diffusion; per sequence a random target position p has a random
        level, tokens before it are clean context (level 0, as in the paper's RNN code) and the loss is on
        token p only (later tokens are masked; under a causal model they cannot affect p).
      * ``causal``: i.i.d. levels sorted along time, so noise never decreases into the future.
    ``first_token_known_prob``: with this probability per sequence, the first token's level is re-drawn from
    0..K//4-1 ("the first frame is almost always known", reference §1.3; drawn per sequence, not per batch).
    ``level_power`` p: every random level is floor(K u^p), u uniform; p = 1 is the paper's uniform draw, p > 1
    puts more tokens at low noise (with p = 3 a quarter of the tokens fall below level K/64), so clean
    contexts, which autoregressive sampling conditions on, are seen more often in training.
    """
    if mode not in NOISE_LEVEL_MODES:
        raise ValueError(f"unknown noise-level mode {mode!r}; choose one of {NOISE_LEVEL_MODES}")
    if batch_size < 1 or seq_len < 1 or num_steps < 1:
        raise ValueError("batch_size, seq_len and num_steps must all be >= 1")
    if not 0.0 <= first_token_known_prob <= 1.0:
        raise ValueError(f"first_token_known_prob must lie in [0, 1], got {first_token_known_prob}")
    if not level_power > 0:
        raise ValueError(f"level_power must be > 0, got {level_power}")
    if first_token_known_prob > 0 and mode == "teacher_forcing":
        raise ValueError("first_token_known_prob has no meaning under teacher_forcing (the past is clean already)")
    if generator is not None and device is None:
        device = generator.device
    shape = (batch_size, seq_len)
    mask = torch.ones(shape, device=device)
    if mode == "diffusion_forcing":
        levels = _levels(num_steps, shape, level_power, generator, device)
    elif mode == "full_sequence":
        levels = _levels(num_steps, (batch_size, 1), level_power, generator, device).expand(shape).clone()
    elif mode == "causal":
        levels = _levels(num_steps, shape, level_power, generator, device).sort(dim=1).values
    else:  # teacher_forcing
        target = _randint(0, seq_len, (batch_size, 1), generator, device)  # (B, 1)
        k = _levels(num_steps, (batch_size, 1), level_power, generator, device)  # (B, 1)
        t = torch.arange(seq_len, device=device)[None]  # (1, T)
        levels = torch.where(t < target, torch.zeros_like(t), torch.full_like(t, num_steps - 1))  # (B, T)
        levels = torch.where(t == target, k, levels)
        mask = (t == target).to(mask.dtype)
    if first_token_known_prob > 0:
        known = torch.rand((batch_size,), generator=generator, device=device) < first_token_known_prob
        low = _randint(0, max(1, num_steps // 4), (batch_size,), generator, device)
        levels[:, 0] = torch.where(known, low, levels[:, 0])
        if mode == "causal" and seq_len > 1:  # keep noise non-decreasing into the future
            levels[:, 0] = torch.minimum(levels[:, 0], levels[:, 1])
    return NoiseLevelSample(levels=levels.long(), loss_mask=mask)
