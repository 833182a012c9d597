"""Cached (rolling KV cache) vs. uncached banded-causal transformer forwards must agree (ARCHITECTURE.md)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from dforce_backbones import CausalTransformer, CausalTransformerConfig

W = 4
N = 10 * W
TOL = 1e-5


@pytest.fixture
def model(perturb: Callable[..., nn.Module]) -> CausalTransformer:
    cfg = CausalTransformerConfig(
        token_shape=(3, 2, 2), d_model=32, n_layers=3, n_heads=2, window=W, cond_dim=3
    )
    return perturb(CausalTransformer(cfg))


@pytest.fixture
def seq() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.randn(2, N, 3, 2, 2), torch.randint(-1, 1000, (2, N)), torch.randn(2, N, 3)


@torch.no_grad()
@pytest.mark.parametrize("chunk", [1, 3])
def test_chunked_cache_matches_uncached(model: CausalTransformer, seq, chunk: int) -> None:
    x, k, c = seq
    full = model(x, k, c)
    assert full.abs().max() > 0.1  # the perturbed model is far from its zero init
    cache = model.new_cache(2)
    outs = []
    for s in range(0, N, chunk):
        e = min(N, s + chunk)
        outs.append(model(x[:, s:e], k[:, s:e], c[:, s:e], cache=cache, commit=e - s))
    assert cache.length == N and cache.num_entries == W - 1
    assert (torch.cat(outs, 1) - full).abs().max() < TOL


@torch.no_grad()
def test_sliding_chunks_with_partial_commit(model: CausalTransformer, seq) -> None:
    """Chunks of 3 that commit only their first token (a sliding window of active tokens)."""
    x, k, c = seq
    full = model(x, k, c)
    cache = model.new_cache(2)
    for s in range(N - 2):
        out = model(x[:, s : s + 3], k[:, s : s + 3], c[:, s : s + 3], cache=cache, commit=1)
        assert (out - full[:, s : s + 3]).abs().max() < TOL
    assert cache.length == N - 2


@torch.no_grad()
def test_query_levels_then_commit(model: CausalTransformer, seq) -> None:
    """Query the active token at several levels with commit=0, then commit its clean version."""
    x, k, c = seq
    cache = model.new_cache(2)
    for t in range(N):
        for level in (999, 500, 10):
            lv = torch.full((2, 1), level)
            xt = x[:, t : t + 1] + 0.1 * level / 1000
            got = model(xt, lv, c[:, t : t + 1], cache=cache, commit=0)
            ref = model(torch.cat([x[:, :t], xt], 1), torch.cat([k[:, :t], lv], 1), c[:, : t + 1])[:, -1:]
            assert (got - ref).abs().max() < TOL
            assert cache.length == t
        got = model(x[:, t : t + 1], k[:, t : t + 1], c[:, t : t + 1], cache=cache, commit=1)
        ref = model(x[:, : t + 1], k[:, : t + 1], c[:, : t + 1])[:, -1:]
        assert (got - ref).abs().max() < TOL


@torch.no_grad()
def test_commit_zero_leaves_cache_untouched(model: CausalTransformer, seq) -> None:
    x, k, c = seq
    cache = model.new_cache(2)
    model(x[:, :5], k[:, :5], c[:, :5], cache=cache, commit=5)
    before = cache.clone()
    model(x[:, 5:7], k[:, 5:7], c[:, 5:7], cache=cache, commit=0)
    assert cache.length == before.length == 5
    assert all(
        torch.equal(a, b) for a, b in zip(cache.keys + cache.values, before.keys + before.values, strict=True)
    )


@torch.no_grad()
def test_cache_fan_out(model: CausalTransformer, seq) -> None:
    x, k, c = seq
    cache = model.new_cache(2)
    model(x[:, :6], k[:, :6], c[:, :6], cache=cache, commit=6)
    big = cache.repeat_interleave(3)
    out = model(
        x[:, 6:7].repeat_interleave(3, 0),
        k[:, 6:7].repeat_interleave(3, 0),
        c[:, 6:7].repeat_interleave(3, 0),
        cache=big,
    )
    ref = model(x[:, :7], k[:, :7], c[:, :7])[:, -1:]
    assert (out - ref.repeat_interleave(3, 0)).abs().max() < TOL


def test_cache_errors(model: CausalTransformer, seq) -> None:
    x, k, c = seq
    cache = model.new_cache(3)
    with pytest.raises(ValueError, match="batch"):
        model(x[:, :2], k[:, :2], c[:, :2], cache=cache)
    with pytest.raises(ValueError, match="commit"):
        model(x[:, :2], k[:, :2], c[:, :2], cache=model.new_cache(2), commit=3)
