"""Load a maze2d dataset: our hdf5 or shards, a real D4RL hdf5 file, or the real `d4rl` package when importable."""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from .storage import read_hdf5, read_shards, validate

D4RL_IDS = {
    "maze2d-umaze-v1": "maze2d-umaze-sparse-v1.hdf5",
    "maze2d-medium-v1": "maze2d-medium-sparse-v1.hdf5",
    "maze2d-large-v1": "maze2d-large-sparse-v1.hdf5",
    "maze2d-eval-umaze-v1": "maze2d-eval-umaze-sparse-v1.hdf5",
    "maze2d-eval-medium-v1": "maze2d-eval-medium-sparse-v1.hdf5",
    "maze2d-eval-large-v1": "maze2d-eval-large-sparse-v1.hdf5",
}


def d4rl_cache_dir() -> Path:
    """Where d4rl keeps downloaded files ($D4RL_DATASET_DIR or ~/.d4rl/datasets)."""
    return Path(os.environ.get("D4RL_DATASET_DIR", Path.home() / ".d4rl" / "datasets")).expanduser()


def _from_d4rl_package(env_id: str) -> dict[str, np.ndarray]:
    gym = importlib.import_module("gym")
    importlib.import_module("d4rl")
    return {k: np.asarray(v) for k, v in gym.make(env_id).get_dataset().items()}


def load_dataset(source: str | Path) -> dict[str, np.ndarray]:
    """A validated D4RL-schema dict from a path (.hdf5/.h5 file, a shard directory or .tar) or a D4RL id.

    For an id like 'maze2d-large-v1' the file is looked up in d4rl's cache directory first; then the real
    `d4rl` package is used if it imports (it needs mujoco-py); otherwise a ValueError says what to do.
    """
    text = str(source)
    path = Path(text).expanduser()
    if path.suffix in (".hdf5", ".h5"):
        return read_hdf5(path)
    if path.suffix == ".tar" or path.is_dir():
        return read_shards(path)
    env_id = text.removeprefix("dforce/")
    if env_id in D4RL_IDS:
        cached = d4rl_cache_dir() / D4RL_IDS[env_id]
        if cached.is_file():
            return read_hdf5(cached)
        if importlib.util.find_spec("d4rl") is not None:
            try:
                return validate(_from_d4rl_package(env_id), f"d4rl {env_id}")
            except Exception as err:  # d4rl installs but often cannot import (mujoco-py) or download
                raise ValueError(f"the d4rl package could not load {env_id}: {err!r}; pass a local hdf5 path "
                                 "or generate the data with dforce_datasets.maze2d.generate") from err
        raise ValueError(f"{env_id}: no local file {cached} and the d4rl package is not importable; pass the "
                         "path of a D4RL hdf5 file or generate the data (tools/bench/maze_datagen.py)")
    raise ValueError(f"cannot load {text!r}: expected a .hdf5/.h5 file, a shard directory/.tar, or one of "
                     f"{sorted(D4RL_IDS)}")
