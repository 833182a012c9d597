"""CRPS-sum, CRPS, ND and NRMSE on sample forecasts, numerically equal to GluonTS's MultivariateEvaluator.

Shapes: ``samples`` (windows, num_samples, horizon, dims), ``targets`` (windows, horizon, dims).

The definitions follow ``gluonts.evaluation.MultivariateEvaluator(quantiles=(np.arange(20)/20.0)[1:],
target_agg_funcs={"sum": np.sum})`` (GluonTS 0.14-0.17), re-derived here without importing it:

* a q-quantile of a sample forecast is the sorted samples' entry ``round((num_samples - 1) * q)`` (numpy's
  round-half-to-even), not an interpolated quantile;
* quantile loss ``QL_q = 2 * sum_t |(yhat_q - y) * (1{y <= yhat_q} - q)|``; per quantile the losses and the
  ``sum |y|`` are added over all windows (and series) before dividing; then the mean over quantiles;
* CRPS-sum (``m_sum_mean_wQuantileLoss``) does this on the series summed over ``dims`` (targets summed
  skipping NaN, as pandas does; samples summed as given); CRPS (``mean_wQuantileLoss``) on every series;
* missing (NaN) targets are left out of every sum and mean, as the Evaluator's masking does;
* ND = ``sum |y - median| / sum |y|``; NRMSE = ``sqrt(mean MSE) / mean(mean |y|)`` with MSE and mean |y| taken
  per (window, series) of the sample mean, then averaged over those pairs.
"""

from __future__ import annotations

import numpy as np

QUANTILES: tuple[float, ...] = tuple(float(q) for q in (np.arange(20) / 20.0)[1:])


def _validate(samples: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    samples, targets = np.asarray(samples), np.asarray(targets, dtype=np.float64)
    if samples.ndim != 4:
        raise ValueError(f"samples must be (windows, num_samples, horizon, dims), got shape {samples.shape}")
    w, _, h, d = samples.shape
    if targets.shape != (w, h, d):
        raise ValueError(f"targets must be (windows, horizon, dims) = {(w, h, d)} to match samples, got "
                         f"{targets.shape}")
    if samples.dtype.kind not in "fiu":
        raise ValueError(f"samples must be numeric, got dtype {samples.dtype}")
    if not np.isfinite(samples).all():
        raise ValueError("samples contain NaN or inf")
    return samples, targets


def _check_quantiles(quantiles) -> np.ndarray:
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or (q < 0).any() or (q > 1).any():
        raise ValueError(f"quantiles must be a non-empty 1-D sequence in [0, 1], got {quantiles!r}")
    return q


def sample_quantiles(samples: np.ndarray, quantiles=QUANTILES) -> np.ndarray:
    """GluonTS SampleForecast quantiles: sorted samples at ``round((S-1)*q)``; (Q, *shape without axis 1)."""
    q = _check_quantiles(quantiles)
    sorted_samples = np.sort(samples, axis=1)
    idx = np.round((samples.shape[1] - 1) * q).astype(np.int64)
    return np.moveaxis(np.take(sorted_samples, idx, axis=1), 1, 0)


def _weighted_quantile_loss(series: np.ndarray, target: np.ndarray, quantiles) -> float:
    """Mean over quantiles of (total quantile loss) / (total |target|), NaN targets masked."""
    q = _check_quantiles(quantiles)
    preds = sample_quantiles(series, q).astype(np.float64)  # (Q, W, H, ...)
    valid = ~np.isnan(target)
    y = np.where(valid, target, 0.0)
    below = (y <= preds) & valid
    loss = np.abs((preds - y) * (below - q.reshape((-1,) + (1,) * y.ndim)))
    total = 2.0 * np.where(valid, loss, 0.0).reshape(q.size, -1).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # all-zero targets give inf / nan, as in GluonTS
        return float(np.mean(total / np.abs(y).sum()))


def sum_over_dims(samples: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Samples summed over dims (dtype kept) and targets summed skipping NaN: (W, S, H) and (W, H)."""
    samples, targets = _validate(samples, targets)
    return np.sum(samples, axis=-1), np.nansum(targets, axis=-1)


def crps_sum(samples: np.ndarray, targets: np.ndarray, quantiles=QUANTILES) -> float:
    """CRPS-sum: GluonTS ``m_sum_mean_wQuantileLoss`` of the dims-summed series (the paper's metric)."""
    s, y = sum_over_dims(samples, targets)
    return _weighted_quantile_loss(s, y, quantiles)


def crps(samples: np.ndarray, targets: np.ndarray, quantiles=QUANTILES) -> float:
    """CRPS: GluonTS ``mean_wQuantileLoss`` over every (window, series)."""
    samples, targets = _validate(samples, targets)
    return _weighted_quantile_loss(samples, targets, quantiles)


def nd(samples: np.ndarray, targets: np.ndarray) -> float:
    """Normalised deviation of the sample median: ``sum |y - median| / sum |y|`` (GluonTS ``ND``)."""
    samples, targets = _validate(samples, targets)
    median = sample_quantiles(samples, (0.5,))[0].astype(np.float64)
    valid = ~np.isnan(targets)
    y = np.where(valid, targets, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.abs(np.where(valid, y - median, 0.0)).sum() / np.abs(y).sum())


def nrmse(samples: np.ndarray, targets: np.ndarray) -> float:
    """RMSE of the sample mean over mean |y| (GluonTS ``NRMSE``), per (window, series) then averaged."""
    samples, targets = _validate(samples, targets)
    mean = np.mean(samples, axis=1).astype(np.float64)  # (W, H, D)
    valid = ~np.isnan(targets)
    count = valid.sum(axis=1)  # (W, D) observed steps per window and series
    y = np.where(valid, targets, 0.0)
    rows = count > 0  # (window, series) pairs with no observation are skipped, as GluonTS does
    if not rows.any():
        return float("nan")
    mse = (np.where(valid, (y - mean) ** 2, 0.0).sum(axis=1)[rows] / count[rows]).mean()
    abs_mean = (np.abs(y).sum(axis=1)[rows] / count[rows]).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.sqrt(mse) / abs_mean)


def evaluate(samples: np.ndarray, targets: np.ndarray, quantiles=QUANTILES) -> dict[str, float]:
    """All four metrics, keyed by name (with the GluonTS key of each in the docstring of its function)."""
    return {
        "crps_sum": crps_sum(samples, targets, quantiles),
        "crps": crps(samples, targets, quantiles),
        "nd": nd(samples, targets),
        "nrmse": nrmse(samples, targets),
    }
