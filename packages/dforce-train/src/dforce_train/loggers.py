"""Metric loggers: always a local JSONL file, optionally Weights & Biases (imported lazily)."""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dforce_train.distributed import is_main


@runtime_checkable
class Logger(Protocol):
    """What the trainer needs from a logger."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Record scalar metrics at a step."""

    def log_image(self, key: str, image: str | os.PathLike[str] | np.ndarray, step: int) -> None:
        """Record an image (a file path or an HWC / HW array) at a step."""

    def close(self) -> None:
        """Flush and release resources."""


def _json_number(value: Any) -> Any:
    value = float(value)
    return value if math.isfinite(value) else str(value)


class NullLogger:
    """Discards everything (used on ranks other than 0)."""

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Do nothing."""

    def log_image(self, key: str, image: str | os.PathLike[str] | np.ndarray, step: int) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


class JSONLLogger:
    """Appends one JSON object per call: {"step": s, "time": unix_seconds, **metrics}."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.closed = False

    def _write(self, record: dict[str, Any]) -> None:
        if self.closed:
            raise ValueError(f"JSONLLogger for {self.path} is closed; create a new one to keep logging")
        with self.path.open("a", encoding="utf-8") as f:  # one open per record: nothing to leak, crash-safe
            f.write(json.dumps(record) + "\n")

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Write one line; non-finite values are stored as the strings "nan" / "inf" / "-inf"."""
        record: dict[str, Any] = {"step": int(step), "time": time.time()}
        record.update({str(k): _json_number(v) for k, v in metrics.items()})
        self._write(record)

    def log_image(self, key: str, image: str | os.PathLike[str] | np.ndarray, step: int) -> None:
        """Record the image's path; arrays are saved as .npy files under `images/` next to the log."""
        if isinstance(image, np.ndarray):
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)
            target = self.path.parent / "images" / f"{safe}_{int(step):08d}.npy"
            target.parent.mkdir(parents=True, exist_ok=True)
            np.save(target, image)
            image = target
        self._write({"step": int(step), "time": time.time(), "image": key, "path": str(image)})

    def close(self) -> None:
        """Refuse further records (the file is only open while a record is written)."""
        self.closed = True


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All records of a JSONL log, in order; "nan"/"inf" strings come back as floats."""
    records = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            for k, v in record.items():
                if v in ("nan", "inf", "-inf") and k not in ("image", "path"):
                    record[k] = float(v)
            records.append(record)
    return records


class WandbLogger:
    """Weights & Biases run; offline unless `mode="online"` is passed or WANDB_MODE is set."""

    def __init__(
        self,
        project: str = "dforce",
        run_name: str | None = None,
        config: Mapping[str, Any] | None = None,
        dir: str | os.PathLike[str] | None = None,
        mode: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        try:
            import wandb
        except ImportError:
            raise ImportError(
                "WandbLogger needs wandb; install it with `pip install dforce-train[wandb]` or log without wandb"
            ) from None
        if mode is None and not os.environ.get("WANDB_MODE"):
            mode = "offline"
        if mode is not None and mode not in ("online", "offline", "disabled"):
            raise ValueError(f"wandb mode must be 'online', 'offline' or 'disabled', got {mode!r}")
        if dir is not None:
            Path(dir).mkdir(parents=True, exist_ok=True)
        self._wandb = wandb
        self.run = wandb.init(
            project=project,
            name=run_name,
            config=dict(config) if config is not None else None,
            dir=str(dir) if dir is not None else None,
            mode=mode,
            **init_kwargs,
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Log scalars at `step`."""
        self.run.log({k: float(v) for k, v in metrics.items()}, step=int(step))

    def log_image(self, key: str, image: str | os.PathLike[str] | np.ndarray, step: int) -> None:
        """Log an image file or array."""
        data = str(image) if not isinstance(image, np.ndarray) else image
        self.run.log({key: self._wandb.Image(data)}, step=int(step))

    def close(self) -> None:
        """Finish the run (writes the offline-run directory)."""
        if self.run is not None:
            self.run.finish()
            self.run = None


class MultiLogger:
    """Forwards every call to several loggers."""

    def __init__(self, loggers: Sequence[Logger]) -> None:
        self.loggers = list(loggers)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        """Log to every logger."""
        for logger in self.loggers:
            logger.log(metrics, step)

    def log_image(self, key: str, image: str | os.PathLike[str] | np.ndarray, step: int) -> None:
        """Log the image to every logger."""
        for logger in self.loggers:
            logger.log_image(key, image, step)

    def close(self) -> None:
        """Close every logger."""
        for logger in self.loggers:
            logger.close()


def make_logger(
    out_dir: str | os.PathLike[str],
    wandb: bool | str = False,
    project: str = "dforce",
    run_name: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Logger:
    """JSONL at `<out_dir>/metrics.jsonl`, plus wandb when `wandb` is True or a mode; a NullLogger off rank 0."""
    if not is_main():
        return NullLogger()
    loggers: list[Logger] = [JSONLLogger(Path(out_dir) / "metrics.jsonl")]
    if wandb:
        mode = wandb if isinstance(wandb, str) else None
        loggers.append(WandbLogger(project=project, run_name=run_name, config=config, dir=out_dir, mode=mode))
    return MultiLogger(loggers)
