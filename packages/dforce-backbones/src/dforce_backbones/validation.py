"""Shape and dtype checks shared by the backbones' entry points (denoiser protocol, ARCHITECTURE.md)."""

from __future__ import annotations

from torch import Tensor

__all__ = ["check_commit", "check_denoiser_inputs"]


def check_denoiser_inputs(
    x: Tensor,
    noise_levels: Tensor,
    cond: Tensor | None,
    token_shape: tuple[int, ...],
    cond_dim: int,
    name: str,
) -> tuple[int, int]:
    """Check x (B, T, *token_shape), noise_levels (B, T) integer, cond (B, T, cond_dim); return (B, T)."""
    expected_x = "(B, T, " + ", ".join(str(s) for s in token_shape) + ")"
    if x.dim() != 2 + len(token_shape) or tuple(x.shape[2:]) != tuple(token_shape):
        raise ValueError(f"{name}: x must have shape {expected_x}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: x must be a floating-point tensor, got dtype {x.dtype}")
    B, T = int(x.shape[0]), int(x.shape[1])
    if T < 1:
        raise ValueError(f"{name}: x must hold at least one token (T >= 1), got T={T}")
    if tuple(noise_levels.shape) != (B, T):
        raise ValueError(
            f"{name}: noise_levels must have shape (B, T) = ({B}, {T}), got {tuple(noise_levels.shape)}"
        )
    if noise_levels.is_floating_point() or noise_levels.is_complex() or not noise_levels.dtype.is_signed:
        # unsigned types (uint8) cannot hold -1 ("clean"); bool is not a level
        raise ValueError(
            f"{name}: noise_levels must be a signed integer tensor (int64), got dtype {noise_levels.dtype}"
        )
    if cond_dim > 0:
        if cond is None:
            raise ValueError(
                f"{name}: this model was built with cond_dim={cond_dim}; "
                f"pass cond of shape (B, T, {cond_dim})"
            )
        if tuple(cond.shape) != (B, T, cond_dim):
            raise ValueError(
                f"{name}: cond must have shape (B, T, cond_dim) = ({B}, {T}, {cond_dim}), "
                f"got {tuple(cond.shape)}"
            )
        if not cond.is_floating_point():
            raise ValueError(f"{name}: cond must be a floating-point tensor, got dtype {cond.dtype}")
    elif cond is not None:
        raise ValueError(
            f"{name}: got cond but the model was built with cond_dim=0; set cond_dim in the config"
        )
    return B, T


def check_commit(commit: int, T: int, has_cache: bool, name: str) -> None:
    """Validate ``commit``: an int in [0, T], and non-zero only together with a cache."""
    if isinstance(commit, bool) or not isinstance(commit, int):
        raise ValueError(f"{name}: commit must be an int, got {type(commit).__name__}")
    if not 0 <= commit <= T:
        raise ValueError(f"{name}: commit must be in [0, T] = [0, {T}], got {commit}")
    if commit and not has_cache:
        raise ValueError(f"{name}: commit={commit} needs a cache; pass cache=model.new_cache(batch_size)")
