"""Tests for the paper's recurrent denoiser (reference §4.1): shapes, causality, cache, init encoder, presets."""

from __future__ import annotations

import pytest
import torch

from dforce_backbones import RECURRENT_PRESETS, RecurrentDenoiser, RecurrentDenoiserConfig

N = 24


def make(token_shape: tuple[int, ...] = (6,), **kw: object) -> RecurrentDenoiser:
    kw = {"z_dim": 32, "network_size": 4, "num_mlp_layers": 3, "num_gru_layers": 2, **kw}
    return RecurrentDenoiser(RecurrentDenoiserConfig(token_shape=token_shape, **kw)).eval()


@pytest.mark.parametrize("token_shape", [(4,), (3, 4, 4)])
@pytest.mark.parametrize("cond_dim", [0, 5])
@pytest.mark.parametrize(("mlp", "gru"), [(1, 4), (3, 1), (2, 0)])
def test_shapes(token_shape: tuple[int, ...], cond_dim: int, mlp: int, gru: int) -> None:
    m = make(token_shape, cond_dim=cond_dim, num_mlp_layers=mlp, num_gru_layers=gru)
    x = torch.randn(2, 5, *token_shape)
    c = torch.randn(2, 5, cond_dim) if cond_dim else None
    out = m(x, torch.randint(0, 1000, (2, 5)), c)
    assert out.shape == x.shape


@pytest.mark.parametrize("what", ["x", "level", "cond"])
def test_causality(what: str) -> None:
    m = make(cond_dim=3)
    x, k, c = torch.randn(2, 8, 6), torch.randint(0, 1000, (2, 8)), torch.randn(2, 8, 3)
    base = m(x, k, c)
    j = 5
    x2, k2, c2 = x.clone(), k.clone(), c.clone()
    if what == "x":
        x2[:, j] += 1.0
    elif what == "level":
        k2[:, j] = (k2[:, j] + 300) % 1000
    else:
        c2[:, j] += 1.0
    out = m(x2, k2, c2)
    assert torch.equal(out[:, :j], base[:, :j])
    assert (out[:, j:] - base[:, j:]).abs().max() > 1e-5


def test_level_sensitivity() -> None:
    m = make()
    x, k = torch.randn(2, 4, 6), torch.randint(0, 1000, (2, 4))
    assert (m(x, k) - m(x, (k + 500) % 1000)).abs().max() > 1e-5


@torch.no_grad()
@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("init_dim", [0, 4])
def test_cache_matches_uncached(chunk: int, init_dim: int) -> None:
    m = make(cond_dim=2, init_encoder_dim=init_dim)
    x, k, c = torch.randn(2, N, 6), torch.randint(-1, 1000, (2, N)), torch.randn(2, N, 2)
    obs = torch.randn(2, init_dim) if init_dim else None
    full = m(x, k, c, init_obs=obs)
    cache = m.new_cache(2, obs)
    outs = []
    for s in range(0, N, chunk):
        e = min(N, s + chunk)
        outs.append(m(x[:, s:e], k[:, s:e], c[:, s:e], cache=cache, commit=e - s))
    assert cache.length == N
    assert (torch.cat(outs, 1) - full).abs().max() < 1e-5


@torch.no_grad()
def test_query_levels_then_commit_and_partial_commit() -> None:
    m = make()
    x, k = torch.randn(2, N, 6), torch.randint(0, 1000, (2, N))
    full = m(x, k)
    cache = m.new_cache(2)
    for t in range(N):
        z_before = cache.z.clone()
        for level in (999, 100):
            lv = torch.full((2, 1), level)
            got = m(x[:, t : t + 1] * 0.5, lv, cache=cache)  # commit=0
            ref = m(torch.cat([x[:, :t], x[:, t : t + 1] * 0.5], 1), torch.cat([k[:, :t], lv], 1))[:, -1:]
            assert (got - ref).abs().max() < 1e-5
            assert torch.equal(cache.z, z_before) and cache.length == t
        got = m(x[:, t : t + 3], k[:, t : t + 3], cache=cache, commit=1)  # a window, commit its first token
        assert (got - full[:, t : t + 3]).abs().max() < 1e-5


def test_init_encoder() -> None:
    m = make(init_encoder_dim=4)
    x, k = torch.randn(2, 5, 6), torch.randint(0, 1000, (2, 5))
    o1, o2 = torch.randn(2, 4), torch.randn(2, 4)
    assert (m(x, k, init_obs=o1) - m(x, k, init_obs=o2)).abs().max() > 1e-5
    assert torch.equal(m.new_cache(2, o1).z, m.initial_latent(2, o1))
    with pytest.raises(ValueError, match="init_obs"):
        m(x, k)
    with pytest.raises(ValueError, match="init_obs"):
        m.new_cache(2)
    with pytest.raises(ValueError, match="init_obs"):
        make().new_cache(2, o1)
    with pytest.raises(ValueError, match="new_cache"):
        m(x, k, cache=m.new_cache(2, o1), init_obs=o1)


def test_gradients_flow_through_time() -> None:
    m = make().train()
    x = torch.randn(2, 6, 6, requires_grad=True)
    m(x, torch.randint(0, 1000, (2, 6)))[:, -1].sum().backward()
    assert x.grad is not None and x.grad[:, 0].abs().sum() > 0
    assert m.z0.grad is not None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"z_dim": 30, "num_gru_layers": 4}, "divisible"),
        ({"num_mlp_layers": 0}, "num_mlp_layers"),
        ({"num_gru_layers": -1}, "num_gru_layers"),
        ({"init_encoder_dim": -1}, "init_encoder_dim"),
        ({"token_shape": (0,)}, "token_shape"),
    ],
)
def test_config_validation(kwargs: dict, match: str) -> None:
    base = {"token_shape": (4,), "z_dim": 32, "network_size": 4}
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        RecurrentDenoiserConfig(**base)


def test_presets() -> None:
    assert set(RECURRENT_PRESETS) == {"maze", "maze_small", "time_series"}
    maze = RECURRENT_PRESETS["maze_small"]((60,), init_encoder_dim=4)
    cfg = maze.config
    assert (cfg.z_dim, cfg.network_size, cfg.num_mlp_layers, cfg.num_gru_layers) == (128, 16, 4, 1)
    # reference §4.1: a hand count of the official code gives about 3.2M parameters for network_size 16
    assert 3.0e6 < sum(p.numel() for p in maze.parameters()) < 3.4e6
    ts = RECURRENT_PRESETS["time_series"]((8,), cond_dim=30)
    cfg = ts.config
    assert (cfg.z_dim, cfg.network_size, cfg.num_mlp_layers, cfg.num_gru_layers) == (1024, 64, 1, 4)
    out = ts(torch.randn(2, 3, 8), torch.randint(0, 1000, (2, 3)), torch.randn(2, 3, 30))
    assert out.shape == (2, 3, 8)
