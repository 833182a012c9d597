"""Closed form: with an exact denoiser of a point mass x0 = c, every schedule and both samplers return c."""

from __future__ import annotations

import pytest
import torch
from sampling_toys import PointMassOracle

from dforce_core import NoiseSchedule
from dforce_sampling import DiffusionForcingSampler, SamplerConfig, sample

SCHEDULES = [
    ("autoregressive", 1, 1.0),
    ("autoregressive", 3, 1.0),
    ("pyramid", 3, 1.0),
    ("pyramid", 4, 0.5),
    ("full_sequence", 4, 1.0),
    ("trapezoid", 5, 1.0),
]
MODES = [("ddim", 200, 10, 0.0), ("ddim_eta", 200, 10, 1.0), ("ddpm", 12, 12, 0.0)]


@pytest.mark.parametrize("objective", ["pred_noise", "pred_x0", "pred_v"])
@pytest.mark.parametrize(("mode", "k", "s", "eta"), MODES, ids=[m[0] for m in MODES])
@pytest.mark.parametrize(("scheduling", "chunk", "u"), SCHEDULES, ids=[f"{n}-{c}-{u}" for n, c, u in SCHEDULES])
def test_point_mass_is_recovered(objective, mode, k, s, eta, scheduling, chunk, u):
    schedule = NoiseSchedule.from_name("cosine", k)
    sampler = DiffusionForcingSampler(
        schedule, SamplerConfig(num_sampling_steps=s, eta=eta, objective=objective, stabilization_level=3)
    )
    assert sampler.ddpm == (mode == "ddpm")
    oracle = PointMassOracle(schedule, objective, value=0.7)
    context = torch.full((2, 2, 3), 0.7)
    out = sample(
        oracle,
        sampler,
        n_tokens=8,
        context=context,
        chunk_size=chunk,
        scheduling=scheduling,
        uncertainty_scale=u,
        generator=torch.Generator().manual_seed(0),
    )
    torch.testing.assert_close(out, torch.full_like(out, 0.7), atol=1e-5, rtol=0)
