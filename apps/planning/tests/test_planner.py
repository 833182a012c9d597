import numpy as np
import pytest
import torch

from dforce_plan.planner import (
    SPEED_EPS,
    GoalReward,
    LoopMonteCarloGuidance,
    Plan,
    Planner,
    PlannerConfig,
    arrival_frames,
    planned_steps,
    splice,
)
from dforce_plan.tokens import Normalizer, context_token
from dforce_sampling import MonteCarloGuidance

OBS = np.array([[3.0, 1.0, 0.1, -0.2], [1.0, 3.0, 0.0, 0.3], [2.9, 3.1, -0.5, 0.0]])
GOALS = np.array([[1.0, 1.0], [1.0, 1.0], [3.0, 1.0]])


class InputSpy(torch.nn.Module):
    """A model that records the (noisy) input of every call in ``seen`` and defers to ``inner``."""

    def __init__(self, inner, seen: list):
        super().__init__()
        self.inner, self.seen = inner, seen

    def forward(self, x, levels, cond=None, **kwargs):
        self.seen.append(x.detach().clone())
        return self.inner(x, levels, cond)


def test_goal_reward_matches_hand_computation(make_model):
    model, spec = make_model()
    norm = spec.normalizer()
    x = torch.randn(2, 3, 60)
    reward = GoalReward(torch.tensor([[1.0, 1.0], [2.0, 3.0]]), norm, 10, steps=15)(x)
    frames = x[:, 1:].reshape(2, 20, 6)
    pos = norm.unnorm_pos(frames[:, :15, :2])
    want = -(pos - torch.tensor([[[1.0, 1.0]], [[2.0, 3.0]]])).norm(dim=-1).sum(-1)
    assert torch.allclose(reward, want, atol=1e-5)


def test_goal_reward_paper_weighting_matches_hand_computation(make_model):
    # the paper: code: R = -episode_steps * mean over every planned frame of d, the last frame weighted 0 when the
    # plan reaches the episode's end (reference §3.2)
    model, spec = make_model()
    norm = spec.normalizer()
    x = torch.randn(2, 3, 60)
    goals = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    frames = x[:, 1:].reshape(2, 20, 6)
    d = (norm.unnorm_pos(frames[..., :2]) - goals[:, None]).norm(dim=-1)  # (2, 20)
    end = GoalReward(goals, norm, 10, steps=20, weighting="paper", episode_steps=300, reaches_end=True)(x)
    assert torch.allclose(end, -300 * d[:, :19].sum(-1) / 20, atol=1e-4)
    capped = GoalReward(goals, norm, 10, steps=15, weighting="paper", episode_steps=300, reaches_end=False)(x)
    assert torch.allclose(capped, -300 * d.mean(-1), atol=1e-4)  # every planned frame counts, steps or not
    with pytest.raises(ValueError, match="episode_steps"):
        GoalReward(goals, norm, 10, steps=20, weighting="paper")
    with pytest.raises(ValueError, match="weighting"):
        GoalReward(goals, norm, 10, steps=20, weighting="mean")
    # the planner uses it with the paper's form: 30x the pull per frame on the last umaze plan (10 of 300 steps)
    planner = Planner(model, spec, PlannerConfig(guidance_form="paper", guidance_scale=10.0))
    g = planner.guidance(goals, 10, 10)
    assert g.form == "paper" and g.reward_fn.weighting == "paper" and g.reward_fn.episode_steps == 300
    assert g.reward_fn.reaches_end
    assert Planner(model, spec, PlannerConfig()).guidance(goals, 10, 10).reward_fn.weighting == "horizon"
    with pytest.raises(ValueError, match="guidance_form"):
        PlannerConfig(guidance_form="ascent")


def test_paper_form_plans_toward_the_goal_and_matches_the_reference_loop(make_model):
    model, spec = make_model()
    kw = dict(mc_samples=3, sampling_steps=4, guidance_form="paper")
    free = Planner(model, spec, PlannerConfig(guidance_scale=0.0, **kw))
    fast = Planner(model, spec, PlannerConfig(guidance_scale=50.0, **kw))
    ref = Planner(model, spec, PlannerConfig(guidance_scale=50.0, use_cache=False, batched_mcg=False, **kw))
    pf, pa, pb = (p.plan(OBS, GOALS, 40, generator=torch.Generator().manual_seed(3)) for p in (free, fast, ref))
    assert np.allclose(pa.positions, pb.positions, atol=1e-4)
    dist = lambda plan: np.linalg.norm(plan.positions - GOALS[:, None], axis=-1).mean()  # noqa: E731
    assert dist(pa) < dist(pf) - 0.05  # guidance pulls the untrained model's plans toward the goals


def test_goal_reward_stop_term_matches_hand_computation(make_model):
    _, spec = make_model()
    norm = spec.normalizer()
    # two planned frames (fs = 1 token of 1 frame after the context), world units: at the goal moving at speed 5,
    # and 1 away from the goal standing still
    world = torch.tensor([[[1.0, 1.0, 3.0, 4.0], [2.0, 1.0, 0.0, 0.0]]])  # (1, 2, 4): x, y, vx, vy
    frames = torch.cat([norm.norm_obs(world), torch.zeros(1, 2, 2)], dim=-1)  # (1, 2, 6) with zero actions
    x = torch.cat([torch.zeros(1, 1, 6), frames], dim=1).requires_grad_()  # (1, 3, 6): context first
    goals = torch.tensor([[1.0, 1.0]])
    r = GoalReward(goals, norm, 1, steps=2, stop_weight=0.5)(x)
    eps = SPEED_EPS
    want = -((0.0 + 0.5 * 1.0 * (np.sqrt(25.0 + eps**2) - eps)) + (1.0 + 0.5 * np.exp(-1.0) * 0.0))
    assert r.item() == pytest.approx(want, abs=1e-5)
    assert GoalReward(goals, norm, 1, steps=2)(x).item() == pytest.approx(-1.0, abs=1e-5)  # off by default
    # the proximity weight only selects where speed counts: its gradient never pushes a moving plan off the goal
    (grad,) = torch.autograd.grad(r.sum(), x)
    pos_grad_at_goal = grad[0, 1, :2]  # d R / d (normalised position) of the frame sitting on the goal
    assert torch.allclose(pos_grad_at_goal, torch.zeros(2), atol=1e-6)
    with pytest.raises(ValueError, match="stop_weight"):
        PlannerConfig(stop_weight=-1.0)


def test_goal_reward_stop_radius_narrows_where_speed_counts(make_model):
    _, spec = make_model()
    norm = spec.normalizer()
    # one planned frame 1 world unit from the goal, moving at speed 5 (fs = 1)
    world = torch.tensor([[[2.0, 1.0, 3.0, 4.0]]])  # (1, 1, 4)
    x = torch.cat([torch.zeros(1, 1, 6), torch.cat([norm.norm_obs(world), torch.zeros(1, 1, 2)], -1)], dim=1)
    goals = torch.tensor([[1.0, 1.0]])
    speed = np.sqrt(25.0 + SPEED_EPS**2) - SPEED_EPS
    for radius, weight in [(1.0, np.exp(-1.0)), (0.5, np.exp(-4.0)), (2.0, np.exp(-0.25))]:
        r = GoalReward(goals, norm, 1, steps=1, stop_weight=2.0, stop_radius=radius)(x)
        assert r.item() == pytest.approx(-(1.0 + 2.0 * weight * speed), abs=1e-5)
    with pytest.raises(ValueError, match="stop_radius"):
        PlannerConfig(stop_radius=0.0)


def test_goal_reward_stop_after_arrival_charges_every_later_frame(make_model):
    _, spec = make_model()
    norm = spec.normalizer()
    # four planned frames at distances 1, 0.3, 2, 0.2 from the goal, each at speed 5 (fs = 1): with
    # stop_where="after" and radius 0.5 the speed counts from the second frame (the arrival) on, fully
    world = torch.tensor([[[2.0, 1.0, 3.0, 4.0], [1.3, 1.0, 3.0, 4.0], [3.0, 1.0, 3.0, 4.0], [1.0, 1.2, 3.0, 4.0]]])
    x = torch.cat([torch.zeros(1, 1, 6), torch.cat([norm.norm_obs(world), torch.zeros(1, 4, 2)], -1)], dim=1)
    goals = torch.tensor([[1.0, 1.0]])
    speed = np.sqrt(25.0 + SPEED_EPS**2) - SPEED_EPS
    r = GoalReward(goals, norm, 1, steps=4, stop_weight=2.0, stop_radius=0.5, stop_where="after")(x)
    assert r.item() == pytest.approx(-(1.0 + 0.3 + 2.0 + 0.2 + 3 * 2.0 * speed), abs=1e-4)
    never = torch.cat([x[:, :1], x[:, 1:2], x[:, 3:4]], dim=1)  # frames at 1 and 2 only: never arrives
    r = GoalReward(goals, norm, 1, steps=2, stop_weight=2.0, stop_radius=0.5, stop_where="after")(never)
    assert r.item() == pytest.approx(-3.0, abs=1e-4)
    with pytest.raises(ValueError, match="stop_where"):
        PlannerConfig(stop_where="later")


def test_goal_reward_main_cost_matches_hand_computation():
    # the authors' main: code's cost per frame, normalised units: tanh(|dp|/2) + 8 tanh(|v|/2) + 8 |a|
    norm = Normalizer(obs_mean=(1.0, 1.0, 0.5, 0.0), obs_std=(2.0, 2.0, 8.0, 8.0), act_mean=(0.0, 0.0),
                      act_std=(6.0, 6.0))
    world = torch.tensor([[[4.0, 5.0, 0.0, 0.0], [1.0, 1.0, 6.0, 8.0]]])  # (1, 2, 4): far at rest; at the goal, moving
    acts = torch.tensor([[[0.0, 0.0], [3.0, 4.0]]])  # (1, 2, 2) world
    frames = torch.cat([norm.norm_obs(world), norm.norm_act(acts)], dim=-1)  # (1, 2, 6)
    x = torch.cat([torch.zeros(1, 1, 6), frames], dim=1).requires_grad_()  # (1, 3, 6): context first
    goals = torch.tensor([[1.0, 1.0]])
    r = GoalReward(goals, norm, 1, steps=2, distance="main")(x)
    # frame 1: |dp^| = |(3, 4)| / 2 = 2.5, v^ = a^ = 0; frame 2: dp^ = 0, |v^| = |(6, 8)| / 8 = 1.25, |a^| = 5 / 6
    def sm(d):  # each norm is smoothed by 1e-3 (normalised units) at 0
        return np.sqrt(d**2 + 1e-6) - 1e-3

    expected = (np.tanh(sm(2.5) / 2) + 8 * np.tanh(sm(0.0) / 2) + 8 * sm(0.0)
                + np.tanh(sm(0.0) / 2) + 8 * np.tanh(sm(1.25) / 2) + 8 * sm(5 / 6))
    assert r.item() == pytest.approx(-expected, abs=1e-5)
    assert expected == pytest.approx(np.tanh(1.25) + 8 * np.tanh(0.625) + 8 * 5 / 6, abs=0.02)
    (g,) = torch.autograd.grad(r, x)
    assert torch.isfinite(g).all()
    # it asks the moving frame to slow down and to stop pushing: ascent lowers its |v^| and |a^|
    assert (g[0, 2, 2:4] * frames[0, 1, 2:4]).sum() < 0 and (g[0, 2, 4:6] * frames[0, 1, 4:6]).sum() < 0
    with pytest.raises(ValueError, match="full-token"):
        GoalReward(goals, norm, 1, steps=2, distance="main", channels="pos")


def test_goal_reward_tanh_distance_matches_hand_computation(make_model):
    _, spec = make_model()
    norm = spec.normalizer()
    # two planned frames, 0.5 and 4 world units from the goal (fs = 1 token of 1 frame after the context)
    world = torch.tensor([[[1.5, 1.0, 0.0, 0.0], [1.0, 5.0, 0.0, 0.0]]])  # (1, 2, 4)
    frames = torch.cat([norm.norm_obs(world), torch.zeros(1, 2, 2)], dim=-1)  # (1, 2, 6)
    x = torch.cat([torch.zeros(1, 1, 6), frames], dim=1).requires_grad_()  # (1, 3, 6): context first
    goals = torch.tensor([[1.0, 1.0]])
    r = GoalReward(goals, norm, 1, steps=2, distance="tanh")(x)
    assert r.item() == pytest.approx(-(2 * np.tanh(0.25) + 2 * np.tanh(2.0)), abs=1e-5)
    assert GoalReward(goals, norm, 1, steps=2)(x).item() == pytest.approx(-4.5, abs=1e-5)  # linear by default
    # the pull toward the goal fades with distance: d f / d d = 1 - tanh(d/2)^2 times the linear reward's pull
    (g_tanh,) = torch.autograd.grad(r, x)
    (g_lin,) = torch.autograd.grad(GoalReward(goals, norm, 1, steps=2)(x), x)
    for frame, d in ((1, 0.5), (2, 4.0)):
        assert torch.allclose(g_tanh[0, frame], (1 - np.tanh(d / 2) ** 2) * g_lin[0, frame], atol=1e-6)
    assert g_lin[0, 2].abs().max() > 0
    with pytest.raises(ValueError, match="goal_distance"):
        PlannerConfig(goal_distance="square")
    with pytest.raises(ValueError, match="distance"):
        GoalReward(goals, norm, 1, steps=2, distance="square")


def test_goal_reward_geodesic_reads_the_maze_distance_field(make_model):
    pytest.importorskip("mujoco")
    from dforce_datasets.maze2d.geodesic import GRID_ORIGIN, RESOLUTION, distance_field

    model, spec = make_model()  # a umaze model
    norm = spec.normalizer()
    # two planned frames in the bottom corridor of umaze and one at the goal; goal (1, 1) is behind the wall
    world = torch.tensor([[[3.0, 1.0, 0.0, 0.0], [3.0, 2.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]])  # (1, 3, 4)
    frames = torch.cat([norm.norm_obs(world), torch.zeros(1, 3, 2)], dim=-1)  # (1, 3, 6)
    x = torch.cat([torch.zeros(1, 1, 6), frames], dim=1).requires_grad_()  # (1, 4, 6): context first
    goals = torch.tensor([[1.0, 1.0]])
    field = distance_field("umaze", (1.0, 1.0))
    fields = torch.as_tensor(field.values, dtype=torch.float32)[None]
    r = GoalReward(goals, norm, 1, steps=3, distance="geodesic", fields=fields, field_grid=(GRID_ORIGIN, RESOLUTION))(x)
    want = -float(field(world[0, :, :2].double().numpy()).sum())
    assert r.item() == pytest.approx(want, abs=1e-4)
    assert -r.item() > 2.0 * 3.0  # Euclid would say 2 + sqrt(5) + 0 = 4.24: the field goes around the wall
    # the reward's pull on the first frame is along the corridor (+y), where Euclid pulls up through the wall (-x)
    (g,) = torch.autograd.grad(r, x)
    std = torch.tensor(norm.obs_std[:2])
    pull = g[0, 1, :2] / std  # world units
    assert pull[1] > abs(pull[0])
    (g_lin,) = torch.autograd.grad(GoalReward(goals, norm, 1, steps=3)(x), x)
    pull_lin = g_lin[0, 1, :2] / std
    assert -pull_lin[0] > abs(pull_lin[1])
    with pytest.raises(ValueError, match="geodesic"):
        GoalReward(goals, norm, 1, steps=3, distance="geodesic")
    with pytest.raises(ValueError, match="geodesic"):
        GoalReward(goals, norm, 1, steps=3, fields=fields, field_grid=(GRID_ORIGIN, RESOLUTION))
    # the planner builds one field per goal once, and geodesic MCG plans agree on the batched and loop paths
    fast = Planner(model, spec, PlannerConfig(mc_samples=3, guidance_scale=0.5, sampling_steps=3,
                                              goal_distance="geodesic"))
    ref = Planner(model, spec, PlannerConfig(mc_samples=3, guidance_scale=0.5, sampling_steps=3, use_cache=False,
                                             batched_mcg=False, goal_distance="geodesic"))
    pa = fast.plan(OBS, GOALS, 40, generator=torch.Generator().manual_seed(3))
    pb = ref.plan(OBS, GOALS, 40, generator=torch.Generator().manual_seed(3))
    assert np.allclose(pa.positions, pb.positions, atol=1e-4)
    assert sorted(fast._fields) == [(1.0, 1.0), (3.0, 1.0)]
    soft = Planner(model, spec, PlannerConfig(mc_samples=3, guidance_scale=0.5, sampling_steps=3,
                                              goal_distance="geodesic", wall_cost=1.0))
    soft.distance_fields(goals)
    inside = (round((2.0 + 0.7) / 0.05), round((1.0 + 0.7) / 0.05))  # node (2.0, 1.0), inside the umaze wall
    assert soft._fields[(1.0, 1.0)][inside] < fast._fields[(1.0, 1.0)][inside]  # walls cost less to cross
    with pytest.raises(ValueError, match="wall_cost"):
        PlannerConfig(wall_cost=0.5)
    linear = Planner(model, spec, PlannerConfig(mc_samples=3, guidance_scale=0.5, sampling_steps=3))
    pc = linear.plan(OBS, GOALS, 40, generator=torch.Generator().manual_seed(3))
    assert np.abs(pc.positions - pa.positions).max() > 1e-3  # the reward changes the plan


@pytest.mark.parametrize(("stop_weight", "backbone"), [(0.0, "transformer"), (1.5, "transformer"), (0.0, "rnn")])
def test_mcg_batched_equals_reference_loop(make_model, stop_weight, backbone):
    model, spec = make_model(backbone=backbone)
    planner = Planner(model, spec, PlannerConfig(mc_samples=4, guidance_scale=0.5, sampling_steps=4, use_cache=False))
    sampler = planner.sampler
    goals = torch.tensor(GOALS, dtype=torch.float32)
    reward = GoalReward(goals, spec.normalizer(), 10, steps=40, stop_weight=stop_weight)
    x = torch.randn(3, 5, 60, generator=torch.Generator().manual_seed(1))
    from_levels = torch.tensor([[-1, 999, 759, 519, 279]]).expand(3, -1)
    to_levels = torch.tensor([[-1, 759, 519, 279, 39]]).expand(3, -1)
    out = {}
    for name, cls in (("batched", MonteCarloGuidance), ("loop", LoopMonteCarloGuidance)):
        guidance = cls(reward, 0.5, num_samples=4)
        out[name] = guidance.predict(sampler, model, x, from_levels, to_levels,
                                     generator=torch.Generator().manual_seed(7))
    plain = MonteCarloGuidance(reward, 0.0, num_samples=4).predict(
        sampler, model, x, from_levels, to_levels, generator=torch.Generator().manual_seed(7))
    # float32 summation order differs between a batch of R*B rows and B rows; x0_hat at level 999 multiplies it by
    # sqrt(1 / alpha_bar) ~ 150 (the RNN's GRU/Linear blocking: ~3e-5 on values up to ~30)
    atol = 1e-4 if backbone == "rnn" else 1e-5
    for a, b in zip(out["batched"], out["loop"], strict=True):
        assert torch.allclose(a, b, atol=atol, rtol=1e-5)
    assert (out["batched"][0] - plain[0]).abs().max() > 1e-3  # the guidance does change the prediction
    # and whole plans agree: batched + KV cache vs the reference loop without cache
    fast = Planner(model, spec, PlannerConfig(mc_samples=3, guidance_scale=0.5, sampling_steps=3,
                                              stop_weight=stop_weight))
    ref = Planner(model, spec, PlannerConfig(mc_samples=3, guidance_scale=0.5, sampling_steps=3, use_cache=False,
                                             batched_mcg=False, stop_weight=stop_weight))
    pa = fast.plan(OBS, GOALS, 40, generator=torch.Generator().manual_seed(3))
    pb = ref.plan(OBS, GOALS, 40, generator=torch.Generator().manual_seed(3))
    assert np.allclose(pa.positions, pb.positions, atol=1e-4)
    assert np.allclose(pa.actions, pb.actions, atol=1e-4)


@pytest.mark.parametrize(("use_cache", "backbone"), [(True, "transformer"), (False, "transformer"), (True, "rnn")])
def test_planner_keeps_the_current_observation_as_context(use_cache, backbone, make_model):
    model, spec = make_model(backbone=backbone)
    planner = Planner(model, spec, PlannerConfig(mc_samples=2, guidance_scale=0.3, sampling_steps=3,
                                                 use_cache=use_cache))
    plan = planner.plan(OBS, GOALS, 25, generator=torch.Generator().manual_seed(0))
    norm = spec.normalizer()
    ctx = context_token(norm.norm_obs(torch.tensor(OBS, dtype=torch.float32)), 10, norm)
    assert torch.equal(plan.tokens[:, :1], ctx)  # the context is never overwritten
    assert plan.tokens.shape == (3, 1 + 3, 60) and plan.length == 30  # flexible horizon: ceil(25 / 10) tokens
    # the context conditions the plan: another observation gives another plan from the same noise
    moved = OBS.copy()
    moved[:, :2] += 0.5
    other = planner.plan(moved, GOALS, 25, generator=torch.Generator().manual_seed(0))
    assert np.abs(other.positions - plan.positions).max() > 1e-3
    # and the horizon is capped by the model window and the preset
    assert planner.horizon_steps(1000) == 40
    capped = Planner(model, spec, PlannerConfig(horizon=12))
    assert capped.horizon_steps(300) == 12


def test_actions_and_pd_controller(make_model):
    model, spec = make_model()
    plan = Planner(model, spec, PlannerConfig(sampling_steps=2, guidance_scale=0)).plan(OBS, GOALS, 20)
    acting = Planner(model, spec, PlannerConfig(sampling_steps=2, controller="actions"))
    a = acting.act(plan, OBS, 3)
    assert np.array_equal(a, np.clip(plan.actions[:, 3], -1, 1))
    pd = Planner(model, spec, PlannerConfig(sampling_steps=2, controller="pd", pd_gains=(2.0, 0.5)))
    want = np.clip(2.0 * (plan.positions[:, 3] - OBS[:, :2]) + 0.5 * (plan.velocities[:, 3] - OBS[:, 2:]), -1, 1)
    assert np.allclose(pd.act(plan, OBS, 3), want)
    assert acting.needs_replan(plan, 10) and not acting.needs_replan(plan, 9)


def test_diffuser_with_own_actions_runs_its_plan_open_loop_then_replans(make_model):
    """The paper's "Diffuser w/ diffused actions": the planned actions, open loop, a new plan once they run out."""
    model, spec = make_model(kind="diffuser", n_tokens=3)
    planner = Planner(model, spec, PlannerConfig(method="diffuser", replan_every=None, controller="actions",
                                                 sampling_steps=2, guidance_scale=0))
    plan = planner.plan(OBS, GOALS, 300, t0=5, generator=torch.Generator().manual_seed(0))
    assert plan.length == 30
    assert np.array_equal(planner.act(plan, OBS, 5 + 29), np.clip(plan.actions[:, 29], -1, 1))
    assert not planner.needs_replan(plan, 5 + 29) and planner.needs_replan(plan, 5 + 30)
    with pytest.raises(ValueError, match="plan again"):  # never a silent switch to PD past the plan
        planner.act(plan, OBS, 5 + 30)
    every = Planner(model, spec, PlannerConfig(method="diffuser", replan_every=10, controller="actions",
                                               sampling_steps=2, guidance_scale=0))
    assert not every.needs_replan(plan, 5 + 9) and every.needs_replan(plan, 5 + 10)


def test_diffuser_baseline_inpaints_start_and_goal(make_model):
    model, spec = make_model(kind="diffuser", n_tokens=3)
    planner = Planner(model, spec, PlannerConfig(method="diffuser", replan_every=None, controller="pd",
                                                 sampling_steps=4, guidance_scale=0))
    plan = planner.plan(OBS, GOALS, 300, generator=torch.Generator().manual_seed(0))
    assert plan.length == 30  # the fixed horizon of the model, not the rest of the episode
    assert np.allclose(plan.positions[:, -1], GOALS, atol=1e-5)
    assert np.allclose(plan.velocities[:, -1], 0.0, atol=1e-5)
    norm = spec.normalizer()
    ctx = context_token(norm.norm_obs(torch.tensor(OBS, dtype=torch.float32)), 10, norm)
    assert torch.allclose(plan.tokens[:, :1], ctx, atol=1e-6)
    assert not planner.needs_replan(plan, 200)
    with pytest.raises(ValueError, match="Diffusion Forcing model"):
        Planner(model, spec, PlannerConfig(method="df_mcg"))
    # Diffuser's conditioning: at every denoising step the model's input holds the start and goal clean
    seen = []
    goal = torch.cat([norm.norm_pos(torch.tensor(GOALS, dtype=torch.float32)),
                      norm.norm_obs(torch.zeros(3, 4))[:, 2:]], dim=-1)  # (3, 4): position, zero velocity
    planner.model = InputSpy(model, seen)
    planner.plan(OBS, GOALS, 300, generator=torch.Generator().manual_seed(0))
    assert len(seen) == 4  # one call per sampling step
    for x in seen:
        assert torch.equal(x[:, :1], ctx) and torch.allclose(x[:, -1, 54:58], goal)  # last frame: 9 * 6


def test_position_only_diffuser_inpaints_the_goal_position_and_holds_it(make_model):
    """The Diffuser-style baseline on position-only tokens: start and goal position inpainted (clean in the model's
    input at every step), PD holds the plan's closest approach during its first visit within the hold radius (the
    same controller as the DF rows)."""
    model, spec = make_model(kind="diffuser", n_tokens=3, channels="pos")
    planner = Planner(model, spec, PlannerConfig(method="diffuser", replan_every=None, controller="pd",
                                                 sampling_steps=4, guidance_scale=0, pos_velocity="smooth",
                                                 pos_velocity_window=2, hold_radius=0.5, pd_gains=(2.0, 0.5)))
    plan = planner.plan(OBS, GOALS, 300, generator=torch.Generator().manual_seed(0))
    assert plan.tokens.shape == (3, 4, 20) and plan.length == 30  # the model's fixed horizon
    assert np.allclose(plan.positions[:, -1], GOALS, atol=1e-5)  # the inpainted goal is the last planned frame
    norm = spec.normalizer()
    ctx = context_token(norm.norm_obs(torch.tensor(OBS, dtype=torch.float32)), 10, norm, "pos")
    assert torch.equal(plan.tokens[:, :1], ctx) and not plan.actions.any()
    # each plan ends at its closest approach during its first visit within 0.5: at the latest the inpainted goal
    assert plan.end is not None and (plan.end >= 0).all() and (plan.end <= 29).all()
    dist = np.linalg.norm(plan.positions - GOALS[:, None], axis=-1)  # (B, 30)
    for b in range(3):
        assert dist[b, plan.end[b]] <= 0.5 + 1e-6
    # past its end PD holds that frame at rest, whatever the step
    b, e = 0, int(plan.end[0])
    want = np.clip(2.0 * (plan.positions[b, e] - OBS[b, :2]) + 0.5 * (0.0 - OBS[b, 2:]), -1, 1)
    assert np.allclose(planner.act(plan, OBS, 250)[b], want)
    assert not planner.needs_replan(plan, 250)
    seen = []
    planner.model = InputSpy(model, seen)
    planner.plan(OBS, GOALS, 300, generator=torch.Generator().manual_seed(1))
    goal = norm.norm_pos(torch.tensor(GOALS, dtype=torch.float32))  # (3, 2)
    assert len(seen) == 4
    for x in seen:  # the last frame of the last token is slots 18:20; nothing else is clean
        assert torch.equal(x[:, :1], ctx) and torch.allclose(x[:, -1, 18:20], goal)
    assert not torch.allclose(seen[0][:, -1, :18], seen[-1][:, -1, :18])


def test_position_only_model_plans_positions_and_pd_follows_them(make_model):
    """channels 'pos': the plan holds positions; the PD's velocity reference is the planned step (main: controller)."""
    model, spec = make_model(channels="pos")
    planner = Planner(model, spec, PlannerConfig(controller="pd", mc_samples=2, guidance_scale=0.3, sampling_steps=3,
                                                 pd_gains=(2.0, 0.5)))
    plan = planner.plan(OBS, GOALS, 25, generator=torch.Generator().manual_seed(0))
    norm = spec.normalizer()
    ctx = context_token(norm.norm_obs(torch.tensor(OBS, dtype=torch.float32)), 10, norm, "pos")
    assert plan.tokens.shape == (3, 4, 20) and torch.equal(plan.tokens[:, :1], ctx)
    want_pos = norm.unnorm_pos(plan.tokens[:, 1:].reshape(3, 30, 2)).numpy()
    assert np.allclose(plan.positions, want_pos, atol=1e-5)
    steps = np.diff(np.concatenate([OBS[:, None, :2], plan.positions], axis=1), axis=1)  # p_k - p_{k-1}
    assert np.allclose(plan.velocities, steps, atol=1e-5) and not plan.actions.any()
    want = np.clip(2.0 * (plan.positions[:, 3] - OBS[:, :2]) + 0.5 * (steps[:, 3] - OBS[:, 2:]), -1, 1)
    assert np.allclose(planner.act(plan, OBS, 3), want)
    # the reward reads the planned positions as in a full-channel model
    x = torch.randn(2, 3, 20)
    goals = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    reward = GoalReward(goals, norm, 10, steps=15, channels="pos")(x)
    pos = norm.unnorm_pos(x[:, 1:].reshape(2, 20, 2)[:, :15])
    assert torch.allclose(reward, -(pos - goals[:, None]).norm(dim=-1).sum(-1), atol=1e-5)
    # pos_velocity="finite": the velocity the plan implies, the same steps over the env's time step (0.01 s)
    finite = Planner(model, spec, PlannerConfig(controller="pd", mc_samples=2, guidance_scale=0.3, sampling_steps=3,
                                                pos_velocity="finite"))
    again = finite.plan(OBS, GOALS, 25, generator=torch.Generator().manual_seed(0))
    assert np.allclose(again.positions, plan.positions) and np.allclose(again.velocities, steps / 0.01, atol=1e-3)
    with pytest.raises(ValueError, match="pos_velocity must be one of"):
        PlannerConfig(pos_velocity="dt")
    # what a position-only model cannot do is refused with what to do instead
    with pytest.raises(ValueError, match="--controller pd"):
        Planner(model, spec, PlannerConfig(controller="actions"))
    # the stop term reads the plan's own steps / dt as its speed (no planned velocities)
    stop = GoalReward(goals, norm, 10, steps=15, stop_weight=2.0, channels="pos")(x)
    ctx_pos = norm.unnorm_pos(x[:, 0].reshape(2, 10, 2)[:, -1:])  # (2, 1, 2)
    every = norm.unnorm_pos(x[:, 1:].reshape(2, 20, 2))
    vel = torch.diff(torch.cat([ctx_pos, every], dim=1), dim=1)[:, :15] / 0.01
    speed = (vel.pow(2).sum(-1) + SPEED_EPS**2).sqrt() - SPEED_EPS
    d = (pos - goals[:, None]).norm(dim=-1)
    assert torch.allclose(stop, -(d + 2.0 * torch.exp(-d.pow(2)) * speed).sum(-1), rtol=1e-5)


def test_smoothed_plan_velocity_by_hand():
    """planned_steps with a window: the central difference over +-w frames / dt, its span cut at the plan's ends."""
    start = torch.tensor([[[0.0, 0.0]]])  # (1, 1, 2)
    pos = torch.tensor([[[0.1, 0.0], [0.3, 0.0], [0.4, 0.1], [0.4, 0.5], [1.0, 0.5]]])  # (1, 5, 2)
    path = [[0.0, 0.0], [0.1, 0.0], [0.3, 0.0], [0.4, 0.1], [0.4, 0.5], [1.0, 0.5]]  # p_{-1}, p_0 .. p_4
    # w = 2: frame k uses path[k+1+2] - path[k+1-2], both clamped into [0, 5], over the frames spanned
    want = [[(path[3][i] - path[0][i]) / 3 for i in range(2)],  # k=0: j=1, span [0, 3]
            [(path[4][i] - path[0][i]) / 4 for i in range(2)],  # k=1: j=2, span [0, 4]
            [(path[5][i] - path[1][i]) / 4 for i in range(2)],  # k=2: j=3, span [1, 5]
            [(path[5][i] - path[2][i]) / 3 for i in range(2)],  # k=3: j=4, span [2, 5]
            [(path[5][i] - path[3][i]) / 2 for i in range(2)]]  # k=4: j=5, span [3, 5]
    got = planned_steps(start, pos, per_second=True, window=2)
    assert torch.allclose(got, torch.tensor([want]) / 0.01, atol=1e-4)
    # a plan that moves at a constant velocity: every window gives that velocity
    line = torch.arange(1, 31, dtype=torch.float64)[None, :, None] * torch.tensor([0.02, -0.01], dtype=torch.float64)
    v = planned_steps(torch.zeros(1, 1, 2, dtype=torch.float64), line, per_second=True, window=5)
    assert torch.allclose(v, torch.tensor([2.0, -1.0], dtype=torch.float64).expand(1, 30, 2))
    # a plan that jitters around the goal: the smoothed speed is a fraction of the step speed
    jitter = torch.tensor([[[0.02 * (-1) ** k, 0.0] for k in range(40)]])  # (1, 40, 2)
    rough = planned_steps(torch.zeros(1, 1, 2), jitter, per_second=True).norm(dim=-1)[:, 5:-5]
    smooth = planned_steps(torch.zeros(1, 1, 2), jitter, per_second=True, window=5).norm(dim=-1)[:, 5:-5]
    assert rough.min() >= 3.9 and smooth.max() <= 0.41
    with pytest.raises(ValueError, match="per_second=True"):
        planned_steps(start, pos, window=2)
    with pytest.raises(ValueError, match="pos_velocity_window must be"):
        PlannerConfig(pos_velocity="smooth", pos_velocity_window=0)


def test_smooth_pos_velocity_feeds_pd_and_the_stop_term(make_model):
    """pos_velocity="smooth": the plan's velocities and the stop term's speed are the windowed central difference."""
    model, spec = make_model(channels="pos")
    cfg = dict(controller="pd", mc_samples=2, guidance_scale=0.3, sampling_steps=3)
    base = Planner(model, spec, PlannerConfig(**cfg, pos_velocity="finite"))
    smooth = Planner(model, spec, PlannerConfig(**cfg, pos_velocity="smooth", pos_velocity_window=3))
    a = base.plan(OBS, GOALS, 25, generator=torch.Generator().manual_seed(0))
    b = smooth.plan(OBS, GOALS, 25, generator=torch.Generator().manual_seed(0))
    assert np.allclose(a.positions, b.positions)  # the plan itself does not change, only the velocity reference
    want = planned_steps(torch.tensor(OBS[:, None, :2]), torch.tensor(b.positions), per_second=True, window=3)
    assert np.allclose(b.velocities, want.numpy(), atol=1e-3) and not np.allclose(a.velocities, b.velocities)
    norm = spec.normalizer()
    x = torch.randn(2, 3, 20)
    goals = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    stop = GoalReward(goals, norm, 10, steps=15, stop_weight=2.0, channels="pos", speed_window=3)(x)
    ctx_pos = norm.unnorm_pos(x[:, 0].reshape(2, 10, 2)[:, -1:])  # (2, 1, 2)
    every = norm.unnorm_pos(x[:, 1:].reshape(2, 20, 2))  # (2, 20, 2)
    vel = planned_steps(ctx_pos, every, per_second=True, window=3)[:, :15]  # (2, 15, 2)
    speed = (vel.pow(2).sum(-1) + SPEED_EPS**2).sqrt() - SPEED_EPS
    d = (every[:, :15] - goals[:, None]).norm(dim=-1)
    assert torch.allclose(stop, -(d + 2.0 * torch.exp(-d.pow(2)) * speed).sum(-1), rtol=1e-5)


def test_hold_radius_ends_each_plan_at_its_arrival_and_pd_holds_it(make_model):
    """hold_radius: a plan ends at its closest approach to the goal in its first visit within R; PD tracks it
    until then, then holds that frame at rest."""
    # goal distances: row 0: 1, 0.4, 0.1, 0.05, 1, 0 (a second visit, closer); row 1: 1, 0.9, 0.8, 0.7, 0.6, 0.6
    pos = np.array([[[0.0, 0.0], [0.6, 0.0], [0.9, 0.0], [1.0, 0.05], [2.0, 0.0], [1.0, 0.0]],
                    [[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [0.3, 0.0], [0.4, 0.0], [0.4, 0.0]]])
    goals = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert arrival_frames(pos, goals, 0.3).tolist() == [3, 6]  # first visit = frames 2-3, closest 3; never: L
    assert arrival_frames(pos, goals, 0.45).tolist() == [3, 6]  # the visit starts at frame 1 (0.4), closest 3
    assert arrival_frames(pos, goals, 0.08).tolist() == [3, 6]  # the visit is frame 3 alone
    assert arrival_frames(pos, goals, 1.0).tolist() == [5, 4]  # one visit from frame 0 on: the closest frames
    # the start position counts as frame -1: outside R it changes nothing; inside, a plan that leaves at once ends
    # at -1 (hold the start), one that stays inside continues the start's visit
    far = np.array([[5.0, 0.0], [5.0, 0.0]])
    assert arrival_frames(pos, goals, 0.3, start=far).tolist() == [3, 6]
    near = np.array([[0.7, 0.0], [0.96, 0.0]])  # goal distances 0.3 and 0.04
    assert arrival_frames(pos, goals, 0.45, start=near).tolist() == [-1, -1]  # both plans' frame 0 is outside
    assert arrival_frames(pos, goals, 1.0, start=near).tolist() == [5, -1]  # row 1: the start is the closest
    assert arrival_frames(pos, goals, 1.0, start=np.array([[0.5, 0.0], [0.2, 0.0]])).tolist() == [5, 4]
    model, spec = make_model(channels="pos")
    planner = Planner(model, spec, PlannerConfig(controller="pd", pd_gains=(2.0, 0.5), hold_radius=0.3))
    plan = Plan(positions=pos, velocities=np.full_like(pos, 0.5), actions=np.zeros_like(pos), t0=10,
                end=np.array([2, 6]))
    obs = np.array([[0.5, 0.5, 0.2, -0.1], [0.0, 0.0, 0.1, 0.1]])
    pd = lambda p, v: np.clip(2.0 * (p - obs[:, :2]) + 0.5 * (v - obs[:, 2:]), -1, 1)  # noqa: E731
    # step 1 of the plan: both track frame 1 with its velocity
    assert np.allclose(planner.act(plan, obs, 11), pd(pos[:, 1], np.full((2, 2), 0.5)))
    # step 3: the first plan has ended (frame 2) and holds frame 2 at rest; the second still tracks frame 3
    want = pd(np.stack([pos[0, 2], pos[1, 3]]), np.array([[0.0, 0.0], [0.5, 0.5]]))
    assert np.allclose(planner.act(plan, obs, 13), want)
    # past the whole plan: the second holds its last frame at rest (as without hold_radius)
    assert np.allclose(planner.act(plan, obs, 30), pd(np.stack([pos[0, 2], pos[1, 5]]), np.zeros((2, 2))))
    # end -1 (the ball started inside R and the plan leaves): hold the start position at rest from the first step
    held = Plan(positions=pos, velocities=np.full_like(pos, 0.5), actions=np.zeros_like(pos), t0=10,
                end=np.array([-1, 6]), start=near)
    for t in (10, 12, 40):
        want = pd(np.stack([near[0], pos[1, min(t - 10, 5)]]), np.array([[0.0, 0.0], [0.5 * (t < 16)] * 2]))
        assert np.allclose(planner.act(held, obs, t), want)
    # without hold_radius the same plan is followed to its last frame
    plain = Planner(model, spec, PlannerConfig(controller="pd", pd_gains=(2.0, 0.5)))
    plan.end = None
    assert np.allclose(plain.act(plan, obs, 13), pd(pos[:, 3], np.full((2, 2), 0.5)))
    # planning fills `end` from the goals it was given
    real = planner.plan(OBS, GOALS, 25, generator=torch.Generator().manual_seed(0))
    assert np.array_equal(real.start, OBS[:, :2])
    assert real.end.tolist() == arrival_frames(real.positions, GOALS, 0.3, start=OBS[:, :2]).tolist()
    assert plain.plan(OBS, GOALS, 25, generator=torch.Generator().manual_seed(0)).end is None
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="hold_radius must be"):
            PlannerConfig(controller="pd", hold_radius=bad)
    with pytest.raises(ValueError, match="controller='pd'"):
        PlannerConfig(controller="actions", hold_radius=0.5)


def test_goal_reward_row_weights_scale_each_goals_reward(make_model):
    """row_weights (B,) multiply each goal's reward, Monte Carlo replicas (row b*R + r) included."""
    model, spec = make_model()
    norm = spec.normalizer()
    goals = torch.tensor([[1.0, 1.0], [2.0, 3.0]])
    x = torch.randn(6, 3, 60)  # 2 goals x 3 replicas
    plain = GoalReward(goals, norm, 10, steps=15)(x)
    w = torch.tensor([0.25, 2.0])
    weighted = GoalReward(goals, norm, 10, steps=15, row_weights=w)(x)
    assert torch.allclose(weighted, plain * torch.tensor([0.25] * 3 + [2.0] * 3), atol=1e-5)
    with pytest.raises(ValueError, match="one weight per goal"):
        GoalReward(goals, norm, 10, steps=15, row_weights=torch.ones(3))


@pytest.mark.parametrize("method", ["df", "df_mcg"])
def test_guidance_weights_act_as_a_per_env_guidance_scale(make_model, method):
    """A plan with guidance weights w equals, row by row, the plan at guidance scale w * s (the classifier form is
    linear in the scale); weights of 1 are the plain plan bit for bit."""
    model, spec = make_model(channels="pos")
    kw = dict(method=method, controller="pd", mc_samples=2, sampling_steps=3)
    planner = Planner(model, spec, PlannerConfig(guidance_scale=0.4, **kw))
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    plain = planner.plan(OBS, GOALS, 25, generator=gen())
    ones = planner.plan(OBS, GOALS, 25, generator=gen(), guidance_weights=np.ones(3))
    assert np.array_equal(plain.positions, ones.positions)
    mixed = planner.plan(OBS, GOALS, 25, generator=gen(), guidance_weights=np.array([1.0, 0.25, 1.0]))
    quarter = Planner(model, spec, PlannerConfig(guidance_scale=0.1, **kw)).plan(OBS, GOALS, 25, generator=gen())
    assert np.allclose(mixed.positions[[0, 2]], plain.positions[[0, 2]], atol=1e-4)
    assert np.allclose(mixed.positions[1], quarter.positions[1], atol=1e-4)
    assert not np.allclose(mixed.positions[1], plain.positions[1], atol=1e-2)
    with pytest.raises(ValueError, match="guidance_weights must be"):
        planner.plan(OBS, GOALS, 25, guidance_weights=np.ones(2))


def test_stall_weights_by_hand(make_model):
    """stall_decay: a ball that moved < stall_distance since the last replan, outside the goal's 0.5, has its
    episode's guidance weight multiplied by the decay; one that moved, or sits at the goal, keeps it."""
    model, spec = make_model(channels="pos")
    planner = Planner(model, spec, PlannerConfig(controller="pd", stall_decay=0.1, stall_distance=0.2))
    last = np.array([[3.0, 1.0], [3.0, 1.0], [1.1, 1.0], [2.0, 2.0]])
    obs = np.array([[3.1, 1.0, 0, 0],  # moved 0.1, 2.1 from its goal: stalled
                    [3.3, 1.0, 0, 0],  # moved 0.3: not stalled
                    [1.15, 1.0, 0, 0],  # moved 0.05 but 0.15 from its goal: held there, not stalled
                    [2.0, 2.19, 0, 0]])  # moved 0.19, 1.19 from its goal: stalled
    goals = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [2.0, 1.0]])
    w = planner.stall_weights(np.array([1.0, 1.0, 1.0, 0.1]), last, obs, goals)
    assert np.allclose(w, [0.1, 1.0, 1.0, 0.01])
    off = Planner(model, spec, PlannerConfig(controller="pd"))
    assert np.array_equal(off.stall_weights(np.ones(4), last, obs, goals), np.ones(4))
    for bad in (1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="stall_decay must be"):
            PlannerConfig(stall_decay=bad)
    for bad in (0.0, float("inf")):
        with pytest.raises(ValueError, match="stall_distance must be"):
            PlannerConfig(stall_decay=0.5, stall_distance=bad)


def _plan(b, length, t0, base, end=None, start=None):
    """A hand-made plan whose every value encodes (env, frame): base + 100 env + frame."""
    v = base + 100.0 * np.arange(b)[:, None, None] + np.arange(length)[None, :, None] + np.zeros((1, 1, 2))  # (b, L, 2)
    return Plan(positions=v, velocities=v + 0.25, actions=v + 0.5, t0=t0, end=end, start=start)


def test_splice_replaces_the_chosen_rows_and_keeps_the_clock():
    """replan_near: the rows of the envs that planned again at step t come from the new plan, read from t on;
    the others keep their plan; both are padded with their last frame to the longer length."""
    old = _plan(3, 30, t0=10, base=0.0)
    sub = _plan(1, 25, t0=17, base=1000.0)  # env 1 planned again at step 17, 25 frames
    rows = np.array([False, True, False])
    out = splice(old, rows, sub)
    assert out.t0 == 10 and out.length == 32  # shift 7 + 25 frames
    for t in range(17, 42):  # env 1 reads the new plan's frame t - 17 at step t
        assert np.array_equal(out.actions[1, t - out.t0], sub.actions[0, t - 17])
    assert np.array_equal(out.positions[0, :30], old.positions[0])  # env 0: unchanged
    assert np.array_equal(out.positions[2, 30:], np.repeat(old.positions[2, -1:], 2, axis=0))  # padded at rest
    assert np.array_equal(out.velocities[1, 7:], sub.velocities[0])
    short = splice(old, rows, _plan(1, 5, t0=12, base=1000.0))  # a shorter new plan: padded with its last frame
    assert short.length == 30 and np.array_equal(short.actions[1, 7:], np.repeat(short.actions[1, 6:7], 23, 0))
    with pytest.raises(ValueError, match="splice needs"):
        splice(old, rows, _plan(1, 5, t0=9, base=0.0))  # made before the plan
    with pytest.raises(ValueError, match="splice needs"):
        splice(old, rows, _plan(2, 5, t0=12, base=0.0))  # two rows for one env


def test_splice_moves_pd_plan_ends_with_the_shift():
    """hold_radius plans: a spliced row's end frame moves with the shift, -1 (hold the start) stays -1."""
    old = _plan(3, 30, t0=0, base=0.0, end=np.array([5, 30, 12]), start=np.zeros((3, 2)))
    sub = _plan(2, 20, t0=4, base=1000.0, end=np.array([3, -1]), start=np.array([[1.0, 2.0], [3.0, 4.0]]))
    out = splice(old, np.array([True, False, True]), sub)
    assert out.end.tolist() == [7, 30, -1]
    assert out.start.tolist() == [[1.0, 2.0], [0.0, 0.0], [3.0, 4.0]]


def test_near_due_picks_envs_near_their_goal(make_model):
    """replan_near R: an env within R of its goal plans again once replan_near_every steps have passed since its
    rows were made; off (None) never."""
    model, spec = make_model()
    planner = Planner(model, spec, PlannerConfig(replan_near=1.0, replan_near_every=2))
    obs = np.array([[1.5, 1.0, 0, 0], [1.5, 1.0, 0, 0], [3.0, 3.0, 0, 0]])  # 0.5, 0.5, 2.83 from (1, 1)
    goals = np.ones((3, 2))
    assert planner.near_due(obs, goals, np.array([10, 11, 10]), 12).tolist() == [True, False, False]
    off = Planner(model, spec, PlannerConfig())
    assert not off.near_due(obs, goals, np.zeros(3, dtype=int), 50).any()
    for kw, msg in [({"replan_near": 0.0}, "replan_near must be"), ({"replan_near": float("nan")}, "replan_near must"),
                    ({"replan_near": 1.0, "replan_near_every": 0}, "replan_near_every must"),
                    ({"replan_near": 1.0, "replan_every": None}, "needs replan_every")]:
        with pytest.raises(ValueError, match=msg):
            PlannerConfig(**kw)
