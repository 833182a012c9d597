"""Smoke tests: the issue-level benchmarks run end to end at toy sizes and print their JSON contract."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "tools" / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rollout_speed_contract(capsys):
    bench = _load("rollout_speed")
    out = bench.main(["--window", "4", "--multiple", "3", "--batch", "2", "--token-dim", "3", "--d-model", "16",
                      "--n-layers", "2", "--n-heads", "2", "--steps", "2", "--repeats", "1"])
    assert out["max_abs_diff"] < 1e-4  # cached and uncached rollouts agree
    assert out["speedup_10x"] > 0 and out["rollout_tokens"] == 12
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["max_abs_diff"] == out["max_abs_diff"]


def test_stability_contract(tmp_path, capsys):
    bench = _load("stability")
    out = bench.main(["--steps", "3", "--batch", "4", "--window", "4", "--multiple", "2", "--d-model", "16",
                      "--n-layers", "1", "--ddim-steps", "2", "--contexts", "6", "--truth-per-context", "2",
                      "--span", "2", "--out", str(tmp_path), "--no-progress"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) >= {"df_ratio", "tf_ratio", "goal_met"} and last["df_ratio"] == out["df_ratio"]
    assert out["df_ratio"] > 0 and out["tf_ratio"] > 0
    assert set(out["momentum"]) == {"DF", "TF", "truth"} and out["df_over_tf_at_10x"] > 0
    assert abs(out["momentum"]["truth"]["at_10x"] - bench.RHO) < 0.3  # few samples at this toy size
    # a second run into the same --out keeps the first one and writes beside it
    first_png = (tmp_path / "stability.png").read_bytes()
    bench.main(["--steps", "2", "--batch", "4", "--window", "4", "--multiple", "2", "--d-model", "16",
                "--n-layers", "1", "--ddim-steps", "2", "--contexts", "6", "--truth-per-context", "2",
                "--span", "2", "--out", str(tmp_path), "--no-progress"])
    assert (tmp_path / "stability.png").read_bytes() == first_png
    assert len(list(tmp_path.glob("run-*/stability.png"))) == 1


def test_stability_task_helpers():
    bench = _load("stability")
    g = torch.Generator().manual_seed(0)
    pos, (last, vel) = bench.simulate(200, 50, g)
    assert pos.shape == (200, 50, 2) and pos.min() >= -1 and pos.max() < 1  # positions wrap around the torus
    assert torch.equal(last, pos[:, -1]) and vel.shape == (200, 2)
    steps = torch.remainder(pos[:, 1:] - pos[:, :-1] + 1, 2) - 1
    assert 0.7 * bench.VSTD < steps.std() < 1.3 * bench.VSTD  # the stationary velocity scale
    more, _ = bench.simulate(200, 3, g, (last, vel))  # continuing from a state keeps the walk going
    assert (torch.remainder(more[:, 0] - last + 1, 2) - 1).abs().max() <= 2 * vel.abs().max() + 1e-6
    tokens = bench.embed(pos)
    assert tokens.shape == (200, 50, 4 * len(bench.HARMONICS)) and tokens.abs().max() <= 1
    err = torch.remainder(bench.decode(tokens) - pos + 1, 2) - 1
    assert err.abs().max() < 1e-5  # the first harmonic decodes the position
    assert bench.off_manifold(tokens).max() < 1e-5 < 0.1 < bench.off_manifold(0.8 * tokens).min()
    feats = bench.features(tokens)
    assert feats.shape == (200, 49, tokens.shape[-1] + 2)
    assert torch.allclose(feats[..., -2:], steps * bench.VSCALE, atol=1e-4)
    radii = bench.circle_radii(tokens)
    assert radii.shape == (200, 50, 2 * len(bench.HARMONICS)) and torch.allclose(radii, torch.ones_like(radii))
    assert torch.allclose(bench.circle_radii(0.8 * tokens), torch.full_like(radii, 0.8))
    dyn = bench.dynamics_features(tokens)  # velocity pairs and radii: the same law wherever the walk is
    assert dyn.shape == (200, 48, 4 + 2 * len(bench.HARMONICS))
    assert torch.allclose(dyn[..., :2], steps[:, :-1] * bench.VSCALE, atol=1e-4)
    assert torch.allclose(dyn[..., 2:4], steps[:, 1:] * bench.VSCALE, atol=1e-4)
    assert torch.allclose(dyn[..., 4:], radii[:, 2:])
    lag1 = torch.corrcoef(torch.stack([dyn[..., 0].flatten(), dyn[..., 2].flatten()]))[0, 1]
    assert abs(lag1 - bench.RHO) < 0.05  # the momentum the pair carries
    shifted = bench.embed(torch.remainder(pos + 0.5 + 1, 2) - 1)  # the same paths translated on the torus
    assert torch.allclose(bench.dynamics_features(shifted), dyn, atol=1e-4)
    m = bench.window_metrics(tokens[:100], tokens[100:], 5, 50)
    assert set(m) == {"fd", "fd_full", "sw", "off_manifold", "momentum"} and m["off_manifold"] < 1e-5
    assert abs(m["momentum"] - bench.RHO) < 0.05
    off = bench.window_metrics(0.8 * tokens[:100], tokens[100:], 5, 50)  # leaving the manifold is seen
    assert off["fd"] > 0.08 > 2 * m["fd"]  # radius 0.8 instead of 1 on both circles: at least 2 * 0.2^2
    assert off["off_manifold"] == pytest.approx(0.2 / 2**0.5, rel=1e-4)  # RMS over the 4 token dims
    a = torch.randn(4000, 3, generator=g)
    assert bench.frechet_distance(a, torch.randn(4000, 3, generator=g)) < 0.02
    assert bench.frechet_distance(a, a + 1.0) == pytest.approx(3.0, rel=0.02)  # mean shift of 1 in 3 dims
    assert bench.sliced_wasserstein(a, a) < 1e-9 < bench.sliced_wasserstein(a, a + 1.0)


def test_crps_bounds_sign_blind_bound_matches_the_metric():
    """The sign-blind bound 10 sum|d| / (19 sum|y|) is the two-point forecast's crps_sum averaged over both signs
    of every move (it pays 9 d on an up move and 11 d on a down move)."""
    pytest.importorskip("dforce_forecast")
    from dforce_forecast.metrics import crps_sum

    bench = _load("crps_bounds")
    rng = np.random.default_rng(0)
    last = np.full((3, 2), 5.0)  # (N, D)
    dev = np.abs(rng.standard_normal((3, 4))) + 0.1  # (N, P) size of each move of the sum
    scores = []
    for sign in (1.0, -1.0):
        truth = last[:, None] + sign * np.stack([dev, np.zeros_like(dev)], axis=-1)  # (N, P, D): series 0 moves
        samples = bench.sign_blind_samples(truth, last, 100)  # (N, S, P, 1)
        scores.append(crps_sum(samples, truth.sum(-1, keepdims=True)))
        assert bench.sign_blind_bound(truth, last) == pytest.approx(10 * dev.sum() / (19 * np.abs(truth.sum(-1)).sum()))
    up, down = scores
    expected = [k * dev.sum() / (19 * np.abs(10 + s * dev).sum()) for k, s in ((9, 1), (11, -1))]
    assert up == pytest.approx(expected[0]) and down == pytest.approx(expected[1])
    walk = bench.scaled_walk(np.ones((2, 3, 4, 2)), np.zeros((2, 2)), np.array([0.5, 2.0]))
    assert walk[0].max() == 0.5 and walk[1].max() == 2.0


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED_DATA / "exchange_rate_nips.tar.gz").is_file(),
                    reason="../shared/data/exchange_rate_nips.tar.gz is absent (the real dataset)")
def test_forecast_evaluations_contract(tmp_path, capsys):
    """A saved forecaster scored both ways on the real exchange test windows, with the picture."""
    pytest.importorskip("dforce_forecast")
    from dforce_forecast import ForecastConfig, Forecaster
    from dforce_forecast.data import prepare

    from dforce_datasets.timeseries import load_dataset, to_multivariate

    md = to_multivariate(load_dataset("exchange_rate_nips", data_dir=str(SHARED_DATA), download=False))
    cfg = ForecastConfig(target="delta", z_dim=8, network_size=2, num_gru_layers=1, sampling_steps=2)
    fc = Forecaster(cfg, "df")
    fc._build(prepare(md, target="delta", name="exchange_rate_nips"), 0)  # untrained: the contract only
    fc.save(tmp_path / "fc")
    bench = _load("forecast_evaluations")
    out = bench.main(["--model", str(tmp_path / "fc"), "--data-dir", str(SHARED_DATA), "--num-samples", "4",
                      "--out", str(tmp_path / "both.png")])
    assert set(out["crps_sum"]) == {"rollout", "one_step"} and all(v > 0 for v in out["crps_sum"].values())
    assert (tmp_path / "both.png").stat().st_size > 1000
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["crps_sum"] == out["crps_sum"]


def test_maze_ceiling_contract(tmp_path, capsys):
    pytest.importorskip("mujoco")
    bench = _load("maze_ceiling")
    out = bench.main(["--mazes", "umaze", "--episodes", "3", "--horizon", "120", "--out", str(tmp_path)])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [r["multi"] for r in last["rows"]] == [False, True] and (tmp_path / "ceiling.png").exists()
    for row in out["rows"]:
        assert row["horizon"] == 120 and row["oracle"]["raw"] <= row["bound"]["raw"]
        assert row["paper_df_as_raw_return"]["raw"] == row["paper_df"]
    single = out["rows"][0]
    # 116.7 read as a raw umaze return is (116.7 - 23.85) / (161.86 - 23.85) x 100 normalized
    assert single["paper_df_as_raw_return"]["normalized"] == pytest.approx(100 * (116.7 - 23.85) / 138.01)
    bench.main(["--mazes", "umaze", "--episodes", "2", "--task", "single", "--out", str(tmp_path)])
    assert len(list(tmp_path.glob("run-*/ceiling.png"))) == 1  # the first picture is kept


def test_plan_gpu_passes_the_df_recipe_to_df_commands_only(tmp_path):
    bench_mod = _load("plan_gpu")
    args = bench_mod.parse_args(["--out", str(tmp_path), "--mazes", "umaze", "--no-multi2d",
                                 "--df-train-args", "--loss-weighting constant --action-std 2 2",
                                 "--df-eval-args", "--guidance-form paper --guidance-scale 10",
                                 "--diffuser-train-args", "--channels pos"])
    (tmp_path / "umaze.hdf5").write_bytes(b"")  # the data step is skipped when the file exists
    bench = bench_mod.Bench(args)
    calls = []

    def fake_run(name, cmd, reserve=0.0):
        calls.append((name, cmd))
        if name.endswith("_export"):
            return {}
        if name.endswith("_train"):
            return {"step": 1}
        return {"dforce/maze2d-umaze-v1": {"score": 1.0, "score_sem": 0.1, "success_rate": 1.0, "steps_to_goal": 5,
                                           "episodes": 1, "replan_ms_per_env": 1.0}}

    bench.run = fake_run
    bench_mod.pipeline(bench, "umaze")
    by_name = {name: " ".join(cmd) for name, cmd in calls}
    assert by_name["umaze_df_train"].endswith("--loss-weighting constant --action-std 2 2")
    assert "--action-std" not in by_name["umaze_diffuser_train"]
    assert by_name["umaze_diffuser_train"].endswith("--channels pos") and "--channels" not in by_name["umaze_df_train"]
    for method in ("df_mcg", "df"):
        assert by_name[f"umaze_{method}"].endswith("--guidance-form paper --guidance-scale 10")
    assert "--guidance-form" not in by_name["umaze_diffuser"]
    assert [row["method"] for row in bench.record["rows"]] == ["df_mcg", "df", "diffuser"]
    with pytest.raises(SystemExit):
        bench_mod.parse_args(["--df-eval-args", "--guidance-scale '10"])  # unbalanced quote: a usage error


def test_plan_gpu_recipes_set_training_defaults_that_flags_override(tmp_path):
    bench_mod = _load("plan_gpu")
    ours = bench_mod.parse_args(["--out", str(tmp_path)])
    assert (ours.recipe, ours.steps, ours.batch_size, ours.lr, ours.warmup, ours.df_train_args) == (
        "ours", 100_000, 1024, 5e-4, 1000, "")
    paper = bench_mod.parse_args(["--out", str(tmp_path), "--recipe", "paper", "--batch-size", "512"])
    assert (paper.steps, paper.batch_size, paper.lr, paper.warmup) == (120_000, 512, 2e-4, 100)  # the flag wins
    assert paper.df_train_args == "--backbone rnn --loss-weighting constant"
    own = bench_mod.parse_args(["--recipe", "paper", "--df-train-args", "--backbone rnn --network-size 8"])
    assert own.df_train_args == "--backbone rnn --network-size 8"
    # the recipe reaches the DF training command only, through the same pipeline as every other flag
    (tmp_path / "umaze.hdf5").write_bytes(b"")
    bench = bench_mod.Bench(bench_mod.parse_args(["--out", str(tmp_path), "--recipe", "paper", "--mazes", "umaze",
                                                  "--no-multi2d", "--methods", "df", "diffuser"]))
    calls = {}

    def record_and_fail(name, cmd, reserve=0.0):  # every step "fails": the pipeline stops after the training calls
        calls[name] = " ".join(cmd)
        return None

    bench.run = record_and_fail
    bench_mod.pipeline(bench, "umaze")
    assert calls["umaze_df_train"].endswith("--backbone rnn --loss-weighting constant")
    assert "--batch-size 2048 --lr 0.0002 --warmup 100" in calls["umaze_df_train"]
    assert "--backbone" not in calls["umaze_diffuser_train"]


def test_pool_episodes_by_hand(tmp_path, capsys):
    bench = _load("pool_episodes")
    # two models, umaze single task: model 0 scores 100 on seeds 0-99 and 120 on 100-199, model 1 80 / 100 on the
    # first half of each set and 90 / 110 on the second half
    rows = {"umaze/df/single/model0": {"scores_seeds_0_99": [100.0] * 100, "scores_seeds_100_199": [120.0] * 100},
            "umaze/df/single/model1": {"scores_seeds_0_99": [80.0] * 50 + [90.0] * 50,
                                       "scores_seeds_100_199": [100.0] * 50 + [110.0] * 50}}
    (row,) = bench.pool(rows)
    assert row["per_model"] == pytest.approx([110.0, 95.0])
    assert row["seeds_0_99"] == pytest.approx((92.5, 7.5))  # models 100 and 85: SE = |100 - 85| / 2
    assert row["seeds_100_199"] == pytest.approx((112.5, 7.5))
    assert row["pooled"] == pytest.approx((102.5, 7.5))
    # per episode averaged over the models: 90 / 95 (seeds 0-99 halves), 110 / 115 (seeds 100-199 halves)
    per_episode = np.array([90.0] * 50 + [95.0] * 50 + [110.0] * 50 + [115.0] * 50)
    assert row["se_episodes"] == pytest.approx(per_episode.std(ddof=1) / np.sqrt(200))
    assert row["paper_df"] == 116.7 and row["paper_same_method"] == 110.1  # the paper's DF w/o MCG
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(rows))
    # a second file adds rows (the Diffuser-style baseline); the same row in two files is refused
    other = tmp_path / "diffuser.json"
    other.write_text(json.dumps({"umaze/diffuser/Multi2D/model0": {"scores_seeds_0_99": [50.0] * 100,
                                                                   "scores_seeds_100_199": [70.0] * 100}}))
    bench.main([str(path), str(other)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert "**102.5 ± 7.5**" in lines[2] and json.loads(lines[-2])["pooled"] == pytest.approx([102.5, 7.5])
    last = json.loads(lines[-1])
    assert (last["method"], last["models"], last["per_model"], last["paper_same_method"]) == \
        ("diffuser", 1, [60.0], 128.9)  # the paper's Diffuser* on Multi2D umaze
    assert last["pooled"] == [60.0, None]  # one model: no SE over models, written as JSON null
    with pytest.raises(SystemExit, match="no scores file"):
        bench.main([str(tmp_path / "missing.json")])
    with pytest.raises(ValueError, match="repeats rows"):
        bench.main([str(path), str(path)])
    rows["umaze/df/single/model1"]["scores_seeds_0_99"] = [1.0] * 99
    with pytest.raises(ValueError, match="100 scores per set"):
        bench.pool(rows)


def test_plan_brake_window_stats_by_hand():
    bench = _load("plan_brake")
    goal = np.array([1.0, 1.0])
    # one plan of 25 frames: 10 frames at the goal at rest, then 15 frames 2 units away moving at 3 units/s
    pos = np.concatenate([np.tile(goal, (10, 1)), np.tile(goal + [2.0, 0.0], (15, 1))])[None]  # (1, 25, 2)
    vel = np.concatenate([np.zeros((10, 2)), np.tile([0.0, 3.0], (15, 1))])[None]  # (1, 25, 2)
    rows = bench.window_stats(pos, vel, goal, radius=0.5, slow=0.5)
    assert [r["frames"] for r in rows] == [[0, 20], [20, 25]]  # the second window is cut at the plan's end
    assert rows[0] == {"frames": [0, 20], "speed": 1.5, "in_goal": 0.5, "slow": 0.5}
    assert rows[1] == {"frames": [20, 25], "speed": 3.0, "in_goal": 0.0, "slow": 0.0}
    obs = np.array([[1.2, 1.0, 3.0, 0.0], [1.1, 1.0, 0.2, 0.0], [3.0, 1.0, 3.0, 0.0], [1.0, 1.4, 0.0, 0.5]])
    kinds = bench.pick_states(obs, goal, samples=5, seed=0)
    assert kinds["arriving"].tolist() == [obs[0].tolist()]  # within 1 unit and faster than 2 units/s
    assert sorted(kinds["resting"][:, 0].tolist()) == [1.0, 1.1]  # within 0.5 and slower than 1 unit/s


def _random_plan_checkpoint(tmp_path, spec):
    """A dforce-plan checkpoint directory of ``spec``'s network with random weights (so plans depend on the input)."""
    from safetensors.torch import save_model

    torch.manual_seed(0)
    model = spec.build()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape) * 0.2)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    save_model(model, str(ckpt / "model.safetensors"))
    (ckpt / "state.json").write_text(json.dumps({"step": 0, "model_config": {"planning": spec.to_dict()}}))
    return ckpt


def test_plan_brake_contract(tmp_path, capsys):
    pytest.importorskip("dforce_plan")
    from dforce_plan.model import ModelSpec

    from dforce_datasets.maze2d import GenerateConfig, generate, to_d4rl, write_hdf5

    ckpt = _random_plan_checkpoint(tmp_path, ModelSpec(kind="df", n_tokens=4, d_model=16, n_layers=2, n_heads=2))
    write_hdf5(tmp_path / "umaze.hdf5", to_d4rl(generate(GenerateConfig("umaze", steps=6000, seed=0, noisy=True))))
    argv = ["--ckpt", str(ckpt), "--maze", "umaze", "--data", str(tmp_path / "umaze.hdf5"), "--samples", "4",
            "--guidance-scale", "0.5"]
    bench = _load("plan_brake")
    out = bench.main(argv)
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["kinds"] == json.loads(json.dumps(out["kinds"])) and last["goal"] == [1.0, 1.0]  # umaze's single-task goal
    assert last["planner"]["guidance_scale"] == 0.5 and last["steps_left"] == 150
    arriving = out["kinds"]["arriving"]
    assert 1 <= arriving["n"] <= 4 and arriving["start_speed"] > 2.0
    assert [r["frames"] for r in arriving["windows"]] == [[0, 20], [20, 40]]  # the model's 4 tokens x 10 frames
    for r in arriving["windows"]:
        assert r["speed"] >= 0 and 0 <= r["in_goal"] <= 1 and 0 <= r["slow"] <= 1
    assert bench.main(argv)["kinds"] == out["kinds"]  # seeded: the same states and plans


@pytest.mark.parametrize("backbone", ["transformer", "rnn"])
def test_plan_commit_contract(tmp_path, capsys, backbone):
    pytest.importorskip("dforce_plan")
    from dforce_plan.model import ModelSpec

    size = dict(d_model=16, n_layers=2, n_heads=2) if backbone == "transformer" else dict(z_dim=16, network_size=2)
    ckpt = _random_plan_checkpoint(tmp_path, ModelSpec(kind="df", n_tokens=4, backbone=backbone, **size))
    bench = _load("plan_commit")
    out = bench.main(["--ckpt", str(ckpt), "--maze", "umaze", "--batch", "3", "--repeats", "2", "--guidance-scale",
                      "0.5"])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["backbone"] == backbone and last["steps"] == 40 and len(last["plain_all_s"]) == 2
    assert last["speedup"] == pytest.approx(out["plain_s"] / out["early_s"])
    assert out["max_abs_diff"] < 1e-4  # the same plans on both paths
    with pytest.raises(SystemExit):
        bench.main(["--ckpt", str(ckpt), "--maze", "umaze", "--batch", "0"])
