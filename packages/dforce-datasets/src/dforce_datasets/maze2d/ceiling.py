"""How high can a maze2d score go? A kinematic bound on any policy's return, and a map-aware oracle controller.

Not part of D4RL. The D4RL normalized score puts the waypoint controller's return at 100 (REF_MAX), and planners
report scores above it (the paper's Table 1: 116.7 / 149.4 / 159.0). Two references make such numbers readable:

* ``return_bound``: an upper bound on the return of *any* policy from a given start state. Each velocity
  component is clipped to +-5 before a step and an action of at most 1 adds at most ``SPEED_GAIN`` to it, so a
  step moves each coordinate by at most ``TIMESTEP * (min(|v|, 5) * DAMPING_KEEP + SPEED_GAIN)``. The ball must
  cover at least the Chebyshev-metric shortest path from the start to the goal disc (radius 0.5) through the free
  space before its first reward, and can at best collect one reward per step from then on. The free space is
  taken with half the ball's clearance from the walls and the path may not cut wall corners only on the grid's
  scale, so the bound is loose by a few steps per corner, never tight the wrong way (the tests check the oracle
  against it episode by episode).
* ``GeodesicOracle``: a controller that knows the map and the goal: it drives along the shortest path (the
  Euclidean geodesic field of ``geodesic``, kept away from the walls), as fast as it can stop in time, and holds
  the goal. Its score is what a policy that plans perfectly but drives simply achieves; between it and the
  bound lies what better driving could add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .dynamics import wall_distance
from .env import GOAL_RADIUS
from .geodesic import _MOVES, _dijkstra, distance_field, free_grid
from .layouts import MazeLayout, get_layout
from .model import GEAR, MASS, MAX_SPEED, RADIUS, TIMESTEP

# One Euler step with implicit damping (dynamics.free_step): v' = v (1 - h / (m + h)) + a * h * gear / (m + h).
SPEED_GAIN = TIMESTEP * GEAR / (MASS + TIMESTEP)  # most speed one step adds per coordinate (|a| <= 1): 0.2382
DAMPING_KEEP = 1.0 - TIMESTEP / (MASS + TIMESTEP)  # fraction of the speed kept through damping per step
BOUND_CLEARANCE = RADIUS / 2  # the bound's free space: half the ball's clearance (generous to any policy)


def step_reach(speed0: np.ndarray, steps: int) -> np.ndarray:
    """Most distance per coordinate covered after 1..steps steps from per-coordinate speed ``speed0`` (N,) -> (N, steps)."""
    speed = np.asarray(speed0, dtype=np.float64).copy()  # (N,)
    out = np.empty((speed.shape[0], steps))
    total = np.zeros_like(speed)
    for k in range(steps):
        speed = np.minimum(speed, MAX_SPEED) * DAMPING_KEEP + SPEED_GAIN  # (N,) after step k + 1
        total = total + TIMESTEP * speed
        out[:, k] = total
    return out


def chebyshev_to_goal(maze: str | MazeLayout, goal, radius: float = GOAL_RADIUS,
                      resolution: float = 0.05) -> tuple[tuple[float, float], np.ndarray]:
    """(origin, values): the Chebyshev-metric shortest free path from every grid node to the goal disc."""
    layout = get_layout(maze)
    origin, free = free_grid(layout, resolution, clearance=BOUND_CLEARANCE)
    nx, ny = free.shape
    gx = origin[0] + resolution * np.arange(nx)  # (nx,)
    gy = origin[1] + resolution * np.arange(ny)  # (ny,)
    inside = ((gx[:, None] - goal[0]) ** 2 + (gy[None, :] - goal[1]) ** 2 <= radius**2) & free  # (nx, ny)
    seeds = np.flatnonzero(inside.reshape(-1)).astype(np.int64)
    if seeds.size == 0:
        raise ValueError(f"no free grid node within {radius} of the goal {tuple(goal)}")
    values = _dijkstra(free, seeds, np.zeros(seeds.size), float(resolution), 1e6, _MOVES, 1.0)
    return origin, values


def arrival_bound(maze: str | MazeLayout, qpos, qvel, goals, resolution: float = 0.05) -> np.ndarray:
    """Fewest steps (N,) after which any policy can first be inside the goal disc, from states (N, 2) and goals (N, 2).

    1 means the first step can already be rewarded. Fields are computed once per distinct goal.
    """
    qpos, qvel, goals = (np.asarray(v, dtype=np.float64).reshape(-1, 2) for v in (qpos, qvel, goals))
    if not qpos.shape == qvel.shape == goals.shape:
        raise ValueError(f"qpos, qvel and goals must all be (N, 2), got {qpos.shape}, {qvel.shape}, {goals.shape}")
    n = qpos.shape[0]
    need = np.zeros(n)  # Chebyshev distance still to cover, minus the lookup slack
    for goal in np.unique(goals, axis=0):
        rows = np.flatnonzero((goals == goal).all(axis=1))
        origin, values = chebyshev_to_goal(maze, goal, resolution=resolution)
        g = (qpos[rows] - np.asarray(origin)) / resolution  # (n, 2) grid coordinates
        i = np.clip(np.floor(g[:, 0]).astype(int), 0, values.shape[0] - 2)
        j = np.clip(np.floor(g[:, 1]).astype(int), 0, values.shape[1] - 2)
        corners = np.stack([values[i + a, j + b] for a in (0, 1) for b in (0, 1)], axis=1)  # (n, 4)
        # every corner node lies within one grid step (L-inf) of the start: the start's distance is at least the
        # nearest corner's minus that step
        need[rows] = np.maximum(corners.min(axis=1) - resolution, 0.0)
    inside = np.linalg.norm(qpos - goals, axis=1) <= GOAL_RADIUS
    max_steps = int(math.ceil(need.max() / (TIMESTEP * MAX_SPEED))) + 50 if n else 1
    reach = step_reach(np.abs(qvel).max(axis=1), max_steps)  # (N, max_steps)
    steps = 1 + (reach < need[:, None]).sum(axis=1)  # first step whose reach covers the distance
    return np.where(inside | (need <= 0), 1, steps)


def return_bound(maze: str | MazeLayout, qpos, qvel, goals, horizon: int) -> np.ndarray:
    """Most raw sparse return (N,) any policy can collect in ``horizon`` steps: one reward per step from arrival."""
    first = arrival_bound(maze, qpos, qvel, goals)
    return np.maximum(horizon - first + 1, 0).astype(np.float64)


@dataclass
class OracleConfig:
    """Driving of ``GeodesicOracle``; the defaults were chosen on held-out seeds (tools/bench/maze_ceiling.py)."""

    top_speed: float = 5.0  # world units / s (the velocity clip is 5 per coordinate)
    brake: float = 15.0  # world units / s^2 planned deceleration toward the goal (the most is about 23.8)
    lookahead: float = 0.6  # world units along the shortest path to aim at
    corner_speed: float = 2.0  # speed when the path ahead turns by 90 degrees or more
    hold_gain: float = 8.0  # 1 / s: velocity toward the goal per unit distance once at it
    clearance: float = 0.25  # how far from the walls the driven path keeps (ball centre to wall)


class GeodesicOracle:
    """Map-aware controller for N envs of one maze: follow the shortest path to each goal, stop, and hold the goal."""

    def __init__(self, maze: str | MazeLayout, goals, config: OracleConfig | None = None) -> None:
        self.layout = get_layout(maze)
        self.config = config or OracleConfig()
        self.goals = np.asarray(goals, dtype=np.float64).reshape(-1, 2)  # (N, 2)
        unique, self._which = np.unique(self.goals, axis=0, return_inverse=True)  # (G, 2), (N,)
        self._which = self._which.reshape(-1)
        tables = []
        for goal in unique:
            field = distance_field(self.layout, goal, wall_cost=20.0, clearance=self.config.clearance)
            gx, gy = np.gradient(field.values, field.step)  # (nx, ny) each
            tables.append(np.stack([field.values, gx, gy], axis=-1))  # (nx, ny, 3)
        self._table = np.stack(tables)  # (G, nx, ny, 3): distance and its gradient per goal
        self._origin, self._step = np.asarray(field.origin), field.step
        self._boxes = self.layout.wall_boxes()

    def _lookup(self, xy: np.ndarray) -> np.ndarray:
        """Bilinear (distance, d/dx, d/dy) (N, 3) of each env's goal field at positions (N, 2)."""
        _, nx, ny, _ = self._table.shape
        g = np.clip((xy - self._origin) / self._step, 0.0, [nx - 1.0, ny - 1.0])  # (N, 2) grid coordinates
        i = np.minimum(np.floor(g[:, 0]).astype(int), nx - 2)
        j = np.minimum(np.floor(g[:, 1]).astype(int), ny - 2)
        fx, fy = (g[:, 0] - i)[:, None], (g[:, 1] - j)[:, None]
        t, w = self._table, self._which
        return ((1 - fx) * (1 - fy) * t[w, i, j] + fx * (1 - fy) * t[w, i + 1, j]
                + (1 - fx) * fy * t[w, i, j + 1] + fx * fy * t[w, i + 1, j + 1])

    def _trace(self, xy: np.ndarray, length: float, step: float = 0.05) -> np.ndarray:
        """Points (N, 2) reached by descending each env's goal field ``length`` world units from ``xy`` (N, 2)."""
        p = xy.copy()
        for _ in range(max(1, int(round(length / step)))):
            grad = self._lookup(p)[:, 1:]  # (N, 2)
            p = p - step * grad / np.maximum(np.linalg.norm(grad, axis=1, keepdims=True), 1e-9)
        return p

    def act(self, obs) -> np.ndarray:
        """Actions (N, 2) in [-1, 1] for observations (N, 4)."""
        obs = np.asarray(obs, dtype=np.float64)
        if obs.shape != (self.goals.shape[0], 4):
            raise ValueError(f"expected observations of shape ({self.goals.shape[0]}, 4), got {obs.shape}")
        pos, vel = obs[:, :2], obs[:, 2:]
        c = self.config
        to_goal = self.goals - pos  # (N, 2)
        dist_goal = np.linalg.norm(to_goal, axis=1)  # (N,)
        path = np.maximum(self._lookup(pos)[:, 0], dist_goal)  # (N,) remaining path length
        near = self._trace(pos, c.lookahead)  # (N, 2)
        far = self._trace(near, c.lookahead)  # (N, 2)
        heading = near - pos
        heading /= np.maximum(np.linalg.norm(heading, axis=1, keepdims=True), 1e-9)  # (N, 2)
        ahead = far - near
        ahead /= np.maximum(np.linalg.norm(ahead, axis=1, keepdims=True), 1e-9)  # (N, 2)
        turn = np.clip(1.0 - (heading * ahead).sum(axis=1), 0.0, 1.0)  # (N,) 0 straight, 1 at a right angle
        speed = np.minimum(c.top_speed, np.sqrt(2.0 * c.brake * path))  # (N,) stop at the goal
        speed = np.minimum(speed, c.top_speed - turn * (c.top_speed - c.corner_speed))  # slow into corners
        at_goal = (dist_goal < 0.5 * GOAL_RADIUS)[:, None]
        target_vel = np.where(at_goal, to_goal * c.hold_gain, heading * speed[:, None])  # (N, 2)
        # velocity control: one step of full action changes the speed by SPEED_GAIN per coordinate
        return np.clip((target_vel - np.clip(vel, -MAX_SPEED, MAX_SPEED) * DAMPING_KEEP) / SPEED_GAIN, -1.0, 1.0)

    def wall_clearance(self, pos) -> np.ndarray:
        """Ball centre to the nearest wall (N,) (diagnostics: a value near RADIUS means contact)."""
        return wall_distance(np.asarray(pos, dtype=np.float64), self._boxes)
