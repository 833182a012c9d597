"""The eps / x0 / v parameterisations and conversions between them (reference §1.2)."""

from __future__ import annotations

from enum import Enum

from torch import Tensor

from .schedules import NoiseSchedule
from .shapes import check_sequence, per_token

__all__ = [
    "Objective",
    "eps_from_v",
    "eps_from_x0",
    "model_output_to_x0_eps",
    "objective_target",
    "v_from_eps_x0",
    "x0_from_eps",
    "x0_from_v",
]


class Objective(str, Enum):
    """What the network predicts."""

    PRED_NOISE = "pred_noise"
    PRED_X0 = "pred_x0"
    PRED_V = "pred_v"

    @classmethod
    def parse(cls, value: str | Objective) -> Objective:
        """Objective from its string name, with a clear error for unknown names."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"unknown objective {value!r}; choose one of {[o.value for o in cls]}") from None


def _alpha(schedule: NoiseSchedule, noise_levels: Tensor, like: Tensor) -> Tensor:
    check_sequence(like, noise_levels)
    return per_token(schedule.alpha_bar(noise_levels), like)  # (B, T, 1...)


def x0_from_eps(schedule: NoiseSchedule, x_t: Tensor, noise_levels: Tensor, eps: Tensor) -> Tensor:
    """x0 = sqrt(1/a) x_t - sqrt(1/a - 1) eps."""
    a = _alpha(schedule, noise_levels, x_t)
    return (1.0 / a).sqrt() * x_t - (1.0 / a - 1.0).sqrt() * eps


def eps_from_x0(schedule: NoiseSchedule, x_t: Tensor, noise_levels: Tensor, x0: Tensor) -> Tensor:
    """eps = (sqrt(1/a) x_t - x0) / sqrt(1/a - 1); needs levels >= 0 (undefined for clean tokens)."""
    a = _alpha(schedule, noise_levels, x_t)
    return ((1.0 / a).sqrt() * x_t - x0) / (1.0 / a - 1.0).sqrt()


def v_from_eps_x0(schedule: NoiseSchedule, noise_levels: Tensor, eps: Tensor, x0: Tensor) -> Tensor:
    """v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho 2022)."""
    a = _alpha(schedule, noise_levels, x0)
    return a.sqrt() * eps - (1.0 - a).sqrt() * x0


def x0_from_v(schedule: NoiseSchedule, x_t: Tensor, noise_levels: Tensor, v: Tensor) -> Tensor:
    """x0 = sqrt(a) x_t - sqrt(1 - a) v."""
    a = _alpha(schedule, noise_levels, x_t)
    return a.sqrt() * x_t - (1.0 - a).sqrt() * v


def eps_from_v(schedule: NoiseSchedule, x_t: Tensor, noise_levels: Tensor, v: Tensor) -> Tensor:
    """eps = sqrt(1 - a) x_t + sqrt(a) v."""
    a = _alpha(schedule, noise_levels, x_t)
    return (1.0 - a).sqrt() * x_t + a.sqrt() * v


def objective_target(
    objective: str | Objective, schedule: NoiseSchedule, noise_levels: Tensor, x0: Tensor, eps: Tensor
) -> Tensor:
    """The regression target of the objective: eps, x0 or v."""
    objective = Objective.parse(objective)
    if eps.shape != x0.shape:
        raise ValueError(f"eps {tuple(eps.shape)} must have the shape of x0 {tuple(x0.shape)}")
    if objective is Objective.PRED_NOISE:
        return eps
    if objective is Objective.PRED_X0:
        return x0
    return v_from_eps_x0(schedule, noise_levels, eps, x0)


def model_output_to_x0_eps(
    objective: str | Objective,
    schedule: NoiseSchedule,
    x_t: Tensor,
    noise_levels: Tensor,
    output: Tensor,
    clip_noise: float | None = None,
) -> tuple[Tensor, Tensor]:
    """(x0_hat, eps_hat) from the raw network output; eps_hat is clamped to +-clip_noise under pred_noise."""
    objective = Objective.parse(objective)
    if output.shape != x_t.shape:
        raise ValueError(f"model output shape {tuple(output.shape)} must equal x_t shape {tuple(x_t.shape)}")
    if objective is Objective.PRED_NOISE:
        eps = output if clip_noise is None else output.clamp(-clip_noise, clip_noise)
        return x0_from_eps(schedule, x_t, noise_levels, eps), eps
    if objective is Objective.PRED_X0:
        return output, eps_from_x0(schedule, x_t, noise_levels, output)
    return x0_from_v(schedule, x_t, noise_levels, output), eps_from_v(schedule, x_t, noise_levels, output)
