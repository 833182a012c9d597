"""One trained forecaster scored two ways on a dataset's test windows: the real rollout and the authors' one-step.

The authors' time-series code (reference.md section 5.3) builds the lag covariates of every test horizon from
the ground truth, so each horizon step of its "forecast" starts from the true previous value
(``evaluation="one_step"``, ``dforce_forecast.data``). This script loads a forecaster saved by
``dforce-forecast run`` (``<out>/<method>/seed_<k>/forecaster``), samples the test windows both ways with the
same seed, prints both CRPS-sums and draws one window: the summed series and the first series, one row per
evaluation (history, truth, median, 50% and 90% bands).

    uv run python tools/bench/forecast_evaluations.py --model runs/s13/fc_onestep_level/df/seed_0/forecaster

Last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
from dforce_forecast import Forecaster
from dforce_forecast.data import EVALUATIONS, prepare
from dforce_forecast.metrics import crps_sum

from dforce_datasets.timeseries import DATASETS, load_dataset, to_multivariate

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"


def draw(samples: dict[str, np.ndarray], history: np.ndarray, truth: np.ndarray, path: Path, title: str,
         series: int = 3) -> Path:
    """PNG: rows = evaluations, columns = the summed series then the first ``series`` series of one window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 1 + min(series, truth.shape[-1])
    fig, axes = plt.subplots(len(samples), cols, figsize=(3.6 * cols, 2.7 * len(samples)), squeeze=False)
    t_hist, t_fut = np.arange(-history.shape[0], 0), np.arange(truth.shape[0])
    for row, (ev, s) in enumerate(samples.items()):  # s (S, P, D)
        for col in range(cols):
            pick = (lambda a: a.sum(-1)) if col == 0 else (lambda a, j=col - 1: a[..., j])  # noqa: E731
            q = np.quantile(pick(s), [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)  # (5, P)
            ax = axes[row][col]
            ax.plot(t_hist, pick(history), color="black", lw=1.0, label="history")
            ax.plot(t_fut, pick(truth), color="black", lw=1.0, ls="--", label="truth")
            ax.fill_between(t_fut, q[0], q[4], color="tab:blue", alpha=0.2, label="90%")
            ax.fill_between(t_fut, q[1], q[3], color="tab:blue", alpha=0.4, label="50%")
            ax.plot(t_fut, q[2], color="tab:blue", lw=1.2, label="median")
            name = "sum of the series" if col == 0 else f"series {col - 1}"
            ax.set_title(f"{ev}: {name}", fontsize=9)
            ax.tick_params(labelsize=7)
            if row == 0 and col == 0:
                ax.legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a saved forecaster directory (forecaster.json + safetensors)")
    ap.add_argument("--dataset", default="exchange_rate_nips")
    ap.add_argument("--data-dir", default=str(SHARED_DATA), help="directory holding <dataset>.tar.gz or <dataset>/")
    ap.add_argument("--num-samples", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (the same for both evaluations)")
    ap.add_argument("--window", type=int, default=-1, help="test window to draw (default: the last)")
    ap.add_argument("--out", default=".bench/forecast_evaluations.png")
    args = ap.parse_args(argv)
    if args.num_samples < 2:
        ap.error("--num-samples must be >= 2")
    fc = Forecaster.load(args.model)
    info = DATASETS.get(args.dataset)
    md = to_multivariate(load_dataset(args.dataset, data_dir=args.data_dir, download=False),
                         max_target_dim=info.max_target_dim if info else None)
    data = prepare(md, target=fc.config.target, context_length=fc.config.context_length, name=args.dataset)
    w = data.test
    if not -w.num_windows <= args.window < w.num_windows:
        ap.error(f"--window must be in [{-w.num_windows}, {w.num_windows - 1}]")
    samples = {ev: fc.sample_windows(w, num_samples=args.num_samples, seed=args.seed, evaluation=ev)
               for ev in EVALUATIONS}
    scores = {ev: crps_sum(s, w.truth) for ev, s in samples.items()}
    i = args.window % w.num_windows
    png = draw({ev: s[i] for ev, s in samples.items()}, w.raw_history[i], w.truth[i], Path(args.out),
               f"{args.dataset}, {fc.method} ({fc.config.target} target), test window {i}: CRPS-sum "
               + ", ".join(f"{ev} {v:.5f}" for ev, v in scores.items()))
    result = {"model": args.model, "dataset": args.dataset, "method": fc.method, "target": fc.config.target,
              "crps_sum": scores, "window": i, "png": str(png), "machine": platform.platform()}
    for ev, v in scores.items():
        print(f"{ev:9s} crps_sum {v:.5f}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
