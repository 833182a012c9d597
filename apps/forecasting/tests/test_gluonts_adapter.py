"""The GluonTS Estimator / Predictor adapter: trains through gluonts datasets, yields SampleForecasts that the
GluonTS MultivariateEvaluator scores exactly as our own crps_sum does."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("gluonts")
pd = pytest.importorskip("pandas")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # gluonts warns about its json backend on import
    from gluonts.dataset.common import ListDataset
    from gluonts.dataset.multivariate_grouper import MultivariateGrouper
    from gluonts.evaluation import MultivariateEvaluator, make_evaluation_predictions

from dforce_forecast.config import ForecastConfig  # noqa: E402
from dforce_forecast.gluonts_adapter import DForceEstimator, DForcePredictor  # noqa: E402
from dforce_forecast.metrics import crps_sum  # noqa: E402

from .conftest import periodic_values  # noqa: E402

TINY = dict(z_dim=16, network_size=4, num_gru_layers=2, sampling_steps=4, num_samples=6, val_num_samples=4,
            batch_size=8, batches_per_epoch=3, max_epochs=2, warmup_steps=0)
P, D, N_TRAIN, WINDOWS = 7, 3, 120, 2


def _datasets():
    values = periodic_values(N_TRAIN + WINDOWS * P, D, "D", "2014-01-01", seed=0)  # (T, D)
    start = pd.Period("2014-01-01", freq="D")
    train = ListDataset([{"start": start, "target": values[:N_TRAIN, j]} for j in range(D)], freq="D")
    test = ListDataset([{"start": start, "target": values[:N_TRAIN + (w + 1) * P, j]}
                        for w in range(WINDOWS) for j in range(D)], freq="D")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grouped_train = MultivariateGrouper(max_target_dim=D)(train)
        grouped_test = MultivariateGrouper(max_target_dim=D, num_test_dates=WINDOWS)(test)
    return values, grouped_train, grouped_test


@pytest.fixture(scope="module")
def trained():
    import torch

    torch.set_num_threads(1)
    values, train, test = _datasets()
    predictor = DForceEstimator("D", P, config=ForecastConfig(**TINY), seed=0, num_samples=20).train(train)
    return values, test, predictor


def test_forecasts_match_the_forecaster_and_gluonts_scores_them_like_crps_sum(trained):
    values, test, predictor = trained
    assert isinstance(predictor, DForcePredictor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forecast_it, ts_it = make_evaluation_predictions(test, predictor, num_samples=20)
        forecasts, tss = list(forecast_it), list(ts_it)
    assert len(forecasts) == WINDOWS
    for w, f in enumerate(forecasts):
        assert f.samples.shape == (20, P, D)
        assert f.start_date == pd.Period("2014-01-01", freq="D") + N_TRAIN + w * P
        assert np.isfinite(f.samples).all()
    # the same numbers straight from the Forecaster (one batch of both windows, the predictor's seed); gluonts
    # stores targets as float32, hence the float32-level tolerance
    need = predictor.forecaster.history_length
    hist = np.stack([values[N_TRAIN + w * P - need:N_TRAIN + w * P] for w in range(WINDOWS)])
    start = np.datetime64("2014-01-01", "m") + np.array([N_TRAIN + w * P - need for w in range(WINDOWS)]) * \
        np.timedelta64(1440, "m")
    direct = predictor.forecaster.sample(hist, start=start, num_samples=20, seed=predictor.seed)
    np.testing.assert_allclose(np.stack([f.samples for f in forecasts]), direct.astype(np.float32), rtol=1e-5)
    # GluonTS's evaluator on the adapter's forecasts == our crps_sum on the same samples
    evaluator = MultivariateEvaluator(quantiles=(np.arange(20) / 20.0)[1:], target_agg_funcs={"sum": np.sum})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agg, _ = evaluator(iter(tss), iter(forecasts), num_series=WINDOWS)
    truth = np.stack([values[N_TRAIN + w * P:N_TRAIN + (w + 1) * P] for w in range(WINDOWS)])
    ours = crps_sum(np.stack([f.samples for f in forecasts]).astype(np.float64), truth)
    assert agg["m_sum_mean_wQuantileLoss"] == pytest.approx(ours, abs=1e-6)


def test_short_entries_and_bad_settings_are_refused(trained):
    _, _, predictor = trained
    short = [{"start": pd.Period("2014-01-01", freq="D"), "target": np.ones((D, 3))}]
    with pytest.raises(ValueError, match="needs at least"):
        list(predictor.predict(short))
    with pytest.raises(ValueError, match="prediction_length"):
        DForceEstimator("D", 0)
    with pytest.raises(ValueError, match="unsupported frequency"):
        DForceEstimator("fortnightly", 7)
    with pytest.raises(ValueError, match="empty"):
        DForceEstimator("D", P, config=ForecastConfig(**TINY)).train([])


def test_univariate_entries_on_a_multiple_frequency_grid_are_aligned_by_steps():
    from dforce_forecast.gluonts_adapter import _grouped

    a = {"start": pd.Period("2014-01-01 00:00", freq="30min"), "target": np.arange(4.0)}
    b = {"start": pd.Period("2014-01-01 00:30", freq="30min"), "target": 10 + np.arange(4.0)}
    values, start = _grouped([a, b], "30min")
    assert values.shape == (5, 2)
    np.testing.assert_array_equal(values[:, 0], [0, 1, 2, 3, np.nan])
    np.testing.assert_array_equal(values[:, 1], [np.nan, 10, 11, 12, 13])
    off = {"start": pd.Period("2014-01-01 00:10", freq="10min"), "target": np.arange(3.0)}
    with pytest.raises(ValueError, match="grid"):
        _grouped([a, off], "30min")


def test_predictor_explains_ungrouped_entries_and_estimator_warns_on_validation_data(trained):
    _, _, predictor = trained
    univariate = [{"start": pd.Period("2014-01-01", freq="D"), "target": np.ones(200)}]
    with pytest.raises(ValueError, match="MultivariateGrouper"):
        list(predictor.predict(univariate))
    with pytest.raises(ValueError, match="val_windows"):
        DForceEstimator("D", P, val_windows=0)


def test_one_calendar_serves_every_window_and_missing_last_values_are_forward_filled(trained):
    values, _, predictor = trained
    fc = predictor.forecaster
    need = fc.history_length
    hist = np.stack([values[N_TRAIN - need:N_TRAIN]] * 2)  # (2, need, D): the same window twice
    tf = fc.time_features(np.datetime64("2014-01-01", "m") + (N_TRAIN - need) * np.timedelta64(1440, "m"), need + P)
    two_d = fc.sample(hist, time_features=tf, num_samples=5, seed=3)
    three_d = fc.sample(hist, time_features=np.stack([tf, tf]), num_samples=5, seed=3)
    np.testing.assert_array_equal(two_d, three_d)

    from dforce_forecast.data import TargetTransform, last_observed

    raw = np.array([[[1.0, 5.0], [2.0, np.nan], [np.nan, np.nan]]])  # (1, R=3, D=2)
    delta = TargetTransform.fit("delta", np.array([[0.0, 0.0], [1.0, 2.0], [3.0, 3.0]]))
    np.testing.assert_array_equal(last_observed(raw, delta), [[2.0, 5.0]])
    empty = np.full((1, 2, 2), np.nan)
    level = TargetTransform.fit("level", np.array([[1.0, 2.0], [3.0, 6.0]]))
    np.testing.assert_array_equal(last_observed(empty, level), [[2.0, 4.0]])
    np.testing.assert_array_equal(last_observed(empty, delta), [[0.0, 0.0]])
