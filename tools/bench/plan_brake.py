"""Does a guided plan brake at the goal? Planned speed and time in the goal, frame by frame, from states at the goal.

    uv run python tools/bench/plan_brake.py --ckpt CKPT --maze large --data runs/plan/large-4M.hdf5 \
        [--method df] [--guidance-scale G] [--stop-weight W] [--samples 64] [--seed 0] [--goal X Y]

With its own actions the agent does what its plan's actions say, so a plan that keeps moving through the goal
loses the score there however well it arrives. This check isolates the plan: it takes states of the dataset at
the goal, of two kinds, "arriving" (within 1 unit of the goal, faster than 2 units/s) and "resting" (within the
goal's 0.5 radius, slower than 1 unit/s), plans once from each toward the goal (the maze's single-task goal unless
``--goal``) with half an episode left, and reports per window of planned frames the mean planned speed, the share
of frames inside the goal radius and the share slower than 0.5 units/s (the notebook's "slow"). A plan that holds
the goal shows in_goal near 1 and a speed that falls; the D4RL walk never stops at a goal, and its models' plans
keep 2-4 units/s there (planning notebook, forty-first session). Prints one line per kind, then the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch

ARRIVING = (1.0, 2.0)  # within 1 unit of the goal and faster than 2 units/s
RESTING = (0.5, 1.0)  # within the goal radius and slower than 1 unit/s
WINDOW_STARTS = (0, 20, 40, 80, 160, 300)  # planned frames; each window is 20 frames long
WINDOW = 20


def pick_states(obs: np.ndarray, goal: np.ndarray, samples: int, seed: int) -> dict[str, np.ndarray]:
    """Up to ``samples`` dataset observations (N, 4) of each kind, drawn without replacement: {kind: (n, 4)}."""
    dist = np.linalg.norm(obs[:, :2] - goal, axis=1)  # (N,)
    speed = np.linalg.norm(obs[:, 2:], axis=1)  # (N,)
    masks = {"arriving": (dist < ARRIVING[0]) & (speed > ARRIVING[1]),
             "resting": (dist < RESTING[0]) & (speed < RESTING[1])}
    rng = np.random.default_rng(seed)
    out = {}
    for kind, mask in masks.items():
        idx = np.flatnonzero(mask)
        out[kind] = obs[rng.choice(idx, size=min(samples, len(idx)), replace=False)].astype(np.float64)
    return out


def window_stats(positions: np.ndarray, velocities: np.ndarray, goal: np.ndarray, radius: float,
                 slow: float) -> list[dict]:
    """Per window of planned frames: mean speed, share inside the goal radius, share slower than ``slow``."""
    speed = np.linalg.norm(velocities, axis=-1)  # (B, L)
    inside = np.linalg.norm(positions - goal, axis=-1) < radius  # (B, L)
    rows = []
    for a in WINDOW_STARTS:
        b = min(a + WINDOW, speed.shape[1])
        if a >= b:
            break
        rows.append({"frames": [a, b], "speed": float(speed[:, a:b].mean()), "in_goal": float(inside[:, a:b].mean()),
                     "slow": float((speed[:, a:b] < slow).mean())})
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="a dforce-plan checkpoint (full tokens: it plans velocities)")
    p.add_argument("--maze", required=True, choices=("umaze", "medium", "large"))
    p.add_argument("--data", required=True, help="the dataset (hdf5 / shards) to take the goal states from")
    p.add_argument("--method", default="df", choices=("df", "df_mcg"))
    p.add_argument("--guidance-scale", type=float, help="override the preset")
    p.add_argument("--stop-weight", type=float, help="override the preset's stop term weight")
    p.add_argument("--samples", type=int, default=64, help="states per kind (default 64)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--goal", type=float, nargs=2, metavar=("X", "Y"), help="default: the maze's single-task goal")
    args = p.parse_args(argv)
    if args.samples < 1:
        p.error(f"--samples must be >= 1, got {args.samples}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from dforce_plan.cli import build_planner, load_data
    from dforce_plan.presets import SLOW_SPEED

    from dforce_datasets.maze2d.env import GOAL_RADIUS
    from dforce_datasets.maze2d.layouts import get_layout

    torch.set_num_threads(1)
    goal = np.asarray(args.goal if args.goal else get_layout(args.maze).default_target, dtype=np.float64)  # (2,)
    overrides = {"guidance_scale": args.guidance_scale, "stop_weight": args.stop_weight}
    planner = build_planner(args.ckpt, args.method, args.maze, overrides)
    if planner.spec.channels != "full":
        raise SystemExit("plan_brake: a position-only model plans no velocities; give a full-token checkpoint")
    data = load_data(args.data)
    states = pick_states(np.asarray(data["observations"]), goal, args.samples, args.seed)
    steps_left = planner.episode_steps // 2
    out = {"ckpt": args.ckpt, "maze": args.maze, "goal": goal.tolist(), "steps_left": steps_left,
           "planner": planner.config.to_dict(), "kinds": {}}
    for kind, s in states.items():
        if len(s) == 0:
            out["kinds"][kind] = {"n": 0, "windows": []}
            print(f"{kind}: no such states in {args.data}", file=sys.stderr)
            continue
        plan = planner.plan(s, np.tile(goal, (len(s), 1)), steps_left=steps_left,
                            generator=torch.Generator().manual_seed(args.seed))
        rows = window_stats(plan.positions, plan.velocities, goal, GOAL_RADIUS, SLOW_SPEED)
        out["kinds"][kind] = {"n": len(s), "start_speed": float(np.linalg.norm(s[:, 2:], axis=1).mean()),
                              "windows": rows}
        print(f"{kind:9s} n={len(s):3d} " + " | ".join(
            f"{r['frames'][0]}-{r['frames'][1]}: {r['speed']:.2f} u/s, in goal {r['in_goal']:.2f}" for r in rows))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
