"""One benchmark run: methods x seeds trained and scored on a dataset's test windows, results JSON and plots.

Every run is scored under both evaluations (``dforce_forecast.data.EVALUATIONS``) with the same sampling seed:
``rollout`` (the real forecast) and ``one_step`` (the authors' code, whose horizon lags come from the truth). The
top-level metrics of a run and ``summary`` follow ``config.evaluation``; ``by_evaluation`` /
``summary_by_evaluation`` hold both.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dforce_datasets.timeseries import DATASETS, load_dataset, to_multivariate
from dforce_forecast.baselines import SeasonalRandomWalk
from dforce_forecast.config import METHODS, ForecastConfig
from dforce_forecast.data import EVALUATIONS, PreparedData, prepare
from dforce_forecast.forecaster import Forecaster
from dforce_forecast.metrics import evaluate
from dforce_forecast.plots import plot_forecast

METRICS = ("crps_sum", "crps", "nd", "nrmse")


def parse_methods(text: str | Sequence[str]) -> list[str]:
    """``"df,tf,naive"`` -> ["df", "tf", "naive"], checked, order kept, duplicates dropped."""
    items = [m.strip() for m in (text.split(",") if isinstance(text, str) else text)]
    items = [m for m in items if m]
    if not items:
        raise ValueError(f"--methods needs at least one of {', '.join(METHODS)}")
    bad = [m for m in items if m not in METHODS]
    if bad:
        raise ValueError(f"unknown method(s) {bad}; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(items))


def load_prepared(dataset: str, config: ForecastConfig, *, data_dir: str | None = None,
                  cache_dir: str | None = None, download: bool = True) -> PreparedData:
    """Load a registered dataset or a GluonTS directory / archive and cut its forecasting view."""
    ds = load_dataset(dataset, data_dir=data_dir, cache_dir=cache_dir, download=download)
    info = DATASETS.get(dataset)
    md = to_multivariate(ds, max_target_dim=info.max_target_dim if info else None)
    return prepare(md, target=config.target, context_length=config.context_length, name=Path(dataset).name)


def summarize(values: Sequence[float]) -> dict[str, float]:
    """mean, std (sample std, ddof=1; 0 for one seed), min, max."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": int(a.size)}


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    tmp.replace(path)


def run_experiment(dataset: str, *, methods: Sequence[str] = ("df", "tf", "naive"), seeds: int = 1,
                   seed_offset: int = 0, max_minutes: float | None = None, out: str | Path = "forecast_runs",
                   config: ForecastConfig | None = None, data_dir: str | None = None, cache_dir: str | None = None,
                   download: bool = True, progress: bool = True, plots: bool = True,
                   plot_window: int = -1, max_plot_series: int = 8,
                   val_windows: int | None = None) -> dict[str, Any]:
    """Train and score every method for ``seeds`` seeds; write ``results.json`` (after every run) and PNGs."""
    config = config if config is not None else ForecastConfig()
    methods = parse_methods(methods)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"--seeds must be an int >= 1, got {seeds!r}")
    if val_windows is not None and (isinstance(val_windows, bool) or not isinstance(val_windows, int)
                                    or val_windows < 1):
        raise ValueError(f"--val-windows must be an int >= 1, got {val_windows!r}")
    if max_minutes is not None and not max_minutes > 0:
        raise ValueError(f"--max-minutes must be > 0, got {max_minutes}")
    out = Path(out)
    if (out / "results.json").exists():  # its runs, checkpoints and plots would be replaced
        raise FileExistsError(f"{out} holds the results of an earlier run ({out / 'results.json'}); give a new "
                              "--out (more seeds of the same setup: a new --out with --seed-offset)")
    out.mkdir(parents=True, exist_ok=True)
    t_load = time.perf_counter()
    data = load_prepared(dataset, config, data_dir=data_dir, cache_dir=cache_dir, download=download)
    n_win = data.test.num_windows
    if not -n_win <= plot_window < n_win:
        raise ValueError(f"--plot-window must be in [{-n_win}, {n_win - 1}], got {plot_window}")
    results: dict[str, Any] = {
        "dataset": dataset, "freq": data.freq, "target_dim": data.target_dim,
        "prediction_length": data.spec.prediction_length, "context_length": data.spec.context_length,
        "lags": list(data.spec.lags), "num_test_windows": n_win, "train_steps": int(data.train_raw.shape[0]),
        "methods": methods, "seeds": [seed_offset + i for i in range(seeds)], "max_minutes": max_minutes,
        "config": config.to_dict(), "val_windows": val_windows if val_windows is not None else n_win,
        "load_seconds": time.perf_counter() - t_load,
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cuda": torch.cuda.is_available()},
        "command": " ".join(sys.argv), "runs": [], "summary": {},
    }
    path = out / "results.json"
    for method in methods:
        for k in range(seeds):
            seed = seed_offset + k
            run_dir = out / method / f"seed_{seed}"
            t0 = time.perf_counter()
            record: dict[str, Any] = {"method": method, "seed": seed}
            if method in ("naive", "naive_vol"):
                model: Any = SeasonalRandomWalk(scale_by_context=method == "naive_vol").fit(data)
                record["season"] = model.season
                train_s = 0.0
            else:
                model = Forecaster(config, method)
                report = model.fit(data, seed=seed, max_minutes=max_minutes, out_dir=run_dir, progress=progress,
                                   val_windows=val_windows)
                record["train"] = report.to_dict()
                model.save(run_dir / "forecaster")
                train_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            by_eval = {ev: model.sample_windows(data.test, num_samples=config.num_samples, seed=10_000 + seed,
                                                evaluation=ev) for ev in EVALUATIONS}
            record["test_sample_seconds"] = time.perf_counter() - t1
            record["train_seconds"] = train_s
            record["evaluation"] = config.evaluation
            record["by_evaluation"] = {ev: evaluate(s, data.test.truth) for ev, s in by_eval.items()}
            record.update(record["by_evaluation"][config.evaluation])
            record["seconds"] = time.perf_counter() - t0
            results["runs"].append(record)
            if progress:
                other = "one_step" if config.evaluation == "rollout" else "rollout"
                print(f"[{method} seed {seed}] test ({config.evaluation}) crps_sum {record['crps_sum']:.5f} crps "
                      f"{record['crps']:.5f} nd {record['nd']:.5f} nrmse {record['nrmse']:.5f}; {other} crps_sum "
                      f"{record['by_evaluation'][other]['crps_sum']:.5f} ({record['seconds']:.0f}s)",
                      file=sys.stderr, flush=True)
            if plots and k == 0:  # forecast_<method>.png: config.evaluation; forecast_<method>_<other>.png
                w = plot_window % n_win
                record["plots"] = {}
                for ev, ev_samples in by_eval.items():
                    name = f"forecast_{method}.png" if ev == config.evaluation else f"forecast_{method}_{ev}.png"
                    png = plot_forecast(ev_samples[w], data.test.raw_history[w], data.test.truth[w], out / name,
                                        max_series=max_plot_series,
                                        title=f"{dataset} - {method} (seed {seed}), test window {w}, evaluation {ev}")
                    record["plots"][ev] = str(png)
                record["plot"] = record["plots"][config.evaluation]
            results["summary_by_evaluation"] = {
                ev: {m: {metric: summarize([r["by_evaluation"][ev][metric] for r in results["runs"]
                                            if r["method"] == m]) for metric in METRICS}
                     for m in methods if any(r["method"] == m for r in results["runs"])}
                for ev in EVALUATIONS
            }
            results["summary"] = results["summary_by_evaluation"][config.evaluation]
            _write_json(path, results)
    results["results_path"] = str(path)
    return results


def format_table(results: dict[str, Any]) -> str:
    """A plain-text table of mean +- std per method and metric, one block per evaluation."""
    lines = [f"{results['dataset']}: {results['num_test_windows']} test windows, seeds {results['seeds']}"]
    by_eval = results.get("summary_by_evaluation") or {results["config"]["evaluation"]: results["summary"]}
    for ev, summary in by_eval.items():
        note = " (real forecast)" if ev == "rollout" else " (the authors' code: horizon lags from the truth)"
        lines.append(f"evaluation {ev}{note}")
        lines.append(f"{'method':10s} " + " ".join(f"{m:>20s}" for m in METRICS))
        for method, stats in summary.items():
            cells = [f"{stats[m]['mean']:.5f} +- {stats[m]['std']:.5f}" for m in METRICS]
            lines.append(f"{method:10s} " + " ".join(f"{c:>20s}" for c in cells))
    return "\n".join(lines)
