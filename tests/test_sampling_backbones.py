"""Cross-package contract: dforce_sampling rollouts with the real dforce_backbones networks.

Cached (KV cache / RNN latent) and uncached rollouts must give the same samples for the same seed, also far
beyond the transformer's attention window (its banded causal mask makes the rolling cache exact).
"""

from __future__ import annotations

import pytest
import torch

from dforce_core import NoiseSchedule
from dforce_sampling import DiffusionForcingSampler, MonteCarloGuidance, SamplerConfig, sample

backbones = pytest.importorskip("dforce_backbones", reason="dforce_backbones is not installed")

TOKEN = (3,)
WINDOW = 4
N_TOKENS = 10 * WINDOW


def _randomise(model: torch.nn.Module, seed: int, std: float = 0.2) -> torch.nn.Module:
    """Random weights everywhere (a fresh adaLN-Zero transformer outputs exactly zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model.eval()


def _transformer():
    cfg = backbones.CausalTransformerConfig(
        token_shape=TOKEN, d_model=32, n_layers=2, n_heads=2, window=WINDOW, level_embed_dim=16
    )
    return _randomise(backbones.CausalTransformer(cfg), 0)


def _rnn():
    cfg = backbones.RecurrentDenoiserConfig(token_shape=TOKEN, z_dim=16, network_size=4, num_mlp_layers=2, hidden_mult=4)
    return _randomise(backbones.RecurrentDenoiser(cfg), 1)


def _sampler(eta: float = 0.0) -> DiffusionForcingSampler:
    cfg = SamplerConfig(num_sampling_steps=5, eta=eta, stabilization_level=10, objective="pred_v")
    return DiffusionForcingSampler(NoiseSchedule.from_name("cosine", 100), cfg)


def _rollout(model, sampler, **kw):
    context = torch.randn(2, 2, *TOKEN, generator=torch.Generator().manual_seed(7))
    return sample(model, sampler, n_tokens=N_TOKENS, context=context, generator=torch.Generator().manual_seed(0), **kw)


@pytest.mark.parametrize(
    ("scheduling", "chunk", "eta"), [("autoregressive", 1, 0.0), ("pyramid", 3, 1.0)], ids=["ar", "pyramid-eta1"]
)
def test_transformer_cached_equals_uncached(scheduling, chunk, eta):
    model, sampler = _transformer(), _sampler(eta)
    kw = dict(chunk_size=chunk, scheduling=scheduling)
    full = _rollout(model, sampler, **kw)
    cached = _rollout(model, sampler, use_cache=True, **kw)
    assert torch.isfinite(full).all() and full.abs().max() > 0.1
    assert (full - cached).abs().max() < 1e-4
    # the receptive field (L * (window - 1) + 1 tokens) of history is enough for the uncached path too
    window = _rollout(model, sampler, max_history="receptive_field", **kw)
    assert (full - window).abs().max() < 1e-4


@pytest.mark.parametrize(("scheduling", "chunk"), [("autoregressive", 1), ("pyramid", 3)], ids=["ar", "pyramid"])
def test_rnn_cached_equals_uncached(scheduling, chunk):
    model, sampler = _rnn(), _sampler()
    kw = dict(chunk_size=chunk, scheduling=scheduling)
    full = _rollout(model, sampler, **kw)
    cached = _rollout(model, sampler, use_cache=True, **kw)
    assert torch.isfinite(full).all() and full.abs().max() > 0.1
    assert (full - cached).abs().max() < 1e-4


@pytest.mark.parametrize("make", [_transformer, _rnn], ids=["transformer", "rnn"])
def test_mcg_fans_out_the_backbone_cache(make):
    model, sampler = make(), _sampler()

    def reward(x0):
        return -(x0 - 1.0).pow(2).flatten(1).mean(1)

    kw = dict(chunk_size=3, scheduling="pyramid", guidance=MonteCarloGuidance(reward, 0.05, num_samples=3))
    context = torch.randn(2, 2, *TOKEN, generator=torch.Generator().manual_seed(7))
    full = sample(model, sampler, n_tokens=14, context=context, generator=torch.Generator().manual_seed(0), **kw)
    cached = sample(
        model, sampler, n_tokens=14, context=context, generator=torch.Generator().manual_seed(0), use_cache=True, **kw
    )
    assert (full - cached).abs().max() < 1e-4


@pytest.mark.parametrize("make", [_transformer, _rnn], ids=["transformer", "rnn"])
@pytest.mark.parametrize("guided", [False, True], ids=["plain", "mcg"])
def test_commit_finished_equals_cached(make, guided):
    """Committing a whole-plan chunk's finished tokens early gives the same plan as the plain cached path."""
    model, sampler = make(), _sampler()

    def reward(x0):
        return -(x0 - 1.0).pow(2).flatten(1).mean(1)

    kw = dict(chunk_size=None, scheduling="pyramid", use_cache=True,
              guidance=MonteCarloGuidance(reward, 0.05, num_samples=3) if guided else None)
    cached = _rollout(model, sampler, **kw)
    early = _rollout(model, sampler, commit_finished=True, **kw)
    assert torch.isfinite(cached).all() and cached.abs().max() > 0.1
    assert (cached - early).abs().max() < 1e-5
