"""The numerics fingerprint (what a bit-exact rerun needs to share) and the array fingerprint of a dataset."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from dforce_train import array_fingerprint, code_revision, numerics_fingerprint, save_checkpoint


def test_numerics_fingerprint_names_this_process():
    info = numerics_fingerprint()
    assert info["torch"] == torch.__version__ and info["numpy"] == np.__version__
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["threads"] == torch.get_num_threads() and info["cpu"]
    assert info["packages"]["dforce-train"]  # the dforce distributions and their versions
    assert json.loads(json.dumps(info)) == info  # JSON-ready, as checkpoints and results store it


def test_numerics_fingerprint_sees_the_kernel_set_chosen_by_environment():
    # ATEN_CPU_CAPABILITY=default makes ATen use its generic kernels: the fingerprint must say so
    code = "import json; from dforce_train import numerics_fingerprint as f; print(json.dumps(f()))"
    env = {"ATEN_CPU_CAPABILITY": "default", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert info["cpu_capability"] == "DEFAULT" and info["aten_cpu_capability_env"] == "default"


def test_array_fingerprint_is_the_sha256_of_names_dtypes_shapes_and_bytes():
    obs = np.arange(6, dtype=np.float32).reshape(3, 2)
    act = np.zeros((3, 1), dtype=np.float32)
    fp = array_fingerprint({"observations": obs, "actions": act, "ignored": np.ones(2)}, ("observations", "actions"))
    h = hashlib.sha256()
    for name, a in (("actions", act), ("observations", obs)):  # sorted by name
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    assert fp == {"sha256": h.hexdigest(), "arrays": {"actions": [3, 1], "observations": [3, 2]}}
    # one changed bit, another dtype with equal values, or a non-contiguous view of the same values
    flipped = obs.copy()
    flipped.view(np.uint32)[0, 0] ^= 1
    assert array_fingerprint({"observations": flipped, "actions": act})["sha256"] != fp["sha256"]
    assert array_fingerprint({"observations": obs.astype(np.float64), "actions": act})["sha256"] != fp["sha256"]
    assert array_fingerprint({"observations": np.asfortranarray(obs), "actions": act})["sha256"] == fp["sha256"]
    with pytest.raises(KeyError, match="no arrays named"):
        array_fingerprint({"observations": obs}, ("observations", "actions"))


def test_checkpoint_state_records_the_numerics(tmp_path):
    path = save_checkpoint(tmp_path / "c", model=nn.Linear(2, 2), step=1)
    state = json.loads((path / "state.json").read_text())
    assert state["numerics"] == numerics_fingerprint()


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_code_revision_names_the_commit_and_uncommitted_changes(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    src = repo / "module.py"
    src.write_text("x = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "module.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert code_revision(src) == {"commit": head, "dirty": False, "changed_files": []}
    (repo / "untracked.txt").write_text("not code\n")  # untracked files (run outputs) do not count
    assert code_revision(src)["dirty"] is False
    src.write_text("x = 2\n")
    assert code_revision(src) == {"commit": head, "dirty": True, "changed_files": ["module.py"]}
    outside = tmp_path / "plain" / "module.py"
    outside.parent.mkdir()
    outside.write_text("x = 1\n")
    assert code_revision(outside) is None
    wheel = repo / "venv" / "site-packages" / "pkg" / "module.py"  # an installed copy inside someone's repo
    wheel.parent.mkdir(parents=True)
    wheel.write_text("x = 1\n")
    assert code_revision(wheel) is None
