"""maze2d physics away from walls in closed form, bit-identical to MuJoCo's Euler step with implicit damping."""

from __future__ import annotations

import numpy as np

from .model import CONTACT_MARGIN, GEAR, MASS, MAX_SPEED, RADIUS, TIMESTEP

# MuJoCo solves (m + h*damping) qacc = -damping*v + gear*a with the inverse diagonal, then v' = v + h*qacc and
# x' = x + h*v'. These exact operations reproduce mj_step bit for bit whenever no contact is active.
INV_MASS_H = 1.0 / (MASS + TIMESTEP)
INV_MASS = 1.0 / MASS
# A contact exists in MuJoCo only when the ball surface is closer than the summed margin (0.002) to a wall box;
# below this centre-to-box distance a step goes to MuJoCo (the 1e-3 slack makes the test conservative).
CONTACT_RADIUS = RADIUS + CONTACT_MARGIN + 1e-3


def clip_action(action) -> np.ndarray:
    """D4RL's action clip to [-1, 1], kept in float64."""
    return np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)


def clip_velocity(qvel: np.ndarray) -> np.ndarray:
    """D4RL's velocity clip to [-5, 5], applied before every step."""
    return np.clip(qvel, -MAX_SPEED, MAX_SPEED)


def free_step(qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One contact-free step from a clipped velocity: (qpos', qvel', qacc) for any leading batch shape."""
    force = -qvel + GEAR * action
    new_qvel = qvel + TIMESTEP * (force * INV_MASS_H)
    new_qpos = qpos + TIMESTEP * new_qvel
    return new_qpos, new_qvel, force * INV_MASS  # qacc is what MuJoCo keeps as the next warm start


def wall_distance(qpos: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Distance from ball centres (..., 2) to the nearest wall rectangle [x_lo, y_lo, x_hi, y_hi] (n, 4)."""
    p = np.asarray(qpos, dtype=np.float64)[..., None, :]
    lo, hi = boxes[:, :2], boxes[:, 2:]
    gap = np.maximum(np.maximum(lo - p, p - hi), 0.0)
    return np.sqrt((gap**2).sum(-1)).min(-1)


def near_wall(qpos: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """True where a wall contact is possible this step, so the step must go through MuJoCo."""
    return wall_distance(qpos, boxes) < CONTACT_RADIUS
