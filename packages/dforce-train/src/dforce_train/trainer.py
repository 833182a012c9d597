"""The training loop: DDP under torchrun, AdamW with linear warmup, AMP, EMA, checkpoints, logging."""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from tqdm.auto import tqdm

from dforce_train.checkpoint import (
    STATE_FILE,
    CheckpointInfo,
    CheckpointManager,
    capture_rng_state,
    checkpoint_name,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from dforce_train.config import TrainConfig
from dforce_train.context import StepContext, step_generator
from dforce_train.distributed import all_gather_objects, all_reduce_mean, barrier, init_distributed
from dforce_train.ema import EMA
from dforce_train.loggers import JSONLLogger, Logger, NullLogger

LossFn = Callable[[nn.Module, Any, StepContext], "tuple[Tensor, Mapping[str, float | Tensor]]"]
MakeBatches = Callable[[int], Iterable[Any]]

_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN/inf; no optimiser step was taken."""

    def __init__(self, step: int, metrics: Mapping[str, float], config: TrainConfig) -> None:
        self.step = step
        self.metrics = dict(metrics)
        values = ", ".join(f"{k}={v:.6g}" for k, v in self.metrics.items())
        clip = f"grad_clip={config.grad_clip}" if config.grad_clip is not None else "grad_clip=None, e.g. 1.0"
        fp32 = "" if config.precision == "fp32" else f", or train in fp32 (precision={config.precision!r} now)"
        super().__init__(
            f"non-finite loss or gradient at step {step}: {values}. No optimiser step was taken and no checkpoint "
            f"was written for it. Try: lower the learning rate (lr={config.lr:g}), enable/tighten gradient "
            f"clipping ({clip}), check the data for NaN/inf values{fp32}."
        )


def warmup_factor(step: int, warmup_steps: int) -> float:
    """LR multiplier of 0-based `step`: ramps linearly as (step+1)/warmup_steps, then stays at 1."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, (step + 1) / warmup_steps)


def lr_factor(step: int, warmup_steps: int, max_steps: int, decay: str = "constant", min_ratio: float = 0.0) -> float:
    """LR multiplier of 0-based `step`: linear warmup, then constant or a cosine from 1 to `min_ratio` at max_steps."""
    ramp = warmup_factor(step, warmup_steps)
    if decay == "constant" or step < warmup_steps:
        return ramp
    if decay != "cosine":
        raise ValueError(f"lr decay must be 'constant' or 'cosine', got {decay!r}")
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))  # 0 after warmup, 1 at the end
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass
class FitSummary:
    """What `Trainer.fit` reports when it returns."""

    step: int
    metrics: dict[str, float]
    checkpoint: Path | None
    elapsed_s: float
    stopped_early: bool = False
    out_of_time: bool = False  # stopped by `TrainConfig.max_seconds` before `max_steps`


class Trainer:
    """Runs `loss_fn(model, batch, ctx) -> (loss, metrics)` on every global batch until `config.max_steps`.

    Under torchrun every process builds the same Trainer; the model is wrapped in DDP and each rank computes
    the loss on its shard of the global batch (see `StepContext`). Only rank 0 logs and writes checkpoints.
    It seeds the global RNGs with `config.seed`, but only after the model's weights exist: seed (e.g.
    `torch.manual_seed(config.seed)`) before building the model for the initial weights to follow the seed.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        config: TrainConfig,
        logger: Logger | None = None,
        *,
        model_config: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = config
        self.loss_fn = loss_fn
        self.model_config = dict(model_config) if model_config is not None else None
        self.dist = init_distributed(config.device)
        self.device = self.dist.device
        if config.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision='fp16' needs a CUDA device (GradScaler); use precision='bf16' or 'fp32'")
        self._seed_global_rngs()

        self.model = model.to(self.device)
        if self.dist.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model: nn.Module = nn.parallel.DistributedDataParallel(
                self.model, device_ids=device_ids, find_unused_parameters=False
            )
        else:
            self.train_model = self.model
        if config.compile:  # the plain module keeps the weights: checkpoints and EMA read `self.model`
            self.train_model = torch.compile(self.train_model, backend=config.compile_backend)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters (requires_grad=True); nothing to train")
        self.optimizer = torch.optim.AdamW(
            self.params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        warmup, total, decay, floor = config.warmup_steps, config.max_steps, config.lr_decay, config.min_lr_ratio

        def lr_lambda(step: int) -> float:
            return lr_factor(step, warmup, total, decay, floor)

        self.scheduler = LambdaLR(self.optimizer, lr_lambda)
        self.scaler = torch.amp.GradScaler("cuda") if config.precision == "fp16" else None
        self.ema = EMA(self.model, config.ema_decay, config.ema_start) if config.ema_decay is not None else None

        self._own_logger = False
        if not self.dist.is_main:
            self.logger: Logger = NullLogger()
        elif logger is not None:
            self.logger = logger
        elif config.out_dir is not None:
            self.logger = JSONLLogger(Path(config.out_dir) / "metrics.jsonl")
            self._own_logger = True
        else:
            self.logger = NullLogger()
        self.checkpoints = (
            CheckpointManager(Path(config.out_dir) / "checkpoints", config.keep_last)
            if config.out_dir is not None
            else None
        )
        self.step = 0
        self.last_metrics: dict[str, float] = {}
        self._last_saved_step: int | None = None

    # ------------------------------------------------------------------------------------------- properties

    @property
    def rank(self) -> int:
        """This process's rank."""
        return self.dist.rank

    @property
    def world_size(self) -> int:
        """Number of processes."""
        return self.dist.world_size

    @property
    def lr(self) -> float:
        """Learning rate the next step will use."""
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------------------------------- training

    def fit(self, make_batches: MakeBatches, *, resume: str | os.PathLike[str] | None = None) -> FitSummary:
        """Train from `self.step` to `config.max_steps` and return a summary.

        `make_batches(start_step)` must return an iterable whose first item is the GLOBAL batch of step
        `start_step` (identical on every rank) and then one batch per following step; that is what makes
        resuming exact. Training stops early, with a final checkpoint, if the iterable runs out.
        `resume` is a checkpoint path (see `load`) or "auto": the latest checkpoint under `out_dir`, if any.
        """
        if not callable(make_batches):
            raise ValueError(
                "fit expects make_batches(start_step) -> iterable of global batches, e.g. "
                "`lambda start: itertools.islice(batches, start, None)`; pass a callable, not the iterable"
            )
        if resume is None and self.step == 0 and self.checkpoints is not None:
            found = self.checkpoints.latest()
            if found is not None:  # training from step 0 would replace that run's checkpoints and mix the logs
                raise FileExistsError(
                    f"{self.checkpoints.root} already holds a run (latest checkpoint {found.name}); resume it "
                    "(resume='auto', `--resume` in the apps) or choose a new out_dir"
                )
        if resume is not None:
            if str(resume) == "auto":
                if self.checkpoints is not None and self.checkpoints.latest() is not None:
                    self.load(self.checkpoints.root)
            else:
                self.load(resume)
        cfg = self.config
        start_step = self.step
        t0 = time.perf_counter()
        stopped_early = out_of_time = False
        if self.step >= cfg.max_steps:
            return FitSummary(self.step, dict(self.last_metrics), self._latest_path(), 0.0)

        batches = iter(make_batches(self.step))
        self.train_model.train()
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            disable=not (cfg.progress and self.dist.is_main),
            dynamic_ncols=True,
            desc="train",
        )
        window: dict[str, float] = {}
        window_n = 0
        window_t = time.perf_counter()
        try:
            while self.step < cfg.max_steps:
                try:
                    batch = next(batches)
                except StopIteration:
                    stopped_early = True
                    break
                lr = self.lr
                metrics = self._train_step(batch)
                metrics["lr"] = lr
                for k, v in metrics.items():
                    window[k] = window.get(k, 0.0) + v
                window_n += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                    now = time.perf_counter()
                    logged = {k: v / window_n for k, v in window.items()}
                    logged["steps_per_s"] = window_n / max(now - window_t, 1e-9)
                    self.last_metrics = logged
                    self.logger.log(logged, self.step)
                    bar.set_postfix(
                        loss=f"{logged['loss']:.4g}", lr=f"{lr:.3g}", steps_per_s=f"{logged['steps_per_s']:.2f}"
                    )
                    window, window_n, window_t = {}, 0, now
                if self.checkpoints is not None and cfg.ckpt_every is not None and self.step % cfg.ckpt_every == 0:
                    self.save()
                if cfg.max_seconds is not None and self._out_of_time(t0, cfg.max_seconds):
                    out_of_time = self.step < cfg.max_steps
                    break
        finally:
            bar.close()
        if window_n:
            self.last_metrics = {k: v / window_n for k, v in window.items()}
        if self.checkpoints is not None and self.step > start_step and self._last_saved_step != self.step:
            self.save()
        return FitSummary(
            step=self.step,
            metrics=dict(self.last_metrics),
            checkpoint=self._latest_path(),
            elapsed_s=time.perf_counter() - t0,
            stopped_early=stopped_early,
            out_of_time=out_of_time,
        )

    def _out_of_time(self, t0: float, budget: float) -> bool:
        """True once `budget` seconds have passed since `t0`; under DDP every rank agrees (checked at log steps)."""
        late = time.perf_counter() - t0 >= budget
        if not self.dist.is_distributed:
            return late
        if self.step % self.config.log_every != 0:
            return False
        flag = torch.tensor([1.0 if late else 0.0], device=self.device)
        return bool(all_reduce_mean(flag).item() > 0)

    def _train_step(self, batch: Any) -> dict[str, float]:
        cfg = self.config
        step = self.step
        ctx = StepContext(
            step=step,
            rank=self.rank,
            world_size=self.world_size,
            generator=step_generator(cfg.seed, step, self.device),
            device=self.device,
        )
        amp = cfg.precision in _AMP_DTYPES
        with torch.autocast(self.device.type, dtype=_AMP_DTYPES.get(cfg.precision), enabled=amp):
            out = self.loss_fn(self.train_model, batch, ctx)
        loss, user_metrics = out if isinstance(out, tuple) else (out, {})
        if not isinstance(loss, Tensor) or loss.numel() != 1 or not loss.requires_grad:
            raise ValueError(
                "loss_fn must return (loss, metrics) with loss a scalar tensor that requires grad, got "
                f"{type(loss).__name__}{tuple(loss.shape) if isinstance(loss, Tensor) else ''}"
            )
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        else:
            grads = [p.grad.detach() for p in self.params if p.grad is not None]
            grad_norm = (
                torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
                if grads
                else torch.zeros((), device=self.device)
            )
        names = ["loss"] + [k for k in user_metrics if k != "loss"]
        values = [loss.detach().float().reshape(())] + [
            torch.as_tensor(
                user_metrics[k].detach() if isinstance(user_metrics[k], Tensor) else user_metrics[k],
                dtype=torch.float32,
                device=self.device,
            ).reshape(())
            for k in names[1:]
        ]
        reduced = all_reduce_mean(torch.stack([v.to(self.device, torch.float32) for v in values]))
        metrics = dict(zip(names, reduced.tolist(), strict=True))
        metrics["grad_norm"] = float(grad_norm)
        grad_ok = math.isfinite(metrics["grad_norm"]) or self.scaler is not None  # fp16: the scaler skips inf
        if not math.isfinite(metrics["loss"]) or not grad_ok:
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(step, metrics, cfg)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        if self.ema is not None:
            self.ema.update(self.model)
        return metrics

    # ------------------------------------------------------------------------------------------- checkpoints

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Checkpoint everything needed for an exact resume; call on every rank (rank 0 writes).

        Without `path` it goes to `<out_dir>/checkpoints/step_XXXXXXXX`, moves `latest` and prunes to
        `keep_last`; with `path` it is written there (atomically) and nothing else is touched.
        """
        if path is None and self.checkpoints is None:
            raise ValueError("Trainer.save needs a path, or set config.out_dir to get numbered checkpoints")
        rng_states = all_gather_objects(capture_rng_state())
        parts: dict[str, Any] = {
            "model": self.model,
            "optimizer": self.optimizer,
            "scheduler": self.scheduler,
            "scaler": self.scaler,
            "ema": self.ema,
            "config": self.config.to_dict(),
            "model_config": self.model_config,
            "rng_states": rng_states,
        }
        error: Exception | None = None
        if path is None:
            assert self.checkpoints is not None
            target = self.checkpoints.root / checkpoint_name(self.step)
        else:
            target = Path(path)
        if self.dist.is_main:
            try:
                if path is None:
                    self.checkpoints.save(self.step, **parts)
                else:
                    save_checkpoint(target, step=self.step, **parts)
            except Exception as exc:  # every rank must learn of it, or the others wait forever below
                error = exc
        outcomes = all_gather_objects(None if error is None else f"{type(error).__name__}: {error}")
        barrier()  # as before the status exchange: every rank leaves save() together
        if error is not None:
            raise error
        if outcomes[0] is not None:
            raise RuntimeError(f"rank 0 failed to save checkpoint {target}: {outcomes[0]}")
        self._last_saved_step = self.step
        return target

    def load(self, path: str | os.PathLike[str]) -> CheckpointInfo:
        """Restore model, EMA, optimiser, LR schedule, grad scaler, step and this rank's RNG states.

        `path` is a checkpoint directory, a directory with a `latest` pointer, or an `out_dir`.
        """
        ckpt = resolve_checkpoint(path)
        self._check_resumed_config(ckpt, json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8")))
        info = load_checkpoint(
            ckpt,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            scaler=self.scaler,
            ema=self.ema,
            rng_rank=self.rank,
        )
        self.step = info.step
        self._last_saved_step = info.step
        return info

    def _check_resumed_config(self, ckpt: Path, state: dict[str, Any]) -> None:
        """Refuse a checkpoint of another model (before anything is loaded); warn where the resumed run
        ignores a changed setting."""
        saved_model = state.get("model_config")
        if self.model_config is not None and saved_model is not None:
            own = json.loads(json.dumps(self.model_config))  # tuples -> lists, as stored
            diff = config_diff(saved_model, own)
            if diff:
                raise ValueError(
                    f"checkpoint {ckpt} was written for another model configuration ({'; '.join(diff)}); "
                    "resume with the settings it was trained with, or train into a new out_dir"
                )
        saved = state.get("config") or {}
        now = self.config.to_dict()
        ignored = {k: (saved[k], now[k]) for k in ("lr", "ema_decay", "seed") if k in saved and saved[k] != now[k]}
        if ignored:
            warnings.warn(
                f"resuming {ckpt}: the checkpoint's optimiser, EMA and RNG states keep its "
                + ", ".join(f"{k}={old!r}" for k, (old, _) in ignored.items())
                + " (new values "
                + ", ".join(f"{k}={new!r}" for k, (_, new) in ignored.items())
                + " are ignored)",
                stacklevel=3,
            )

    def close(self) -> None:
        """Close the logger the trainer created (a logger passed in is left to its owner)."""
        if self._own_logger:
            self.logger.close()

    # ------------------------------------------------------------------------------------------- helpers

    def _seed_global_rngs(self) -> None:
        seed = self.config.seed + self.rank
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _latest_path(self) -> Path | None:
        return self.checkpoints.latest() if self.checkpoints is not None else None


def config_diff(saved: Mapping[str, Any], own: Mapping[str, Any], prefix: str = "") -> list[str]:
    """'key: saved -> own' for every key both configs hold with different values (nested dicts walked).

    Keys only one side has are skipped: a checkpoint written before a setting existed still resumes.
    """
    diffs = []
    for key in sorted(set(saved) & set(own)):
        a, b = saved[key], own[key]
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs
