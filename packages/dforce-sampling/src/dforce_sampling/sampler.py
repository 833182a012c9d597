"""Per-token DDIM / DDPM updates with stabilization (reference §2.1, §2.4, §2.5; paper Alg. 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from dforce_core import NoiseSchedule, Objective, check_sequence, clipped_noise, model_output_to_x0_eps, per_token

from .config import SamplerConfig

if TYPE_CHECKING:
    from .guidance import Guidance
    from .protocols import Denoiser

__all__ = ["DiffusionForcingSampler", "StepOutput", "draw_active_noise", "leading_clean"]


@dataclass
class StepOutput:
    """Result of one per-token denoising step; all tensors (B, T, *token_shape)."""

    prev_sample: Tensor  # x at the next levels (unchanged tokens copied bit-for-bit)
    pred_x0: Tensor  # clean estimate x0_hat used by the update (after guidance)
    pred_eps: Tensor  # noise estimate eps_hat used by the update (after guidance)


def leading_clean(from_levels: Tensor) -> int:
    """Number of leading token columns that are clean (level -1) in every sequence of the batch."""
    noisy = (from_levels >= 0).any(dim=0)  # (T,)
    if not bool(noisy.any()):
        return int(from_levels.shape[1])
    return int(noisy.to(torch.int8).argmax())


def draw_active_noise(
    like: Tensor, from_levels: Tensor, clip: float | None, generator: torch.Generator | None = None
) -> Tensor:
    """Clamped Gaussian noise shaped like ``like`` (B, T, ...), drawn only after the leading clean tokens.

    The leading clean tokens (context, finished history) get zeros and consume no draws, so a rollout that
    feeds more or fewer history tokens (uncached vs KV-cached) makes exactly the same draws.
    """
    start = leading_clean(from_levels)
    noise = torch.zeros_like(like)  # (B, T, ...)
    if start < like.shape[1]:
        shape = (like.shape[0], like.shape[1] - start, *like.shape[2:])
        noise[:, start:] = clipped_noise(shape, clip, generator=generator, device=like.device, dtype=like.dtype)
    return noise


class DiffusionForcingSampler:
    """Per-token denoising step shared by every sampling mode: each token goes from its own level k to k'.

    Levels are real diffusion levels ``-1 .. K-1`` (``-1`` = clean); DDIM indices 0..S of a scheduling
    matrix are mapped to levels by :meth:`index_to_level`. The model is only used through the denoiser
    protocol (``dforce_sampling.protocols.Denoiser``).
    """

    def __init__(self, schedule: NoiseSchedule, config: SamplerConfig | None = None) -> None:
        config = config if config is not None else SamplerConfig()
        k, s = schedule.num_steps, config.num_sampling_steps
        if s > k:
            raise ValueError(f"num_sampling_steps S={s} must not exceed the schedule's K={k} diffusion steps")
        if config.stabilization_level > k:
            raise ValueError(f"stabilization_level must be <= K={k}, got {config.stabilization_level}")
        ddpm = (s == k) if config.ddpm is None else config.ddpm
        if ddpm and s != k:
            raise ValueError(f"DDPM sampling needs num_sampling_steps == K ({k}), got S={s}; use ddpm=False")
        self.schedule = schedule
        self.config = config
        self.ddpm = bool(ddpm)
        self.objective = Objective.parse(config.objective)
        # reference §2.1: real_steps = linspace(-1, K-1, S+1).long(); float64 so that K/S multiples are exact
        self._index_levels = torch.linspace(-1, k - 1, s + 1, dtype=torch.float64).long()  # (S+1,)

    # ------------------------------------------------------------------ levels
    @property
    def num_steps(self) -> int:
        """S, the number of sampling steps (DDIM indices 0..S)."""
        return self.config.num_sampling_steps

    @property
    def context_level(self) -> int:
        """Real level at which clean tokens are shown to the network: stabilization_level - 1 (§2.5)."""
        return self.config.stabilization_level - 1

    def index_to_level(self, index: Tensor | int) -> Tensor:
        """Real level of DDIM index i: linspace(-1, K-1, S+1).long()[i] (S=50, K=1000: -1, 19, 39, ..., 999)."""
        idx = torch.as_tensor(index)
        if idx.dtype.is_floating_point or idx.dtype == torch.bool:
            raise ValueError(f"DDIM indices must be integers in 0..S={self.num_steps}, got dtype {idx.dtype}")
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) > self.num_steps):
            raise ValueError(
                f"DDIM indices must lie in 0..S = 0..{self.num_steps}, got [{int(idx.min())}, {int(idx.max())}]"
            )
        return self._index_levels.to(idx.device)[idx.long()]  # same shape as index

    def _check(self, x: Tensor, from_levels: Tensor, to_levels: Tensor | None = None) -> None:
        check_sequence(x, from_levels, "x")
        self.schedule.check_levels(from_levels)
        if to_levels is None:
            return
        check_sequence(x, to_levels, "x")
        self.schedule.check_levels(to_levels)
        if bool((to_levels > from_levels).any()):
            raise ValueError("to_levels must not exceed from_levels: a step may only remove noise")
        if self.ddpm:
            moved = to_levels != from_levels  # (B, T)
            if bool((moved & (to_levels != from_levels - 1)).any()):
                raise ValueError(
                    "DDPM steps must lower every changing token's level by exactly 1 (S == K); "
                    "use DDIM (ddpm=False) for larger jumps"
                )

    # ------------------------------------------------------------------ pieces
    def model_inputs(
        self,
        x: Tensor,
        from_levels: Tensor,
        *,
        context_noise: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(x_in, k_net): clean tokens shown at level stabilization_level-1, scaled by sqrt(alpha_bar) (§2.4, §2.5).

        Under DDIM no noise is added to them; under DDPM they are noised for real with ``context_noise``
        (drawn from ``generator`` when not given). Noisy tokens pass through unchanged.
        """
        self._check(x, from_levels)
        clean = from_levels < 0  # (B, T)
        k_net = torch.where(clean, torch.full_like(from_levels, self.context_level), from_levels)  # (B, T)
        if not bool(clean.any()):
            return x, k_net
        a = per_token(self.schedule.alpha_bar(k_net), x)  # (B, T, 1...)
        shown = a.sqrt() * x  # (B, T, ...)
        if self.ddpm:
            if context_noise is None:
                context_noise = clipped_noise(
                    x.shape, self.config.clip_noise, generator=generator, device=x.device, dtype=x.dtype
                )
            elif context_noise.shape != x.shape:
                raise ValueError(f"context_noise must have the shape of x {tuple(x.shape)}, got {tuple(context_noise.shape)}")
            shown = shown + (1.0 - a).sqrt() * context_noise  # (B, T, ...)
        return torch.where(per_token(clean, x), shown.to(x.dtype), x), k_net  # (B, T, ...), (B, T)

    def predict(self, model_output: Tensor, x_in: Tensor, k_net: Tensor) -> tuple[Tensor, Tensor]:
        """(x0_hat, eps_hat) from the raw output for inputs x_in at network levels k_net (reference §1.2)."""
        return model_output_to_x0_eps(self.objective, self.schedule, x_in, k_net, model_output, self.config.clip_noise)

    def update(
        self,
        x: Tensor,
        pred_x0: Tensor,
        pred_eps: Tensor,
        from_levels: Tensor,
        to_levels: Tensor,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """x at ``to_levels`` given the predictions; tokens whose level does not change are copied unchanged."""
        self._check(x, from_levels, to_levels)
        x_new = self._ddpm_update(x, pred_x0, from_levels, generator) if self.ddpm else self._ddim_update(
            pred_x0, pred_eps, from_levels, to_levels, generator
        )  # (B, T, ...)
        x_new = torch.where(per_token(to_levels < 0, x), pred_x0, x_new)  # level -1: exactly x0_hat
        return torch.where(per_token(to_levels == from_levels, x), x, x_new.to(x.dtype))  # (B, T, ...)

    def _ddim_update(
        self, pred_x0: Tensor, pred_eps: Tensor, from_levels: Tensor, to_levels: Tensor, generator
    ) -> Tensor:
        """x' = x0_hat sqrt(a') + eps_hat sqrt(1 - a' - sigma^2) + sigma z (reference §2.4)."""
        k_c = torch.where(from_levels < 0, torch.full_like(from_levels, self.context_level), from_levels)  # (B, T)
        a = per_token(self.schedule.alpha_bar(k_c), pred_x0)  # (B, T, 1...)
        a_next = per_token(self.schedule.alpha_bar(to_levels), pred_x0)  # (B, T, 1...), 1 at level -1
        x_new = pred_x0 * a_next.sqrt()  # (B, T, ...)
        sigma, c = self.ddim_sigma_c(a, a_next, to_levels)  # (B, T, 1...) each
        if float(self.config.eta) > 0:
            z = draw_active_noise(pred_x0, from_levels, self.config.clip_noise, generator)  # (B, T, ...)
            return x_new + pred_eps * c + sigma * z
        return x_new + pred_eps * c

    def ddim_sigma_c(self, a: Tensor, a_next: Tensor, to_levels: Tensor) -> tuple[Tensor, Tensor]:
        """DDIM's (sigma, c) for alpha_bar a -> a_next (B, T, 1...): sigma = eta sqrt(var), c = sqrt(1 - a' - sigma^2).

        sigma is 0 where k' = -1 (reference §2.4).
        """
        eta = float(self.config.eta)
        if eta == 0:
            return torch.zeros_like(a_next), (1.0 - a_next).clamp_min(0.0).sqrt()
        var = ((1.0 - a / a_next) * (1.0 - a_next) / (1.0 - a)).clamp_min(0.0)  # (B, T, 1...)
        sigma = eta * var.sqrt() * per_token(to_levels >= 0, a_next)  # (B, T, 1...), 0 when k' = -1
        return sigma, (1.0 - a_next - sigma**2).clamp_min(0.0).sqrt()

    def _ddpm_update(self, x: Tensor, pred_x0: Tensor, from_levels: Tensor, generator) -> Tensor:
        """Ancestral step k -> k-1: posterior mean + exp(log_var / 2) z, noise only where k > 0 (§2.4)."""
        k = from_levels.clamp_min(0)  # (B, T); clean tokens are copied by the caller
        coef_x0 = per_token(self.schedule.gather("posterior_coef_x0", k), x)  # (B, T, 1...)
        coef_xt = per_token(self.schedule.gather("posterior_coef_xt", k), x)  # (B, T, 1...)
        log_var = per_token(self.schedule.gather("posterior_log_variance", k), x)  # (B, T, 1...)
        mean = coef_x0 * pred_x0 + coef_xt * x  # (B, T, ...)
        z = draw_active_noise(x, from_levels, self.config.clip_noise, generator)  # (B, T, ...)
        std = (0.5 * log_var).exp() * per_token(from_levels > 0, x)  # (B, T, 1...)
        return mean + std * z

    # ------------------------------------------------------------------ steps
    def step(
        self,
        model_output: Tensor,
        x: Tensor,
        from_levels: Tensor,
        to_levels: Tensor,
        generator: torch.Generator | None = None,
        *,
        x_in: Tensor | None = None,
    ) -> StepOutput:
        """One per-token step from the raw output of a model fed ``model_inputs(x, from_levels)`` (§2.4).

        ``x_in`` is the tensor the model saw; when omitted it is rebuilt (under DDPM with zero context noise,
        which only affects the predictions of the copied clean tokens).
        """
        self._check(x, from_levels, to_levels)
        if x_in is None:
            x_in, k_net = self.model_inputs(x, from_levels, context_noise=torch.zeros_like(x))
        else:
            k_net = torch.where(from_levels < 0, torch.full_like(from_levels, self.context_level), from_levels)
        pred_x0, pred_eps = self.predict(model_output, x_in, k_net)  # (B, T, ...) x2
        prev = self.update(x, pred_x0, pred_eps, from_levels, to_levels, generator)  # (B, T, ...)
        return StepOutput(prev_sample=prev, pred_x0=pred_x0, pred_eps=pred_eps)

    def denoise(
        self,
        model: Denoiser,
        x: Tensor,
        from_levels: Tensor,
        to_levels: Tensor,
        cond: Tensor | None = None,
        *,
        cache: Any = None,
        commit: int = 0,
        guidance: Guidance | None = None,
        generator: torch.Generator | None = None,
        context_noise: Tensor | None = None,
        prefix: Tensor | None = None,
    ) -> StepOutput:
        """Run the model on x (B, T, ...) at ``from_levels`` (B, T) and step every token to ``to_levels``.

        ``cache``/``commit`` follow the denoiser protocol. ``guidance`` (e.g. ``RewardGuidance``) replaces
        the plain prediction by a guided one; the model then runs with gradients enabled, otherwise under
        ``torch.no_grad``. ``context_noise`` fixes the DDPM noise of clean tokens; ``prefix`` (B, P, ...)
        holds the clean tokens preceding x that a guidance reward sees in front of x0_hat.
        """
        self._check(x, from_levels, to_levels)
        if isinstance(commit, bool) or not isinstance(commit, int) or not 0 <= commit <= x.shape[1]:
            raise ValueError(f"commit must be an int in [0, T={x.shape[1]}], got {commit!r}")
        if commit and cache is None:
            raise ValueError(f"commit={commit} needs a cache from model.new_cache(batch_size)")
        if guidance is None:
            with torch.no_grad():
                x_in, k_net = self.model_inputs(x, from_levels, context_noise=context_noise, generator=generator)
                out = model(x_in, k_net, cond, cache=cache, commit=commit)  # (B, T, ...)
                return self.step(out, x, from_levels, to_levels, generator, x_in=x_in)
        head: StepOutput | None = None
        if commit:
            # Commit the finished head without gradients, so the cache never holds autograd graphs.
            if bool((from_levels[:, :commit] >= 0).any()) or bool((to_levels[:, :commit] >= 0).any()):
                raise ValueError("with guidance, the committed tokens (the first `commit` of x) must be clean (level -1)")
            with torch.no_grad():
                sub = slice(0, commit)
                ctx = None if context_noise is None else context_noise[:, sub]
                x_in, k_net = self.model_inputs(x[:, sub], from_levels[:, sub], context_noise=ctx, generator=generator)
                c = None if cond is None else cond[:, sub]
                out = model(x_in, k_net, c, cache=cache, commit=commit)  # (B, commit, ...)
                head = self.step(out, x[:, sub], from_levels[:, sub], to_levels[:, sub], x_in=x_in)
            done = x[:, sub]
            prefix = done if prefix is None else torch.cat([prefix, done], dim=1)  # (B, P + commit, ...)
            if commit == x.shape[1]:
                return head
            rest = slice(commit, None)
            x, from_levels, to_levels = x[:, rest], from_levels[:, rest], to_levels[:, rest]
            cond = None if cond is None else cond[:, rest]
            context_noise = None if context_noise is None else context_noise[:, rest]
        pred_x0, pred_eps = guidance.predict(
            self,
            model,
            x,
            from_levels,
            to_levels,
            cond,
            cache=cache,
            generator=generator,
            context_noise=context_noise,
            prefix=prefix,
        )  # (B, T, ...) x2, detached
        with torch.no_grad():
            prev = self.update(x, pred_x0, pred_eps, from_levels, to_levels, generator)  # (B, T, ...)
        out = StepOutput(prev_sample=prev, pred_x0=pred_x0, pred_eps=pred_eps)
        if head is None:
            return out
        return StepOutput(
            prev_sample=torch.cat([head.prev_sample, out.prev_sample], dim=1),  # (B, commit + T, ...)
            pred_x0=torch.cat([head.pred_x0, out.pred_x0], dim=1),  # (B, commit + T, ...)
            pred_eps=torch.cat([head.pred_eps, out.pred_eps], dim=1),  # (B, commit + T, ...)
        )

    def __repr__(self) -> str:
        c = self.config
        mode = "ddpm" if self.ddpm else f"ddim(eta={c.eta})"
        return (
            f"DiffusionForcingSampler(K={self.schedule.num_steps}, S={c.num_sampling_steps}, {mode}, "
            f"objective={self.objective.value}, stabilization_level={c.stabilization_level})"
        )
