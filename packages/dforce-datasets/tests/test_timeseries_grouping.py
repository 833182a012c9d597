"""MultivariateGrouper-equivalent grouping (checked against GluonTS), rolling test windows, normalisation."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from dforce_datasets.timeseries import (
    Normalizer,
    SeriesEntry,
    group_test,
    group_train,
    infer_num_test_dates,
    load_dataset,
    split_window,
    to_multivariate,
)
from dforce_datasets.timeseries.calendar import parse_timestamp

EXCHANGE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "exchange_rate_nips.tar.gz"


def entry(start: str, target, i: int = 0) -> SeriesEntry:
    return SeriesEntry(parse_timestamp(start), np.asarray(target, dtype=np.float64), i, (i,), f"mem:{i}")


def gluonts_group(entries, freq, *, num_test_dates=None, max_target_dim=None) -> list[np.ndarray]:
    """GluonTS's MultivariateGrouper on the same entries: list of (T, D) float32 arrays."""
    pytest.importorskip("gluonts")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gluonts/pandas deprecations (json module, BDay periods) are not ours
        from gluonts.dataset.common import ListDataset
        from gluonts.dataset.multivariate_grouper import MultivariateGrouper

        ds = ListDataset([{"start": str(e.start).replace("T", " "), "target": e.target} for e in entries], freq=freq)
        grouper = MultivariateGrouper(max_target_dim=max_target_dim, num_test_dates=num_test_dates)
        return [np.asarray(d["target"]).T for d in grouper(ds)]


@pytest.fixture(scope="module")
def exchange(tmp_path_factory):
    if not EXCHANGE.is_file():
        pytest.skip(f"real exchange_rate_nips archive not found at {EXCHANGE}")
    return load_dataset("exchange_rate_nips", data_dir=EXCHANGE.parent, cache_dir=tmp_path_factory.mktemp("cache"))


def test_exchange_matches_gluonts_grouper(exchange):
    md = to_multivariate(exchange)
    assert md.train.values.shape == (6071, 8) and md.num_test_dates == 5 and md.target_dim == 8
    assert [w.length for w in md.test] == [6101, 6131, 6161, 6191, 6221]
    (ref_train,) = gluonts_group(exchange.train, "B", max_target_dim=8)
    np.testing.assert_array_equal(md.train.values.astype(np.float32), ref_train)
    ref_test = gluonts_group(exchange.test, "B", num_test_dates=5, max_target_dim=8)
    assert len(ref_test) == 5
    for ours, ref in zip(md.test, ref_test, strict=True):
        np.testing.assert_array_equal(ours.values.astype(np.float32), ref)
    past, future = split_window(md.test[0], 30)
    np.testing.assert_array_equal(past, md.train.values)
    assert future.shape == (30, 8)
    assert str(md.train.times()[-1]) == "2013-04-08T00:00"


def test_misaligned_series_match_gluonts():
    train = [entry("2020-01-03 00:00", [1.0, 2.0, np.nan, 4.0], 0),
             entry("2020-01-01 00:00", [5.0, 6.0], 1),
             entry("2020-01-02 00:00", [7.0, 8.0, 9.0, 10.0, 11.0], 2)]
    ours = group_train(train, "D")
    assert ours.start_ordinal == int(np.datetime64("2020-01-01", "D").astype(np.int64))
    expected = np.array([
        [7 / 3, 5.0, 9.0], [7 / 3, 6.0, 7.0], [1.0, 5.5, 8.0], [2.0, 5.5, 9.0], [np.nan, 5.5, 10.0],
        [4.0, 5.5, 11.0],
    ])
    np.testing.assert_allclose(ours.values, expected)
    (ref,) = gluonts_group(train, "D")
    np.testing.assert_allclose(ours.values, ref, rtol=1e-6)
    (ref2,) = gluonts_group(train, "D", max_target_dim=2)
    np.testing.assert_allclose(group_train(train, "D", max_target_dim=2).values, ref2, rtol=1e-6)


def test_hourly_test_windows_match_gluonts():
    test = [entry("2014-01-01 02:00", np.arange(6.0) + 10 * i, i) for i in range(3)]
    test += [entry("2014-01-01 00:00", np.arange(10.0) + 10 * i, i) for i in range(3)]
    ours = group_test(test, "H", num_test_dates=2, max_target_dim=2)
    ref = gluonts_group(test, "H", num_test_dates=2, max_target_dim=2)
    assert [w.values.shape for w in ours] == [(8, 2), (10, 2)]
    for a, b in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a.values.astype(np.float32), b)
    assert (ours[0].values[:2] == 0).all()  # left padding is 0, as in GluonTS


def test_thirty_minute_grid():
    series = [entry("2015-01-01 00:30", [1.0, 2.0], 0), entry("2015-01-01 00:00", [3.0, 4.0, 5.0], 1)]
    g = group_train(series, "30min")
    assert g.values.shape == (3, 2) and str(g.times()[-1]) == "2015-01-01T01:00"
    with pytest.raises(ValueError, match="not on the 30min grid"):
        group_train([entry("2015-01-01 00:10", [1.0], 0), series[1]], "30min")


def test_grouping_errors():
    a = [entry("2020-01-01", [1.0, 2.0], i) for i in range(3)]
    with pytest.raises(ValueError, match="do not split"):
        group_test(a, "D", num_test_dates=2)
    with pytest.raises(ValueError, match="end at different times"):
        group_test([entry("2020-01-01", [1.0, 2.0]), entry("2020-01-01", [1.0])], "D", num_test_dates=1)
    with pytest.raises(ValueError, match="no series"):
        group_train([], "D")
    with pytest.raises(ValueError, match="max_target_dim"):
        group_train(a, "D", max_target_dim=0)
    assert infer_num_test_dates(8, 40) == 5
    with pytest.raises(ValueError, match="not a multiple"):
        infer_num_test_dates(8, 41)


def test_normalizer():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(500, 4))
    x[:, 2] = 7.0  # constant series: std clamps at 1e-7
    x[10, 1] = np.nan
    norm = Normalizer.fit(x)
    np.testing.assert_allclose(norm.mean[[0, 3]], x[:, [0, 3]].mean(axis=0))
    np.testing.assert_allclose(norm.std[[0, 3]], x[:, [0, 3]].std(axis=0))
    np.testing.assert_allclose(norm.mean[1], np.nanmean(x[:, 1]))
    assert norm.std[2] == 1e-7
    z = norm.normalize(x)
    np.testing.assert_allclose(z[:, 0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(norm.denormalize(z), x)
    np.testing.assert_allclose(norm.normalize(x[None])[0], z)
    with pytest.raises(ValueError, match="no observed values"):
        Normalizer.fit(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match="time, dim"):
        Normalizer.fit(np.zeros(3))


def test_to_multivariate_needs_prediction_length():
    from dforce_datasets.timeseries import DatasetMetadata, GluonTSDataset

    train = [entry("2020-01-01", np.arange(20.0), i) for i in range(2)]
    test = [entry("2020-01-01", np.arange(22.0), i) for i in range(2)]
    ds = GluonTSDataset(Path("."), DatasetMetadata("D", None, (2,), "x"), tuple(train), tuple(test))
    with pytest.raises(ValueError, match="prediction_length"):
        to_multivariate(ds)
    md = to_multivariate(ds, prediction_length=2)
    assert md.num_test_dates == 1 and md.prediction_length == 2
    with pytest.raises(ValueError, match="not longer than prediction_length"):
        to_multivariate(ds, prediction_length=22)
    with pytest.raises(ValueError, match="prediction_length must be in"):
        split_window(md.test[0], 22)
