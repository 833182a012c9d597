"""The forecaster's pieces: transforms, conditioning causality, the sampler loop, determinism, save/load."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dforce_datasets.timeseries import load_dataset, to_multivariate
from dforce_forecast.baselines import SeasonalRandomWalk, season_length
from dforce_forecast.config import ForecastConfig
from dforce_forecast.data import TargetTransform, prepare
from dforce_forecast.forecaster import Forecaster
from dforce_forecast.model import build_model, lag_covariates
from dforce_forecast.sampling import sample_paths
from dforce_forecast.training import training_batch

TINY = dict(z_dim=16, network_size=4, num_gru_layers=2, sampling_steps=4, num_samples=6, val_num_samples=4,
            batch_size=8, batches_per_epoch=3, max_epochs=2, warmup_steps=0)


def _data(root, target="level"):
    md = to_multivariate(load_dataset(str(root)))
    return prepare(md, target=target, name="tiny")


@pytest.mark.parametrize("kind", ["level", "delta"])
def test_target_transform_round_trip(kind):
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((50, 3)), axis=0) + 10
    tr = TargetTransform.fit(kind, x[:40])
    z = tr.forward(x[30:])  # rows 30.. (delta: differences from row 31 on)
    back = tr.inverse(z[None, -5:], x[None, 44])[0] if kind == "delta" else tr.inverse(z[-5:], None)
    np.testing.assert_allclose(back, x[45:], rtol=0, atol=1e-4)
    assert z.dtype == np.float32 and z.shape == (20 - tr.extra_rows, 3)


def test_training_conditioning_is_causal(tiny_daily):
    """Token t's covariates use only target values before t: changing x[t] changes only later tokens' cond."""
    data = _data(tiny_daily)
    starts = np.array([3, 40])
    base = training_batch(data, starts)
    spec = data.spec
    t = 5  # token index inside the window
    row = starts[0] + spec.max_lag + t
    changed = dataclasses.replace(data, train_z=data.train_z.copy())
    changed.train_z[row] += 10.0
    new = training_batch(changed, starts)
    assert torch.equal(new["x"][0, t], base["x"][0, t] + 10.0)
    assert torch.equal(new["cond"][0, : t + 1], base["cond"][0, : t + 1])  # tokens <= t: unchanged
    for lag in spec.lags:  # token t + lag sees it through that lag
        if t + lag < spec.num_tokens:
            assert not torch.equal(new["cond"][0, t + lag], base["cond"][0, t + lag])
    assert torch.equal(new["cond"][1], base["cond"][1])


def test_lag_covariates_refuse_rows_before_the_buffer():
    buf = torch.arange(12.0).reshape(1, 6, 2)
    assert lag_covariates(buf, [3], [1, 2]).tolist() == [[[4.0, 5.0, 2.0, 3.0]]]
    with pytest.raises(ValueError, match="reach before"):
        lag_covariates(buf, [1], [1, 2])


@pytest.mark.parametrize("backbone", ["gru", "transformer"])
def test_network_output_is_causal(tiny_daily, backbone):
    data = _data(tiny_daily)
    cfg = ForecastConfig(backbone=backbone, d_model=16, n_layers=2, n_heads=2, **TINY)
    torch.manual_seed(0)
    model = build_model(cfg, data.target_dim, len(data.spec.lags), data.num_time_features, data.spec.num_tokens)
    with torch.no_grad():
        for p in model.parameters():  # the transformer starts at exactly zero output (adaLN-Zero)
            p.add_(0.05 * torch.randn_like(p))
    batch = training_batch(data, np.array([0, 10]))
    levels = torch.randint(0, 1000, batch["x"].shape[:2])
    out = model(batch["x"], levels, batch["cond"])
    x2, c2 = batch["x"].clone(), batch["cond"].clone()
    x2[:, 6:] += 3.0
    c2[:, 6:] -= 3.0
    out2 = model(x2, levels, c2)
    assert out.shape == batch["x"].shape
    torch.testing.assert_close(out[:, :6], out2[:, :6], rtol=0, atol=1e-6)
    assert not torch.allclose(out[:, 6:], out2[:, 6:])


def _untrained(data, backbone="gru", seed=0, **kw):
    cfg = ForecastConfig(backbone=backbone, d_model=16, n_layers=2, n_heads=2, **{**TINY, **kw})
    fc = Forecaster(cfg, "df")
    fc._build(data, seed)
    return fc


@pytest.mark.parametrize("backbone", ["gru", "transformer"])
def test_sampler_keeps_the_context_and_shapes(tiny_daily, backbone):
    data = _data(tiny_daily)
    fc = _untrained(data, backbone)
    hist = torch.from_numpy(data.test.history)
    full = sample_paths(fc.model, fc.sampler, hist, torch.from_numpy(data.test.time_features), lags=data.spec.lags,
                        prediction_length=7, num_samples=5, generator=torch.Generator().manual_seed(0),
                        return_full=True)
    n, r, d = hist.shape
    assert full.shape == (n, 5, r + 7, d)
    assert torch.equal(full[:, :, :r], hist[:, None].expand(-1, 5, -1, -1))  # context rows bit-for-bit
    assert torch.isfinite(full).all()
    fut = full[:, :, r:]
    assert fut.std(dim=1).min() > 0  # sample paths differ from each other


def test_sampling_is_deterministic_under_a_seed(tiny_daily):
    data = _data(tiny_daily)
    fc = _untrained(data)
    a = fc.sample_windows(data.test, num_samples=5, seed=3)
    b = fc.sample_windows(data.test, num_samples=5, seed=3)
    c = fc.sample_windows(data.test, num_samples=5, seed=4)
    assert a.shape == (data.test.num_windows, 5, 7, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_is_deterministic_and_save_load_round_trips(tiny_daily, tmp_path):
    data = _data(tiny_daily)
    runs = []
    for _ in range(2):
        fc = Forecaster(ForecastConfig(**TINY), "df")
        report = fc.fit(data, seed=7, progress=False)
        runs.append((fc, report))
    (a, ra), (b, rb) = runs
    assert ra.steps == 6 and ra.epochs == 2 and len(ra.val_history) == 2
    assert ra.val_history == rb.val_history
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    other = Forecaster(ForecastConfig(**TINY), "df")
    other.fit(data, seed=8, progress=False)
    assert not torch.equal(other.model.backbone.x_from_z.weight, a.model.backbone.x_from_z.weight)
    a.save(tmp_path / "fc")
    loaded = Forecaster.load(tmp_path / "fc")
    np.testing.assert_array_equal(loaded.sample_windows(data.test, seed=1), a.sample_windows(data.test, seed=1))


def test_public_sample_on_raw_histories(tiny_daily):
    ds = load_dataset(str(tiny_daily))
    md = to_multivariate(ds)
    data = prepare(md, target="delta", name="tiny")
    fc = Forecaster(ForecastConfig(target="delta", **TINY), "tf")
    fc._build(data, 0)
    window = md.test[0]
    past = window.values[:-7]
    times = window.times()
    s_start = fc.sample(past, start=times[0], num_samples=4, seed=2)
    assert s_start.shape == (4, 7, 3)
    tf = fc.time_features(times[0], past.shape[0] + 7)
    s_tf = fc.sample(past[None], tf[None], num_samples=4, seed=2)
    np.testing.assert_array_equal(s_tf[0], s_start)
    # both test windows through `sample` (one start per window) = the prepared test windows
    need = fc.history_length
    hists = np.stack([w.values[-7 - need:-7] for w in md.test])
    starts = np.array([w.times()[w.length - 7 - need] for w in md.test])
    np.testing.assert_allclose(fc.sample(hists, start=starts, num_samples=4, seed=2),
                               fc.sample_windows(data.test, num_samples=4, seed=2), rtol=1e-6)
    with pytest.raises(ValueError, match="time_features"):
        fc.sample(past)
    with pytest.raises(ValueError, match="history must be"):
        fc.sample(past[:3], start=times[0])
    with pytest.raises(RuntimeError, match="not trained"):
        Forecaster().sample(past, start=times[0])


def test_seasonal_random_walk(tiny_daily):
    data = _data(tiny_daily)
    assert season_length("D") == 7 and season_length("B") == 1 and season_length("30min") == 48
    assert season_length("H") == 24
    nv = SeasonalRandomWalk().fit(data)
    s = nv.sample_windows(data.test, num_samples=50, seed=0)
    assert s.shape == (2, 50, 7, 3)
    # each first-season step is the value one season earlier plus a whole training step vector
    steps = s[:, :, 0] - data.test.raw_history[:, None, -7]  # (W, S, D)
    diffs = np.abs(steps[..., None, :] - nv.steps[None, None]).max(-1).min(-1)
    assert diffs.max() < 1e-9
    np.testing.assert_array_equal(s, nv.sample_windows(data.test, num_samples=50, seed=0))


def test_diverged_validation_samples_are_a_bad_epoch_not_a_crash(tiny_daily, monkeypatch):
    data = _data(tiny_daily, target="delta")
    fc = Forecaster(ForecastConfig(**TINY), "df")
    real = Forecaster.sample_windows

    def diverged(self, windows, **kw):
        out = real(self, windows, **kw)
        out[0, 0, 0, 0] = np.nan  # one blown-up validation path
        return out

    monkeypatch.setattr(Forecaster, "sample_windows", diverged)
    with pytest.warns(RuntimeWarning, match="no epoch gave a finite validation CRPS-sum"):
        report = fc.fit(data, seed=0, progress=False)
    assert report.epochs == TINY["max_epochs"] and all(np.isnan(v) for v in report.val_history)


def test_prepare_warns_on_a_test_horizon_inside_training_and_on_missing_values(tiny_daily):
    md = to_multivariate(load_dataset(str(tiny_daily)))
    prepare(md, target="delta", name="tiny")  # the real layout: no warning (warnings are errors in the suite)
    first = md.test[0]
    inside = dataclasses.replace(first, values=first.values[:-10])  # its horizon now ends 10 rows earlier
    with pytest.warns(UserWarning, match=r"test window\(s\) \[0\] starts inside the training split"):
        prepare(dataclasses.replace(md, test=[inside, *md.test[1:]]), target="delta", name="tiny")
    values = md.train.values.copy()
    values[5, 1] = values[9, 2] = np.nan
    with pytest.warns(UserWarning, match="2 missing training values are filled"):
        prepare(dataclasses.replace(md, train=dataclasses.replace(md.train, values=values)), target="delta",
                name="tiny")
