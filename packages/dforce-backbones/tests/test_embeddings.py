"""Tests for sinusoidal / level embeddings and the RoPE helpers."""

from __future__ import annotations

import pytest
import torch

from dforce_backbones import LevelEmbedding, apply_rope, rope_angles, sinusoidal_embedding


def test_sinusoidal_shapes_and_values() -> None:
    v = torch.tensor([[0.0, 1.5], [-1.0, 999.0]])
    e = sinusoidal_embedding(v, 8)
    assert e.shape == (2, 2, 8) and e.dtype == torch.float32
    assert torch.allclose(e[0, 0], torch.tensor([1.0] * 4 + [0.0] * 4))  # cos(0)=1, sin(0)=0
    assert sinusoidal_embedding(torch.arange(3), 7).shape == (3, 7)  # odd width is zero-padded
    with pytest.raises(ValueError, match="dim"):
        sinusoidal_embedding(v, 0)


def test_level_embedding_accepts_clean_level() -> None:
    emb = LevelEmbedding(16, freq_dim=32)
    levels = torch.tensor([[-1, 0, 999]])
    out = emb(levels)
    assert out.shape == (1, 3, 16)
    assert not torch.allclose(out[0, 0], out[0, 1])


def test_rope_is_relative_and_norm_preserving() -> None:
    Dh = 8
    q = torch.randn(1, 2, 1, Dh)
    k = torch.randn(1, 2, 1, Dh)

    def score(pq: int, pk: int) -> torch.Tensor:
        cq, sq = rope_angles(torch.tensor([pq]), Dh)
        ck, sk = rope_angles(torch.tensor([pk]), Dh)
        return (apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum(-1)

    assert torch.allclose(score(5, 3), score(105, 103), atol=1e-5)
    cos, sin = rope_angles(torch.tensor([7]), Dh)
    assert torch.allclose(apply_rope(q, cos, sin).norm(dim=-1), q.norm(dim=-1), atol=1e-6)


def test_rope_per_sample_positions_broadcast() -> None:
    x = torch.randn(2, 3, 4, 6)  # (B, H, T, Dh)
    pos = torch.tensor([[0, 1, 2, 3], [10, 11, 12, 13]])
    cos, sin = rope_angles(pos, 6)
    assert cos.shape == (2, 4, 3)
    out = apply_rope(x, cos, sin)
    c1, s1 = rope_angles(pos[1], 6)
    assert torch.equal(out[1], apply_rope(x[1:2], c1, s1)[0])
    with pytest.raises(ValueError, match="even"):
        rope_angles(pos, 5)
