"""Reward guidance and Monte Carlo Guidance (paper §3.4; reference §3.1-§3.2)."""

from __future__ import annotations

import pytest
import torch
from sampling_toys import CallCounter, GaussianOracle, PlainCacheDenoiser, ToyCausalDenoiser

from dforce_core import NoiseSchedule
from dforce_sampling import DiffusionForcingSampler, MonteCarloGuidance, RewardGuidance, SamplerConfig, sample

D = 3
GOAL = torch.tensor([1.0, -1.0, 0.5])


def goal_reward(x0):
    """Mean over tokens of -||x0_t - goal||^2, one value per sequence."""
    return -((x0 - GOAL) ** 2).sum(-1).mean(-1)


def last_token_reward(x0):
    return -((x0[:, -1] - GOAL) ** 2).sum(-1)


def _sampler(k=100, s=8, **kw) -> DiffusionForcingSampler:
    kw.setdefault("stabilization_level", 5)
    return DiffusionForcingSampler(NoiseSchedule.from_name("cosine", k), SamplerConfig(num_sampling_steps=s, **kw))


def _run(model, sampler, seed=0, **kw):
    kw.setdefault("n_tokens", 10)
    kw.setdefault("batch_size", 2)
    kw.setdefault("token_shape", (D,))
    return sample(model, sampler, generator=torch.Generator().manual_seed(seed), **kw)


def _distance(x):
    return float(((x - GOAL) ** 2).sum(-1).sqrt().mean())


@pytest.mark.parametrize("objective", ["pred_noise", "pred_x0", "pred_v"])
@pytest.mark.parametrize(
    "make",
    [
        lambda s: RewardGuidance(goal_reward, s),
        lambda s: MonteCarloGuidance(goal_reward, s, num_samples=4),
        lambda s: MonteCarloGuidance(goal_reward, s, num_samples=3, include_prediction=False),
    ],
    ids=["reward", "mcg", "mcg-resampled-only"],
)
@pytest.mark.parametrize("ddpm", [False, True], ids=["ddim", "ddpm"])
def test_guidance_moves_samples_to_goal(objective, make, ddpm):
    # exact denoiser of N(0, I) tokens: unguided samples sit ~2 from the goal (measured 1.99 for DDIM)
    k, s = (16, 16) if ddpm else (100, 8)
    sampler = _sampler(k=k, s=s, objective=objective)
    model = GaussianOracle(sampler.schedule, objective)
    kw = dict(batch_size=64, chunk_size=3, scheduling="pyramid")
    free = _distance(_run(model, sampler, guidance=make(0.0), **kw))
    mild = _distance(_run(model, sampler, guidance=make(2.0), **kw))
    strong = _distance(_run(model, sampler, guidance=make(8.0), **kw))
    assert strong < mild < free
    assert strong < 0.75 * free


def test_zero_scale_equals_unguided_and_grad_is_enabled():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=4)
    kw = dict(chunk_size=3, scheduling="pyramid")
    plain = _run(model, sampler, **kw)
    assert not any(c.grad for c in model.calls)
    model.calls.clear()
    guided = _run(model, sampler, guidance=RewardGuidance(goal_reward, 0.0), **kw)
    assert torch.equal(plain, guided)
    assert all(c.grad for c in model.calls)


def test_later_tokens_guide_earlier_ones_in_a_pyramid():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=4)
    kw = dict(n_tokens=3, chunk_size=3, scheduling="pyramid")
    plain = _run(model, sampler, **kw)
    guided = _run(model, sampler, guidance=RewardGuidance(last_token_reward, 0.05), **kw)
    # the reward looks at the last token only, yet the first token moves: its gradient flows through the
    # later tokens' predictions in the same (causal) network call
    assert not torch.allclose(guided[:, 0], plain[:, 0])
    assert not torch.allclose(guided[:, 2], plain[:, 2])


@pytest.mark.parametrize("use_cache", [False, True])
def test_mcg_with_one_sample_is_reward_guidance(use_cache):
    sampler = _sampler(eta=0.5)
    model = ToyCausalDenoiser(dim=D, window=4)
    kw = dict(chunk_size=3, scheduling="pyramid", use_cache=use_cache)
    a = _run(model, sampler, guidance=RewardGuidance(goal_reward, 0.02), **kw)
    b = _run(model, sampler, guidance=MonteCarloGuidance(goal_reward, 0.02, num_samples=1), **kw)
    assert torch.equal(a, b)


@pytest.mark.parametrize(("num_samples", "include", "fan"), [(4, True, 3), (3, False, 3)])
def test_mcg_is_one_batched_call_per_step(num_samples, include, fan):
    sampler = _sampler()
    model = CallCounter(ToyCausalDenoiser(dim=D, window=4))
    b = 2
    guidance = MonteCarloGuidance(goal_reward, 0.02, num_samples=num_samples, include_prediction=include)
    _run(model, sampler, batch_size=b, n_tokens=3, chunk_size=3, scheduling="pyramid", guidance=guidance)
    steps = sampler.num_steps + 2  # pyramid rows - 1 for H = 3, u = 1
    assert model.batches == [b, fan * b] * steps


def test_mcg_is_deterministic_and_differs_from_reward_guidance():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=4)
    kw = dict(chunk_size=3, scheduling="pyramid")
    mcg = MonteCarloGuidance(goal_reward, 0.02, num_samples=4)
    a = _run(model, sampler, guidance=mcg, **kw)
    assert torch.equal(a, _run(model, sampler, guidance=mcg, **kw))
    assert not torch.allclose(a, _run(model, sampler, guidance=RewardGuidance(goal_reward, 0.02), **kw))


@pytest.mark.parametrize(
    "guidance",
    [RewardGuidance(goal_reward, 0.02), MonteCarloGuidance(goal_reward, 0.02, num_samples=3)],
    ids=["reward", "mcg"],
)
@pytest.mark.parametrize(("scheduling", "chunk"), [("autoregressive", 1), ("pyramid", 3)])
def test_guided_cached_equals_uncached(guidance, scheduling, chunk):
    sampler = _sampler(eta=0.5)
    model = ToyCausalDenoiser(dim=D, window=4)
    ctx = torch.randn(2, 2, D, generator=torch.Generator().manual_seed(9))
    kw = dict(n_tokens=20, context=ctx, chunk_size=chunk, scheduling=scheduling, guidance=guidance)
    a = _run(model, sampler, **kw)
    model.calls.clear()
    b = _run(model, sampler, use_cache=True, **kw)
    assert (a - b).abs().max() < 1e-4
    # commits happen without gradients, so the cache never holds autograd graphs
    assert all(not c.grad for c in model.calls if c.commit)


def test_guidance_errors():
    sampler = _sampler()
    model = ToyCausalDenoiser(dim=D, window=4)
    with pytest.raises(ValueError, match="one reward per sequence"):
        _run(model, sampler, guidance=RewardGuidance(lambda x0: x0.sum(), 1.0))
    with pytest.raises(ValueError, match="repeat_interleave"):
        _run(PlainCacheDenoiser(dim=D), sampler, use_cache=True, guidance=MonteCarloGuidance(goal_reward, 1.0, 2))
    with pytest.raises(ValueError, match="num_samples"):
        MonteCarloGuidance(goal_reward, 1.0, num_samples=0)
    with pytest.raises(ValueError, match="scale"):
        RewardGuidance(goal_reward, -1.0)
    with pytest.raises(ValueError, match="callable"):
        RewardGuidance("goal", 1.0)
