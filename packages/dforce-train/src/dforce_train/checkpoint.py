"""Atomic training checkpoints: safetensors weights, JSON state, optimiser state loaded with weights_only.

A checkpoint is a directory::

    model.safetensors   model weights (shared/tied tensors stored once)
    ema.safetensors     EMA weights, same keys as the model (only when an EMA is used)
    optimizer.pt        torch.save(optimizer.state_dict()), loaded with weights_only=True
    scaler.pt           torch.save(grad_scaler.state_dict()) (fp16 only), loaded with weights_only=True
    rng.safetensors     torch CPU / CUDA generator states of every rank, as uint8 tensors
    state.json          step, train config, model config, LR-scheduler state, python/numpy RNG states,
                        and the numerics fingerprint (library versions, CPU kernel set: `provenance`)

It is written into a temporary directory next to the target and moved into place with `os.replace`, so an
interrupted save leaves the previous checkpoint (and the `latest` pointer) untouched.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from dforce_train.distributed import unwrap_model
from dforce_train.ema import EMA
from dforce_train.provenance import numerics_fingerprint

FORMAT_VERSION = 1
LATEST_NAME = "latest"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCALER_FILE = "scaler.pt"
RNG_FILE = "rng.safetensors"
STATE_FILE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


@dataclass
class CheckpointInfo:
    """What `load_checkpoint` read besides the tensors it loaded in place."""

    path: Path
    step: int
    config: dict[str, Any] | None
    model_config: dict[str, Any] | None
    rng_restored: bool = False
    state: dict[str, Any] = field(default_factory=dict, repr=False)


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint for `step` (zero-padded so names sort by step)."""
    return f"step_{int(step):08d}"


# ----------------------------------------------------------------------------------------------- RNG states


def capture_rng_state() -> dict[str, Any]:
    """This process's python / numpy / torch (CPU and current CUDA device) RNG states."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, np.asarray(np_keys).tolist(), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["torch_cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch_cpu"])
    if state.get("torch_cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["torch_cuda"])


# ----------------------------------------------------------------------------------------------- helpers


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_finite(model: nn.Module, ema: EMA | None) -> None:
    tensors = list(unwrap_model(model).state_dict().items())
    if ema is not None:
        tensors += [(f"ema.{k}", v) for k, v in ema.shadow.items()]
    for name, t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"refusing to save a checkpoint: tensor {name!r} contains NaN or inf; the previous checkpoint "
                "is kept. Lower the learning rate, enable grad_clip, or check the data"
            )


def _model_config_hint(model_config: Any) -> str:
    if model_config is None:
        return ""
    return f" (the checkpoint's model_config is {json.dumps(model_config, default=str)})"


def _check_tensor_file(
    file: Path, expected: Mapping[str, torch.Tensor], what: str, ckpt: Path, model_config: Any
) -> None:
    with safe_open(str(file), framework="pt") as f:
        saved = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    hint = _model_config_hint(model_config)
    unexpected = sorted(set(saved) - set(expected))
    if unexpected:
        raise ValueError(
            f"checkpoint {ckpt} was written for a model with {what} tensors {unexpected[:5]} that this model "
            f"does not have; pass the matching config{hint}"
        )
    for name, shape in saved.items():
        if shape != tuple(expected[name].shape):
            raise ValueError(
                f"checkpoint {ckpt} was written for a model with {what} {name!r} of shape {shape}, but this model "
                f"has shape {tuple(expected[name].shape)}; pass the matching config{hint}"
            )


def _is_alias(name: str, stored: set[str], state: Mapping[str, torch.Tensor]) -> bool:
    """True when `name` is a tied tensor whose twin is stored (safetensors keeps shared tensors once)."""
    t = state[name]
    for other in stored:
        o = state.get(other)
        if (
            o is not None
            and o.device == t.device
            and o.untyped_storage().data_ptr() == t.untyped_storage().data_ptr()
            and o.storage_offset() == t.storage_offset()
            and o.shape == t.shape
            and o.stride() == t.stride()
        ):
            return True
    return False


# ----------------------------------------------------------------------------------------------- save / load


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    step: int,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    ema: EMA | None = None,
    config: Mapping[str, Any] | None = None,
    model_config: Mapping[str, Any] | None = None,
    rng_states: list[dict[str, Any]] | None = None,
) -> Path:
    """Write a checkpoint directory atomically at `path` (replacing one already there) and return it.

    `rng_states` is one `capture_rng_state()` per rank (rank order); by default this process's state.
    Raises ValueError, writing nothing, if a model or EMA tensor is non-finite.
    """
    path = Path(path)
    model = unwrap_model(model)
    _check_finite(model, ema)
    if rng_states is None:
        rng_states = [capture_rng_state()]
    sched_state = scheduler.state_dict() if scheduler is not None else None
    state: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "step": int(step),
        "time": time.time(),
        "config": dict(config) if config is not None else None,
        "model_config": dict(model_config) if model_config is not None else None,
        "scheduler": sched_state,
        "ema": None
        if ema is None
        else {"num_updates": ema.num_updates, "decay": ema.decay, "start_step": ema.start_step},
        "world_size": len(rng_states),
        "rng": {"python": [s["python"] for s in rng_states], "numpy": [s["numpy"] for s in rng_states]},
        "numerics": numerics_fingerprint(),  # what a bit-exact rerun needs to share (library versions, kernels)
    }
    try:
        state_text = json.dumps(state, indent=1)
    except TypeError as e:
        raise ValueError(f"checkpoint state is not JSON-serialisable ({e}); pass plain dicts as configs") from None

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        save_model(model, str(tmp / MODEL_FILE), metadata={"step": str(int(step))})
        if ema is not None:
            save_file({k: v.contiguous() for k, v in ema.shadow.items()}, str(tmp / EMA_FILE))
        if optimizer is not None:
            torch.save(optimizer.state_dict(), tmp / OPTIMIZER_FILE)
        if scaler is not None and scaler.is_enabled():
            torch.save(scaler.state_dict(), tmp / SCALER_FILE)
        rng_tensors = {}
        for rank, s in enumerate(rng_states):
            rng_tensors[f"torch_cpu.rank{rank}"] = s["torch_cpu"].to("cpu", torch.uint8).contiguous()
            if s.get("torch_cuda") is not None:
                rng_tensors[f"torch_cuda.rank{rank}"] = s["torch_cuda"].to("cpu", torch.uint8).contiguous()
        save_file(rng_tensors, str(tmp / RNG_FILE))
        (tmp / STATE_FILE).write_text(state_text, encoding="utf-8")
        for file in tmp.iterdir():
            _fsync(file)
        _fsync(tmp)
        if path.exists():
            old = path.with_name(f".old-{path.name}-{uuid.uuid4().hex}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
        _fsync(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint dir itself, the one named by `latest` in `path` or in `path/checkpoints`, or by the pointer
    file `path` itself."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        return path
    if path.name == LATEST_NAME and path.is_file():
        found = latest_checkpoint(path.parent)
        if found is None:
            target = _pointer_target(path)
            raise FileNotFoundError(f"the pointer {path} names {target}, which holds no {STATE_FILE}: the run's "
                                    "checkpoints were moved or deleted; pass a step_* directory instead")
        return found
    for root in (path, path / "checkpoints"):
        found = latest_checkpoint(root)
        if found is not None:
            return found
    raise FileNotFoundError(
        f"no checkpoint at {path}: expected a checkpoint directory (with {STATE_FILE}) or a directory holding a "
        f"'{LATEST_NAME}' pointer (directly or under checkpoints/)"
    )


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: torch.amp.GradScaler | None = None,
    ema: EMA | None = None,
    rng_rank: int | None = None,
    map_location: str | torch.device = "cpu",
) -> CheckpointInfo:
    """Load the given parts in place from a checkpoint (see `resolve_checkpoint` for accepted paths).

    Every requested file must exist and every tensor shape must match, else ValueError / FileNotFoundError
    before anything is modified. `rng_rank` restores that rank's RNG states when the checkpoint has them.
    """
    ckpt = resolve_checkpoint(path)
    state = json.loads((ckpt / STATE_FILE).read_text(encoding="utf-8"))
    model_config = state.get("model_config")
    needed = []
    if model is not None:
        needed.append(MODEL_FILE)
    if ema is not None:
        needed.append(EMA_FILE)
    if optimizer is not None:
        needed.append(OPTIMIZER_FILE)
    if scaler is not None and scaler.is_enabled():
        needed.append(SCALER_FILE)
    if rng_rank is not None:
        needed.append(RNG_FILE)
    missing = [name for name in needed if not (ckpt / name).is_file()]
    if missing:
        hint = ""
        if EMA_FILE in missing:
            hint = " (the run that wrote it had no EMA: set ema_decay=None to match)"
        if SCALER_FILE in missing:
            hint += " (it was not trained in fp16: use the same precision to resume)"
        raise FileNotFoundError(f"checkpoint {ckpt} lacks {missing}{hint}")
    if scheduler is not None and state.get("scheduler") is None:
        raise ValueError(f"checkpoint {ckpt} has no LR-scheduler state; load it without a scheduler")

    if model is not None:
        model = unwrap_model(model)
        own = model.state_dict()
        _check_tensor_file(ckpt / MODEL_FILE, own, "weight", ckpt, model_config)
        with safe_open(str(ckpt / MODEL_FILE), framework="pt") as f:
            in_file = set(f.keys())
        absent = [k for k in own if k not in in_file and not _is_alias(k, in_file, own)]
        if absent:
            raise ValueError(
                f"checkpoint {ckpt} was written for a model without weights {absent[:5]}; "
                f"pass the matching config{_model_config_hint(model_config)}"
            )
    if ema is not None:
        _check_tensor_file(ckpt / EMA_FILE, ema.shadow, "EMA weight", ckpt, model_config)
        with safe_open(str(ckpt / EMA_FILE), framework="pt") as f:
            absent = sorted(set(ema.shadow) - set(f.keys()))
        if absent:
            raise ValueError(
                f"checkpoint {ckpt} was written for a model without EMA tensors {absent[:5]}; "
                f"pass the matching config{_model_config_hint(model_config)}"
            )
    optim_state = None
    if optimizer is not None:
        optim_state = torch.load(ckpt / OPTIMIZER_FILE, map_location=map_location, weights_only=True)
        saved_sizes = [len(g["params"]) for g in optim_state["param_groups"]]
        own_sizes = [len(g["params"]) for g in optimizer.param_groups]
        if saved_sizes != own_sizes:
            raise ValueError(
                f"checkpoint {ckpt} was written for an optimiser with parameter groups of sizes {saved_sizes}, "
                f"but this one has {own_sizes}; pass the matching config{_model_config_hint(model_config)}"
            )
    scaler_state = None
    if scaler is not None and scaler.is_enabled():
        scaler_state = torch.load(ckpt / SCALER_FILE, map_location="cpu", weights_only=True)

    if model is not None:
        try:
            load_model(model, str(ckpt / MODEL_FILE), strict=True)
        except RuntimeError as e:
            raise ValueError(
                f"checkpoint {ckpt} was written for a different model ({e}); "
                f"pass the matching config{_model_config_hint(model_config)}"
            ) from None
    if ema is not None:
        ema_meta = state.get("ema") or {}
        ema.load_state_dict(
            {
                "weights": load_file(str(ckpt / EMA_FILE)),
                "num_updates": ema_meta.get("num_updates", 0),
                "decay": ema_meta.get("decay", ema.decay),
                "start_step": ema_meta.get("start_step", ema.start_step),
            }
        )
    if optimizer is not None:
        optimizer.load_state_dict(optim_state)
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if scaler_state is not None:
        scaler.load_state_dict(scaler_state)
    rng_restored = False
    if rng_rank is not None and rng_rank < len(state["rng"]["python"]):
        tensors = load_file(str(ckpt / RNG_FILE))
        restore_rng_state(
            {
                "python": state["rng"]["python"][rng_rank],
                "numpy": state["rng"]["numpy"][rng_rank],
                "torch_cpu": tensors[f"torch_cpu.rank{rng_rank}"],
                "torch_cuda": tensors.get(f"torch_cuda.rank{rng_rank}"),
            }
        )
        rng_restored = True
    return CheckpointInfo(
        path=ckpt,
        step=int(state["step"]),
        config=state.get("config"),
        model_config=model_config,
        rng_restored=rng_restored,
        state=state,
    )


# ----------------------------------------------------------------------------------------------- directory of checkpoints


def list_checkpoints(root: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """(step, path) of every complete checkpoint under `root`, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / STATE_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def _pointer_target(pointer: Path) -> Path:
    """The checkpoint directory a `latest` pointer file names (a clear error if the file is not a pointer)."""
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["path"]
        if not isinstance(name, str) or Path(name).name != name:
            raise TypeError(f"path must be a directory name, got {name!r}")
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise ValueError(f"{pointer} is not a checkpoint pointer ({err!r}); pass a step_* directory instead") from None
    return pointer.parent / name


def latest_checkpoint(root: str | os.PathLike[str]) -> Path | None:
    """The checkpoint the `latest` pointer in `root` names, or None when there is none."""
    pointer = Path(root) / LATEST_NAME
    if not pointer.is_file():
        return None
    target = _pointer_target(pointer)
    return target if (target / STATE_FILE).is_file() else None


def write_latest(root: str | os.PathLike[str], checkpoint: str | os.PathLike[str], step: int) -> None:
    """Point `root/latest` at `checkpoint` (a directory inside `root`), atomically."""
    _write_json_atomic(Path(root) / LATEST_NAME, {"path": Path(checkpoint).name, "step": int(step)})


class CheckpointManager:
    """Numbered checkpoints under one directory with a `latest` pointer, keeping the newest `keep_last`."""

    def __init__(self, root: str | os.PathLike[str], keep_last: int | None = None) -> None:
        if keep_last is not None and keep_last < 1:
            raise ValueError(f"keep_last must be >= 1 or None (keep all), got {keep_last!r}")
        self.root = Path(root)
        self.keep_last = keep_last

    def save(self, step: int, **parts: Any) -> Path:
        """`save_checkpoint` into `root/step_XXXXXXXX`, then move `latest` and prune old checkpoints."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-step_*"):
            shutil.rmtree(stale, ignore_errors=True)
        path = save_checkpoint(self.root / checkpoint_name(step), step=step, **parts)
        write_latest(self.root, path, step)
        self.prune()
        return path

    def latest(self) -> Path | None:
        """Newest checkpoint named by the pointer, or None."""
        return latest_checkpoint(self.root)

    def prune(self) -> None:
        """Delete all but the newest `keep_last` checkpoints (never the one `latest` names)."""
        if self.keep_last is None:
            return
        latest = self.latest()
        ckpts = list_checkpoints(self.root)
        for _, path in ckpts[: max(len(ckpts) - self.keep_last, 0)]:
            if latest is None or path.resolve() != latest.resolve():
                shutil.rmtree(path, ignore_errors=True)
