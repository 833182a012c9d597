"""Planners: Diffusion Forcing with (Monte Carlo) goal guidance, and a Diffuser-style inpainting baseline.

* ``df_mcg`` / ``df``: the causal DF model plans the remaining episode (flexible horizon: ceil(steps / fs)
  tokens after the context token of the current observation) along a pyramid scheduling matrix, guided
  toward the goal by ``dforce_sampling.MonteCarloGuidance`` (``df`` = one sample, i.e. plain reward
  guidance: the paper's "w/o MCG"). The agent executes the first ``replan_every`` diffused actions and
  replans (reference §3.2), or tracks the planned states with a PD controller (``controller="pd"``).
* ``diffuser``: a non-causal model trained with full-sequence levels plans a fixed horizon once, with the
  start (context token) and the goal (position, zero velocity, last frame; a position-only model: the
  position) inpainted, and a PD controller follows the plan (Diffuser's maze2d protocol).
* ``goal_pd`` (``GoalPD``): no model; the PD controller aims straight at the goal (zero velocity). The control
  for every "PD on the plans" row: a plan only helps where it beats this.

The reward (reference §3.2) is minus the summed xy distance of every planned frame inside the horizon to
the goal, in world units, so any step can be the final one.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dforce_core import per_token, q_sample
from dforce_sampling import (
    GUIDANCE_FORMS,
    DiffusionForcingSampler,
    MonteCarloGuidance,
    RewardGuidance,
    SamplerConfig,
    draw_active_noise,
    reward_view,
    sample,
)

from .model import KnownEnds, ModelSpec
from .presets import EPISODE_STEPS
from .tokens import OBS_DIM, Normalizer, context_token, n_plan_tokens, unpack

METHODS = ("df_mcg", "df", "diffuser", "goal_pd")
SPEED_EPS = 0.5  # smoothing of |v| in the stop term: its gradient turns continuously at rest
CONTROLLERS = ("actions", "pd")
# how a frame's goal distance enters the reward: d, 2 tanh(d / 2), the shortest path through the maze (not paper), or
# the authors' main: code's whole per-frame cost (squashed normalised goal distance + 8 x squashed speed + 8 x |action|)
GOAL_DISTANCES = ("linear", "tanh", "geodesic", "main")
# main: code's weights on a horizon frame's (position, velocity, action) distances (reference §3.1)
MAIN_WEIGHTS = (1.0, 8.0, 8.0)
MAIN_EPS = 1e-3  # the main: code takes a plain sqrt; this keeps its gradient finite at exactly 0 (normalised units)
STOP_WHERE = ("near", "after")  # the stop term's frames: weighted by proximity, or all from the plan's arrival on
# how the reward sums its frames: "horizon" = the frames inside the horizon; "paper" = the paper: code's
# episode_steps x the mean over every planned frame, the episode's last frame weighted 0 (reference §3.2)
REWARD_WEIGHTINGS = ("horizon", "paper")
# a position-only model's PD velocity reference: the planned step dp (the main: controller's "dp_plan - v"), the
# velocity the plan implies, dp / dt (world units per second, like the observation's), or that velocity as a
# central difference over +-window frames ("smooth": the frame-to-frame jitter of a sampled plan averaged out)
POS_VELOCITIES = ("step", "finite", "smooth")


def planned_steps(start: Tensor, pos: Tensor, per_second: bool = False, window: int = 0) -> Tensor:
    """Steps p_k - p_{k-1} (N, L, 2) of planned positions (N, L, 2), p_{-1} = ``start`` (N, 1, 2).

    World units per env step, or per second (divided by the env's time step, 0.01 s) with ``per_second``. With
    ``window`` w > 0 (per second only) the velocity at frame k is the central difference
    (p_{k+w} - p_{k-w}) / (2 w dt), its span cut to [p_{-1}, p_{L-1}] at the plan's ends.
    """
    path = torch.cat([start, pos], dim=1)  # (N, L+1, 2): index j = frame j-1
    if window and not per_second:
        raise ValueError("a smoothing window gives a velocity per second; pass per_second=True")
    if window < 0:
        raise ValueError(f"window must be >= 0 frames, got {window}")
    if window:
        j = torch.arange(1, path.shape[1], device=pos.device)  # (L,)
        hi, lo = (j + window).clamp(max=path.shape[1] - 1), (j - window).clamp(min=0)  # (L,), (L,)
        steps = (path[:, hi] - path[:, lo]) / (hi - lo).to(pos.dtype)[None, :, None]  # (N, L, 2) per env step
    else:
        steps = path[:, 1:] - path[:, :-1]  # (N, L, 2)
    if not per_second:
        return steps
    from dforce_datasets.maze2d.model import TIMESTEP  # lazy: the maze extra (mujoco) stays optional

    return steps / TIMESTEP  # (N, L, 2) world units per second


def arrival_frames(positions: np.ndarray, goals: np.ndarray, radius: float,
                   start: np.ndarray | None = None) -> np.ndarray:
    """(B,) frame where each plan (B, L, 2) ends: its closest approach to its goal (B, 2) during its first visit
    within ``radius`` (the first run of frames inside); L when it never arrives. With ``start`` (B, 2), the
    position the plan starts from counts as frame -1: a ball already inside whose plan leaves is held where it is."""
    if start is not None:
        positions = np.concatenate([np.asarray(start, dtype=np.float64)[:, None, :], positions], axis=1)  # (B, 1+L, 2)
    dist = np.linalg.norm(positions - goals[:, None, :], axis=-1)  # (B, L')
    inside = dist <= radius  # (B, L')
    first = np.where(inside.any(axis=1), inside.argmax(axis=1), positions.shape[1])  # (B,)
    after = np.arange(positions.shape[1])[None, :] >= first[:, None]  # (B, L')
    visit = inside & (np.cumsum(after & ~inside, axis=1) == 0) & after  # (B, L'): the first run inside
    closest = np.where(visit, dist, np.inf).argmin(axis=1)  # (B,)
    frames = np.where(inside.any(axis=1), closest, positions.shape[1])  # (B,)
    return frames if start is None else frames - 1  # (B,): -1 = hold the start position


@dataclass
class PlannerConfig:
    """How to plan and act. ``horizon`` caps the planned steps (None: the rest of the episode)."""

    method: str = "df_mcg"
    guidance_scale: float = 1.0
    stop_weight: float = 0.0  # weight of the "stop at the goal" term of the reward (0: the paper's goal distance)
    stop_radius: float = 1.0  # world units: the stop term weighs speed by exp(-(d / stop_radius)^2)
    stop_where: str = "near"  # near: that proximity weight; after: every frame from the first within stop_radius
    # linear: d (paper App. B.5); tanh: 2 tanh(d/2) (main: code's squashing); geodesic: maze path; main: the main:
    # code's full cost, which also asks every planned frame for rest (zero velocity and action)
    goal_distance: str = "linear"
    wall_cost: float = 20.0  # geodesic only: cost per unit inside walls (maze2d.geodesic.WALL_COST)
    # classifier: eps' = eps - scale sqrt(1 - a') grad R (main: code); paper: x' = DDIM + scale g grad R with the
    # paper: code's reward weighting (episode_steps x mean over planned frames), reference §3.2
    guidance_form: str = "classifier"
    mc_samples: int = 4  # Monte Carlo samples per token (1 = no MCG)
    horizon: int | None = None
    replan_every: int | None = 10  # env steps between replans (None: plan once, Diffuser's protocol)
    # Not in the paper: an env whose ball is within replan_near world units of its goal also plans again every
    # replan_near_every steps between the scheduled replans (its rows only, spliced into the batch's plan), so a ball
    # that would run through the goal on 10 open-loop actions gets a fresh plan from where it is (None: off)
    replan_near: float | None = None
    replan_near_every: int = 1
    sampling_steps: int = 10  # S, DDIM steps per token
    stabilization_level: int = 10  # clean context shown at level 9 (reference §2.5, planning)
    uncertainty_scale: float = 1.0  # pyramid slope
    controller: str = "actions"  # actions: execute the diffused actions; pd: track the planned states
    pd_gains: tuple[float, float] = (12.5, 1.2)  # a = kp (p_plan - p) + kd (v_plan - v) (main: maze controller)
    pos_velocity: str = "step"  # position-only models: v_plan = dp per env step (main:), dp / dt ("finite") or
    # the central difference over +-pos_velocity_window frames / dt ("smooth"; also the stop term's speed)
    pos_velocity_window: int = 5
    # PD only: a plan ends where it comes closest to the goal during its first visit within hold_radius (world
    # units), and PD then holds that frame at rest, as Diffuser holds its last planned state (None: follow the whole
    # plan). Paper App. B.5: the reward sums the distance over every frame "so any time step can be the final step".
    hold_radius: float | None = None
    # A ball stalled between two replans (moved less than stall_distance world units while outside the goal's
    # 0.5 radius: pinned against a wall by a plan through it) gets its episode's guidance multiplied by stall_decay
    # for the rest of the episode, so its next plans lean on the model's prior, which keeps to the corridors
    # (None: off, the paper's planner). Not in the paper; map-free (it reads the ball's own positions only).
    stall_decay: float | None = None
    stall_distance: float = 0.2
    use_cache: bool = True  # KV cache for the context (DF only)
    # DF with the cache: commit each plan token to the cache as soon as the pyramid has finished it, so later
    # denoising calls feed only the unfinished tail (dforce_sampling.sample's commit_finished; same plans up to
    # float summation order; 1.6-1.7x faster whole-episode plans on CPU, forty-second session)
    commit_finished: bool = True
    batched_mcg: bool = True  # False: our reference path, one model call per Monte Carlo sample

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.controller not in CONTROLLERS:
            raise ValueError(f"controller must be one of {CONTROLLERS}, got {self.controller!r}")
        if self.method == "goal_pd" and self.controller != "pd":
            raise ValueError("method 'goal_pd' is the PD controller aimed at the goal; it needs controller='pd'")
        if not float(self.guidance_scale) >= 0.0:
            raise ValueError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if not float(self.stop_weight) >= 0.0:
            raise ValueError(f"stop_weight must be >= 0, got {self.stop_weight}")
        if not float(self.stop_radius) > 0.0:
            raise ValueError(f"stop_radius must be > 0 (world units), got {self.stop_radius}")
        if self.stop_where not in STOP_WHERE:
            raise ValueError(f"stop_where must be one of {STOP_WHERE}, got {self.stop_where!r}")
        if self.goal_distance not in GOAL_DISTANCES:
            raise ValueError(f"goal_distance must be one of {GOAL_DISTANCES}, got {self.goal_distance!r}")
        if not float(self.wall_cost) >= 1.0:
            raise ValueError(f"wall_cost must be >= 1, got {self.wall_cost}")
        if self.guidance_form not in GUIDANCE_FORMS:
            raise ValueError(f"guidance_form must be one of {GUIDANCE_FORMS}, got {self.guidance_form!r}")
        if isinstance(self.mc_samples, bool) or not isinstance(self.mc_samples, int) or self.mc_samples < 1:
            raise ValueError(f"mc_samples must be an int >= 1, got {self.mc_samples!r}")
        if self.horizon is not None and self.horizon < 1:
            raise ValueError(f"horizon must be >= 1 step or None (rest of the episode), got {self.horizon}")
        if self.replan_every is not None and self.replan_every < 1:
            raise ValueError(f"replan_every must be >= 1 or None (plan once), got {self.replan_every}")
        if self.replan_near is not None and not (math.isfinite(float(self.replan_near)) and self.replan_near > 0):
            raise ValueError(f"replan_near must be a distance > 0 (world units) or None, got {self.replan_near!r}")
        if isinstance(self.replan_near_every, bool) or not isinstance(self.replan_near_every, int) \
                or self.replan_near_every < 1:
            raise ValueError(f"replan_near_every must be an int >= 1 (env steps), got {self.replan_near_every!r}")
        if self.replan_near is not None and self.replan_every is None:
            raise ValueError("replan_near replans between scheduled replans; it needs replan_every (not None)")
        if self.pos_velocity not in POS_VELOCITIES:
            raise ValueError(f"pos_velocity must be one of {POS_VELOCITIES}, got {self.pos_velocity!r}")
        if isinstance(self.pos_velocity_window, bool) or not isinstance(self.pos_velocity_window, int) \
                or self.pos_velocity_window < 1:
            raise ValueError(f"pos_velocity_window must be an int >= 1 (frames), got {self.pos_velocity_window!r}")
        if self.hold_radius is not None and not (math.isfinite(float(self.hold_radius)) and self.hold_radius > 0):
            raise ValueError(f"hold_radius must be a distance > 0 (world units) or None, got {self.hold_radius!r}")
        if self.hold_radius is not None and self.controller != "pd":
            raise ValueError("hold_radius ends a plan where PD holds it; the agent executes its own actions "
                             "(controller='actions'): use controller='pd'")
        if self.stall_decay is not None and not 0.0 <= float(self.stall_decay) < 1.0:
            raise ValueError(f"stall_decay must be in [0, 1) (the guidance factor per stall) or None, "
                             f"got {self.stall_decay!r}")
        if not (math.isfinite(float(self.stall_distance)) and self.stall_distance > 0):
            raise ValueError(f"stall_distance must be a distance > 0 (world units), got {self.stall_distance!r}")
        if self.sampling_steps < 1:
            raise ValueError(f"sampling_steps must be >= 1, got {self.sampling_steps}")
        self.pd_gains = tuple(float(g) for g in self.pd_gains)  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        out["pd_gains"] = list(self.pd_gains)
        return out


class GoalReward:
    """R(x) = -sum_t (f(d_t) + w exp(-(d_t / r)^2) s(v_t)), d_t = ||p_t - g||, over planned frames in the horizon.

    World units, one value per row. The first term is the paper's goal distance (reference §3.2), f(d) = d; with
    ``distance="tanh"`` it is f(d) = 2 tanh(d / 2), the squashing of the authors' ``main:`` code (reference §3.1)
    rescaled to slope 1 at the goal: its pull fades with distance (1 at the goal, 0.42 at 2 units, 0.07 at 4),
    so far parts of a plan follow the model's prior and near parts are drawn in. With ``distance="geodesic"``
    (not the paper's) f(p_t) is the shortest-path distance from p_t to the goal through the maze's free space,
    read from ``fields`` (B, nx, ny) of ``dforce_datasets.maze2d.geodesic`` (``field_grid`` = (origin, step)):
    its gradient follows the corridors instead of pulling plans through wall blocks. With ``distance="main"`` f is the
    authors' ``main:`` code's whole per-frame cost for full tokens (reference §3.1), in the model's normalised units
    (hat): tanh(||p^ - g^|| / 2) + 8 tanh(||v^ - 0^|| / 2) + 8 ||a^||, i.e. besides the goal it asks every planned
    frame for rest (world velocity 0, normalised action 0), with 8 times the goal term's weight. The ``main:`` code
    takes the mean of that over frames, channels and the batch, times 1000; here it is summed over a row's horizon
    frames like every other option, so its guidance scales differ by a constant. The second term,
    off by default (``stop_weight`` w = 0), charges speed near the goal, so plans arrive and stay instead of
    passing through (the dataset's random walks never stop; diffusion-forcing issue #9). The proximity weight
    exp(-d^2) is held constant under the gradient: it says where speed counts, and never pushes a moving plan
    away from the goal; its width r (``stop_radius``, 1 world unit by default, a maze cell) sets how far from the
    goal braking starts. With ``stop_where="after"`` the weight is instead 1 on every frame from the plan's first
    arrival within r on (0 before): a plan that passes the goal behind a wall is not slowed, and a plan that
    arrives is asked to stay for the rest of the horizon. A position-only model (``channels="pos"``) plans no
    velocities: v is then the plan's own step over the env's time step, (p_t - p_{t-1}) / 0.01 s, the first step
    from the context position, or with ``speed_window`` w its central difference over +-w frames.
    s(v) = sqrt(|v|^2 + eps^2) - eps is a smooth speed: |v| has a kink at rest, where the plans that stay at the
    goal live, and its gradient direction would flip on float noise there.

    ``weighting`` says how the per-frame costs are summed: ``"horizon"`` (default) sums the frames inside the
    horizon (``steps``); ``"paper"`` is the ``paper:`` code's weighting behind Table 1: ``episode_steps`` times
    the mean over every planned frame, with the last frame weighted 0 when the plan reaches the episode's end
    (``reaches_end``). Its pull grows as the plans shorten: 30x the first plan's per frame in the last umaze plan.

    ``x`` is the full sequence a guidance reward sees, ``(N, 1 + H, fs*6)`` with the context first; N may be
    a multiple of the number of goals (Monte Carlo replicas, row b*R + r belongs to goal b).
    """

    def __init__(self, goals: Tensor, normalizer: Normalizer, frame_stack: int, steps: int,
                 stop_weight: float = 0.0, distance: str = "linear", stop_radius: float = 1.0,
                 stop_where: str = "near", fields: Tensor | None = None,
                 field_grid: tuple[tuple[float, float], float] | None = None, wall_cost: float = 20.0,
                 weighting: str = "horizon", episode_steps: int | None = None, reaches_end: bool = True,
                 channels: str = "full", speed_window: int = 0, row_weights: Tensor | None = None) -> None:
        self.channels, self.speed_window = channels, int(speed_window)
        if row_weights is not None and row_weights.shape != (goals.shape[0],):
            raise ValueError(f"row_weights must hold one weight per goal, shape ({goals.shape[0]},), "
                             f"got {tuple(row_weights.shape)}")
        self.row_weights = row_weights  # (B,) or None: each goal's reward is scaled by its weight
        if weighting not in REWARD_WEIGHTINGS:
            raise ValueError(f"weighting must be one of {REWARD_WEIGHTINGS}, got {weighting!r}")
        if (weighting == "paper") != (episode_steps is not None):
            raise ValueError("weighting='paper' needs episode_steps (the episode length), and only it uses them")
        if episode_steps is not None and episode_steps < 1:
            raise ValueError(f"episode_steps must be >= 1, got {episode_steps}")
        self.weighting, self.episode_steps, self.reaches_end = weighting, episode_steps, bool(reaches_end)
        if distance not in GOAL_DISTANCES:
            raise ValueError(f"distance must be one of {GOAL_DISTANCES}, got {distance!r}")
        if distance == "main" and channels != "full":
            raise ValueError("distance='main' charges planned velocities and actions: it needs a full-token model "
                             "(channels='full'); a position-only model has neither")
        if (distance == "geodesic") != (fields is not None and field_grid is not None):
            raise ValueError("distance='geodesic' needs the goals' distance fields and their grid, and only it uses them")
        if fields is not None and fields.shape[0] != goals.shape[0]:
            raise ValueError(f"one distance field per goal: {fields.shape[0]} fields for {goals.shape[0]} goals")
        self.fields, self.field_grid, self.wall_cost = fields, field_grid, float(wall_cost)
        if stop_where not in STOP_WHERE:
            raise ValueError(f"stop_where must be one of {STOP_WHERE}, got {stop_where!r}")
        self.stop_where = stop_where
        self.goals = goals  # (B, 2) world
        self.stop_weight = float(stop_weight)
        self.stop_radius = float(stop_radius)
        self.distance = distance
        self.normalizer = normalizer
        self.frame_stack = frame_stack
        self.steps = steps

    def __call__(self, x: Tensor) -> Tensor:
        obs, act = unpack(x[:, 1:], self.frame_stack, self.channels)  # (N, H*fs, 4), (N, H*fs, 2) normalised
        # (position-only models: (N, H*fs, 2) and no actions)
        pos = self.normalizer.unnorm_pos(obs[..., :2])  # (N, H*fs, 2) world
        goals = self.goals.to(pos.dtype)
        if pos.shape[0] != goals.shape[0]:
            goals = goals.repeat_interleave(pos.shape[0] // goals.shape[0], dim=0)  # (N, 2)
        dist = (pos - goals[:, None, :]).norm(dim=-1)  # (N, H*fs)
        if self.distance == "main":
            cost = self.main_cost(obs, act, goals)  # (N, H*fs)
        elif self.distance == "geodesic":
            from dforce_datasets.maze2d.geodesic import field_lookup

            cost = field_lookup(self.fields, *self.field_grid, pos, self.wall_cost)  # (N, H*fs) world units
        else:
            cost = 2.0 * torch.tanh(dist / 2.0) if self.distance == "tanh" else dist  # (N, H*fs)
        if self.stop_weight:
            if self.channels == "pos":  # no planned velocities: the plan's own steps / dt
                start, _ = unpack(x[:, :1], self.frame_stack, self.channels)  # (N, fs, 2): the context position
                vel = planned_steps(self.normalizer.unnorm_pos(start[:, -1:]), pos, per_second=True,
                                    window=self.speed_window)  # (N, H*fs, 2)
            else:
                vel = self.normalizer.unnorm_obs(obs)[..., 2:]  # (N, H*fs, 2) world units
            speed = smooth_norm(vel)  # (N, H*fs): smooth |v|, no kink at 0
            d = dist.detach()  # (N, H*fs): where speed counts is constant under the gradient
            if self.stop_where == "after":
                near = (d <= self.stop_radius).to(d.dtype).cummax(dim=1).values  # (N, H*fs): 1 from arrival on
            else:
                near = torch.exp(-(d / self.stop_radius).pow(2))  # (N, H*fs)
            cost = cost + self.stop_weight * near * speed  # (N, H*fs)
        if self.weighting == "paper":
            weight = torch.ones(cost.shape[1], dtype=cost.dtype, device=cost.device)  # (H*fs,) every planned frame
            if self.reaches_end:
                weight[-1] = 0.0
            reward = -self.episode_steps * (cost * weight).mean(dim=-1)  # (N,)
        else:
            inside = (torch.arange(cost.shape[1], device=cost.device) < self.steps).to(cost.dtype)  # (H*fs,)
            reward = -(cost * inside).sum(dim=-1)  # (N,)
        if self.row_weights is not None:
            w = self.row_weights.to(device=reward.device, dtype=reward.dtype)  # (B,)
            reward = reward * w.repeat_interleave(reward.shape[0] // w.shape[0])  # (N,)
        return reward

    def main_cost(self, obs: Tensor, act: Tensor, goals: Tensor) -> Tensor:
        """The ``main:`` code's per-frame cost (reference §3.1) of normalised planned frames ``obs`` (N, H*fs, 4) and
        ``act`` (N, H*fs, 2), goals (N, 2) world: (N, H*fs)."""
        goal_obs = torch.cat([goals, torch.zeros_like(goals)], dim=-1)  # (N, 4): the goal at rest, world
        target = self.normalizer.norm_obs(goal_obs)[:, None, :]  # (N, 1, 4) normalised
        d_pos = smooth_norm(obs[..., :2] - target[..., :2], MAIN_EPS)  # (N, H*fs)
        d_vel = smooth_norm(obs[..., 2:] - target[..., 2:], MAIN_EPS)  # (N, H*fs)
        d_act = smooth_norm(act, MAIN_EPS)  # (N, H*fs): the main: code's target action is normalised 0
        w_pos, w_vel, w_act = MAIN_WEIGHTS
        return w_pos * torch.tanh(d_pos / 2) + w_vel * torch.tanh(d_vel / 2) + w_act * d_act  # (N, H*fs)


def smooth_norm(v: Tensor, eps: float = SPEED_EPS) -> Tensor:
    """||v|| over the last dim without the kink at 0: sqrt(|v|^2 + eps^2) - eps."""
    return (v.pow(2).sum(-1) + eps**2).sqrt() - eps


class LoopMonteCarloGuidance(MonteCarloGuidance):
    """Our unbatched reference path of ``MonteCarloGuidance``: one model call per Monte Carlo sample.

    It makes exactly the batched version's random draws (one (R*B)-row draw, row b*R + r for sample r of
    sequence b), so both give the same guided predictions up to floating-point summation order.
    """

    def total_reward(self, sampler, model, x, pred_x0, from_levels, cond, *, cache, generator, context_noise,
                     prefix):
        b, r = x.shape[0], self.num_resampled
        total = x.new_zeros(())
        if self.include_prediction:
            total = total + RewardGuidance.total_reward(
                self, sampler, model, x, pred_x0, from_levels, cond,
                cache=cache, generator=generator, context_noise=context_noise, prefix=prefix)
        if r > 0:
            levels_rep = from_levels.repeat_interleave(r, dim=0)  # (R*B, T)
            eps_all = draw_active_noise(x.repeat_interleave(r, dim=0), levels_rep, sampler.config.clip_noise,
                                        generator)  # (R*B, T, ...): the batched path's draws
            eps_all = eps_all.reshape(b, r, *x.shape[1:])  # (B, R, T, ...)
            noisy = per_token(from_levels >= 0, x)
            for j in range(r):
                renoised = q_sample(sampler.schedule, pred_x0, from_levels, eps_all[:, j])  # (B, T, ...)
                x_r = torch.where(noisy, renoised, x)
                x_in, k_net = sampler.model_inputs(x_r, from_levels, context_noise=context_noise, generator=generator)
                out = model(x_in, k_net, cond, cache=cache, commit=0)  # (B, T, ...)
                x0_r, _ = sampler.predict(out, x_in, k_net)
                total = total + self.reward_fn(reward_view(x0_r, x, from_levels, prefix)).sum()
        return total / self.num_samples


@dataclass
class Plan:
    """One plan for B envs, world units: positions/velocities o_{t+1..} and actions a_t, made at env step t0.

    A position-only model (channels 'pos') plans no velocities and no actions: ``velocities`` then holds the
    planned step p_{k} - p_{k-1} per env step (p_{-1} = the observed position), which the ``main:`` controller's
    ``1.2 (dp_plan - v)`` term uses (reference §5.2), or with ``pos_velocity="finite"`` that step divided by the
    env's time step (the velocity the plan implies); ``actions`` is zero.
    """

    positions: np.ndarray  # (B, L, 2)
    velocities: np.ndarray  # (B, L, 2) (channels 'pos': planned steps per env step, or per second with "finite")
    actions: np.ndarray  # (B, L, 2), not clipped (channels 'pos': zeros)
    t0: int
    seconds: float = 0.0
    tokens: Tensor | None = field(default=None, repr=False)  # (B, 1 + H, D) normalised, context first
    end: np.ndarray | None = None  # (B,) int: frame where each plan ends (PD holds it from there; None: L)
    start: np.ndarray | None = None  # (B, 2): the observed position it was planned from (held when end is -1)

    @property
    def length(self) -> int:
        """Planned steps L."""
        return int(self.positions.shape[1])


def splice(plan: Plan, rows: np.ndarray, sub: Plan) -> Plan:
    """``plan`` with the envs ``rows`` (B,) bool replaced by ``sub`` (one row per True), made later (sub.t0 >= t0).

    The result keeps ``plan.t0``, so the scheduled replans keep their clock; ``sub``'s frames are shifted right by
    ``sub.t0 - plan.t0`` (the frames before are never read), and every row is padded with its last frame to the
    longer of the two plans.
    """
    rows = np.asarray(rows, dtype=bool)
    shift = sub.t0 - plan.t0
    if shift < 0 or sub.positions.shape[0] != int(rows.sum()) or rows.shape != (plan.positions.shape[0],):
        raise ValueError(f"splice needs sub made at or after the plan (t0 {sub.t0} vs {plan.t0}) with one row per "
                         f"selected env ({sub.positions.shape[0]} vs {int(rows.sum())} of {plan.positions.shape[0]})")
    length = max(plan.length, shift + sub.length)

    def merged(old: np.ndarray, new: np.ndarray) -> np.ndarray:
        out = np.concatenate([old, np.repeat(old[:, -1:], length - old.shape[1], axis=1)], axis=1)  # (B, L', c)
        new = np.concatenate([np.repeat(new[:, :1], shift, axis=1), new,
                              np.repeat(new[:, -1:], length - shift - new.shape[1], axis=1)], axis=1)  # (b, L', c)
        out[rows] = new
        return out

    end = None
    if plan.end is not None or sub.end is not None:
        end = np.full(rows.shape[0], length) if plan.end is None else plan.end.copy()  # (B,)
        if sub.end is None:
            end[rows] = length  # (b,): not ended, as a plan without ends
        else:  # -1 (hold the start position) stays -1; a frame moves with the shift
            end[rows] = np.where(sub.end < 0, -1, sub.end + shift)
    start = None
    if plan.start is not None or sub.start is not None:
        start = np.zeros((rows.shape[0], 2)) if plan.start is None else plan.start.copy()  # (B, 2)
        if sub.start is not None:
            start[rows] = sub.start
    return Plan(positions=merged(plan.positions, sub.positions), velocities=merged(plan.velocities, sub.velocities),
                actions=merged(plan.actions, sub.actions), t0=plan.t0, seconds=sub.seconds, tokens=None,
                end=end, start=start)


class Planner:
    """Plans and acts for a batch of envs with a trained model (see the module docstring)."""

    def __init__(self, model, spec: ModelSpec, config: PlannerConfig) -> None:
        if config.method == "diffuser" and spec.kind != "diffuser":
            raise ValueError("method 'diffuser' needs a model trained with --kind diffuser (non-causal, full-sequence)")
        if config.method in ("df_mcg", "df") and spec.kind != "df":
            raise ValueError(f"method {config.method!r} needs a Diffusion Forcing model (--kind df), got {spec.kind!r}")
        if config.method == "diffuser" and spec.objective != "pred_x0":
            raise ValueError("the inpainting baseline needs a pred_x0 model")
        if spec.channels == "pos" and config.controller != "pd":
            raise ValueError("this model plans positions only (channels 'pos'): it has no actions to execute; "
                             "follow its plans with the PD controller (--controller pd)")
        self.model = model
        self.spec = spec
        self.config = config
        self.normalizer = spec.normalizer()
        dcfg = spec.diffusion_config()
        self._fields: dict[tuple[float, float], np.ndarray] = {}  # geodesic distance field per goal (cache)
        self._stacked: tuple[tuple, Tensor] | None = None  # the last batch of goals and its stacked fields
        self.sampler = DiffusionForcingSampler(dcfg.build_schedule(), SamplerConfig(
            num_sampling_steps=config.sampling_steps, eta=0.0, stabilization_level=config.stabilization_level,
            clip_noise=dcfg.clip_noise, objective=dcfg.objective))

    @property
    def episode_steps(self) -> int:
        """The episode length of this model's maze (300 / 600 / 800, D4RL's time limits)."""
        return EPISODE_STEPS[self.spec.maze.removeprefix("multi-").removeprefix("eval-")]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def velocity_window(self) -> int:
        """Frames each side of a position-only plan's smoothed velocity (0: the plain step)."""
        return self.config.pos_velocity_window if self.config.pos_velocity == "smooth" else 0

    def horizon_steps(self, steps_left: int) -> int:
        """Steps the next plan covers: min(steps left, config horizon, model window) (flexible horizon)."""
        cap = self.spec.n_tokens * self.spec.frame_stack
        if self.config.method == "diffuser":
            return cap
        h = min(int(steps_left), cap)
        return h if self.config.horizon is None else min(h, self.config.horizon)

    def guidance(self, goals: Tensor, steps: int, steps_left: int | None = None, weights: Tensor | None = None):
        """The guidance of a DF plan of ``steps`` steps with ``steps_left`` in the episode (None when the scale is 0);
        ``weights`` (B,) scale each goal's reward (``stall_weights``)."""
        c = self.config
        if c.method == "diffuser" or c.guidance_scale == 0:
            return None
        fields = grid = None
        if c.goal_distance == "geodesic":
            fields, grid = self.distance_fields(goals)
        paper = c.guidance_form == "paper"
        reward = GoalReward(goals, self.normalizer, self.spec.frame_stack, steps, c.stop_weight, c.goal_distance,
                            c.stop_radius, c.stop_where, fields=fields, field_grid=grid, wall_cost=c.wall_cost,
                            weighting="paper" if paper else "horizon",
                            episode_steps=self.episode_steps if paper else None,
                            reaches_end=steps_left is None or steps >= steps_left, channels=self.spec.channels,
                            speed_window=self.velocity_window, row_weights=weights)
        mc = c.mc_samples if c.method == "df_mcg" else 1
        cls = MonteCarloGuidance if c.batched_mcg else LoopMonteCarloGuidance
        return cls(reward, c.guidance_scale, num_samples=mc, form=c.guidance_form)

    def distance_fields(self, goals: Tensor) -> tuple[Tensor, tuple[tuple[float, float], float]]:
        """Geodesic distance fields (B, nx, ny) in this model's maze for goals (B, 2), and their (origin, step)."""
        from dforce_datasets.maze2d.geodesic import GRID_ORIGIN, RESOLUTION, distance_field

        keys = tuple((float(g[0]), float(g[1])) for g in goals.detach().cpu().double().numpy())
        if self._stacked is None or self._stacked[0] != keys or self._stacked[1].device != goals.device:
            for key in keys:
                if key not in self._fields:
                    field = distance_field(self.spec.maze, key, wall_cost=self.config.wall_cost)
                    self._fields[key] = field.values  # episodes keep their goal: computed once per goal
            values = np.stack([self._fields[key] for key in keys])  # (B, nx, ny)
            self._stacked = (keys, torch.as_tensor(values, dtype=torch.float32, device=goals.device))
        return self._stacked[1], (GRID_ORIGIN, RESOLUTION)

    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: int, t0: int = 0,
             generator: torch.Generator | None = None, guidance_weights: np.ndarray | None = None) -> Plan:
        """A plan for observations (B, 4) and goals (B, 2), world units, with ``steps_left`` in the episode;
        ``guidance_weights`` (B,) scale each env's guidance (None: 1)."""
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        goals_t = torch.as_tensor(np.asarray(goals), dtype=torch.float32, device=self.device)
        if obs_t.dim() != 2 or obs_t.shape[1] != OBS_DIM or goals_t.shape != (obs_t.shape[0], 2):
            raise ValueError(f"plan expects obs (B, 4) and goals (B, 2), got {tuple(obs_t.shape)}, {tuple(goals_t.shape)}")
        fs = self.spec.frame_stack
        ctx = context_token(self.normalizer.norm_obs(obs_t), fs, self.normalizer, self.spec.channels)  # (B, 1, D)
        steps = self.horizon_steps(steps_left)
        h = n_plan_tokens(steps, fs)
        weights = None
        if guidance_weights is not None:
            weights = torch.as_tensor(np.asarray(guidance_weights), dtype=torch.float32, device=self.device)  # (B,)
            if weights.shape != (obs_t.shape[0],):
                raise ValueError(f"guidance_weights must be (B,) = ({obs_t.shape[0]},), got {tuple(weights.shape)}")
        start = time.perf_counter()
        if self.config.method == "diffuser":
            goal_state = self.normalizer.norm_pos(goals_t)  # (B, 2): a position-only model inpaints the position
            if self.spec.channels == "full":  # and Diffuser's goal state rests there: zero velocity
                goal_state = torch.cat([goal_state, self.normalizer.norm_obs(torch.zeros_like(obs_t))[:, 2:]],
                                       dim=-1)  # (B, 4)
            x = sample(KnownEnds(self.model, ctx, goal_state, fs, self.spec.channels), self.sampler, n_tokens=1 + h,
                       token_shape=(self.spec.token_dim,), batch_size=obs_t.shape[0], chunk_size=None,
                       scheduling="full_sequence", generator=generator, device=self.device)
        else:
            x = sample(self.model, self.sampler, n_tokens=1 + h, context=ctx, chunk_size=None, scheduling="pyramid",
                       uncertainty_scale=self.config.uncertainty_scale,
                       guidance=self.guidance(goals_t, steps, steps_left, weights),
                       use_cache=self.config.use_cache,
                       commit_finished=self.config.use_cache and self.config.commit_finished, generator=generator)
        seconds = time.perf_counter() - start
        obs_n, act_n = unpack(x[:, 1:].detach(), fs, self.spec.channels)  # (B, h*fs, 4), (B, h*fs, 2)
        if act_n is None:  # position-only: the PD's velocity reference is the planned step dp (main: controller)
            pos = self.normalizer.unnorm_pos(obs_n)  # (B, h*fs, 2) world
            vel = planned_steps(obs_t[:, None, :2], pos, per_second=self.config.pos_velocity != "step",
                                window=self.velocity_window)  # (B, h*fs, 2)
            act = torch.zeros_like(pos)  # (B, h*fs, 2): no planned actions
        else:
            world = self.normalizer.unnorm_obs(obs_n)  # (B, h*fs, 4)
            pos, vel, act = world[..., :2], world[..., 2:], self.normalizer.unnorm_act(act_n)
        plan = Plan(positions=pos.cpu().numpy().astype(np.float64),
                    velocities=vel.cpu().numpy().astype(np.float64),
                    actions=act.cpu().numpy().astype(np.float64),
                    t0=t0, seconds=seconds, tokens=x.detach())
        if self.config.hold_radius is not None:
            plan.start = np.asarray(obs, dtype=np.float64)[:, :2].copy()
            plan.end = arrival_frames(plan.positions, np.asarray(goals, dtype=np.float64), self.config.hold_radius,
                                      start=plan.start)
        return plan

    def act(self, plan: Plan, obs: np.ndarray, t: int) -> np.ndarray:
        """Actions (B, 2) in [-1, 1] at env step t: the plan's own action, or PD tracking of its state."""
        k = t - plan.t0
        if k < 0:
            raise ValueError(f"step {t} is before the plan's start {plan.t0}")
        if self.config.controller == "actions":
            if k >= plan.length:
                raise ValueError(f"step {t} is past the plan's {plan.length} actions (from step {plan.t0}); "
                                 "plan again first (needs_replan says when)")
            return np.clip(plan.actions[:, k], -1.0, 1.0)
        kp, kd = self.config.pd_gains
        b, last = plan.positions.shape[0], plan.length - 1
        end = np.full(b, plan.length) if plan.end is None else plan.end  # (B,): first frame past each plan
        held = k >= end  # (B,): past a plan's end PD holds its final frame at rest (Diffuser, past its last state)
        frame = np.where(held, np.minimum(end, last), min(k, last))  # (B,): hold_radius: the arrival frame
        rows = np.arange(b)
        frame0 = np.maximum(frame, 0)  # (B,): frame -1 (hold the start) reads frame 0, replaced below
        p_ref = plan.positions[rows, frame0]  # (B, 2)
        if plan.start is not None:  # end -1: the ball was already at the goal and the plan leaves: hold the start
            p_ref = np.where((frame < 0)[:, None], plan.start, p_ref)  # (B, 2)
        v_ref = np.where(held[:, None], 0.0, plan.velocities[rows, frame0])  # (B, 2)
        a = kp * (p_ref - obs[:, :2]) + kd * (v_ref - obs[:, 2:])
        return np.clip(a, -1.0, 1.0)

    def stall_weights(self, weights: np.ndarray, last: np.ndarray, obs: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """Guidance weights (B,) after a replan interval from positions ``last`` (B, 2) to observations ``obs``
        (B, 4): each env that stalled (``PlannerConfig.stall_decay``) has its weight multiplied by the decay."""
        from dforce_datasets.maze2d.env import GOAL_RADIUS  # the sparse reward's radius (D4RL: 0.5)

        c = self.config
        if c.stall_decay is None:
            return weights
        pos = np.asarray(obs, dtype=np.float64)[:, :2]  # (B, 2)
        moved = np.linalg.norm(pos - last, axis=-1)  # (B,)
        away = np.linalg.norm(pos - np.asarray(goals, dtype=np.float64), axis=-1)  # (B,)
        stalled = (moved < c.stall_distance) & (away > GOAL_RADIUS)  # (B,): a ball held at the goal is not stalled
        return np.where(stalled, weights * c.stall_decay, weights)

    def near_due(self, obs: np.ndarray, goals: np.ndarray, born: np.ndarray, t: int) -> np.ndarray:
        """Envs (B,) bool that plan again at step t between scheduled replans: within ``replan_near`` of the goal
        and ``replan_near_every`` steps or more since their rows were planned (``born``, (B,) env steps)."""
        c = self.config
        if c.replan_near is None:
            return np.zeros(len(born), dtype=bool)
        away = np.linalg.norm(np.asarray(obs, dtype=np.float64)[:, :2] - np.asarray(goals, dtype=np.float64), axis=-1)
        return (away <= c.replan_near) & (t - np.asarray(born) >= c.replan_near_every)  # (B,)

    def needs_replan(self, plan: Plan | None, t: int) -> bool:
        """Whether to plan at env step t."""
        if plan is None:
            return True
        if self.config.controller == "actions" and t - plan.t0 >= plan.length:
            return True  # own actions have run out (a plan-once Diffuser's fixed horizon): plan again, never PD
        every = self.config.replan_every
        return every is not None and t - plan.t0 >= every


class GoalPD(Planner):
    """No model: the "plan" is the goal itself (position, zero velocity), so ``act`` is PD straight at the goal."""

    def __init__(self, maze: str, config: PlannerConfig | None = None) -> None:
        config = config or PlannerConfig(method="goal_pd", controller="pd", guidance_scale=0.0, mc_samples=1)
        if config.method != "goal_pd":
            raise ValueError(f"GoalPD needs method 'goal_pd', got {config.method!r}")
        if maze.removeprefix("multi-").removeprefix("eval-") not in EPISODE_STEPS:
            raise ValueError(f"unknown maze {maze!r}; choose one of {sorted(EPISODE_STEPS)}")
        self.model = None
        self.spec = None
        self.config = config
        self.maze = maze

    @property
    def episode_steps(self) -> int:
        """The episode length of the maze."""
        return EPISODE_STEPS[self.maze.removeprefix("multi-").removeprefix("eval-")]

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def horizon_steps(self, steps_left: int) -> int:
        """One step: the goal, held for the rest of the episode."""
        return 1

    def plan(self, obs: np.ndarray, goals: np.ndarray, steps_left: int, t0: int = 0,
             generator: torch.Generator | None = None, guidance_weights: np.ndarray | None = None) -> Plan:
        """The goal as a one-step plan for observations (B, 4) and goals (B, 2) (no guidance to weigh)."""
        obs, goals = np.asarray(obs, dtype=np.float64), np.asarray(goals, dtype=np.float64)
        if obs.ndim != 2 or obs.shape[1] != OBS_DIM or goals.shape != (obs.shape[0], 2):
            raise ValueError(f"plan expects obs (B, 4) and goals (B, 2), got {obs.shape}, {goals.shape}")
        zeros = np.zeros_like(goals)[:, None]  # (B, 1, 2)
        return Plan(positions=goals[:, None].copy(), velocities=zeros, actions=zeros.copy(), t0=t0)
