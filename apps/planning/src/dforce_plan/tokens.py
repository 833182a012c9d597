"""Planning tokens (reference §4.4, §5.2): frames [o_{t+1}, a_t] stacked by ``frame_stack``, normalised per dimension.

A plan is a sequence of ``1 + H`` tokens. Token 0 is the *context*: the current observation repeated
``frame_stack`` times with its action slots at normalised zero (the ``main:`` convention, ``padding_mode: same``).
Token j >= 1 holds frames ``[o_{t+1}, a_t]`` for ``t = (j-1) fs .. j fs - 1``, exactly what
``dforce_datasets.maze2d.Maze2dWindows`` returns. Everything here is in normalised units unless a name says
``world``; the constants are the official DF per-dimension ones (``NORMALIZATION``).

A model's ``channels`` say which parts of a frame its tokens hold: ``"full"`` = ``[o_{t+1}, a_t]`` (6 per frame,
the paper's diffused actions), ``"pos"`` = the position ``(x, y)`` of ``o_{t+1}`` only (2 per frame: the ``main:``
README's v1.5 maze recipe, which a PD controller follows; reference §5.2).
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
POS_DIM = 2
CHANNELS = ("full", "pos")


def frame_dim(channels: str) -> int:
    """Features per frame of a token layout: 6 for ``"full"`` ([o, a]), 2 for ``"pos"`` ((x, y))."""
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, got {channels!r}")
    return FRAME_DIM if channels == "full" else POS_DIM


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


def unpack(tokens: Tensor, frame_stack: int, channels: str = "full") -> tuple[Tensor, Tensor | None]:
    """Tokens (B, T, fs*6) -> normalised o_{t+1} (B, T*fs, 4) and a_t (B, T*fs, 2).

    With ``channels="pos"``: tokens (B, T, fs*2) -> normalised positions (B, T*fs, 2) and None (no actions).
    """
    dim = frame_dim(channels)
    if tokens.dim() != 3 or tokens.shape[-1] != frame_stack * dim:
        raise ValueError(f"unpack expects {channels!r} tokens (B, T, {frame_stack * dim}), got {tuple(tokens.shape)}")
    frames = unstack_frames(tokens, frame_stack)  # (B, T*fs, dim)
    if channels == "pos":
        return frames, None
    return frames[..., :OBS_DIM], frames[..., OBS_DIM:]


def select_channels(tokens: Tensor, frame_stack: int, channels: str) -> Tensor:
    """Full tokens (B, T, fs*6) -> the layout ``channels`` keeps: the same tokens, or positions (B, T, fs*2)."""
    if frame_dim(channels) == FRAME_DIM:
        return tokens
    obs, _ = unpack(tokens, frame_stack)  # (B, T*fs, 4)
    return stack_frames(obs[..., :POS_DIM].contiguous(), frame_stack)  # (B, T, fs*2)


def context_token(obs_norm: Tensor, frame_stack: int, normalizer: Normalizer, channels: str = "full") -> Tensor:
    """The context token (B, 1, fs*6) of normalised observations (B, 4): obs repeated, actions at norm. zero.

    With ``channels="pos"``: the position repeated, (B, 1, fs*2).
    """
    if obs_norm.dim() != 2 or obs_norm.shape[-1] != OBS_DIM:
        raise ValueError(f"context_token expects observations (B, {OBS_DIM}), got {tuple(obs_norm.shape)}")
    if frame_dim(channels) == POS_DIM:
        return obs_norm[:, None, :POS_DIM].repeat(1, 1, frame_stack)  # (B, 1, fs*2)
    zero_act = normalizer.norm_act(torch.zeros(obs_norm.shape[0], ACT_DIM, dtype=obs_norm.dtype,
                                               device=obs_norm.device))  # (B, 2)
    frame = torch.cat([obs_norm, zero_act], dim=-1)  # (B, 6)
    return frame[:, None, :].repeat(1, 1, frame_stack)  # (B, 1, fs*6)


def with_context(start_norm: Tensor, tokens: Tensor, frame_stack: int, normalizer: Normalizer,
                 channels: str = "full") -> Tensor:
    """[context token of start (B, 4), full tokens (B, T, fs*6)] -> (B, 1 + T, fs * frame_dim(channels))."""
    return torch.cat([context_token(start_norm, frame_stack, normalizer, channels),
                      select_channels(tokens, frame_stack, channels)], dim=1)
