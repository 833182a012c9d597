"""Group univariate series into (time, dimension) arrays like GluonTS's MultivariateGrouper; normalisation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .calendar import parse_freq, period_times, to_ordinal
from .gluonts_format import GluonTSDataset, SeriesEntry

MIN_STD = 1e-7  # the paper code clamps the per-dimension std at this value


@dataclass(frozen=True)
class MultivariateSeries:
    """A (T, D) float64 array whose row ``t`` is at period ordinal ``start_ordinal + t * multiple``."""

    values: np.ndarray
    start_ordinal: int
    freq: str

    def __post_init__(self) -> None:
        if self.values.ndim != 2:
            raise ValueError(f"values must be (time, dim), got shape {self.values.shape}")

    @property
    def length(self) -> int:
        """Number of time steps T."""
        return self.values.shape[0]

    @property
    def dim(self) -> int:
        """Number of series D."""
        return self.values.shape[1]

    def times(self) -> np.ndarray:
        """Start time (datetime64[m]) of every row."""
        return period_times(self.start_ordinal, self.length, self.freq)


def _ordinals(entries: Sequence[SeriesEntry], freq: str) -> tuple[np.ndarray, np.ndarray]:
    """(start, last) period ordinals of each entry, checked to lie on one common grid."""
    if not entries:
        raise ValueError("no series to group")
    f = parse_freq(freq)
    starts = np.array([int(to_ordinal(e.start, f)) for e in entries], dtype=np.int64)
    off = (starts - starts.min()) % f.multiple
    if off.any():
        bad = entries[int(np.flatnonzero(off)[0])]
        raise ValueError(f"{bad.location}: start {bad.start} is not on the {freq} grid of the other series")
    lasts = starts + f.multiple * (np.array([len(e.target) for e in entries], dtype=np.int64) - 1)
    return starts, lasts


def _nan_mean(x: np.ndarray) -> float:
    """Mean of the observed values (NaN if there are none), without numpy's empty-slice warning."""
    observed = x[~np.isnan(x)]
    return float(observed.mean()) if observed.size else float("nan")


def _restrict(values: np.ndarray, max_target_dim: int | None) -> np.ndarray:
    """Keep the LAST ``max_target_dim`` series, as GluonTS's MultivariateGrouper does."""
    if max_target_dim is None:
        return values
    if max_target_dim < 1:
        raise ValueError(f"max_target_dim must be >= 1 or None, got {max_target_dim}")
    return values[:, -max_target_dim:]


def group_train(entries: Sequence[SeriesEntry], freq: str, max_target_dim: int | None = None
                ) -> MultivariateSeries:
    """Align all series on [earliest start, latest end]; gaps take each series' own mean (GluonTS's rule)."""
    k = parse_freq(freq).multiple
    starts, lasts = _ordinals(entries, freq)
    first = int(starts.min())
    length = int((lasts.max() - first) // k + 1)
    out = np.empty((length, len(entries)), dtype=np.float64)
    for j, (e, s) in enumerate(zip(entries, starts, strict=True)):
        out[:, j] = _nan_mean(e.target)  # GluonTS fills with np.mean of a pandas Series, which skips NaN
        i0 = int(s - first) // k
        out[i0:i0 + len(e.target), j] = e.target
    return MultivariateSeries(_restrict(out, max_target_dim), first, str(freq))


def group_test(entries: Sequence[SeriesEntry], freq: str, num_test_dates: int,
               max_target_dim: int | None = None) -> list[MultivariateSeries]:
    """Split the test set into ``num_test_dates`` consecutive groups, each left-padded with 0 and stacked."""
    if num_test_dates < 1 or len(entries) % num_test_dates:
        raise ValueError(f"{len(entries)} test series do not split into num_test_dates={num_test_dates} "
                         "equal groups")
    k = parse_freq(freq).multiple
    starts, lasts = _ordinals(entries, freq)
    first = int(starts.min())
    size = len(entries) // num_test_dates
    windows = []
    for w in range(num_test_dates):
        group = slice(w * size, (w + 1) * size)
        ends = lasts[group]
        if (ends != ends[0]).any():
            raise ValueError(f"test window {w}: its {size} series end at different times; the test split must "
                             "list the series of each rolling date together, all ending on that date")
        length = int((ends[0] - first) // k + 1)
        out = np.zeros((length, size), dtype=np.float64)
        for j, (e, s) in enumerate(zip(entries[group], starts[group], strict=True)):
            i0 = int(s - first) // k
            out[i0:, j] = e.target
        windows.append(MultivariateSeries(_restrict(out, max_target_dim), first, str(freq)))
    return windows


def infer_num_test_dates(num_train: int, num_test: int) -> int:
    """Rolling evaluation dates: ``len(test) / len(train)``, which must be a whole number."""
    if num_train < 1 or num_test % num_train:
        raise ValueError(f"{num_test} test series are not a multiple of {num_train} training series")
    return num_test // num_train


@dataclass(frozen=True)
class Normalizer:
    """Per-dimension affine normalisation with the training mean and (clamped) standard deviation."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, min_std: float = MIN_STD) -> Normalizer:
        """Mean and population std of each column of a (T, D) array, NaNs ignored, std >= ``min_std``."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2:
            raise ValueError(f"expected a (time, dim) array, got shape {values.shape}")
        valid = ~np.isnan(values)
        count = valid.sum(axis=0)
        if (count == 0).any():
            raise ValueError(f"dimensions {np.flatnonzero(count == 0).tolist()} have no observed values")
        filled = np.where(valid, values, 0.0)
        mean = filled.sum(axis=0) / count
        var = (np.where(valid, values - mean, 0.0) ** 2).sum(axis=0) / count
        return cls(mean, np.maximum(np.sqrt(var), min_std))

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """``(x - mean) / std`` over the last axis."""
        return (np.asarray(x) - self.mean) / self.std

    def denormalize(self, z: np.ndarray) -> np.ndarray:
        """``z * std + mean`` over the last axis."""
        return np.asarray(z) * self.std + self.mean


@dataclass(frozen=True)
class MultivariateData:
    """The benchmark view of a dataset: grouped train series, rolling test windows, training normaliser."""

    freq: str
    prediction_length: int
    train: MultivariateSeries
    test: tuple[MultivariateSeries, ...]
    normalizer: Normalizer

    @property
    def num_test_dates(self) -> int:
        """Number of rolling test windows."""
        return len(self.test)

    @property
    def target_dim(self) -> int:
        """Number of series D."""
        return self.train.dim


def to_multivariate(ds: GluonTSDataset, *, max_target_dim: int | None = None,
                    prediction_length: int | None = None) -> MultivariateData:
    """Group a dataset's train and test splits (``num_test_dates = len(test) / len(train)``) and fit the normaliser."""
    pl = prediction_length or ds.prediction_length
    if pl is None:
        raise ValueError("the dataset declares no prediction_length; pass prediction_length=")
    train = group_train(ds.train, ds.freq, max_target_dim)
    test: list[MultivariateSeries] = []
    if ds.test:
        test = group_test(ds.test, ds.freq, infer_num_test_dates(len(ds.train), len(ds.test)), max_target_dim)
        short = [i for i, w in enumerate(test) if w.length <= pl]
        if short:
            raise ValueError(f"test windows {short} are not longer than prediction_length={pl}")
    return MultivariateData(ds.freq, int(pl), train, tuple(test), Normalizer.fit(train.values))


def split_window(series: MultivariateSeries, prediction_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(past, future) of a test window: all rows but the last ``prediction_length``, and those rows."""
    if not 0 < prediction_length < series.length:
        raise ValueError(f"prediction_length must be in [1, {series.length - 1}], got {prediction_length}")
    return series.values[:-prediction_length], series.values[-prediction_length:]
