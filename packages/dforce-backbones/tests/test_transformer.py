"""Tests for the causal transformer: shapes, adaLN-Zero init, causality, banded mask, validation, presets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from dforce_backbones import TRANSFORMER_PRESETS, CausalTransformer, CausalTransformerConfig


def make(
    token_shape: tuple[int, ...] = (4,), cond_dim: int = 0, window: int = 8, **kw: object
) -> CausalTransformer:
    kw = {"d_model": 32, "n_layers": 2, "n_heads": 2, **kw}
    cfg = CausalTransformerConfig(token_shape=token_shape, window=window, cond_dim=cond_dim, **kw)
    return CausalTransformer(cfg)


def inputs(B: int, T: int, token_shape: tuple[int, ...], cond_dim: int = 0):
    x = torch.randn(B, T, *token_shape)
    k = torch.randint(0, 1000, (B, T))
    c = torch.randn(B, T, cond_dim) if cond_dim else None
    return x, k, c


@pytest.mark.parametrize("token_shape", [(4,), (3, 4, 4)])
@pytest.mark.parametrize("cond_dim", [0, 5])
def test_shapes(perturb: Callable[..., nn.Module], token_shape: tuple[int, ...], cond_dim: int) -> None:
    m = perturb(make(token_shape, cond_dim))
    x, k, c = inputs(3, 6, token_shape, cond_dim)
    out = m(x, k, c)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.abs().sum() > 0


def test_adaln_zero_init_outputs_zero_and_blocks_are_identity() -> None:
    m = make((3, 4, 4), cond_dim=5)
    x, k, c = inputs(2, 5, (3, 4, 4), 5)
    out = m(x, k, c)
    assert torch.equal(out, torch.zeros_like(out))
    h = torch.randn(2, 5, 32)
    cos, sin = torch.ones(5, 8), torch.zeros(5, 8)
    h2, _, _ = m.blocks[0](h, torch.randn(2, 5, 32), cos, sin, None, None, None, True)
    assert torch.equal(h2, h)


@pytest.mark.parametrize("what", ["x", "level", "cond"])
def test_causality(perturb: Callable[..., nn.Module], what: str) -> None:
    m = perturb(make((4,), cond_dim=3))
    x, k, c = inputs(2, 8, (4,), 3)
    base = m(x, k, c)
    j = 4
    x2, k2, c2 = x.clone(), k.clone(), c.clone()
    if what == "x":
        x2[:, j] += 1.0
    elif what == "level":
        k2[:, j] = (k2[:, j] + 300) % 1000
    else:
        c2[:, j] += 1.0
    out = m(x2, k2, c2)
    assert torch.equal(out[:, :j], base[:, :j])
    assert (out[:, j:] - base[:, j:]).abs().max() > 1e-4


def test_non_causal_sees_the_future(perturb: Callable[..., nn.Module]) -> None:
    m = perturb(make((4,), causal=False))
    x, k, _ = inputs(2, 8, (4,))
    base = m(x, k)
    x2 = x.clone()
    x2[:, -1] += 1.0
    assert (m(x2, k)[:, 0] - base[:, 0]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="window"):
        m(*inputs(2, 9, (4,))[:2])
    with pytest.raises(NotImplementedError):
        m.new_cache(2)


def test_banded_mask_receptive_field(perturb: Callable[..., nn.Module]) -> None:
    W = 4
    m = perturb(make((4,), window=W, n_layers=3), scale=0.3)  # large gates: the chain spans 3 layers
    rf = m.receptive_field
    assert rf == 3 * (W - 1) + 1
    N = 2 * rf
    x, k, _ = inputs(2, N, (4,))
    base = m(x, k)
    t = N - 1
    x_old = x.clone()
    x_old[:, t - rf] += 5.0  # just outside the receptive field of the last token
    assert torch.equal(m(x_old, k)[:, t], base[:, t])
    x_in = x.clone()
    x_in[:, t - rf + 1] += 5.0  # oldest token inside it
    assert (m(x_in, k)[:, t] - base[:, t]).abs().max() > 1e-6
    # an uncached forward on only the last rf tokens gives the same last output (RoPE is relative; the
    # positions differ, so only up to fp32 rounding of the rotation angles)
    trunc = m(x[:, -rf:], k[:, -rf:])
    assert torch.allclose(trunc[:, -1], base[:, -1], rtol=1e-5, atol=1e-5)


def test_level_sensitivity(perturb: Callable[..., nn.Module]) -> None:
    m = perturb(make((3, 4, 4)))
    x, k, _ = inputs(2, 4, (3, 4, 4))
    assert (m(x, k) - m(x, (k + 500) % 1000)).abs().max() > 1e-4
    assert (m(x, torch.full_like(k, -1)) - m(x, torch.zeros_like(k))).abs().max() > 1e-6


def test_input_validation() -> None:
    m = make((4,), cond_dim=2)
    x, k, c = inputs(2, 3, (4,), 2)
    with pytest.raises(ValueError, match=r"\(B, T, 4\)"):
        m(torch.randn(2, 3, 5), k, c)
    with pytest.raises(ValueError, match="noise_levels must have shape"):
        m(x, k[:, :2], c)
    with pytest.raises(ValueError, match="integer"):
        m(x, k.float(), c)
    with pytest.raises(ValueError, match="cond_dim=2"):
        m(x, k)
    with pytest.raises(ValueError, match="cond must have shape"):
        m(x, k, torch.randn(2, 3, 3))
    with pytest.raises(ValueError, match="needs a cache"):
        m(x, k, c, commit=1)
    with pytest.raises(ValueError, match="cond_dim=0"):
        make((4,))(x, k, c)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"d_model": 6, "n_heads": 2}, "even"),
        ({"window": 0}, "window"),
        ({"token_shape": ()}, "token_shape"),
        ({"cond_dim": -1}, "cond_dim"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    base = {"token_shape": (4,), "d_model": 32, "n_heads": 2}
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        CausalTransformerConfig(**base)


def test_presets() -> None:
    assert set(TRANSFORMER_PRESETS) == {"tiny", "small", "base"}
    m = TRANSFORMER_PRESETS["tiny"]((3, 4, 4), window=6, cond_dim=2)
    assert isinstance(m, CausalTransformer) and m.window == 6
    x, k, c = inputs(1, 6, (3, 4, 4), 2)
    assert m(x, k, c).shape == x.shape
