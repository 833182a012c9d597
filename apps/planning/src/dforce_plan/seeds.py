"""Combine ``dforce-plan eval`` results of models trained with different seeds into one row per task.

One training run can be lucky: on these mazes the score of a second training seed differed from the first by
more than the gap between methods (README, "a second training seed"). A row that claims a method's score
should therefore be a mean over training seeds, with the spread between them.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

# what must agree between the runs that form one row: the same task, method and evaluation protocol
_PROTOCOL = ("method", "controller", "episodes", "seed")
_MODEL = ("maze", "kind", "frame_stack", "n_tokens", "d_model", "n_layers", "n_heads", "objective", "loss_weighting",
          "backbone", "z_dim", "network_size", "num_mlp_layers", "num_gru_layers", "channels")
# model fields added later: a file written before them had the default (its models were transformers)
_MODEL_DEFAULTS = {"backbone": "transformer", "z_dim": 128, "network_size": 16, "num_mlp_layers": 4,
                   "num_gru_layers": 1, "channels": "full"}
# figures whose mean over the models is reported beside the score
_MEANS = ("success_rate", "goal_hold", "score_if_stay", "steps_to_goal_all", "goal_speed", "goal_slow_frac")


def load_results(paths: list[str | Path]) -> list[tuple[str, dict[str, Any]]]:
    """(file, result) pairs from eval JSON files ({env_id: summary}) or summary files; ValueError naming a bad one."""
    runs = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; give the JSON that `dforce-plan eval` printed")
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not JSON ({exc}); give the JSON that `dforce-plan eval` printed") from exc
        if isinstance(result, dict) and "env_id" in result and "score" in result:
            result = {result["env_id"]: result}  # one task's <out>/<name>_summary.json
        if not isinstance(result, dict) or not result or not all(
                isinstance(v, dict) and "score" in v for v in result.values()):
            raise ValueError(f"{path} is not a `dforce-plan eval` result ({{env_id: summary}} with a score)")
        runs.append((str(path), result))
    return runs


def _check_same(env_id: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """ValueError unless the runs share protocol, planner settings and model shape, and no run is given twice."""
    first_file, first = rows[0]
    for file, row in rows[1:]:
        for key in _PROTOCOL:
            if row.get(key) != first.get(key):
                raise ValueError(f"{env_id}: {key} differs ({first_file}: {first.get(key)!r}, {file}: "
                                 f"{row.get(key)!r}); combine only runs evaluated the same way")
        # a key only one file has is an option added after the other file was written (at its old behaviour)
        mine, theirs = row.get("planner", {}), first.get("planner", {})
        diff = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
        if diff:
            raise ValueError(f"{env_id}: planner settings differ between {first_file} and {file} ({', '.join(diff)}); "
                             "combine only runs with the same settings")
        for key in _MODEL:
            default = _MODEL_DEFAULTS.get(key)
            if row.get("model", {}).get(key, default) != first.get("model", {}).get(key, default):
                raise ValueError(f"{env_id}: model {key} differs between {first_file} and {file}; combine only "
                                 "models of one architecture trained with different seeds")
        data = [(r.get("checkpoint") or {}).get("data") or {} for r in (first, row)]
        if data[0].get("sha256") and data[1].get("sha256") and data[0]["sha256"] != data[1]["sha256"]:
            raise ValueError(f"{env_id}: {first_file} and {file} come from models trained on different data "
                             f"(sha256 {data[0]['sha256'][:12]}... and {data[1]['sha256'][:12]}...); combine only "
                             "training seeds on one dataset")
    seen: dict[tuple, str] = {}
    checkpoints: dict[str, str] = {}
    for file, row in rows:
        path = (row.get("checkpoint") or {}).get("path")
        if path is not None:
            if path in checkpoints:
                raise ValueError(f"{env_id}: {checkpoints[path]} and {file} evaluate the same checkpoint {path}; "
                                 "give each training seed once")
            checkpoints[path] = file
        key = (row["score"], row.get("raw_return"), row.get("steps_to_goal_all"))
        if key in seen:
            raise ValueError(f"{env_id}: {seen[key]} and {file} hold the same results; give each training seed once")
        seen[key] = file


def combine(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per env_id: mean score over the models, the std between them (n-1) and its standard error, std / sqrt(n)."""
    by_env: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for file, result in runs:
        for env_id, row in result.items():
            by_env.setdefault(env_id, []).append((file, row))
    out: dict[str, dict[str, Any]] = {}
    for env_id, rows in by_env.items():
        _check_same(env_id, rows)
        scores = [float(row["score"]) for _, row in rows]
        n = len(scores)
        mean = statistics.fmean(scores)
        std = statistics.stdev(scores) if n > 1 else None  # n - 1 in the denominator
        first = rows[0][1]
        entry: dict[str, Any] = {
            "env_id": env_id, "method": first.get("method"), "controller": first.get("controller"),
            "models": n, "episodes_per_model": first.get("episodes"), "episode_seed": first.get("seed"),
            "score": mean, "score_std_models": std,
            "score_sem_models": std / math.sqrt(n) if std is not None else None,
            "scores": scores, "score_sems": [row.get("score_sem") for _, row in rows],
            "min": min(scores), "max": max(scores), "paper_score": first.get("paper_score"),
            "files": [file for file, _ in rows],
        }
        for key in _MEANS:
            # None when a file predates the figure; goal_hold is NaN for a model without a success, and the
            # mean is then over the models that have one
            values = [row.get(key) for _, row in rows]
            finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
            entry[key] = statistics.fmean(finite) if finite and None not in values else None
        out[env_id] = entry
    return out


def table(combined: dict[str, dict[str, Any]]) -> str:
    """A Markdown table of combined rows (one line per env_id)."""
    lines = ["| env | method | models | score (mean ± SE over models) | per model | success | goal_hold | paper |",
             "|---|---|---|---|---|---|---|---|"]
    for row in combined.values():
        sem = "" if row["score_sem_models"] is None else f" ± {row['score_sem_models']:.1f}"
        success = "" if row["success_rate"] is None else f"{100 * row['success_rate']:.0f}%"
        hold = "" if row["goal_hold"] is None else f"{row['goal_hold']:.2f}"
        per = " / ".join(f"{s:.1f}" for s in row["scores"])
        lines.append(f"| {row['env_id']} | {row['method']} ({row['controller']}) | {row['models']} | "
                     f"{row['score']:.1f}{sem} | {per} | {success} | {hold} | {row['paper_score']} |")
    return "\n".join(lines)
