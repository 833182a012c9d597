"""Reward guidance and Monte Carlo Guidance (paper §3.4; reference §3.1-§3.2)."""

from __future__ import annotations

import pytest
import torch
from sampling_toys import CallCounter, GaussianOracle, PlainCacheDenoiser, ToyCausalDenoiser

from dforce_core import NoiseSchedule
from dforce_sampling import (
    DiffusionForcingSampler,
    MonteCarloGuidance,
    RewardGuidance,
    SamplerConfig,
    guided_prediction,
    sample,
)

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


@pytest.mark.parametrize("objective", ["pred_noise", "pred_x0", "pred_v"])
@pytest.mark.parametrize("num_samples", [1, 4])
def test_paper_form_moves_samples_to_goal(objective, num_samples):
    sampler = _sampler(objective=objective)
    model = GaussianOracle(sampler.schedule, objective)
    kw = dict(batch_size=64, chunk_size=3, scheduling="pyramid")
    make = lambda s: MonteCarloGuidance(goal_reward, s, num_samples=num_samples, form="paper")  # noqa: E731
    free, mild, strong = (_distance(_run(model, sampler, guidance=make(s), **kw)) for s in (0.0, 8.0, 50.0))
    assert strong < mild < free  # measured 0.15-0.44 < 0.85-1.18 < 1.99
    assert strong < 0.5 * free


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_paper_form_adds_g_times_grad_to_the_ddim_output(eta):
    # the paper: branch's planner: x' = DDIM(x0, eps) + scale g grad, g = (1 - a) - c sqrt(1 - a),
    # c = sqrt(1 - a' - sigma^2), and g = 0 on the final step (k' = -1)
    sampler = _sampler(k=100, s=10, eta=eta, objective="pred_x0")
    gen = torch.Generator().manual_seed(3)
    x0, eps, grad = (torch.randn(2, 3, D, generator=gen) for _ in range(3))
    k = torch.tensor([[49, 9, 99], [19, 9, 9]])
    k_next = torch.tensor([[39, -1, 89], [9, -1, 9]])
    x0_g, eps_g = guided_prediction(sampler, x0, eps, k, k_next, grad, 2.5, form="paper")
    assert torch.equal(eps_g, eps)
    a, a_next = sampler.schedule.alpha_bar(k)[..., None], sampler.schedule.alpha_bar(k_next)[..., None]
    sigma2 = eta**2 * (1 - a / a_next) * (1 - a_next) / (1 - a)
    c = (1 - a_next - sigma2).sqrt()
    g = ((1 - a) - c * (1 - a).sqrt()) * (k_next >= 0)[..., None]
    # by hand for k = 49 -> 39 at eta 0: g = sqrt(1 - a)(sqrt(1 - a) - sqrt(1 - a'))
    a49, a39 = (float(sampler.schedule.alpha_bar(torch.tensor(v))) for v in (49, 39))
    g_hand = (1 - a49) ** 0.5 * ((1 - a49) ** 0.5 - (1 - a39) ** 0.5)
    if eta == 0.0:
        assert abs(float(g[0, 0, 0]) - g_hand) < 1e-6
    assert float(g[0, 0, 0]) > 0 and torch.all(g[:, 1] == 0)  # positive while noisy, zero on the final step
    plain = x0 * a_next.sqrt() + c * eps  # the DDIM output without its sigma z term, which guidance leaves alone
    moved = x0_g * a_next.sqrt() + c * eps_g
    assert torch.allclose(moved - plain, 2.5 * g * grad, atol=1e-6)
    assert torch.equal(x0_g[:, 1], x0[:, 1])  # the final step returns x0_hat unguided


def test_paper_form_is_much_weaker_than_classifier_form_at_high_noise():
    sampler = _sampler(k=1000, s=10, objective="pred_x0")
    x0 = torch.zeros(1, 1, D)
    grad = torch.ones(1, 1, D)
    k, k_next = torch.tensor([[999]]), torch.tensor([[899]])
    shift = {}
    for form in ("classifier", "paper"):
        x0_g, eps_g = guided_prediction(sampler, x0, torch.zeros_like(x0), k, k_next, grad, 1.0, form=form)
        shift[form] = float(sampler.update(x0, x0_g, eps_g, k, k_next)[0, 0, 0])  # move of the DDIM output
    assert shift["paper"] > 0 and shift["classifier"] > 0  # both ascend the reward
    assert shift["paper"] < 1e-2 * shift["classifier"]


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


@pytest.mark.parametrize(
    "guidance",
    [RewardGuidance(goal_reward, 0.02), MonteCarloGuidance(goal_reward, 0.02, num_samples=3)],
    ids=["reward", "mcg"],
)
def test_guided_commit_finished_equals_cached(guidance):
    sampler = _sampler(eta=0.5)
    model = ToyCausalDenoiser(dim=D, window=None)
    ctx = torch.randn(2, 2, D, generator=torch.Generator().manual_seed(9))
    kw = dict(n_tokens=20, context=ctx, chunk_size=None, scheduling="pyramid", guidance=guidance, use_cache=True)
    a = _run(model, sampler, **kw)
    fed = sum(c.tokens for c in model.calls)
    model.calls.clear()
    b = _run(model, sampler, commit_finished=True, **kw)
    assert (a - b).abs().max() < 1e-5  # the reward sees finished tokens as they are on both paths
    assert sum(c.tokens for c in model.calls) < fed
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
    with pytest.raises(ValueError, match="form"):
        MonteCarloGuidance(goal_reward, 1.0, form="ascent")
    ddpm = _sampler(k=16, s=16)
    with pytest.raises(ValueError, match="DDIM"):
        _run(GaussianOracle(ddpm.schedule, "pred_v"), ddpm, guidance=RewardGuidance(goal_reward, 1.0, form="paper"))
