"""The paper's recurrent denoiser (Chen et al. 2024 §3.2, B.2; TransitionMlp, ref. §4.1)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dforce_backbones.embeddings import LevelEmbedding
from dforce_backbones.validation import check_commit, check_denoiser_inputs

__all__ = ["RecurrentCache", "RecurrentDenoiser", "RecurrentDenoiserConfig", "ResBlock"]


@dataclass
class RecurrentDenoiserConfig:
    """Hyper-parameters of ``RecurrentDenoiser`` (reference §4.1 ``TransitionMlp``).

    The MLP hidden width is ``network_size * hidden_mult`` (32 in the paper) and the level embedding width
    is ``network_size``. ``init_encoder_dim=0`` gives a learnable z_0; ``> 0`` an MLP encoder from an initial
    observation of that size (the maze model). ``num_gru_layers=0`` drops the GRU stack.
    """

    token_shape: tuple[int, ...]
    z_dim: int = 128
    network_size: int = 32
    num_mlp_layers: int = 4
    num_gru_layers: int = 1
    cond_dim: int = 0
    init_encoder_dim: int = 0
    hidden_mult: int = 32

    def __post_init__(self) -> None:
        self.token_shape = tuple(int(s) for s in self.token_shape)
        if len(self.token_shape) == 0 or any(s < 1 for s in self.token_shape):
            raise ValueError(
                f"token_shape must be a non-empty tuple of positive ints, got {self.token_shape}"
            )
        if self.z_dim < 1 or self.network_size < 2 or self.hidden_mult < 1:
            raise ValueError(
                f"need z_dim >= 1, network_size >= 2 and hidden_mult >= 1, got "
                f"{self.z_dim}, {self.network_size}, {self.hidden_mult}"
            )
        if self.num_mlp_layers < 1:
            raise ValueError(f"num_mlp_layers must be >= 1, got {self.num_mlp_layers}")
        if self.num_gru_layers < 0:
            raise ValueError(f"num_gru_layers must be >= 0 (0 = no GRU), got {self.num_gru_layers}")
        if self.num_gru_layers and self.z_dim % self.num_gru_layers:
            raise ValueError(
                f"z_dim={self.z_dim} must be divisible by num_gru_layers={self.num_gru_layers} "
                "(z is split into one hidden state per GRU)"
            )
        if self.cond_dim < 0:
            raise ValueError(f"cond_dim must be >= 0 (0 = no conditioning), got {self.cond_dim}")
        if self.init_encoder_dim < 0:
            raise ValueError(f"init_encoder_dim must be >= 0 (0 = learnable z0), got {self.init_encoder_dim}")

    @property
    def token_dim(self) -> int:
        """Number of features of one flattened token, ``prod(token_shape)``."""
        return math.prod(self.token_shape)


@dataclass
class RecurrentCache:
    """Rollout state of a ``RecurrentDenoiser``: the latent z after the ``length`` committed tokens."""

    z: Tensor
    length: int = 0

    @property
    def batch_size(self) -> int:
        """Number of rollouts in the cache."""
        return int(self.z.shape[0])

    def clone(self) -> RecurrentCache:
        """An independent copy (e.g. to branch a rollout)."""
        return RecurrentCache(z=self.z.clone(), length=self.length)

    def repeat_interleave(self, repeats: int) -> RecurrentCache:
        """A copy with every rollout repeated ``repeats`` times along the batch axis."""
        return RecurrentCache(z=self.z.repeat_interleave(repeats, dim=0), length=self.length)


class ResBlock(nn.Module):
    """Residual MLP block (the paper's ResBlock1d): ``skip(x) + W2 SiLU(W1 LN(x))``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)
        self.skip: nn.Module = nn.Identity() if in_dim == out_dim else nn.Linear(in_dim, out_dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        return self.skip(x) + self.fc2(F.silu(self.fc1(self.norm(x))))  # (..., out_dim)


def _mlp_stack(in_dim: int, hidden: int, out_dim: int, n_layers: int) -> nn.Sequential:
    """ResBlock(in->hidden) + (n-2) x ResBlock(hidden) + Linear(hidden->out); ResBlock(in->out) if n=1."""
    if n_layers == 1:
        return nn.Sequential(ResBlock(in_dim, out_dim))
    layers: list[nn.Module] = [ResBlock(in_dim, hidden)]
    layers += [ResBlock(hidden, hidden) for _ in range(n_layers - 2)]
    layers.append(nn.Linear(hidden, out_dim))
    return nn.Sequential(*layers)


class RecurrentDenoiser(nn.Module):
    """Diffusion Forcing RNN (Chen et al. 2024 §3.2): z_t = f(z_{t-1}, x_t^{k_t}, k_t, c_t), out_t = W z_t.

    f = MLP of ResBlocks on concat(z_{t-1}, x_t, emb(k_t), c_t) -> stacked GRUCells whose hidden states are
    the chunks of z_{t-1} -> mirrored MLP -> z_t. Implements the denoiser protocol of ARCHITECTURE.md; the
    cache holds the latent z. Causal by construction. Gradients flow through a cached z (detach it yourself
    for truncated BPTT; under ``torch.no_grad`` sampling this does not matter).
    """

    def __init__(self, config: RecurrentDenoiserConfig) -> None:
        super().__init__()
        self.config = config
        cfg = config
        self.token_dim = cfg.token_dim
        hidden = cfg.network_size * cfg.hidden_mult
        self.level_embed = LevelEmbedding(cfg.network_size, freq_dim=cfg.network_size)
        in_dim = cfg.z_dim + self.token_dim + cfg.network_size + cfg.cond_dim
        self.pre_mlp = _mlp_stack(in_dim, hidden, cfg.z_dim, cfg.num_mlp_layers)
        g = cfg.num_gru_layers
        gru_dim = cfg.z_dim // g if g else 0
        self.grus = nn.ModuleList(nn.GRUCell(cfg.z_dim if i == 0 else gru_dim, gru_dim) for i in range(g))
        self.post_mlp = _mlp_stack(cfg.z_dim, hidden, cfg.z_dim, cfg.num_mlp_layers)
        self.x_from_z = nn.Linear(cfg.z_dim, self.token_dim)
        if cfg.init_encoder_dim > 0:
            self.register_parameter("z0", None)
            self.init_encoder: nn.Module | None = nn.Sequential(
                nn.Linear(cfg.init_encoder_dim, cfg.z_dim),
                nn.ELU(),
                nn.Linear(cfg.z_dim, cfg.z_dim),
                nn.ELU(),
                nn.Linear(cfg.z_dim, cfg.z_dim),
            )
        else:
            self.z0 = nn.Parameter(torch.randn(cfg.z_dim) * 0.02)
            self.init_encoder = None

    def initial_latent(self, batch_size: int, init_obs: Tensor | None = None) -> Tensor:
        """z_0 (B, z_dim): the learnable z0, or ``init_encoder(init_obs)``, init_obs (B, init_encoder_dim)."""
        cfg = self.config
        if self.init_encoder is None:
            if init_obs is not None:
                raise ValueError("RecurrentDenoiser: init_obs given but init_encoder_dim=0 (learnable z0)")
            return self.z0.unsqueeze(0).expand(batch_size, -1)  # (B, Z)
        if init_obs is None or tuple(init_obs.shape) != (batch_size, cfg.init_encoder_dim):
            got = None if init_obs is None else tuple(init_obs.shape)
            raise ValueError(
                f"RecurrentDenoiser: init_obs of shape (B, init_encoder_dim) = ({batch_size}, "
                f"{cfg.init_encoder_dim}) is required by the init encoder, got {got}"
            )
        return self.init_encoder(init_obs)  # (B, Z)

    def new_cache(self, batch_size: int, init_obs: Tensor | None = None) -> RecurrentCache:
        """A rollout state holding z_0 for ``batch_size`` rollouts (init_obs iff init_encoder_dim > 0)."""
        if batch_size < 1:
            raise ValueError(f"new_cache: batch_size must be >= 1, got {batch_size}")
        return RecurrentCache(z=self.initial_latent(batch_size, init_obs))

    def step(self, z: Tensor, inp: Tensor) -> Tensor:
        """One transition z_{t-1} (B, Z), inp_t = [x_t, emb(k_t), c_t] (B, I) -> z_t (B, Z)."""
        h = self.pre_mlp(torch.cat([z, inp], dim=-1))  # (B, Z)
        if len(self.grus):
            outs = []
            for gru, hz in zip(self.grus, z.chunk(len(self.grus), dim=-1), strict=True):
                h = gru(h, hz)  # (B, Z/g)
                outs.append(h)
            h = torch.cat(outs, dim=-1)  # (B, Z)
        return self.post_mlp(h)  # (B, Z)

    def forward(
        self,
        x: Tensor,
        noise_levels: Tensor,
        cond: Tensor | None = None,
        *,
        cache: RecurrentCache | None = None,
        commit: int = 0,
        init_obs: Tensor | None = None,
    ) -> Tensor:
        """Run the recurrence over x (B, T, *token_shape) at levels (B, T), from cache.z or z_0."""
        cfg = self.config
        B, T = check_denoiser_inputs(
            x, noise_levels, cond, cfg.token_shape, cfg.cond_dim, "RecurrentDenoiser"
        )
        check_commit(commit, T, cache is not None, "RecurrentDenoiser")
        if cache is not None:
            if init_obs is not None:
                raise ValueError("RecurrentDenoiser: pass init_obs to new_cache, not together with a cache")
            if cache.batch_size != B:
                raise ValueError(
                    f"RecurrentDenoiser: cache is for batch {cache.batch_size}, got x with batch {B}"
                )
            z = cache.z  # (B, Z)
        else:
            z = self.initial_latent(B, init_obs)  # (B, Z)

        parts = [x.reshape(B, T, self.token_dim), self.level_embed(noise_levels)]  # (B, T, X), (B, T, E)
        if cond is not None:
            parts.append(cond)  # (B, T, C)
        inp = torch.cat(parts, dim=-1)  # (B, T, X+E+C)
        zs = []
        for t in range(T):  # BPTT over time
            z = self.step(z, inp[:, t])  # (B, Z)
            zs.append(z)
        z_seq = torch.stack(zs, dim=1)  # (B, T, Z)
        if cache is not None and commit > 0:
            cache.z = zs[commit - 1]  # (B, Z)
            cache.length += commit
        out = self.x_from_z(z_seq)  # (B, T, X)
        return out.reshape(B, T, *cfg.token_shape)  # (B, T, *token_shape)
