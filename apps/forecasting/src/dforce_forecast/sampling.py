"""Autoregressive sample paths: the context absorbed clean once, then chunk-1 DDIM per token with stabilization.

The lag covariates of a future token are built from the values generated before it (or, for the authors'
one-step evaluation, from the true values: ``lag_truth``), so this loop drives the sampler token by token (``dforce_sampling.sample`` needs the whole conditioning up front). Per token it runs
the same per-token DDIM steps as ``dforce_sampling.sample(scheduling="autoregressive", chunk_size=1,
use_cache=True)``: the previous finished token is committed into the backbone's cache in the first step of
the next token, shown at level ``stabilization_level - 1`` (reference section 2.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dforce_core import clipped_noise
from dforce_forecast.model import ForecastDenoiser, lag_covariates
from dforce_sampling import DiffusionForcingSampler


def _covariates(buf: Tensor, tf: Tensor, rows: Sequence[int], lags: Sequence[int]) -> Tensor:
    """(B, len(rows), L*D + 2F) conditioning of the tokens at buffer rows ``rows``."""
    return torch.cat([lag_covariates(buf, rows, lags), tf[:, list(rows)]], dim=-1)


def sample_paths(model: ForecastDenoiser, sampler: DiffusionForcingSampler, history: Tensor, time_features: Tensor,
                 *, lags: Sequence[int], prediction_length: int, num_samples: int,
                 generator: torch.Generator | None = None, return_full: bool = False,
                 lag_truth: Tensor | None = None) -> Tensor:
    """Sample ``num_samples`` futures per window, all windows and samples in one batch.

    ``history`` (N, max_lag + C, D) model-space rows: ``max_lag`` rows of lag history then the C context
    tokens; ``time_features`` (N, max_lag + C + P, 2F). Returns (N, num_samples, P, D) model-space futures, or
    with ``return_full`` the whole (N, num_samples, max_lag + C + P, D) buffer, whose history rows are the
    input copied unchanged.

    ``lag_truth`` (N, P, D) model-space true future rows: the lag covariates of every future token are then
    read from the truth instead of the generated values (the authors' time-series evaluation, which builds the
    lags of the whole window from the ground truth: a one-step-ahead forecast at every horizon step). The
    generated tokens still form the model's own chain (cache). Never use it for a real forecast.
    """
    if history.dim() != 3 or time_features.dim() != 3:
        raise ValueError(f"history must be (N, max_lag + C, D) and time_features (N, max_lag + C + P, 2F), got "
                         f"{tuple(history.shape)} and {tuple(time_features.shape)}")
    n, h_rows, d = history.shape
    max_lag = max(lags)
    c, p = h_rows - max_lag, int(prediction_length)
    if c < 1 or p < 1:
        raise ValueError(f"history must hold max_lag={max_lag} rows plus >= 1 context token, got {h_rows} rows")
    if tuple(time_features.shape[:2]) != (n, h_rows + p):
        raise ValueError(f"time_features must be (N, max_lag + C + P, 2F) = ({n}, {h_rows + p}, 2F), got "
                         f"{tuple(time_features.shape)}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    if lag_truth is not None and tuple(lag_truth.shape) != (n, p, d):
        raise ValueError(f"lag_truth must be (N, P, D) = ({n}, {p}, {d}), got {tuple(lag_truth.shape)}")
    device = next(model.parameters()).device
    history = history.to(device=device, dtype=torch.float32)
    tf = time_features.to(device=device, dtype=torch.float32)
    clip = sampler.config.clip_noise
    levels = sampler.index_to_level(torch.arange(sampler.num_steps, -1, -1, device=device))  # (S+1,) K-1 .. -1

    with torch.no_grad():
        buf = torch.zeros((n, h_rows + p, d), device=device)  # (N, R, D)
        buf[:, :h_rows] = history
        lag_buf = buf  # where lags are read: the generated values, or the truth (one-step evaluation)
        if lag_truth is not None:
            lag_buf = buf.clone()
            lag_buf[:, h_rows:] = lag_truth.to(device=device, dtype=torch.float32)
        cache = model.new_cache(n)
        ctx_rows = list(range(max_lag, h_rows))
        ctx_levels = torch.zeros((n, c), dtype=torch.long, device=device)  # context absorbed clean (level 0)
        model(buf[:, max_lag:h_rows], ctx_levels, _covariates(buf, tf, ctx_rows, lags), cache=cache, commit=c)
        # fan out: every window's cache and buffer repeated num_samples times (no loop over samples)
        cache = cache.repeat_interleave(num_samples)
        buf = buf.repeat_interleave(num_samples, dim=0)  # (N*S, R, D)
        lag_buf = buf if lag_truth is None else lag_buf.repeat_interleave(num_samples, dim=0)  # (N*S, R, D)
        tf = tf.repeat_interleave(num_samples, dim=0)  # (N*S, R, 2F)
        b = n * num_samples
        prev_cond: Tensor | None = None
        for r in range(h_rows, h_rows + p):
            cond_t = _covariates(lag_buf, tf, [r], lags)  # (B, 1, cond)
            x_t = clipped_noise((b, 1, d), clip, generator=generator, device=device)  # (B, 1, D)
            for m in range(levels.shape[0] - 1):
                lv_from = levels[m].expand(b, 1)
                lv_to = levels[m + 1].expand(b, 1)
                if m == 0 and prev_cond is not None:  # commit the previous generated token (stabilized)
                    clean = torch.full((b, 1), -1, dtype=torch.long, device=device)
                    out = sampler.denoise(model, torch.cat([buf[:, r - 1 : r], x_t], dim=1),
                                          torch.cat([clean, lv_from], dim=1), torch.cat([clean, lv_to], dim=1),
                                          torch.cat([prev_cond, cond_t], dim=1), cache=cache, commit=1,
                                          generator=generator)
                else:
                    out = sampler.denoise(model, x_t, lv_from, lv_to, cond_t, cache=cache, generator=generator)
                x_t = out.prev_sample[:, -1:]
            buf[:, r : r + 1] = x_t
            prev_cond = cond_t
        full = buf.reshape(n, num_samples, h_rows + p, d)
        return full if return_full else full[:, :, h_rows:]
