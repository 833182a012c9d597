"""The evaluator: seeded episodes on VectorMaze2d, D4RL normalized score, success, time to goal, latency."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from .planner import Planner, splice
from .presets import SLOW_SPEED

PAPER_SCORES = {  # DF paper Table 1 ("Ours"), D4RL normalized x 100 (reference §6.1; scale caveat in §5.2)
    ("umaze", False): 116.7, ("medium", False): 149.4, ("large", False): 159.0,
    ("umaze", True): 119.1, ("medium", True): 152.3, ("large", True): 167.1,
}


@dataclass
class EvalConfig:
    """Which task, how many seeded episodes (all stepped together), what to draw and time."""

    maze: str = "umaze"
    multi: bool = False  # Multi2D: a random goal per episode
    episodes: int = 100
    # episode i is reset with seed + i (its start and, in Multi2D, goal); the plans' noise comes from one
    # generator seeded with `seed` for the whole batch, so an episode's plans are reproduced by the same
    # (seed, episodes) pair, not by its own reset seed alone
    seed: int = 0
    show: int = 8  # episodes drawn in the picture
    latency_batch: int = 1  # envs per replan in the latency comparison (0 = skip it)
    latency_repeats: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        if self.maze not in ("umaze", "medium", "large"):
            raise ValueError(f"maze must be umaze, medium or large, got {self.maze!r}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.show < 0 or self.latency_batch < 0 or self.latency_repeats < 1:
            raise ValueError("show and latency_batch must be >= 0 and latency_repeats >= 1")

    @property
    def env_id(self) -> str:
        """The registered gymnasium id of the task."""
        return f"dforce/maze2d-{'multi-' if self.multi else ''}{self.maze}-v1"


def _mean_sem(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    sem = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else float("nan")
    return float(values.mean()), sem


def goal_hold(returns: np.ndarray, first_reach: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Per episode: the steps an agent that stayed from its first arrival on would collect, and the fraction kept.

    The sparse reward pays 1 per step inside the goal, so after the first arrival (``first_reach`` = t + 1 for
    an arrival during step t, -1 for a miss) at most ``horizon - first_reach + 1`` steps can pay: the authors'
    ``episode_reward_if_stay`` (reference §6.1). ``hold`` = return / that count, 1 for an agent that never
    leaves the goal again, NaN for a miss.
    """
    first_reach = np.asarray(first_reach)
    reached = first_reach >= 0
    if_stay = np.where(reached, horizon - first_reach + 1, 0).astype(np.float64)  # (n,)
    if np.any(np.asarray(returns)[reached] > if_stay[reached] + 1e-9):
        raise ValueError("a return exceeds the steps left after the first arrival: first_reach or horizon is wrong")
    hold = np.full(if_stay.shape, np.nan)
    hold[reached] = np.asarray(returns, dtype=np.float64)[reached] / if_stay[reached]
    return if_stay, hold


class GoalSpeed:
    """Speeds of the ball over the env steps that end inside the goal radius, summed over a batch of episodes."""

    SLOW = SLOW_SPEED

    def __init__(self) -> None:
        self.speeds: list[np.ndarray] = []

    def add(self, obs: np.ndarray, inside: np.ndarray) -> None:
        """Record the speeds |(vx, vy)| of observations (B, 4) whose ball is inside the goal (mask (B,))."""
        obs, inside = np.asarray(obs), np.asarray(inside, dtype=bool)
        if obs.ndim != 2 or obs.shape[1] != 4 or inside.shape != obs.shape[:1]:
            raise ValueError(f"expected obs (B, 4) and a mask (B,), got {obs.shape} and {inside.shape}")
        self.speeds.append(np.linalg.norm(obs[inside, 2:], axis=1))  # (inside,)

    def summary(self) -> dict[str, float]:
        """``goal_speed`` (mean), ``goal_speed_median`` and ``goal_slow_frac`` (share below SLOW); NaN when never inside."""
        v = np.concatenate(self.speeds) if self.speeds else np.zeros(0)
        if v.size == 0:
            return {"goal_speed": float("nan"), "goal_speed_median": float("nan"), "goal_slow_frac": float("nan")}
        return {"goal_speed": float(v.mean()), "goal_speed_median": float(np.median(v)),
                "goal_slow_frac": float((v < self.SLOW).mean())}


def measure_latency(planner: Planner, obs: np.ndarray, goals: np.ndarray, steps: int, repeats: int,
                    seed: int = 0) -> dict[str, Any]:
    """ms per replan of the planner as configured vs our reference path (unbatched MCG, no KV cache).

    Both plan the same observations with the same seed, so their plans must agree (``max_abs_diff``; and
    ``max_abs_diff_executed`` over the steps executed before the next replan).
    """
    ref_cfg = dataclasses.replace(planner.config, batched_mcg=False, use_cache=False)
    reference = Planner(planner.model, planner.spec, ref_cfg)
    out: dict[str, Any] = {"batch": int(obs.shape[0]), "steps": int(planner.horizon_steps(steps)),
                           "mc_samples": planner.config.mc_samples if planner.config.method == "df_mcg" else 1}
    plans = {}
    for name, p in (("fast", planner), ("reference", reference)):
        times = []
        for _ in range(repeats):
            plan = p.plan(obs, goals, steps, generator=torch.Generator(planner.device).manual_seed(seed))
            times.append(plan.seconds)
        plans[name] = plan
        out[f"{name}_ms"] = 1000.0 * float(np.median(times))
    out["speedup"] = out["reference_ms"] / max(out["fast_ms"], 1e-9)
    gap = np.abs(plans["fast"].positions - plans["reference"].positions)  # (B, steps, 2)
    out["max_abs_diff"] = float(gap.max())
    # the steps the agent executes before replanning: a non-smooth reward (the geodesic one) can turn float noise
    # into different far plans (a route that flips at a ridge of the distance field) while these still agree
    out["max_abs_diff_executed"] = float(gap[:, : planner.config.replan_every or gap.shape[1]].max())
    return out


def _free_name(out: Path, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``, ... : the first whose outputs do not exist yet (never overwrite)."""
    candidate, k = name, 1
    while any((out / f"{candidate}{suffix}").exists() for suffix in ("_summary.json", "_episodes.jsonl", ".png")):
        k += 1
        candidate = f"{name}-{k}"
    return candidate


def _logger(out_dir: Path, wandb: str, config: dict[str, Any]):
    from dforce_train import make_logger

    mode = wandb
    if mode == "auto":
        mode = "offline" if importlib.util.find_spec("wandb") is not None else "off"
    if os.environ.get("WANDB_MODE") == "disabled":
        mode = "off"
    return make_logger(out_dir, wandb=False if mode == "off" else mode, project="dforce-plan",
                       run_name=f"{config.get('method')}-{config.get('env_id')}", config=config)


def evaluate(planner: Planner, cfg: EvalConfig, out_dir: str | Path | None = None, *, wandb: str = "auto",
             tag: str | None = None, checkpoint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``cfg.episodes`` seeded episodes; return (and, with ``out_dir``, log and draw) the summary.

    ``checkpoint`` (``model.checkpoint_provenance``) is copied into the summary beside this machine's numerics.
    """
    from dforce_datasets.maze2d import VectorMaze2d, get_task, normalized_score
    from dforce_train import numerics_fingerprint

    task = get_task(cfg.env_id)
    horizon = task.max_episode_steps
    n = cfg.episodes
    venv = VectorMaze2d(task.maze, n, multi_goal=cfg.multi, max_episode_steps=horizon)
    obs, info = venv.reset(seed=cfg.seed)
    goals = info["target"].copy()
    starts = obs[:, :2].copy()
    gen = torch.Generator(planner.device).manual_seed(cfg.seed)
    show = min(cfg.show, n)
    returns = np.zeros(n)
    first_reach = np.full(n, -1, dtype=np.int64)
    goal_speed = GoalSpeed()
    paths = [[obs[i, :2].copy()] for i in range(show)]
    plan_paths: list[list[np.ndarray]] = [[] for _ in range(show)]
    replan_s: list[float] = []
    plan = None
    weights, last = np.ones(n), obs[:, :2].copy()  # (n,) guidance weights (stall_decay), positions at the last replan
    born = np.zeros(n, dtype=np.int64)  # (n,): the step each env's rows of the plan were made (replan_near)
    near_s: list[float] = []  # seconds per replan_near replan (a subset of the envs)
    near_rows = 0
    t_start = time.perf_counter()
    for t in tqdm(range(horizon), desc=f"eval {planner.config.method} {cfg.env_id}", disable=not cfg.progress,
                  dynamic_ncols=True):
        if planner.needs_replan(plan, t):
            if plan is not None:
                weights = planner.stall_weights(weights, last, obs, goals)
            last = obs[:, :2].copy()
            plan = planner.plan(obs, goals, horizon - t, t0=t, generator=gen,
                                guidance_weights=None if planner.config.stall_decay is None else weights)
            replan_s.append(plan.seconds)
            born[:] = t
            for i in range(show):
                plan_paths[i].append(np.concatenate([obs[i : i + 1, :2], plan.positions[i]]))
        elif (near := planner.near_due(obs, goals, born, t)).any():  # replan_near: only the envs near their goal
            sub = planner.plan(obs[near], goals[near], horizon - t, t0=t, generator=gen,
                               guidance_weights=None if planner.config.stall_decay is None else weights[near])
            plan = splice(plan, near, sub)
            near_s.append(sub.seconds)
            near_rows += int(near.sum())
            born[near] = t
            for i in np.flatnonzero(near[:show]):
                plan_paths[i].append(np.concatenate([obs[i : i + 1, :2], sub.positions[int(near[:i].sum())]]))
        obs, rewards, _, _, info = venv.step(planner.act(plan, obs, t))
        returns += rewards
        first_reach[(first_reach < 0) & info["success"]] = t + 1
        goal_speed.add(obs, info["success"])
        for i in range(show):
            paths[i].append(obs[i, :2].copy())
    wall = time.perf_counter() - t_start

    scores = np.array([100.0 * normalized_score(cfg.env_id, r) for r in returns])
    success = first_reach >= 0
    score, sem = _mean_sem(scores)
    reach_mean, reach_sem = _mean_sem(first_reach[success]) if success.any() else (float("nan"), float("nan"))
    if_stay, hold = goal_hold(returns, first_reach, horizon)
    summary: dict[str, Any] = {
        "env_id": cfg.env_id, "method": planner.config.method, "controller": planner.config.controller,
        "episodes": n, "seed": cfg.seed, "score": score, "score_sem": sem,
        "paper_score": PAPER_SCORES[(cfg.maze, cfg.multi)],
        "raw_return": float(returns.mean()), "success_rate": float(success.mean()),
        "steps_to_goal": reach_mean, "steps_to_goal_sem": reach_sem,
        "steps_to_goal_median": float(np.median(first_reach[success])) if success.any() else float("nan"),
        # every episode, a miss counted as the whole episode: does not favour methods that succeed less often
        "steps_to_goal_all": float(np.where(success, first_reach, horizon).mean()),
        # after the first arrival: the fraction of steps spent inside the goal (mean over successes), and the
        # score an agent that stayed would get (the authors' episode_reward_if_stay, normalized x 100)
        "goal_hold": float(np.nanmean(hold)) if success.any() else float("nan"),
        "score_if_stay": float(np.mean([100.0 * normalized_score(cfg.env_id, r) for r in if_stay])),
        # the ball's speed (world units/s) on the steps it ends inside the goal, and how many of them are slow
        # enough to stay (< 0.5 units/s): the walk data never stops, so a planner that imitates it passes through
        **goal_speed.summary(),
        # stall_decay: the share of episodes whose guidance was cut at least once (the ball stalled off the goal)
        "stalled_frac": float((weights < 1.0).mean()),
        "replans": len(replan_s), "replan_ms_batch": 1000.0 * float(np.mean(replan_s)),
        # replan_near: the extra replans of envs near their goal (each a subset of the batch), and their env-plans
        "near_replans": len(near_s), "near_replan_rows": near_rows,
        "near_replan_ms": 1000.0 * float(np.mean(near_s)) if near_s else float("nan"),
        "replan_ms_per_env": 1000.0 * float(np.mean(replan_s)) / n, "wall_s": wall,
        "planner": planner.config.to_dict(), "model": None if planner.spec is None else planner.spec.to_dict(),
        "checkpoint": checkpoint, "machine": numerics_fingerprint(),
    }
    if cfg.latency_batch > 0 and planner.model is not None:
        k = min(cfg.latency_batch, n)
        obs0, _ = VectorMaze2d(task.maze, k, multi_goal=cfg.multi).reset(seed=cfg.seed)
        summary["latency"] = measure_latency(planner, obs0, goals[:k], horizon, cfg.latency_repeats, cfg.seed)

    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        pd = "_pd" if planner.config.controller == "pd" and planner.config.method not in ("diffuser", "goal_pd") else ""
        name = _free_name(out, tag or f"{planner.config.method}{pd}_{'multi-' if cfg.multi else ''}{cfg.maze}")
        summary["name"] = name
        with (out / f"{name}_episodes.jsonl").open("w", encoding="utf-8") as f:
            for i in range(n):
                f.write(json.dumps({"episode": i, "seed": cfg.seed + i, "return": float(returns[i]),
                                    "score": float(scores[i]), "success": bool(success[i]),
                                    "first_reach": int(first_reach[i]),
                                    "hold": None if np.isnan(hold[i]) else float(hold[i]),
                                    "guidance_weight": float(weights[i]),
                                    "start": starts[i].tolist(),
                                    "goal": goals[i].tolist()}) + "\n")
        if show:
            from dforce_datasets.maze2d import get_layout

            from .plot import plot_episodes

            titles = [f"ep {i}: score {scores[i]:.0f}" + (f", goal at {first_reach[i]}" if success[i] else ", missed")
                      for i in range(show)]
            png = plot_episodes(out / f"{name}.png", get_layout(task.maze), [np.array(p) for p in paths],
                                plan_paths, goals[:show], titles,
                                suptitle=f"{planner.config.method} on {cfg.env_id}: score {score:.1f} ± {sem:.1f}, "
                                         f"success {100 * success.mean():.0f}%")
            summary["picture"] = str(png)
        logger = _logger(out, wandb, summary)
        try:
            flat = {k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            flat.update({f"latency_{k}": v for k, v in summary.get("latency", {}).items()})
            logger.log(flat, 0)
            if "picture" in summary:
                logger.log_image("trajectories", summary["picture"], 0)
        finally:
            logger.close()
        (out / f"{name}_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary

