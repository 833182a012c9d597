"""Context scaling (``scaling="context"``) and the volatility-scaled random walk (``naive_vol``)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from dforce_datasets.timeseries import Normalizer, load_dataset, to_multivariate
from dforce_forecast.baselines import SeasonalRandomWalk
from dforce_forecast.config import ForecastConfig
from dforce_forecast.data import TargetTransform, context_scale, prepare
from dforce_forecast.forecaster import Forecaster
from dforce_forecast.training import training_batch

TINY = dict(z_dim=16, network_size=4, num_gru_layers=2, sampling_steps=4, num_samples=6, val_num_samples=4,
            batch_size=8, batches_per_epoch=3, max_epochs=2, warmup_steps=0)


def _delta(root):
    return prepare(to_multivariate(load_dataset(str(root))), target="delta", name="tiny")


def test_context_scale_is_the_rms_with_a_floor():
    ctx = np.array([[[3.0, 0.01], [-4.0, 0.0]]])  # (1, C=2, D=2)
    s = context_scale(ctx, floor=0.1)
    assert s.shape == (1, 1, 2) and s.dtype == np.float32
    np.testing.assert_allclose(s[0, 0], [np.sqrt((9 + 16) / 2), 0.1], rtol=1e-6)  # 3.5355..., floored


def test_config_refuses_context_scaling_on_levels():
    with pytest.raises(ValueError, match="needs target='delta'"):
        ForecastConfig(scaling="context")
    with pytest.raises(ValueError, match="scaling must be one of"):
        ForecastConfig(target="delta", scaling="mean")
    with pytest.raises(ValueError, match="scale_floor"):
        ForecastConfig(target="delta", scaling="context", scale_floor=0.0)


def test_training_batch_divides_each_window_by_its_context_rms(tiny_daily):
    data = _delta(tiny_daily)
    starts = np.array([2, 30])
    plain = training_batch(data, starts)
    scaled = training_batch(data, starts, scaling="context", scale_floor=1e-6)
    c, d = data.spec.context_length, data.target_dim
    rms = plain["x"][:, :c].double().pow(2).mean(dim=1, keepdim=True).sqrt()  # (N, 1, D) by hand
    torch.testing.assert_close(scaled["x"].double(), plain["x"].double() / rms, rtol=1e-5, atol=1e-6)
    n_lag = len(data.spec.lags) * d  # lag block first, then calendar features (unchanged)
    lag_rms = rms.repeat(1, 1, len(data.spec.lags))  # (N, 1, L*D): lag-major, series-minor
    torch.testing.assert_close(scaled["cond"][..., :n_lag].double(), plain["cond"][..., :n_lag].double() / lag_rms,
                               rtol=1e-5, atol=1e-6)
    assert torch.equal(scaled["cond"][..., n_lag:], plain["cond"][..., n_lag:])


def test_context_scaled_forecasts_scale_with_the_history(tiny_daily):
    """Multiplying a window's changes by k multiplies its sampled changes by k (same seed): the model only sees
    changes relative to the context's own scale."""
    data = _delta(tiny_daily)
    fc = Forecaster(ForecastConfig(target="delta", scaling="context", scale_floor=1e-6, **TINY), "df")
    fc._build(data, 0)
    fc.transform = TargetTransform("delta", Normalizer(np.zeros(data.target_dim), np.ones(data.target_dim)))
    w = data.test
    base = fc.sample_windows(w, num_samples=5, seed=3) - w.last_value[:, None, None]  # (N, S, P, D)
    k = 7.5
    big = dataclasses.replace(w, history=w.history * np.float32(k))
    scaled = fc.sample_windows(big, num_samples=5, seed=3) - w.last_value[:, None, None]
    np.testing.assert_allclose(scaled, k * base, rtol=1e-4, atol=1e-6)
    # without scaling the untrained network is not equivariant, so the property above is the scaling's doing
    fc.config = dataclasses.replace(fc.config, scaling="none")
    plain = fc.sample_windows(big, num_samples=5, seed=3) - w.last_value[:, None, None]
    assert not np.allclose(plain, k * (fc.sample_windows(w, num_samples=5, seed=3) - w.last_value[:, None, None]),
                           rtol=1e-2)


def test_volatility_scaled_random_walk(tiny_daily):
    data = _delta(tiny_daily)
    plain = SeasonalRandomWalk(season=1).fit(data)
    vol = SeasonalRandomWalk(season=1, scale_by_context=True).fit(data)
    assert (plain.method, vol.method) == ("naive", "naive_vol")
    hist = data.test.raw_history  # (N, R, D)
    ratio = vol.context_ratio(hist)
    by_hand = np.sqrt(np.mean(np.diff(hist, axis=1) ** 2, axis=1)) / np.sqrt(np.mean(plain.steps**2, axis=0))
    np.testing.assert_allclose(ratio, by_hand, rtol=1e-12)
    a = plain.sample_windows(data.test, num_samples=20, seed=5)
    b = vol.sample_windows(data.test, num_samples=20, seed=5)
    last = hist[:, -1][:, None, None]  # (N, 1, 1, D)
    np.testing.assert_allclose(b - last, (a - last) * ratio[:, None, None, :], rtol=1e-9, atol=1e-12)
    # a window whose history moves twice as much gets twice the spread
    calm = hist[:1]
    wild = calm[:, :1] + 2.0 * (calm - calm[:, :1])
    np.testing.assert_allclose(vol.context_ratio(wild), 2.0 * vol.context_ratio(calm), rtol=1e-12)
    # a series with no observed change falls back to the training volatility
    gaps = hist.copy()
    gaps[:, :, 0] = np.nan
    assert np.all(vol.context_ratio(gaps)[:, 0] == 1.0)


def test_cli_runs_naive_vol_and_refuses_scaling_on_levels(tiny_daily, tmp_path, capsys):
    from dforce_forecast.cli import main

    args = ["run", "--dataset", str(tiny_daily), "--out", str(tmp_path / "o"), "--no-plots", "--quiet"]
    assert main([*args, "--methods", "naive_vol"]) == 0
    out = capsys.readouterr().out
    assert "naive_vol" in out
    assert main([*args, "--methods", "df", "--scaling", "context"]) == 2  # level target: a clear error
    assert "needs target='delta'" in capsys.readouterr().err
    fast = ["--z-dim", "8", "--network-size", "4", "--num-gru-layers", "1", "--batch-size", "4",
            "--batches-per-epoch", "2", "--max-epochs", "1", "--sampling-steps", "2", "--num-samples", "4",
            "--val-num-samples", "3", "--warmup-steps", "0"]
    out = tmp_path / "scaled"
    argv = ["run", "--dataset", str(tiny_daily), "--out", str(out), "--no-plots", "--quiet", "--methods", "df",
            "--target", "delta", "--scaling", "context", "--val-windows", "3", *fast]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["val_windows"] == 3 and results["config"]["scaling"] == "context"
    assert np.isfinite(results["runs"][0]["crps_sum"])
