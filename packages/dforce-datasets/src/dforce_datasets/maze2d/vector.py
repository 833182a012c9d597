"""VectorMaze2d: N maze2d envs stepped together, closed form away from walls and MuJoCo at possible contacts."""

from __future__ import annotations

import numpy as np

from ._deps import require
from .dynamics import clip_velocity, free_step, near_wall
from .env import GOAL_RADIUS, REWARD_TYPES
from .layouts import MazeLayout, get_layout
from .sampling import sample_start, sample_target
from .sim import MazeSim


class VectorMaze2d:
    """N independent maze2d episodes with the same dynamics, resets and rewards as N single Maze2dEnv.

    Env i reset with seed s draws exactly what Maze2dEnv.reset(seed=s + i) draws. There is no autoreset:
    ``truncated`` turns True at ``max_episode_steps`` and stepping further raises until ``reset()``.
    """

    def __init__(self, maze: str | MazeLayout = "umaze", num_envs: int = 1, *, reward_type: str = "sparse",
                 multi_goal: bool = False, max_episode_steps: int | None = None, closed_form: bool = True):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {reward_type!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        self.layout = get_layout(maze)
        self.num_envs = num_envs
        self.reward_type = reward_type
        self.multi_goal = multi_goal
        self.max_episode_steps = max_episode_steps
        self.closed_form = closed_form
        self._sims = [MazeSim(self.layout) for _ in range(num_envs)]
        self._boxes = self.layout.wall_boxes()
        self.qpos = np.zeros((num_envs, 2))
        self.qvel = np.zeros((num_envs, 2))
        self._qacc = np.zeros((num_envs, 2))  # MuJoCo's warm start (the previous step's qacc)
        self.targets = np.tile(np.asarray(self.layout.default_target, dtype=np.float64), (num_envs, 1))
        self.elapsed = np.zeros(num_envs, dtype=np.int64)
        self._rngs = None
        self.mujoco_steps = 0  # how many env-steps needed MuJoCo (contact possible)

    def observations(self) -> np.ndarray:
        """(N, 4) float64 observations [x, y, vx, vy]."""
        return np.concatenate([self.qpos, self.qvel], axis=1)

    def reset(self, seed: int | None = None):
        """Reset every env (D4RL reset; Multi2D also draws targets). Returns (obs (N, 4), info)."""
        seeding = require("gymnasium").utils.seeding
        if seed is not None or self._rngs is None:
            self._rngs = [seeding.np_random(None if seed is None else seed + i)[0] for i in range(self.num_envs)]
        for i, rng in enumerate(self._rngs):
            self.qpos[i], self.qvel[i] = sample_start(rng, self.layout)
            if self.multi_goal:
                self.targets[i] = sample_target(rng, self.layout)
        self._qacc[:] = 0.0  # mj_resetData zeroes the warm start
        self.elapsed[:] = 0
        return self.observations(), {"target": self.targets.copy()}

    def set_state(self, qpos, qvel) -> None:
        """Set all states: qpos and qvel of shape (N, 2)."""
        qpos, qvel = np.asarray(qpos, dtype=np.float64), np.asarray(qvel, dtype=np.float64)
        if qpos.shape != (self.num_envs, 2) or qvel.shape != (self.num_envs, 2):
            raise ValueError(f"set_state expects qpos and qvel of shape ({self.num_envs}, 2)")
        self.qpos[:], self.qvel[:] = qpos, qvel

    def set_targets(self, targets) -> None:
        """Set all goals: shape (N, 2)."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (self.num_envs, 2):
            raise ValueError(f"targets must have shape ({self.num_envs}, 2), got {targets.shape}")
        self.targets[:] = targets

    def step(self, actions):
        """Step all envs with actions (N, 2). Returns obs, rewards, terminated (all False), truncated, info."""
        a = np.clip(np.asarray(actions, dtype=np.float64), -1.0, 1.0)
        if a.shape != (self.num_envs, 2):
            raise ValueError(f"actions must have shape ({self.num_envs}, 2), got {a.shape}")
        if self.max_episode_steps is not None and (self.elapsed >= self.max_episode_steps).any():
            raise ValueError("an episode reached max_episode_steps; call reset() before stepping again")
        qvel = clip_velocity(self.qvel)
        contact = near_wall(self.qpos, self._boxes) if self.closed_form else np.ones(self.num_envs, dtype=bool)
        new_qpos, new_qvel, qacc = free_step(self.qpos, qvel, a)
        for i in np.flatnonzero(contact):
            new_qpos[i], new_qvel[i], qacc[i] = self._sims[i].step_from(self.qpos[i], qvel[i], a[i], self._qacc[i])
        self.mujoco_steps += int(contact.sum())
        self.qpos, self.qvel, self._qacc = new_qpos, new_qvel, qacc
        self.elapsed += 1
        dist = np.linalg.norm(self.qpos - self.targets, axis=1)
        rewards = (dist <= GOAL_RADIUS).astype(np.float64) if self.reward_type == "sparse" else np.exp(-dist)
        truncated = (self.elapsed >= self.max_episode_steps) if self.max_episode_steps is not None \
            else np.zeros(self.num_envs, dtype=bool)
        info = {"success": dist <= GOAL_RADIUS}
        return self.observations(), rewards, np.zeros(self.num_envs, dtype=bool), truncated, info
