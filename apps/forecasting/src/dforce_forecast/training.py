"""Training through ``dforce_train.Trainer``: random training windows, epochs of N batches, early stopping.

Each epoch is one ``Trainer.fit`` call extended by ``batches_per_epoch`` steps; after it the model samples the
validation windows and is scored by CRPS-sum on the raw scale. The best epoch's weights are kept (in memory,
and as a checkpoint under ``out_dir/best`` when an out_dir is given); training stops after ``patience`` epochs
without improvement, at ``max_epochs``, or when the next epoch would overrun the wall-clock budget.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dforce_core import DiffusionConfig, DiffusionLoss
from dforce_datasets.timeseries import make_windows, sample_starts
from dforce_forecast.config import ForecastConfig
from dforce_forecast.data import PreparedData, context_scale
from dforce_train import JSONLLogger, StepContext, TrainConfig, Trainer


def diffusion_config(config: ForecastConfig, noise_level_mode: str) -> DiffusionConfig:
    """Cosine schedule, v-prediction, constant weight (paper time-series setup) in the given noise-level mode."""
    return DiffusionConfig(num_steps=config.num_diffusion_steps, beta_schedule="cosine", objective="pred_v",
                           clip_noise=config.clip_noise, loss_weighting="constant",
                           constant_weight=config.loss_weight, noise_level_mode=noise_level_mode)


# A training batch is a few dozen windows: numpy fancy indexing cuts them in microseconds, while the numba
# kernels (identical results, see dforce_datasets' tests) are compiled on first use in every process, which
# takes tens of seconds on the 2-core CPU box. Use "auto" to get numba for very large batches.
WINDOW_BACKEND = "numpy"


def training_batch(data: PreparedData, starts: np.ndarray, *, scaling: str = "none",
                   scale_floor: float = 0.1) -> dict[str, torch.Tensor]:
    """Windows at ``starts`` of the model-space training series: x (N, C+P, D), cond (N, C+P, L*D + 2F).

    ``scaling="context"`` divides each window's target and lags by its context scale (``context_scale``).
    """
    wb = make_windows(data.train_z, data.train_features, starts, data.spec, backend=WINDOW_BACKEND)
    target, lags = wb.target, wb.lags  # (N, C+P, D), (N, C+P, L, D)
    n, t, n_lags, d = lags.shape
    if scaling == "context":
        scale = context_scale(target[:, : data.spec.context_length], scale_floor)  # (N, 1, D)
        target, lags = target / scale, lags / scale[:, :, None, :]
    cond = np.concatenate([lags.reshape(n, t, n_lags * d), wb.time_features], axis=-1).astype(np.float32)
    return {"x": torch.from_numpy(np.ascontiguousarray(target, dtype=np.float32)), "cond": torch.from_numpy(cond)}


def batch_stream(data: PreparedData, batch_size: int, seed: int, *, scaling: str = "none",
                 scale_floor: float = 0.1) -> Callable[[int], Iterator[dict]]:
    """``make_batches(start_step)`` for the Trainer: batch of step s drawn from an RNG seeded by (seed, s)."""
    n_time = data.train_z.shape[0]

    def make(start: int) -> Iterator[dict]:
        step = start
        while True:
            rng = np.random.default_rng([int(seed), 104729, step])
            yield training_batch(data, sample_starts(n_time, data.spec, batch_size, rng), scaling=scaling,
                                 scale_floor=scale_floor)
            step += 1

    return make


@dataclass
class TrainReport:
    """What one training run did."""

    epochs: int
    steps: int
    best_epoch: int
    best_val_crps_sum: float
    val_history: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    stopped_by: str = "max_epochs"
    train_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)


def train(model: torch.nn.Module, data: PreparedData, config: ForecastConfig, *, noise_level_mode: str, seed: int,
          validate: Callable[[], float], max_minutes: float | None = None, out_dir: str | Path | None = None,
          progress: bool = True, label: str = "") -> TrainReport:
    """Train ``model`` in place and leave the best validation epoch's weights in it."""
    loss = DiffusionLoss(diffusion_config(config, noise_level_mode))

    def loss_fn(net, batch, ctx: StepContext):
        out = loss(net, batch["x"].to(ctx.device), batch["cond"].to(ctx.device), generator=ctx.generator)
        return out.loss, {}

    bpe = config.batches_per_epoch
    tcfg = TrainConfig(lr=config.lr, betas=(0.9, 0.999), weight_decay=config.weight_decay,
                       warmup_steps=config.warmup_steps, max_steps=bpe, grad_clip=config.grad_clip,
                       ema_decay=config.ema_decay, log_every=bpe, ckpt_every=None, keep_last=1, out_dir=None,
                       seed=seed, progress=False, device="cpu" if not torch.cuda.is_available() else "auto")
    out = Path(out_dir) if out_dir is not None else None
    logger = JSONLLogger(out / "metrics.jsonl") if out is not None else None
    trainer = Trainer(model, loss_fn, tcfg, logger=logger, model_config=config.to_dict())
    make_batches = batch_stream(data, config.batch_size, seed, scaling=config.scaling,
                                scale_floor=config.scale_floor)
    t0 = time.perf_counter()
    budget = None if max_minutes is None else 60.0 * max_minutes
    report = TrainReport(0, 0, 0, float("inf"))
    best_state: dict[str, torch.Tensor] | None = None
    bad = 0
    epoch_s = 0.0
    try:
        for epoch in range(1, config.max_epochs + 1):
            e0 = time.perf_counter()
            trainer.config = dataclasses.replace(tcfg, max_steps=epoch * bpe)
            summary = trainer.fit(make_batches)
            model.eval()
            if trainer.ema is not None:
                with trainer.ema.applied_to(model):
                    val = float(validate())
                    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                val = float(validate())
                state = None
            model.train()
            epoch_s = time.perf_counter() - e0
            report.epochs, report.steps = epoch, trainer.step
            report.val_history.append(val)
            report.train_loss.append(float(summary.metrics.get("loss", float("nan"))))
            improved = math.isfinite(val) and val < report.best_val_crps_sum  # NaN / inf: a bad epoch
            if improved:
                report.best_val_crps_sum, report.best_epoch, bad = val, epoch, 0
                best_state = state if state is not None else copy.deepcopy(model.state_dict())
                if out is not None:
                    trainer.save(out / "best")
            else:
                bad += 1
            elapsed = time.perf_counter() - t0
            if logger is not None:
                logger.log({"val_crps_sum": val, "epoch": epoch, "elapsed_s": elapsed}, trainer.step)
            if progress:
                print(f"[{label}] epoch {epoch:3d} step {trainer.step:6d} loss {report.train_loss[-1]:.4f} "
                      f"val_crps_sum {val:.5f} best {report.best_val_crps_sum:.5f}@{report.best_epoch} "
                      f"({epoch_s:.1f}s/epoch, {elapsed / 60:.1f} min)", file=sys.stderr, flush=True)
            if bad >= config.patience:
                report.stopped_by = "early_stopping"
                break
            if budget is not None and elapsed + epoch_s > budget:
                report.stopped_by = "time_budget"
                break
    finally:
        trainer.close()
    report.train_seconds = time.perf_counter() - t0
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        warnings.warn(f"[{label}] no epoch gave a finite validation CRPS-sum; the last weights are kept. Lower "
                      "the learning rate or check the data for NaNs", RuntimeWarning, stacklevel=2)
    model.eval()
    return report
