#!/usr/bin/env python3
"""Train and evaluate the maze2d planning setup (DF + MCG, DF w/o MCG, Diffuser-style) on a GPU, within a deadline.

For each maze it

1. generates a D4RL-size dataset (1M / 2M / 4M steps, noisy actions like the released files) with
   ``dforce-plan data``;
2. trains the DF model (default: the ``main:`` planning transformer size, d_model 128, 12 layers; plans of the
   whole episode) and, if asked, the Diffuser-style model, with ``dforce-plan train`` for ``--steps`` updates or
   ``--train-minutes`` of wall clock, whichever ends first (bf16 autocast by default; sampling stays fp32);
3. exports the EMA weights (``dforce-plan export``) and evaluates each method on ``--episodes`` seeded episodes,
   single-task first, then Multi2D, with ``dforce-plan eval`` (latency against the uncached path included);
   with ``--geodesic`` the DF methods are evaluated a second time with ``--goal-distance geodesic`` (rows with
   ``"reward": "geodesic"``; the paper's reward rows say ``"paper"``).

Mazes run concurrently (``--parallel``, one pipeline per maze sharing the GPU). Every finished step is written at
once to ``--out``/table.json (and mirrored to ``--export``), so a run cut by ``--deadline-minutes`` keeps what it
finished; unfinished evaluations are listed as such. It only calls the ``dforce-plan`` command line. Usage::

    python tools/bench/plan_gpu.py --out runs/plan_gpu                         # all mazes, 100k updates each
    python tools/bench/plan_gpu.py --mazes medium large --train-minutes 3.5 --deadline-minutes 8 --parallel
    python tools/bench/plan_gpu.py --smoke --out /tmp/plan_smoke               # minutes on a CPU
    python tools/bench/plan_gpu.py --recipe paper --out runs/plan_gpu_paper
        # the paper's Table 1 setup (reference 5.2): its recurrent model (ResBlock MLP + GRU, z 128), constant loss
        # weights, the official std, AdamW lr 2e-4, warmup 100, batch 2048, 120k updates; own diffused actions,
        # evaluated with the scales the CPU box chose for such models (RECIPE_PLANNER_PRESETS "official")
    python tools/bench/plan_gpu.py --df-train-args "--loss-weighting constant --action-std 2 2" \
        --df-eval-args "--guidance-form paper --guidance-scale 10"      # the authors' issue #2 and guidance form
    python tools/bench/plan_gpu.py --df-train-args "--channels pos --loss-weighting constant" \
        --diffuser-train-args "--channels pos --loss-weighting constant"
        # position-only plans (the main: v1.5 recipe): eval follows them with PD and the position-only preset
        # (hold at the goal, scales tuned on the CPU box's tiny models: pass --df-eval-args to re-tune); the
        # Diffuser-style baseline on the same tokens, followed by the same PD and hold
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PAPER = {"umaze": (116.7, 119.1), "medium": (149.4, 152.3), "large": (159.0, 167.1)}

# Training settings per --recipe; a flag given on the command line wins over its recipe's value.
# "ours": the main:-style causal transformer (--size) with this project's defaults (min-SNR loss weights).
# "paper": the paper: branch's planning setup (reference 5.2): the recurrent model, constant loss weights, the
# official std, AdamW lr 2e-4 (weight decay 1e-4, the app's), warmup 100, batch 2048 (the paper's; its yaml says
# 4096), 120k updates (the yaml's; its comment: "50k enough for large, 100k medium").
RECIPES = {
    "ours": {"steps": 100_000, "batch_size": 1024, "lr": 5e-4, "warmup": 1000, "df_train_args": ""},
    "paper": {"steps": 120_000, "batch_size": 2048, "lr": 2e-4, "warmup": 100,
              "df_train_args": "--backbone rnn --loss-weighting constant"},
}


class Bench:
    """Shared state of one run: the deadline, the table and the log, written after every step."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.t0 = time.perf_counter()
        self.deadline = self.t0 + 60.0 * args.deadline_minutes if args.deadline_minutes else None
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.export = Path(args.export) if args.export else None
        if self.export:
            self.export.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.record: dict = {"config": vars(args), "system": system_info(), "train": {}, "rows": [], "skipped": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def log(self, msg: str) -> None:
        line = f"[{self.elapsed():7.1f} s] {msg}"
        print(line, file=sys.stderr, flush=True)
        with self.lock, open(self.out / "log.txt", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def save(self) -> None:
        with self.lock:
            self.record["seconds"] = round(self.elapsed(), 1)
            text = json.dumps(self.record, indent=2, default=str)
            (self.out / "table.json").write_text(text, encoding="utf-8")
            if self.export:
                (self.export / "table.json").write_text(text, encoding="utf-8")
                shutil.copyfile(self.out / "log.txt", self.export / "log.txt")

    def run(self, name: str, cmd: list[str], reserve: float = 0.0) -> dict | None:
        """Run one dforce-plan command (its stderr to ``name``.log); its JSON stdout, or None if it failed/timed out."""
        left = self.left()
        timeout = None if left is None else left - reserve
        if timeout is not None and timeout < 5:
            self.log(f"skip {name}: deadline")
            return None
        self.log("+ " + " ".join(cmd))
        t = time.perf_counter()
        with open(self.out / f"{name}.log", "w", encoding="utf-8") as err:
            try:
                proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                self.log(f"TIMEOUT {name} after {time.perf_counter() - t:.0f} s")
                return None
        if proc.returncode != 0:
            tail = (self.out / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            self.log(f"FAILED {name} (status {proc.returncode}):\n{tail}")
            return None
        self.log(f"done {name} in {time.perf_counter() - t:.0f} s")
        return json.loads(proc.stdout)


def system_info() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # pragma: no cover
        pass
    return info


def pipeline(bench: Bench, maze: str) -> None:
    """data -> train -> export -> evaluations of one maze; results go into bench.record as they finish."""
    a = bench.args
    exe = [sys.executable, "-m", "dforce_plan"]
    threads = ["--threads", str(a.threads)] if a.threads else []
    data = bench.out / f"{maze}.hdf5"
    if not data.exists():
        made = bench.run(f"{maze}_data", exe + ["data", "--maze", maze, "--out", str(data), "--quiet"]
                         + (["--steps", str(a.data_steps)] if a.data_steps else []))
        if made is None:
            return
    kinds = sorted({"diffuser" if m == "diffuser" else "df" for m in a.methods})  # models the methods need
    slim = {}
    for kind in kinds:
        run_dir = bench.out / f"{maze}_{kind}"
        budget = ["--max-minutes", str(a.train_minutes)] if a.train_minutes else []
        fit = bench.run(f"{maze}_{kind}_train", exe + [
            "train", "--data", str(data), "--maze", maze, "--kind", kind, "--out", str(run_dir), "--size", a.size,
            "--steps", str(a.steps), "--batch-size", str(a.batch_size), "--lr", str(a.lr), "--warmup", str(a.warmup),
            "--ema", str(a.ema), "--ckpt-every", str(a.ckpt_every), "--precision", a.precision,
            "--device", a.device, "--resume", "--quiet"] + budget + threads + (["--compile"] if a.compile else [])
            + shlex.split(a.df_train_args if kind == "df" else a.diffuser_train_args))
        if fit is None:
            continue
        with bench.lock:
            bench.record["train"][f"{maze}_{kind}"] = fit
        slim[kind] = bench.out / f"{maze}_{kind}_slim"
        shutil.rmtree(slim[kind], ignore_errors=True)
        if bench.run(f"{maze}_{kind}_export", exe + ["export", "--ckpt", str(run_dir), "--out", str(slim[kind])]) is None:
            slim.pop(kind)
            continue
        if bench.export and a.export_weights:
            for f in ("model.safetensors", "state.json"):
                shutil.copyfile(slim[kind] / f, bench.export / f"{maze}_{kind}_{f}")
        bench.save()
    runs = [(m, "paper") for m in a.methods] + [(m, "geodesic") for m in a.methods if a.geodesic and m != "diffuser"]
    for multi in ([False, True] if a.multi2d else [False]):
        for method, reward in runs:
            kind = "diffuser" if method == "diffuser" else "df"
            tag = f"{maze}{'_multi' if multi else ''}_{method}{'_geodesic' if reward == 'geodesic' else ''}"
            if kind not in slim:
                with bench.lock:
                    bench.record["skipped"].append({"eval": tag, "why": f"no {kind} model"})
                continue
            extra = ["--sampling-steps", "2", "--replan-every", "100"] if a.smoke else []
            result = bench.run(tag, exe + [
                "eval", "--ckpt", str(slim[kind]), "--method", method, "--maze", maze,
                "--episodes", str(a.episodes), "--out", str(bench.out / "eval"), "--device", a.device, "--quiet",
                "--wandb", "off"] + (["--multi"] if multi else []) + extra + threads
                + (["--goal-distance", "geodesic"] if reward == "geodesic" else [])
                + (shlex.split(a.df_eval_args) if kind == "df" else []))
            with bench.lock:
                if result is None:
                    bench.record["skipped"].append({"eval": tag, "why": "deadline or failure (see log.txt)"})
                for env_id, r in (result or {}).items():
                    bench.record["rows"].append({
                        "env_id": env_id, "method": method, "reward": reward, "score": r["score"], "sem": r["score_sem"],
                        "success_rate": r["success_rate"], "steps_to_goal": r["steps_to_goal"],
                        "paper_df": PAPER[maze][1 if multi else 0], "episodes": r["episodes"],
                        "replan_ms_per_env": r["replan_ms_per_env"], "wall_s": r.get("wall_s"),
                        "latency": r.get("latency"), "planner": r.get("planner"), "picture": r.get("picture")})
            if result and bench.export and method in a.export_pictures:
                for r in result.values():
                    if r.get("picture") and Path(r["picture"]).is_file() and not multi:
                        shutil.copyfile(r["picture"], bench.export / Path(r["picture"]).name)
            bench.save()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--smoke`` fills in its toy budgets)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/plan_gpu")
    p.add_argument("--export", help="also mirror table.json, log.txt (and pictures / weights if asked) here")
    p.add_argument("--export-pictures", nargs="*", default=[], metavar="METHOD",
                   help="copy these methods' single-task PNGs to --export")
    p.add_argument("--export-weights", action="store_true", help="copy the exported weights to --export")
    p.add_argument("--mazes", nargs="+", default=["umaze", "medium", "large"], choices=list(PAPER))
    p.add_argument("--methods", nargs="+", default=["df_mcg", "df", "diffuser"], choices=["df_mcg", "df", "diffuser"])
    p.add_argument("--no-multi2d", dest="multi2d", action="store_false", help="single-task evaluations only")
    p.add_argument("--geodesic", action="store_true",
                   help="also evaluate the DF methods with the map-aware geodesic reward (not the paper's; own rows)")
    p.add_argument("--parallel", action="store_true", help="run the mazes concurrently on the one GPU")
    p.add_argument("--recipe", default="ours", choices=sorted(RECIPES),
                   help="training defaults: ours (the causal transformer, min-SNR weights) or paper (the paper: "
                        "branch's recurrent model and optimiser, constant loss weights); explicit flags win")
    p.add_argument("--steps", type=int, help="training updates per model (upper bound; default: the recipe's)")
    p.add_argument("--train-minutes", type=float, help="wall-clock budget per model")
    p.add_argument("--deadline-minutes", type=float, help="stop everything (keeping finished results) after this")
    p.add_argument("--data-steps", type=int, help="dataset size (default D4RL's)")
    p.add_argument("--batch-size", type=int, help="default: the recipe's")
    p.add_argument("--lr", type=float, help="default: the recipe's")
    p.add_argument("--warmup", type=int, help="default: the recipe's")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--ckpt-every", type=int, default=2000)
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the models for training (not yet measured on a GPU; see the app README)")
    p.add_argument("--size", default="paper", choices=["tiny", "small", "paper"])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--device", choices=["cuda", "cpu", "auto"], help="default cuda (cpu with --smoke)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads of every command")
    p.add_argument("--smoke", action="store_true", help="tiny budgets on CPU, to check the script end to end")
    p.add_argument("--df-train-args", metavar="ARGS",
                   help="extra 'dforce-plan train' flags for the DF model, one quoted string (default: the recipe's), "
                        "e.g. the authors' issue #2 \"--loss-weighting constant --action-std 2 2\"")
    p.add_argument("--diffuser-train-args", default="", metavar="ARGS",
                   help="extra 'dforce-plan train' flags for the Diffuser-style model, e.g. \"--channels pos "
                        "--loss-weighting constant\" beside a position-only DF model")
    p.add_argument("--df-eval-args", default="", metavar="ARGS",
                   help="extra 'dforce-plan eval' flags for the DF methods, e.g. \"--guidance-form paper "
                        "--guidance-scale 10\"")
    args = p.parse_args(argv)
    for name, value in RECIPES[args.recipe].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("df_train_args", "diffuser_train_args", "df_eval_args"):
        try:
            shlex.split(getattr(args, name))
        except ValueError as err:
            p.error(f"--{name.replace('_', '-')}: {err}")
    if args.smoke:
        args.steps, args.batch_size, args.size, args.episodes = 20, 16, "tiny", 2
        args.device = args.device or "cpu"
        args.lr, args.warmup, args.precision, args.data_steps = 1e-3, 2, "fp32", args.data_steps or 20_000
        args.threads = args.threads or 1
    args.device = args.device or "cuda"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    bench.log(f"system {bench.record['system']}")
    bench.save()
    workers = len(args.mazes) if args.parallel else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(pipeline, bench, maze) for maze in args.mazes]:
            future.result()
    bench.save()
    print(json.dumps({"rows": bench.record["rows"], "skipped": bench.record["skipped"],
                      "seconds": round(bench.elapsed(), 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
