"""JSONL logger round trip and wandb in offline mode."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

import dforce_train
from dforce_train import JSONLLogger, MultiLogger, WandbLogger, make_logger, read_jsonl


def test_jsonl_round_trip(tmp_path):
    logger = JSONLLogger(tmp_path / "run" / "metrics.jsonl")
    logger.log({"loss": 0.5, "lr": 1e-3}, step=1)
    logger.log({"loss": float("nan")}, step=2)
    logger.log_image("samples/frame", np.zeros((4, 4, 3), dtype=np.uint8), step=2)
    logger.close()
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 2]
    assert records[0]["loss"] == 0.5 and records[0]["lr"] == 1e-3
    assert math.isnan(records[1]["loss"])
    assert records[2]["image"] == "samples/frame"
    assert np.load(records[2]["path"]).shape == (4, 4, 3)
    with pytest.raises(ValueError, match="closed"):
        logger.log({"loss": 1.0}, step=3)


def test_make_logger_always_writes_jsonl(tmp_path):
    logger = make_logger(tmp_path, wandb=False)
    assert isinstance(logger, MultiLogger)
    logger.log({"loss": 2.0}, step=5)
    logger.close()
    assert read_jsonl(tmp_path / "metrics.jsonl")[0]["loss"] == 2.0


def test_wandb_logger_defaults_to_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    logger = WandbLogger(project="dforce-test", run_name="offline", config={"lr": 1e-3}, dir=tmp_path)
    logger.log({"loss": 1.25}, step=1)
    logger.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].iterdir())


def test_wandb_is_never_imported_at_module_top_level():
    for module in Path(dforce_train.__file__).parent.glob("*.py"):
        for node in ast.parse(module.read_text()).body:  # top-level statements only
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "wandb" for n in names), module.name
