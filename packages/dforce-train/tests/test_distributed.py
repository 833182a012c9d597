"""Process-group helpers and DDP equivalence with single-process training."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dforce_train import DistInfo, barrier, cleanup, init_distributed, is_main, read_jsonl

WORKER = Path(__file__).with_name("ddp_worker.py")
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")


def test_single_process_without_torchrun_env(monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    info = init_distributed("cpu")
    assert info == DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert info.is_main and not info.is_distributed and is_main()
    barrier()
    cleanup()


def test_partial_torchrun_env_is_an_error(monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="missing"):
        init_distributed("cpu")


def _run(args: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_VARS}
    env["OMP_NUM_THREADS"] = "1"
    try:
        proc = subprocess.run(
            [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{args} timed out after 120 s\nstdout:\n{e.stdout}\nstderr:\n{e.stderr}")
    if proc.returncode != 0:
        pytest.fail(f"{args} exited with {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


@pytest.mark.multiprocess
@pytest.mark.slow
def test_ddp_matches_single_process(tmp_path, monkeypatch):
    for var in TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    single, ddp = tmp_path / "single.safetensors", tmp_path / "ddp.safetensors"
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    _run([*torchrun, str(WORKER), str(ddp), str(tmp_path / "run")], tmp_path)
    spec = importlib.util.spec_from_file_location("dforce_train_ddp_worker", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    worker.main(str(single), None)  # the same script as one plain process (no torchrun variables here)

    a, b = load_file(single), load_file(ddp)
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    for key in a:
        diff = (a[key] - b[key]).abs().max().item()
        assert diff < 1e-5, f"{key}: max abs diff {diff}"
    initial = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.SiLU(), torch.nn.Linear(32, 6))
    assert not torch.allclose(a["model.0.weight"], initial[0].weight)  # it did train

    ckpt = tmp_path / "run" / "checkpoints" / "step_00000005"
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 5 and state["world_size"] == 2  # RNG states of both ranks were gathered
    assert [r["step"] for r in read_jsonl(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3, 4, 5]  # rank 0 only
