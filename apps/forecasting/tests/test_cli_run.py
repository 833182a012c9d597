"""``dforce-forecast run``: the five other benchmark datasets' formats as tiny files, and the error paths."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dforce_forecast.cli import main

# tiny model, few steps: these tests check the plumbing, not the accuracy
FAST = ["--z-dim", "8", "--network-size", "4", "--num-gru-layers", "1", "--batch-size", "4",
        "--batches-per-epoch", "2", "--max-epochs", "1", "--warmup-steps", "0", "--sampling-steps", "2",
        "--num-samples", "4", "--val-num-samples", "2", "--quiet"]

# (registered name, raw-archive time_granularity, prediction length, series, test dates, train length, kwargs)
FORMATS = [
    ("solar_nips", "H", 24, 3, 2, 260, {}),
    ("electricity_nips", "H", 24, 4, 2, 260, {}),
    ("traffic_nips", "H", 24, 3, 2, 260, {"with_nan": True}),
    ("taxi_30min", "30min", 24, 3, 3, 150, {"integer": True}),
    ("wiki-rolling_nips", "D", 30, 3, 2, 120, {"integer": True}),
]


@pytest.mark.parametrize(("name", "freq", "pl", "dim", "windows", "train", "kw"), FORMATS,
                         ids=[f[0] for f in FORMATS])
def test_run_on_each_benchmark_format(tmp_path, gluonts_writer, capsys, name, freq, pl, dim, windows, train, kw):
    """The same `run` command works on a tiny copy of each registered dataset, in its published layout."""
    gluonts_writer(tmp_path / "data" / name, freq=freq, prediction_length=pl, train_length=train,
                   num_windows=windows, dim=dim, raw_layout=True, **kw)
    out = tmp_path / "out"
    argv = ["run", "--dataset", name, "--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "c"),
            "--methods", "df,naive", "--out", str(out), *FAST]
    plots = name == "traffic_nips"  # plots cost ~2 s each on the CPU box: check them on one format
    with pytest.warns(UserWarning) as seen:
        assert main(argv + ([] if plots else ["--no-plots"])) == 0
    messages = [str(w.message) for w in seen]
    assert any("training series" in m and "not comparable" in m for m in messages)  # a tiny copy: fewer series
    assert all("not comparable" in m or "missing training values" in m for m in messages), messages
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((out / "results.json").read_text())
    assert last["results"] == str(out / "results.json")
    assert results["freq"] == freq and results["prediction_length"] == pl
    assert results["target_dim"] == dim and results["num_test_windows"] == windows
    assert {r["method"] for r in results["runs"]} == {"df", "naive"}
    for run in results["runs"]:
        assert all(np.isfinite(run[m]) and run[m] >= 0 for m in ("crps_sum", "crps", "nd", "nrmse"))
        if plots:  # one picture per evaluation: the configured one (rollout) and the authors' one-step
            assert Path(run["plot"]).is_file() and Path(run["plot"]).stat().st_size > 1000
            assert run["plots"]["rollout"] == run["plot"]
            assert Path(run["plots"]["one_step"]).name == f"forecast_{run['method']}_one_step.png"
            assert Path(run["plots"]["one_step"]).is_file()
    assert results["summary"]["naive"]["crps_sum"]["mean"] == last["naive"]
    assert (out / "df" / "seed_0" / "forecaster" / "model.safetensors").is_file()


def test_run_seeds_transformer_and_tf(tmp_path, tiny_daily, capsys):
    out = tmp_path / "out"
    argv = ["run", "--dataset", str(tiny_daily), "--cache-dir", str(tmp_path / "c"), "--methods", "tf,naive",
            "--seeds", "2", "--backbone", "transformer", "--d-model", "16", "--n-layers", "1", "--out", str(out),
            "--no-plots", *FAST]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0, 1] and results["config"]["backbone"] == "transformer"
    tf = [r for r in results["runs"] if r["method"] == "tf"]
    assert [r["seed"] for r in tf] == [0, 1] and tf[0]["crps_sum"] != tf[1]["crps_sum"]
    s = results["summary"]["tf"]["crps_sum"]
    assert s["n"] == 2 and s["mean"] == pytest.approx(np.mean([r["crps_sum"] for r in tf]))
    assert s["std"] == pytest.approx(np.std([r["crps_sum"] for r in tf], ddof=1))
    assert not list(out.glob("*.png"))
    assert "tf " in capsys.readouterr().out
    before = (out / "results.json").read_bytes()
    assert main(argv) == 2  # a rerun into the same --out would replace these results
    assert "holds the results of an earlier run" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before


@pytest.mark.parametrize(("extra", "message"), [
    (["--methods", "df,arima"], "unknown method"),
    (["--methods", ","], "at least one"),
    (["--seeds", "0"], "--seeds must be"),
    (["--max-minutes", "0"], "--max-minutes must be"),
    (["--threads", "0"], "--threads must be"),
    (["--z-dim", "0"], "z_dim must be"),
    (["--plot-window", "9"], "--plot-window must be"),
    (["--val-windows", "0"], "--val-windows must be"),
])
def test_run_rejects_bad_arguments(tmp_path, tiny_daily, capsys, extra, message):
    argv = ["run", "--dataset", str(tiny_daily), "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "o"),
            "--quiet", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dforce-forecast: error:") and message in err


def test_run_reports_missing_and_too_short_data(tmp_path, gluonts_writer, capsys):
    assert main(["run", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "neither a registered dataset" in capsys.readouterr().err
    assert main(["run", "--dataset", "traffic_nips", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not found in data_dir" in capsys.readouterr().err
    # hourly lags reach 168 steps back: 100 training steps cannot hold one window
    short = gluonts_writer(tmp_path / "short", freq="H", prediction_length=24, train_length=100, num_windows=1,
                           dim=2, raw_layout=False)
    assert main(["run", "--dataset", str(short), "--cache-dir", str(tmp_path / "c"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "fewer than one training window" in capsys.readouterr().err


def test_run_rejects_unknown_backbone(tmp_path, tiny_daily):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--dataset", str(tiny_daily), "--backbone", "lstm"])
    assert exc.value.code == 2
