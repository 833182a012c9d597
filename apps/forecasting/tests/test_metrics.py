"""CRPS-sum, CRPS, ND and NRMSE against GluonTS's MultivariateEvaluator on the same numbers."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from dforce_forecast.metrics import QUANTILES, crps, crps_sum, evaluate, nd, nrmse, sample_quantiles

EXCHANGE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "exchange_rate_nips.tar.gz"
TOL = 1e-6


def gluonts_metrics(samples: np.ndarray, targets: np.ndarray, past: np.ndarray | None = None) -> dict:
    """The reference: SampleForecast + MultivariateEvaluator(quantiles=(arange(20)/20)[1:], sum aggregation)."""
    pytest.importorskip("gluonts")
    pd = pytest.importorskip("pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gluonts' json-module notice, pandas' agg(np.sum) FutureWarning
        from gluonts.evaluation import MultivariateEvaluator
        from gluonts.model.forecast import SampleForecast

        n_win, _, horizon, dim = samples.shape
        if past is None:
            past = np.ones((n_win, 10, dim))
        tss, forecasts = [], []
        for w in range(n_win):
            start = pd.Period("2000-01-03", freq="D") + 1000 * w
            index = pd.period_range(start, periods=past.shape[1] + horizon, freq="D")
            tss.append(pd.DataFrame(np.concatenate([past[w], targets[w]]), index=index))
            forecasts.append(SampleForecast(samples=samples[w], start_date=index[past.shape[1]]))
        evaluator = MultivariateEvaluator(quantiles=(np.arange(20) / 20.0)[1:], target_agg_funcs={"sum": np.sum})
        agg, _ = evaluator(iter(tss), iter(forecasts), num_series=n_win)
    return {"crps_sum": agg["m_sum_mean_wQuantileLoss"], "crps": agg["mean_wQuantileLoss"], "nd": agg["ND"],
            "nrmse": agg["NRMSE"]}


def assert_agree(samples, targets, **kw) -> dict:
    ours, ref = evaluate(samples, targets), gluonts_metrics(samples, targets, **kw)
    diffs = {k: abs(ours[k] - ref[k]) for k in ours}
    assert max(diffs.values()) < TOL, (ours, ref)
    return diffs


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((5, 100, 30, 8), np.float64), ((5, 100, 30, 8), np.float32), ((2, 7, 4, 3), np.float64),
     ((1, 1, 3, 2), np.float64), ((3, 50, 24, 20), np.float32)],
)
def test_random_data_matches_gluonts(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    samples = (rng.gamma(2.0, 1.0, size=shape) + rng.normal(0, 0.1, size=shape)).astype(dtype)
    targets = rng.gamma(2.0, 1.0, size=(shape[0], shape[2], shape[3]))
    assert_agree(samples, targets)


def test_missing_targets_match_gluonts():
    rng = np.random.default_rng(3)
    samples = rng.normal(1.0, 1.0, size=(3, 100, 6, 4))
    targets = rng.normal(1.0, 1.0, size=(3, 6, 4))
    targets[0, 2, 1] = np.nan
    targets[1, :, 3] = np.nan  # a whole (window, series) missing
    targets[2, 4, :] = np.nan  # a whole time step missing: its sum is 0, as pandas sums it
    assert_agree(samples, targets)


def test_exchange_slice_matches_gluonts(tmp_path):
    if not EXCHANGE.is_file():
        pytest.skip(f"real exchange_rate_nips archive not found at {EXCHANGE}")
    from dforce_datasets.timeseries import load_dataset, split_window, to_multivariate

    md = to_multivariate(load_dataset("exchange_rate_nips", data_dir=EXCHANGE.parent, cache_dir=tmp_path))
    rng = np.random.default_rng(0)
    pasts, futures = zip(*(split_window(w, 30) for w in md.test), strict=True)
    targets = np.stack(futures)  # (5, 30, 8)
    last = np.stack([p[-1] for p in pasts])  # random-walk forecast from the last observation
    steps = rng.normal(0.0, 0.005, size=(5, 100, 30, 8)) * md.normalizer.std
    samples = (last[:, None, None, :] + np.cumsum(steps, axis=2)).astype(np.float32)
    diffs = assert_agree(samples, targets, past=np.stack([p[-60:] for p in pasts]))
    assert 0.0 < crps_sum(samples, targets) < 0.05
    assert max(diffs.values()) < TOL


def test_quantile_rule_is_gluonts_index_rounding():
    samples = np.arange(100.0)[::-1].reshape(1, 100, 1, 1)
    q = sample_quantiles(samples, QUANTILES)
    np.testing.assert_array_equal(q[:, 0, 0, 0], np.round(99 * np.asarray(QUANTILES)))
    assert q[QUANTILES.index(0.5), 0, 0, 0] == 50.0  # 49.5 rounds half to even
    assert len(QUANTILES) == 19 and QUANTILES[0] == 0.05 and QUANTILES[-1] == 0.95


def test_point_forecast_at_truth_scores_zero():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(2, 5, 3))
    samples = np.repeat(targets[:, None], 10, axis=1)
    assert crps_sum(samples, targets) == 0.0 and crps(samples, targets) == 0.0
    assert nd(samples, targets) == 0.0 and nrmse(samples, targets) == pytest.approx(0.0, abs=1e-12)


def test_crps_sum_hand_computed():
    # one window, samples {0, 1, 2} of the summed series at one step, truth 1: quantile q picks round(2q)
    samples = np.array([[[[0.0, 0.0]], [[0.5, 0.5]], [[1.0, 1.0]]]])  # (1, 3, 1, 2): sums 0, 1, 2
    targets = np.array([[[0.4, 0.6]]])  # sum 1
    qs = np.asarray(QUANTILES)
    pred = np.sort([0.0, 1.0, 2.0])[np.round(2 * qs).astype(int)]
    expected = np.mean(2 * np.abs((pred - 1.0) * ((1.0 <= pred) - qs)) / 1.0)
    assert crps_sum(samples, targets) == pytest.approx(expected, abs=1e-15)


def test_shape_and_value_errors():
    s, y = np.zeros((2, 10, 3, 4)), np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match="windows, num_samples, horizon, dims"):
        crps_sum(s[0], y)
    with pytest.raises(ValueError, match=r"targets must be \(windows, horizon, dims\)"):
        crps_sum(s, y[:, :2])
    bad = s.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        crps(bad, y)
    with pytest.raises(ValueError, match="quantiles"):
        crps(s, y, quantiles=(1.5,))
    assert np.isnan(crps_sum(s, y))  # all-zero targets: 0/0, as in GluonTS (no warning raised)
