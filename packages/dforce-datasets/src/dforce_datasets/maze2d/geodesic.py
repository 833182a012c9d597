"""Shortest-path (geodesic) distance to a goal through a maze's free space, on a fine grid of ball positions.

Not part of D4RL: a map-aware goal distance for guidance rewards. The Euclidean distance that the paper's reward
uses (reference §3.2) pulls plans straight through wall blocks; this one grows along the corridors, so its
gradient points the way a ball can actually go.

The grid covers the maze in qpos coordinates (x = row, y = column; a free cell (r, c) is centred at (r, c) and
the wall box of cell (r, c) spans (r, c) - 0.2 +- 0.5, the D4RL offset). A node is free when a ball centred there
clears every wall box by ``clearance`` (the ball radius by default). Dijkstra runs from the goal over the
8-neighbour grid: free-to-free moves cost their length (no corner cutting), moves into blocked nodes cost
``wall_cost`` times their length, and blocked nodes never lead back into free space. So inside free space the
field is the shortest free path (up to the grid's octile metric, at most 8% long), whatever ``wall_cost`` is, and
inside a wall it is the cost of the way out plus the free distance from there. With the default ``wall_cost`` 20
that pushes a point out of a wall by its nearest side first, with a gradient 20 times the free-space one; with
``wall_cost`` 1 the gradient has length 1 everywhere, like the straight-line distance's, and inside a wall it
points to the exit with the shorter total way (possibly across the wall).
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .dynamics import wall_distance
from .layouts import MazeLayout, get_layout
from .model import RADIUS

RESOLUTION = 0.05  # grid step in world units (20 nodes per maze cell)
WALL_COST = 20.0  # cost per unit length inside walls (best of 1 / 3 / 20 on held-out medium episodes, apps/planning)
GRID_ORIGIN = (-0.7, -0.7)  # qpos of node (0, 0): the low corner of wall cell (0, 0)

_MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)], dtype=np.int64)


@njit(cache=True)
def _dijkstra(free, seeds, seed_dist, step, wall_cost, moves, diagonal):  # pragma: no cover - compiled
    nx, ny = free.shape
    dist = np.full(nx * ny, np.inf)
    heap = [(0.0, np.int64(0))]  # numba types the heap from its first item: (distance, flat node index)
    heap.pop()
    for k in range(seeds.shape[0]):
        if seed_dist[k] < dist[seeds[k]]:
            dist[seeds[k]] = seed_dist[k]
            heapq.heappush(heap, (seed_dist[k], seeds[k]))
    while len(heap) > 0:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        ux, uy = u // ny, u % ny
        u_free = free[ux, uy]
        for m in range(moves.shape[0]):
            vx, vy = ux + moves[m, 0], uy + moves[m, 1]
            if vx < 0 or vx >= nx or vy < 0 or vy >= ny:
                continue
            is_diagonal = moves[m, 0] != 0 and moves[m, 1] != 0
            length = step * (diagonal if is_diagonal else 1.0)  # diagonal: sqrt(2) (Euclidean) or 1 (Chebyshev)
            if free[vx, vy]:
                if not u_free:
                    continue  # a wall never leads back into free space (no shortcuts through walls)
                if is_diagonal and not (free[ux + moves[m, 0], uy] and free[ux, uy + moves[m, 1]]):
                    continue  # no corner cutting
                cost = length
            else:
                cost = length * wall_cost
            v = vx * ny + vy
            if d + cost < dist[v]:
                dist[v] = d + cost
                heapq.heappush(heap, (d + cost, v))
    return dist.reshape(nx, ny)  # inf only on free islands the goal cannot reach


@dataclass(frozen=True)
class DistanceField:
    """Geodesic distance to ``goal`` on a grid: node (i, j) is the qpos ``origin + step * (i, j)``."""

    goal: tuple[float, float]
    origin: tuple[float, float]
    step: float
    values: np.ndarray = field(repr=False)  # (nx, ny) float64
    free: np.ndarray = field(repr=False)  # (nx, ny) bool

    def __call__(self, xy) -> np.ndarray:
        """The distance at positions (..., 2) (bilinear; off the grid it grows by ``WALL_COST`` per unit)."""
        import torch

        xy = torch.as_tensor(np.asarray(xy, dtype=np.float64))
        flat = xy.reshape(1, -1, 2)  # (1, P, 2)
        out = field_lookup(torch.as_tensor(self.values)[None], self.origin, self.step, flat)  # (1, P)
        return out.reshape(xy.shape[:-1]).numpy()


def field_lookup(values, origin: tuple[float, float], step: float, xy, wall_cost: float = WALL_COST):
    """Differentiable bilinear lookup of distance fields ``values`` (B, nx, ny) at torch positions ``xy`` (N, T, 2).

    Row n reads field n // (N / B), so Monte Carlo replicas of a goal's plan (rows b*R .. b*R + R-1) share it.
    Off the grid the value is the clamped edge value plus ``wall_cost`` times the L1 distance to the grid, so the
    gradient still points inward.
    """
    import torch

    b, nx, ny = values.shape
    n = xy.shape[0]
    if n % b:
        raise ValueError(f"{n} rows of positions cannot share {b} distance fields evenly")
    gx_raw = (xy[..., 0] - origin[0]) / step  # (N, T) grid units
    gy_raw = (xy[..., 1] - origin[1]) / step  # (N, T)
    gx, gy = gx_raw.clamp(0.0, nx - 1.0), gy_raw.clamp(0.0, ny - 1.0)  # (N, T)
    i = gx.detach().floor().long().clamp(max=nx - 2)  # (N, T)
    j = gy.detach().floor().long().clamp(max=ny - 2)  # (N, T)
    fx, fy = gx - i, gy - j  # (N, T) in [0, 1], carry the gradient
    row = (torch.arange(n, device=xy.device) // (n // b))[:, None] * (nx * ny)  # (N, 1) offset of each row's field
    flat = values.to(xy.dtype).reshape(-1)  # (B * nx * ny,)
    at = lambda di, dj: flat[row + (i + di) * ny + (j + dj)]  # noqa: E731  (N, T)
    inner = ((1 - fx) * (1 - fy) * at(0, 0) + fx * (1 - fy) * at(1, 0)
             + (1 - fx) * fy * at(0, 1) + fx * fy * at(1, 1))  # (N, T)
    outside = step * ((gx_raw - gx).abs() + (gy_raw - gy).abs())  # (N, T) L1 world units off the grid (0 on it)
    return inner + wall_cost * outside


def free_grid(maze: str | MazeLayout, resolution: float = RESOLUTION,
              clearance: float = RADIUS) -> tuple[tuple[float, float], np.ndarray]:
    """(origin, free): the grid over the whole maze (outer walls included) and where a ball centre fits."""
    if not resolution > 0:
        raise ValueError(f"resolution must be > 0 world units, got {resolution}")
    layout = get_layout(maze)
    rows, cols = layout.shape
    origin = GRID_ORIGIN
    nx, ny = int(round(rows / resolution)) + 1, int(round(cols / resolution)) + 1
    gx = origin[0] + resolution * np.arange(nx)  # (nx,)
    gy = origin[1] + resolution * np.arange(ny)  # (ny,)
    nodes = np.stack(np.meshgrid(gx, gy, indexing="ij"), axis=-1)  # (nx, ny, 2)
    free = wall_distance(nodes, layout.wall_boxes()) >= clearance  # (nx, ny)
    return origin, free


def distance_field(maze: str | MazeLayout, goal, resolution: float = RESOLUTION, wall_cost: float = WALL_COST,
                   clearance: float = RADIUS) -> DistanceField:
    """The geodesic distance field to ``goal`` (x, y in qpos units) for a maze (see the module docstring)."""
    goal = np.asarray(goal, dtype=np.float64)
    if goal.shape != (2,) or not np.all(np.isfinite(goal)):
        raise ValueError(f"goal must be a finite (x, y) position, got {goal!r}")
    if not wall_cost >= 1.0:
        raise ValueError(f"wall_cost must be >= 1 (moving inside a wall costs at least as much as outside), got {wall_cost}")
    origin, free = free_grid(maze, resolution, clearance)
    nx, ny = free.shape
    g = (goal - np.asarray(origin)) / resolution  # grid coordinates of the goal
    if not (0 <= g[0] <= nx - 1 and 0 <= g[1] <= ny - 1):
        raise ValueError(f"goal {tuple(goal)} lies outside the maze")
    i0, j0 = min(int(g[0]), nx - 2), min(int(g[1]), ny - 2)
    corners = np.array([(i0 + a, j0 + b) for a in (0, 1) for b in (0, 1)], dtype=np.int64)  # (4, 2)
    ok = free[corners[:, 0], corners[:, 1]]
    if not ok.any():  # a goal hard against a wall: start from the nearest free node instead
        cand = np.argwhere(free)
        corners = cand[np.argmin(((cand - g) ** 2).sum(-1))][None]
        ok = np.ones(1, dtype=bool)
    corners = corners[ok]
    seed_dist = resolution * np.sqrt(((corners - g) ** 2).sum(-1))  # (k,) world units to the goal
    values = _dijkstra(free, corners[:, 0] * ny + corners[:, 1], seed_dist, float(resolution), float(wall_cost),
                       _MOVES, math.sqrt(2.0))
    reached = np.isfinite(values)
    if not reached.all():  # free islands cut off from the goal: flat, at the largest distance found
        values = np.where(reached, values, values[reached].max())
    return DistanceField(goal=(float(goal[0]), float(goal[1])), origin=origin, step=float(resolution),
                         values=values, free=free)
