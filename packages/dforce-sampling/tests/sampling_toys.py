"""Tiny denoisers for the sampling tests: a causal windowed-mean network with a cache, and exact oracles."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dforce_core import NoiseSchedule, Objective, per_token


@dataclass
class ToyCache:
    """Committed per-token features (B, P, D) (last window-1 only when windowed) and the committed count."""

    past: Tensor
    length: int = 0

    def repeat_interleave(self, repeats: int) -> ToyCache:
        return ToyCache(past=self.past.repeat_interleave(repeats, dim=0), length=self.length)


@dataclass
class Call:
    batch: int
    tokens: int
    commit: int
    cached: bool
    grad: bool


class ToyCausalDenoiser:
    """out_t = tanh(x_t W + mean(h_{t-w+1..t}) U + e(k_t) + c_t V), h_j = x_j * (1 + 0.5 sin(k_j f)).

    Causal: output t depends on tokens <= t (their values, levels and cond). ``window`` = None means the
    mean runs over all earlier tokens. Implements the denoiser protocol incl. ``new_cache`` / ``commit``
    exactly as docs/ARCHITECTURE.md describes; every call is recorded in ``calls``.
    """

    def __init__(self, dim: int = 3, window: int | None = 4, cond_dim: int = 0, seed: int = 0, gain: float = 1.0):
        g = torch.Generator().manual_seed(seed)
        self.dim, self.window, self.cond_dim = dim, window, cond_dim
        self.W = torch.randn(dim, dim, generator=g) / math.sqrt(dim) * gain
        self.U = torch.randn(dim, dim, generator=g) / math.sqrt(dim)
        self.V = torch.randn(cond_dim, dim, generator=g) if cond_dim else None
        self.freq = torch.rand(dim, generator=g) * 0.02
        self.emb = torch.randn(dim, generator=g) * 0.3
        self.calls: list[Call] = []

    @property
    def receptive_field(self) -> int:
        if self.window is None:
            raise AttributeError("an unbounded toy has no finite receptive field")
        return self.window

    def new_cache(self, batch_size: int) -> ToyCache:
        return ToyCache(past=torch.zeros(batch_size, 0, self.dim))

    def _features(self, x: Tensor, levels: Tensor) -> Tensor:
        return x * (1.0 + 0.5 * torch.sin(levels[..., None].to(x.dtype) * self.freq))  # (B, T, D)

    def _mean(self, full: Tensor) -> Tensor:
        """Mean of each of the last T entries' window over ``full`` (B, P+T, D) -> (B, P+T, D)."""
        n = full.shape[1]
        if self.window is None:
            count = torch.arange(1, n + 1, dtype=full.dtype)[None, :, None]  # (1, n, 1)
            return full.cumsum(dim=1) / count
        w = self.window
        padded = torch.cat([full.new_zeros(full.shape[0], w - 1, full.shape[2]), full], dim=1)  # (B, n+w-1, D)
        windows = padded.unfold(1, w, 1)  # (B, n, D, w)
        count = torch.clamp(torch.arange(1, n + 1, dtype=full.dtype), max=w)[None, :, None]  # (1, n, 1)
        return windows.sum(-1) / count

    def __call__(self, x: Tensor, noise_levels: Tensor, cond: Tensor | None = None, *, cache=None, commit: int = 0):
        b, t = x.shape[:2]
        assert x.shape[2:] == (self.dim,), x.shape
        assert noise_levels.shape == (b, t) and noise_levels.dtype == torch.int64
        assert int(noise_levels.min()) >= 0, "the network is only told levels >= 0"
        assert 0 <= commit <= t and (commit == 0 or cache is not None)
        assert (cond is None) == (self.cond_dim == 0)
        self.calls.append(Call(b, t, commit, cache is not None, torch.is_grad_enabled()))
        h = self._features(x, noise_levels)  # (B, T, D)
        if cache is not None:
            assert cache.past.shape[0] == b, "cache batch mismatch"
            full = torch.cat([cache.past, h], dim=1)  # (B, P+T, D)
        else:
            full = h
        p = full.shape[1] - t
        mean = self._mean(full)[:, p:]  # (B, T, D)
        pre = x @ self.W + mean @ self.U + torch.cos(noise_levels[..., None].to(x.dtype) * 0.01) * self.emb
        if cond is not None:
            pre = pre + cond @ self.V
        if cache is not None and commit:
            kept = full[:, : p + commit]  # (B, P+commit, D)
            if self.window is not None:
                kept = kept[:, max(0, kept.shape[1] - (self.window - 1)) :]
            cache.past = kept
            cache.length += commit
        return torch.tanh(pre)  # (B, T, D)


class NoCacheDenoiser(ToyCausalDenoiser):
    """The toy without cache support."""

    def new_cache(self, batch_size: int) -> ToyCache:
        raise NotImplementedError("no cache")


class PlainCacheDenoiser(ToyCausalDenoiser):
    """The toy whose cache cannot be fanned out (no repeat_interleave)."""

    def new_cache(self, batch_size: int):
        cache = super().new_cache(batch_size)

        @dataclass
        class Plain:
            past: Tensor
            length: int = 0

        return Plain(past=cache.past)


class PointMassOracle:
    """Exact denoiser for the data distribution x0 = c (constant): predicts x0 = c and the matching eps / v."""

    def __init__(self, schedule: NoiseSchedule, objective: str, value: float = 0.7):
        self.schedule, self.objective, self.value = schedule, Objective.parse(objective), value

    def new_cache(self, batch_size: int):
        raise NotImplementedError

    def __call__(self, x: Tensor, noise_levels: Tensor, cond=None, *, cache=None, commit: int = 0) -> Tensor:
        a = per_token(self.schedule.alpha_bar(noise_levels), x).double()  # (B, T, 1)
        c = torch.full_like(x, self.value, dtype=torch.float64)
        eps = (x.double() - a.sqrt() * c) / (1.0 - a).sqrt()
        if self.objective is Objective.PRED_NOISE:
            out = eps
        elif self.objective is Objective.PRED_X0:
            out = c
        else:
            out = a.sqrt() * eps - (1.0 - a).sqrt() * c
        return out.to(x.dtype)


class OffsetAfter:
    """Wraps a model and adds ``delta`` to its output at absolute positions >= ``position`` (uncached only)."""

    def __init__(self, model, position: int, delta: float = 0.3):
        self.model, self.position, self.delta = model, position, delta

    def __call__(self, x, noise_levels, cond=None, *, cache=None, commit=0):
        assert cache is None
        out = self.model(x, noise_levels, cond)
        out = out.clone()
        out[:, self.position :] += self.delta
        return out


class CallCounter:
    """Wraps a model and records the batch size of every call."""

    def __init__(self, model):
        self.model = model
        self.batches: list[int] = []

    def new_cache(self, batch_size: int):
        return self.model.new_cache(batch_size)

    def __call__(self, x, noise_levels, cond=None, *, cache=None, commit=0):
        self.batches.append(int(x.shape[0]))
        return self.model(x, noise_levels, cond, cache=cache, commit=commit)


class GaussianOracle:
    """Exact denoiser for i.i.d. tokens x0 ~ N(0, std^2 I): x0_hat = E[x0 | x_k] = sqrt(a) std^2 x / (a std^2 + 1 - a)."""

    def __init__(self, schedule: NoiseSchedule, objective: str, std: float = 1.0):
        self.schedule, self.objective, self.var = schedule, Objective.parse(objective), std**2

    def new_cache(self, batch_size: int):
        raise NotImplementedError

    def __call__(self, x: Tensor, noise_levels: Tensor, cond=None, *, cache=None, commit: int = 0) -> Tensor:
        a = per_token(self.schedule.alpha_bar(noise_levels), x)  # (B, T, 1)
        x0 = a.sqrt() * self.var * x / (a * self.var + 1.0 - a)
        eps = (x - a.sqrt() * x0) / (1.0 - a).sqrt()
        if self.objective is Objective.PRED_NOISE:
            return eps
        if self.objective is Objective.PRED_X0:
            return x0
        return a.sqrt() * eps - (1.0 - a).sqrt() * x0
