"""Calendar arithmetic (checked against pandas), covariates, and the numba kernels against the numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from dforce_datasets.timeseries import (
    Frequency,
    WindowSpec,
    calendar_fields,
    fourier_time_features,
    gather_windows,
    lag_features,
    lags_for_freq,
    make_windows,
    parse_freq,
    period_times,
    sample_starts,
    series_index,
    time_feature_names,
)
from dforce_datasets.timeseries._kernels import numba_available
from dforce_datasets.timeseries.calendar import parse_timestamp, to_ordinal

needs_numba = pytest.mark.skipif(not numba_available(), reason="numba is not installed (timeseries extra)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("B", Frequency("B")), ("h", Frequency("H")), ("H", Frequency("H")), ("30min", Frequency("min", 30)),
     ("5T", Frequency("min", 5)), ("1D", Frequency("D")), ("W", Frequency("W")), ("W-SUN", Frequency("W")),
     ("M", Frequency("M")), ("ME", Frequency("M")), ("2H", Frequency("H", 2))],
)
def test_parse_freq(text, expected):
    assert parse_freq(text) == expected


@pytest.mark.parametrize("bad", ["S", "Q", "", "m", "0H", "W-MON", "H2"])
def test_parse_freq_rejects(bad):
    with pytest.raises(ValueError):
        parse_freq(bad)


@pytest.mark.parametrize(
    ("freq", "pd_freq", "start"),
    [("D", "D", "2011-03-05 17:00"), ("H", "h", "2014-01-01 05:30"), ("30min", "30min", "2015-01-01 00:30"),
     ("W", "W", "2020-01-01 00:00"), ("M", "M", "2019-11-15 00:00"), ("2H", "2h", "2014-01-01 00:00")],
)
def test_period_times_match_pandas(freq, pd_freq, start):
    pd = pytest.importorskip("pandas")
    ours = period_times(int(to_ordinal(parse_timestamp(start), freq)), 400, freq)
    ref = pd.period_range(pd.Period(start, freq=pd_freq), periods=400, freq=pd_freq).start_time
    np.testing.assert_array_equal(ours, ref.values.astype("datetime64[m]"))


@pytest.mark.parametrize("start", ["1990-01-01", "2020-01-04", "2020-01-05 13:00", "1969-12-27", "2021-12-31"])
def test_business_days_match_pandas(start):
    pd = pytest.importorskip("pandas")
    ours = period_times(int(to_ordinal(parse_timestamp(start), "B")), 1000, "B")
    # a Period with freq B rolls a weekend date forward to Monday, like bdate_range
    ref = pd.bdate_range(pd.Timestamp(start).normalize(), periods=1000)
    np.testing.assert_array_equal(ours, ref.values.astype("datetime64[m]"))


def test_calendar_fields_match_pandas():
    pd = pytest.importorskip("pandas")
    idx = pd.date_range("1968-12-25", "2031-01-07", freq="17h")
    f = calendar_fields(idx.values)
    np.testing.assert_array_equal(f["minute_of_hour"], idx.minute)
    np.testing.assert_array_equal(f["hour_of_day"], idx.hour)
    np.testing.assert_array_equal(f["day_of_week"], idx.dayofweek)
    np.testing.assert_array_equal(f["day_of_month"], idx.day - 1)
    np.testing.assert_array_equal(f["day_of_year"], idx.dayofyear - 1)
    np.testing.assert_array_equal(f["month_of_year"], idx.month - 1)
    np.testing.assert_array_equal(f["week_of_year"], idx.isocalendar().week.to_numpy() - 1)


def test_fourier_features_fixed_periods():
    times = period_times(int(to_ordinal(parse_timestamp("2014-01-01 00:00"), "H")), 200, "H")
    tf = fourier_time_features(times, "H")
    assert tf.shape == (200, 4) and tf.dtype == np.float32
    hours = np.arange(200) % 24
    dow = (np.arange(200) // 24 + 2) % 7  # 2014-01-01 was a Wednesday
    np.testing.assert_allclose(tf[:, 0], np.cos(2 * np.pi * hours / 24), atol=1e-6)
    np.testing.assert_allclose(tf[:, 1], np.sin(2 * np.pi * hours / 24), atol=1e-6)
    np.testing.assert_allclose(tf[:, 2], np.cos(2 * np.pi * dow / 7), atol=1e-6)
    np.testing.assert_allclose(tf[:, 3], np.sin(2 * np.pi * dow / 7), atol=1e-6)
    # calendar features, not per-window ones: a date gets the same features in any window
    np.testing.assert_array_equal(fourier_time_features(times[50:60], "H"), tf[50:60])
    assert fourier_time_features(times, "30min").shape == (200, 6)
    b = fourier_time_features(period_times(0, 10, "B"), "B", dtype=np.float64)
    assert b.shape == (10, 4) and np.abs(b).max() <= 1.0


def test_lags_and_feature_names():
    assert lags_for_freq("M") == (1, 12)
    assert lags_for_freq("D") == (1, 7, 14)
    assert lags_for_freq("B") == (1, 2)
    assert lags_for_freq("h") == (1, 24, 168)
    assert lags_for_freq("30min") == lags_for_freq("T") == (1, 4, 12, 24, 48)
    assert time_feature_names("B") == ("day_of_week", "day_of_year")
    assert time_feature_names("D") == ("day_of_week",)
    assert time_feature_names("H") == ("hour_of_day", "day_of_week")
    assert time_feature_names("30min") == ("minute_of_hour", "hour_of_day", "day_of_week")
    np.testing.assert_array_equal(series_index(3), [0, 1, 2])


def test_window_spec():
    spec = WindowSpec.for_freq("H", 24)
    assert (spec.context_length, spec.max_lag, spec.history_length, spec.num_tokens, spec.window_length) == (
        24, 168, 192, 48, 216)
    with pytest.raises(ValueError, match="context_length"):
        WindowSpec(0, 24, (1,))
    with pytest.raises(ValueError, match="lags"):
        WindowSpec(24, 24, ())
    rng = np.random.default_rng(0)
    starts = sample_starts(300, spec, 1000, rng)
    assert starts.min() >= 0 and starts.max() == 300 - 216 and starts.dtype == np.int64
    with pytest.raises(ValueError, match="shorter than one window"):
        sample_starts(200, spec, 1, rng)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_matches_numpy_exactly(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 5)).astype(dtype)
    tf = rng.standard_normal((400, 4)).astype(np.float32)
    spec = WindowSpec(20, 10, (1, 3, 48))
    starts = np.concatenate([[0, 400 - spec.window_length], sample_starts(400, spec, 64, rng)])
    for a, b in [
        (gather_windows(x, starts, 30, 48, backend="numba"), gather_windows(x, starts, 30, 48, backend="numpy")),
        (lag_features(x, starts, 30, spec.lags, 48, backend="numba"),
         lag_features(x, starts, 30, spec.lags, 48, backend="numpy")),
    ]:
        assert a.dtype == b.dtype == dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    nb, ref = make_windows(x, tf, starts, spec, backend="numba"), make_windows(x, tf, starts, spec, backend="numpy")
    for name in ("target", "lags", "time_features", "series_index", "starts"):
        np.testing.assert_array_equal(getattr(nb, name), getattr(ref, name))
        assert getattr(nb, name).dtype == getattr(ref, name).dtype


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=needs_numba)])
def test_make_windows_semantics(backend):
    x = np.arange(300, dtype=np.float64)[:, None] * np.array([1.0, -1.0])  # row t holds (t, -t)
    tf = np.arange(300, dtype=np.float32)[:, None]
    spec = WindowSpec(5, 3, (1, 2, 7))
    batch = make_windows(x, tf, np.array([0, 100]), spec, backend=backend)
    assert batch.target.shape == (2, 8, 2) and batch.lags.shape == (2, 8, 3, 2)
    assert batch.time_features.shape == (2, 8, 1)
    # token t of the window starting at s sits at row s + max_lag + t; lag j is lags[j] rows earlier
    np.testing.assert_array_equal(batch.target[1, :, 0], np.arange(107, 115))
    np.testing.assert_array_equal(batch.lags[1, 0, :, 0], [106, 105, 100])
    np.testing.assert_array_equal(batch.lags[0, 3, :, 1], [-9, -8, -3])
    np.testing.assert_array_equal(batch.lags[:, 1:, 0], batch.target[:, :-1])  # lag 1 = previous token
    np.testing.assert_array_equal(batch.time_features[1, :, 0], np.arange(107, 115))


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=needs_numba)])
def test_window_bounds_are_checked(backend):
    x = np.zeros((50, 2))
    with pytest.raises(ValueError, match="must lie in"):
        lag_features(x, np.array([0]), 5, (3,), backend=backend)
    with pytest.raises(ValueError, match="must lie in"):
        gather_windows(x, np.array([46]), 5, backend=backend)
    with pytest.raises(ValueError, match="must lie in"):
        make_windows(x, np.zeros((50, 1)), np.array([-1]), WindowSpec(2, 2, (1,)), backend=backend)
    with pytest.raises(ValueError, match="time, dim"):
        gather_windows(np.zeros(5), np.array([0]), 1, backend=backend)
    with pytest.raises(ValueError, match="time_features must be"):
        make_windows(x, np.zeros((49, 1)), np.array([0]), WindowSpec(2, 2, (1,)), backend=backend)
    with pytest.raises(ValueError, match="backend must be one of"):
        gather_windows(x, np.array([0]), 1, backend="cuda")
