"""D4RL's maze2d dataset generator: one continuous waypoint-controller walk with random goal switches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .controller import MAX_WAYPOINTS, ControllerGains, GridPlanner, WaypointController
from .layouts import MazeLayout, get_layout, gridify
from .registration import get_task
from .sampling import sample_start, sample_target
from .sim import MazeSim

DEFAULT_STEPS = {"umaze": 1_000_000, "medium": 2_000_000, "large": 4_000_000}
NOISE_STD = 0.5


@dataclass
class Maze2dData:
    """A generated walk (float64) with D4RL's fields; `timeouts` marks goal switches (solved or time limit)."""

    observations: np.ndarray  # (N, 4) the state the controller acted on (duplicated at goal switches)
    actions: np.ndarray  # (N, 2)
    goals: np.ndarray  # (N, 2) infos/goal: the target being pursued
    timeouts: np.ndarray  # (N,) bool: D4RL's `done` (goal reached or max_episode_steps), the released timeouts
    qpos: np.ndarray  # (N, 2) infos/qpos: the simulator state when the action was taken
    qvel: np.ndarray  # (N, 2) infos/qvel
    maze: str = "umaze"
    metadata: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.observations)


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate: maze, number of steps, seed, action noise and the goal-switch time limit."""

    maze: str = "umaze"
    steps: int | None = None  # None: D4RL's sizes, 1M / 2M / 4M for umaze / medium / large
    seed: int = 0
    noisy: bool = False  # D4RL --noisy: add N(0, 0.5^2) to every action before the clip
    max_episode_steps: int | None = None  # None: the task's limit (300 / 600 / 800)
    dwell: int = 0  # not in D4RL: after reaching each goal, hold it for U{0..dwell} more solved steps

    def __post_init__(self):
        get_task(self.maze)
        if self.dwell < 0:
            raise ValueError(f"dwell must be >= 0 steps, got {self.dwell}")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {self.max_episode_steps}")

    @property
    def n_steps(self) -> int:
        """Number of transitions to generate."""
        return self.steps if self.steps is not None else DEFAULT_STEPS.get(get_task(self.maze).maze, 1_000_000)

    @property
    def time_limit(self) -> int:
        """Steps after which the walk switches goal even if unsolved."""
        return self.max_episode_steps or get_task(self.maze).max_episode_steps


def _streams(seed: int):
    """Independent generators for the env (start, targets), the controller (jitter), the action noise and dwells.

    The first three children do not depend on how many are spawned, so adding the dwell stream left the D4RL-like
    walks (dwell 0) unchanged."""
    seqs = np.random.SeedSequence(seed).spawn(4)
    return tuple(np.random.Generator(np.random.PCG64(s)) for s in seqs)


def _draw_dwell(rng: np.random.Generator, config: GenerateConfig) -> int:
    """Solved steps to hold the next goal for: U{0..dwell}, and 0 (no draw) for D4RL's walk."""
    return int(rng.integers(0, config.dwell + 1)) if config.dwell > 0 else 0


def _empty(n: int, maze: str, config: GenerateConfig) -> Maze2dData:
    return Maze2dData(np.zeros((n, 4)), np.zeros((n, 2)), np.zeros((n, 2)), np.zeros(n, dtype=bool),
                      np.zeros((n, 2)), np.zeros((n, 2)), maze=maze,
                      metadata={"generator": "dforce_datasets.maze2d", "seed": config.seed, "noisy": config.noisy,
                                "max_episode_steps": config.time_limit, "dwell": config.dwell})


def generate_reference(config: GenerateConfig) -> Maze2dData:
    """The walk with the MuJoCo env and the Python controller at every step (slow; the ground truth for tests)."""
    from .env import maze2d_env_class

    task = get_task(config.maze)
    env_rng, ctrl_rng, noise_rng, dwell_rng = _streams(config.seed)
    env = maze2d_env_class()(maze=task.maze)
    env.np_random = env_rng
    controller = WaypointController(task.maze, rng=ctrl_rng)
    n = config.n_steps
    out = _empty(n, task.maze, config)
    env.set_target()
    s, _ = env.reset()
    ts, dwell = 0, _draw_dwell(dwell_rng, config)
    for i in range(n):
        act, solved = controller.get_action(s[:2], s[2:], env.get_target())
        if config.noisy:
            act = act + noise_rng.standard_normal(2) * NOISE_STD
        act = np.clip(act, -1.0, 1.0)
        if solved and dwell > 0:
            dwell, solved = dwell - 1, False
        done = solved or ts >= config.time_limit
        out.observations[i], out.actions[i], out.goals[i], out.timeouts[i] = s, act, env.get_target(), done
        out.qpos[i], out.qvel[i] = env.sim.qpos, env.sim.qvel
        ns, *_ = env.step(act)
        ts += 1
        if done:
            env.set_target()
            ts, dwell = 0, _draw_dwell(dwell_rng, config)
        else:
            s = ns
    return out


def generate(config: GenerateConfig, progress: Callable[[int], None] | None = None) -> Maze2dData:
    """The same walk as generate_reference, fast: numba closed-form physics away from walls, MuJoCo near them."""
    from . import _walk

    task = get_task(config.maze)
    layout: MazeLayout = get_layout(task.maze)
    env_rng, ctrl_rng, noise_rng, dwell_rng = _streams(config.seed)
    n = config.n_steps
    out = _empty(n, task.maze, config)
    planner = GridPlanner(layout)
    sim = MazeSim(layout)
    gains_cfg = ControllerGains()
    gains = np.array([gains_cfg.p_gain, gains_cfg.d_gain, gains_cfg.solve_thresh, gains_cfg.vel_thresh])
    noise = noise_rng.standard_normal((n, 2)) if config.noisy else np.zeros((1, 2))
    target = sample_target(env_rng, layout)
    qpos, qvel = sample_start(env_rng, layout)
    s = np.concatenate([qpos, qvel])
    state = np.concatenate([qpos, qvel, np.zeros(2)])  # qpos, qvel, MuJoCo warm start (zero after reset)
    ctrl = np.zeros(6)  # target cell (D4RL's initial (0, 0)), previous location, pending action
    wps = np.zeros((MAX_WAYPOINTS, 2))
    ist = np.zeros(_walk.N_INT_SLOTS, dtype=np.int64)
    ist[_walk.I_DWELL] = _draw_dwell(dwell_rng, config)
    boxes = layout.wall_boxes()
    counts = {"mujoco_steps": 0, "replans": 0, "goal_switches": 0}
    last_report = 0
    while True:
        code = _walk.walk(n, config.time_limit, gains, noise, NOISE_STD if config.noisy else 0.0, boxes, s, state,
                          target, ctrl, wps, ist, out.observations, out.actions, out.goals, out.timeouts, out.qpos,
                          out.qvel)
        if code == _walk.FINISHED:
            break
        if code == _walk.REPLAN:
            start, cell = gridify(s[:2]), gridify(target)
            waypoints = planner.plan(start, cell, ctrl_rng)
            wps[: len(waypoints)] = waypoints
            ist[_walk.I_NWP], ist[_walk.I_WP] = len(waypoints), 0
            ctrl[_walk.C_PREV: _walk.C_PREV + 2] = start
            ctrl[_walk.C_TGT: _walk.C_TGT + 2] = cell
            counts["replans"] += 1
        elif code == _walk.PHYSICS:
            new_qpos, new_qvel, qacc = sim.step_from(state[:2], state[2:4], ctrl[_walk.C_ACT:], state[4:])
            state[:2], state[2:4], state[4:] = new_qpos, new_qvel, qacc
            ist[_walk.I_PHASE] = 2
            counts["mujoco_steps"] += 1
        elif code == _walk.NEW_TARGET:
            target[:] = sample_target(env_rng, layout)
            ist[_walk.I_DWELL] = _draw_dwell(dwell_rng, config)
            counts["goal_switches"] += 1
        if progress is not None and ist[_walk.I_STEP] - last_report >= 100_000:
            last_report = int(ist[_walk.I_STEP])
            progress(last_report)
    out.metadata.update(counts)
    return out
