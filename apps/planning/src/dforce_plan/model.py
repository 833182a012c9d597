"""The planning model and its training: a causal network over context + plan tokens, trained with dforce_train.

The network is ``dforce_backbones.CausalTransformer`` (``backbone="transformer"``, the default; the Diffuser-style
baseline is the same transformer without the causal mask) or the paper's recurrent model
``dforce_backbones.RecurrentDenoiser`` (``backbone="rnn"``: the ``paper:`` branch behind Table 1, reference §4.1:
MLP of ResBlocks + GRU latent, z 128, hidden ``network_size * 32``), which reads the same tokens one at a time.

``ModelSpec`` says what is trained: the Diffusion Forcing planner (causal, per-token ``diffusion_forcing``
levels, reference §5.2) or the Diffuser-style baseline (non-causal, one ``full_sequence`` level per window).
Both see ``1 + n_tokens`` tokens: the context token of the window's first observation, then the window's
``(o_{t+1}, a_t)`` tokens stacked by ``frame_stack`` (``tokens.py``). Frames past the end of the data (and,
with ``random_horizon``, past a random horizon) are padding, trained at full noise with 5% weight.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dforce_backbones import CausalTransformer, CausalTransformerConfig, RecurrentDenoiser, RecurrentDenoiserConfig
from dforce_core import DiffusionConfig, DiffusionLoss
from dforce_train import (
    EMA,
    StepContext,
    TrainConfig,
    Trainer,
    array_fingerprint,
    load_checkpoint,
    prefetch,
    resolve_checkpoint,
)

from .tokens import CHANNELS, OBS_DIM, POS_DIM, Normalizer, frame_dim, with_context

KINDS = ("df", "diffuser")
# min_snr: min(snr, 5) for pred_x0 (the authors' main: v1.5 code, our default); constant: one weight for every level,
# as the paper: branch behind Table 1 trains its maze RNN (2.5 x 10 there; here 5.0 = min-SNR's clean-level weight)
LOSS_WEIGHTINGS = ("min_snr", "constant")
BACKBONES = ("transformer", "rnn")
CONSTANT_WEIGHT = 5.0


@dataclass
class ModelSpec:
    """Architecture, diffusion process and data geometry of a planning model (saved with the checkpoint)."""

    maze: str = "umaze"  # normalisation constants (umaze | medium | large)
    kind: str = "df"  # df: causal + diffusion_forcing levels; diffuser: non-causal + full_sequence levels
    frame_stack: int = 10
    n_tokens: int = 30  # plan tokens per training window (context excluded): the longest plan, in tokens
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    mlp_ratio: float = 4.0
    objective: str = "pred_x0"  # reference §5.2 (both branches)
    beta_schedule: str = "linear"  # reference §5.2 (both branches)
    loss_weighting: str = "min_snr"
    first_token_known_prob: float = 0.5  # DF: the context token is often nearly clean (reference §1.3)
    random_horizon: bool = False  # also pad at a random horizon (flexible horizon; a causal model needs no such)
    backbone: str = "transformer"  # transformer | rnn (the paper's recurrent model; DF only)
    z_dim: int = 128  # rnn: latent size (paper maze: 128)
    network_size: int = 16  # rnn: MLP width / 32 and level-embedding width (paper yaml 32; "16 for medium/umaze")
    num_mlp_layers: int = 4  # rnn: ResBlock layers before and after the GRU (paper maze: 4)
    num_gru_layers: int = 1  # rnn (paper maze: 1)
    # the std that divides actions (ax, ay); None = the official constants (about 0.7). The authors' issue #2 trains
    # with [2, 2]: smaller normalised actions, hidden by noise sooner (the idea: the model derives them from positions)
    action_std: list[float] | None = None
    # the std that divides observations (x, y, vx, vy); None = the official constants. The main: README's diffused-
    # action recipe divides positions by twice the official std and velocities by 8 (medium: [2.67, 3.04, 8, 8]), so
    # the loss weighs the positions (the corridors) most; position-only models use the first two values
    obs_std: list[float] | None = None
    # what a frame holds: "full" = [o_{t+1}, a_t] (the paper's diffused actions); "pos" = (x, y) only (the main:
    # README's v1.5 recipe: no velocities, no actions; a PD controller follows the plan)
    channels: str = "full"
    # diffuser only: trained as Diffuser's p_losses, the window's start (context token) and final state (the last
    # frame's observation) written clean into the noisy input and the output (apply_conditioning), as at sampling.
    # Checkpoints written before this field were trained without it (``from_dict`` reads them as False).
    conditioned_training: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}")
        Normalizer.for_maze(self.maze)
        self.action_std = _positive_list("action_std", self.action_std, 2, "two", "(ax, ay)")
        self.obs_std = _positive_list("obs_std", self.obs_std, 4, "four", "(x, y, vx, vy)")
        if self.channels not in CHANNELS:
            raise ValueError(f"channels must be one of {CHANNELS}, got {self.channels!r}")
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {BACKBONES}, got {self.backbone!r}")
        if self.kind != "diffuser":
            self.conditioned_training = False  # DF conditions on its context token by its levels, not by inpainting
        if self.backbone == "rnn" and self.kind != "df":
            raise ValueError("backbone 'rnn' is causal by construction: it can only be a Diffusion Forcing model "
                             "(--kind df); the Diffuser-style baseline needs the non-causal transformer")
        for name in ("frame_stack", "n_tokens", "d_model", "n_layers", "n_heads", "z_dim", "network_size",
                     "num_mlp_layers", "num_gru_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")

    @property
    def causal(self) -> bool:
        """The DF planner is causal (KV cache); the Diffuser-style baseline attends both ways."""
        return self.kind == "df"

    @property
    def token_dim(self) -> int:
        """Features of one token: frame_stack * (4 + 2), or frame_stack * 2 with position-only channels."""
        return self.frame_stack * frame_dim(self.channels)

    @property
    def window(self) -> int:
        """Sequence length the model sees: context + n_tokens."""
        return self.n_tokens + 1

    def diffusion_config(self) -> DiffusionConfig:
        """The per-token diffusion process and loss."""
        return DiffusionConfig(
            beta_schedule=self.beta_schedule,
            objective=self.objective,
            loss_weighting=self.loss_weighting,
            constant_weight=CONSTANT_WEIGHT,
            frame_stack=self.frame_stack,
            noise_level_mode="diffusion_forcing" if self.kind == "df" else "full_sequence",
            first_token_known_prob=self.first_token_known_prob if self.kind == "df" else 0.0,
        )

    def build(self) -> nn.Module:
        """A freshly initialised network."""
        if self.backbone == "rnn":
            return RecurrentDenoiser(RecurrentDenoiserConfig(
                token_shape=(self.token_dim,), z_dim=self.z_dim, network_size=self.network_size,
                num_mlp_layers=self.num_mlp_layers, num_gru_layers=self.num_gru_layers))
        return CausalTransformer(CausalTransformerConfig(
            token_shape=(self.token_dim,), d_model=self.d_model, n_layers=self.n_layers, n_heads=self.n_heads,
            mlp_ratio=self.mlp_ratio, window=self.window, causal=self.causal,
            level_embed_dim=max(64, self.d_model)))

    def normalizer(self) -> Normalizer:
        """The observation / action normalisation of this model's maze (``obs_std`` / ``action_std`` override it)."""
        norm = Normalizer.for_maze(self.maze)
        if self.action_std is not None:
            norm = dataclasses.replace(norm, act_std=tuple(self.action_std))
        if self.obs_std is not None:
            norm = dataclasses.replace(norm, obs_std=tuple(self.obs_std))
        return norm

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Inverse of ``to_dict``; unknown keys are an error."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown ModelSpec fields {sorted(unknown)}")
        return cls(**{"conditioned_training": False, **data})


def _positive_list(name: str, values: Any, count: int, words: str, what: str) -> list[float] | None:
    """``values`` as floats, or a ValueError unless it holds ``count`` finite numbers > 0 (None stays None)."""
    if values is None:
        return None
    values = list(values)
    if len(values) != count or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"{name} must be {words} finite numbers > 0 {what}, got {values!r}")
    return [float(v) for v in values]


def make_windows(dataset: dict[str, np.ndarray], spec: ModelSpec, seed: int = 0):
    """``Maze2dWindows`` of the dataset for this spec (official normalisation, padding past the end)."""
    from dforce_datasets.maze2d.windows import Maze2dWindows, WindowConfig

    cfg = WindowConfig(n_tokens=spec.n_tokens, frame_stack=spec.frame_stack, random_horizon=spec.random_horizon,
                       seed=seed)
    return Maze2dWindows(dataset, cfg, normalization=dataclasses.asdict(spec.normalizer()))


def collate(windows, indices: np.ndarray) -> dict[str, Tensor]:
    """Stack the items ``indices`` of a Maze2dWindows into a batch dict of tensors."""
    if hasattr(windows, "batch"):  # Maze2dWindows: one vectorised gather
        batch = windows.batch(indices)
        return {k: batch[k] for k in ("start", "tokens", "valid")}
    items = [windows[int(i)] for i in indices]
    return {k: torch.stack([it[k] for it in items]) for k in ("start", "tokens", "valid")}


def batch_stream(windows, batch_size: int, seed: int, start_step: int = 0) -> Iterator[dict[str, Tensor]]:
    """Endless batches; the batch of step s depends only on (seed, s), so resuming is exact."""
    for step in itertools.count(start_step):
        rng = np.random.default_rng([seed, step])
        yield collate(windows, rng.integers(0, len(windows), size=batch_size))


def known_width(channels: str) -> int:
    """Features of a frame's observation, the part inpainted at a known end: (x, y, vx, vy), or (x, y) with 'pos'."""
    return OBS_DIM if channels == "full" else POS_DIM


class KnownEnds:
    """A denoiser with its known entries, start and goal, inpainted as Diffuser's ``apply_conditioning``: written
    clean into the model's noisy input and into its output (pred_x0: its x0 prediction of them is them)."""

    def __init__(self, model, context: Tensor, goal_frame: Tensor, frame_stack: int, channels: str,
                 rows: Tensor | None = None) -> None:
        width = known_width(channels)
        if goal_frame.dim() != 2 or goal_frame.shape[-1] != width:
            raise ValueError(f"goal_frame must be (B, {width}) for channels {channels!r}, got {tuple(goal_frame.shape)}")
        self.model = model
        self.context = context  # (B, 1, D) normalised context token
        self.goal_frame = goal_frame  # (B, 4) normalised final state; (B, 2) its position with channels 'pos'
        self.offset = (frame_stack - 1) * frame_dim(channels)  # the last frame of the last token
        self.rows = rows  # (B,) bool: rows whose goal is known (None: all); training skips windows padded at the end

    def known(self, x: Tensor) -> Tensor:
        """x (B, T, D) with the start token and the goal frame written in (a copy)."""
        x = x.clone()  # (B, T, D)
        x[:, :1] = self.context
        end = slice(self.offset, self.offset + self.goal_frame.shape[-1])
        goal = self.goal_frame if self.rows is None else torch.where(self.rows[:, None], self.goal_frame,
                                                                       x[:, -1, end])  # (B, g)
        x[:, -1, end] = goal
        return x

    def __call__(self, x, noise_levels, cond=None, *, cache=None, commit=0):
        return self.known(self.model(self.known(x), noise_levels, cond))  # (B, T, D)

    def new_cache(self, batch_size: int):
        raise NotImplementedError("the inpainting wrapper is uncached")


class PlanningLoss:
    """``loss_fn(model, batch, ctx)`` for ``dforce_train.Trainer``: DF (or full-sequence) loss on context + plan;
    a Diffuser-style model (``conditioned_training``) sees its start and final state clean (``KnownEnds``)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.loss = DiffusionLoss(spec.diffusion_config())
        self.normalizer = spec.normalizer()

    def sequences(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(x0 (B, 1+T, D), valid (B, 1+T)): the context token prepended, the context always valid."""
        x0 = with_context(batch["start"], batch["tokens"], self.spec.frame_stack, self.normalizer,
                          self.spec.channels)  # (B, 1+T, D)
        valid = torch.cat([torch.ones_like(batch["valid"][:, :1]), batch["valid"]], dim=1)
        return x0, valid

    def __call__(self, model, batch: dict[str, Tensor], ctx: StepContext):
        x0, valid = self.sequences(batch)
        x0, valid = x0.to(ctx.device), valid.to(ctx.device)
        net = model
        if self.spec.kind == "diffuser" and self.spec.conditioned_training:
            local_x0, local_valid = ctx.shard(x0), ctx.shard(valid)  # (b, 1+T, D), (b, 1+T): this process's rows
            fs, dim = self.spec.frame_stack, frame_dim(self.spec.channels)
            width = known_width(self.spec.channels)
            goal = local_x0[:, -1, (fs - 1) * dim:(fs - 1) * dim + width]  # (b, width): the window's final state
            net = KnownEnds(model, local_x0[:, :1], goal, fs, self.spec.channels, rows=local_valid[:, -1].bool())
        out = self.loss(net, x0, valid=valid, generator=ctx.generator, shard=ctx.shard)
        return out.loss, {"padding_frac": 1.0 - valid.float().mean()}


def train(dataset: dict[str, np.ndarray], spec: ModelSpec, config: TrainConfig, *, batch_size: int = 64,
          logger=None, resume: str | None = None) -> tuple[nn.Module, Any]:
    """Train a planning model with ``dforce_train.Trainer``; returns (model with EMA weights if any, summary)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    windows = make_windows(dataset, spec, seed=config.seed)
    torch.manual_seed(config.seed)  # the initial weights follow the training seed (the Trainer seeds after them)
    model = spec.build()
    # the data's fingerprint: resuming on other data is refused, and a rerun can tell whether its data matched
    data = array_fingerprint(dataset, ("observations", "actions"))
    trainer = Trainer(model, PlanningLoss(spec), config, logger,
                      model_config={"planning": spec.to_dict(), "data": data})
    try:
        summary = trainer.fit(lambda start: prefetch(batch_stream(windows, batch_size, config.seed, start)),
                              resume=resume)
    finally:
        trainer.close()
    if trainer.ema is not None:
        trainer.ema.copy_to(model)
    model.eval()
    return model, summary


def checkpoint_provenance(path: str | Path) -> dict[str, Any]:
    """Where a checkpoint came from: its directory, step, training data fingerprint and numerics (None if unknown)."""
    ckpt = resolve_checkpoint(path)
    state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    return {"path": str(ckpt), "step": state.get("step"), "data": (state.get("model_config") or {}).get("data"),
            "numerics": state.get("numerics")}


def load_model(path: str | Path, *, use_ema: bool = True) -> tuple[nn.Module, ModelSpec]:
    """A trained planning model from a checkpoint directory (or a training ``out_dir``), in eval mode."""
    try:
        ckpt = resolve_checkpoint(path)
    except (FileNotFoundError, ValueError) as err:
        raise ValueError(f"no planning checkpoint at {path}: {err}") from None
    state_file = ckpt / "state.json"
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        spec = ModelSpec.from_dict(state["model_config"]["planning"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"{ckpt} is not a dforce-plan checkpoint (no planning model_config: {err!r})") from None
    model = spec.build()
    ema = EMA(model, 0.999) if use_ema and (ckpt / "ema.safetensors").is_file() else None
    load_checkpoint(ckpt, model=model, ema=ema)
    if ema is not None:
        ema.copy_to(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, spec
