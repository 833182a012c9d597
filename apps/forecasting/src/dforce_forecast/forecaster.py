"""``Forecaster``: the Python API around one learned model (Diffusion Forcing or teacher forcing).

```python
fc = Forecaster(ForecastConfig(), method="df")
fc.fit(data, seed=0, max_minutes=20)              # data: MultivariateData (or a PreparedData)
samples = fc.sample(history, start=first_time)    # history (N, T, D) raw values -> (N, 100, P, D) raw samples
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dforce_core import NoiseSchedule
from dforce_datasets.timeseries import MultivariateData, WindowSpec, fourier_time_features, parse_freq, period_times
from dforce_datasets.timeseries.calendar import to_ordinal
from dforce_forecast.config import NOISE_MODES, ForecastConfig
from dforce_forecast.data import (
    EVALUATIONS,
    ForecastWindows,
    PreparedData,
    TargetTransform,
    context_scale,
    last_observed,
    one_step_anchors,
    prepare,
)
from dforce_forecast.metrics import crps_sum
from dforce_forecast.model import ForecastDenoiser, build_model
from dforce_forecast.sampling import sample_paths
from dforce_forecast.training import TrainReport, train
from dforce_sampling import DiffusionForcingSampler, SamplerConfig


def set_seed(seed: int) -> None:
    """Seed Python-free global RNGs used by model construction (torch and numpy)."""
    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % 2**32)


class Forecaster:
    """A multivariate probabilistic forecaster trained with Diffusion Forcing (``method="df"``) or teacher
    forcing (``method="tf"``, next-token diffusion as in TimeGrad) on the same network.

    After ``fit`` (or ``load``) it knows the frequency, prediction length, lags, and the training
    normalisation; ``sample`` turns raw histories into raw sample paths.
    """

    def __init__(self, config: ForecastConfig | None = None, method: str = "df") -> None:
        if method not in NOISE_MODES:
            raise ValueError(f"method must be one of {tuple(NOISE_MODES)} for a learned forecaster, got {method!r}")
        self.config = config if config is not None else ForecastConfig()
        self.method = method
        self.model: ForecastDenoiser | None = None
        self.freq: str | None = None
        self.spec: WindowSpec | None = None
        self.transform: TargetTransform | None = None
        self.report: TrainReport | None = None

    # ---------------------------------------------------------------------------------------------- setup
    @property
    def stabilization_level(self) -> int:
        """Level + 1 at which finished tokens are fed back: the config's for DF, 1 (clean, level 0) for TF."""
        return self.config.stabilization_level if self.method == "df" else 1

    @property
    def sampler(self) -> DiffusionForcingSampler:
        """DDIM sampler (S steps, eta, stabilization) over the training schedule."""
        c = self.config
        schedule = NoiseSchedule.from_name("cosine", c.num_diffusion_steps)
        return DiffusionForcingSampler(schedule, SamplerConfig(
            num_sampling_steps=c.sampling_steps, eta=c.eta, stabilization_level=self.stabilization_level,
            clip_noise=c.clip_noise, objective="pred_v", ddpm=False))

    def _build(self, data: PreparedData, seed: int) -> None:
        set_seed(seed)
        self.freq, self.spec, self.transform = data.freq, data.spec, data.transform
        self.model = build_model(self.config, data.target_dim, len(data.spec.lags), data.num_time_features,
                                 data.spec.num_tokens)

    def prepare(self, data: MultivariateData | PreparedData, name: str = "dataset") -> PreparedData:
        """The forecasting view of a dataset under this forecaster's target / context settings."""
        if isinstance(data, PreparedData):
            return data
        return prepare(data, target=self.config.target, context_length=self.config.context_length, name=name)

    def _require_model(self) -> ForecastDenoiser:
        if self.model is None:
            raise RuntimeError("the forecaster is not trained: call fit(...) or Forecaster.load(path) first")
        return self.model

    # ---------------------------------------------------------------------------------------------- training
    def fit(self, data: MultivariateData | PreparedData, *, seed: int = 0, max_minutes: float | None = None,
            out_dir: str | Path | None = None, progress: bool = True, val_windows: int | None = None,
            val_seed: int | None = None) -> TrainReport:
        """Train on the training split with early stopping on validation CRPS-sum; returns the report.

        Validation = ``val_windows`` (default: as many as the test windows) seeded random training windows.
        """
        prepared = self.prepare(data)
        self._build(prepared, seed)
        n_val = val_windows if val_windows is not None else max(1, prepared.test.num_windows)
        val = prepared.validation(n_val, seed if val_seed is None else val_seed)

        def validate() -> float:
            samples = self.sample_windows(val, num_samples=self.config.val_num_samples, seed=seed + 1,
                                          evaluation=self.config.evaluation)
            if not np.isfinite(samples).all():  # a diverged sample path: a bad epoch, not a crashed run
                return float("nan")
            return crps_sum(samples, val.truth)

        self.report = train(self.model, prepared, self.config, noise_level_mode=NOISE_MODES[self.method], seed=seed,
                            validate=validate, max_minutes=max_minutes, out_dir=out_dir, progress=progress,
                            label=f"{self.method} seed {seed}")
        return self.report

    # ---------------------------------------------------------------------------------------------- sampling
    def sample_windows(self, windows: ForecastWindows, *, num_samples: int | None = None, seed: int = 0,
                       max_batch: int = 4096, evaluation: str = "rollout") -> np.ndarray:
        """Raw sample paths (N, S, P, D) for prepared windows (model-space history + features).

        ``evaluation="one_step"`` is the authors' evaluation (``dforce_forecast.data``): it reads the windows'
        truth for the horizon's lag covariates and anchors, so it scores one-step-ahead forecasts, not a forecast.
        """
        model = self._require_model()
        assert self.spec is not None and self.transform is not None
        if evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {evaluation!r}")
        one_step = evaluation == "one_step"
        if one_step and windows.truth is None:
            raise ValueError("evaluation='one_step' needs windows with their truth (it conditions on it)")
        truth_z = self.transform.truth_rows(windows.raw_history, windows.truth) if one_step else None  # (N, P, D)
        anchors = one_step_anchors(windows.last_value, windows.truth) if one_step else None  # (N, P, D) raw
        s = num_samples if num_samples is not None else self.config.num_samples
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(int(seed))
        per = max(1, max_batch // s)  # windows per call, so that N*S stays bounded
        parts = []
        model.eval()
        c = self.config
        for i in range(0, windows.num_windows, per):
            hist = windows.history[i:i + per]  # (n, max_lag + C, D) model space
            scale = np.ones((hist.shape[0], 1, hist.shape[2]), dtype=np.float32)  # (n, 1, D)
            if c.scaling == "context":
                scale = context_scale(hist[:, hist.shape[1] - self.spec.context_length:], c.scale_floor)
            lag_truth = None if truth_z is None else torch.from_numpy(np.ascontiguousarray(truth_z[i:i + per] / scale))
            z = sample_paths(model, self.sampler, torch.from_numpy(np.ascontiguousarray(hist / scale)),
                             torch.from_numpy(windows.time_features[i:i + per]), lags=self.spec.lags,
                             prediction_length=self.spec.prediction_length, num_samples=s, generator=gen,
                             lag_truth=lag_truth)
            z = z.cpu().numpy() * scale[:, None]  # (n, S, P, D) back to model space
            anchor = None if anchors is None else anchors[i:i + per, None]  # (n, 1, P, D)
            parts.append(self.transform.inverse(z, windows.last_value[i:i + per, None, :], anchor))
        return np.concatenate(parts, axis=0)

    def time_features(self, start: Any, length: int) -> np.ndarray:
        """(length, 2F) calendar features of ``length`` steps from ``start`` (a datetime64 / ISO string)."""
        if self.freq is None:
            raise RuntimeError("the forecaster has no frequency yet: fit or load it first")
        ordinal = int(to_ordinal(np.datetime64(start, "m"), parse_freq(self.freq)))
        return fourier_time_features(period_times(ordinal, length, self.freq), self.freq)

    @property
    def history_length(self) -> int:
        """Raw rows ``sample`` needs per window: max lag + context (+1 for the delta target)."""
        assert self.spec is not None and self.transform is not None
        return self.spec.max_lag + self.spec.context_length + self.transform.extra_rows

    def sample(self, history: np.ndarray, time_features: np.ndarray | None = None, *, start: Any = None,
               num_samples: int | None = None, seed: int = 0) -> np.ndarray:
        """Sample raw future paths from raw histories.

        ``history``: (N, T, D) or (T, D) raw values, T >= ``history_length``; only the last
        ``history_length`` rows are used. Give the calendar either as ``time_features`` (N, T + P, 2F) or (T + P,
        2F), rows aligned with ``history`` and continuing P steps past its end, or as ``start``: the time of
        history row 0 (one value, or one per window). Returns (N, S, P, D) (or (S, P, D) for a 2-D history).
        """
        self._require_model()
        assert self.spec is not None and self.transform is not None
        hist = np.asarray(history, dtype=np.float64)
        single = hist.ndim == 2
        hist = hist[None] if single else hist
        p = self.spec.prediction_length
        need = self.history_length
        if hist.ndim != 3 or hist.shape[2] != self.model.target_dim or hist.shape[1] < need:
            raise ValueError(f"history must be (N, T, D) with D={self.model.target_dim} and T >= {need}, got "
                             f"{np.shape(history)}")
        n, t, _ = hist.shape
        if time_features is None:
            if start is None:
                raise ValueError("give time_features (N, T + P, 2F) or start (time of history row 0)")
            starts = np.broadcast_to(np.asarray(start, dtype="datetime64[m]"), (n,))
            tf = np.stack([self.time_features(s, t + p) for s in starts])
        else:
            tf = np.asarray(time_features, dtype=np.float32)
            tf = np.broadcast_to(tf, (n, *tf.shape)) if tf.ndim == 2 else tf  # one calendar for every window
            if tf.shape[:2] != (n, t + p):
                raise ValueError(f"time_features must be (N, T + P, 2F) = ({n}, {t + p}, 2F), got {tf.shape}")
        raw = hist[:, t - need:]
        model_hist = self.transform.forward(raw)
        windows = ForecastWindows(model_hist, np.ascontiguousarray(tf[:, t - need + self.transform.extra_rows:]),
                                  None, last_observed(raw, self.transform), raw)
        out = self.sample_windows(windows, num_samples=num_samples, seed=seed)
        return out[0] if single else out

    # ---------------------------------------------------------------------------------------------- files
    def save(self, path: str | Path) -> Path:
        """Write ``forecaster.json`` (config, method, freq, spec, normaliser) and ``model.safetensors``."""
        from safetensors.torch import save_file

        model = self._require_model()
        assert self.spec is not None and self.transform is not None
        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        meta = {
            "config": self.config.to_dict(), "method": self.method, "freq": self.freq,
            "target_dim": model.target_dim, "num_time_features": int(model.covariate_dim
                                                                      - len(self.spec.lags) * model.target_dim),
            "spec": {"context_length": self.spec.context_length, "prediction_length": self.spec.prediction_length,
                     "lags": list(self.spec.lags)},
            "transform": {"kind": self.transform.kind, "mean": self.transform.normalizer.mean.tolist(),
                          "std": self.transform.normalizer.std.tolist()},
        }
        (root / "forecaster.json").write_text(json.dumps(meta, indent=2))
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(root / "model.safetensors"))
        return root

    @classmethod
    def load(cls, path: str | Path) -> Forecaster:
        """Inverse of ``save`` (safetensors weights, JSON metadata; nothing is unpickled)."""
        from safetensors.torch import load_file

        from dforce_datasets.timeseries import Normalizer

        root = Path(path)
        meta = json.loads((root / "forecaster.json").read_text())
        fc = cls(ForecastConfig.from_dict(meta["config"]), meta["method"])
        fc.freq = meta["freq"]
        s = meta["spec"]
        fc.spec = WindowSpec(s["context_length"], s["prediction_length"], tuple(s["lags"]))
        t = meta["transform"]
        fc.transform = TargetTransform(t["kind"], Normalizer(np.asarray(t["mean"]), np.asarray(t["std"])))
        fc.model = build_model(fc.config, meta["target_dim"], len(fc.spec.lags), meta["num_time_features"],
                               fc.spec.num_tokens)
        fc.model.load_state_dict(load_file(str(root / "model.safetensors")))
        fc.model.eval()
        return fc
