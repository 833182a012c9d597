"""``dforce-plan``: Diffusion Forcing planning in D4RL maze2d with Monte Carlo Guidance.

Sub-commands: ``data`` (generate or load a dataset), ``train``, ``eval``, ``export`` (EMA weights as a slim
inference checkpoint), ``seeds`` (eval results of several training seeds as one row) and ``quickstart`` (all of
it, small, on umaze). Run ``dforce-plan <command> --help`` for the options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

for _key, _value in (("MUJOCO_GL", "egl"), ("PYGLET_HEADLESS", "1")):
    os.environ.setdefault(_key, _value)

METHODS = ("df_mcg", "df", "diffuser", "goal_pd")


class CliError(Exception):
    """A user error: printed as 'dforce-plan: error: ...' with exit status 2."""


def _threads(n: int | None) -> None:
    import torch

    if n is not None:
        if n < 1:
            raise CliError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)


def _summary(dataset: dict[str, Any], source: str) -> dict[str, Any]:
    """What ``data`` prints about a dataset: size, normalisation statistics, goal switches and speeds."""
    import numpy as np

    from dforce_datasets.maze2d.env import GOAL_RADIUS

    from .presets import SLOW_SPEED

    obs = dataset["observations"]
    speed = np.linalg.norm(obs[:, 2:], axis=1)  # (N,) world units/s
    out = {"source": source, "steps": int(len(obs)), "keys": sorted(dataset),
           "obs_mean": [round(float(v), 4) for v in obs.mean(0)], "obs_std": [round(float(v), 4) for v in obs.std(0)],
           "act_std": [round(float(v), 4) for v in dataset["actions"].std(0)],
           "goal_switches": int(dataset["timeouts"].sum()) if "timeouts" in dataset else None,
           "speed_median": round(float(np.median(speed)), 4), "slow_frac": round(float((speed < SLOW_SPEED).mean()), 4)}
    if "infos/goal" in dataset:  # how the walk behaves at its own waypoint goals: does it ever stop there?
        inside = np.linalg.norm(obs[:, :2] - dataset["infos/goal"][:, :2], axis=1) <= GOAL_RADIUS  # (N,)
        out["at_goal_frac"] = round(float(inside.mean()), 4)
        out["at_goal_speed_median"] = round(float(np.median(speed[inside])), 4) if inside.any() else None
        out["at_goal_slow_frac"] = round(float((speed[inside] < SLOW_SPEED).mean()), 4) if inside.any() else None
    return out


# ----------------------------------------------------------------------------------------------- data

def make_dataset(maze: str, steps: int | None, seed: int, noisy: bool, progress: bool = True,
                 dwell: int = 0) -> dict[str, Any]:
    """Generate a D4RL-schema dataset with the D4RL waypoint walk (dforce_datasets.maze2d.generate)."""
    from tqdm.auto import tqdm

    from dforce_datasets.maze2d import GenerateConfig, generate, to_d4rl

    try:
        cfg = GenerateConfig(maze=maze, steps=steps, seed=seed, noisy=noisy, dwell=dwell)
    except ValueError as err:
        raise CliError(f"data: {err}") from None
    bar = tqdm(total=cfg.n_steps, desc=f"generate {maze}", disable=not progress, unit="step", dynamic_ncols=True)
    done = [0]

    def report(n: int) -> None:
        bar.update(n - done[0])
        done[0] = n

    try:
        data = generate(cfg, progress=report)
        bar.update(cfg.n_steps - done[0])
    finally:
        bar.close()
    return to_d4rl(data)


def load_data(source: str) -> dict[str, Any]:
    """A dataset from an hdf5 file, a shard directory/.tar or a D4RL id (ValueError when it cannot)."""
    from dforce_datasets.maze2d import load_dataset

    path = Path(source).expanduser()
    if (path.suffix in (".hdf5", ".h5", ".tar") or os.sep in source) and not path.exists():
        raise CliError(f"dataset {source} does not exist; generate one with `dforce-plan data --out {source}`")
    return load_dataset(source)


def cmd_data(args: argparse.Namespace) -> dict[str, Any]:
    if args.source:
        return _summary(load_data(args.source), args.source)
    if not args.out:
        raise CliError("data: give --out PATH (.hdf5 file or a directory for webdataset shards) or --source")
    from dforce_datasets.maze2d import write_hdf5, write_shards

    out = Path(args.out)
    if out.is_file() or (out.is_dir() and any(out.glob("*.tar"))):  # checked before minutes of generation
        raise CliError(f"--out {out} already holds a dataset; give a new path")
    t0 = time.perf_counter()
    data = make_dataset(args.maze, args.steps, args.seed, not args.clean, progress=not args.quiet, dwell=args.dwell)
    if out.suffix in (".hdf5", ".h5"):
        write_hdf5(out, data, attrs={"maze": args.maze, "seed": args.seed, "noisy": not args.clean,
                                     "dwell": args.dwell})
    else:
        write_shards(out, data)
    info = _summary(data, str(out))
    info["seconds"] = round(time.perf_counter() - t0, 2)
    return info


# ----------------------------------------------------------------------------------------------- train

def cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from dforce_train import TrainConfig

    from .model import ModelSpec, train
    from .presets import DF_TOKENS, DIFFUSER_TOKENS, model_preset

    _threads(args.threads)
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise CliError(f"--max-minutes must be > 0, got {args.max_minutes}")
    data = load_data(args.data)
    size = model_preset(args.size)
    for key in ("d_model", "n_layers", "n_heads"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    if args.n_tokens is not None and args.n_tokens < 1:
        raise CliError(f"--n-tokens must be >= 1, got {args.n_tokens}")
    tokens = args.n_tokens or (DF_TOKENS if args.kind == "df" else DIFFUSER_TOKENS)[args.maze]
    rnn = {key: getattr(args, key) for key in ("z_dim", "network_size") if getattr(args, key) is not None}
    if args.unconditioned and args.kind != "diffuser":
        raise CliError("--unconditioned switches off the Diffuser-style baseline's conditioned training; "
                       "add --kind diffuser (a DF model conditions on its context token by its noise levels)")
    if rnn and args.backbone != "rnn":
        raise CliError(f"--{next(iter(rnn)).replace('_', '-')} sets the recurrent model; add --backbone rnn")
    try:
        spec = ModelSpec(maze=args.maze, kind=args.kind, n_tokens=tokens, random_horizon=args.random_horizon,
                         loss_weighting=args.loss_weighting, backbone=args.backbone, action_std=args.action_std,
                         obs_std=args.obs_std, channels=args.channels, conditioned_training=not args.unconditioned, **rnn, **size)
    except ValueError as err:
        raise CliError(str(err)) from None
    cfg = TrainConfig(lr=args.lr, weight_decay=1e-4, warmup_steps=min(args.warmup, args.steps), max_steps=args.steps,
                      lr_decay=args.lr_decay, min_lr_ratio=args.min_lr_ratio, ema_decay=args.ema,
                      ckpt_every=args.ckpt_every, log_every=args.log_every, out_dir=args.out,
                      seed=args.seed, progress=not args.quiet, device=args.device, precision=args.precision,
                      max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes, compile=args.compile)
    _, summary = train(data, spec, cfg, batch_size=args.batch_size, resume="auto" if args.resume else None)
    return {"checkpoint": str(summary.checkpoint), "step": summary.step, "seconds": round(summary.elapsed_s, 1),
            "out_of_time": summary.out_of_time, "final_metrics": summary.metrics, "model": spec.to_dict()}


# ----------------------------------------------------------------------------------------------- eval

def build_planner(ckpt: str, method: str, maze: str, overrides: dict[str, Any], device: str = "cpu"):
    """A Planner from a checkpoint, the method's preset for the maze, and explicit overrides (None = preset)."""
    import torch

    from .model import load_model
    from .planner import Planner, PlannerConfig
    from .presets import planner_preset, preset_recipe

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CliError("--device cuda but no CUDA device is available")
    model, spec = load_model(ckpt)
    model.to(device)
    # methods without position-only presets keep theirs; full-token models get their training recipe's scales
    recipe = preset_recipe(spec.loss_weighting, spec.obs_std, spec.action_std, spec.backbone)
    settings = planner_preset(method, maze, spec.channels, recipe)
    if (overrides.get("pos_velocity"), overrides.get("pos_velocity_window")) != (None, None) and spec.channels != "pos":
        raise CliError("--pos-velocity would be ignored: it sets the PD velocity reference of a position-only model "
                       "(--channels pos); this model plans its velocities")
    settings.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("hold_radius") == 0:  # --hold-radius 0: follow the whole plan (the position-only preset holds)
        settings["hold_radius"] = None
    if overrides.get("stall_decay") == 1:  # --stall-decay 1: never cut the guidance (large's position-only preset does)
        settings["stall_decay"] = None
    if overrides.get("stall_distance") is not None and settings.get("stall_decay") is None:
        raise CliError("--stall-distance would be ignored: it defines a stall for --stall-decay, which is off; add that")
    if overrides.get("pos_velocity_window") is not None and settings.get("pos_velocity") != "smooth":
        raise CliError("--pos-velocity-window would be ignored: it is the window of --pos-velocity smooth; add that")
    if spec.channels == "pos" and settings.get("controller") != "pd":
        raise CliError("a position-only model (--channels pos) plans no actions to execute; drop --controller actions "
                       "(its plans are followed with --controller pd)")
    if settings.get("controller") != "pd":
        given = [f"--{k.replace('_', '-')}" for k in ("hold_radius", "pd_gains") if overrides.get(k)]
        if given:
            raise CliError(f"{' '.join(given)} would be ignored: the agent executes its own actions; "
                           "add --controller pd")
    return Planner(model, spec, PlannerConfig(method=method, **settings))


def _planner_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"guidance_scale": args.guidance_scale, "stop_weight": args.stop_weight,
            "stop_radius": args.stop_radius, "stop_where": args.stop_where,
            "goal_distance": args.goal_distance, "wall_cost": args.wall_cost, "mc_samples": args.mc_samples,
            "guidance_form": args.guidance_form,
            "horizon": args.horizon, "replan_every": args.replan_every, "sampling_steps": args.sampling_steps,
            "replan_near": args.replan_near, "replan_near_every": args.replan_near_every,
            "controller": args.controller, "pd_gains": tuple(args.pd_gains) if args.pd_gains else None,
            "pos_velocity": args.pos_velocity, "pos_velocity_window": args.pos_velocity_window,
            "hold_radius": args.hold_radius,  # 0 = off, mapped in build_planner
            "stall_decay": args.stall_decay, "stall_distance": args.stall_distance,
            "commit_finished": args.commit_finished}


def cmd_eval(args: argparse.Namespace) -> dict[str, Any]:
    from .evaluate import EvalConfig, evaluate

    _threads(args.threads)
    goal_pd = args.method == "goal_pd"
    if goal_pd and args.ckpt is not None:
        raise CliError("--method goal_pd uses no model (PD straight at the goal); drop --ckpt")
    if not goal_pd and args.ckpt is None:
        raise CliError(f"--method {args.method} needs --ckpt (a checkpoint from `dforce-plan train`)")
    if not goal_pd and not Path(args.ckpt).exists():
        raise CliError(f"checkpoint {args.ckpt} does not exist; train one with `dforce-plan train`")
    overrides = _planner_overrides(args)
    planning = ("guidance_scale", "stop_weight", "stop_radius", "stop_where", "goal_distance", "wall_cost",
                "mc_samples", "horizon", "guidance_form", "stall_decay", "stall_distance")
    unused = {"diffuser": planning, "df": ("mc_samples",),
              "goal_pd": (*planning, "replan_every", "replan_near", "replan_near_every", "sampling_steps",
                          "controller", "pos_velocity",
                          "pos_velocity_window", "hold_radius")}.get(args.method, ())
    given = [f"--{k.replace('_', '-')}" for k in unused if overrides[k] is not None]
    if goal_pd and args.plans_only:
        given.append("--plans-only")
    if given:
        why = {"diffuser": "plans by inpainting the start and goal over its fixed window, without guidance",
               "df": "is DF with a single sample; use --method df_mcg for more",
               "goal_pd": "aims a PD controller straight at the goal, without a model"}[args.method]
        raise CliError(f"{' '.join(given)} would be ignored: --method {args.method} {why}")
    from .presets import planner_preset

    if args.replan_near_every is not None and args.replan_near is None:
        raise CliError("--replan-near-every would be ignored: it spaces the replans of --replan-near, which is off; "
                       "add that")
    if args.wall_cost is not None and args.goal_distance != "geodesic":
        raise CliError("--wall-cost would be ignored: it shapes the geodesic reward; add --goal-distance geodesic")
    if args.plans_only:
        acting = [f"--{k.replace('_', '-')}" for k in ("controller", "pd_gains", "replan_every", "replan_near",
                                                           "replan_near_every", "pos_velocity",
                                                           "pos_velocity_window", "hold_radius", "stall_decay")
                  if overrides[k] is not None]
        if acting:
            raise CliError(f"{' '.join(acting)} would be ignored: --plans-only samples the first plans and never acts")
    if goal_pd:
        from .planner import GoalPD, PlannerConfig

        settings = planner_preset("goal_pd", args.maze)
        if args.pd_gains:
            settings["pd_gains"] = tuple(args.pd_gains)
        planner, provenance = GoalPD(args.maze, PlannerConfig(method="goal_pd", **settings)), None
    else:
        first = f"multi-{args.maze}" if args.multi and not args.both else args.maze  # the first task's preset
        planner = build_planner(args.ckpt, args.method, first, overrides, args.device)
        if planner.spec.maze != args.maze:
            raise CliError(f"the checkpoint was trained on {planner.spec.maze}, not {args.maze}; "
                           f"pass --maze {planner.spec.maze}")
        from .model import checkpoint_provenance

        provenance = checkpoint_provenance(args.ckpt)
    results = {}
    for multi in ([False, True] if args.both else [args.multi]):
        if multi and args.both and not goal_pd:  # a preset may hold Multi2D's own choice (RECIPE_PLANNER_PRESETS)
            planner = build_planner(args.ckpt, args.method, f"multi-{args.maze}", overrides, args.device)
        cfg = EvalConfig(maze=args.maze, multi=multi, episodes=args.episodes, seed=args.seed, show=args.show,
                         latency_batch=0 if goal_pd else args.latency_batch, progress=not args.quiet)
        if args.plans_only:
            from .plan_quality import plan_quality

            results[cfg.env_id] = {**plan_quality(planner, cfg, args.out), "checkpoint": provenance}
            continue
        results[cfg.env_id] = evaluate(planner, cfg, args.out, wandb=args.wandb, checkpoint=provenance)
    return results


# ----------------------------------------------------------------------------------------------- export

def cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    """A slim inference checkpoint: the EMA weights as ``model.safetensors`` plus ``state.json`` (no optimizer)."""
    from safetensors.torch import save_model

    from dforce_train import resolve_checkpoint

    from .model import load_model

    if not Path(args.ckpt).exists():
        raise CliError(f"checkpoint {args.ckpt} does not exist; train one with `dforce-plan train`")
    model, spec = load_model(args.ckpt)  # EMA weights applied when the checkpoint has them
    source = resolve_checkpoint(args.ckpt)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise CliError(f"--out {out} exists and is not empty; give a new directory")
    out.mkdir(parents=True, exist_ok=True)
    state = json.loads((source / "state.json").read_text(encoding="utf-8"))
    save_model(model, str(out / "model.safetensors"), metadata={"step": str(state.get("step", ""))})
    (out / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    return {"checkpoint": str(out), "source": str(source), "step": state.get("step"), "model": spec.to_dict(),
            "bytes": sum(f.stat().st_size for f in out.iterdir())}


# ----------------------------------------------------------------------------------------------- seeds

def cmd_seeds(args: argparse.Namespace) -> dict[str, Any]:
    """Eval results of models trained with different seeds -> one row per task: mean, std and SE over models."""
    from .seeds import combine, load_results, table

    if len(args.results) < 2:
        raise CliError("give the eval JSON of at least two models (one per training seed)")
    combined = combine(load_results(args.results))
    if not args.quiet:
        print(table(combined), file=sys.stderr)
    return combined


# ----------------------------------------------------------------------------------------------- quickstart

def cmd_quickstart(args: argparse.Namespace) -> dict[str, Any]:
    """Small umaze dataset -> tiny DF model -> DF+MCG evaluation (own actions, and PD) with pictures."""
    from dforce_datasets.maze2d import write_hdf5
    from dforce_train import TrainConfig

    from .evaluate import EvalConfig, evaluate
    from .model import ModelSpec, train
    from .planner import Planner, PlannerConfig
    from .presets import DF_TOKENS, model_preset, planner_preset

    _threads(args.threads)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise CliError(f"--out {out} holds an earlier run; give a new directory (or remove that one)")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(f"[1/3] generating a {args.data_steps}-step umaze dataset (D4RL waypoint walk, noisy actions)", file=sys.stderr)
    data = make_dataset("umaze", args.data_steps, args.seed, noisy=True)
    write_hdf5(out / "umaze.hdf5", data, attrs={"maze": "umaze", "seed": args.seed, "noisy": True})
    t_data = time.perf_counter() - t0
    print(f"[2/3] training a tiny DF transformer for {args.train_steps} steps", file=sys.stderr)
    spec = ModelSpec(maze="umaze", kind="df", n_tokens=DF_TOKENS["umaze"], **model_preset("tiny"))
    cfg = TrainConfig(lr=1e-3, weight_decay=1e-4, warmup_steps=200, max_steps=args.train_steps, ema_decay=0.99,
                      ckpt_every=None, log_every=50, out_dir=str(out / "model"), seed=args.seed, device="cpu")
    model, fit = train(data, spec, cfg, batch_size=64)
    t_train = time.perf_counter() - t0 - t_data
    print(f"[3/3] evaluating DF + Monte Carlo Guidance on {args.episodes} umaze episodes, executing the diffused "
          "actions, then following the plans with the PD controller", file=sys.stderr)
    result: dict[str, Any] = {}
    for controller in ("actions", "pd"):
        settings = planner_preset("df_mcg", "umaze")
        # the paper's goal reward by default: the stop term helps the 15k-update model but cost this
        # 3000-update one success (README, quickstart)
        settings["stop_weight"] = args.stop_weight
        if args.guidance_scale is not None:
            settings["guidance_scale"] = args.guidance_scale
        planner = Planner(model, spec, PlannerConfig(method="df_mcg", controller=controller, **settings))
        summary = evaluate(planner, EvalConfig(maze="umaze", episodes=args.episodes, seed=args.seed, show=8,
                                               latency_batch=1 if controller == "actions" else 0),
                           out, wandb=args.wandb, tag=f"quickstart_{controller}")
        summary.pop("model", None)
        result[controller] = summary
        print(f"  {controller}: score {summary['score']:.1f} ± {summary['score_sem']:.1f} (paper DF: "
              f"{summary['paper_score']}), success {100 * summary['success_rate']:.0f}%, picture "
              f"{summary.get('picture')}", file=sys.stderr)
    result.update({"data_s": round(t_data, 1), "train_s": round(t_train, 1),
                   "total_s": round(time.perf_counter() - t0, 1), "train_steps": fit.step,
                   "final_loss": fit.metrics.get("loss"), "checkpoint": str(fit.checkpoint)})
    return result


# ----------------------------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands)."""
    parser = argparse.ArgumentParser(prog="dforce-plan", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="generate a maze2d dataset (hdf5 or webdataset shards), or describe one")
    data.add_argument("--maze", default="umaze", choices=["umaze", "medium", "large"])
    data.add_argument("--steps", type=int, default=None, help="transitions (default D4RL's 1M / 2M / 4M)")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--clean", action="store_true", help="no action noise (default: --noisy, like the released files)")
    data.add_argument("--dwell", type=int, default=0,
                      help="not in D4RL: after reaching each goal the walk holds it for U{0..N} more steps, so the "
                           "data contains stops (default 0: D4RL's walk, which never stops)")
    data.add_argument("--out", help="*.hdf5 file, or a directory for webdataset shards")
    data.add_argument("--source", help="describe an existing dataset (hdf5, shards or a D4RL id) instead")
    data.add_argument("--quiet", action="store_true")

    tr = sub.add_parser("train", help="train a planning model (DF or the Diffuser-style baseline)")
    tr.add_argument("--data", required=True, help="dataset: hdf5 file, shard directory or D4RL id")
    tr.add_argument("--maze", default="umaze", choices=["umaze", "medium", "large"])
    tr.add_argument("--kind", default="df", choices=["df", "diffuser"])
    tr.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl)")
    tr.add_argument("--size", default="tiny", choices=["tiny", "small", "paper"])
    tr.add_argument("--d-model", dest="d_model", type=int)
    tr.add_argument("--n-layers", dest="n_layers", type=int)
    tr.add_argument("--n-heads", dest="n_heads", type=int)
    tr.add_argument("--n-tokens", dest="n_tokens", type=int, help="plan tokens per window (default per maze)")
    tr.add_argument("--random-horizon", action="store_true", help="also pad windows at a random horizon")
    tr.add_argument("--backbone", default="transformer", choices=["transformer", "rnn"],
                    help="transformer (sized by --size); rnn: the paper's recurrent model (MLP + GRU latent, "
                         "reference 4.1; sized by --z-dim and --network-size), DF only")
    tr.add_argument("--z-dim", dest="z_dim", type=int, help="rnn: latent size (default 128, the paper's)")
    tr.add_argument("--network-size", dest="network_size", type=int,
                    help="rnn: MLP hidden width / 32 (default 16, the paper's umaze / medium comment)")
    tr.add_argument("--loss-weighting", dest="loss_weighting", default="min_snr", choices=["min_snr", "constant"],
                    help="min_snr: min(snr, 5) (the authors' main: code, default); constant: 5 at every level "
                         "(the paper: branch, whose noisy levels then weigh as much as the clean ones)")
    tr.add_argument("--channels", choices=("full", "pos"), default="full",
                    help="what a planned frame holds: full = position, velocity and action (the paper's diffused "
                         "actions, default); pos = position only (the main: README's v1.5 recipe; eval with "
                         "--controller pd)")
    tr.add_argument("--unconditioned", action="store_true",
                    help="--kind diffuser only: train without Diffuser's conditioning (start and final state clean "
                         "in the noisy input), as this project did before the thirty-first session (an ablation)")
    tr.add_argument("--action-std", dest="action_std", type=float, nargs=2, metavar=("AX", "AY"),
                    help="divide actions by these instead of the official std (about 0.7); the authors' issue #2 "
                         "trains with 2 2 (saved with the model, so eval needs no flag)")
    tr.add_argument("--obs-std", dest="obs_std", type=float, nargs=4, metavar=("X", "Y", "VX", "VY"),
                    help="divide observations by these instead of the official std; the main: README's diffused-"
                         "action recipe uses twice the official position std and 8 for velocities (medium: 2.67 "
                         "3.04 8 8; saved with the model)")
    tr.add_argument("--steps", type=int, default=3000)
    tr.add_argument("--max-minutes", type=float, help="wall-clock budget: stop (with a checkpoint) after this long")
    tr.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                    help="autocast precision of training (bf16 on a GPU is faster; fp16 needs CUDA)")
    tr.add_argument("--compile", action="store_true",
                    help="torch.compile the model (fuses elementwise kernels; the first steps compile, minutes)")
    tr.add_argument("--batch-size", type=int, default=64)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--warmup", type=int, default=200)
    tr.add_argument("--lr-decay", dest="lr_decay", default="constant", choices=["constant", "cosine"],
                    help="after warmup: constant lr (the reported models), or a cosine to --min-lr-ratio at --steps")
    tr.add_argument("--min-lr-ratio", dest="min_lr_ratio", type=float, default=0.0,
                    help="final lr / lr of the cosine decay")
    tr.add_argument("--ema", type=float, default=0.99)
    tr.add_argument("--ckpt-every", type=int, default=1000)
    tr.add_argument("--log-every", type=int, default=50)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    tr.add_argument("--threads", type=int, help="torch CPU threads")
    tr.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    tr.add_argument("--quiet", action="store_true")

    ev = sub.add_parser("eval", help="evaluate a planner on seeded episodes")
    ev.add_argument("--ckpt", help="checkpoint directory or training run directory (all methods but goal_pd)")
    ev.add_argument("--method", default="df_mcg", choices=METHODS,
                    help="df_mcg, df (w/o MCG), diffuser (inpainting baseline) or goal_pd (no model: PD straight at "
                         "the goal, the control for PD on the plans)")
    ev.add_argument("--maze", default="umaze", choices=["umaze", "medium", "large"])
    ev.add_argument("--multi", action="store_true", help="Multi2D: a random goal per episode")
    ev.add_argument("--both", action="store_true", help="single-task and Multi2D")
    ev.add_argument("--episodes", type=int, default=100)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default="runs/eval")
    ev.add_argument("--show", type=int, default=8, help="episodes drawn in the PNG")
    ev.add_argument("--latency-batch", type=int, default=1, help="envs in the latency comparison (0 = skip)")
    ev.add_argument("--guidance-scale", type=float)
    ev.add_argument("--stop-weight", type=float, help="reward weight of speed near the goal (0: goal distance only)")
    ev.add_argument("--stop-radius", type=float,
                    help="world units: the stop term charges speed with weight exp(-(d / r)^2) (default 1, a cell)")
    ev.add_argument("--stop-where", choices=["near", "after"],
                    help="stop term frames: near (proximity weight, default) or after (from the plan's arrival on)")
    ev.add_argument("--goal-distance", choices=["linear", "tanh", "geodesic", "main"],
                    help="reward per frame: the goal distance d (paper), 2 tanh(d/2) (the authors' main: code's "
                         "squashing), the shortest path to the goal through the maze (not the paper's: it knows the "
                         "map), or main: the authors' main: code's whole cost for full tokens, squashed normalised "
                         "goal distance + 8 x squashed normalised speed + 8 x normalised |action| (asks for rest)")
    ev.add_argument("--wall-cost", type=float,
                    help="with --goal-distance geodesic: cost per unit inside walls (default 20; >= 1)")
    ev.add_argument("--guidance-form", choices=["classifier", "paper"],
                    help="classifier (default): eps' = eps - scale sqrt(1 - a') grad R; paper: the paper: code's "
                         "update x' = DDIM + scale g grad R, g = (1 - a) - sqrt(1 - a') sqrt(1 - a), with its reward "
                         "weighting (episode steps x mean over planned frames); its scales are not the default form's")
    ev.add_argument("--mc-samples", type=int)
    ev.add_argument("--horizon", type=int, help="most steps per plan (default: rest of the episode)")
    ev.add_argument("--replan-every", type=int)
    ev.add_argument("--replan-near", dest="replan_near", type=float, metavar="R",
                    help="not in the paper: an env within R world units of its goal also plans again every "
                         "--replan-near-every steps between the scheduled replans (its rows only; default off)")
    ev.add_argument("--replan-near-every", dest="replan_near_every", type=int, metavar="N",
                    help="with --replan-near: env steps between such replans (default 1)")
    ev.add_argument("--sampling-steps", type=int)
    ev.add_argument("--pos-velocity", dest="pos_velocity", choices=["step", "finite", "smooth"],
                    help="position-only models (--channels pos): the PD's velocity reference, the planned step per "
                         "env step (step, the main: controller's dp_plan; default), that step / dt (finite), or the "
                         "central difference over +-W frames / dt (smooth, W = --pos-velocity-window; the stop term "
                         "reads the same speed)")
    ev.add_argument("--pos-velocity-window", dest="pos_velocity_window", type=int,
                    help="with --pos-velocity smooth: frames each side of the central difference (default 5; the "
                         "position-only preset uses 10)")
    ev.add_argument("--hold-radius", dest="hold_radius", type=float, metavar="R",
                    help="PD only: each plan ends where it comes closest to the goal during its first visit within "
                         "R world units of it, and PD holds that frame at rest (as Diffuser holds its last state; "
                         "paper App. B.5: any time step can be the final step). 0: follow the whole plan (the "
                         "default, except for position-only models, whose preset is 0.5)")
    ev.add_argument("--stall-decay", dest="stall_decay", type=float, metavar="F",
                    help="not in the paper: when a replan finds the ball stalled off the goal (moved less than "
                         "--stall-distance since the last replan: pinned against a wall by a plan through it), "
                         "multiply that episode's guidance by F for the rest of it, so its plans lean on the model's "
                         "prior (1: off; default off, except large's position-only preset: 0.5)")
    ev.add_argument("--stall-distance", dest="stall_distance", type=float, metavar="D",
                    help="with --stall-decay: world units a ball must move between replans not to count as "
                         "stalled (default 0.2)")
    ev.add_argument("--commit-finished", dest="commit_finished", action=argparse.BooleanOptionalAction,
                    help="commit each plan token to the model's cache as soon as it is denoised, so later calls "
                         "feed only the unfinished tokens (default on: faster, the same plans up to float "
                         "rounding; --no-commit-finished feeds every plan token in every call, as before)")
    ev.add_argument("--controller", choices=["actions", "pd"])
    ev.add_argument("--pd-gains", type=float, nargs=2, metavar=("KP", "KD"),
                    help="PD controller a = KP (p_plan - p) + KD (v_plan - v) (default 12.5 1.2, the main: code's)")
    ev.add_argument("--plans-only", action="store_true",
                    help="do not step the env: sample each episode's first plan and measure it against the maze "
                         "(through a wall, reaches the goal); guidance scale 0 tests the model's prior alone")
    ev.add_argument("--wandb", default="auto", choices=["auto", "off", "offline", "online"])
    ev.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--threads", type=int)
    ev.add_argument("--quiet", action="store_true")

    ex = sub.add_parser("export", help="write the EMA weights as a slim inference checkpoint (for eval / sharing)")
    ex.add_argument("--ckpt", required=True, help="checkpoint directory or training run directory")
    ex.add_argument("--out", required=True, help="new directory for model.safetensors + state.json")
    se = sub.add_parser("seeds", help="combine eval results of models trained with different seeds (mean ± SE)")
    se.add_argument("results", nargs="+", help="eval JSON files, one per trained model, evaluated the same way")
    se.add_argument("--quiet", action="store_true", help="no Markdown table on stderr")

    qs = sub.add_parser("quickstart", help="umaze end to end, small (about 10 minutes on 2 CPU cores)")
    qs.add_argument("--out", default="runs/quickstart")
    qs.add_argument("--data-steps", type=int, default=200_000)
    qs.add_argument("--train-steps", type=int, default=3000)
    qs.add_argument("--episodes", type=int, default=50, help="episodes per controller")
    qs.add_argument("--seed", type=int, default=0)
    qs.add_argument("--threads", type=int, default=2)
    qs.add_argument("--guidance-scale", type=float, help="override the umaze df_mcg preset")
    qs.add_argument("--stop-weight", type=float, default=0.0,
                    help="reward weight of speed near the goal (default 0: the paper's goal reward)")
    qs.add_argument("--wandb", default="auto", choices=["auto", "off", "offline", "online"])
    return parser


COMMANDS = {"data": cmd_data, "train": cmd_train, "eval": cmd_eval, "export": cmd_export, "seeds": cmd_seeds,
            "quickstart": cmd_quickstart}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dforce-plan`` console script; prints the result as JSON on stdout."""
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command](args)
    except (CliError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"dforce-plan: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
