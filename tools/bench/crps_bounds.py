"""How low can CRPS-sum go without predicting direction? Reference points on a dataset's real test windows.

Every forecast below is centred on the last observed value (the median path is "no change"); they differ only
in their spread. All are scored with ``dforce_forecast.metrics.crps_sum`` (GluonTS's m_sum_mean_wQuantileLoss),
100 sample paths, medians over ``--seeds`` sampling seeds:

* ``random_walk``: the ``naive`` baseline, steps drawn from the training split, and the same walk with its steps
  multiplied by a constant factor (``spread_sweep``; factor 0 is the point forecast "no change");
* ``naive_vol``: steps rescaled per window and series to the volatility of the window's own history;
* ``oracle_window_spread`` (uses the test truth): the random walk with one spread factor per window, each
  chosen by coordinate search to minimise the score on the test windows themselves;
* ``oracle_sign_blind`` (uses the test truth): the best score of a forecaster that knows the size ``d`` of every
  future deviation of the summed series from "no change" but not its sign. For a forecast symmetric about "no
  change", the quantile pair (q, 1 - q) costs at least ``4 d (1 - q)`` and the median ``d`` (the pair's loss is
  ``2d + 2a(1 - 2q)`` for a quantile offset ``a <= d`` and ``4a(1 - q)`` above, minimal at ``a = d``). Over the 19
  levels that is ``10 d``, so the score is at least ``10 sum|d| / (19 sum|y_sum|)``. When both signs are equally
  likely to the forecaster, symmetrising its forecast does not raise its expected score (the quantile loss is
  convex), so beating this bound needs information about the direction of the move.
  ``oracle_sign_blind_samples`` scores that two-point forecast itself (50 samples at ``-d``, 50 at ``+d``) with
  ``crps_sum``. The metric's median is the 51st of 100 sorted samples (the ``+d`` one), so the sampled form pays
  ``9 d`` on an upward move and ``11 d`` on a downward one: ``10 d`` on average over the sign, as above.

The ``one_step_*`` rows score the same forecasters the way the authors' time-series code does
(``evaluation="one_step"``, ``dforce_forecast.data``): the covariates of every horizon step are built from the
true values, so each step starts from the true previous value, a one-step-ahead forecast. ``one_step_point`` is
"no change from the true previous value", ``one_step_random_walk`` / ``one_step_naive_vol`` the two walks. These
rows need no oracle: any forecaster can be scored this way, and it is how the paper's Table 2 DF figures were
computed (its baselines' figures, TimeGrad's included, are real multi-step forecasts).

Last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import numpy as np
from dforce_forecast.baselines import SeasonalRandomWalk
from dforce_forecast.data import one_step_anchors, prepare
from dforce_forecast.metrics import crps_sum

from dforce_datasets.timeseries import DATASETS, load_dataset, to_multivariate

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
FACTORS = (0.0, 0.25, 0.5, 0.6, 0.75, 1.0, 1.25, 1.5)
SEARCH = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5)


def scaled_walk(samples: np.ndarray, last: np.ndarray, factor: np.ndarray | float) -> np.ndarray:
    """Random-walk samples (N, S, P, D) with their deviation from ``last`` (N, D) multiplied by ``factor``
    (a number or one per window, (N,))."""
    f = np.broadcast_to(np.asarray(factor, dtype=np.float64), (samples.shape[0],))
    return last[:, None, None] + (samples - last[:, None, None]) * f[:, None, None, None]


def sign_blind_bound(truth: np.ndarray, last: np.ndarray) -> float:
    """``10 sum|d| / (19 sum|y|)`` on the summed series: truth (N, P, D), last observed values (N, D)."""
    total = truth.sum(-1)  # (N, P)
    dev = np.abs(total - last.sum(-1)[:, None])  # (N, P)
    q = np.arange(1, 20) / 20.0
    per_d = np.where(q > 0.5, 4 * (1 - q), 0.0).sum() + 1.0  # 9 from the nine pairs + 1 for the median = 10
    return float(per_d * dev.sum() / (len(q) * np.abs(total).sum()))


def sign_blind_samples(truth: np.ndarray, last: np.ndarray, num_samples: int) -> np.ndarray:
    """(N, S, P, 1) two-point forecasts of the summed series at last_sum -+ |truth_sum - last_sum|."""
    dev = np.abs(truth.sum(-1) - last.sum(-1)[:, None])  # (N, P)
    signs = np.where(np.arange(num_samples) < num_samples // 2, -1.0, 1.0)  # (S,)
    return (last.sum(-1)[:, None, None] + signs[None, :, None] * dev[:, None, :])[..., None]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="exchange_rate_nips")
    ap.add_argument("--data-dir", default=str(SHARED_DATA), help="directory holding <dataset>.tar.gz or <dataset>/")
    ap.add_argument("--seeds", type=int, default=5, help="sampling seeds (medians are reported)")
    ap.add_argument("--num-samples", type=int, default=100)
    args = ap.parse_args(argv)
    if args.seeds < 1 or args.num_samples < 2:
        ap.error("--seeds must be >= 1 and --num-samples >= 2")

    info = DATASETS.get(args.dataset)
    md = to_multivariate(load_dataset(args.dataset, data_dir=args.data_dir, download=False),
                         max_target_dim=info.max_target_dim if info else None)
    data = prepare(md, name=args.dataset)
    w = data.test
    last = w.raw_history[:, -1]  # (N, D)
    rw = SeasonalRandomWalk(season=1).fit(data)
    vol = SeasonalRandomWalk(season=1, scale_by_context=True).fit(data)
    draws = [rw.sample_windows(w, num_samples=args.num_samples, seed=s) for s in range(args.seeds)]

    def med(factor) -> float:
        return statistics.median(crps_sum(scaled_walk(d, last, factor), w.truth) for d in draws)

    sweep = {f"{f:g}": med(f) for f in FACTORS}
    per_window = np.full(w.num_windows, 1.0)
    for _ in range(3):  # coordinate search over one factor per window, on the test truth (an oracle)
        for i in range(w.num_windows):
            scores = []
            for f in SEARCH:
                trial = per_window.copy()
                trial[i] = f
                scores.append((med(trial), f))
            per_window[i] = min(scores)[1]
    vol_score = statistics.median(crps_sum(vol.sample_windows(w, num_samples=args.num_samples, seed=s), w.truth)
                                  for s in range(args.seeds))
    one_step = {
        "one_step_random_walk": statistics.median(
            crps_sum(rw.sample_windows(w, num_samples=args.num_samples, seed=s, evaluation="one_step"), w.truth)
            for s in range(args.seeds)),
        "one_step_naive_vol": statistics.median(
            crps_sum(vol.sample_windows(w, num_samples=args.num_samples, seed=s, evaluation="one_step"), w.truth)
            for s in range(args.seeds)),
        "one_step_point": crps_sum(one_step_anchors(last, w.truth)[:, None], w.truth),
    }
    blind = sign_blind_bound(w.truth, last)
    blind_s = crps_sum(sign_blind_samples(w.truth, last, args.num_samples), w.truth.sum(-1, keepdims=True))
    result = {
        "dataset": args.dataset, "test_windows": int(w.num_windows), "num_samples": args.num_samples,
        "seeds": args.seeds, "random_walk": sweep["1"], "spread_sweep": sweep,
        "point_no_change": sweep["0"], "naive_vol": vol_score,
        "oracle_window_spread": med(per_window), "oracle_window_factors": per_window.tolist(),
        "oracle_sign_blind": blind, "oracle_sign_blind_samples": blind_s, **one_step,
        "machine": platform.platform(),
    }
    for k in ("random_walk", "naive_vol", "oracle_window_spread", "oracle_sign_blind",
              "oracle_sign_blind_samples", *one_step):
        print(f"{k:22s} {result[k]:.5f}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
