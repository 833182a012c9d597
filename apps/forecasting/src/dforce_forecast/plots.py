"""Forecast plots: sample median with 50% and 90% bands against the truth, one panel per series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def plot_forecast(samples: np.ndarray, history: np.ndarray, truth: np.ndarray | None, path: str | Path, *,
                  title: str = "", max_series: int = 8, series_names: list[str] | None = None) -> Path:
    """Write a PNG: per series (first ``max_series``), history, truth, median and 50/90% sample bands.

    ``samples`` (S, P, D) raw sample paths, ``history`` (R, D) raw rows before the horizon, ``truth`` (P, D).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = np.asarray(samples, dtype=np.float64)
    if samples.ndim != 3:
        raise ValueError(f"samples must be (num_samples, horizon, dims), got shape {samples.shape}")
    s, p, d = samples.shape
    n = min(d, max_series)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.6 * rows), squeeze=False)
    r = history.shape[0]
    t_hist = np.arange(-r, 0)
    t_fut = np.arange(p)
    q = np.quantile(samples, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)  # (5, P, D)
    for j in range(rows * cols):
        ax = axes[j // cols][j % cols]
        if j >= n:
            ax.axis("off")
            continue
        ax.plot(t_hist, history[:, j], color="black", lw=1.0, label="history")
        if truth is not None:
            ax.plot(t_fut, truth[:, j], color="black", lw=1.0, ls="--", label="truth")
        ax.fill_between(t_fut, q[0, :, j], q[4, :, j], color="tab:blue", alpha=0.2, label="90%")
        ax.fill_between(t_fut, q[1, :, j], q[3, :, j], color="tab:blue", alpha=0.4, label="50%")
        ax.plot(t_fut, q[2, :, j], color="tab:blue", lw=1.2, label="median")
        ax.set_title(series_names[j] if series_names else f"series {j}", fontsize=9)
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.legend(fontsize=6, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
