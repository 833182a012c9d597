"""Typed configuration of the per-token DDIM/DDPM sampler (reference §2.4, §2.5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from dforce_core import Objective

__all__ = ["SamplerConfig"]


@dataclass
class SamplerConfig:
    """How to sample: number of steps, stochasticity, stabilization and the network's parameterisation.

    * ``num_sampling_steps`` S: DDIM steps from white noise to clean (S == K selects DDPM by default).
    * ``eta``: 0 = deterministic DDIM, 1 = DDPM-like variance (reference §2.4).
    * ``stabilization_level``: clean context / finished tokens are shown to the network at real level
      ``stabilization_level - 1`` with input scaled by sqrt(alpha_bar) (DDIM: no noise; DDPM: real noise).
      1 means "plain clean context at level 0"; the official video configs use 15, planning 10 (§2.5).
    * ``clip_noise``: clamp every Gaussian draw and a pred_noise output to +-clip_noise (None = off, §1.5).
    * ``objective``: what the network predicts, ``pred_noise | pred_x0 | pred_v``.
    * ``ddpm``: use the ancestral DDPM posterior; None = automatically when S equals K.
    """

    num_sampling_steps: int = 50
    eta: float = 0.0
    stabilization_level: int = 1
    clip_noise: float | None = 20.0
    objective: str = "pred_v"
    ddpm: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.num_sampling_steps, bool) or not isinstance(self.num_sampling_steps, int):
            raise ValueError(f"num_sampling_steps must be an int, got {self.num_sampling_steps!r}")
        if self.num_sampling_steps < 1:
            raise ValueError(f"num_sampling_steps must be >= 1, got {self.num_sampling_steps}")
        if not 0.0 <= float(self.eta) < float("inf"):
            raise ValueError(f"eta must be a finite number >= 0 (0 = deterministic DDIM), got {self.eta}")
        if isinstance(self.stabilization_level, bool) or not isinstance(self.stabilization_level, int):
            raise ValueError(f"stabilization_level must be an int, got {self.stabilization_level!r}")
        if self.stabilization_level < 1:
            raise ValueError(
                f"stabilization_level must be >= 1 (context is shown at level stabilization_level - 1 >= 0; "
                f"use 1 for clean context at level 0), got {self.stabilization_level}"
            )
        if self.clip_noise is not None and not self.clip_noise > 0:
            raise ValueError(f"clip_noise must be positive or None, got {self.clip_noise}")
        self.objective = Objective.parse(self.objective).value
        if self.ddpm is not None and not isinstance(self.ddpm, bool):
            raise ValueError(f"ddpm must be True, False or None (auto: S == K), got {self.ddpm!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SamplerConfig:
        """Inverse of ``to_dict``; unknown keys are an error."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown SamplerConfig fields {sorted(unknown)}")
        return cls(**data)
