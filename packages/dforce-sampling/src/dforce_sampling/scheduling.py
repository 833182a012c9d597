"""Scheduling matrices in DDIM-index space (reference §2.2): row m gives each chunk token's index at step m.

Entries are integers in ``0 .. S``: ``S`` = fully noisy (white noise), ``0`` = clean. Every matrix has
shape (rows, H) int64, its first row all ``S``, its last row all ``0``, and no column ever increases. The
sampler goes from row ``m`` to row ``m + 1``; a token whose entry does not change is copied unchanged, so
tokens that have not started yet are held at white noise (paper App. B.5; reference §8 item 12).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "SCHEDULING_MATRICES",
    "autoregressive",
    "full_sequence",
    "pyramid",
    "scheduling_matrix",
    "trapezoid",
    "validate_matrix",
]


def _check_sizes(horizon: int, num_steps: int) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"horizon H (tokens in the chunk) must be an int >= 1, got {horizon!r}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps S (sampling steps) must be an int >= 1, got {num_steps!r}")


def _check_scale(uncertainty_scale: float) -> float:
    u = float(uncertainty_scale)
    if not u >= 0.0 or u == float("inf"):
        raise ValueError(f"uncertainty_scale must be a finite number >= 0, got {uncertainty_scale!r}")
    return u


def _staggered(offsets: list[int], num_steps: int) -> Tensor:
    """M[m, t] = clip(S + offsets[t] - m, 0, S), with exactly enough rows for the last row to be all 0."""
    offset = torch.tensor(offsets, dtype=torch.int64)  # (H,)
    rows = num_steps + int(offset.max()) + 1
    m = torch.arange(rows, dtype=torch.int64)[:, None]  # (rows, 1)
    return (num_steps + offset[None, :] - m).clamp(0, num_steps)  # (rows, H)


def pyramid(horizon: int, num_steps: int, uncertainty_scale: float = 1.0) -> Tensor:
    """Pyramid / zig-zag (paper §3.3, Eq. B.1): M[m, t] = clip(S + int(t u) - m, 0, S), S + int((H-1)u) + 1 rows."""
    _check_sizes(horizon, num_steps)
    u = _check_scale(uncertainty_scale)
    return _staggered([int(t * u) for t in range(horizon)], num_steps)  # (S + int((H-1)u) + 1, H)


def autoregressive(horizon: int, num_steps: int) -> Tensor:
    """Token t starts only once token t-1 is clean: the pyramid with u = S (H*S + 1 rows; reference §2.2)."""
    _check_sizes(horizon, num_steps)
    return pyramid(horizon, num_steps, float(num_steps))  # (H*S + 1, H)


def full_sequence(horizon: int, num_steps: int) -> Tensor:
    """All tokens denoised synchronously, S -> 0 (full-sequence diffusion; reference §2.2)."""
    _check_sizes(horizon, num_steps)
    return torch.arange(num_steps, -1, -1, dtype=torch.int64)[:, None].repeat(1, horizon)  # (S+1, H)


def trapezoid(horizon: int, num_steps: int, uncertainty_scale: float = 1.0) -> Tensor:
    """Both ends first, the middle last: M[m, t] = clip(S + int(min(t, H-1-t) u) - m, 0, S).

    Symmetric, unlike the official code whose last column copies column 1, and it always ends on an all-0
    row, also for fractional u (reference §8 item 13).
    """
    _check_sizes(horizon, num_steps)
    u = _check_scale(uncertainty_scale)
    return _staggered([int(min(t, horizon - 1 - t) * u) for t in range(horizon)], num_steps)  # (rows, H)


SCHEDULING_MATRICES: dict[str, Callable[..., Tensor]] = {
    "autoregressive": autoregressive,
    "pyramid": pyramid,
    "full_sequence": full_sequence,
    "trapezoid": trapezoid,
}

_TAKES_SCALE = ("pyramid", "trapezoid")


def scheduling_matrix(name: str, horizon: int, num_steps: int, **kwargs: float) -> Tensor:
    """The named scheduling matrix (rows, H) int64; ``uncertainty_scale`` only for pyramid and trapezoid."""
    if name not in SCHEDULING_MATRICES:
        raise ValueError(f"unknown scheduling matrix {name!r}; choose one of {sorted(SCHEDULING_MATRICES)}")
    unknown = set(kwargs) - ({"uncertainty_scale"} if name in _TAKES_SCALE else set())
    if unknown:
        raise ValueError(
            f"scheduling matrix {name!r} takes no options {sorted(unknown)}"
            + (" (uncertainty_scale applies to pyramid and trapezoid only)" if "uncertainty_scale" in unknown else "")
        )
    return SCHEDULING_MATRICES[name](horizon, num_steps, **kwargs)


def validate_matrix(matrix: Tensor, num_steps: int, horizon: int | None = None) -> Tensor:
    """Check a (user) scheduling matrix and return it as a contiguous (rows, H) int64 tensor.

    Requirements: 2-D integer, at least two rows, values in 0..S, first row all S (white noise), last row
    all 0 (clean), and no column increases from one row to the next (noise is only ever removed).
    """
    m = torch.as_tensor(matrix)
    if m.dtype.is_floating_point or m.dtype.is_complex or m.dtype == torch.bool:
        raise ValueError(f"scheduling matrix must hold integers (DDIM indices 0..S), got dtype {m.dtype}")
    if m.dim() != 2 or m.shape[0] < 2 or m.shape[1] < 1:
        raise ValueError(f"scheduling matrix must have shape (rows >= 2, H >= 1), got {tuple(m.shape)}")
    if horizon is not None and m.shape[1] != horizon:
        raise ValueError(f"scheduling matrix must have H = {horizon} columns (one per chunk token), got {m.shape[1]}")
    m = m.to(dtype=torch.int64, device="cpu").contiguous()
    if int(m.min()) < 0 or int(m.max()) > num_steps:
        raise ValueError(
            f"scheduling matrix entries must lie in 0..S = 0..{num_steps} (S = noisy, 0 = clean), "
            f"got range [{int(m.min())}, {int(m.max())}]"
        )
    if not bool((m[0] == num_steps).all()):
        raise ValueError(f"the first row of a scheduling matrix must be all S = {num_steps} (white noise), got {m[0].tolist()}")
    if not bool((m[-1] == 0).all()):
        raise ValueError(f"the last row of a scheduling matrix must be all 0 (clean), got {m[-1].tolist()}")
    rises = (m[1:] > m[:-1]).nonzero()
    if rises.numel():
        row, col = (int(v) for v in rises[0])
        raise ValueError(
            f"scheduling matrix column {col} increases from row {row} to row {row + 1} "
            f"({int(m[row, col])} -> {int(m[row + 1, col])}); noise may only be removed"
        )
    return m
