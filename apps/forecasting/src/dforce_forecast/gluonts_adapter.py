"""GluonTS interoperability: a ``DForceEstimator`` / ``DForcePredictor`` that yield ``SampleForecast`` objects.

Needs the ``gluonts`` extra (``pip install dforce-forecast[gluonts]``); gluonts is imported when this module is.

```python
from gluonts.dataset.multivariate_grouper import MultivariateGrouper
from gluonts.evaluation import MultivariateEvaluator, make_evaluation_predictions
from dforce_forecast.gluonts_adapter import DForceEstimator

train = MultivariateGrouper(max_target_dim=8)(dataset.train)       # one entry, target (D, T)
predictor = DForceEstimator(freq="B", prediction_length=30).train(train)
forecasts, tss = make_evaluation_predictions(test, predictor, num_samples=100)
```

Entries may be multivariate (``target`` of shape (D, T), as MultivariateGrouper writes them) or a list of
univariate series on one time grid, which the estimator groups itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

try:
    import pandas as pd
    from gluonts.model.estimator import Estimator
    from gluonts.model.forecast import SampleForecast
    from gluonts.model.predictor import Predictor
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "dforce_forecast.gluonts_adapter needs GluonTS: pip install 'dforce-forecast[gluonts]'"
    ) from exc

from dforce_datasets.timeseries import MultivariateData, MultivariateSeries, Normalizer, parse_freq
from dforce_datasets.timeseries.calendar import from_ordinal, to_ordinal
from dforce_forecast.config import ForecastConfig
from dforce_forecast.forecaster import Forecaster


def _start_time(start: Any) -> np.datetime64:
    """Minute-precision start time of a GluonTS ``start`` (pandas Period / Timestamp / string)."""
    if isinstance(start, pd.Period):
        start = start.to_timestamp()
    return np.datetime64(pd.Timestamp(start).to_datetime64(), "m")


def _entry_matrix(entry: dict, where: str) -> np.ndarray:
    """The (T, D) float64 target of one multivariate entry (GluonTS stores (D, T))."""
    target = np.asarray(entry["target"], dtype=np.float64)
    if target.ndim == 1:
        target = target[None, :]
    if target.ndim != 2:
        raise ValueError(f"{where}: target must be (D, T) or (T,), got shape {target.shape}")
    return target.T


def _grouped(dataset: Iterable[dict], freq: str) -> tuple[np.ndarray, int]:
    """One (T, D) array and its start ordinal from a multivariate entry or univariate entries on one grid."""
    entries = list(dataset)
    if not entries:
        raise ValueError("the training dataset is empty")
    if len(entries) == 1:
        values = _entry_matrix(entries[0], "training entry 0")
        return values, int(to_ordinal(_start_time(entries[0]["start"]), freq))
    columns = [_entry_matrix(e, f"training entry {i}") for i, e in enumerate(entries)]
    if any(c.shape[1] != 1 for c in columns):
        raise ValueError("give either one multivariate entry (target (D, T)) or several univariate entries; "
                         "group multivariate data with gluonts' MultivariateGrouper first")
    m = parse_freq(freq).multiple  # ordinals count base units (minutes for "30min"); rows count steps
    starts = np.array([int(to_ordinal(_start_time(e["start"]), freq)) for e in entries])
    lo = int(starts.min())
    if ((starts - lo) % m).any():
        raise ValueError(f"the training series do not start on one {freq} grid")
    first_row = (starts - lo) // m
    rows = int((first_row + np.array([c.shape[0] for c in columns])).max())
    values = np.full((rows, len(columns)), np.nan)
    for j, (r, c) in enumerate(zip(first_row, columns, strict=True)):
        values[r:r + c.shape[0], j] = c[:, 0]
    return values, lo


class DForcePredictor(Predictor):
    """Wraps a trained :class:`~dforce_forecast.forecaster.Forecaster`; ``predict`` yields one multivariate
    ``SampleForecast`` (samples (S, P, D)) per entry, forecasting the ``P`` steps after the entry's target."""

    def __init__(self, forecaster: Forecaster, prediction_length: int, num_samples: int = 100, seed: int = 0,
                 batch_size: int = 8) -> None:
        super().__init__(prediction_length=prediction_length)
        if forecaster.spec is None or forecaster.spec.prediction_length != prediction_length:
            raise ValueError("the forecaster must be trained, with the same prediction_length")
        self.forecaster = forecaster
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.batch_size = int(batch_size)

    def _forecast_batch(self, batch: list[tuple[dict, np.ndarray, np.datetime64]], num_samples: int,
                        seed: int) -> Iterator[SampleForecast]:
        need = self.forecaster.history_length
        freq = self.forecaster.freq
        hist = np.stack([values[-need:] for _, values, _ in batch])  # (N, need, D)
        row0 = [int(to_ordinal(start, freq)) + parse_freq(freq).multiple * (values.shape[0] - need)
                for _, values, start in batch]
        starts = from_ordinal(np.array(row0), freq)
        samples = self.forecaster.sample(hist, start=starts, num_samples=num_samples, seed=seed)  # (N, S, P, D)
        for (entry, values, _), s in zip(batch, samples, strict=True):
            first = entry["start"] if isinstance(entry["start"], pd.Period) else pd.Period(entry["start"], freq=freq)
            yield SampleForecast(samples=s.astype(np.float32), start_date=first + values.shape[0],
                                 item_id=entry.get("item_id"))

    def predict(self, dataset: Iterable[dict], num_samples: int | None = None, **kwargs: Any) -> Iterator[SampleForecast]:
        """Forecast every entry of ``dataset`` (batched over entries; one seed per batch)."""
        s = int(num_samples) if num_samples is not None else self.num_samples
        need = self.forecaster.history_length
        batch: list[tuple[dict, np.ndarray, np.datetime64]] = []
        calls = 0
        for i, entry in enumerate(dataset):
            values = _entry_matrix(entry, f"entry {i}")
            if values.shape[1] != self.forecaster.model.target_dim:
                raise ValueError(f"entry {i} has {values.shape[1]} series, the model forecasts "
                                 f"{self.forecaster.model.target_dim} jointly: group the entries with gluonts' "
                                 "MultivariateGrouper (one entry per forecast date, target (D, T))")
            if values.shape[0] < need:
                raise ValueError(f"entry {i} has {values.shape[0]} steps; the model needs at least {need} "
                                 f"(max lag + context)")
            batch.append((entry, values, _start_time(entry["start"])))
            if len(batch) == self.batch_size:
                yield from self._forecast_batch(batch, s, self.seed + calls)
                batch, calls = [], calls + 1
        if batch:
            yield from self._forecast_batch(batch, s, self.seed + calls)


class DForceEstimator(Estimator):
    """Trains a Diffusion Forcing (``method="df"``) or teacher-forcing (``"tf"``) forecaster on a GluonTS
    dataset and returns a :class:`DForcePredictor`."""

    def __init__(self, freq: str, prediction_length: int, *, method: str = "df", config: ForecastConfig | None = None,
                 seed: int = 0, max_minutes: float | None = None, num_samples: int = 100, val_windows: int = 8,
                 progress: bool = False) -> None:
        super().__init__()
        parse_freq(freq)  # fail early on unsupported frequencies
        if prediction_length < 1:
            raise ValueError(f"prediction_length must be >= 1, got {prediction_length}")
        self.freq = freq
        self.prediction_length = int(prediction_length)
        self.method = method
        self.config = config if config is not None else ForecastConfig()
        self.seed = int(seed)
        self.max_minutes = max_minutes
        self.num_samples = int(num_samples)
        if val_windows < 1:
            raise ValueError(f"val_windows must be >= 1, got {val_windows}")
        self.val_windows = int(val_windows)
        self.progress = progress

    def train(self, training_data: Iterable[dict], validation_data: Iterable[dict] | None = None,
              **kwargs: Any) -> DForcePredictor:
        """Fit on the (grouped) training series; validation windows are seeded random training windows."""
        if validation_data is not None:
            warnings.warn("DForceEstimator ignores validation_data: early stopping scores `val_windows` seeded "
                          "random windows of the training series, as in the paper's protocol", UserWarning,
                          stacklevel=2)
        values, start = _grouped(training_data, self.freq)
        train = MultivariateSeries(values, start, self.freq)
        # `prepare` wants a test split; the training series stands in. Fitting reads only the training rows (the
        # validation windows are cut from them), so this adds no information.
        data = MultivariateData(self.freq, self.prediction_length, train, (train,), Normalizer.fit(values))
        forecaster = Forecaster(self.config, method=self.method)
        forecaster.fit(data, seed=self.seed, max_minutes=self.max_minutes, progress=self.progress,
                       val_windows=self.val_windows)
        return DForcePredictor(forecaster, self.prediction_length, num_samples=self.num_samples, seed=self.seed)
