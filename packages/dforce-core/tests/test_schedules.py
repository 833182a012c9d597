import math

import pytest
import torch

from dforce_core import NoiseSchedule, cosine_betas, linear_betas, make_betas, sigmoid_betas


def test_linear_betas_endpoints_and_rescaling():
    b = linear_betas(1000)
    assert b.dtype == torch.float64 and b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    b100 = linear_betas(100)  # scale 10
    assert b100[0].item() == pytest.approx(1e-3) and b100[-1].item() == pytest.approx(0.2)


def _cos_f(t, s=0.008):
    return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def test_cosine_betas_by_hand():
    b = cosine_betas(2)
    a = [_cos_f(t) / _cos_f(0) for t in (0.0, 0.5, 1.0)]
    expected = [1 - a[1] / a[0], min(1 - a[2] / a[1], 0.999)]
    assert b.tolist() == pytest.approx(expected, rel=1e-12)
    assert b[-1].item() == pytest.approx(0.999)  # alpha_bar(1) = 0 -> clipped


def test_sigmoid_betas_by_hand():
    def sig(z):
        return 1 / (1 + math.exp(-z))

    start, end, tau = -3.0, 3.0, 1.0
    f = [
        (-sig((t * (end - start) + start) / tau) + sig(end / tau)) / (sig(end / tau) - sig(start / tau))
        for t in (0, 0.5, 1)
    ]
    a = [v / f[0] for v in f]
    b = sigmoid_betas(2)
    assert b.tolist() == pytest.approx([1 - a[1] / a[0], min(1 - a[2] / a[1], 0.999)], rel=1e-12)


def test_shifted_cosine_is_noisier_by_snr_factor():
    base = NoiseSchedule.from_name("cosine", 1000)
    shifted = NoiseSchedule.from_name("cosine", 1000, shift=0.5)
    k = torch.tensor([[100, 500, 900]])
    ratio = shifted.snr(k) / base.snr(k)
    assert torch.allclose(ratio, torch.full_like(ratio, 0.25), rtol=1e-3)


def test_make_betas_errors():
    with pytest.raises(ValueError, match="unknown beta schedule"):
        make_betas("quadratic", 10)
    with pytest.raises(ValueError, match="num_steps"):
        make_betas("cosine", 0)
    with pytest.raises(ValueError, match="num_steps > 20"):
        linear_betas(10)  # scale 100 would push betas past 1
    with pytest.raises(ValueError, match="betas"):
        NoiseSchedule(torch.tensor([0.5, 1.5], dtype=torch.float64))


def test_schedule_gathers_by_hand():
    betas = torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64)
    s = NoiseSchedule(betas, snr_clip=5.0)
    lv = torch.tensor([[-1, 0, 1, 2]])
    a = s.alpha_bar(lv)
    assert a.dtype == torch.float32 and a.shape == (1, 4)
    assert a.tolist()[0] == pytest.approx([1.0, 0.9, 0.9 * 0.8, 0.9 * 0.8 * 0.5])
    snr = s.snr(lv[:, 1:])
    assert snr.tolist()[0] == pytest.approx([9.0, 0.72 / 0.28, 0.36 / 0.64], rel=1e-6)
    assert s.clipped_snr(lv[:, 1:]).tolist()[0] == pytest.approx([5.0, 0.72 / 0.28, 0.36 / 0.64], rel=1e-6)
    assert torch.isinf(s.snr(torch.tensor([[-1]]))).all()
    # posterior q(x_{k-1} | x_k, x_0) at level k=1: beta=0.2, alpha_bar=0.72, alpha_bar_prev=0.9
    k1 = torch.tensor([[1]])
    assert s.gather("posterior_variance", k1).item() == pytest.approx(0.2 * 0.1 / 0.28, rel=1e-6)
    assert s.gather("posterior_coef_x0", k1).item() == pytest.approx(0.2 * math.sqrt(0.9) / 0.28, rel=1e-6)
    assert s.gather("posterior_coef_xt", k1).item() == pytest.approx(0.1 * math.sqrt(0.8) / 0.28, rel=1e-6)
    # level 0 has zero posterior variance; its log variance is clipped to level 1's
    assert s.gather("posterior_variance", torch.tensor([[0]])).item() == 0.0
    assert s.gather("posterior_log_variance", torch.tensor([[0]])).item() == pytest.approx(
        math.log(0.2 * 0.1 / 0.28), rel=1e-6
    )


def test_schedule_rejects_bad_levels():
    s = NoiseSchedule.from_name("linear", 1000)
    with pytest.raises(ValueError, match="-1..999"):
        s.alpha_bar(torch.tensor([[1000]]))
    with pytest.raises(ValueError, match="-1..999"):
        s.alpha_bar(torch.tensor([[-2]]))
    with pytest.raises(ValueError, match="integer"):
        s.alpha_bar(torch.tensor([[0.5]]))


@pytest.mark.parametrize("name", ["linear", "cosine", "sigmoid"])
def test_alpha_bar_monotone_and_in_range(name):
    s = NoiseSchedule.from_name(name, 1000)
    a = s.alphas_cumprod
    assert torch.all(a[1:] < a[:-1]) and a[0] < 1 and a[-1] >= 0 and a[-1] < 1e-3
