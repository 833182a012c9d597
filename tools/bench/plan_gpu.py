#!/usr/bin/env python3
"""Train and evaluate the full maze2d planning setup (DF + MCG, DF w/o MCG, Diffuser-style) on a GPU.

NOT YET RUN ON A GPU: written and smoke-tested on CPU only (``--smoke``); the budgets below are a plan, not a
measured recipe. For each maze it

1. generates D4RL-size datasets (1M / 2M / 4M steps, noisy actions like the released files) with
   ``dforce-plan data``;
2. trains the DF model (the ``main:`` planning transformer size: d_model 128, 12 layers; plans of the whole
   episode) and the Diffuser-style model (non-causal, full-sequence levels, Diffuser's horizon) with
   ``dforce-plan train`` (batch 1024, ``--steps`` updates, bf16 is not used: fp32 keeps guidance gradients exact);
3. evaluates ``df_mcg``, ``df`` and ``diffuser`` on 100 seeded episodes, single-task and Multi2D, with
   ``dforce-plan eval --both``;

and writes every summary plus one table (JSON, last line on stdout) to ``--out``. It only calls the
``dforce-plan`` command line (nothing imports the app). Usage::

    uv run python tools/bench/plan_gpu.py --out runs/plan_gpu                      # all mazes, full budget
    uv run python tools/bench/plan_gpu.py --mazes umaze --steps 50000              # one maze
    uv run python tools/bench/plan_gpu.py --smoke --out /tmp/plan_smoke            # minutes on a CPU
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

PAPER = {"umaze": (116.7, 119.1), "medium": (149.4, 152.3), "large": (159.0, 167.1)}


def run(cmd: list[str]) -> dict:
    """Run one dforce-plan command; return its JSON stdout."""
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"command failed with status {proc.returncode}: {' '.join(cmd)}")
    return json.loads(proc.stdout)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/plan_gpu")
    p.add_argument("--mazes", nargs="+", default=["umaze", "medium", "large"])
    p.add_argument("--steps", type=int, default=100_000, help="training updates per model")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--size", default="paper", choices=["tiny", "small", "paper"])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of every command")
    p.add_argument("--smoke", action="store_true", help="tiny budgets on CPU, to check the script end to end")
    args = p.parse_args()
    if args.smoke:
        args.steps, args.batch_size, args.size, args.episodes, args.device = 20, 16, "tiny", 2, "cpu"
        args.threads = args.threads or 1
    exe = [sys.executable, "-m", "dforce_plan"]
    threads = ["--threads", str(args.threads)] if args.threads else []
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = []
    t0 = time.perf_counter()
    for maze in args.mazes:
        data = out / f"{maze}.hdf5"
        if not data.exists():
            run(exe + ["data", "--maze", maze, "--out", str(data), "--quiet"]
                + (["--steps", "20000"] if args.smoke else []))
        runs = {}
        for kind in ("df", "diffuser"):
            runs[kind] = out / f"{maze}_{kind}"
            train = run(exe + ["train", "--data", str(data), "--maze", maze, "--kind", kind, "--out", str(runs[kind]),
                               "--size", args.size, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                               "--lr", "5e-4" if not args.smoke else "1e-3", "--warmup", "2000" if not args.smoke else "2",
                               "--ema", "0.999", "--ckpt-every", "5000", "--device", args.device, "--resume", "--quiet"]
                        + threads)
            (out / f"{maze}_{kind}_train.json").write_text(json.dumps(train, indent=2))
        for method in ("df_mcg", "df", "diffuser"):
            ckpt = runs["diffuser" if method == "diffuser" else "df"]
            extra = ["--sampling-steps", "2", "--replan-every", "100"] if args.smoke else []
            result = run(exe + ["eval", "--ckpt", str(ckpt), "--method", method, "--maze", maze, "--both",
                                "--episodes", str(args.episodes), "--out", str(out / "eval"), "--device", args.device,
                                "--quiet"] + extra + threads)
            for env_id, r in result.items():
                table.append({"env_id": env_id, "method": method, "score": r["score"], "sem": r["score_sem"],
                              "success_rate": r["success_rate"], "steps_to_goal": r["steps_to_goal"],
                              "paper_df": PAPER[maze][1 if "multi" in env_id else 0],
                              "replan_ms_per_env": r["replan_ms_per_env"], "latency": r.get("latency")})
    (out / "table.json").write_text(json.dumps(table, indent=2))
    print(json.dumps({"rows": table, "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
