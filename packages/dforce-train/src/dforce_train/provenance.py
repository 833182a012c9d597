"""What a run's numbers depend on beyond its config: the library versions and the kernels that computed them.

Two runs of the same command and seed give bit-identical weights only on the same software and the same
kernel path. ATen picks its CPU kernels by instruction set (``ATEN_CPU_CAPABILITY``: default / avx2 /
avx512), and a different path changes the last bits of a sum; over thousands of updates those bits grow
into a different model. Checkpoints and results record this fingerprint so that a rerun that disagrees can
be told apart from a bug.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def code_revision(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The git commit of the checkout holding ``path`` (default: this package) and whether tracked files differ
    from it (``dirty``: a run from uncommitted code cannot be rerun from the commit alone); None outside git."""
    where = os.path.dirname(os.path.abspath(path if path is not None else __file__))
    if "site-packages" in where.split(os.sep):  # an installed wheel: a git repo around it is not its source
        return None
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, timeout=10, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(changed), "changed_files": sorted(line[3:] for line in changed)[:50]}


def _dforce_versions() -> dict[str, str]:
    """The installed dforce-* distributions and their versions."""
    from importlib import metadata

    found = {(d.metadata["Name"] or ""): d.version for d in metadata.distributions()}
    return {name: found[name] for name in sorted(found) if name.startswith("dforce")}


def numerics_fingerprint() -> dict[str, Any]:
    """Versions, code revision, CPU kernel set, thread count and GPU of this process: what bit-exact reruns share."""
    info: dict[str, Any] = {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "aten_cpu_capability_env": os.environ.get("ATEN_CPU_CAPABILITY"),
        "threads": torch.get_num_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cuda": None,
        "code": code_revision(),
        "packages": _dforce_versions(),
    }
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(), "cuda": torch.version.cuda,
                        "cudnn": torch.backends.cudnn.version()}
    return info


def array_fingerprint(arrays: Mapping[str, np.ndarray], keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    """sha256 over the named arrays' dtype, shape and bytes (sorted by name), and their lengths.

    Two datasets with the same fingerprint hold the same values bit for bit, whatever file they came from.
    """
    names = sorted(keys if keys is not None else arrays)
    missing = [k for k in names if k not in arrays]
    if missing:
        raise KeyError(f"array_fingerprint: no arrays named {missing}; have {sorted(arrays)}")
    h = hashlib.sha256()
    for name in names:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return {"sha256": h.hexdigest(), "arrays": {k: list(np.shape(arrays[k])) for k in names}}
