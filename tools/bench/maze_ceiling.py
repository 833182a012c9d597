"""Score ceilings of maze2d: a map-aware oracle controller and a kinematic bound on any policy, per maze and task.

For each maze and task (single goal, Multi2D) it resets the same seeded episodes that `dforce-plan eval` uses
(episode i from seed --seed + i), runs `GeodesicOracle` (knows the map and the goal, drives the shortest path,
holds the goal) and computes `return_bound` (the most return any policy can collect from each start state:
dforce_datasets.maze2d.ceiling). It reports both as D4RL normalized scores x 100 beside the waypoint
controller's 100 (REF_MAX) and the paper's Table 1 figure, and also the paper's figure read as a raw return.
`--horizon` overrides the episode length (the authors' `paper:` code evaluates large for 600 steps, not 800).
Writes a bar chart per maze (`--out`); the last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from dforce_datasets.maze2d import REF_SCORES, VectorMaze2d, get_layout, get_task, normalized_score
from dforce_datasets.maze2d.ceiling import GeodesicOracle, OracleConfig, return_bound

PAPER_DF = {("umaze", False): 116.7, ("medium", False): 149.4, ("large", False): 159.0,
            ("umaze", True): 119.1, ("medium", True): 152.3, ("large", True): 167.1}  # reference §6.1


def evaluate(maze: str, multi: bool, episodes: int, seed: int, horizon: int | None,
             config: OracleConfig) -> dict:
    """Oracle returns and the bound on the same seeded episodes; one summary dict."""
    task = get_task(maze)
    steps = horizon or task.max_episode_steps
    env = VectorMaze2d(maze, episodes, multi_goal=multi, max_episode_steps=steps)
    obs, info = env.reset(seed=seed)
    goals = info["target"]
    bound = return_bound(maze, obs[:, :2], obs[:, 2:], goals, steps)  # (N,)
    oracle = GeodesicOracle(maze, goals, config)
    returns = np.zeros(episodes)
    first = np.full(episodes, -1)
    paths = [obs[:, :2].copy()]
    for t in range(steps):
        obs, reward, *_ = env.step(oracle.act(obs))
        returns += reward
        first[(first < 0) & (reward > 0)] = t + 1
        paths.append(obs[:, :2].copy())
    if np.any(returns > bound + 1e-9):  # the bound holds for every policy; an oracle above it is a bug
        raise RuntimeError(f"{maze}: the oracle beat the kinematic bound in episodes {np.flatnonzero(returns > bound)}")
    env_id = f"maze2d-{maze}-v1"
    norm = lambda raw: 100.0 * normalized_score(env_id, raw)  # noqa: E731
    ref = REF_SCORES[env_id]
    paper = PAPER_DF[(maze, multi)]
    sem = lambda x: float(np.std(x, ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")  # noqa: E731
    arrived = first > 0
    return {
        "maze": maze, "multi": multi, "episodes": episodes, "seed": seed, "horizon": steps,
        "oracle": {"normalized": norm(returns.mean()), "sem": 100.0 * sem(returns) / (ref.ref_max - ref.ref_min),
                   "raw": float(returns.mean()), "success": float(arrived.mean()),
                   "steps_to_goal_median": float(np.median(first[arrived])) if arrived.any() else None},
        "bound": {"normalized": norm(bound.mean()), "raw": float(bound.mean())},
        "waypoint_controller": 100.0,
        "paper_df": paper,
        "paper_df_as_raw_return": {"raw": paper, "normalized": norm(paper)},
        "paper_df_as_normalized": {"raw": ref.ref_min + paper / 100.0 * (ref.ref_max - ref.ref_min)},
        "config": vars(config),
        "_paths": np.stack(paths, axis=1),  # (N, steps + 1, 2), for the picture
        "_goals": goals,
    }


def plot(rows: list[dict], path: Path) -> Path:
    """One panel per maze: bars for the bound, the oracle, the waypoint controller and the paper's two readings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    mazes = list(dict.fromkeys(r["maze"] for r in rows))
    fig, axes = plt.subplots(2, len(mazes), figsize=(4.2 * len(mazes), 7.5), squeeze=False)
    for col, maze in enumerate(mazes):
        ax = axes[0, col]
        mine = [r for r in rows if r["maze"] == maze]
        labels = ["bound", "oracle", "waypoint\n(REF_MAX)", "paper DF\nas normalized", "paper DF\nas raw"]
        width = 0.38
        for k, r in enumerate(mine):
            vals = [r["bound"]["normalized"], r["oracle"]["normalized"], 100.0, r["paper_df"],
                    r["paper_df_as_raw_return"]["normalized"]]
            x = np.arange(len(vals)) + (k - (len(mine) - 1) / 2) * width
            ax.bar(x, vals, width, label="Multi2D" if r["multi"] else "single task",
                   color=["0.75", "tab:green", "0.45", "tab:blue", "tab:orange"], alpha=0.6 if r["multi"] else 1.0,
                   edgecolor="k", hatch="//" if r["multi"] else None)
            for xi, v in zip(x, vals, strict=True):
                ax.text(xi, v + 2, f"{v:.0f}", ha="center", fontsize=7)
        ax.set_xticks(np.arange(5), labels, fontsize=7)
        ax.set_title(f"{maze}, {mine[0]['horizon']} steps (hatched: Multi2D)", fontsize=9)
        ax.set_ylabel("D4RL normalized score x 100")
        # the oracle's paths of the first 6 single-task episodes over the maze
        ax = axes[1, col]
        layout = get_layout(maze)
        for x_lo, y_lo, x_hi, y_hi in layout.wall_boxes():
            ax.add_patch(Rectangle((y_lo, x_lo), y_hi - y_lo, x_hi - x_lo, color="0.35", lw=0))
        r = mine[0]
        for i in range(min(6, r["_paths"].shape[0])):
            p = r["_paths"][i]
            ax.plot(p[:, 1], p[:, 0], lw=1)
            ax.plot(p[0, 1], p[0, 0], "o", ms=3, color="k")
        g = r["_goals"][0]
        ax.add_patch(plt.Circle((g[1], g[0]), 0.5, color="r", fill=False))
        boxes = layout.wall_boxes()
        ax.set_xlim(boxes[:, 1].min(), boxes[:, 3].max())
        ax.set_ylim(boxes[:, 2].max(), boxes[:, 0].min())
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("oracle paths (6 episodes)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mazes", nargs="+", default=["umaze", "medium", "large"], choices=["umaze", "medium", "large"])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--horizon", type=int, help="episode length override (default: D4RL's 300 / 600 / 800)")
    parser.add_argument("--task", default="both", choices=["single", "multi", "both"])
    parser.add_argument("--out", default=".bench/maze_ceiling", help="directory for ceiling.png")
    for name, value in vars(OracleConfig()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value, help="oracle driving")
    args = parser.parse_args(argv)
    if args.episodes < 2:
        parser.error("--episodes must be >= 2 (the standard error needs two)")
    if args.horizon is not None and args.horizon < 1:
        parser.error("--horizon must be >= 1 step")
    config = OracleConfig(**{k: getattr(args, k) for k in vars(OracleConfig())})
    tasks = {"single": [False], "multi": [True], "both": [False, True]}[args.task]
    rows = []
    for maze in args.mazes:
        for multi in tasks:
            start = time.perf_counter()
            row = evaluate(maze, multi, args.episodes, args.seed, args.horizon, config)
            rows.append(row)
            print(f"[{maze}{' Multi2D' if multi else ''}, {row['horizon']} steps] oracle "
                  f"{row['oracle']['normalized']:.1f} ± {row['oracle']['sem']:.1f} "
                  f"(success {row['oracle']['success']:.0%}), bound {row['bound']['normalized']:.1f}, "
                  f"paper {row['paper_df']} ({time.perf_counter() - start:.1f}s)", file=sys.stderr, flush=True)
    out = Path(args.out)
    if (out / "ceiling.png").exists():  # an earlier run lives there: keep it, write beside it
        out = out / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
        print(f"{args.out} holds an earlier picture; writing into {out}", file=sys.stderr)
    picture = plot(rows, out / "ceiling.png")
    summary = {"rows": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows], "picture": str(picture)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
