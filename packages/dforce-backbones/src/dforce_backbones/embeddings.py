"""Noise-level and position embeddings: sinusoidal features, an MLP level embedder and rotary helpers."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["LevelEmbedding", "apply_rope", "rope_angles", "sinusoidal_embedding"]


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal features ``[cos(v w_i), sin(v w_i)]`` of (float) values: (...,) -> (..., dim), fp32."""
    if dim < 1:
        raise ValueError(f"sinusoidal_embedding: dim must be >= 1, got {dim}")
    half = dim // 2
    exponent = (
        -math.log(max_period) * torch.arange(half, device=values.device, dtype=torch.float32) / max(half, 1)
    )
    freqs = torch.exp(exponent)  # (half,)
    angles = values.to(torch.float32).unsqueeze(-1) * freqs  # (..., half)
    emb = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)  # (..., 2*half)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))  # (..., dim)
    return emb


class LevelEmbedding(nn.Module):
    """Per-token noise-level embedder: sinusoidal(k) -> Linear -> SiLU -> Linear, (B, T) -> (B, T, dim).

    Levels are the discrete diffusion steps of Diffusion Forcing (Chen et al. 2024, §3.2); any integer is
    accepted, including -1 ("clean"), since the sinusoidal features are defined for every real value.
    """

    def __init__(self, dim: int, freq_dim: int = 256, max_period: float = 10000.0) -> None:
        super().__init__()
        if dim < 1 or freq_dim < 2:
            raise ValueError(
                f"LevelEmbedding: need dim >= 1 and freq_dim >= 2, got dim={dim}, freq_dim={freq_dim}"
            )
        self.dim = dim
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, levels: Tensor) -> Tensor:
        """Embed integer (or float) levels of any shape (...,) into (..., dim)."""
        feats = sinusoidal_embedding(levels, self.freq_dim, self.max_period)  # (..., F) fp32
        feats = feats.to(self.mlp[0].weight.dtype)  # (..., F)
        return self.mlp(feats)  # (..., dim)


_INV_FREQ_CACHE: dict[tuple[int, float, torch.device], Tensor] = {}


def _rope_inv_freq(head_dim: int, base: float, device: torch.device) -> Tensor:
    """Inverse frequencies base^(-2i/head_dim), fp32, cached per (head_dim, base, device)."""
    key = (head_dim, float(base), device)
    inv = _INV_FREQ_CACHE.get(key)
    if inv is None:
        idx = torch.arange(0, head_dim, 2, device=device, dtype=torch.float32)  # (Dh/2,)
        inv = torch.pow(torch.tensor(float(base), device=device), -idx / head_dim)  # (Dh/2,)
        _INV_FREQ_CACHE[key] = inv
    return inv


def rope_angles(positions: Tensor, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """RoPE (Su et al. 2021) cos/sin for absolute integer positions (T,) or (B, T) -> (..., Dh/2), fp32.

    Angles are computed in fp32 on the fly: identical positions always give bit-identical tables, which is
    what keeps cached and uncached forwards in agreement. (For positions beyond ~1e6 the fastest
    frequencies lose absolute phase accuracy in fp32; relative offsets inside the window are unaffected
    only up to that rounding.)
    """
    if head_dim % 2:
        raise ValueError(f"rope_angles: head_dim must be even, got {head_dim}")
    if positions.dim() not in (1, 2):
        raise ValueError(f"rope_angles: positions must be (T,) or (B, T), got {tuple(positions.shape)}")
    inv = _rope_inv_freq(head_dim, base, positions.device)  # (Dh/2,)
    angles = positions.to(torch.float32).unsqueeze(-1) * inv  # (..., T, Dh/2)
    return torch.cos(angles), torch.sin(angles)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the two halves of the last axis of x (B, H, T, Dh) by the angles of ``rope_angles``, in fp32."""
    if cos.dim() == 3:  # (B, T, Dh/2): per-sample positions, broadcast over heads
        cos = cos.unsqueeze(1)  # (B, 1, T, Dh/2)
        sin = sin.unsqueeze(1)  # (B, 1, T, Dh/2)
    xf = x.to(torch.float32)  # (B, H, T, Dh)
    x1, x2 = xf.chunk(2, dim=-1)  # (B, H, T, Dh/2) each
    out = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)  # (B, H, T, Dh)
    return out.to(x.dtype)
