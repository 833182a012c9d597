"""Multi-head self-attention with RoPE and an optional key/value prefix, and the banded causal mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from dforce_backbones.embeddings import apply_rope

__all__ = ["RopeSelfAttention", "banded_causal_mask"]


def banded_causal_mask(
    q_len: int, k_len: int, window: int, device: torch.device | str | None = None
) -> Tensor:
    """Bool mask (q_len, k_len), True = may attend: query i sees key j iff ``0 <= pos_i - pos_j < window``.

    Keys sit at positions ``0 .. k_len-1`` and the queries are the last ``q_len`` of them
    (positions ``k_len-q_len .. k_len-1``), i.e. a cached prefix of ``k_len - q_len`` keys followed by the
    queries' own keys. This is the banded causal mask of ARCHITECTURE.md ("Causality contract").
    """
    if not 1 <= q_len <= k_len:
        raise ValueError(f"banded_causal_mask: need 1 <= q_len <= k_len, got q_len={q_len}, k_len={k_len}")
    if window < 1:
        raise ValueError(f"banded_causal_mask: window must be >= 1, got {window}")
    q_pos = torch.arange(k_len - q_len, k_len, device=device).unsqueeze(1)  # (Tq, 1)
    k_pos = torch.arange(k_len, device=device).unsqueeze(0)  # (1, Tk)
    delta = q_pos - k_pos  # (Tq, Tk)
    return (delta >= 0) & (delta < window)  # (Tq, Tk)


class RopeSelfAttention(nn.Module):
    """Multi-head self-attention (SDPA) with rotary q/k and an optional cached key/value prefix."""

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"RopeSelfAttention: d_model={d_model} must be divisible by n_heads={n_heads}")
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(
        self,
        h: Tensor,
        cos: Tensor,
        sin: Tensor,
        past_k: Tensor | None = None,
        past_v: Tensor | None = None,
        attn_mask: Tensor | None = None,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Attend h (B, T, D) to [past; h]; return (output (B, T, D), keys and values (B, H, P+T, Dh))."""
        qkv = self.qkv(h)  # (B, T, 3D)
        q, k, v = rearrange(
            qkv, "b t (three h d) -> three b h t d", three=3, h=self.n_heads
        )  # (B, H, T, Dh) x3
        q = apply_rope(q, cos, sin)  # (B, H, T, Dh)
        k = apply_rope(k, cos, sin)  # (B, H, T, Dh)
        if past_k is not None and past_k.shape[2] > 0:
            k = torch.cat([past_k, k], dim=2)  # (B, H, P+T, Dh)
            v = torch.cat([past_v, v], dim=2)  # (B, H, P+T, Dh)
        o = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, H, T, Dh)
        o = rearrange(o, "b h t d -> b t (h d)")  # (B, T, D)
        return self.out(o), k, v  # (B, T, D), (B, H, P+T, Dh), (B, H, P+T, Dh)
