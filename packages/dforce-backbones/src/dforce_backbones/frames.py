"""Frame stacking: consecutive frames concatenated on the channel axis form one token (reference §1.7)."""

from __future__ import annotations

from einops import rearrange
from torch import Tensor

__all__ = ["stack_frames", "unstack_frames"]


def _check_fs(fs: int, name: str) -> None:
    if isinstance(fs, bool) or not isinstance(fs, int) or fs < 1:
        raise ValueError(f"{name}: frame stack fs must be a positive int, got {fs!r}")


def stack_frames(x: Tensor, fs: int) -> Tensor:
    """(B, T*fs, C, ...) -> (B, T, fs*C, ...): concatenate each run of ``fs`` frames on the channel axis."""
    _check_fs(fs, "stack_frames")
    if x.dim() < 3:
        raise ValueError(f"stack_frames: x must be (B, T*fs, C, ...), got shape {tuple(x.shape)}")
    if x.shape[1] % fs:
        raise ValueError(
            f"stack_frames: number of frames {x.shape[1]} is not divisible by fs={fs}; "
            "trim or pad the sequence to a multiple of fs"
        )
    return rearrange(x, "b (t fs) c ... -> b t (fs c) ...", fs=fs)  # (B, T, fs*C, ...)


def unstack_frames(x: Tensor, fs: int) -> Tensor:
    """(B, T, fs*C, ...) -> (B, T*fs, C, ...): inverse of ``stack_frames``."""
    _check_fs(fs, "unstack_frames")
    if x.dim() < 3:
        raise ValueError(f"unstack_frames: x must be (B, T, fs*C, ...), got shape {tuple(x.shape)}")
    if x.shape[2] % fs:
        raise ValueError(f"unstack_frames: channel axis {x.shape[2]} is not divisible by fs={fs}")
    return rearrange(x, "b t (fs c) ... -> b (t fs) c ...", fs=fs)  # (B, T*fs, C, ...)
