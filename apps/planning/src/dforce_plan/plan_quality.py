"""Plan quality without stepping the env: do a model's first plans stay out of the walls and reach the goal?

An episode's score mixes the model, the guidance and the controller. This check isolates the first two: it
samples the first plan of every seeded episode (the same starts and goals as ``evaluate`` at that seed) and
measures it against the maze. A plan goes "through a wall" when a ball centre on it, sampled between planned
positions as well, lies inside a wall box: no controller can follow it there. Guidance scale 0 measures the
model's prior alone (does it know the corridors?); the evaluation's scale measures what guidance does to it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .evaluate import EvalConfig, _free_name, _mean_sem
from .planner import Planner

SUBSTEPS = 4  # points checked per planned step (a fast plan moves up to 0.05 units a step; walls are 1 unit thick)


def inside_walls(path: np.ndarray, boxes: np.ndarray, substeps: int = SUBSTEPS) -> np.ndarray:
    """Per step of ``path`` (B, L + 1, 2): is the segment from the previous position into it inside a wall? (B, L).

    The segment is checked at ``substeps`` evenly spaced points ending at the step's position.
    """
    from dforce_datasets.maze2d.dynamics import wall_distance

    path = np.asarray(path, dtype=np.float64)
    if path.ndim != 3 or path.shape[-1] != 2 or path.shape[1] < 2:
        raise ValueError(f"path must be (B, L + 1, 2) with L >= 1, got {path.shape}")
    if substeps < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps}")
    frac = np.arange(1, substeps + 1) / substeps  # (S,) in (0, 1]
    a, b = path[:, :-1, None, :], path[:, 1:, None, :]  # (B, L, 1, 2)
    points = a + frac[None, None, :, None] * (b - a)  # (B, L, S, 2)
    return (wall_distance(points, boxes) == 0.0).any(-1)  # (B, L): a centre inside a box


def plan_metrics(starts: np.ndarray, positions: np.ndarray, goals: np.ndarray, boxes: np.ndarray,
                 goal_radius: float, geodesic=None, frame_stack: int | None = None) -> dict[str, np.ndarray]:
    """Per-plan measures for starts (B, 2), planned positions (B, L, 2), goals (B, 2) and wall boxes (n, 4).

    ``geodesic(i, xy)``, when given, is the shortest-path distance to goal i at positions (..., 2). With
    ``frame_stack`` fs, the plan's steps are split at its token boundaries: ``boundary_step`` is the median
    step into a token's first frame (from the start, or the previous token's last frame), ``inner_step`` the
    median step between frames of one token. A model whose tokens do not join up has the first well above the
    second (the walk data moves about 0.035 units a step either way).
    """
    path = np.concatenate([starts[:, None], positions], axis=1)  # (B, L + 1, 2)
    walls = inside_walls(path, boxes)  # (B, L)
    dist = np.linalg.norm(positions - goals[:, None], axis=-1)  # (B, L)
    inside = dist <= goal_radius  # (B, L)
    reaches = inside.any(1)  # (B,)
    first = np.where(reaches, inside.argmax(1), positions.shape[1])  # (B,) first planned step in the goal
    crossed_before = (walls & (np.arange(walls.shape[1]) <= first[:, None])).any(1)  # (B,) a wall by then
    clear = np.where(walls.any(1), walls.argmax(1), walls.shape[1])  # (B,) planned steps before the first wall
    out = {"through_wall": walls.any(1), "wall_frac": walls.mean(1), "steps_clear": clear, "reaches": reaches,
           "reaches_clean": reaches & ~crossed_before, "end_dist": dist[:, -1], "min_dist": dist.min(1)}
    if frame_stack is not None:
        if frame_stack < 2 or positions.shape[1] % frame_stack:
            raise ValueError(f"frame_stack must be >= 2 and divide the planned steps {positions.shape[1]}, "
                             f"got {frame_stack}")
        steps = np.linalg.norm(np.diff(path, axis=1), axis=-1)  # (B, L): step k ends at planned frame k
        first = np.arange(steps.shape[1]) % frame_stack == 0  # (L,): steps into a token's first frame
        out["boundary_step"] = np.median(steps[:, first], axis=1)  # (B,)
        out["inner_step"] = np.median(steps[:, ~first], axis=1)  # (B,)
    if geodesic is not None:
        out["end_geodesic"] = np.array([float(geodesic(i, positions[i, -1])) for i in range(len(positions))])
        out["start_geodesic"] = np.array([float(geodesic(i, starts[i])) for i in range(len(starts))])
    return out


def plan_quality(planner: Planner, cfg: EvalConfig, out_dir: str | Path | None = None,
                 tag: str | None = None) -> dict[str, Any]:
    """Sample the first plan of ``cfg.episodes`` seeded episodes and summarise ``plan_metrics`` (mean ± SE)."""
    from dforce_datasets.maze2d import VectorMaze2d, get_layout, get_task
    from dforce_datasets.maze2d.env import GOAL_RADIUS
    from dforce_datasets.maze2d.geodesic import distance_field

    task = get_task(cfg.env_id)
    n = cfg.episodes
    obs, info = VectorMaze2d(task.maze, n, multi_goal=cfg.multi).reset(seed=cfg.seed)
    goals = info["target"].copy()
    gen = torch.Generator(planner.device).manual_seed(cfg.seed)
    start = time.perf_counter()
    plan = planner.plan(obs, goals, task.max_episode_steps, t0=0, generator=gen)
    seconds = time.perf_counter() - start
    layout = get_layout(task.maze)
    fields: dict[tuple[float, float], Any] = {}
    for g in goals:
        key = (float(g[0]), float(g[1]))
        if key not in fields:
            fields[key] = distance_field(task.maze, key)  # path length through the corridors
    geo = lambda i, xy: fields[(float(goals[i, 0]), float(goals[i, 1]))](xy)  # noqa: E731
    per = plan_metrics(obs[:, :2], plan.positions, goals, layout.wall_boxes(), GOAL_RADIUS, geo,
                       frame_stack=planner.spec.frame_stack)
    summary: dict[str, Any] = {"env_id": cfg.env_id, "method": planner.config.method, "episodes": n,
                               "seed": cfg.seed, "plan_steps": plan.length, "plan_s": seconds}
    for key, values in per.items():
        mean, sem = _mean_sem(values.astype(np.float64))
        summary[key], summary[f"{key}_sem"] = mean, sem
    summary.update({"planner": planner.config.to_dict(), "model": planner.spec.to_dict()})
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        name = _free_name(out, tag or f"plans_{planner.config.method}_{'multi-' if cfg.multi else ''}{cfg.maze}")
        summary["name"] = name
        with (out / f"{name}_plans.jsonl").open("w", encoding="utf-8") as f:
            for i in range(n):
                row = {k: (bool(v[i]) if v.dtype == bool else float(v[i])) for k, v in per.items()}
                f.write(json.dumps({"episode": i, "seed": cfg.seed + i, "start": obs[i, :2].tolist(),
                                    "goal": goals[i].tolist(), **row}) + "\n")
        show = min(cfg.show, n)
        if show:
            from .plot import plot_episodes

            titles = [f"ep {i}: " + ("through a wall" if per["through_wall"][i] else "clear")
                      + (", reaches" if per["reaches"][i] else "") for i in range(show)]
            png = plot_episodes(out / f"{name}.png", layout, [obs[i : i + 1, :2] for i in range(show)],
                                [[plan.positions[i]] for i in range(show)], goals[:show], titles,
                                suptitle=f"first plans, {planner.config.method} scale {planner.config.guidance_scale:g}"
                                         f" on {cfg.env_id}: through a wall {100 * summary['through_wall']:.0f}%, "
                                         f"reach {100 * summary['reaches']:.0f}% "
                                         f"(clean {100 * summary['reaches_clean']:.0f}%)")
            summary["picture"] = str(png)
        (out / f"{name}_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
