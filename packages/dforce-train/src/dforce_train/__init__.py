"""Training loop for Diffusion Forcing models: torchrun DDP, mixed precision, EMA, checkpoints, logging."""

from dforce_train.checkpoint import (
    CheckpointInfo,
    CheckpointManager,
    capture_rng_state,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from dforce_train.config import TrainConfig
from dforce_train.context import StepContext, step_generator, step_seed
from dforce_train.distributed import DistInfo, barrier, cleanup, init_distributed, is_main, unwrap_model
from dforce_train.ema import EMA
from dforce_train.loggers import JSONLLogger, Logger, MultiLogger, NullLogger, WandbLogger, make_logger, read_jsonl
from dforce_train.prefetch import prefetch
from dforce_train.provenance import array_fingerprint, code_revision, numerics_fingerprint
from dforce_train.trainer import FitSummary, NonFiniteLossError, Trainer, lr_factor, warmup_factor

__version__ = "0.1.0"

__all__ = [
    "EMA",
    "CheckpointInfo",
    "CheckpointManager",
    "DistInfo",
    "FitSummary",
    "JSONLLogger",
    "Logger",
    "MultiLogger",
    "NonFiniteLossError",
    "NullLogger",
    "StepContext",
    "TrainConfig",
    "Trainer",
    "WandbLogger",
    "barrier",
    "capture_rng_state",
    "cleanup",
    "init_distributed",
    "is_main",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "make_logger",
    "read_jsonl",
    "resolve_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "step_generator",
    "step_seed",
    "unwrap_model",
    "prefetch",
    "array_fingerprint",
    "numerics_fingerprint",
    "code_revision",
    "warmup_factor",
    "lr_factor",
]
