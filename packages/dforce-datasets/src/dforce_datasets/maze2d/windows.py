"""Training windows of a maze2d walk: tokens of (o_{t+1}, a_t) stacked by frame_stack, padded past the end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

# Per-dimension constants of the official DF configs (reference.md section 5.2), for observations and actions.
NORMALIZATION: dict[str, dict[str, tuple[float, ...]]] = {
    "umaze": {"obs_mean": (1.9327888, 2.3744664, 2.0562936e-4, -1.0198415e-3),
              "obs_std": (0.89972174, 0.7093159, 2.2128615, 2.468173),
              "act_mean": (0.00153824, 0.00433588), "act_std": (0.7043469, 0.7506248)},
    "medium": {"obs_mean": (3.5092521, 3.4765592, 4.1014933e-5, 3.8480070e-5),
               "obs_std": (1.3371079, 1.52102, 2.3407657, 2.3693702),
               "act_mean": (0.00123821, 0.00124745), "act_std": (0.73977315, 0.7459419)},
    "large": {"obs_mean": (3.7296331, 5.3047247, 4.7289828e-5, 2.9168357e-5),
              "obs_std": (1.8070312, 2.5687592, 2.4368455, 2.6493697),
              "act_mean": (0.00100675, 0.00078245), "act_std": (0.72493, 0.7394606)},
}


@dataclass(frozen=True)
class WindowConfig:
    """Window geometry: n_tokens tokens of frame_stack steps each, start offsets every `stride` steps."""

    n_tokens: int = 30
    frame_stack: int = 10
    stride: int = 1
    min_valid_tokens: int = 1  # a window must hold at least this many fully real tokens
    random_horizon: bool = False  # also truncate at a random token in [2, n_tokens] (flexible horizon training)
    seed: int = 0  # for random_horizon: the truncation of window i is a function of (seed, i)

    def __post_init__(self):
        for name in ("n_tokens", "frame_stack", "stride", "min_valid_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.min_valid_tokens > self.n_tokens:
            raise ValueError("min_valid_tokens must be <= n_tokens")


class Maze2dWindows(Dataset):
    """Windows of a flat maze2d buffer (episode boundaries ignored, as DF and Diffuser do).

    Item i starts at step t0 = i * stride and returns ``start`` = o_{t0} (obs_dim,), ``tokens``
    (n_tokens, frame_stack * (obs_dim + act_dim)) whose frame j is [o_{t0+j+1}, a_{t0+j}] (frames concatenated on
    the channel axis), ``frame_valid`` (n_tokens * frame_stack,) and ``valid`` (n_tokens,). Frames past the end of
    the data (or past a random horizon) are zeros with valid False: the model holds them at full noise.
    """

    def __init__(self, dataset: dict[str, np.ndarray], config: WindowConfig | None = None,
                 normalization: dict[str, tuple[float, ...]] | str | None = None):
        self.config = config or WindowConfig()
        obs = np.asarray(dataset["observations"], dtype=np.float32)
        act = np.asarray(dataset["actions"], dtype=np.float32)
        if obs.ndim != 2 or act.ndim != 2 or len(obs) != len(act):
            raise ValueError(f"observations (N, D) and actions (N, A) of equal length expected, got {obs.shape} "
                             f"and {act.shape}")
        if isinstance(normalization, str):
            if normalization not in NORMALIZATION:
                raise ValueError(f"unknown normalization {normalization!r}; known: {sorted(NORMALIZATION)}")
            normalization = NORMALIZATION[normalization]
        if normalization is not None:
            obs = (obs - np.asarray(normalization["obs_mean"], np.float32)) / np.asarray(normalization["obs_std"],
                                                                                          np.float32)
            act = (act - np.asarray(normalization["act_mean"], np.float32)) / np.asarray(normalization["act_std"],
                                                                                          np.float32)
        self.obs, self.act = obs, act
        self.frame_dim = obs.shape[1] + act.shape[1]
        cfg = self.config
        n_frames = cfg.n_tokens * cfg.frame_stack
        # last start with min_valid_tokens complete tokens: t0 + min_valid_tokens * fs <= N - 1
        last = len(obs) - 1 - cfg.min_valid_tokens * cfg.frame_stack
        if last < 0:
            raise ValueError(f"dataset of {len(obs)} steps is too short for {cfg.min_valid_tokens} token(s) of "
                             f"{cfg.frame_stack} frames")
        self._n = last // cfg.stride + 1
        self._n_frames = n_frames
        self._pairs: np.ndarray | None = None

    def __len__(self) -> int:
        return self._n

    def _real_frames(self, index: int) -> int:
        """Real (unpadded) frames of window ``index``: up to the data's end and, if enabled, a random horizon."""
        cfg = self.config
        real = min(self._n_frames, len(self.obs) - 1 - index * cfg.stride)  # frames whose next observation exists
        if cfg.random_horizon:
            rng = np.random.default_rng([cfg.seed, index])
            horizon = int(rng.integers(2, cfg.n_tokens + 1)) if cfg.n_tokens >= 2 else 1
            real = min(real, horizon * cfg.frame_stack)
        return real

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self._n <= index < self._n:
            raise IndexError(f"window {index} out of range for {self._n} windows")
        return {k: v[0] for k, v in self.batch([index]).items()}  # one gather path for items and batches

    def batch(self, indices) -> dict[str, torch.Tensor]:
        """The items ``indices`` stacked (each key gains a leading batch axis), gathered in one vectorised pass."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)  # (B,)
        if idx.size and (idx.min() < -self._n or idx.max() >= self._n):
            raise IndexError(f"window indices must lie in [-{self._n}, {self._n}), got {idx.min()}..{idx.max()}")
        idx = idx % self._n
        cfg = self.config
        t0 = idx * cfg.stride  # (B,)
        if cfg.random_horizon:
            real = np.array([self._real_frames(int(i)) for i in idx], dtype=np.int64)  # (B,)
        else:
            real = np.minimum(self._n_frames, len(self.obs) - 1 - t0)  # (B,)
        j = np.arange(self._n_frames)  # (F,)
        frame_valid = j[None, :] < real[:, None]  # (B, F)
        if self._pairs is None:  # row t = [o_{t+1}, a_t], built on first use
            self._pairs = np.concatenate([self.obs[1:], self.act[:-1]], axis=1)  # (N - 1, obs + act)
        rows = np.minimum(t0[:, None] + j, len(self._pairs) - 1)  # (B, F)
        frames = np.take(self._pairs, rows, axis=0)  # (B, F, obs + act)
        if not frame_valid.all():
            frames *= frame_valid[..., None]
        tokens = frames.reshape(len(idx), cfg.n_tokens, cfg.frame_stack * self.frame_dim)  # (B, T, fs * frame)
        valid = frame_valid.reshape(len(idx), cfg.n_tokens, cfg.frame_stack).all(axis=2)  # (B, T)
        return {"start": torch.from_numpy(self.obs[t0]), "tokens": torch.from_numpy(tokens),
                "frame_valid": torch.from_numpy(frame_valid), "valid": torch.from_numpy(valid)}
