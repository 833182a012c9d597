import pytest
import torch

from dforce_core import (
    DiffusionConfig,
    DiffusionLoss,
    NoiseSchedule,
    Objective,
    objective_target,
    sample_noise_levels,
    weighted_mse,
)


def g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_diffusion_forcing_levels_are_independent_and_in_range():
    s = sample_noise_levels("diffusion_forcing", 64, 16, 1000, generator=g())
    assert s.levels.shape == (64, 16) and s.levels.dtype == torch.int64
    assert s.levels.min() >= 0 and s.levels.max() < 1000
    assert (s.levels[:, 0] != s.levels[:, 1]).float().mean() > 0.9  # independent per token
    assert torch.equal(s.levels, sample_noise_levels("diffusion_forcing", 64, 16, 1000, generator=g()).levels)
    assert s.loss_mask.sum() == 64 * 16


def test_full_sequence_and_causal_modes():
    fs = sample_noise_levels("full_sequence", 8, 5, 100, generator=g()).levels
    assert torch.all(fs == fs[:, :1]) and fs[:, 0].unique().numel() > 1
    c = sample_noise_levels("causal", 8, 5, 100, generator=g()).levels
    assert torch.all(c[:, 1:] >= c[:, :-1])


def test_teacher_forcing_has_clean_past_and_one_target():
    s = sample_noise_levels("teacher_forcing", 32, 6, 100, generator=g())
    assert torch.all(s.loss_mask.sum(1) == 1)
    target = s.loss_mask.argmax(1)
    for b in range(32):
        p = int(target[b])
        assert torch.all(s.levels[b, :p] == 0) and torch.all(s.levels[b, p + 1 :] == 99)


def test_level_power_skews_levels_toward_low_noise():
    s = sample_noise_levels("diffusion_forcing", 200, 50, 1000, generator=g(3), level_power=3.0)
    u = torch.rand((200, 50), generator=g(3))  # the same draws: levels are floor(K u^3)
    assert torch.equal(s.levels, (1000 * u.pow(3)).long())
    assert abs(s.levels.float().mean().item() - 249.5) < 10  # E[u^3] = 1/4
    assert abs((s.levels < 1000 / 64).float().mean().item() - 0.25) < 0.02  # P(u^3 < 1/64) = P(u < 1/4)
    uniform = sample_noise_levels("diffusion_forcing", 200, 50, 1000, generator=g(3))
    assert torch.equal(uniform.levels, sample_noise_levels("diffusion_forcing", 200, 50, 1000, generator=g(3),
                                                           level_power=1.0).levels)  # p = 1: the paper's draw
    for mode in ("full_sequence", "causal", "teacher_forcing"):
        lv = sample_noise_levels(mode, 2000, 4, 1000, generator=g(4), level_power=3.0)
        noisy = lv.levels[lv.loss_mask > 0]
        assert noisy.float().mean().item() < 300  # skewed in every mode (uniform: 499.5)
    with pytest.raises(ValueError, match="level_power"):
        sample_noise_levels("diffusion_forcing", 2, 2, 10, level_power=0.0)
    with pytest.raises(ValueError, match="level_power"):
        DiffusionConfig(level_power=-1.0)
    loss = DiffusionLoss(DiffusionConfig(level_power=3.0))
    levels, _ = loss.sample_levels(400, 10, g(5), "cpu")
    assert levels.float().mean().item() < 300  # the loss draws with the configured power


def test_first_token_known():
    s = sample_noise_levels("diffusion_forcing", 4000, 3, 1000, generator=g(), first_token_known_prob=0.5)
    low = (s.levels[:, 0] < 250).float().mean().item()
    assert 0.55 < low < 0.70  # 0.5 + 0.5 * 0.25
    with pytest.raises(ValueError, match="teacher_forcing"):
        sample_noise_levels("teacher_forcing", 2, 3, 10, first_token_known_prob=0.5)
    # causal: the known first token never makes noise decrease into the future
    c = sample_noise_levels("causal", 4000, 4, 1000, generator=g(), first_token_known_prob=1.0)
    assert (c.levels[:, 1:] >= c.levels[:, :-1]).all() and (c.levels[:, 0] < 250).all()
    with pytest.raises(ValueError, match="unknown noise-level mode"):
        sample_noise_levels("random", 2, 3, 10)


class Oracle(torch.nn.Module):
    """Returns the exact regression target, knowing x0 and the noise."""

    def __init__(self, loss, x0, eps):
        super().__init__()
        self.loss, self.x0, self.eps = loss, x0, eps

    def forward(self, x, levels, cond=None):
        return objective_target(self.loss.config.objective, self.loss.schedule, levels, self.x0, self.eps)


@pytest.mark.parametrize("objective", [o.value for o in Objective])
def test_loss_is_zero_for_an_oracle_and_positive_otherwise(objective):
    loss = DiffusionLoss(DiffusionConfig(objective=objective, num_steps=100))
    x0, eps = torch.randn(2, 4, 3, generator=g()), torch.randn(2, 4, 3, generator=g(1))
    lv = torch.randint(0, 100, (2, 4), generator=g(2))
    out = loss(Oracle(loss, x0, eps), x0, noise_levels=lv, noise=eps)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-8)
    zero = loss(lambda x, lv, c: torch.zeros_like(x), x0, noise_levels=lv, noise=eps)
    assert zero.loss.item() > 0.01


def test_loss_weighting_and_padding():
    cfg = DiffusionConfig(objective="pred_x0", num_steps=100, loss_weighting="constant", constant_weight=2.0)
    loss = DiffusionLoss(cfg)
    x0 = torch.ones(1, 3, 2)
    valid = torch.tensor([[True, True, False]])
    out = loss(lambda x, lv, c: torch.zeros_like(x), x0, valid=valid, generator=g())
    assert out.noise_levels[0, 2].item() == 99
    assert out.weights.tolist()[0] == pytest.approx([2.0, 2.0, 0.1])
    # weighted mean of mse=1 per token over 3 weighted tokens
    assert out.loss.item() == pytest.approx((2.0 + 2.0 + 0.1) / 3)


def test_teacher_forcing_loss_only_counts_targets():
    loss = DiffusionLoss(DiffusionConfig(objective="pred_x0", num_steps=100, noise_level_mode="teacher_forcing"))
    x0 = torch.ones(4, 5, 2)
    out = loss(lambda x, lv, c: torch.zeros_like(x), x0, generator=g())
    assert ((out.weights > 0).sum(1) == 1).all()


def test_sharded_loss_matches_global_batch():
    cfg = DiffusionConfig(objective="pred_v", num_steps=100)
    loss = DiffusionLoss(cfg)
    x0 = torch.randn(4, 6, 3, generator=g(5))
    net = torch.nn.Linear(3, 3)
    model = lambda x, lv, c: net(x)  # noqa: E731
    full = loss(model, x0, generator=g(7)).loss
    halves = [loss(model, x0, generator=g(7), shard=lambda t, i=i: t[2 * i : 2 * i + 2]).loss for i in range(2)]
    assert full.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-5)


def test_config_validation_and_round_trip():
    cfg = DiffusionConfig(beta_schedule="sigmoid", objective="pred_noise", loss_weighting="fused_snr", frame_stack=4)
    assert DiffusionConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.fused_decay == pytest.approx(0.96**4)
    for bad in (
        dict(objective="eps"),
        dict(beta_schedule="exp"),
        dict(num_steps=1),
        dict(loss_weighting="p2"),
        dict(noise_level_mode="x"),
        dict(fused_variant="v2"),
        dict(clip_noise=0.0),
    ):
        with pytest.raises(ValueError):
            DiffusionConfig(**bad)
    with pytest.raises(ValueError, match="unknown DiffusionConfig fields"):
        DiffusionConfig.from_dict({"steps": 3})


def test_shape_mismatches_are_errors_not_broadcasts():
    with pytest.raises(ValueError, match=r"weights must be \(B, T\) = \(2, 3\), got \(3,\)"):
        weighted_mse(torch.zeros(2, 3, 4), torch.ones(2, 3, 4), torch.tensor([1.0, 0.0, 0.0]))
    schedule = NoiseSchedule.from_name("cosine", 10)
    levels = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="eps .* must have the shape of x0"):
        objective_target("pred_v", schedule, levels, torch.zeros(2, 3, 4), torch.zeros(1, 3, 4))
