import numpy as np
import pytest
import torch

from dforce_core import DiffusionLoss
from dforce_plan.model import ModelSpec, PlanningLoss, collate, make_windows
from dforce_plan.tokens import (
    Normalizer,
    context_token,
    frame_dim,
    n_plan_tokens,
    pack,
    select_channels,
    unpack,
    with_context,
)


def test_pack_unpack_round_trip_and_layout():
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(3, 40, 4, generator=g), torch.randn(3, 40, 2, generator=g)
    tokens = pack(obs, act, 10)
    assert tokens.shape == (3, 4, 60)
    # frame j of token i sits at channels [6j, 6j + 6): obs then action
    assert torch.equal(tokens[1, 2, 18:22], obs[1, 23])
    assert torch.equal(tokens[1, 2, 22:24], act[1, 23])
    o2, a2 = unpack(tokens, 10)
    assert torch.equal(o2, obs) and torch.equal(a2, act)
    with pytest.raises(ValueError, match="unpack expects"):
        unpack(tokens[..., :59], 10)


def test_normalizer_round_trip_and_unknown_maze():
    n = Normalizer.for_maze("multi-medium")
    x = torch.tensor([[3.0, 4.0, 0.5, -0.5]])
    assert torch.allclose(n.unnorm_obs(n.norm_obs(x)), x, atol=1e-6)
    assert torch.allclose(n.norm_pos(x[:, :2]), n.norm_obs(x)[:, :2])
    with pytest.raises(ValueError, match="no normalisation"):
        Normalizer.for_maze("open")


def test_windows_match_pack_of_the_raw_walk(small_data):
    spec = ModelSpec(n_tokens=3, frame_stack=10, d_model=16, n_layers=1, n_heads=2)
    windows = make_windows(small_data, spec)
    norm = spec.normalizer()
    item = windows[100]
    obs = torch.as_tensor(small_data["observations"], dtype=torch.float32)
    act = torch.as_tensor(small_data["actions"], dtype=torch.float32)
    want = pack(norm.norm_obs(obs[101:131])[None], norm.norm_act(act[100:130])[None], 10)[0]
    assert torch.allclose(item["tokens"], want, atol=1e-5)
    assert torch.allclose(item["start"], norm.norm_obs(obs[100]), atol=1e-5)
    ctx = context_token(item["start"][None], 10, norm)[0, 0]
    assert torch.allclose(ctx[:4], item["start"]) and torch.allclose(ctx[54:58], item["start"])
    assert torch.allclose(norm.unnorm_act(ctx[4:6]), torch.zeros(2), atol=1e-6)


def test_action_std_override_reaches_windows_and_round_trips(small_data):
    spec = ModelSpec(n_tokens=3, frame_stack=10, d_model=16, n_layers=1, n_heads=2, action_std=[2, 4])
    norm = spec.normalizer()
    official = Normalizer.for_maze("umaze")
    assert norm.act_std == (2.0, 4.0) and norm.obs_std == official.obs_std and norm.act_mean == official.act_mean
    item = make_windows(small_data, spec)[100]
    raw = torch.as_tensor(small_data["actions"][100], dtype=torch.float32)  # a_t of the window's first frame
    want = (raw - torch.tensor(official.act_mean)) / torch.tensor([2.0, 4.0])
    assert torch.allclose(item["tokens"][0, 4:6], want, atol=1e-6)
    back = ModelSpec.from_dict(spec.to_dict())
    assert back.action_std == [2.0, 4.0] and back.normalizer() == norm
    assert ModelSpec().normalizer() == official
    for bad in ([2.0], [2.0, 0.0], [2.0, float("nan")], [True, 2.0]):
        with pytest.raises(ValueError, match="action_std must be two finite numbers"):
            ModelSpec(action_std=bad)


def test_obs_std_override_reaches_windows_context_and_round_trips(small_data):
    std = [2.0 * 0.89972174, 2.0 * 0.7093159, 8.0, 8.0]  # the main: README's diffused-action recipe on umaze
    spec = ModelSpec(n_tokens=3, frame_stack=10, d_model=16, n_layers=1, n_heads=2, obs_std=std, action_std=[3, 3])
    norm = spec.normalizer()
    official = Normalizer.for_maze("umaze")
    assert norm.obs_std == tuple(std) and norm.obs_mean == official.obs_mean and norm.act_std == (3.0, 3.0)
    item = make_windows(small_data, spec)[100]
    raw = torch.as_tensor(small_data["observations"][101], dtype=torch.float32)  # o_{t+1} of the first frame
    want = (raw - torch.tensor(official.obs_mean)) / torch.tensor(std)
    assert torch.allclose(item["tokens"][0, :4], want, atol=1e-6)
    start = torch.as_tensor(small_data["observations"][100], dtype=torch.float32)
    assert torch.allclose(item["start"], (start - torch.tensor(official.obs_mean)) / torch.tensor(std), atol=1e-6)
    assert torch.allclose(norm.unnorm_pos(norm.norm_pos(start[:2])), start[:2], atol=1e-6)
    back = ModelSpec.from_dict(spec.to_dict())
    assert back.obs_std == std and back.normalizer() == norm
    assert ModelSpec.from_dict({k: v for k, v in spec.to_dict().items() if k != "obs_std"}).obs_std is None
    for bad in ([1.0, 1.0, 1.0], [1.0, 1.0, 1.0, -1.0], [1.0, 1.0, 1.0, float("inf")]):
        with pytest.raises(ValueError, match="obs_std must be four finite numbers"):
            ModelSpec(obs_std=bad)


def test_flexible_horizon_padding_is_trained_at_full_noise(small_data):
    spec = ModelSpec(n_tokens=4, frame_stack=10, d_model=16, n_layers=1, n_heads=2)
    windows = make_windows(small_data, spec)
    last = len(windows) - 1  # the window that runs off the end of the data
    batch = collate(windows, np.array([0, last]))
    assert batch["valid"][0].all() and not batch["valid"][1].all()
    loss = PlanningLoss(spec)
    x0, valid = loss.sequences(batch)
    assert x0.shape == (2, 5, 60) and valid[:, 0].all()  # context always valid
    assert torch.equal(valid[:, 1:], batch["valid"])
    seen = {}

    def model(x, levels, cond=None):
        seen["levels"] = levels
        return torch.zeros_like(x)

    out = DiffusionLoss(spec.diffusion_config())(model, x0, valid=valid, generator=torch.Generator().manual_seed(0))
    k = spec.diffusion_config().num_steps - 1
    assert (seen["levels"][~valid] == k).all()
    assert (out.weights[~valid] < out.weights[valid].min()).all()  # 5% weight on padding
    # the planner plans ceil(steps / fs) tokens
    assert n_plan_tokens(31, 10) == 4 and n_plan_tokens(30, 10) == 3 and n_plan_tokens(1, 10) == 1


@pytest.mark.parametrize("channels", ["full", "pos"])
def test_diffuser_is_trained_with_its_start_and_final_state_known(small_data, channels):
    """Diffuser's p_losses: the window's context token and final state are written clean into the noisy input and
    into the output (zero error there); a window padded at the end keeps its padding; DF windows are untouched."""
    from dforce_train import StepContext

    spec = ModelSpec(kind="diffuser", n_tokens=4, frame_stack=10, d_model=16, n_layers=1, n_heads=2,
                     channels=channels)
    windows = make_windows(small_data, spec)
    batch = collate(windows, np.array([0, 7, len(windows) - 1]))  # the last window runs off the end of the data
    loss = PlanningLoss(spec)
    x0, valid = loss.sequences(batch)
    dim = 6 if channels == "full" else 2
    end = slice(9 * dim, 9 * dim + (4 if channels == "full" else 2))  # the last frame's observation
    seen = []

    def model(x, levels, cond=None):
        seen.append(x.detach().clone())
        return torch.zeros_like(x)

    ctx = StepContext(step=0, rank=0, world_size=1, generator=torch.Generator().manual_seed(0),
                      device=torch.device("cpu"))
    out, _ = loss(model, batch, ctx)
    (x,) = seen
    assert torch.equal(x[:, 0], x0[:, 0])  # the start, clean
    assert torch.equal(x[:2, -1, end], x0[:2, -1, end])  # the final state, clean, where the window is real data
    assert not torch.equal(x[2, -1, end], x0[2, -1, end])  # padding is not a goal: left at full noise
    assert not torch.allclose(x[:, 1:-1], x0[:, 1:-1])  # everything else noisy
    # the output there is replaced by the truth, so a zero network has error only elsewhere
    ref = DiffusionLoss(spec.diffusion_config())(model, x0, valid=valid, generator=torch.Generator().manual_seed(0))
    assert float(out) < float(ref.loss)
    # old checkpoints (no field) were trained without it; DF never inpaints
    old = spec.to_dict()
    del old["conditioned_training"]
    assert not ModelSpec.from_dict(old).conditioned_training and ModelSpec.from_dict(spec.to_dict()).conditioned_training
    assert not ModelSpec(kind="df").conditioned_training


def test_loss_weighting_constant_weighs_every_level_like_the_clean_ones(small_data):
    """min_snr: w = min(snr_k, 5) (pred_x0); constant (the paper: branch): w = 5 at every level, padding at 5%."""
    windows = make_windows(small_data, ModelSpec(n_tokens=4, frame_stack=10, d_model=16, n_layers=1, n_heads=2))
    batch = collate(windows, np.array([0, 1, 2, len(windows) - 1]))
    weights = {}
    for how in ("min_snr", "constant"):
        spec = ModelSpec(n_tokens=4, frame_stack=10, d_model=16, n_layers=1, n_heads=2, loss_weighting=how)
        x0, valid = PlanningLoss(spec).sequences(batch)
        seen = {}

        def model(x, levels, cond=None, seen=seen):
            seen["levels"] = levels
            return torch.zeros_like(x)

        out = DiffusionLoss(spec.diffusion_config())(model, x0, valid=valid,
                                                     generator=torch.Generator().manual_seed(0))
        weights[how] = (out.weights, valid, seen["levels"])
    w, valid, levels = weights["constant"]
    assert torch.allclose(w[valid], torch.full_like(w[valid], 5.0)) and torch.allclose(w[~valid], w.new_tensor(0.25))
    w_snr, _, levels_snr = weights["min_snr"]
    snr = spec.diffusion_config().build_schedule().snr(levels_snr[valid])
    assert torch.allclose(w_snr[valid], snr.clamp(max=5.0).to(w_snr.dtype), rtol=1e-5)
    with pytest.raises(ValueError, match="loss_weighting must be one of"):
        ModelSpec(loss_weighting="fused_snr")


def test_position_only_channels_keep_x_y_of_every_frame(small_data):
    """channels 'pos' (the main: README's v1.5 recipe): frame j of token i is (x, y) of o at channels [2j, 2j + 2)."""
    g = torch.Generator().manual_seed(0)
    obs, act = torch.randn(3, 40, 4, generator=g), torch.randn(3, 40, 2, generator=g)
    pos = select_channels(pack(obs, act, 10), 10, "pos")
    assert pos.shape == (3, 4, 20) and frame_dim("pos") == 2 and frame_dim("full") == 6
    assert torch.equal(pos[1, 2, 6:8], obs[1, 23, :2])
    back, none = unpack(pos, 10, "pos")
    assert none is None and torch.equal(back, obs[..., :2])
    with pytest.raises(ValueError, match="unpack expects 'pos' tokens"):
        unpack(pack(obs, act, 10), 10, "pos")
    with pytest.raises(ValueError, match="channels must be one of"):
        frame_dim("xy")
    norm = Normalizer.for_maze("umaze")
    ctx = context_token(obs[:, 0], 10, norm, "pos")
    assert ctx.shape == (3, 1, 20) and torch.equal(ctx[0, 0, 18:20], obs[0, 0, :2])
    assert torch.equal(with_context(obs[:, 0], pack(obs, act, 10), 10, norm, "pos"), torch.cat([ctx, pos], dim=1))
    # the training sequences of a position-only model: the walk's positions, nothing else
    spec = ModelSpec(n_tokens=3, d_model=16, n_layers=1, n_heads=2, channels="pos")
    assert spec.token_dim == 20 and spec.build()(torch.zeros(1, 4, 20), torch.zeros(1, 4, dtype=torch.long)).shape \
        == (1, 4, 20)
    x0, _ = PlanningLoss(spec).sequences(collate(make_windows(small_data, spec), np.array([100])))
    walk = torch.as_tensor(small_data["observations"][100:131, :2], dtype=torch.float32)  # o_100 .. o_130
    want = Normalizer.for_maze("umaze").norm_pos(walk)  # (31, 2)
    assert x0.shape == (1, 4, 20)
    assert torch.allclose(x0[0, 0].reshape(10, 2), want[:1].expand(10, 2), atol=1e-5)  # context: o_100 repeated
    assert torch.allclose(x0[0, 1:].reshape(30, 2), want[1:], atol=1e-5)
    # saved with the model; checkpoints written before the field load as full-channel models
    assert ModelSpec.from_dict(spec.to_dict()).channels == "pos"
    old = spec.to_dict()
    del old["channels"]
    assert ModelSpec.from_dict(old).channels == "full"
    with pytest.raises(ValueError, match="channels must be one of"):
        ModelSpec(channels="xy")
    assert ModelSpec(kind="diffuser", channels="pos").token_dim == 20  # the Diffuser-style baseline, position-only
