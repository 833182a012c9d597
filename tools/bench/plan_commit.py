"""Committing finished plan tokens early: planning time with and without, same planner, same seed, one process.

    uv run python tools/bench/plan_commit.py --ckpt CKPT --maze umaze [--method df_mcg] [--batch 100]
        [--repeats 3] [--guidance-scale G] [--threads 1]

A whole-episode plan is one chunk along the pyramid scheduling matrix, and the plain cached path feeds every plan
token to the model at every row, finished or not. With ``PlannerConfig.commit_finished`` (``dforce-plan eval
--commit-finished``) a token goes into the model's cache (the KV cache, or the RNN's latent) in the row after the
pyramid finishes it, and later rows feed only the unfinished tail. Both paths plan the same start states (episode
resets of the maze's env, seed 0..batch-1) with the same seed; the runs alternate (plain, early, plain, ...) and
the reported times are medians. ``max_abs_diff``: the largest difference of the planned positions (world units).
Prints one line per path, then the JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics

import numpy as np
import torch


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True, help="a dforce-plan DF checkpoint")
    p.add_argument("--maze", required=True, choices=("umaze", "medium", "large"))
    p.add_argument("--method", default="df_mcg", choices=("df", "df_mcg"))
    p.add_argument("--guidance-scale", type=float, help="override the preset")
    p.add_argument("--batch", type=int, default=100, help="envs planned together (default 100, as eval)")
    p.add_argument("--repeats", type=int, default=3, help="timed plans per path (default 3; medians reported)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = p.parse_args(argv)
    for name in ("batch", "repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    from dforce_plan.cli import build_planner
    from dforce_plan.planner import Planner

    from dforce_datasets.maze2d import VectorMaze2d

    torch.set_num_threads(args.threads)
    plain = build_planner(args.ckpt, args.method, args.maze, {"guidance_scale": args.guidance_scale}, args.device)
    if not plain.config.use_cache:
        raise SystemExit("plan_commit: the planner runs without the cache; nothing to commit early")
    plain = Planner(plain.model, plain.spec, dataclasses.replace(plain.config, commit_finished=False))
    early = Planner(plain.model, plain.spec, dataclasses.replace(plain.config, commit_finished=True))
    venv = VectorMaze2d(args.maze, args.batch)
    obs, info = venv.reset(seed=0)
    goals = info["target"].copy()  # (B, 2)
    steps = plain.episode_steps  # a first plan: the whole episode (the longest one)
    times: dict[str, list[float]] = {"plain": [], "early": []}
    plans = {}
    for _ in range(args.repeats):
        for name, planner in (("plain", plain), ("early", early)):
            plan = planner.plan(obs, goals, steps, generator=torch.Generator(args.device).manual_seed(0))
            times[name].append(plan.seconds)
            plans[name] = plan
    out = {"ckpt": args.ckpt, "maze": args.maze, "method": args.method, "backbone": plain.spec.backbone,
           "batch": args.batch, "steps": plain.horizon_steps(steps), "repeats": args.repeats, "threads": args.threads,
           "device": args.device, "machine": platform.processor() or platform.machine(),
           "guidance_scale": plain.config.guidance_scale}
    for name in ("plain", "early"):
        out[f"{name}_s"] = statistics.median(times[name])
        out[f"{name}_all_s"] = times[name]
        print(f"{name:5s}: median {out[f'{name}_s']:.3f} s per plan of {args.batch} envs "
              f"({', '.join(f'{t:.3f}' for t in times[name])})")
    out["speedup"] = out["plain_s"] / max(out["early_s"], 1e-12)
    out["max_abs_diff"] = float(np.abs(plans["plain"].positions - plans["early"].positions).max())
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
