"""Causal transformer denoiser: per-token adaLN-Zero level conditioning, RoPE and a rolling KV cache."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dforce_backbones.attention import RopeSelfAttention, banded_causal_mask
from dforce_backbones.embeddings import LevelEmbedding, rope_angles
from dforce_backbones.kv_cache import KVCache
from dforce_backbones.validation import check_commit, check_denoiser_inputs

__all__ = ["AdaLNBlock", "CausalTransformer", "CausalTransformerConfig", "FinalLayer"]


@dataclass
class CausalTransformerConfig:
    """Hyper-parameters of ``CausalTransformer`` (temporal-attention backbone of DF v1.5, ref. §4.2-4.3).

    ``window`` is the maximum attention span in tokens (normally the training length): token t attends to
    tokens ``t-window+1 .. t``. ``causal=False`` switches to full bidirectional attention over at most
    ``window`` tokens (no cache). ``cond_dim=0`` means no external conditioning.
    """

    token_shape: tuple[int, ...]
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    window: int = 16
    causal: bool = True
    cond_dim: int = 0
    dropout: float = 0.0
    level_embed_dim: int = 256
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        self.token_shape = tuple(int(s) for s in self.token_shape)
        if len(self.token_shape) == 0 or any(s < 1 for s in self.token_shape):
            raise ValueError(
                f"token_shape must be a non-empty tuple of positive ints, got {self.token_shape}"
            )
        if self.d_model < 1 or self.n_heads < 1 or self.n_layers < 1:
            raise ValueError(
                f"d_model, n_heads and n_layers must be >= 1, "
                f"got {self.d_model}, {self.n_heads}, {self.n_layers}"
            )
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError(
                f"head dim d_model/n_heads = {self.d_model // self.n_heads} must be even for RoPE; "
                "change d_model or n_heads"
            )
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1 token, got {self.window}")
        if self.cond_dim < 0:
            raise ValueError(f"cond_dim must be >= 0 (0 = no conditioning), got {self.cond_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.level_embed_dim < 2:
            raise ValueError(f"level_embed_dim must be >= 2, got {self.level_embed_dim}")
        if self.rope_base <= 1.0:
            raise ValueError(f"rope_base must be > 1, got {self.rope_base}")

    @property
    def token_dim(self) -> int:
        """Number of features of one flattened token, ``prod(token_shape)``."""
        return math.prod(self.token_shape)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """adaLN modulation ``x * (1 + scale) + shift`` (DiT, Peebles & Xie 2023), all (B, T, D)."""
    return x * (1 + scale) + shift


class AdaLNBlock(nn.Module):
    """Pre-norm transformer block with per-token adaLN-Zero shift/scale/gate on attention and MLP (DiT)."""

    def __init__(self, d_model: int, n_heads: int, mlp_ratio: float, dropout: float) -> None:
        super().__init__()
        hidden = int(round(d_model * mlp_ratio))
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.attn = RopeSelfAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, hidden),
            nn.GELU(approximate="tanh"),
            nn.Dropout(dropout),
            nn.Linear(hidden, d_model),
        )
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 6 * d_model))
        nn.init.zeros_(self.ada[1].weight)  # adaLN-Zero: gates start at 0, the block starts as identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(
        self,
        h: Tensor,
        c: Tensor,
        cos: Tensor,
        sin: Tensor,
        past_k: Tensor | None,
        past_v: Tensor | None,
        attn_mask: Tensor | None,
        is_causal: bool,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Update h (B, T, D) given conditioning c (B, T, D); also return keys/values [past; new]."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c).chunk(6, dim=-1)  # (B, T, D) x6
        a, k, v = self.attn(
            _modulate(self.norm1(h), shift1, scale1), cos, sin, past_k, past_v, attn_mask, is_causal
        )  # (B, T, D), (B, H, P+T, Dh) x2
        h = h + gate1 * a  # (B, T, D)
        h = h + gate2 * self.mlp(_modulate(self.norm2(h), shift2, scale2))  # (B, T, D)
        return h, k, v


class FinalLayer(nn.Module):
    """adaLN-modulated final norm and zero-initialised projection back to the token features."""

    def __init__(self, d_model: int, token_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(d_model, 2 * d_model))
        self.proj = nn.Linear(d_model, token_dim)
        for lin in (self.ada[1], self.proj):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        """Map h (B, T, D) with conditioning c (B, T, D) to (B, T, token_dim)."""
        shift, scale = self.ada(c).chunk(2, dim=-1)  # (B, T, D) x2
        return self.proj(_modulate(self.norm(h), shift, scale))  # (B, T, token_dim)


class CausalTransformer(nn.Module):
    """Diffusion Forcing denoiser (Chen et al. 2024): a causal transformer over tokens with per-token levels.

    Implements the denoiser protocol of ARCHITECTURE.md: ``model(x, noise_levels, cond, *, cache, commit)``.
    Attention is banded-causal with width ``window`` (exact rolling KV cache) or, with ``causal=False``,
    bidirectional. A freshly built model outputs exactly zero (adaLN-Zero gates and zero output layer).
    """

    def __init__(self, config: CausalTransformerConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.token_dim = cfg.token_dim
        self.head_dim = cfg.d_model // cfg.n_heads
        self.in_proj = nn.Linear(self.token_dim, cfg.d_model)
        self.cond_proj = nn.Linear(cfg.cond_dim, cfg.d_model) if cfg.cond_dim > 0 else None
        self.level_embed = LevelEmbedding(cfg.d_model, freq_dim=cfg.level_embed_dim)
        self.blocks = nn.ModuleList(
            AdaLNBlock(cfg.d_model, cfg.n_heads, cfg.mlp_ratio, cfg.dropout) for _ in range(cfg.n_layers)
        )
        self.final = FinalLayer(cfg.d_model, self.token_dim)
        self._masks: dict[tuple[int, int, torch.device], tuple[Tensor | None, bool]] = {}

    @property
    def window(self) -> int:
        """Maximum attention span in tokens."""
        return self.config.window

    @property
    def causal(self) -> bool:
        """Whether attention is (banded) causal."""
        return self.config.causal

    @property
    def receptive_field(self) -> int:
        """Number of most recent tokens (incl. the last) that can influence the last output: L*(W-1)+1."""
        return self.config.n_layers * (self.config.window - 1) + 1

    def new_cache(self, batch_size: int) -> KVCache:
        """An empty rolling KV cache for ``batch_size`` rollouts (causal models only)."""
        if not self.config.causal:
            raise NotImplementedError("CausalTransformer: a non-causal (causal=False) model has no KV cache")
        if batch_size < 1:
            raise ValueError(f"new_cache: batch_size must be >= 1, got {batch_size}")
        p = self.in_proj.weight
        empty = [
            p.new_zeros(batch_size, self.config.n_heads, 0, self.head_dim)
            for _ in range(2 * self.config.n_layers)
        ]
        n = self.config.n_layers
        return KVCache(keys=empty[:n], values=empty[n:], max_entries=self.config.window - 1)

    def _attn_mask(self, q_len: int, past: int, device: torch.device) -> tuple[Tensor | None, bool]:
        """(mask, is_causal) for q_len queries after ``past`` cached keys, memoised per shape and device."""
        key = (q_len, past, device)
        hit = self._masks.get(key)
        if hit is not None:
            return hit
        if not self.config.causal:
            out: tuple[Tensor | None, bool] = (None, False)
        elif past == 0 and q_len <= self.config.window:
            out = (None, q_len > 1)  # plain causal mask: let SDPA pick its fused causal kernel
        else:
            mask = banded_causal_mask(q_len, past + q_len, self.config.window, device)  # (T, P+T)
            out = (None, False) if bool(mask.all()) else (mask, False)
        if len(self._masks) > 256:
            self._masks.clear()
        self._masks[key] = out
        return out

    def forward(
        self,
        x: Tensor,
        noise_levels: Tensor,
        cond: Tensor | None = None,
        *,
        cache: KVCache | None = None,
        commit: int = 0,
    ) -> Tensor:
        """Denoise x (B, T, *token_shape) at levels (B, T); with a cache, x continues the cached prefix."""
        cfg = self.config
        B, T = check_denoiser_inputs(
            x, noise_levels, cond, cfg.token_shape, cfg.cond_dim, "CausalTransformer"
        )
        check_commit(commit, T, cache is not None, "CausalTransformer")
        if cache is not None:
            if not cfg.causal:
                raise ValueError("CausalTransformer: caching needs causal=True; call without cache")
            if cache.batch_size != B or len(cache.keys) != cfg.n_layers:
                raise ValueError(
                    f"CausalTransformer: cache is for batch {cache.batch_size} and {len(cache.keys)} layers, "
                    f"got x with batch {B} on a {cfg.n_layers}-layer model; make it with new_cache({B})"
                )
        elif not cfg.causal and T > cfg.window:
            raise ValueError(
                f"CausalTransformer: non-causal model sees at most window={cfg.window} tokens, got T={T}"
            )
        start = 0 if cache is None else cache.length
        past = 0 if cache is None else cache.num_entries

        h = self.in_proj(x.reshape(B, T, self.token_dim))  # (B, T, D)
        c = self.level_embed(noise_levels)  # (B, T, D)
        if self.cond_proj is not None:
            e = self.cond_proj(cond)  # (B, T, D)
            h = h + e  # (B, T, D)
            c = c + e  # (B, T, D)
        positions = torch.arange(start, start + T, device=x.device)  # (T,)
        cos, sin = rope_angles(positions, self.head_dim, cfg.rope_base)  # (T, Dh/2) x2
        attn_mask, is_causal = self._attn_mask(T, past, x.device)

        for i, block in enumerate(self.blocks):
            past_k = None if cache is None else cache.keys[i]  # (B, H, P, Dh)
            past_v = None if cache is None else cache.values[i]  # (B, H, P, Dh)
            h, k, v = block(
                h, c, cos, sin, past_k, past_v, attn_mask, is_causal
            )  # (B, T, D), (B, H, P+T, Dh) x2
            if cache is not None and commit > 0:
                cache.keep_last(i, k[:, :, : past + commit], v[:, :, : past + commit])
        if cache is not None:
            cache.length += commit

        out = self.final(h, c)  # (B, T, token_dim)
        return out.reshape(B, T, *cfg.token_shape)  # (B, T, *token_shape)
