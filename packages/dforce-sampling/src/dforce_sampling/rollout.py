"""Chunked rollouts with clean context, sliding window and an optional KV cache (reference §2.3; paper Alg. 2)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from dforce_core import clipped_noise

from .sampler import DiffusionForcingSampler
from .scheduling import SCHEDULING_MATRICES, scheduling_matrix, validate_matrix

if TYPE_CHECKING:
    from .guidance import Guidance
    from .protocols import Denoiser

__all__ = ["sample"]

def _matrix_fn(scheduling: str | Callable[[int], Tensor], num_steps: int, uncertainty_scale: float) -> Callable[[int], Tensor]:
    """H -> validated scheduling matrix (rows, H), memoised per H."""
    memo: dict[int, Tensor] = {}
    if isinstance(scheduling, str):
        if scheduling not in SCHEDULING_MATRICES:
            raise ValueError(
                f"unknown scheduling {scheduling!r}; choose one of {sorted(SCHEDULING_MATRICES)} or pass a "
                "callable H -> (rows, H) matrix"
            )
        kwargs = {"uncertainty_scale": uncertainty_scale} if scheduling in ("pyramid", "trapezoid") else {}

        def build(h: int) -> Tensor:
            return scheduling_matrix(scheduling, h, num_steps, **kwargs)
    elif callable(scheduling):
        build = scheduling
    else:
        raise ValueError(f"scheduling must be a name or a callable H -> matrix, got {type(scheduling).__name__}")

    def get(h: int) -> Tensor:
        if h not in memo:
            memo[h] = validate_matrix(build(h), num_steps, horizon=h)
        return memo[h]

    return get


def _history_length(model: Any, max_history: int | str | None) -> int | None:
    if max_history is None:
        return None
    if max_history == "receptive_field":
        rf = getattr(model, "receptive_field", None)
        if isinstance(rf, bool) or not isinstance(rf, int) or rf < 1:
            raise ValueError(
                "max_history='receptive_field' needs an int attribute model.receptive_field >= 1 "
                f"({type(model).__name__} has {rf!r}); pass an int or None (all history)"
            )
        return rf
    if isinstance(max_history, bool) or not isinstance(max_history, int) or max_history < 0:
        raise ValueError(f"max_history must be None, 'receptive_field' or an int >= 0, got {max_history!r}")
    return max_history


def _resolve_shapes(
    n_tokens: int, token_shape: Sequence[int] | None, batch_size: int | None, context: Tensor | None
) -> tuple[int, int, tuple[int, ...]]:
    """(B, C, token_shape) from the arguments, with errors naming the expected shapes."""
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise ValueError(f"n_tokens must be an int >= 1 (total length, context included), got {n_tokens!r}")
    shape = None if token_shape is None else tuple(int(s) for s in token_shape)
    if context is None:
        if batch_size is None or isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"without context, batch_size must be an int >= 1, got {batch_size!r}")
        if shape is None:
            raise ValueError("without context, token_shape is required (e.g. token_shape=(4,))")
        return batch_size, 0, shape
    if not isinstance(context, Tensor) or context.dim() < 2 or not context.is_floating_point():
        raise ValueError("context must be a float tensor of shape (B, C, *token_shape) of clean tokens")
    b, c = int(context.shape[0]), int(context.shape[1])
    if shape is not None and tuple(context.shape[2:]) != shape:
        raise ValueError(f"context must have shape (B, C, *token_shape) = (B, C, {', '.join(map(str, shape))}), got {tuple(context.shape)}")
    if batch_size is not None and batch_size != b:
        raise ValueError(f"context has batch {b} but batch_size={batch_size}")
    if c > n_tokens:
        raise ValueError(f"context holds {c} tokens, more than n_tokens={n_tokens} (the total length)")
    if not bool(torch.isfinite(context).all()):
        raise ValueError("context holds NaN or inf; clean the observed tokens (or drop those steps) before sampling")
    return b, c, tuple(context.shape[2:])


def sample(
    model: Denoiser,
    sampler: DiffusionForcingSampler,
    *,
    n_tokens: int,
    token_shape: Sequence[int] | None = None,
    batch_size: int | None = None,
    context: Tensor | None = None,
    chunk_size: int | None = 1,
    scheduling: str | Callable[[int], Tensor] = "autoregressive",
    uncertainty_scale: float = 1.0,
    cond: Tensor | None = None,
    max_history: int | str | None = None,
    use_cache: bool = False,
    commit_finished: bool = False,
    generator: torch.Generator | None = None,
    guidance: Guidance | None = None,
    progress: bool | Callable[[int, int], None] = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Generate (B, n_tokens, *token_shape), the first C tokens being ``context`` (B, C, ...) unchanged.

    Tokens are produced ``chunk_size`` at a time (None = all remaining at once), each chunk denoised from
    white noise along its scheduling matrix (``autoregressive | pyramid | full_sequence | trapezoid`` or a
    callable H -> matrix) while every earlier token sits at level -1 and is shown at the stabilization level.

    * Uncached (``use_cache=False``): every call feeds the last ``max_history`` finished tokens plus the
      chunk (None = all history; ``"receptive_field"`` = ``model.receptive_field`` tokens, exact for a
      banded-causal, relative-position model). A sliding window beyond the trained length.
    * Cached (``use_cache=True``): finished tokens are committed once into ``model.new_cache(B)``, in the
      first call of the next chunk, and only the chunk is fed afterwards. Same samples as the uncached path
      with all history (random draws are made in the same order on both paths).
    * ``commit_finished`` (cached only): also commit a chunk's leading tokens as soon as they are finished (level
      -1 in every remaining row of the matrix), so each later call of the chunk feeds only the unfinished tail.
      Exact for a causal model (a finished token and everything before it no longer change), up to float
      summation order; it saves most with long chunks (pyramid plans of a whole episode).

    ``cond`` (B, n_tokens, ...) is sliced along with the tokens; ``guidance`` (e.g. ``RewardGuidance``)
    guides every step, its reward seeing [finished tokens, x0_hat of the fed ones].
    """
    b, c, shape = _resolve_shapes(n_tokens, token_shape, batch_size, context)
    if chunk_size is not None:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise ValueError(f"chunk_size must be an int >= 1 or None (all remaining tokens), got {chunk_size!r}")
        if chunk_size > n_tokens:
            raise ValueError(f"chunk_size={chunk_size} exceeds n_tokens={n_tokens}")
    matrix = _matrix_fn(scheduling, sampler.num_steps, uncertainty_scale)
    if commit_finished and not use_cache:
        raise ValueError("commit_finished commits finished tokens to the model's cache; it needs use_cache=True")
    history = None if use_cache else _history_length(model, max_history)
    if use_cache and max_history is not None:
        _history_length(model, max_history)  # still validate; the cache decides what the model sees
    if device is None:
        device = context.device if context is not None else (generator.device if generator is not None else "cpu")
    device = torch.device(device)
    dtype = dtype if dtype is not None else (context.dtype if context is not None else torch.float32)
    if cond is not None and (not isinstance(cond, Tensor) or cond.dim() < 2 or tuple(cond.shape[:2]) != (b, n_tokens)):
        got = tuple(cond.shape) if isinstance(cond, Tensor) else type(cond).__name__
        raise ValueError(f"cond must have shape (B, n_tokens, ...) = ({b}, {n_tokens}, ...), got {got}")

    clip = sampler.config.clip_noise
    x = torch.empty((b, n_tokens, *shape), device=device, dtype=dtype)  # (B, N, ...)
    if c:
        x[:, :c] = context.to(device=device, dtype=dtype)
    stab: Tensor | None = None  # DDPM: one fixed stabilization noise per token, drawn once
    if sampler.ddpm:
        stab = torch.zeros_like(x)  # (B, N, ...)
        if c:
            stab[:, :c] = clipped_noise((b, c, *shape), clip, generator=generator, device=device, dtype=dtype)
    cache = None
    if use_cache:
        try:
            cache = model.new_cache(b)
        except NotImplementedError as err:
            raise ValueError(f"use_cache=True but {type(model).__name__} has no cache ({err}); use use_cache=False") from err
    report = progress if callable(progress) else (_print_progress if progress else None)

    committed = 0  # tokens held by the cache
    curr = c
    with torch.no_grad():
        while curr < n_tokens:
            h = n_tokens - curr if chunk_size is None else min(chunk_size, n_tokens - curr)
            levels = sampler.index_to_level(matrix(h).to(device))  # (rows, H) real levels
            x[:, curr : curr + h] = clipped_noise((b, h, *shape), clip, generator=generator, device=device, dtype=dtype)
            if stab is not None:
                stab[:, curr : curr + h] = clipped_noise((b, h, *shape), clip, generator=generator, device=device, dtype=dtype)
            # finished[m]: the chunk's leading tokens at level -1 in rows m.. (commit_finished)
            finished = _finished_heads(levels).tolist() if commit_finished else None
            for m in range(levels.shape[0] - 1):
                if use_cache:
                    lo = committed
                    end = curr + (finished[m] if finished is not None else 0)  # tokens final before row m
                    commit = end - committed  # >= 0: the history at a chunk's first row, then finished tokens
                else:
                    lo, commit = (0 if history is None else max(0, curr - history)), 0
                if lo >= curr + h:  # every token of the chunk is finished: nothing left to step in this row
                    continue
                skip = max(0, lo - curr)  # chunk tokens already in the cache
                hist = torch.full((max(0, curr - lo),), -1, dtype=torch.int64, device=device)  # (P,)
                from_levels = torch.cat([hist, levels[m, skip:]]).expand(b, -1)  # (B, P + H - skip)
                to_levels = torch.cat([hist, levels[m + 1, skip:]]).expand(b, -1)  # (B, P + H - skip)
                out = sampler.denoise(
                    model,
                    x[:, lo : curr + h],
                    from_levels,
                    to_levels,
                    None if cond is None else cond[:, lo : curr + h],
                    cache=cache,
                    commit=commit,
                    guidance=guidance,
                    generator=generator,
                    context_noise=None if stab is None else stab[:, lo : curr + h],
                    prefix=None if guidance is None else x[:, :lo],
                )
                first = max(lo, curr)  # the chunk's tokens that this call stepped start here
                x[:, first : curr + h] = out.prev_sample[:, first - lo :]
                if commit:
                    committed = lo + commit
            curr += h
            if report is not None:
                report(curr, n_tokens)
    return x


def _finished_heads(levels: Tensor) -> Tensor:
    """(rows,) int: for each row m of a scheduling matrix of real levels (rows, H), how many leading tokens sit at
    level -1 in row m and every later row (finished for good)."""
    done = torch.flip(torch.cumprod(torch.flip(levels < 0, dims=[0]).to(torch.int64), dim=0), dims=[0])  # (rows, H)
    return torch.cumprod(done, dim=1).sum(dim=1)  # (rows,)


def _print_progress(done: int, total: int) -> None:
    sys.stderr.write(f"\rdforce sample: {done}/{total} tokens")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
