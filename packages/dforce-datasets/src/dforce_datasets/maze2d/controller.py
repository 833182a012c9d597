"""D4RL's maze2d waypoint controller: grid Q-iteration (hard max), waypoint rollout with jitter, PD control."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .layouts import MazeLayout, get_layout, gridify

# Grid actions in D4RL's gridcraft order: NOOP, UP, DOWN, LEFT, RIGHT as (d_row, d_col). argmax ties go to the
# lowest index, so this order decides the path whenever two moves are equally good.
GRID_MOVES = np.array([(0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)], dtype=np.int64)
Q_ITERATIONS = 50
DISCOUNT = 0.99
MAX_WAYPOINTS = 100
JITTER = 0.2


@dataclass(frozen=True)
class ControllerGains:
    """PD gains and thresholds of D4RL's WaypointController."""

    p_gain: float = 10.0
    d_gain: float = -1.0
    solve_thresh: float = 0.1
    vel_thresh: float = 0.1

    def __post_init__(self):
        if self.solve_thresh <= 0 or self.vel_thresh <= 0:
            raise ValueError("solve_thresh and vel_thresh must be positive")


class GridPlanner:
    """Tabular Q-iteration on the maze grid and the greedy waypoint rollout (gridcraft semantics)."""

    def __init__(self, maze: str | MazeLayout):
        self.layout = get_layout(maze)
        self.walls = np.array(self.layout.walls, dtype=bool)  # mutable: D4RL's grid forgets a wall it targeted

    def transitions(self) -> np.ndarray:
        """(rows * cols, 5) next cell index per move; a move off the grid or into a wall is a NOOP."""
        rows, cols = self.walls.shape
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        r, c = r.ravel(), c.ravel()
        nxt = np.empty((rows * cols, len(GRID_MOVES)), dtype=np.int64)
        for a, (dr, dc) in enumerate(GRID_MOVES):
            nr, nc = r + dr, c + dc
            inside = (nr >= 0) & (nr < rows) & (nc >= 0) & (nc < cols)
            legal = inside.copy()
            legal[inside] = ~self.walls[nr[inside], nc[inside]]
            nxt[:, a] = np.where(legal, nr * cols + nc, r * cols + c)
        return nxt

    def q_values(self, target: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Hard-max Q-iteration (50 sweeps, discount 0.99, reward 1 while in the target cell): (Q, transitions)."""
        rows, cols = self.walls.shape
        self.walls[target] = False  # the target tile is REWARD during planning and EMPTY afterwards
        nxt = self.transitions()
        reward = np.zeros(rows * cols)
        reward[target[0] * cols + target[1]] = 1.0
        q = np.zeros((rows * cols, len(GRID_MOVES)))
        for _ in range(Q_ITERATIONS):
            q = reward[:, None] + DISCOUNT * q.max(axis=1)[nxt]
        return q, nxt

    def plan(self, start: tuple[int, int], target: tuple[int, int], rng) -> np.ndarray:
        """Waypoints (n, 2) from the start cell to the target cell; all but the target jittered by -U[0, 0.2)."""
        rows, cols = self.walls.shape
        for name, cell in (("start", start), ("target", target)):
            if not (0 <= cell[0] < rows and 0 <= cell[1] < cols):
                raise ValueError(f"{name} cell {cell} is outside the {rows}x{cols} maze")
        q, nxt = self.q_values(target)
        goal = target[0] * cols + target[1]
        s = start[0] * cols + start[1]
        waypoints = []
        for _ in range(MAX_WAYPOINTS):
            a = int(np.argmax(q[s]))
            rng.random()  # gridcraft's step_stateless samples its (deterministic) move: one uniform per step
            s = int(nxt[s, a])
            wp = np.array([s // cols, s % cols], dtype=np.float64)
            if s != goal:
                wp = wp - rng.uniform(size=2) * JITTER
            waypoints.append(wp)
            if s == goal:
                break
        return np.array(waypoints)


class WaypointController:
    """D4RL WaypointController: replans only when the gridified target changes; PD control toward waypoints."""

    def __init__(self, maze: str | MazeLayout, rng=None, gains: ControllerGains | None = None):
        self.planner = GridPlanner(maze)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.gains = gains or ControllerGains()
        # D4RL quirk: the initial stored target is (0, 0) (ONES = np.zeros(2)), and the previous location is 0.
        self.target_cell = np.zeros(2)
        self.waypoints = np.zeros((0, 2))
        self.waypoint_idx = 0
        self.prev_loc = np.zeros(2)

    def replan_needed(self, target) -> bool:
        """True when the gridified target differs from the stored one (norm > 1e-3)."""
        cell = gridify(target)
        return math.hypot(self.target_cell[0] - cell[0], self.target_cell[1] - cell[1]) > 1e-3

    def new_target(self, location, target) -> None:
        """Plan waypoints from the gridified location to the gridified target."""
        start, cell = gridify(location), gridify(target)
        self.waypoints = self.planner.plan(start, cell, self.rng)
        self.waypoint_idx = 0
        self.prev_loc = np.array(start, dtype=np.float64)
        self.target_cell = np.array(cell, dtype=np.float64)

    def get_action(self, location, velocity, target) -> tuple[np.ndarray, bool]:
        """(action clipped to [-1, 1], solved) for the current position, velocity and target."""
        if self.replan_needed(target):
            self.new_target(location, target)
        elif len(self.waypoints) == 0:
            raise ValueError("target cell (0, 0) hits D4RL's initial-target quirk: the controller never plans")
        g = self.gains
        lx, ly = float(location[0]), float(location[1])
        tx, ty = float(self.target_cell[0]), float(self.target_cell[1])
        dist = math.sqrt((lx - tx) * (lx - tx) + (ly - ty) * (ly - ty))
        dx, dy = float(self.prev_loc[0]) - lx, float(self.prev_loc[1]) - ly
        vel_norm = math.sqrt(dx * dx + dy * dy)
        not_solved = dist >= g.solve_thresh or vel_norm >= g.vel_thresh
        if not_solved:
            wx, wy = float(self.waypoints[self.waypoint_idx, 0]), float(self.waypoints[self.waypoint_idx, 1])
        else:
            wx, wy = tx, ty
        ax = g.p_gain * (wx - lx) + g.d_gain * float(velocity[0])
        ay = g.p_gain * (wy - ly) + g.d_gain * float(velocity[1])
        dist_wp = math.sqrt((lx - wx) * (lx - wx) + (ly - wy) * (ly - wy))
        if not_solved and dist_wp < g.solve_thresh and vel_norm < g.vel_thresh:
            # D4RL would index past the end only for unreachable targets; we stay on the last waypoint
            self.waypoint_idx = min(self.waypoint_idx + 1, len(self.waypoints) - 1)
        self.prev_loc = np.array([lx, ly])
        action = np.array([min(max(ax, -1.0), 1.0), min(max(ay, -1.0), 1.0)])
        return action, not not_solved
