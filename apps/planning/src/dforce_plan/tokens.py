"""Planning tokens (reference §4.4, §5.2): frames [o_{t+1}, a_t] stacked by ``frame_stack``, normalised per dimension.

A plan is a sequence of ``1 + H`` tokens. Token 0 is the *context*: the current observation repeated
``frame_stack`` times with its action slots at normalised zero (the ``main:`` convention, ``padding_mode: same``).
Token j >= 1 holds frames ``[o_{t+1}, a_t]`` for ``t = (j-1) fs .. j fs - 1``, exactly what
``dforce_datasets.maze2d.Maze2dWindows`` returns. Everything here is in normalised units unless a name says
``world``; the constants are the official DF per-dimension ones (``NORMALIZATION``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dforce_backbones import stack_frames, unstack_frames

OBS_DIM = 4
ACT_DIM = 2
FRAME_DIM = OBS_DIM + ACT_DIM


def _normalization_table() -> dict[str, dict[str, tuple[float, ...]]]:
    from dforce_datasets.maze2d.windows import NORMALIZATION

    return NORMALIZATION


@dataclass(frozen=True)
class Normalizer:
    """Per-dimension affine normalisation of observations (x, y, vx, vy) and actions (ax, ay)."""

    obs_mean: tuple[float, ...]
    obs_std: tuple[float, ...]
    act_mean: tuple[float, ...]
    act_std: tuple[float, ...]

    @classmethod
    def for_maze(cls, maze: str) -> Normalizer:
        """The official constants of ``umaze | medium | large`` (Multi2D and eval mazes use their maze's)."""
        table = _normalization_table()
        key = maze.removeprefix("multi-").removeprefix("eval-")
        if key not in table:
            raise ValueError(f"no normalisation constants for maze {maze!r}; known: {sorted(table)}")
        return cls(**table[key])

    def _t(self, values: tuple[float, ...], like: Tensor) -> Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device)

    def norm_obs(self, obs: Tensor) -> Tensor:
        """World observations (..., 4) -> normalised."""
        return (obs - self._t(self.obs_mean, obs)) / self._t(self.obs_std, obs)

    def unnorm_obs(self, obs: Tensor) -> Tensor:
        """Normalised observations (..., 4) -> world units."""
        return obs * self._t(self.obs_std, obs) + self._t(self.obs_mean, obs)

    def norm_pos(self, pos: Tensor) -> Tensor:
        """World positions (..., 2) -> normalised x, y."""
        return (pos - self._t(self.obs_mean[:2], pos)) / self._t(self.obs_std[:2], pos)

    def unnorm_pos(self, pos: Tensor) -> Tensor:
        """Normalised positions (..., 2) -> world x, y."""
        return pos * self._t(self.obs_std[:2], pos) + self._t(self.obs_mean[:2], pos)

    def norm_act(self, act: Tensor) -> Tensor:
        """World actions (..., 2) -> normalised."""
        return (act - self._t(self.act_mean, act)) / self._t(self.act_std, act)

    def unnorm_act(self, act: Tensor) -> Tensor:
        """Normalised actions (..., 2) -> world units (not clipped)."""
        return act * self._t(self.act_std, act) + self._t(self.act_mean, act)


def n_plan_tokens(steps: int, frame_stack: int) -> int:
    """Tokens needed to cover ``steps`` env steps: ceil(steps / fs) (the flexible horizon, reference §3.2)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    return math.ceil(steps / frame_stack)


def pack(obs_next: Tensor, actions: Tensor, frame_stack: int) -> Tensor:
    """Normalised frames o_{t+1} (B, N, 4) and a_t (B, N, 2), N = T*fs -> tokens (B, T, fs*6)."""
    if obs_next.shape[:-1] != actions.shape[:-1] or obs_next.shape[-1] != OBS_DIM or actions.shape[-1] != ACT_DIM:
        raise ValueError(f"pack expects obs (B, N, {OBS_DIM}) and actions (B, N, {ACT_DIM}), "
                         f"got {tuple(obs_next.shape)} and {tuple(actions.shape)}")
    return stack_frames(torch.cat([obs_next, actions], dim=-1), frame_stack)  # (B, T, fs*6)


def unpack(tokens: Tensor, frame_stack: int) -> tuple[Tensor, Tensor]:
    """Tokens (B, T, fs*6) -> normalised o_{t+1} (B, T*fs, 4) and a_t (B, T*fs, 2)."""
    if tokens.dim() != 3 or tokens.shape[-1] != frame_stack * FRAME_DIM:
        raise ValueError(f"unpack expects tokens (B, T, {frame_stack * FRAME_DIM}), got {tuple(tokens.shape)}")
    frames = unstack_frames(tokens, frame_stack)  # (B, T*fs, 6)
    return frames[..., :OBS_DIM], frames[..., OBS_DIM:]


def context_token(obs_norm: Tensor, frame_stack: int, normalizer: Normalizer) -> Tensor:
    """The context token (B, 1, fs*6) of normalised observations (B, 4): obs repeated, actions at norm. zero."""
    if obs_norm.dim() != 2 or obs_norm.shape[-1] != OBS_DIM:
        raise ValueError(f"context_token expects observations (B, {OBS_DIM}), got {tuple(obs_norm.shape)}")
    zero_act = normalizer.norm_act(torch.zeros(obs_norm.shape[0], ACT_DIM, dtype=obs_norm.dtype,
                                               device=obs_norm.device))  # (B, 2)
    frame = torch.cat([obs_norm, zero_act], dim=-1)  # (B, 6)
    return frame[:, None, :].repeat(1, 1, frame_stack)  # (B, 1, fs*6)


def with_context(start_norm: Tensor, tokens: Tensor, frame_stack: int, normalizer: Normalizer) -> Tensor:
    """[context token of start (B, 4), tokens (B, T, fs*6)] -> (B, 1 + T, fs*6)."""
    return torch.cat([context_token(start_norm, frame_stack, normalizer), tokens], dim=1)
