"""Loop kernels for window gathering and lag building, compiled with numba on first use (lazy import)."""

from __future__ import annotations

import functools
import importlib.util
from types import SimpleNamespace


def numba_available() -> bool:
    """Whether numba can be imported (the ``timeseries`` / ``numba`` extra)."""
    return importlib.util.find_spec("numba") is not None


def _gather(x, starts, offset, length, out):
    """out[n, t, :] = x[starts[n] + offset + t, :]."""
    n_dim = x.shape[1]
    for n in range(starts.shape[0]):
        base = starts[n] + offset
        for t in range(length):
            for d in range(n_dim):
                out[n, t, d] = x[base + t, d]


def _lags(x, starts, offset, length, lags, out):
    """out[n, t, j, :] = x[starts[n] + offset + t - lags[j], :]."""
    n_dim = x.shape[1]
    for n in range(starts.shape[0]):
        base = starts[n] + offset
        for t in range(length):
            for j in range(lags.shape[0]):
                row = base + t - lags[j]
                for d in range(n_dim):
                    out[n, t, j, d] = x[row, d]


def _windows(x, tf, starts, offset, length, lags, out_x, out_lags, out_tf):
    """Target rows, lagged rows and time-feature rows of every window, in one pass."""
    n_dim = x.shape[1]
    n_tf = tf.shape[1]
    for n in range(starts.shape[0]):
        base = starts[n] + offset
        for t in range(length):
            row = base + t
            for d in range(n_dim):
                out_x[n, t, d] = x[row, d]
            for f in range(n_tf):
                out_tf[n, t, f] = tf[row, f]
            for j in range(lags.shape[0]):
                lag_row = row - lags[j]
                for d in range(n_dim):
                    out_lags[n, t, j, d] = x[lag_row, d]


@functools.cache
def compiled() -> SimpleNamespace:
    """The kernels jit-compiled by numba (ImportError with a hint if numba is missing)."""
    try:
        import numba
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("the numba backend needs numba: pip install 'dforce-datasets[timeseries]'") from exc
    jit = numba.njit(nogil=True, cache=False)
    return SimpleNamespace(gather=jit(_gather), lags=jit(_lags), windows=jit(_windows))
