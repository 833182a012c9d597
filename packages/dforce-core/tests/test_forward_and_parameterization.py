import math

import pytest
import torch

from dforce_core import (
    NoiseSchedule,
    Objective,
    clipped_noise,
    eps_from_v,
    eps_from_x0,
    model_output_to_x0_eps,
    objective_target,
    q_sample,
    v_from_eps_x0,
    x0_from_eps,
    x0_from_v,
)

SCHED = NoiseSchedule(torch.tensor([0.1, 0.2, 0.5], dtype=torch.float64))


def test_q_sample_by_hand_per_token():
    x0 = torch.ones(1, 3, 2)
    eps = torch.full((1, 3, 2), 0.5)
    lv = torch.tensor([[-1, 0, 2]])
    xt = q_sample(SCHED, x0, lv, eps)
    a = [1.0, 0.9, 0.36]
    for t in range(3):
        expect = math.sqrt(a[t]) + math.sqrt(1 - a[t]) * 0.5
        assert xt[0, t].tolist() == pytest.approx([expect, expect], rel=1e-6)


def test_q_sample_shape_errors():
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        q_sample(SCHED, torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long), torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match="noise must have the shape"):
        q_sample(SCHED, torch.zeros(2, 3, 4), torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3, 5))


def test_clipped_noise_is_clamped_and_seeded():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a = clipped_noise((1000,), 0.5, generator=g1)
    b = clipped_noise((1000,), 0.5, generator=g2)
    assert torch.equal(a, b) and a.abs().max() <= 0.5 and (a.abs() == 0.5).any()


def test_parameterisation_round_trips():
    g = torch.Generator().manual_seed(1)
    s = NoiseSchedule.from_name("cosine", 1000)
    x0 = torch.randn(3, 5, 4, generator=g)
    eps = torch.randn(3, 5, 4, generator=g)
    lv = torch.randint(0, 990, (3, 5), generator=g)
    xt = q_sample(s, x0, lv, eps)
    assert torch.allclose(x0_from_eps(s, xt, lv, eps), x0, atol=1e-3)
    assert torch.allclose(eps_from_x0(s, xt, lv, x0), eps, atol=1e-3)
    v = v_from_eps_x0(s, lv, eps, x0)
    assert torch.allclose(x0_from_v(s, xt, lv, v), x0, atol=1e-4)
    assert torch.allclose(eps_from_v(s, xt, lv, v), eps, atol=1e-4)
    for obj in Objective:
        target = objective_target(obj, s, lv, x0, eps)
        x0_hat, eps_hat = model_output_to_x0_eps(obj, s, xt, lv, target)
        assert torch.allclose(x0_hat, x0, atol=1e-3) and torch.allclose(eps_hat, eps, atol=1e-3), obj


def test_v_by_hand():
    a = 0.36
    v = v_from_eps_x0(SCHED, torch.tensor([[2]]), torch.tensor([[[1.0]]]), torch.tensor([[[2.0]]]))
    assert v.item() == pytest.approx(math.sqrt(a) * 1.0 - math.sqrt(1 - a) * 2.0, rel=1e-6)


def test_pred_noise_clip_and_errors():
    xt = torch.zeros(1, 1, 1)
    lv = torch.tensor([[1]])
    _, eps = model_output_to_x0_eps("pred_noise", SCHED, xt, lv, torch.full((1, 1, 1), 50.0), clip_noise=6.0)
    assert eps.item() == 6.0
    with pytest.raises(ValueError, match="unknown objective"):
        model_output_to_x0_eps("pred_score", SCHED, xt, lv, xt)
    with pytest.raises(ValueError, match="model output shape"):
        model_output_to_x0_eps("pred_x0", SCHED, xt, lv, torch.zeros(1, 1, 2))
