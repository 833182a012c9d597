"""Typed configuration of the diffusion process shared by training and sampling."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .noise_levels import NOISE_LEVEL_MODES
from .parameterization import Objective
from .schedules import BETA_SCHEDULES, NoiseSchedule

__all__ = ["DiffusionConfig"]

_WEIGHTINGS = ("min_snr", "fused_snr", "constant")


@dataclass
class DiffusionConfig:
    """Everything that defines the per-token diffusion process and its training loss."""

    # process
    num_steps: int = 1000  # K, discrete diffusion levels
    beta_schedule: str = "cosine"  # linear | cosine | sigmoid
    schedule_kwargs: dict[str, float] = field(default_factory=dict)  # e.g. {"shift": 0.125} for cosine
    objective: str = "pred_v"  # pred_noise | pred_x0 | pred_v
    clip_noise: float | None = 20.0  # clamp every Gaussian draw (video uses 6)
    # loss weighting
    loss_weighting: str = "min_snr"  # min_snr | fused_snr | constant
    snr_clip: float = 5.0
    # gamma per frame; raised to frame_stack for fused SNR. The main: video configs raise it to
    # frame_stack * frame_skip: to reproduce them with frame_skip 2, pass cum_snr_decay = 0.96 ** 2
    cum_snr_decay: float = 0.96
    frame_stack: int = 1
    fused_variant: str = "paper"  # paper (App. B.1) | official (main: code, extra gamma)
    constant_weight: float = 1.0
    # training noise levels
    noise_level_mode: str = "diffusion_forcing"  # diffusion_forcing | full_sequence | teacher_forcing | causal
    first_token_known_prob: float = 0.0
    level_power: float = 1.0  # training levels floor(K u^p); 1 = the paper's uniform draw, > 1 = more low noise

    def __post_init__(self) -> None:
        if self.num_steps < 2:
            raise ValueError(f"num_steps must be >= 2, got {self.num_steps}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"beta_schedule must be one of {sorted(BETA_SCHEDULES)}, got {self.beta_schedule!r}")
        Objective.parse(self.objective)
        if self.clip_noise is not None and self.clip_noise <= 0:
            raise ValueError(f"clip_noise must be positive or None, got {self.clip_noise}")
        if self.loss_weighting not in _WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {_WEIGHTINGS}, got {self.loss_weighting!r}")
        if self.snr_clip <= 0:
            raise ValueError(f"snr_clip must be positive, got {self.snr_clip}")
        if not 0.0 <= self.cum_snr_decay <= 1.0:
            raise ValueError(f"cum_snr_decay must lie in [0, 1], got {self.cum_snr_decay}")
        if self.frame_stack < 1:
            raise ValueError(f"frame_stack must be >= 1, got {self.frame_stack}")
        if self.fused_variant not in ("paper", "official"):
            raise ValueError(f"fused_variant must be 'paper' or 'official', got {self.fused_variant!r}")
        if not self.level_power > 0:
            raise ValueError(f"level_power must be > 0, got {self.level_power}")
        if self.noise_level_mode not in NOISE_LEVEL_MODES:
            raise ValueError(f"noise_level_mode must be one of {NOISE_LEVEL_MODES}, got {self.noise_level_mode!r}")

    @property
    def fused_decay(self) -> float:
        """gamma = cum_snr_decay ** frame_stack, the per-token decay of the fused SNR."""
        return self.cum_snr_decay**self.frame_stack

    def build_schedule(self) -> NoiseSchedule:
        """The NoiseSchedule this config describes."""
        return NoiseSchedule.from_name(self.beta_schedule, self.num_steps, self.snr_clip, **self.schedule_kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiffusionConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown DiffusionConfig fields {sorted(unknown)}")
        return cls(**data)
