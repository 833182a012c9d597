"""The forecasting network: a denoiser backbone plus covariate conditioning (lags, calendar, series index).

Token t of a window is the D-vector of model-space values at one time step. Its conditioning is
``[lag_1..lag_L of the target (L*D), Fourier calendar features (2F), learned series embedding (D)]``; every lag
is >= 1 step, so the conditioning of token t only uses values strictly before t (causal).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from dforce_backbones import CausalTransformer, CausalTransformerConfig, RecurrentDenoiser, RecurrentDenoiserConfig
from dforce_forecast.config import ForecastConfig


def lag_covariates(series: Tensor, rows: Sequence[int] | Tensor, lags: Sequence[int]) -> Tensor:
    """Lagged values ``series[:, rows[t] - lag_j]`` of a (B, R, D) buffer, flattened to (B, len(rows), L*D)."""
    rows_t = torch.as_tensor(rows, dtype=torch.long, device=series.device)  # (T,)
    lag_t = torch.as_tensor(tuple(lags), dtype=torch.long, device=series.device)  # (L,)
    idx = rows_t[:, None] - lag_t[None, :]  # (T, L)
    if bool((idx < 0).any()):
        raise ValueError(f"lags {tuple(lags)} reach before the start of the buffer for rows {rows_t.tolist()}")
    b, _, d = series.shape
    return series[:, idx.reshape(-1)].reshape(b, len(rows_t), len(lag_t) * d)  # (B, T, L*D)


class ForecastDenoiser(nn.Module):
    """Backbone (``RecurrentDenoiser`` or ``CausalTransformer``) with the per-series embedding appended to cond.

    Follows the denoiser protocol: ``forward(x (B,T,D), noise_levels (B,T), cond (B,T,L*D+2F), *, cache,
    commit)``; ``new_cache`` delegates to the backbone.
    """

    def __init__(self, config: ForecastConfig, target_dim: int, num_lags: int, num_time_features: int,
                 window: int) -> None:
        super().__init__()
        self.target_dim = int(target_dim)
        self.covariate_dim = num_lags * target_dim + num_time_features
        emb_dim = target_dim if config.series_embedding else 0
        cond_dim = self.covariate_dim + emb_dim
        if config.backbone == "gru":
            self.backbone: nn.Module = RecurrentDenoiser(RecurrentDenoiserConfig(
                token_shape=(target_dim,), z_dim=config.z_dim, network_size=config.network_size,
                num_mlp_layers=config.num_mlp_layers, num_gru_layers=config.num_gru_layers, cond_dim=cond_dim,
                hidden_mult=config.hidden_mult))
        else:
            self.backbone = CausalTransformer(CausalTransformerConfig(
                token_shape=(target_dim,), d_model=config.d_model, n_layers=config.n_layers,
                n_heads=config.n_heads, window=window, cond_dim=cond_dim))
        # nn.Embedding(D, 1) per series, as in the paper code: one learned scalar per series, shown every token
        self.series_embed = nn.Embedding(target_dim, 1) if config.series_embedding else None

    def full_cond(self, cond: Tensor) -> Tensor:
        """Append the series embedding (B, T, D) to the covariates (B, T, L*D + 2F)."""
        if cond.shape[-1] != self.covariate_dim:
            raise ValueError(f"cond must have {self.covariate_dim} features (lags * D + time features), "
                             f"got shape {tuple(cond.shape)}")
        if self.series_embed is None:
            return cond
        emb = self.series_embed.weight[:, 0].to(cond.dtype)  # (D,)
        return torch.cat([cond, emb.expand(*cond.shape[:-1], -1)], dim=-1)

    def new_cache(self, batch_size: int):
        """A rollout cache of the backbone (RNN latent or KV cache)."""
        return self.backbone.new_cache(batch_size)

    def forward(self, x: Tensor, noise_levels: Tensor, cond: Tensor | None = None, *, cache=None,
                commit: int = 0) -> Tensor:
        """Raw v-prediction (B, T, D) for noisy tokens x (B, T, D)."""
        if cond is None:
            raise ValueError("ForecastDenoiser needs cond (B, T, lags * D + time features)")
        return self.backbone(x, noise_levels, self.full_cond(cond), cache=cache, commit=commit)


def build_model(config: ForecastConfig, target_dim: int, num_lags: int, num_time_features: int,
                window: int) -> ForecastDenoiser:
    """The network for a dataset with ``target_dim`` series (call under a seeded torch RNG)."""
    return ForecastDenoiser(config, target_dim, num_lags, num_time_features, window)
