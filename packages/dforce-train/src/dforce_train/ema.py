"""Exponential moving average of a model's weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from dforce_train.distributed import unwrap_model


class EMA:
    """EMA of floating-point parameters; buffers and non-float tensors are copied as they are.

    The shadow copy has the same keys as `model.state_dict()`, so `ema.state_dict()["weights"]` (and the
    `ema.safetensors` file of a checkpoint) can be loaded straight into a fresh model for evaluation.
    Update `k` (0-based) uses decay 0 (a plain copy) while `k < start_step`, and `decay` afterwards:
    `shadow = decay * shadow + (1 - decay) * param`.
    """

    def __init__(self, model: nn.Module, decay: float, start_step: int = 0) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay!r}; e.g. 0.9999")
        if start_step < 0:
            raise ValueError(f"EMA start_step must be >= 0, got {start_step!r}")
        self.decay = float(decay)
        self.start_step = int(start_step)
        self.num_updates = 0
        model = unwrap_model(model)
        param_ids = {id(p) for p in model.parameters()}
        self._averaged: set[str] = set()
        self.shadow: dict[str, Tensor] = {}
        for name, tensor in model.state_dict(keep_vars=True).items():
            if id(tensor) in param_ids and tensor.is_floating_point():
                self._averaged.add(name)
            self.shadow[name] = tensor.detach().clone()

    def current_decay(self) -> float:
        """Decay the next `update` will use."""
        return self.decay if self.num_updates >= self.start_step else 0.0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards the model's current weights."""
        state = unwrap_model(model).state_dict()
        self._check_keys(state.keys(), "update")
        weight = 1.0 - self.current_decay()
        avg_dst, avg_src = [], []
        for name, shadow in self.shadow.items():
            live = state[name]
            if name in self._averaged:
                avg_dst.append(shadow)
                avg_src.append(live.to(shadow.dtype))
            else:
                shadow.copy_(live)
        if avg_dst:
            if weight == 1.0:
                torch._foreach_copy_(avg_dst, avg_src)
            else:
                torch._foreach_lerp_(avg_dst, avg_src, weight)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's weights (and buffers) with the EMA copy."""
        state = unwrap_model(model).state_dict()
        self._check_keys(state.keys(), "copy_to")
        for name, shadow in self.shadow.items():
            state[name].copy_(shadow)

    @contextmanager
    def applied_to(self, model: nn.Module) -> Iterator[nn.Module]:
        """Temporarily swap the EMA weights into `model` (e.g. for evaluation); restored on exit."""
        state = unwrap_model(model).state_dict()
        backup = {name: t.detach().clone() for name, t in state.items()}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, tensor in backup.items():
                    state[name].copy_(tensor)

    def state_dict(self) -> dict[str, Any]:
        """Weights plus the update counter and hyper-parameters."""
        return {
            "weights": dict(self.shadow),
            "num_updates": self.num_updates,
            "decay": self.decay,
            "start_step": self.start_step,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()` output (weights must match this EMA's keys and shapes)."""
        weights = state["weights"]
        self._check_keys(weights.keys(), "load_state_dict")
        for name, shadow in self.shadow.items():
            if tuple(weights[name].shape) != tuple(shadow.shape):
                raise ValueError(
                    f"EMA weight {name!r} has shape {tuple(weights[name].shape)} but the model's is "
                    f"{tuple(shadow.shape)}; load an EMA saved for the same model configuration"
                )
            shadow.copy_(weights[name])
        self.num_updates = int(state["num_updates"])
        self.decay = float(state.get("decay", self.decay))
        self.start_step = int(state.get("start_step", self.start_step))

    def _check_keys(self, keys: Any, where: str) -> None:
        keys = set(keys)
        if keys != set(self.shadow):
            missing = sorted(set(self.shadow) - keys)
            extra = sorted(keys - set(self.shadow))
            raise ValueError(
                f"EMA.{where}: tensor names differ from the model the EMA was built for "
                f"(missing {missing[:5]}, unexpected {extra[:5]}); build the EMA from this model"
            )
