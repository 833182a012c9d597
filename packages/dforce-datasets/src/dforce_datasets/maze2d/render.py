"""Top-down RGB pictures of a maze2d simulation (MuJoCo offscreen rendering; set MUJOCO_GL=egl headless)."""

from __future__ import annotations

import numpy as np

from ._deps import require
from .model import BODY_OFFSET


class TopDownRenderer:
    """Render the maze from the 'topdown' camera with the target marker at its true position."""

    def __init__(self, model, width: int = 256, height: int = 256):
        if width < 1 or height < 1 or width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            raise ValueError(f"render size must be within 1..{model.vis.global_.offwidth} pixels, got {width}x{height}")
        self.mujoco = require("mujoco")
        self.model = model
        self.renderer = self.mujoco.Renderer(model, height=height, width=width)
        self.target_site = model.site("target_site").id

    def render(self, data, target) -> np.ndarray:
        """An (height, width, 3) uint8 image of the current state."""
        self.mujoco.mj_kinematics(self.model, data)  # positions only; leaves the dynamics state untouched
        # D4RL draws the marker at target + 1; we draw it where the reward is measured (qpos + body offset).
        data.site_xpos[self.target_site] = [target[0] + BODY_OFFSET, target[1] + BODY_OFFSET, 0.0]
        self.renderer.update_scene(data, camera="topdown")
        return self.renderer.render().copy()

    def close(self) -> None:
        """Free the GL context."""
        self.renderer.close()
