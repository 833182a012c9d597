"""Maze2dEnv: D4RL maze2d-v1 as a Gymnasium environment on the official MuJoCo bindings."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._deps import require
from .layouts import MazeLayout, get_layout
from .sampling import sample_start, sample_target
from .scores import REF_SCORES
from .sim import MazeSim

REWARD_TYPES = ("sparse", "dense")
GOAL_RADIUS = 0.5


def maze_reward(xy: np.ndarray, target: np.ndarray, reward_type: str = "sparse") -> float:
    """D4RL's reward: sparse 1.0 within 0.5 of the target, dense exp(-distance)."""
    dist = np.linalg.norm(xy - target)
    if reward_type == "sparse":
        return 1.0 if dist <= GOAL_RADIUS else 0.0
    return float(np.exp(-dist))


class Maze2dCore:
    """Everything of Maze2dEnv except the gymnasium.Env base (kept importable without gymnasium)."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 100}

    def __init__(self, maze: str | MazeLayout = "umaze", reward_type: str = "sparse", reset_target: bool = False,
                 render_mode: str | None = None, width: int | None = None, height: int | None = None,
                 ref_name: str | None = None, multi_goal: bool | None = None):
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {reward_type!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        spaces = require("gymnasium").spaces
        self.layout = get_layout(maze)
        self.sim = MazeSim(self.layout)
        self.reward_type = reward_type
        self.reset_target = reset_target if multi_goal is None else multi_goal  # Multi2D: new goal every reset
        self.render_mode = render_mode
        rows, cols = self.layout.shape
        self._size = (width or 40 * cols, height or 40 * rows)  # default: 40 pixels per cell, the maze's aspect
        self._renderer = None
        self.ref_name = ref_name
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._target = np.asarray(self.layout.default_target, dtype=np.float64)

    # ------------------------------------------------------------------ D4RL API
    @property
    def str_maze_spec(self) -> str:
        """The maze string (D4RL attribute name)."""
        return self.layout.spec

    @property
    def target(self) -> np.ndarray:
        """Current goal position (a copy)."""
        return self._target.copy()

    def get_target(self) -> np.ndarray:
        """Current goal position (D4RL name)."""
        return self.target

    def set_target(self, target=None) -> None:
        """Set the goal; None draws a random empty or goal cell + U(-0.1, 0.1), as D4RL's Multi2D goal."""
        if target is None:
            self._target = sample_target(self.np_random, self.layout)
            return
        target = np.asarray(target, dtype=np.float64)
        if target.shape != (2,):
            raise ValueError(f"target must have shape (2,), got {target.shape}")
        self._target = target.copy()

    def set_state(self, qpos, qvel) -> None:
        """Set the ball's position and velocity (D4RL / gym MujocoEnv.set_state)."""
        self.sim.set_state(qpos, qvel)

    def reset_to_location(self, location) -> np.ndarray:
        """D4RL reset_to_location: reset the simulation, put the ball at rest at `location`."""
        self.sim.reset()
        self.sim.set_state(np.asarray(location, dtype=np.float64), np.zeros(2))
        return self.sim.observation()

    def get_normalized_score(self, score: float) -> float:
        """D4RL normalized score (not x 100) against this task's references."""
        if self.ref_name is None or self.ref_name not in REF_SCORES:
            raise ValueError("this environment has no D4RL reference scores (make it through a registered id)")
        ref = REF_SCORES[self.ref_name]
        return (score - ref.ref_min) / (ref.ref_max - ref.ref_min)

    # ------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """D4RL reset: random start cell + U(-0.1, 0.1), velocity N(0, 0.1^2); Multi2D also draws a new target."""
        super().reset(seed=seed)
        self.sim.reset()
        qpos, qvel = sample_start(self.np_random, self.layout)
        self.sim.set_state(qpos, qvel)
        if self.reset_target:
            self.set_target()
        options = options or {}
        if "qpos" in options or "qvel" in options:
            self.sim.set_state(options.get("qpos", qpos), options.get("qvel", qvel))
        if options.get("target") is not None:
            self.set_target(options["target"])
        return self.sim.observation(), {"target": self.target}

    def step(self, action):
        """Clip the action, clip qvel to +-5, one mj_step; reward on the new observation; never terminates."""
        self.sim.step(action)
        obs = self.sim.observation()
        reward = maze_reward(obs[:2], self._target, self.reward_type)
        return obs, reward, False, False, {"success": bool(np.linalg.norm(obs[:2] - self._target) <= GOAL_RADIUS)}

    def render(self):
        """A top-down (height, width, 3) uint8 picture when render_mode='rgb_array'."""
        if self.render_mode is None:
            return None
        if self._renderer is None:
            from .render import TopDownRenderer

            self._renderer = TopDownRenderer(self.sim.model, *self._size)
        return self._renderer.render(self.sim.data, self._target)

    def close(self) -> None:
        """Free the renderer."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


_ENV_CLASS: type | None = None


def maze2d_env_class() -> type:
    """The gymnasium.Env subclass Maze2dEnv (built on first use so gymnasium is imported lazily)."""
    global _ENV_CLASS
    if _ENV_CLASS is None:
        gym = require("gymnasium")
        _ENV_CLASS = type("Maze2dEnv", (Maze2dCore, gym.Env),
                          {"__module__": __name__, "__qualname__": "Maze2dEnv",
                           "__doc__": "D4RL maze2d-v1 point-mass maze as a gymnasium.Env (exact dynamics)."})
    return _ENV_CLASS


def __getattr__(name: str):
    if name == "Maze2dEnv":
        return maze2d_env_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
