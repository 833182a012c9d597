"""Typed, validated training-loop configuration."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Precision = Literal["fp32", "bf16", "fp16"]
DeviceChoice = Literal["auto", "cpu", "cuda"]
LrDecay = Literal["constant", "cosine"]

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
LR_DECAYS = ("constant", "cosine")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser, precision, EMA, logging and checkpoint settings of one training run."""

    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_decay: LrDecay = "constant"  # after warmup: keep lr, or cosine-decay it to min_lr_ratio * lr at max_steps
    min_lr_ratio: float = 0.0
    max_steps: int = 100_000
    max_seconds: float | None = None  # wall-clock budget of one `fit` call; None = no limit
    compile: bool = False  # torch.compile the model for training (fuses the many small elementwise kernels)
    compile_backend: str = "inductor"  # torch.compile backend ("aot_eager" traces without code generation)
    grad_clip: float | None = 1.0
    precision: Precision = "fp32"
    ema_decay: float | None = None
    ema_start: int = 0
    log_every: int = 50
    ckpt_every: int | None = 5_000
    keep_last: int | None = 3
    out_dir: str | None = None
    seed: int = 0
    progress: bool = True
    device: DeviceChoice = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.out_dir, Path):
            object.__setattr__(self, "out_dir", str(self.out_dir))
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}; set e.g. lr=1e-4")
        if (
            not isinstance(self.betas, tuple)
            or len(self.betas) != 2
            or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in self.betas)
        ):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}; e.g. betas=(0.9, 0.99)")
        if not isinstance(self.weight_decay, (int, float)) or not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not _is_int(self.warmup_steps) or self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0 (0 = no warmup), got {self.warmup_steps!r}")
        if self.lr_decay not in LR_DECAYS:
            raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {self.lr_decay!r}")
        if not isinstance(self.min_lr_ratio, (int, float)) or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1] (the final lr / lr), got {self.min_lr_ratio!r}")
        if not _is_int(self.max_steps) or self.max_steps < 1:
            raise ValueError(f"max_steps must be an int >= 1, got {self.max_steps!r}")
        if self.max_seconds is not None and (
            not isinstance(self.max_seconds, (int, float)) or not math.isfinite(self.max_seconds)
            or self.max_seconds <= 0
        ):
            raise ValueError(f"max_seconds must be a positive number or None (no limit), got {self.max_seconds!r}")
        if not isinstance(self.compile, bool):
            raise ValueError(f"compile must be True or False, got {self.compile!r}")
        if not isinstance(self.compile_backend, str) or not self.compile_backend:
            raise ValueError(f"compile_backend must be a torch.compile backend name, got {self.compile_backend!r}")
        if self.grad_clip is not None and (
            not isinstance(self.grad_clip, (int, float)) or not math.isfinite(self.grad_clip) or self.grad_clip <= 0
        ):
            raise ValueError(f"grad_clip must be a positive number or None (off), got {self.grad_clip!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("precision='fp16' needs CUDA (it uses a GradScaler); on CPU use 'bf16' or 'fp32'")
        if self.ema_decay is not None and (
            not isinstance(self.ema_decay, (int, float)) or not 0.0 <= self.ema_decay < 1.0
        ):
            raise ValueError(f"ema_decay must be in [0, 1) or None (no EMA), got {self.ema_decay!r}; e.g. 0.9999")
        if not _is_int(self.ema_start) or self.ema_start < 0:
            raise ValueError(f"ema_start must be an int >= 0, got {self.ema_start!r}")
        if not _is_int(self.log_every) or self.log_every < 1:
            raise ValueError(f"log_every must be an int >= 1, got {self.log_every!r}")
        if self.ckpt_every is not None and (not _is_int(self.ckpt_every) or self.ckpt_every < 1):
            raise ValueError(
                f"ckpt_every must be an int >= 1 or None (only a final checkpoint), got {self.ckpt_every!r}"
            )
        if self.keep_last is not None and (not _is_int(self.keep_last) or self.keep_last < 1):
            raise ValueError(f"keep_last must be an int >= 1 or None (keep all), got {self.keep_last!r}")
        if self.out_dir is not None and (not isinstance(self.out_dir, str) or not self.out_dir):
            raise ValueError(f"out_dir must be a non-empty path or None (no files written), got {self.out_dir!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")
        if not isinstance(self.progress, bool):
            raise ValueError(f"progress must be True or False, got {self.progress!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of the public fields."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["betas"] = list(self.betas)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from `to_dict()` output; unknown keys raise ValueError."""
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"TrainConfig has no fields {extra}; remove them (known: {sorted(known)})")
        return cls(**data)
