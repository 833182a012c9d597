"""D4RL's random start states and random targets, drawn from a numpy Generator or a legacy RandomState."""

from __future__ import annotations

import numpy as np

from .layouts import MazeLayout


def sample_start(rng, layout: MazeLayout) -> tuple[np.ndarray, np.ndarray]:
    """D4RL reset_model: a cell from the sorted empty cells + goal, qpos = cell + U(-0.1, 0.1), qvel = N(0, 0.1^2)."""
    cells = layout.reset_cells
    cell = np.array(cells[rng.choice(len(cells))], dtype=np.float64)
    qpos = cell + rng.uniform(low=-0.1, high=0.1, size=2)
    qvel = np.zeros(2) + rng.standard_normal(2) * 0.1
    return qpos, qvel


def sample_target(rng, layout: MazeLayout) -> np.ndarray:
    """D4RL set_target() with no argument: a random empty or goal cell + U(-0.1, 0.1) (the Multi2D goal)."""
    cells = layout.reset_cells
    cell = np.array(cells[rng.choice(len(cells))], dtype=np.float64)
    return cell + rng.uniform(low=-0.1, high=0.1, size=2)
