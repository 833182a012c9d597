import copy
import json
import math

import pytest

from dforce_plan.cli import main
from dforce_plan.seeds import combine, load_results


def _result(score, success, hold, env_id="dforce/maze2d-umaze-v1", **planner):
    row = {"env_id": env_id, "method": "df_mcg", "controller": "actions", "episodes": 100, "seed": 0,
           "score": score, "score_sem": 5.0, "paper_score": 116.7, "raw_return": score + 1.0,
           "success_rate": success, "goal_hold": hold, "score_if_stay": 2 * score, "steps_to_goal_all": 100.0 - score,
           "planner": {"guidance_scale": 3.0, "mc_samples": 10, **planner},
           "model": {"maze": "umaze", "kind": "df", "frame_stack": 10, "n_tokens": 30, "d_model": 64, "n_layers": 3,
                     "n_heads": 4, "objective": "pred_x0"}}
    return {env_id: row}


def _write(tmp_path, results):
    paths = []
    for i, result in enumerate(results):
        path = tmp_path / f"seed{i}.json"
        path.write_text(json.dumps(result))
        paths.append(str(path))
    return paths


def test_combine_gives_the_mean_and_spread_over_training_seeds(tmp_path):
    # scores 10, 20, 60: mean 30, deviations -20, -10, 30 -> std sqrt(1400 / 2) = sqrt(700), SE sqrt(700 / 3)
    paths = _write(tmp_path, [_result(10.0, 0.5, 0.4), _result(20.0, 0.7, float("nan")), _result(60.0, 0.9, 0.8)])
    row = combine(load_results(paths))["dforce/maze2d-umaze-v1"]
    assert row["models"] == 3 and row["scores"] == [10.0, 20.0, 60.0]
    assert row["score"] == pytest.approx(30.0)
    assert row["score_std_models"] == pytest.approx(math.sqrt(700.0))
    assert row["score_sem_models"] == pytest.approx(math.sqrt(700.0 / 3.0))
    assert (row["min"], row["max"]) == (10.0, 60.0)
    assert row["success_rate"] == pytest.approx(0.7)
    assert row["goal_hold"] == pytest.approx(0.6)  # the model without a success has no goal_hold
    assert row["score_if_stay"] == pytest.approx(60.0) and row["steps_to_goal_all"] == pytest.approx(70.0)


def test_combine_keeps_tasks_apart_and_needs_two_models_for_a_spread():
    multi = "dforce/maze2d-multi-umaze-v1"
    both = _result(10.0, 0.5, 0.4)
    both.update(_result(40.0, 0.8, 0.5, env_id=multi))
    out = combine([("a.json", both), ("b.json", _result(30.0, 0.6, 0.5))])
    assert out["dforce/maze2d-umaze-v1"]["score"] == pytest.approx(20.0)
    assert out[multi]["models"] == 1 and out[multi]["score_std_models"] is None


def test_combine_refuses_runs_evaluated_differently_or_given_twice():
    a = _result(10.0, 0.5, 0.4)
    with pytest.raises(ValueError, match="planner settings differ.*guidance_scale"):
        combine([("a", a), ("b", _result(20.0, 0.5, 0.4, guidance_scale=1.0))])
    other_seed = copy.deepcopy(_result(20.0, 0.5, 0.4))
    other_seed["dforce/maze2d-umaze-v1"]["seed"] = 1000
    with pytest.raises(ValueError, match="seed differs"):
        combine([("a", a), ("b", other_seed)])
    wider = copy.deepcopy(_result(20.0, 0.5, 0.4))
    wider["dforce/maze2d-umaze-v1"]["model"]["d_model"] = 128
    with pytest.raises(ValueError, match="model d_model differs"):
        combine([("a", a), ("b", wider)])
    older = copy.deepcopy(_result(20.0, 0.5, 0.4, stop_radius=1.0))  # an option the older file predates
    del older["dforce/maze2d-umaze-v1"]["goal_hold"]  # a figure the older file predates
    row = combine([("a", a), ("b", older)])["dforce/maze2d-umaze-v1"]
    assert row["models"] == 2 and row["goal_hold"] is None and row["success_rate"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same results"):
        combine([("a", a), ("b", copy.deepcopy(a))])


def test_combine_refuses_other_data_and_the_same_checkpoint_twice():
    def with_provenance(score, sha, path):
        result = copy.deepcopy(_result(score, 0.5, 0.4))
        result["dforce/maze2d-umaze-v1"]["checkpoint"] = {"path": path, "step": 15000,
                                                          "data": {"sha256": sha, "arrays": {}}, "numerics": None}
        return result

    a = with_provenance(10.0, "ab" * 32, "runs/s0/checkpoints/step_00015000")
    row = combine([("a", a), ("b", with_provenance(20.0, "ab" * 32, "runs/s1/checkpoints/step_00015000"))])
    assert row["dforce/maze2d-umaze-v1"]["models"] == 2
    with pytest.raises(ValueError, match="trained on different data"):
        combine([("a", a), ("b", with_provenance(20.0, "cd" * 32, "runs/s1/checkpoints/step_00015000"))])
    # the same model evaluated twice (another machine, other results) is not a second training seed
    with pytest.raises(ValueError, match="the same checkpoint"):
        combine([("a", a), ("b", with_provenance(20.0, "ab" * 32, "runs/s0/checkpoints/step_00015000"))])
    # files written before provenance existed still combine with newer ones
    assert combine([("a", a), ("b", _result(30.0, 0.5, 0.4))])["dforce/maze2d-umaze-v1"]["models"] == 2


def test_cli_seeds_prints_the_combined_rows_and_rejects_bad_files(tmp_path, capsys):
    paths = _write(tmp_path, [_result(10.0, 0.5, 0.4), _result(30.0, 0.7, 0.6)])
    assert main(["seeds", *paths]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["dforce/maze2d-umaze-v1"]["score"] == pytest.approx(20.0)
    assert "| dforce/maze2d-umaze-v1 | df_mcg (actions) | 2 | 20.0 ± 10.0 | 10.0 / 30.0 | 60% | 0.50 | 116.7 |" in err
    summary = tmp_path / "df_mcg_umaze_summary.json"  # eval's per-task summary file is accepted too
    summary.write_text(json.dumps(_result(50.0, 0.9, 0.7)["dforce/maze2d-umaze-v1"]))
    assert main(["seeds", "--quiet", *paths, str(summary)]) == 0
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["score"] == pytest.approx(30.0)
    assert main(["seeds", paths[0]]) == 2
    assert "at least two models" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["seeds", paths[0], str(bad)]) == 2
    assert "is not JSON" in capsys.readouterr().err
    bad.write_text(json.dumps({"steps": 3}))
    assert main(["seeds", paths[0], str(bad)]) == 2
    assert "is not a `dforce-plan eval` result" in capsys.readouterr().err
    assert main(["seeds", paths[0], str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
