"""Seasonal random walk with the empirical step distribution: the naive probabilistic baseline.

``y[t] = y[t - s] + e`` with ``e`` drawn (with replacement) from the training split's seasonal differences
``y[t] - y[t - s]``, a whole D-vector at a time, so the cross-series correlation of the steps is kept. Beyond
one season the recursion uses the sampled values, so the spread grows like a random walk. ``s`` = 1 for business
days (a plain random walk), 24 for hourly data, 7 for daily, 48 for 30-minute data, 12 for monthly.

With ``scale_by_context`` (method ``naive_vol``) each window's draws are rescaled per series by the ratio of the
RMS seasonal difference in the window's history to the RMS over the training split: a random walk whose
volatility follows the recent past.
"""

from __future__ import annotations

import numpy as np

from dforce_datasets.timeseries import parse_freq
from dforce_forecast.data import EVALUATIONS, ForecastWindows, PreparedData, filled_truth

SEASONS = {"B": 1, "D": 7, "H": 24, "W": 1, "M": 12}


def season_length(freq: str) -> int:
    """Steps per season of a frequency (minutes: one day)."""
    f = parse_freq(freq)
    if f.unit == "min":
        return max(1, (24 * 60) // f.multiple)
    if f.unit == "H":
        return max(1, 24 // f.multiple)
    return SEASONS[f.unit]


class SeasonalRandomWalk:
    """Probabilistic seasonal-naive / random-walk forecaster (``fit`` on the train split, ``sample_windows``)."""

    def __init__(self, season: int | None = None, *, scale_by_context: bool = False) -> None:
        if season is not None and season < 1:
            raise ValueError(f"season must be >= 1, got {season}")
        self.season = season
        self.scale_by_context = bool(scale_by_context)
        self.method = "naive_vol" if scale_by_context else "naive"
        self.steps: np.ndarray | None = None
        self.prediction_length: int | None = None

    def fit(self, data: PreparedData, **_: object) -> SeasonalRandomWalk:
        """Collect the seasonal differences of the raw training series (rows with a NaN are dropped)."""
        s = self.season if self.season is not None else season_length(data.freq)
        raw = data.train_raw
        if raw.shape[0] <= s:
            raise ValueError(f"training series of {raw.shape[0]} steps is too short for season {s}")
        steps = raw[s:] - raw[:-s]
        steps = steps[~np.isnan(steps).any(axis=1)]
        if not len(steps):
            raise ValueError("no complete seasonal differences in the training series")
        self.season, self.steps, self.prediction_length = s, steps, data.spec.prediction_length
        return self

    def context_ratio(self, hist: np.ndarray) -> np.ndarray:
        """(N, D) RMS seasonal difference of each window's raw history (N, R, D) over the training RMS (1 where
        the history has no complete difference)."""
        assert self.steps is not None and self.season is not None
        s = self.season
        if hist.shape[1] <= s:
            raise ValueError(f"windows hold {hist.shape[1]} history rows; volatility scaling needs more than {s}")
        diffs = hist[:, s:] - hist[:, :-s]  # (N, R - s, D)
        seen = np.isfinite(diffs)
        count = seen.sum(axis=1)  # (N, D)
        recent = np.sqrt(np.where(seen, np.square(diffs), 0.0).sum(axis=1) / np.maximum(count, 1))  # (N, D)
        train = np.sqrt(np.mean(np.square(self.steps), axis=0))  # (D,)
        ok = (count > 0) & (train > 0)
        return np.where(ok, recent / np.where(train > 0, train, 1.0), 1.0)

    def sample_windows(self, windows: ForecastWindows, *, num_samples: int = 100, seed: int = 0,
                       evaluation: str = "rollout") -> np.ndarray:
        """Raw sample paths (N, S, P, D) continuing each window's raw history (``one_step``: see the module)."""
        if self.steps is None or self.prediction_length is None or self.season is None:
            raise RuntimeError("call fit(data) first")
        if evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
        if evaluation == "one_step" and windows.truth is None:
            raise ValueError("evaluation='one_step' needs windows with their truth (it conditions on it)")
        s, p = self.season, self.prediction_length
        hist = windows.raw_history
        if hist.shape[1] < s:
            raise ValueError(f"windows hold {hist.shape[1]} history rows, the season needs {s}")
        rng = np.random.default_rng(int(seed))
        n, d = hist.shape[0], hist.shape[2]
        last = hist[:, -s:]  # (N, s, D)
        last = np.where(np.isnan(last), np.nanmean(hist, axis=1, keepdims=True), last)
        last = np.nan_to_num(last)
        out = np.empty((n, num_samples, s + p, d))
        out[:, :, :s] = last[:, None]
        picks = rng.integers(0, len(self.steps), size=(n, num_samples, p))
        draws = self.steps[picks]  # (N, S, P, D)
        if self.scale_by_context:
            draws = draws * self.context_ratio(hist)[:, None, None, :]
        if evaluation == "one_step":  # each step from the true value one season back: history, then the truth
            true_seq = np.concatenate([last, filled_truth(last[:, -1], windows.truth)], axis=1)  # (N, s + P, D)
            return true_seq[:, None, :p] + draws
        for h in range(p):  # p is small; vectorised over windows, samples and series
            out[:, :, s + h] = out[:, :, h] + draws[:, :, h]
        return out[:, :, s:]
