"""The forecaster's configuration: network, diffusion, sampling and training settings in one dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from dforce_forecast.data import EVALUATIONS, SCALINGS, TARGETS

BACKBONES = ("gru", "transformer")
#: learned methods and the training noise-level mode of each (the naive baseline is not a network)
NOISE_MODES = {"df": "diffusion_forcing", "tf": "teacher_forcing"}
METHODS = ("df", "tf", "naive", "naive_vol")


@dataclass
class ForecastConfig:
    """Everything that defines one learned forecaster (paper setup: reference.md section 5.3).

    Defaults follow the paper except for the network size (GRU z 128 with 2 GRUs, sized for a CPU; the paper
    has ``z_dim=1024, network_size=64, num_gru_layers=4``). The setting measured on the 2-core CPU box (README,
    Results) adds ``target="delta", ema_decay=0.995``.

    ``scaling="context"`` (with ``target="delta"``) divides every window, in training and sampling, by the
    per-series RMS of its context rows (at least ``scale_floor``) and multiplies the samples back: the model
    sees changes relative to the recent volatility, the instance scaling GluonTS models apply to levels.

    Network: ``backbone="gru"`` is the paper's MLP + GRU latent model (``RecurrentDenoiser``),
    ``"transformer"`` the causal transformer. Conditioning per token: lags of the model-space target, Fourier calendar features
    and a learned per-series embedding. Diffusion: cosine schedule, v-prediction, constant loss weight 2.5
    (paper: neither SNR flag set). Sampling: DDIM ``sampling_steps`` (50) with ``eta`` 1.0, chunk 1; the
    context is absorbed clean and each generated token is fed back at level ``stabilization_level - 1``
    (DF; paper: 19 for S=50). Teacher forcing always feeds the past at level 0, as it was trained.
    Training: AdamW, linear warmup, grad clip, ``batches_per_epoch`` batches per epoch, early stopping on
    validation CRPS-sum with ``patience`` epochs.

    ``evaluation`` is how validation windows are scored for early stopping: ``"rollout"`` (a real forecast) or
    ``"one_step"`` (the authors' code: the horizon's lag covariates come from the truth; ``data`` module).
    """

    # network
    backbone: str = "gru"
    z_dim: int = 128
    network_size: int = 32
    num_mlp_layers: int = 1
    num_gru_layers: int = 2
    hidden_mult: int = 32
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    series_embedding: bool = True
    # data
    target: str = "level"
    context_length: int | None = None  # None = prediction length (paper)
    scaling: str = "none"  # "context": divide each window by its context's RMS (model space), delta target only
    scale_floor: float = 0.1
    # diffusion
    num_diffusion_steps: int = 1000
    loss_weight: float = 2.5
    clip_noise: float = 20.0
    # sampling
    sampling_steps: int = 50
    eta: float = 1.0
    stabilization_level: int = 20
    num_samples: int = 100
    val_num_samples: int = 100
    evaluation: str = "rollout"  # validation scoring: rollout (real forecast) | one_step (the authors' code)
    # training
    lr: float = 3e-4
    weight_decay: float = 1e-3
    warmup_steps: int = 200
    grad_clip: float = 10.0
    batch_size: int = 32
    batches_per_epoch: int = 100
    max_epochs: int = 200
    patience: int = 6
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {self.evaluation!r}")
        if self.scaling not in SCALINGS:
            raise ValueError(f"scaling must be one of {SCALINGS}, got {self.scaling!r}")
        if self.scaling == "context" and self.target != "delta":
            raise ValueError("scaling='context' divides each window by the RMS of its context's normalised changes; "
                             "it needs target='delta' (a level's RMS is its distance from the training mean)")
        if not self.scale_floor > 0:
            raise ValueError(f"scale_floor must be > 0, got {self.scale_floor!r}")
        positive = ("z_dim", "network_size", "num_mlp_layers", "hidden_mult", "d_model", "n_layers", "n_heads",
                    "num_diffusion_steps", "sampling_steps", "stabilization_level", "num_samples",
                    "val_num_samples", "batch_size", "batches_per_epoch", "max_epochs", "patience")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if self.num_gru_layers < 0 or (self.num_gru_layers and self.z_dim % self.num_gru_layers):
            raise ValueError(f"num_gru_layers must be >= 0 and divide z_dim={self.z_dim}, got {self.num_gru_layers}")
        if self.context_length is not None and self.context_length < 1:
            raise ValueError(f"context_length must be >= 1 or None (= prediction length), got {self.context_length}")
        if self.sampling_steps > self.num_diffusion_steps:
            raise ValueError(f"sampling_steps={self.sampling_steps} exceeds num_diffusion_steps="
                             f"{self.num_diffusion_steps}")
        if self.stabilization_level > self.num_diffusion_steps:
            raise ValueError(f"stabilization_level must be <= {self.num_diffusion_steps}")
        for name in ("lr", "loss_weight", "clip_noise", "grad_clip"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.weight_decay < 0 or self.warmup_steps < 0 or self.eta < 0:
            raise ValueError("weight_decay, warmup_steps and eta must be >= 0")
        if self.ema_decay is not None and not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1) or None, got {self.ema_decay!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ForecastConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ForecastConfig fields {unknown}")
        return cls(**data)
