"""A tiny end-to-end run on a synthetic GluonTS-format dataset: Diffusion Forcing learns something measurable."""

from __future__ import annotations

import numpy as np

from dforce_datasets.timeseries import load_dataset, to_multivariate
from dforce_forecast.config import ForecastConfig
from dforce_forecast.data import prepare
from dforce_forecast.forecaster import Forecaster
from dforce_forecast.metrics import crps_sum


def test_df_training_beats_the_untrained_model(tmp_path, gluonts_writer):
    root = gluonts_writer(tmp_path / "weekly", freq="D", prediction_length=7, train_length=300, num_windows=3,
                         dim=2, raw_layout=False, seed=1, noise=0.03)
    data = prepare(to_multivariate(load_dataset(str(root))), name="weekly")
    cfg = ForecastConfig(z_dim=32, network_size=8, num_gru_layers=1, sampling_steps=5, num_samples=16,
                         val_num_samples=8, batch_size=32, batches_per_epoch=20, max_epochs=2, warmup_steps=10,
                         lr=3e-3, patience=3, ema_decay=None)
    untrained = Forecaster(cfg, "df")
    untrained._build(data, seed=0)
    before = crps_sum(untrained.sample_windows(data.test, seed=5), data.test.truth)
    trained = Forecaster(cfg, "df")
    report = trained.fit(data, seed=0, progress=False)
    after = crps_sum(trained.sample_windows(data.test, seed=5), data.test.truth)
    assert report.steps == 40 and report.best_val_crps_sum == min(report.val_history)
    assert np.isfinite(after) and after < 0.5 * before, (before, after)
    assert after < 0.25, after  # a forecast of the weekly cycle, not the untrained network's noise
