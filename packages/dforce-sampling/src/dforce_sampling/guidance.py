"""Reward guidance through the denoiser and Monte Carlo Guidance (paper §3.4, reference §3.1-§3.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from dforce_core import per_token, q_sample

from .protocols import FanOutCache, RewardFn
from .sampler import draw_active_noise

if TYPE_CHECKING:
    from .protocols import Denoiser
    from .sampler import DiffusionForcingSampler

__all__ = ["GUIDANCE_FORMS", "Guidance", "MonteCarloGuidance", "RewardGuidance", "guided_prediction", "reward_view"]

# How the reward gradient enters a step: "classifier" shifts eps_hat (reference §3.1, the main: code);
# "paper" adds scale * g * grad to the DDIM output (reference §3.2, the paper: code behind Table 1).
GUIDANCE_FORMS = ("classifier", "paper")


class Guidance(Protocol):
    """Anything that turns a denoiser call into a guided (x0_hat, eps_hat) for ``sampler.denoise``."""

    def predict(
        self,
        sampler: DiffusionForcingSampler,
        model: Denoiser,
        x: Tensor,
        from_levels: Tensor,
        to_levels: Tensor,
        cond: Tensor | None = None,
        *,
        cache: Any = None,
        generator: torch.Generator | None = None,
        context_noise: Tensor | None = None,
        prefix: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Guided (x0_hat, eps_hat), both (B, T, *token_shape) and detached; must not commit to ``cache``."""
        ...


def reward_view(pred_x0: Tensor, x: Tensor, from_levels: Tensor, prefix: Tensor | None = None) -> Tensor:
    """The trajectory a reward sees: [prefix, x0_hat], clean tokens (level -1) taken as they are."""
    view = torch.where(per_token(from_levels < 0, x), x.detach(), pred_x0)  # (B, T, ...)
    if prefix is None or prefix.shape[1] == 0:
        return view
    if prefix.shape[0] != view.shape[0]:  # Monte Carlo replicas: every rollout repeated in a row
        prefix = prefix.repeat_interleave(view.shape[0] // prefix.shape[0], dim=0)
    return torch.cat([prefix.detach().to(view.dtype), view], dim=1)  # (B, P + T, ...)


def guided_prediction(
    sampler: DiffusionForcingSampler,
    pred_x0: Tensor,
    pred_eps: Tensor,
    k_net: Tensor,
    to_levels: Tensor,
    grad: Tensor,
    scale: float,
    form: str = "classifier",
) -> tuple[Tensor, Tensor]:
    """Guided (x0_hat', eps_hat') for a DDIM step, in one of ``GUIDANCE_FORMS``.

    * ``classifier`` (reference §3.1): eps' = eps - scale sqrt(1 - a_next) grad, and x0' from eps', written as
      the correction x0' = x0 - sqrt((1 - a)/a) (eps' - eps), so tokens without a correction keep x0_hat exactly.
    * ``paper`` (reference §3.2, the ``paper:`` branch's planner): the DDIM output x' = sqrt(a') x0 + c eps
      (+ sigma z) is moved by scale * g * grad with g = (1 - a) - c sqrt(1 - a), c = sqrt(1 - a' - sigma^2),
      and g = 0 on a token's final step (k' = -1). Here that shift is carried by x0' = x0 + scale g grad /
      sqrt(a'), which gives exactly that x' under DDIM; eps is unchanged. g is about 1e-4 at the noisiest
      level (S = 10, linear schedule) and about 0.15 at middle ones, so this form leaves the coarse plan to the
      model's prior.
    """
    a = per_token(sampler.schedule.alpha_bar(k_net), pred_x0)  # (B, T, 1...)
    a_next = per_token(sampler.schedule.alpha_bar(to_levels), pred_x0)  # (B, T, 1...), 1 at level -1
    if form == "paper":
        _, c = sampler.ddim_sigma_c(a, a_next, to_levels)  # (B, T, 1...)
        g = ((1.0 - a) - c * (1.0 - a).sqrt()) * per_token(to_levels >= 0, pred_x0)  # (B, T, 1...), 0 at the end
        return pred_x0 + float(scale) * g * grad / a_next.sqrt(), pred_eps
    if form != "classifier":
        raise ValueError(f"guidance form must be one of {GUIDANCE_FORMS}, got {form!r}")
    delta = -float(scale) * (1.0 - a_next).sqrt() * grad  # (B, T, ...)
    return pred_x0 - ((1.0 - a) / a).sqrt() * delta, pred_eps + delta


def _check_reward(value: Tensor, batch: int) -> Tensor:
    if not isinstance(value, Tensor) or tuple(value.shape) != (batch,):
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"reward_fn must return one reward per sequence, shape ({batch},), got {got}")
    return value


def _fan_out(cache: Any, repeats: int) -> Any:
    if cache is None:
        return None
    if not isinstance(cache, FanOutCache):
        raise ValueError(
            "MonteCarloGuidance with a cache needs cache.repeat_interleave(repeats) to replicate the rollouts; "
            f"{type(cache).__name__} has none (sample with use_cache=False instead)"
        )
    return cache.repeat_interleave(repeats)


class RewardGuidance:
    """Reward / goal guidance through the denoiser (reference §3.1): ascend R(x0_hat) via eps_hat.

    ``reward_fn(x0_hat (B, T, ...)) -> (B,)``; its gradient w.r.t. the current noisy tokens flows through the
    network (so later tokens' predictions guide earlier ones in a causal model). ``form`` says how the gradient
    enters the step (``guided_prediction``); ``"paper"`` needs a DDIM sampler.
    """

    def __init__(self, reward_fn: RewardFn, scale: float, form: str = "classifier") -> None:
        if not callable(reward_fn):
            raise ValueError("reward_fn must be callable: x0_hat (B, T, ...) -> reward (B,)")
        if not float(scale) >= 0.0 or float(scale) == float("inf"):
            raise ValueError(f"guidance scale must be a finite number >= 0, got {scale!r}")
        if form not in GUIDANCE_FORMS:
            raise ValueError(f"guidance form must be one of {GUIDANCE_FORMS}, got {form!r}")
        self.reward_fn = reward_fn
        self.scale = float(scale)
        self.form = form

    def total_reward(
        self,
        sampler: DiffusionForcingSampler,
        model: Denoiser,
        x: Tensor,
        pred_x0: Tensor,
        from_levels: Tensor,
        cond: Tensor | None,
        *,
        cache: Any,
        generator: torch.Generator | None,
        context_noise: Tensor | None,
        prefix: Tensor | None,
    ) -> Tensor:
        """Scalar sum over the batch of R(x0_hat)."""
        return _check_reward(self.reward_fn(reward_view(pred_x0, x, from_levels, prefix)), x.shape[0]).sum()

    def predict(
        self,
        sampler: DiffusionForcingSampler,
        model: Denoiser,
        x: Tensor,
        from_levels: Tensor,
        to_levels: Tensor,
        cond: Tensor | None = None,
        *,
        cache: Any = None,
        generator: torch.Generator | None = None,
        context_noise: Tensor | None = None,
        prefix: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Guided (x0_hat', eps_hat') with grad = d total_reward / d x (see ``Guidance``)."""
        if self.form == "paper" and sampler.ddpm:
            raise ValueError("the paper's guidance form moves a DDIM step's output; use a DDIM sampler (ddpm=False)")
        with torch.enable_grad():
            x_leaf = x.detach().requires_grad_(True)  # (B, T, ...)
            x_in, k_net = sampler.model_inputs(x_leaf, from_levels, context_noise=context_noise, generator=generator)
            out = model(x_in, k_net, cond, cache=cache, commit=0)  # (B, T, ...)
            pred_x0, pred_eps = sampler.predict(out, x_in, k_net)  # (B, T, ...) x2
            total = self.total_reward(
                sampler,
                model,
                x_leaf,
                pred_x0,
                from_levels,
                cond,
                cache=cache,
                generator=generator,
                context_noise=context_noise,
                prefix=prefix,
            )
            (grad,) = torch.autograd.grad(total, x_leaf, allow_unused=True)
        grad = torch.zeros_like(x) if grad is None else grad  # (B, T, ...)
        x0, eps = guided_prediction(sampler, pred_x0.detach(), pred_eps.detach(), k_net, to_levels, grad, self.scale,
                                    self.form)
        return x0.detach(), eps.detach()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, form={self.form!r})"


class MonteCarloGuidance(RewardGuidance):
    """Monte Carlo Guidance (paper §3.4, B.5; reference §3.2): average the reward over resampled futures.

    Each current token's clean estimate is resampled at the same noise level ("backward then forward
    diffusion"): x_r = q_sample(x0_hat, k, eps_r) with fresh eps_r for tokens with k >= 0, denoised again in
    ONE batched model call over the replicated batch, and the reward is averaged over the ``num_samples``
    samples; its gradient w.r.t. the current x flows through both passes. With ``include_prediction`` (the
    paper's code) the first sample is x0_hat itself and ``num_samples - 1`` are resampled, so
    ``num_samples=1`` is plain ``RewardGuidance``; otherwise all ``num_samples`` are resampled.
    """

    def __init__(
        self, reward_fn: RewardFn, scale: float, num_samples: int = 4, include_prediction: bool = True,
        form: str = "classifier",
    ) -> None:
        super().__init__(reward_fn, scale, form)
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
        self.num_samples = num_samples
        self.include_prediction = bool(include_prediction)

    @property
    def num_resampled(self) -> int:
        """Samples that need the second, batched model call."""
        return self.num_samples - 1 if self.include_prediction else self.num_samples

    def total_reward(
        self,
        sampler: DiffusionForcingSampler,
        model: Denoiser,
        x: Tensor,
        pred_x0: Tensor,
        from_levels: Tensor,
        cond: Tensor | None,
        *,
        cache: Any,
        generator: torch.Generator | None,
        context_noise: Tensor | None,
        prefix: Tensor | None,
    ) -> Tensor:
        """Sum over the batch of the reward averaged over the Monte Carlo samples."""
        b, r = x.shape[0], self.num_resampled
        total = x.new_zeros(())
        if self.include_prediction:
            total = total + super().total_reward(
                sampler, model, x, pred_x0, from_levels, cond,
                cache=cache, generator=generator, context_noise=context_noise, prefix=prefix,
            )
        if r > 0:
            rep = lambda t: None if t is None else t.repeat_interleave(r, dim=0)  # noqa: E731 (B, ...) -> (R*B, ...)
            levels = rep(from_levels)  # (R*B, T)
            x_rep = rep(x)  # (R*B, T, ...)
            eps = draw_active_noise(x_rep, levels, sampler.config.clip_noise, generator)  # (R*B, T, ...)
            renoised = q_sample(sampler.schedule, rep(pred_x0), levels, eps)  # (R*B, T, ...)
            x_r = torch.where(per_token(levels >= 0, x_rep), renoised, x_rep)  # (R*B, T, ...)
            x_in, k_net = sampler.model_inputs(x_r, levels, context_noise=rep(context_noise), generator=generator)
            out = model(x_in, k_net, rep(cond), cache=_fan_out(cache, r), commit=0)  # (R*B, T, ...)
            x0_r, _ = sampler.predict(out, x_in, k_net)  # (R*B, T, ...)
            rewards = _check_reward(self.reward_fn(reward_view(x0_r, x_rep, levels, prefix)), b * r)  # (R*B,)
            total = total + rewards.sum()
        return total / self.num_samples

    def __repr__(self) -> str:
        return (
            f"MonteCarloGuidance(scale={self.scale}, num_samples={self.num_samples}, "
            f"include_prediction={self.include_prediction}, form={self.form!r})"
        )
