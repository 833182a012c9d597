"""D4RL maze2d dataset files: the hdf5 schema (write, read, validate) and webdataset tar shards."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ._deps import require
from .generate import Maze2dData
from .layouts import get_layout

# D4RL maze2d-v1 keys and per-step shapes; the released files store floats as float32 and flags as bool.
SCHEMA: dict[str, tuple[int, ...]] = {
    "observations": (4,),
    "actions": (2,),
    "rewards": (),
    "terminals": (),
    "timeouts": (),
    "infos/goal": (2,),
    "infos/qpos": (2,),
    "infos/qvel": (2,),
}
REQUIRED = ("observations", "actions", "rewards", "terminals")  # what d4rl's get_dataset insists on
FLAGS = ("terminals", "timeouts")


def to_d4rl(data: Maze2dData, reward_type: str = "sparse", dtype=np.float32) -> dict[str, np.ndarray]:
    """D4RL's released layout: float32 fields, rewards relabelled on the observations against the maze's fixed
    goal (sparse: within 0.5; dense: exp(-distance)), no terminals, timeouts at goal switches."""
    obs = data.observations.astype(dtype)
    goal = np.asarray(get_layout(data.maze).default_target, dtype=np.float64)
    dist = np.linalg.norm(obs[:, :2] - goal, axis=1)
    if reward_type == "sparse":
        rewards = (dist <= 0.5).astype(dtype)
    elif reward_type == "dense":
        rewards = np.exp(-dist).astype(dtype)
    else:
        raise ValueError(f"reward_type must be 'sparse' or 'dense', got {reward_type!r}")
    return {
        "observations": obs,
        "actions": data.actions.astype(dtype),
        "rewards": rewards,
        "terminals": np.zeros(len(data), dtype=bool),  # one continuous walk: no terminal states
        "timeouts": data.timeouts.astype(bool),  # goal switches (goal reached or time limit), as D4RL's files
        "infos/goal": data.goals.astype(dtype),
        "infos/qpos": data.qpos.astype(dtype),
        "infos/qvel": data.qvel.astype(dtype),
    }


def validate(dataset: dict[str, np.ndarray], source: str = "dataset") -> dict[str, np.ndarray]:
    """Check keys, shapes, dtypes and lengths of a maze2d dataset; raise ValueError saying what is wrong."""
    missing = [k for k in REQUIRED if k not in dataset]
    if missing:
        raise ValueError(f"{source}: missing key(s) {missing}; found {sorted(dataset)}")
    n = len(dataset["observations"])
    for key, arr in dataset.items():
        if key not in SCHEMA:
            continue
        arr = np.asarray(arr)
        want = (n, *SCHEMA[key])
        if arr.shape != want:
            raise ValueError(f"{source}: {key!r} has shape {arr.shape}, expected {want} (same length as observations)")
        if key in FLAGS:
            if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
                raise ValueError(f"{source}: {key!r} must be bool (or 0/1 numbers), got dtype {arr.dtype}")
        elif not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"{source}: {key!r} must be a float array, got dtype {arr.dtype}")
    return dataset


def write_hdf5(path: str | Path, dataset: dict[str, np.ndarray], attrs: dict | None = None,
               compression: str | None = "gzip") -> Path:
    """Write a D4RL-schema dataset (validated first) to an hdf5 file."""
    h5py = require("h5py")
    validate(dataset, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.part")  # a crash never leaves a half-written file
    try:
        with h5py.File(tmp, "w") as f:
            for key, arr in dataset.items():
                f.create_dataset(key, data=arr, compression=compression)
            for key, value in (attrs or {}).items():
                f.attrs[key] = json.dumps(value) if isinstance(value, dict | list) else value
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_hdf5(path: str | Path, keys: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read a D4RL maze2d hdf5 file (ours or a released one) into arrays, validated."""
    h5py = require("h5py")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file (corrupt or truncated?): {err}") from err
    out: dict[str, np.ndarray] = {}
    with f:
        names: list[str] = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        wanted = list(keys) if keys is not None else names
        for key in wanted:
            if key not in f:
                continue
            try:
                out[key] = f[key][()]
            except (OSError, RuntimeError) as err:
                raise ValueError(f"{path}: dataset {key!r} cannot be read (corrupt file?): {err}") from err
    return validate(out, str(path))


def write_shards(directory: str | Path, dataset: dict[str, np.ndarray], chunk: int = 100_000,
                 max_chunks_per_shard: int = 10, metadata: dict | None = None) -> list[Path]:
    """Write webdataset tar shards: one sample per `chunk` consecutive steps (npz of every field + json)."""
    wds = require("webdataset")
    if chunk < 1 or max_chunks_per_shard < 1:
        raise ValueError("chunk and max_chunks_per_shard must be >= 1")
    validate(dataset, "dataset")
    directory = Path(directory)
    old = sorted(directory.glob("*.tar")) if directory.is_dir() else []
    if old:  # read_shards takes every .tar there: new shards beside old ones would mix two datasets
        raise FileExistsError(f"{directory} already holds shards ({old[0].name}, ...); write into a new directory")
    directory.mkdir(parents=True, exist_ok=True)
    n = len(dataset["observations"])
    run = uuid.uuid4().hex  # every chunk names the write it belongs to
    starts = list(range(0, n, chunk))
    paths = []
    for shard, first in enumerate(range(0, len(starts), max_chunks_per_shard)):
        path = directory / f"maze2d-{shard:06d}.tar"
        with wds.TarWriter(str(path)) as sink:
            for start in starts[first: first + max_chunks_per_shard]:
                stop = min(start + chunk, n)
                buf = io.BytesIO()
                np.savez(buf, **{k.replace("/", "__"): v[start:stop] for k, v in dataset.items()})
                meta = {**(metadata or {}), "start": start, "stop": stop, "total": n, "run": run}
                sink.write({"__key__": f"{start:012d}", "npz": buf.getvalue(), "json": json.dumps(meta).encode()})
        paths.append(path)
    return paths


def read_shards(source: str | Path | Iterable[str | Path]) -> dict[str, np.ndarray]:
    """Read shards written by write_shards (a directory or a list of .tar files) back into one dataset."""
    if isinstance(source, str | Path):
        source = Path(source)
        paths = sorted(source.glob("*.tar")) if source.is_dir() else [source]
    else:
        paths = sorted(Path(p) for p in source)
    if not paths:
        raise ValueError(f"{source}: no .tar shards found")
    chunks: dict[int, tuple[dict, dict[str, np.ndarray]]] = {}
    for path in paths:
        try:
            with tarfile.open(path) as tar:
                members = {m.name: m for m in tar.getmembers() if m.isfile()}
                for name in members:
                    if not name.endswith(".npz"):
                        continue
                    key = name[: -len(".npz")]
                    meta_member = members.get(key + ".json")
                    if meta_member is None:
                        raise ValueError(f"{path}: sample {key!r} has no .json metadata")
                    meta = json.loads(tar.extractfile(meta_member).read())
                    with np.load(io.BytesIO(tar.extractfile(members[name]).read()), allow_pickle=False) as npz:
                        arrays = {k.replace("__", "/"): npz[k] for k in npz.files}
                    start = int(meta["start"])
                    if start in chunks:
                        raise ValueError(f"{path}: a second chunk starting at step {start}; the shards mix two "
                                         "datasets (read one directory written by one write_shards call)")
                    rows = {len(v) for v in arrays.values()}
                    if rows != {int(meta["stop"]) - start}:
                        raise ValueError(f"{path}: chunk {key!r} holds {sorted(rows)} rows but its metadata says "
                                         f"steps {start}..{meta['stop']} (corrupt shard?)")
                    chunks[start] = (meta, arrays)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ValueError(f"{path}: not a readable tar shard (corrupt or truncated?): {err}") from err
    runs = {meta.get("run") for meta, _ in chunks.values()}
    if len(runs) > 1:
        raise ValueError(f"{source}: the shards come from {len(runs)} different writes; read one directory written "
                         "by one write_shards call")
    expected = 0
    parts = []
    for start in sorted(chunks):
        meta, arrays = chunks[start]
        if start != expected:
            raise ValueError(f"shards are missing steps {expected}..{start - 1} (chunks must be contiguous)")
        if parts and arrays.keys() != parts[0].keys():
            raise ValueError(f"{source}: the chunk at step {start} has fields {sorted(arrays)}, the first chunk "
                             f"{sorted(parts[0])} (corrupt or mixed shards)")
        expected = int(meta["stop"])
        parts.append(arrays)
    total = int(chunks[max(chunks)][0].get("total", expected))
    if expected != total:
        raise ValueError(f"shards hold {expected} steps but their metadata says {total}: some shard is missing")
    keys = parts[0].keys()
    dataset = {k: np.concatenate([p[k] for p in parts]) for k in keys}
    return validate(dataset, str(source))
