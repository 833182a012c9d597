"""One MuJoCo maze2d simulation with D4RL's step order: clip action, clip qvel (written back), one mj_step."""

from __future__ import annotations

import numpy as np

from ._deps import require
from .dynamics import clip_action, clip_velocity
from .layouts import MazeLayout, get_layout
from .model import load_model


class MazeSim:
    """A maze2d point mass on the official MuJoCo bindings (exact D4RL maze2d-v1 dynamics)."""

    def __init__(self, maze: str | MazeLayout = "umaze"):
        self.mujoco = require("mujoco")
        self.layout = get_layout(maze)
        self.model = load_model(self.layout)
        self.data = self.mujoco.MjData(self.model)

    @property
    def qpos(self) -> np.ndarray:
        """Ball position (x, y) in qpos coordinates (a copy)."""
        return self.data.qpos.copy()

    @property
    def qvel(self) -> np.ndarray:
        """Ball velocity (a copy)."""
        return self.data.qvel.copy()

    def observation(self) -> np.ndarray:
        """[qpos_x, qpos_y, qvel_x, qvel_y] in float64."""
        return np.concatenate([self.data.qpos, self.data.qvel])

    def reset(self) -> None:
        """mj_resetData (zero state, zero warm start), as mujoco-py's sim.reset()."""
        self.mujoco.mj_resetData(self.model, self.data)

    def set_state(self, qpos, qvel) -> None:
        """Write qpos and qvel and recompute derived quantities (the warm start is kept, as in mujoco-py)."""
        qpos = np.asarray(qpos, dtype=np.float64)
        qvel = np.asarray(qvel, dtype=np.float64)
        if qpos.shape != (2,) or qvel.shape != (2,):
            raise ValueError(f"set_state expects qpos and qvel of shape (2,), got {qpos.shape} and {qvel.shape}")
        self.data.qpos[:] = qpos
        self.data.qvel[:] = qvel
        self.mujoco.mj_forward(self.model, self.data)

    def step(self, action) -> None:
        """D4RL MazeEnv.step physics: clip the action, clip qvel to +-5 in the state, then one mj_step."""
        a = clip_action(action)
        if a.shape != (2,):
            raise ValueError(f"action must have shape (2,), got {a.shape}")
        self.data.qvel[:] = clip_velocity(self.data.qvel)
        self.data.ctrl[:] = a
        self.mujoco.mj_step(self.model, self.data)

    def step_from(self, qpos, qvel, action, qacc_warmstart) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One mj_step from a given (already clipped) state and warm start; returns (qpos', qvel', qacc)."""
        d = self.data
        d.qpos[:] = qpos
        d.qvel[:] = qvel
        d.qacc_warmstart[:] = qacc_warmstart
        d.ctrl[:] = action
        self.mujoco.mj_step(self.model, d)
        return d.qpos.copy(), d.qvel.copy(), d.qacc_warmstart.copy()
