"""Covariates (lags, Fourier calendar features, series index) and training-window sampling.

Fourier date features are ``[cos, sin](2*pi*value/period)`` of calendar fields with FIXED periods (minute/60,
hour/24, day-of-week/7, day-of-year/366, ...). This deliberately deviates from the TimeGrad/DF code, which
divides by ``max(value) + 1`` computed per window, so the same date got different features in different
windows (reference.md section 5.3); here a date always maps to the same features.

Window gathering and lag building have a numba backend and a plain-numpy reference (``backend="numpy"``);
both return identical arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from . import _kernels
from .calendar import calendar_fields, parse_freq

LAGS: dict[str, tuple[int, ...]] = {
    "M": (1, 12),
    "W": (1, 2, 4),  # not in the paper code; our choice
    "D": (1, 7, 14),
    "B": (1, 2),
    "H": (1, 24, 168),
    "min": (1, 4, 12, 24, 48),
}
TIME_FEATURES: dict[str, tuple[str, ...]] = {
    "M": ("month_of_year",),
    "W": ("week_of_year",),
    "D": ("day_of_week",),
    "B": ("day_of_week", "day_of_year"),
    "H": ("hour_of_day", "day_of_week"),
    "min": ("minute_of_hour", "hour_of_day", "day_of_week"),
}
PERIODS: dict[str, int] = {
    "minute_of_hour": 60, "hour_of_day": 24, "day_of_week": 7, "day_of_month": 31,
    "day_of_year": 366, "week_of_year": 53, "month_of_year": 12,
}
BACKENDS = ("auto", "numba", "numpy")


def lags_for_freq(freq: str) -> tuple[int, ...]:
    """Lags (in steps) used as covariates for a frequency: M [1,12], D [1,7,14], B [1,2], H [1,24,168], min [...]."""
    return LAGS[parse_freq(freq).unit]


def time_feature_names(freq: str) -> tuple[str, ...]:
    """Calendar fields encoded for a frequency (H: hour of day, day of week; B: day of week, day of year; ...)."""
    return TIME_FEATURES[parse_freq(freq).unit]


def fourier_time_features(times: np.ndarray, freq: str, dtype=np.float32) -> np.ndarray:
    """(T, 2F) ``[cos, sin]`` pairs of the frequency's calendar fields at ``times`` (fixed periods)."""
    fields = calendar_fields(times)
    columns = []
    for name in time_feature_names(freq):
        angle = 2.0 * np.pi * fields[name].astype(np.float64) / PERIODS[name]
        columns += [np.cos(angle), np.sin(angle)]
    return np.stack(columns, axis=-1).astype(dtype)


def series_index(dim: int) -> np.ndarray:
    """Index of each series, ``0 .. dim-1`` (int64), for a learned per-series embedding."""
    return np.arange(dim, dtype=np.int64)


@dataclass(frozen=True)
class WindowSpec:
    """Window geometry: ``max_lag`` rows of lag history, then ``context_length + prediction_length`` tokens."""

    context_length: int
    prediction_length: int
    lags: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.context_length < 1 or self.prediction_length < 1:
            raise ValueError(f"context_length and prediction_length must be >= 1, got {self.context_length}, "
                             f"{self.prediction_length}")
        if not self.lags or min(self.lags) < 1:
            raise ValueError(f"lags must be a non-empty tuple of positive integers, got {self.lags}")

    @classmethod
    def for_freq(cls, freq: str, prediction_length: int, context_length: int | None = None) -> WindowSpec:
        """The paper's setup: context = prediction length, lags by frequency."""
        return cls(context_length or prediction_length, prediction_length, lags_for_freq(freq))

    @property
    def max_lag(self) -> int:
        """Largest lag."""
        return max(self.lags)

    @property
    def history_length(self) -> int:
        """Rows before the forecast: context + max lag."""
        return self.context_length + self.max_lag

    @property
    def num_tokens(self) -> int:
        """Tokens per window: context + prediction."""
        return self.context_length + self.prediction_length

    @property
    def window_length(self) -> int:
        """Rows one window spans: max lag + context + prediction."""
        return self.max_lag + self.num_tokens


def sample_starts(n_time: int, spec: WindowSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform window starts (int64) with the whole window inside ``n_time`` rows."""
    high = n_time - spec.window_length
    if high < 0:
        raise ValueError(f"series of length {n_time} is shorter than one window ({spec.window_length} rows)")
    return rng.integers(0, high + 1, size=n, dtype=np.int64)


def _check(x: np.ndarray, starts: np.ndarray, offset: int, length: int, max_lag: int) -> np.ndarray:
    if x.ndim != 2:
        raise ValueError(f"x must be (time, dim), got shape {x.shape}")
    starts = np.ascontiguousarray(starts, dtype=np.int64)
    if starts.ndim != 1:
        raise ValueError(f"starts must be 1-D, got shape {starts.shape}")
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if starts.size and (starts.min() + offset - max_lag < 0 or starts.max() + offset + length > x.shape[0]):
        raise ValueError(f"windows [start + {offset} - {max_lag}, start + {offset} + {length}) must lie in "
                         f"[0, {x.shape[0]}); starts range {starts.min()}..{starts.max()}")
    return starts


def _use_numba(backend: str) -> bool:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return backend == "numba" or (backend == "auto" and _kernels.numba_available())


def gather_windows_numpy(x: np.ndarray, starts: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Reference: ``out[n, t] = x[starts[n] + offset + t]`` by fancy indexing, shape (N, length, D)."""
    starts = _check(x, starts, offset, length, 0)
    return x[starts[:, None] + offset + np.arange(length)]


def lag_features_numpy(x: np.ndarray, starts: np.ndarray, length: int, lags: Sequence[int],
                       offset: int = 0) -> np.ndarray:
    """Reference: ``out[n, t, j] = x[starts[n] + offset + t - lags[j]]``, shape (N, length, len(lags), D)."""
    lags = np.asarray(lags, dtype=np.int64)
    starts = _check(x, starts, offset, length, int(lags.max()))
    rows = starts[:, None] + offset + np.arange(length)
    return x[rows[:, :, None] - lags]


def gather_windows(x: np.ndarray, starts: np.ndarray, length: int, offset: int = 0,
                   backend: str = "auto") -> np.ndarray:
    """``out[n, t] = x[starts[n] + offset + t]``, shape (N, length, D); numba or numpy backend."""
    if not _use_numba(backend):
        return gather_windows_numpy(x, starts, length, offset)
    starts = _check(x, starts, offset, length, 0)
    out = np.empty((starts.size, length, x.shape[1]), dtype=x.dtype)
    _kernels.compiled().gather(np.ascontiguousarray(x), starts, offset, length, out)
    return out


def lag_features(x: np.ndarray, starts: np.ndarray, length: int, lags: Sequence[int], offset: int = 0,
                 backend: str = "auto") -> np.ndarray:
    """``out[n, t, j] = x[starts[n] + offset + t - lags[j]]``, shape (N, length, L, D); numba or numpy."""
    if not _use_numba(backend):
        return lag_features_numpy(x, starts, length, lags, offset)
    lags = np.asarray(lags, dtype=np.int64)
    starts = _check(x, starts, offset, length, int(lags.max()))
    out = np.empty((starts.size, length, lags.size, x.shape[1]), dtype=x.dtype)
    _kernels.compiled().lags(np.ascontiguousarray(x), starts, offset, length, lags, out)
    return out


@dataclass(frozen=True)
class WindowBatch:
    """Model inputs for N windows of ``num_tokens`` steps (context then prediction)."""

    target: np.ndarray  # (N, num_tokens, D) normalised target
    lags: np.ndarray  # (N, num_tokens, L, D): lagged normalised target, lag j = value lags[j] steps earlier
    time_features: np.ndarray  # (N, num_tokens, 2F) Fourier calendar features
    series_index: np.ndarray  # (D,) int64
    starts: np.ndarray  # (N,) first row of each window (its lag history) in the source array


def make_windows(x: np.ndarray, time_features: np.ndarray, starts: np.ndarray, spec: WindowSpec,
                 backend: str = "auto") -> WindowBatch:
    """Cut windows at ``starts`` from a (T, D) normalised array and its (T, 2F) time features."""
    if time_features.ndim != 2 or time_features.shape[0] != x.shape[0]:
        raise ValueError(f"time_features must be ({x.shape[0]}, F), got shape {time_features.shape}")
    offset, length = spec.max_lag, spec.num_tokens
    if not _use_numba(backend):
        target = gather_windows_numpy(x, starts, length, offset)
        lags = lag_features_numpy(x, starts, length, spec.lags, offset)
        tf = gather_windows_numpy(time_features, starts, length, offset)
    else:
        lag_arr = np.asarray(spec.lags, dtype=np.int64)
        starts = _check(x, starts, offset, length, spec.max_lag)
        n, d = starts.size, x.shape[1]
        target = np.empty((n, length, d), dtype=x.dtype)
        lags = np.empty((n, length, lag_arr.size, d), dtype=x.dtype)
        tf = np.empty((n, length, time_features.shape[1]), dtype=time_features.dtype)
        _kernels.compiled().windows(np.ascontiguousarray(x), np.ascontiguousarray(time_features), starts, offset,
                                    length, lag_arr, target, lags, tf)
    return WindowBatch(target, lags, tf, series_index(x.shape[1]), np.asarray(starts, dtype=np.int64))
