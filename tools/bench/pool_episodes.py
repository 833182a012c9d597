"""Recompute the pooled maze2d table (two sets of 100 episodes per model) from the committed per-episode scores.

    uv run python tools/bench/pool_episodes.py [SCORES.json ...]

By default it reads docs/results/2026-12-06_second100_episode_scores.json (the DF rows) and
docs/results/2026-12-06_diffuser_pos_episode_scores.json (the position-only Diffuser-style baseline). Each file
maps "maze/method/task/modelI" to each model's episode scores on seeds 0-99 and 100-199 (the runs they came from
are named in it). Per row: the mean ± SE over the models of each set alone and of both sets pooled (200
episodes per model), and the SE over the 200 episodes with each episode's score averaged over the models (the
uncertainty from which episodes were drawn, which the SE over models does not see: the models share their
episodes). Prints a Markdown table, then one JSON line per row.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "docs/results"
DEFAULTS = (RESULTS / "2026-12-06_second100_episode_scores.json",
            RESULTS / "2026-12-06_diffuser_pos_episode_scores.json")
PAPER_DF = {("umaze", "single"): 116.7, ("umaze", "Multi2D"): 119.1, ("medium", "single"): 149.4,
            ("medium", "Multi2D"): 152.3, ("large", "single"): 159.0, ("large", "Multi2D"): 167.1}  # reference §6.1
# the paper's Table 1 figure of the same method: "Ours w/o MCG", and Diffuser* (Diffuser's own, PD controller)
PAPER_SAME = {"df_mcg": PAPER_DF,
              "df": {("umaze", "single"): 110.1, ("umaze", "Multi2D"): 107.7, ("medium", "single"): 136.1,
                     ("medium", "Multi2D"): 145.6, ("large", "single"): 142.8, ("large", "Multi2D"): 129.8},
              "diffuser": {("umaze", "single"): 113.9, ("umaze", "Multi2D"): 128.9, ("medium", "single"): 121.5,
                           ("medium", "Multi2D"): 127.2, ("large", "single"): 123.0, ("large", "Multi2D"): 132.1}}


def mean_sem(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (n - 1 in the variance; NaN for a single value)."""
    if len(values) < 2:
        return statistics.fmean(values), math.nan
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def pool(rows: dict[str, dict]) -> list[dict]:
    """One summary per maze/method/task of the per-model episode scores in ``rows``."""
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for key in sorted(rows):
        maze, method, task, _ = key.split("/")
        groups[(maze, method, task)].append(rows[key])
    out = []
    for (maze, method, task), models in groups.items():
        a = [m["scores_seeds_0_99"] for m in models]
        b = [m["scores_seeds_100_199"] for m in models]
        if any(len(x) != 100 for x in a + b):
            raise ValueError(f"{maze}/{method}/{task}: every model needs 100 scores per set")
        both = [x + y for x, y in zip(a, b, strict=True)]  # (models, 200)
        per_episode = [sum(col) / len(col) for col in zip(*both, strict=True)]  # (200,): averaged over the models
        row = {"maze": maze, "method": method, "task": task, "models": len(models),
               "seeds_0_99": mean_sem([sum(x) / len(x) for x in a]),
               "seeds_100_199": mean_sem([sum(x) / len(x) for x in b]),
               "pooled": mean_sem([sum(x) / len(x) for x in both]),
               "per_model": [sum(x) / len(x) for x in both],
               "se_episodes": mean_sem(per_episode)[1], "paper_df": PAPER_DF[(maze, task)],
               "paper_same_method": PAPER_SAME.get(method, {}).get((maze, task))}
        out.append(row)
    return out


def main(argv: list[str]) -> None:
    merged: dict[str, dict] = {}
    for path in [Path(a) for a in argv] or list(DEFAULTS):
        if not path.is_file():
            raise SystemExit(f"pool_episodes: no scores file {path}; pass existing files, or run from a full checkout")
        table = json.loads(path.read_text(encoding="utf-8"))
        clash = sorted(set(merged) & set(table))
        if clash:
            raise ValueError(f"{path} repeats rows already read: {clash[:3]}; pass each file once")
        merged.update(table)
    rows = pool(merged)
    fmt = lambda ms: f"{ms[0]:.1f} ± {ms[1]:.1f}"  # noqa: E731
    print("| maze | method | task | seeds 0-99 | seeds 100-199 | 200 episodes per model | per model | SE over episodes | "
          "paper DF | paper, same method |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['maze']} | {r['method']} | {r['task']} | {fmt(r['seeds_0_99'])} | {fmt(r['seeds_100_199'])} | "
              f"**{fmt(r['pooled'])}** | {' / '.join(f'{v:.1f}' for v in r['per_model'])} | {r['se_episodes']:.1f} | "
              f"{r['paper_df']} | {r['paper_same_method'] if r['paper_same_method'] is not None else '-'} |")
    for r in rows:  # strict JSON: an SE over a single model (NaN) is null
        print(json.dumps({k: [None if isinstance(x, float) and math.isnan(x) else x for x in v]
                          if isinstance(v, (tuple, list)) else v for k, v in r.items()}))


if __name__ == "__main__":
    main(sys.argv[1:])
