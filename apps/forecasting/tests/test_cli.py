"""The ``dforce-forecast data`` sub-command."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from dforce_forecast.cli import main

EXCHANGE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "exchange_rate_nips.tar.gz"


def write_tiny(root: Path) -> Path:
    """A processed-layout hourly dataset: 3 series, 2 rolling test dates, prediction length 4."""
    (root / "train").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "metadata.json").write_text(json.dumps({"freq": "H", "prediction_length": 4}))
    (root / "train" / "data.json").write_text("\n".join(
        json.dumps({"start": "2014-01-01 00:00:00", "target": [float(t) for t in range(200)]}) for _ in range(3)))
    (root / "test" / "data.json").write_text("\n".join(
        json.dumps({"start": "2014-01-01 00:00:00", "target": [float(t) for t in range(200 + 4 * (w + 1))]})
        for w in range(2) for _ in range(3)))
    return root


def test_console_script_is_registered():
    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
    assert scripts.get("dforce-forecast") == "dforce_forecast.cli:main"


def test_data_on_a_directory(tmp_path, capsys):
    assert main(["data", "--dataset", str(write_tiny(tmp_path / "tiny")), "--cache-dir", str(tmp_path / "c")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["freq"] == "H" and info["target_dim"] == 3 and info["num_test_dates"] == 2
    assert info["test_window_lengths"] == [204, 208] and info["lags"] == [1, 24, 168]
    assert info["history_length"] == 4 + 168


def test_data_errors_exit_2(tmp_path, capsys):
    assert main(["data", "--dataset", str(tmp_path / "missing")]) == 2
    assert "neither a registered dataset" in capsys.readouterr().err
    assert main(["data", "--dataset", "solar_nips", "--data-dir", str(tmp_path)]) == 2
    assert "not found in data_dir" in capsys.readouterr().err


def test_data_on_exchange(tmp_path, capsys):
    if not EXCHANGE.is_file():
        pytest.skip(f"real exchange_rate_nips archive not found at {EXCHANGE}")
    argv = ["data", "--dataset", "exchange_rate_nips", "--data-dir", str(EXCHANGE.parent),
            "--cache-dir", str(tmp_path)]
    assert main(argv) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["target_dim"] == 8 and info["train_steps"] == 6071 and info["num_test_dates"] == 5
    assert info["test_window_lengths"] == [6101, 6131, 6161, 6191, 6221]
    assert info["freq"] == "B" and info["prediction_length"] == 30 and info["lags"] == [1, 2]
    assert info["train_start"].startswith("1990-01-01")
