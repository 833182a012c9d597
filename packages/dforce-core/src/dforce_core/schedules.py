"""Beta schedules and the per-token noise schedule (reference §1.1)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "BETA_SCHEDULES",
    "NoiseSchedule",
    "cosine_betas",
    "linear_betas",
    "make_betas",
    "sigmoid_betas",
]


def linear_betas(num_steps: int) -> Tensor:
    """Linear betas of DDPM (Ho et al. 2020), rescaled so any ``num_steps`` spans the same range."""
    if num_steps <= 20:
        raise ValueError(
            f"the linear schedule rescales betas by 1000/num_steps, which exceeds beta = 1 for num_steps <= 20 "
            f"(got {num_steps}); use num_steps > 20 or the cosine schedule"
        )
    scale = 1000.0 / num_steps
    return torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64)  # (K,)


def _betas_from_alpha_bar(alpha_bar: Tensor) -> Tensor:
    """Betas from a continuous alpha_bar curve sampled at K+1 points, normalised to alpha_bar(0) = 1."""
    alpha_bar = alpha_bar / alpha_bar[0]  # (K+1,)
    betas = 1.0 - alpha_bar[1:] / alpha_bar[:-1]  # (K,)
    return betas.clamp(0.0, 0.999)


def _shift_alpha_bar(alpha_bar: Tensor, shift: float) -> Tensor:
    """Multiply the SNR by ``shift**2`` (simple diffusion, Hoogeboom et al. 2023); shift < 1 is noisier."""
    if shift == 1.0:
        return alpha_bar
    snr = alpha_bar / (1.0 - alpha_bar).clamp_min(1e-20)  # (K+1,)
    snr = snr * shift**2
    return snr / (1.0 + snr)


def cosine_betas(num_steps: int, s: float = 0.008, shift: float = 1.0) -> Tensor:
    """Cosine schedule of Nichol & Dhariwal (2021): alpha_bar(t) = cos((t+s)/(1+s) * pi/2)^2."""
    t = torch.linspace(0, num_steps, num_steps + 1, dtype=torch.float64) / num_steps  # (K+1,)
    alpha_bar = torch.cos((t + s) / (1 + s) * math.pi * 0.5) ** 2  # (K+1,)
    alpha_bar = alpha_bar / alpha_bar[0]
    if shift != 1.0:
        # keep the endpoint exactly at zero signal; shifting only the interior
        alpha_bar = torch.cat([alpha_bar[:1], _shift_alpha_bar(alpha_bar[1:], shift)])
    return _betas_from_alpha_bar(alpha_bar)


def sigmoid_betas(
    num_steps: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0, shift: float = 1.0
) -> Tensor:
    """Sigmoid schedule (Jabri et al. 2022), used by Diffusion Forcing for video."""
    t = torch.linspace(0, num_steps, num_steps + 1, dtype=torch.float64) / num_steps  # (K+1,)
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    alpha_bar = (-torch.sigmoid((t * (end - start) + start) / tau) + v_end) / (v_end - v_start)  # (K+1,)
    alpha_bar = alpha_bar / alpha_bar[0]
    if shift != 1.0:
        alpha_bar = torch.cat([alpha_bar[:1], _shift_alpha_bar(alpha_bar[1:], shift)])
    return _betas_from_alpha_bar(alpha_bar)


BETA_SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
}


def make_betas(name: str, num_steps: int, **kwargs: float) -> Tensor:
    """Betas (float64, shape (K,)) of the named schedule: linear, cosine or sigmoid."""
    if name not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta schedule {name!r}; choose one of {sorted(BETA_SCHEDULES)}")
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if name == "linear" and kwargs:
        raise ValueError(f"the linear schedule takes no options, got {sorted(kwargs)}")
    return BETA_SCHEDULES[name](num_steps, **kwargs)


class NoiseSchedule:
    """Discrete diffusion schedule whose gathers take one level per token.

    Levels are integers in ``-1 .. K-1``: ``-1`` means clean (alpha_bar = 1), ``K-1`` is (almost) pure noise.
    Quantities are computed once in float64 and served as float32 on the device of the ``noise_levels``
    tensor passed to each gather.
    """

    def __init__(self, betas: Tensor, snr_clip: float = 5.0):
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if betas.numel() < 1 or not torch.all((betas > 0) & (betas < 1)):
            raise ValueError("betas must be a non-empty 1-D tensor with values in (0, 1)")
        self.num_steps = int(betas.numel())
        self.snr_clip = float(snr_clip)
        alphas = 1.0 - betas  # (K,)
        alpha_bar = torch.cumprod(alphas, dim=0)  # (K,)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])  # (K,)
        one = torch.ones(1, dtype=torch.float64)
        # every table has K+1 entries: index 0 is level -1 (clean), index k+1 is level k
        post_var = betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)  # (K,)
        self._tables64: dict[str, Tensor] = {
            "betas": torch.cat([torch.zeros(1, dtype=torch.float64), betas]),
            "alpha_bar": torch.cat([one, alpha_bar]),
            "alpha_bar_prev": torch.cat([one, alpha_bar_prev]),
            "posterior_variance": torch.cat([torch.zeros(1, dtype=torch.float64), post_var]),
            "posterior_log_variance": torch.cat(
                [torch.zeros(1, dtype=torch.float64), torch.log(torch.cat([post_var[1:2], post_var[1:]]))]
            ),
            "posterior_coef_x0": torch.cat([one, betas * torch.sqrt(alpha_bar_prev) / (1.0 - alpha_bar)]),
            "posterior_coef_xt": torch.cat(
                [torch.zeros(1, dtype=torch.float64), (1.0 - alpha_bar_prev) * torch.sqrt(alphas) / (1.0 - alpha_bar)]
            ),
        }
        self._cache: dict[tuple[str, torch.device], Tensor] = {}

    @classmethod
    def from_name(cls, name: str, num_steps: int = 1000, snr_clip: float = 5.0, **kwargs: float) -> NoiseSchedule:
        """Build from a named beta schedule (``linear``, ``cosine``, ``sigmoid``)."""
        return cls(make_betas(name, num_steps, **kwargs), snr_clip=snr_clip)

    # ---------------------------------------------------------------- gathers
    def table(self, name: str, device: torch.device | str | None = None) -> Tensor:
        """Float32 table of ``name`` with K+1 entries (index 0 = level -1), on ``device``."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        key = (name, device)
        if key not in self._cache:
            if name not in self._tables64:
                raise KeyError(f"unknown schedule table {name!r}; have {sorted(self._tables64)}")
            self._cache[key] = self._tables64[name].to(device=device, dtype=torch.float32)
        return self._cache[key]

    def check_levels(self, noise_levels: Tensor) -> None:
        """Raise ValueError unless ``noise_levels`` is an integer tensor with values in -1..K-1."""
        if (
            not isinstance(noise_levels, Tensor)
            or noise_levels.dtype.is_floating_point
            or noise_levels.dtype == torch.bool
        ):
            raise ValueError("noise_levels must be an integer tensor of shape (B, T) with values in -1..K-1")
        if noise_levels.numel() and (int(noise_levels.min()) < -1 or int(noise_levels.max()) >= self.num_steps):
            raise ValueError(
                f"noise_levels must lie in -1..{self.num_steps - 1} (-1 = clean), got range "
                f"[{int(noise_levels.min())}, {int(noise_levels.max())}]"
            )

    def gather(self, name: str, noise_levels: Tensor) -> Tensor:
        """Per-token value of table ``name`` at ``noise_levels`` (any shape, usually (B, T)).

        Values are range-checked on CPU tensors only: on an accelerator the check would force a host sync on
        every gather, so there the caller's entry-point validation is relied on.
        """
        if noise_levels.device.type == "cpu":
            self.check_levels(noise_levels)
        elif noise_levels.dtype.is_floating_point:
            raise ValueError("noise_levels must be an integer tensor of shape (B, T) with values in -1..K-1")
        return self.table(name, noise_levels.device)[noise_levels.long() + 1]  # same shape as noise_levels

    def alpha_bar(self, noise_levels: Tensor) -> Tensor:
        """alpha_bar_k per token; 1 at level -1."""
        return self.gather("alpha_bar", noise_levels)

    def snr(self, noise_levels: Tensor) -> Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) per token (inf at level -1)."""
        a = self.alpha_bar(noise_levels)  # (B, T)
        return a / (1.0 - a)

    def clipped_snr(self, noise_levels: Tensor) -> Tensor:
        """min(snr, snr_clip) per token."""
        return self.snr(noise_levels).clamp(max=self.snr_clip)

    @property
    def alphas_cumprod(self) -> Tensor:
        """alpha_bar for levels 0..K-1 (float64, CPU)."""
        return self._tables64["alpha_bar"][1:].clone()

    def __repr__(self) -> str:
        return f"NoiseSchedule(num_steps={self.num_steps}, snr_clip={self.snr_clip})"
