"""Generate a D4RL-style maze2d dataset (one continuous waypoint walk) and report the generation speed.

The walk is D4RL's generate_maze2d_datasets.py loop (goal switch when solved or at max_episode_steps, duplicated
observation at every switch, optional --noisy N(0, 0.5^2) action noise) computed by a numba kernel with the
closed-form physics away from walls and MuJoCo near them; it is bit-identical to the plain MuJoCo loop
(``--check N`` re-runs the first N steps that way and compares). Writes D4RL hdf5 and/or webdataset shards when
asked. Last line of output is JSON with ``steps_per_s``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from dforce_datasets.maze2d import GenerateConfig, generate, generate_reference, to_d4rl, write_hdf5, write_shards


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="large", help="umaze | medium | large (or any registered maze2d id)")
    parser.add_argument("--steps", type=int, default=None, help="default: D4RL's 1M / 2M / 4M")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noisy", action="store_true", help="add N(0, 0.5^2) to every action (D4RL --noisy)")
    parser.add_argument("--hdf5", default=None, help="write the D4RL-schema hdf5 file here")
    parser.add_argument("--shards", default=None, help="write webdataset tar shards into this directory")
    parser.add_argument("--check", type=int, default=0, help="compare the first N steps with the plain MuJoCo loop")
    args = parser.parse_args(argv)
    config = GenerateConfig(maze=args.env, steps=args.steps, seed=args.seed, noisy=args.noisy)
    generate(GenerateConfig(maze=args.env, steps=10, seed=args.seed, noisy=args.noisy))  # compile numba first
    start = time.perf_counter()
    data = generate(config, progress=lambda n: print(f"{n} steps ({time.perf_counter() - start:.1f}s)",
                                                      file=sys.stderr, flush=True))
    seconds = time.perf_counter() - start
    summary = {"env": args.env, "steps": len(data), "seconds": round(seconds, 3),
               "steps_per_s": len(data) / seconds, **data.metadata}
    if args.check:
        n = min(args.check, len(data))
        t = time.perf_counter()
        ref = generate_reference(GenerateConfig(maze=args.env, steps=n, seed=args.seed, noisy=args.noisy))
        summary["check_steps"] = n
        summary["check_max_abs_diff"] = float(max(np.abs(getattr(ref, k)[:n] - getattr(data, k)[:n]).max()
                                                  for k in ("observations", "actions", "goals", "qpos", "qvel")))
        summary["mujoco_loop_steps_per_s"] = n / (time.perf_counter() - t)
    if args.hdf5 or args.shards:
        d4rl = to_d4rl(data)
        if args.hdf5:
            write_hdf5(args.hdf5, d4rl, attrs={"maze": data.maze, **data.metadata})
        if args.shards:
            write_shards(args.shards, d4rl, metadata={"maze": data.maze, "seed": args.seed})
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
