"""dforce-core: noise schedules, per-token forward process, parameterisations and loss weights for Diffusion Forcing."""

from .config import DiffusionConfig
from .forward import clipped_noise, q_sample
from .loss_weights import apply_padding, constant_weights, fused_snr_weights, min_snr_weights, snr_to_weights
from .noise_levels import NOISE_LEVEL_MODES, NoiseLevelSample, sample_noise_levels
from .parameterization import (
    Objective,
    eps_from_v,
    eps_from_x0,
    model_output_to_x0_eps,
    objective_target,
    v_from_eps_x0,
    x0_from_eps,
    x0_from_v,
)
from .schedules import BETA_SCHEDULES, NoiseSchedule, cosine_betas, linear_betas, make_betas, sigmoid_betas
from .shapes import check_sequence, per_token
from .training import DiffusionLoss, LossOutput, weighted_mse

__version__ = "0.1.0"

__all__ = [
    "BETA_SCHEDULES",
    "NOISE_LEVEL_MODES",
    "DiffusionConfig",
    "DiffusionLoss",
    "LossOutput",
    "NoiseLevelSample",
    "NoiseSchedule",
    "Objective",
    "apply_padding",
    "check_sequence",
    "clipped_noise",
    "constant_weights",
    "cosine_betas",
    "eps_from_v",
    "eps_from_x0",
    "fused_snr_weights",
    "linear_betas",
    "make_betas",
    "min_snr_weights",
    "model_output_to_x0_eps",
    "objective_target",
    "per_token",
    "q_sample",
    "sample_noise_levels",
    "sigmoid_betas",
    "snr_to_weights",
    "v_from_eps_x0",
    "weighted_mse",
    "x0_from_eps",
    "x0_from_v",
]
