"""Forecasting views of a multivariate dataset: the target transform, training / validation / test windows.

Two evaluations of a forecast window (``EVALUATIONS``): ``rollout``, the real forecast, where every horizon step is
conditioned only on the history and the values generated before it; and ``one_step``, the evaluation of the
authors' time-series code (reference.md section 5.3), whose test and validation windows build the lag covariates
of the whole horizon from the ground truth. There each horizon step is a one-step-ahead forecast from the true
previous values: ``one_step_anchors`` gives them, and the ``delta`` target is anchored on them. It is kept to
reproduce the paper's Table 2 protocol and is never a forecast of the unknown future.

Everything the model sees is in *model space*: the training-normalised series (``target="level"``, the paper's
setup) or its training-normalised first differences (``target="delta"``, an option). A
:class:`ForecastWindows` batch carries the model-space history (lag rows + context), the calendar features of
history and horizon, the raw truth of the horizon (for scoring) and the raw last observed value (to undo the
``delta`` transform).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from dforce_datasets.timeseries import (
    MultivariateData,
    MultivariateSeries,
    Normalizer,
    WindowSpec,
    fourier_time_features,
    period_times,
)

TARGETS = ("level", "delta")
SCALINGS = ("none", "context")
EVALUATIONS = ("rollout", "one_step")  # real multi-step forecast | the authors' evaluation (true lags, see above)


def context_scale(context: np.ndarray, floor: float) -> np.ndarray:
    """Per-window, per-series scale (..., 1, D): the RMS of the model-space context rows (..., C, D), at least
    ``floor``. With the ``delta`` target this is the recent volatility relative to the training period's."""
    context = np.asarray(context, dtype=np.float64)
    rms = np.sqrt(np.mean(np.square(context), axis=-2, keepdims=True))  # (..., 1, D)
    return np.maximum(rms, float(floor)).astype(np.float32)


@dataclass(frozen=True)
class TargetTransform:
    """Raw values <-> model space: ``level`` = (x - mean) / std; ``delta`` = (diff(x) - mean) / std."""

    kind: str
    normalizer: Normalizer

    def __post_init__(self) -> None:
        if self.kind not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.kind!r}")

    @classmethod
    def fit(cls, kind: str, train_values: np.ndarray) -> TargetTransform:
        """Fit the normaliser on the training series (T, D) (on its differences for ``delta``)."""
        if kind not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {kind!r}")
        values = np.asarray(train_values, dtype=np.float64)
        return cls(kind, Normalizer.fit(np.diff(values, axis=0) if kind == "delta" else values))

    @property
    def extra_rows(self) -> int:
        """Raw rows consumed before the first model-space row (1 for ``delta``)."""
        return 1 if self.kind == "delta" else 0

    def forward(self, values: np.ndarray) -> np.ndarray:
        """Raw (..., T, D) -> model space (..., T - extra_rows, D), float32, missing values set to 0 (the mean)."""
        values = np.asarray(values, dtype=np.float64)
        z = self.normalizer.normalize(np.diff(values, axis=-2) if self.kind == "delta" else values)
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)

    def inverse(self, z: np.ndarray, last_value: np.ndarray, anchors: np.ndarray | None = None) -> np.ndarray:
        """Model-space horizon (..., H, D) -> raw values; ``last_value`` (..., D) is the last observed raw row.

        ``anchors`` (..., H, D), for the one-step evaluation: the true raw value before each horizon step (see
        ``one_step_anchors``); a ``delta`` step is then added to its anchor instead of being cumulated.
        """
        raw = self.normalizer.denormalize(np.asarray(z, dtype=np.float64))
        if self.kind == "delta":
            if anchors is not None:
                return np.asarray(anchors, dtype=np.float64) + raw
            raw = np.asarray(last_value, dtype=np.float64)[..., None, :] + np.cumsum(raw, axis=-2)
        return raw

    def truth_rows(self, raw_history: np.ndarray, truth: np.ndarray) -> np.ndarray:
        """Model-space rows (N, P, D) of the true horizon (N, P, D) after raw histories (N, R, D)."""
        raw = np.concatenate([raw_history[:, raw_history.shape[1] - self.extra_rows:], truth], axis=1)
        return self.forward(raw)


def filled_truth(last_value: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``truth`` (N, P, D) with each missing value replaced by the previous true one (``last_value`` (N, D) first)."""
    out = np.array(truth, dtype=np.float64)
    prev = np.asarray(last_value, dtype=np.float64)
    for h in range(out.shape[1]):
        out[:, h] = prev = np.where(np.isnan(out[:, h]), prev, out[:, h])
    return out


def one_step_anchors(last_value: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N, P, D) true raw value before each horizon step: ``last_value`` (N, D), then ``truth`` (N, P, D) shifted by
    one step (missing values carried forward, ``filled_truth``)."""
    last = np.asarray(last_value, dtype=np.float64)[:, None]  # (N, 1, D)
    return np.concatenate([last, filled_truth(last_value, truth)[:, :-1]], axis=1)


def last_observed(raw_hist: np.ndarray, transform: TargetTransform) -> np.ndarray:
    """(N, D) last non-missing value of each series in raw histories (N, R, D): the anchor of a ``delta``
    forecast. A series with no observed value in the window falls back to the training mean for ``level`` and
    to 0 for ``delta``, whose normaliser only knows the changes."""
    raw_hist = np.asarray(raw_hist, dtype=np.float64)
    observed = ~np.isnan(raw_hist)  # (N, R, D)
    idx = np.where(observed, np.arange(raw_hist.shape[1])[None, :, None], -1).max(axis=1)  # (N, D) last valid row
    last = np.take_along_axis(raw_hist, np.maximum(idx, 0)[:, None, :], axis=1)[:, 0]  # (N, D)
    fallback = transform.normalizer.mean if transform.kind == "level" else 0.0
    return np.where(idx >= 0, last, fallback)


@dataclass(frozen=True)
class ForecastWindows:
    """N forecast problems: model-space history, calendar features, raw truth and raw last value."""

    history: np.ndarray  # (N, max_lag + C, D) float32 model space
    time_features: np.ndarray  # (N, max_lag + C + P, 2F) float32
    truth: np.ndarray | None  # (N, P, D) float64 raw, None when unknown
    last_value: np.ndarray  # (N, D) float64 raw last observed row
    raw_history: np.ndarray  # (N, R, D) float64 raw rows before the horizon (for plots and baselines)

    @property
    def num_windows(self) -> int:
        """N."""
        return int(self.history.shape[0])


def series_features(series: MultivariateSeries, freq: str, extra: int = 0) -> np.ndarray:
    """(T + extra, 2F) Fourier calendar features of a series' rows, continued ``extra`` steps past its end."""
    return fourier_time_features(period_times(series.start_ordinal, series.length + extra, freq), freq)


def _raw_rows_needed(spec: WindowSpec, transform: TargetTransform) -> int:
    return spec.max_lag + spec.context_length + transform.extra_rows


def windows_at(raw: np.ndarray, features: np.ndarray, ends: np.ndarray, spec: WindowSpec,
               transform: TargetTransform, *, with_truth: bool = True) -> ForecastWindows:
    """Forecast windows whose horizon starts at raw row ``ends[i]`` of ``raw`` (T, D).

    ``features`` (T', 2F) must cover row ``ends[i] + P - 1``. History = the ``max_lag + C`` model-space rows
    before ``ends[i]``.
    """
    ends = np.asarray(ends, dtype=np.int64)
    need = _raw_rows_needed(spec, transform)
    p = spec.prediction_length
    if ends.size and (ends.min() < need or ends.max() + (p if with_truth else 0) > raw.shape[0]):
        raise ValueError(f"forecast starts must lie in [{need}, {raw.shape[0] - (p if with_truth else 0)}], "
                         f"got {ends.min()}..{ends.max()} (history needs {need} rows: max lag {spec.max_lag}, "
                         f"context {spec.context_length})")
    if ends.size and ends.max() + p > features.shape[0]:
        raise ValueError(f"time features cover {features.shape[0]} rows, need {ends.max() + p}")
    rows = ends[:, None] + np.arange(-need, 0)  # (N, need)
    raw_hist = raw[rows]  # (N, need, D)
    history = transform.forward(raw_hist)  # (N, max_lag + C, D)
    h_rows = ends[:, None] + np.arange(-(spec.max_lag + spec.context_length), p)  # (N, max_lag + C + P)
    tf = features[h_rows].astype(np.float32)
    truth = raw[ends[:, None] + np.arange(p)] if with_truth else None  # (N, P, D)
    return ForecastWindows(history, tf, truth, last_observed(raw_hist, transform), raw_hist)


@dataclass(frozen=True)
class PreparedData:
    """A dataset made ready for one forecaster: transform, spec, model-space training series, test windows."""

    name: str
    freq: str
    spec: WindowSpec
    transform: TargetTransform
    train_raw: np.ndarray  # (T, D) float64
    train_z: np.ndarray  # (T - extra_rows, D) float32 model space
    train_features: np.ndarray  # (T - extra_rows, 2F) aligned with train_z
    test: ForecastWindows
    test_end_times: np.ndarray  # (W,) datetime64 of the first forecast step of each test window

    @property
    def target_dim(self) -> int:
        """Number of series D."""
        return int(self.train_raw.shape[1])

    @property
    def num_time_features(self) -> int:
        """2F."""
        return int(self.train_features.shape[1])

    def validation(self, n: int, seed: int) -> ForecastWindows:
        """``n`` seeded random forecast windows from the training series (the paper's validation set)."""
        return validation_windows(self.train_raw, self.train_raw_features, self.spec, self.transform, n, seed)

    @property
    def train_raw_features(self) -> np.ndarray:
        """(T, 2F) features of the raw training rows."""
        extra = self.transform.extra_rows
        first = self.train_features[:1] if extra else self.train_features[:0]
        return np.concatenate([first, self.train_features], axis=0)


def validation_windows(raw: np.ndarray, features: np.ndarray, spec: WindowSpec, transform: TargetTransform,
                       n: int, seed: int) -> ForecastWindows:
    """``n`` forecast windows with starts drawn uniformly (seeded) from the training series."""
    need = _raw_rows_needed(spec, transform)
    high = raw.shape[0] - spec.prediction_length
    if high < need:
        raise ValueError(f"training series of {raw.shape[0]} rows is too short for a validation window "
                         f"({need + spec.prediction_length} rows)")
    rng = np.random.default_rng([int(seed), 7919])
    ends = rng.integers(need, high + 1, size=n)
    return windows_at(raw, features, ends, spec, transform)


def prepare(md: MultivariateData, *, target: str = "level", context_length: int | None = None,
            lags: tuple[int, ...] | None = None, name: str = "dataset") -> PreparedData:
    """Fit the transform on the training split and cut the last-window forecast problem of each test date."""
    p = md.prediction_length
    spec = WindowSpec.for_freq(md.freq, p, context_length)
    if lags is not None:
        spec = WindowSpec(spec.context_length, p, tuple(lags))
    transform = TargetTransform.fit(target, md.train.values)
    train_features = series_features(md.train, md.freq)
    extra = transform.extra_rows
    train_z = transform.forward(md.train.values)
    min_train = spec.window_length + extra
    if md.train.length < min_train:
        raise ValueError(f"{name}: the training series has {md.train.length} steps, fewer than one training "
                         f"window ({min_train} = max lag {spec.max_lag} + context {spec.context_length} + "
                         f"prediction {p}{' + 1 for delta' if extra else ''})")
    if not md.test:
        raise ValueError(f"{name}: the dataset has no test split; `run` scores on the test windows")
    test_parts, end_times = [], []
    for i, w in enumerate(md.test):
        if w.length - p < _raw_rows_needed(spec, transform):
            raise ValueError(f"{name}: test window {i} has {w.length - p} past steps, fewer than the "
                             f"{_raw_rows_needed(spec, transform)} the model needs")
        feats = series_features(w, md.freq)
        test_parts.append(windows_at(w.values, feats, np.array([w.length - p]), spec, transform))
        end_times.append(w.times()[w.length - p])
    # raw histories of different test windows have equal lengths (need rows), so they stack
    test = ForecastWindows(
        history=np.concatenate([t.history for t in test_parts]),
        time_features=np.concatenate([t.time_features for t in test_parts]),
        truth=np.concatenate([t.truth for t in test_parts]),
        last_value=np.concatenate([t.last_value for t in test_parts]),
        raw_history=np.concatenate([t.raw_history for t in test_parts]),
    )
    train_end = md.train.start_ordinal + md.train.length  # ordinal of the first period after the training split
    early = [i for i, w in enumerate(md.test)  # (the GluonTS estimator passes the training series as a stand-in)
             if w is not md.train and w.start_ordinal + w.length - p < train_end]
    if early:
        warnings.warn(f"{name}: the forecast horizon of test window(s) {early[:5]} starts inside the training split, "
                      "so training and the normalisation saw those targets; the scores are not a held-out test",
                      stacklevel=2)
    missing = int(np.isnan(md.train.values).sum())
    if missing:
        warnings.warn(f"{name}: {missing} missing training values are filled with the series mean and trained on "
                      "as data (there is no observed-value mask in the loss)", stacklevel=2)
    return PreparedData(name, md.freq, spec, transform, md.train.values, train_z, train_features[extra:], test,
                        np.array(end_times))
