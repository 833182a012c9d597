"""Per-token DDIM / DDPM steps against hand computations (reference §2.1, §2.4, §2.5)."""

from __future__ import annotations

import math

import pytest
import torch
from sampling_toys import ToyCausalDenoiser

from dforce_core import NoiseSchedule
from dforce_sampling import DiffusionForcingSampler, SamplerConfig


def _ab(schedule: NoiseSchedule, k: int) -> float:
    """alpha_bar at level k as the sampler sees it (float32 table), -1 -> 1."""
    return float(schedule.alpha_bar(torch.tensor([[k]]))[0, 0])


@pytest.mark.parametrize(("s", "step"), [(50, 20), (100, 10)])
def test_index_to_level_golden(s, step):
    sampler = DiffusionForcingSampler(NoiseSchedule.from_name("cosine", 1000), SamplerConfig(num_sampling_steps=s))
    levels = sampler.index_to_level(torch.arange(s + 1))
    assert levels.dtype == torch.int64
    assert levels.tolist() == [-1 + step * i for i in range(s + 1)]
    assert levels[:3].tolist() == [-1, step - 1, 2 * step - 1] and int(levels[-1]) == 999
    assert int(sampler.index_to_level(0)) == -1
    with pytest.raises(ValueError, match="0..S"):
        sampler.index_to_level(s + 1)


def test_index_to_level_truncates_like_linspace_long():
    sampler = DiffusionForcingSampler(NoiseSchedule.from_name("cosine", 10), SamplerConfig(num_sampling_steps=3))
    assert sampler.index_to_level(torch.arange(4)).tolist() == [-1, 2, 5, 9]  # -1, 2.33, 5.67, 9


def _sampler(k=10, s=5, **kw) -> DiffusionForcingSampler:
    cfg = SamplerConfig(num_sampling_steps=s, objective="pred_noise", clip_noise=None, **kw)
    return DiffusionForcingSampler(NoiseSchedule.from_name("cosine", k), cfg)


def _case():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 3, generator=g)
    eps = torch.randn(1, 2, 3, generator=g)
    return x, eps


def test_ddim_step_eta0_by_hand():
    sampler = _sampler()
    sch = sampler.schedule
    x, eps = _case()
    frm, to = torch.tensor([[5, 3]]), torch.tensor([[2, -1]])
    out = sampler.step(eps, x, frm, to)
    # token 0: 5 -> 2
    a, a2 = _ab(sch, 5), _ab(sch, 2)
    x0 = (x[0, 0] - math.sqrt(1 - a) * eps[0, 0]) / math.sqrt(a)
    expect0 = x0 * math.sqrt(a2) + eps[0, 0] * math.sqrt(1 - a2)
    torch.testing.assert_close(out.pred_x0[0, 0], x0, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.prev_sample[0, 0], expect0, atol=1e-6, rtol=1e-5)
    # token 1: 3 -> -1 returns x0_hat exactly
    b = _ab(sch, 3)
    x0b = (x[0, 1] - math.sqrt(1 - b) * eps[0, 1]) / math.sqrt(b)
    torch.testing.assert_close(out.prev_sample[0, 1], x0b, atol=1e-6, rtol=1e-5)
    assert torch.equal(out.prev_sample[0, 1], out.pred_x0[0, 1])
    assert torch.equal(out.pred_eps, eps)


def test_ddim_step_eta_positive_by_hand():
    eta = 0.7
    sampler = _sampler(eta=eta)
    sch = sampler.schedule
    x, eps = _case()
    frm, to = torch.tensor([[5, 3]]), torch.tensor([[2, -1]])
    out = sampler.step(eps, x, frm, to, torch.Generator().manual_seed(11))
    z = torch.randn(1, 2, 3, generator=torch.Generator().manual_seed(11))
    a, a2 = _ab(sch, 5), _ab(sch, 2)
    sigma = eta * math.sqrt((1 - a / a2) * (1 - a2) / (1 - a))
    c = math.sqrt(1 - a2 - sigma**2)
    x0 = (x[0, 0] - math.sqrt(1 - a) * eps[0, 0]) / math.sqrt(a)
    expect0 = x0 * math.sqrt(a2) + eps[0, 0] * c + sigma * z[0, 0]
    torch.testing.assert_close(out.prev_sample[0, 0], expect0, atol=1e-6, rtol=1e-5)
    assert torch.equal(out.prev_sample[0, 1], out.pred_x0[0, 1])  # sigma = 0 when k' = -1


def test_unchanged_tokens_are_copied_bit_for_bit():
    sampler = _sampler(eta=1.0)
    x, eps = _case()
    x = torch.cat([x, x + 1], dim=1)  # (1, 4, 3)
    eps = torch.cat([eps, eps], dim=1)
    frm = torch.tensor([[-1, 9, 5, 7]])  # context, waiting at white noise, moving, moving
    to = torch.tensor([[-1, 9, 3, 7]])
    out = sampler.step(eps, x, frm, to, torch.Generator().manual_seed(0))
    assert torch.equal(out.prev_sample[:, [0, 1, 3]], x[:, [0, 1, 3]])
    assert not torch.equal(out.prev_sample[:, 2], x[:, 2])


def test_steps_may_not_add_noise():
    sampler = _sampler()
    x, eps = _case()
    with pytest.raises(ValueError, match="must not exceed"):
        sampler.step(eps, x, torch.tensor([[2, 3]]), torch.tensor([[3, 3]]))
    with pytest.raises(ValueError, match="noise_levels"):
        sampler.step(eps, x, torch.tensor([[2, 3, 4]]), torch.tensor([[1, 1, 1]]))


def test_stabilization_input_scaling():
    sampler = _sampler(stabilization_level=3)
    x, _ = _case()
    frm = torch.tensor([[-1, 6]])
    x_in, k_net = sampler.model_inputs(x, frm)
    assert k_net.tolist() == [[2, 6]]
    torch.testing.assert_close(x_in[0, 0], math.sqrt(_ab(sampler.schedule, 2)) * x[0, 0])
    assert torch.equal(x_in[0, 1], x[0, 1])
    # a context token that stays clean is returned unscaled by the step
    out = sampler.step(torch.zeros_like(x), x, frm, torch.tensor([[-1, 4]]))
    assert torch.equal(out.prev_sample[0, 0], x[0, 0])


def test_stabilization_level_one_is_plain_level_zero():
    sampler = _sampler(stabilization_level=1)
    x, _ = _case()
    x_in, k_net = sampler.model_inputs(x, torch.tensor([[-1, -1]]))
    assert k_net.tolist() == [[0, 0]]
    torch.testing.assert_close(x_in, math.sqrt(_ab(sampler.schedule, 0)) * x)


def test_ddpm_context_is_noised_for_real():
    sampler = _sampler(k=10, s=10, stabilization_level=4)
    assert sampler.ddpm
    x, n = _case()
    x_in, k_net = sampler.model_inputs(x, torch.tensor([[-1, 5]]), context_noise=n)
    a = _ab(sampler.schedule, 3)
    torch.testing.assert_close(x_in[0, 0], math.sqrt(a) * x[0, 0] + math.sqrt(1 - a) * n[0, 0])
    assert torch.equal(x_in[0, 1], x[0, 1]) and k_net.tolist() == [[3, 5]]


def test_ddpm_step_posterior_by_hand():
    sampler = _sampler(k=10, s=10)
    ab = sampler.schedule.alphas_cumprod  # (K,) float64
    betas = 1 - ab / torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    x, eps = _case()
    frm, to = torch.tensor([[6, 0]]), torch.tensor([[5, -1]])
    out = sampler.step(eps, x, frm, to, torch.Generator().manual_seed(5))
    z = torch.randn(1, 2, 3, generator=torch.Generator().manual_seed(5))
    k = 6
    a, a_prev = float(ab[k]), float(ab[k - 1])
    x0 = (x[0, 0].double() - math.sqrt(1 - a) * eps[0, 0].double()) / math.sqrt(a)
    mean = float(betas[k]) * math.sqrt(a_prev) / (1 - a) * x0 + (1 - a_prev) * math.sqrt(1 - float(betas[k])) / (1 - a) * x[0, 0].double()
    var = float(betas[k]) * (1 - a_prev) / (1 - a)
    expect = mean + math.sqrt(var) * z[0, 0].double()
    torch.testing.assert_close(out.prev_sample[0, 0].double(), expect, atol=2e-5, rtol=1e-4)
    # k = 0 -> -1: the clean estimate, no noise
    assert torch.equal(out.prev_sample[0, 1], out.pred_x0[0, 1])


def test_ddpm_rejects_jumps():
    sampler = _sampler(k=10, s=10)
    x, eps = _case()
    with pytest.raises(ValueError, match="exactly 1"):
        sampler.step(eps, x, torch.tensor([[6, 4]]), torch.tensor([[4, 4]]))


def test_config_and_sampler_validation():
    with pytest.raises(ValueError, match="num_sampling_steps"):
        SamplerConfig(num_sampling_steps=0)
    with pytest.raises(ValueError, match="eta"):
        SamplerConfig(eta=-0.1)
    with pytest.raises(ValueError, match="stabilization_level"):
        SamplerConfig(stabilization_level=0)
    with pytest.raises(ValueError, match="objective"):
        SamplerConfig(objective="pred_score")
    with pytest.raises(ValueError, match="clip_noise"):
        SamplerConfig(clip_noise=0.0)
    sch = NoiseSchedule.from_name("cosine", 10)
    with pytest.raises(ValueError, match="exceed"):
        DiffusionForcingSampler(sch, SamplerConfig(num_sampling_steps=11))
    with pytest.raises(ValueError, match="DDPM"):
        DiffusionForcingSampler(sch, SamplerConfig(num_sampling_steps=5, ddpm=True))
    assert not DiffusionForcingSampler(sch, SamplerConfig(num_sampling_steps=10, ddpm=False)).ddpm
    cfg = SamplerConfig(num_sampling_steps=7, eta=0.5)
    assert SamplerConfig.from_dict(cfg.to_dict()) == cfg


def test_denoise_uses_protocol_without_grad():
    sampler = DiffusionForcingSampler(NoiseSchedule.from_name("cosine", 100), SamplerConfig(num_sampling_steps=10))
    model = ToyCausalDenoiser(dim=3)
    x = torch.randn(2, 4, 3)
    frm = torch.tensor([[-1, -1, 99, 99]]).expand(2, -1)
    to = torch.tensor([[-1, -1, 89, 99]]).expand(2, -1)
    cache = model.new_cache(2)
    out = sampler.denoise(model, x, frm, to, cache=cache, commit=2)
    assert cache.length == 2 and model.calls[-1].commit == 2 and not model.calls[-1].grad
    assert torch.equal(out.prev_sample[:, [0, 1, 3]], x[:, [0, 1, 3]])
    with pytest.raises(ValueError, match="needs a cache"):
        sampler.denoise(model, x, frm, to, commit=1)
