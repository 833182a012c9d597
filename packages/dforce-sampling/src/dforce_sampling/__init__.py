"""Scheduling matrices, per-token DDIM/DDPM steps, KV-cached rollouts and guidance (incl. Monte Carlo Guidance) for Diffusion Forcing."""

from .config import SamplerConfig
from .guidance import GUIDANCE_FORMS, Guidance, MonteCarloGuidance, RewardGuidance, guided_prediction, reward_view
from .protocols import Denoiser, FanOutCache, RewardFn
from .rollout import sample
from .sampler import DiffusionForcingSampler, StepOutput, draw_active_noise, leading_clean
from .scheduling import (
    SCHEDULING_MATRICES,
    autoregressive,
    full_sequence,
    pyramid,
    scheduling_matrix,
    trapezoid,
    validate_matrix,
)

__version__ = "0.1.0"

__all__ = [
    "GUIDANCE_FORMS",
    "SCHEDULING_MATRICES",
    "Denoiser",
    "DiffusionForcingSampler",
    "FanOutCache",
    "Guidance",
    "MonteCarloGuidance",
    "RewardFn",
    "RewardGuidance",
    "SamplerConfig",
    "StepOutput",
    "autoregressive",
    "draw_active_noise",
    "full_sequence",
    "guided_prediction",
    "leading_clean",
    "pyramid",
    "reward_view",
    "sample",
    "scheduling_matrix",
    "trapezoid",
    "validate_matrix",
]
