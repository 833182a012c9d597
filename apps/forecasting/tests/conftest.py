"""Shared fixtures for the forecasting tests: one torch thread, offline logging, tiny GluonTS-format datasets."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")

# step of each frequency in minutes (B is handled separately: weekdays only)
_STEP_MINUTES = {"H": 60, "30min": 30, "D": 1440}


def _times(start: str, n: int, freq: str) -> np.ndarray:
    t0 = np.datetime64(start, "m")
    if freq == "B":
        days = np.busday_offset(t0.astype("datetime64[D]"), np.arange(n), roll="forward")
        return days.astype("datetime64[m]")
    return t0 + np.arange(n) * np.timedelta64(_STEP_MINUTES[freq], "m")


def periodic_values(n: int, dim: int, freq: str, start: str, seed: int, noise: float = 0.05,
                    integer: bool = False) -> np.ndarray:
    """(n, dim) positive series: a daily / weekly cycle per series plus noise (counts if ``integer``)."""
    rng = np.random.default_rng(seed)
    t = _times(start, n, freq)
    minutes = t.astype(np.int64)
    if freq == "D":
        phase = 2 * np.pi * ((minutes // 1440 + 3) % 7) / 7.0
    else:
        phase = 2 * np.pi * (minutes % 1440) / 1440.0
    level = 5.0 + np.arange(dim)[None, :]
    x = level * (1.0 + 0.5 * np.sin(phase[:, None] + np.arange(dim)[None, :]))
    x = x + noise * rng.standard_normal((n, dim)) * level
    x = np.maximum(x, 0.0)
    return np.round(x) if integer else x


def write_gluonts(root: Path, *, freq: str, prediction_length: int, train_length: int, num_windows: int,
                  dim: int, start: str = "2014-01-01 00:00:00", raw_layout: bool = True, seed: int = 0,
                  integer: bool = False, with_nan: bool = False, noise: float = 0.05) -> Path:
    """A dataset in the GluonTS ``_nips`` layout: ``train/`` and ``test/`` JSON lines plus metadata.

    ``raw_layout=True`` writes the GP-copula archive layout the registered datasets use
    (``metadata/metadata.json`` with ``time_granularity``, ``train/train.json``, ``test/test.json``, no
    prediction_length); ``False`` the processed GluonTS layout (``metadata.json`` with freq and
    prediction_length, ``train/data.json``, ``test/data.json``). The test split holds ``num_windows`` rolling
    dates, each listing every series, ending ``prediction_length`` steps after the previous one.
    """
    total = train_length + num_windows * prediction_length
    values = periodic_values(total, dim, freq, start, seed, noise=noise, integer=integer)
    if with_nan:
        values[5, 0] = np.nan

    def line(series: np.ndarray) -> str:
        return json.dumps({"start": start, "target": ["NaN" if np.isnan(v) else float(v) for v in series]})

    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    train = [line(values[:train_length, j]) for j in range(dim)]
    test = [line(values[:train_length + (w + 1) * prediction_length, j]) for w in range(num_windows)
            for j in range(dim)]
    if raw_layout:
        (root / "metadata").mkdir()
        (root / "metadata" / "metadata.json").write_text(json.dumps({"time_granularity": freq,
                                                                     "target": {"name": "target"}}))
        (root / "train" / "train.json").write_text("\n".join(train) + "\n")
        (root / "test" / "test.json").write_text("\n".join(test) + "\n")
    else:
        (root / "metadata.json").write_text(json.dumps({"freq": freq, "prediction_length": prediction_length,
                                                        "feat_static_cat": [{"name": "feat_static_cat_0",
                                                                             "cardinality": str(dim)}]}))
        (root / "train" / "data.json").write_text("\n".join(train) + "\n")
        (root / "test" / "data.json").write_text("\n".join(test) + "\n")
    return root


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    """Seed torch and use one intra-op thread (tiny ops on a busy 2-core box)."""
    torch.manual_seed(1234)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def gluonts_writer():
    """The ``write_gluonts(root, *, freq, prediction_length, train_length, num_windows, dim, ...)`` helper."""
    return write_gluonts


@pytest.fixture
def tiny_daily(tmp_path: Path) -> Path:
    """A processed-layout daily dataset: 3 series with a weekly cycle, prediction length 7, 2 test dates."""
    return write_gluonts(tmp_path / "tiny_daily", freq="D", prediction_length=7, train_length=120, num_windows=2,
                         dim=3, raw_layout=False)
