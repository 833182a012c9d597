import json

import h5py
import numpy as np
import pytest
import torch

from dforce_plan.cli import main
from dforce_plan.evaluate import EvalConfig, GoalSpeed, evaluate, goal_hold
from dforce_plan.planner import Planner, PlannerConfig
from dforce_train import array_fingerprint, read_jsonl


def test_eval_on_three_episodes_writes_png_and_jsonl(tmp_path, make_model):
    model, spec = make_model()
    planner = Planner(model, spec, PlannerConfig(mc_samples=2, guidance_scale=0.5, sampling_steps=2, horizon=20,
                                                 replan_every=50))
    summary = evaluate(planner, EvalConfig(maze="umaze", episodes=3, seed=5, show=2, latency_batch=1,
                                           latency_repeats=1, progress=False), tmp_path, wandb="off")
    assert summary["episodes"] == 3 and summary["replans"] == 15  # 300 steps; a 20-step plan runs out before 50
    assert 0.0 <= summary["success_rate"] <= 1.0
    assert summary["paper_score"] == 116.7
    png = tmp_path / "df_mcg_umaze.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    episodes = [json.loads(line) for line in (tmp_path / "df_mcg_umaze_episodes.jsonl").read_text().splitlines()]
    assert [e["seed"] for e in episodes] == [5, 6, 7]
    scores = np.array([e["score"] for e in episodes])
    assert np.isclose(scores.mean(), summary["score"])
    reach = np.array([e["first_reach"] if e["success"] else 300 for e in episodes])
    assert summary["steps_to_goal_all"] == pytest.approx(reach.mean())
    returns = np.array([e["return"] for e in episodes])
    assert np.allclose(scores, 100 * (returns - 23.85) / (161.86 - 23.85))
    if_stay = np.array([301 - e["first_reach"] if e["success"] else 0 for e in episodes])
    assert summary["score_if_stay"] == pytest.approx(np.mean(100 * (if_stay - 23.85) / (161.86 - 23.85)))
    assert all((e["hold"] is None) != e["success"] for e in episodes)
    if summary["success_rate"] > 0:
        assert summary["goal_speed"] >= 0 and 0 <= summary["goal_slow_frac"] <= 1
    else:
        assert np.isnan(summary["goal_speed"])
    logged = read_jsonl(tmp_path / "metrics.jsonl")
    assert logged[0]["score"] == pytest.approx(summary["score"])
    assert logged[0]["latency_fast_ms"] > 0 and logged[0]["latency_reference_ms"] > 0
    assert summary["latency"]["max_abs_diff"] < 1e-3  # fast and reference paths plan the same
    assert summary["latency"]["max_abs_diff_executed"] <= summary["latency"]["max_abs_diff"]
    assert any(r.get("image") == "trajectories" for r in logged)


def test_replan_near_replans_only_the_envs_near_their_goal(tmp_path, make_model, monkeypatch):
    """replan_near: between the scheduled replans, only the envs within R of their goal plan again (as a smaller
    batch), and a radius that reaches every cell makes every env plan every step, as replan_every 1 would."""
    from dforce_plan import evaluate as ev_mod

    model, spec = make_model()
    cfg = EvalConfig(maze="umaze", episodes=3, seed=2, show=2, latency_batch=0, progress=False)
    calls = []
    real = Planner.plan

    def spy(self, obs, goals, steps_left, t0=0, **kw):
        calls.append((t0, obs.shape[0]))
        return real(self, obs, goals, steps_left, t0=t0, **kw)

    monkeypatch.setattr(Planner, "plan", spy)
    settings = dict(guidance_scale=0.0, sampling_steps=1, horizon=20, replan_every=10)
    base = evaluate(Planner(model, spec, PlannerConfig(**settings)), cfg, None, wandb="off")
    assert base["near_replans"] == 0 and calls == [(t, 3) for t in range(0, 300, 10)]
    calls.clear()
    everywhere = evaluate(Planner(model, spec, PlannerConfig(**settings, replan_near=100.0)), cfg, None, wandb="off")
    assert calls == [(t, 3) for t in range(300)]  # scheduled at multiples of 10, near-goal replans between
    assert everywhere["near_replans"] == 270 and everywhere["near_replan_rows"] == 810
    calls.clear()
    seen = []
    real_splice = ev_mod.splice

    def splice_spy(plan, rows, sub):
        seen.append(rows.copy())
        return real_splice(plan, rows, sub)

    monkeypatch.setattr(ev_mod, "splice", splice_spy)
    near = evaluate(Planner(model, spec, PlannerConfig(**settings, replan_near=1.5)), cfg, tmp_path, wandb="off")
    assert 0 < near["near_replans"] < 270 and near["near_replans"] == len(seen) and near["near_replan_rows"] == sum(int(r.sum()) for r in seen)
    assert [t for t, n in calls if n == 3 and t % 10 == 0] == list(range(0, 300, 10))  # the schedule is kept
    assert any(0 < n < 3 for t, n in calls if t % 10)  # and subsets plan between scheduled replans
    assert json.loads((tmp_path / "df_mcg_umaze_summary.json").read_text())["planner"]["replan_near"] == 1.5


def test_commit_finished_plays_the_same_episodes(make_model):
    """Committing finished plan tokens early (faster) plans the same, so the episodes and scores are the same."""
    model, spec = make_model()
    cfg = EvalConfig(maze="umaze", episodes=3, seed=2, show=0, latency_batch=2, progress=False)
    settings = dict(method="df_mcg", mc_samples=2, guidance_scale=0.5, sampling_steps=3, horizon=40, replan_every=20)
    plain = evaluate(Planner(model, spec, PlannerConfig(**settings, commit_finished=False)), cfg, None, wandb="off")
    early = evaluate(Planner(model, spec, PlannerConfig(**settings)), cfg, None, wandb="off")  # the default
    assert early["planner"]["commit_finished"] and not plain["planner"]["commit_finished"]
    assert early["score"] == pytest.approx(plain["score"], abs=1e-9)
    assert early["steps_to_goal_all"] == pytest.approx(plain["steps_to_goal_all"], abs=1e-9)
    assert early["latency"]["max_abs_diff"] < 1e-3  # against the uncached reference path


def test_goal_hold_counts_steps_after_the_first_arrival():
    # horizon 10: arrives during step 2 (first_reach 3) and stays 8 steps; arrives at step 0 (first_reach 1),
    # stays 4 of 10; never arrives
    if_stay, hold = goal_hold(np.array([8.0, 4.0, 0.0]), np.array([3, 1, -1]), 10)
    assert if_stay.tolist() == [8.0, 10.0, 0.0]
    assert hold[:2].tolist() == [1.0, 0.4] and np.isnan(hold[2])
    with pytest.raises(ValueError, match="first arrival"):
        goal_hold(np.array([9.0]), np.array([3]), 10)


def test_goal_speed_averages_the_speeds_inside_the_goal():
    gs = GoalSpeed()
    assert np.isnan(gs.summary()["goal_speed"])  # never inside: no speed to report
    obs = np.array([[1.0, 1.0, 3.0, 4.0], [0.0, 0.0, 0.3, 0.0], [2.0, 2.0, 9.0, 9.0]])
    gs.add(obs, np.array([True, True, False]))  # speeds 5 and 0.3 inside; the third ball is outside
    gs.add(obs[:1] * [1, 1, 0, 0.1], np.array([True]))  # speed 0.4
    out = gs.summary()
    assert out["goal_speed"] == pytest.approx((5.0 + 0.3 + 0.4) / 3)
    assert out["goal_speed_median"] == pytest.approx(0.4)
    assert out["goal_slow_frac"] == pytest.approx(2 / 3)  # 0.3 and 0.4 are below 0.5 units/s
    with pytest.raises(ValueError, match="mask"):
        gs.add(obs, np.array([True]))


def test_multi2d_draws_a_goal_per_episode(tmp_path, make_model):
    model, spec = make_model()
    planner = Planner(model, spec, PlannerConfig(guidance_scale=0.0, sampling_steps=1, horizon=10, replan_every=100))
    summary = evaluate(planner, EvalConfig(maze="umaze", multi=True, episodes=2, show=0, latency_batch=0,
                                           progress=False), tmp_path, wandb="off")
    goals = [json.loads(line)["goal"] for line in (tmp_path / "df_mcg_multi-umaze_episodes.jsonl").read_text().splitlines()]
    assert summary["env_id"] == "dforce/maze2d-multi-umaze-v1" and goals[0] != goals[1]


def test_cli_data_train_eval_round_trip(tmp_path, capsys):
    data = tmp_path / "u.hdf5"
    assert main(["data", "--steps", "3000", "--out", str(data), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3000
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "3", "--n-tokens", "3", "--d-model", "16",
                 "--n-layers", "1", "--n-heads", "2", "--threads", "1", "--quiet", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 3
    out = tmp_path / "eval"
    assert main(["eval", "--ckpt", str(run), "--episodes", "2", "--sampling-steps", "1", "--replan-every", "100",
                 "--mc-samples", "2", "--show", "1", "--latency-batch", "0", "--out", str(out), "--wandb", "off",
                 "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["dforce/maze2d-umaze-v1"]["episodes"] == 2 and (out / "df_mcg_umaze.png").is_file()
    # the summary says which data trained the model and on which kernels it was trained and evaluated
    provenance = json.loads((out / "df_mcg_umaze_summary.json").read_text())
    with h5py.File(data) as f:
        arrays = {k: f[k][:] for k in ("observations", "actions")}
    assert provenance["checkpoint"]["data"] == array_fingerprint(arrays)
    assert provenance["checkpoint"]["step"] == 3 and provenance["checkpoint"]["path"].endswith("step_00000003")
    assert provenance["checkpoint"]["numerics"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert provenance["machine"]["torch"] == torch.__version__
    # a DF checkpoint cannot run the Diffuser-style method, and the maze must match
    assert main(["eval", "--ckpt", str(run), "--method", "diffuser", "--episodes", "1", "--quiet"]) == 2
    assert "needs a model trained with --kind diffuser" in capsys.readouterr().err
    assert main(["eval", "--ckpt", str(run), "--maze", "large", "--episodes", "1", "--quiet"]) == 2
    assert "trained on umaze" in capsys.readouterr().err
    # options a method would ignore are refused
    assert main(["eval", "--ckpt", str(run), "--method", "df", "--mc-samples", "4", "--quiet"]) == 2
    assert "--mc-samples would be ignored" in capsys.readouterr().err
    assert main(["eval", "--ckpt", str(run), "--pd-gains", "1", "1", "--quiet"]) == 2
    assert "--pd-gains would be ignored" in capsys.readouterr().err
    assert main(["eval", "--ckpt", str(run), "--episodes", "1", "--sampling-steps", "1", "--replan-every", "100",
                 "--controller", "pd", "--pd-gains", "1", "0.5", "--show", "0", "--latency-batch", "0",
                 "--out", str(tmp_path / "pd"), "--wandb", "off", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]["pd_gains"] == [1.0, 0.5]
    # the map-aware reward (not the paper's) runs end to end and is recorded
    assert main(["eval", "--ckpt", str(run), "--episodes", "1", "--sampling-steps", "1", "--replan-every", "100",
                 "--goal-distance", "geodesic", "--show", "0", "--latency-batch", "0",
                 "--out", str(tmp_path / "geo"), "--wandb", "off", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]["goal_distance"] == "geodesic"
    assert main(["eval", "--ckpt", str(run), "--wall-cost", "3", "--quiet"]) == 2
    assert "--wall-cost would be ignored" in capsys.readouterr().err
    # replanning near the goal (not in the paper) runs end to end and is recorded; its spacing alone is refused
    assert main(["eval", "--ckpt", str(run), "--episodes", "1", "--sampling-steps", "1", "--replan-every", "100",
                 "--replan-near", "3", "--replan-near-every", "5", "--show", "0", "--latency-batch", "0",
                 "--out", str(tmp_path / "near"), "--wandb", "off", "--quiet"]) == 0
    near = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    assert (near["planner"]["replan_near"], near["planner"]["replan_near_every"]) == (3.0, 5)
    assert near["planner"]["commit_finished"] is True  # the default
    assert main(["eval", "--ckpt", str(run), "--episodes", "1", "--sampling-steps", "1", "--replan-every", "100",
                 "--no-commit-finished", "--show", "0", "--latency-batch", "0", "--out", str(tmp_path / "plain"),
                 "--wandb", "off", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]["commit_finished"] is False
    assert near["replans"] == 3 and near["near_replans"] >= 1  # umaze: every free cell lies within 3 of the goal
    assert main(["eval", "--ckpt", str(run), "--replan-near-every", "2", "--quiet"]) == 2
    assert "--replan-near-every would be ignored" in capsys.readouterr().err
    assert main(["eval", "--ckpt", str(run), "--replan-near", "0", "--quiet"]) == 2
    assert "replan_near must be a distance > 0" in capsys.readouterr().err
    # the paper: code's guidance form runs end to end and is recorded
    assert main(["eval", "--ckpt", str(run), "--episodes", "1", "--sampling-steps", "2", "--replan-every", "100",
                 "--guidance-form", "paper", "--guidance-scale", "10", "--show", "0", "--latency-batch", "1",
                 "--out", str(tmp_path / "paper"), "--wandb", "off", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    assert summary["planner"]["guidance_form"] == "paper" and summary["planner"]["guidance_scale"] == 10.0
    # --plans-only measures the first plans (the 3-token window: 30 steps) against the maze without acting, and
    # refuses acting options
    assert main(["eval", "--ckpt", str(run), "--episodes", "2", "--sampling-steps", "1", "--plans-only",
                 "--guidance-scale", "0", "--show", "1", "--out", str(tmp_path / "plans"), "--quiet"]) == 0
    plans = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    assert plans["plan_steps"] == 30 and 0.0 <= plans["through_wall"] <= 1.0 and plans["checkpoint"]["step"] == 3
    assert (tmp_path / "plans" / "plans_df_mcg_umaze.png").is_file()
    assert main(["eval", "--ckpt", str(run), "--plans-only", "--controller", "pd", "--quiet"]) == 2
    assert "--controller would be ignored: --plans-only" in capsys.readouterr().err
    # a second evaluation into the same --out keeps the first one's files
    first_png = (out / "df_mcg_umaze.png").read_bytes()
    assert main(["eval", "--ckpt", str(run), "--episodes", "2", "--sampling-steps", "1", "--replan-every", "100",
                 "--seed", "7", "--show", "1", "--latency-batch", "0", "--out", str(out), "--wandb", "off",
                 "--quiet"]) == 0
    again = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    assert again["name"] == "df_mcg_umaze-2" and again["seed"] == 7
    assert (out / "df_mcg_umaze.png").read_bytes() == first_png
    assert json.loads((out / "df_mcg_umaze_summary.json").read_text())["seed"] == 0
    # training into an existing run needs --resume, and resuming needs the same model settings
    train = ["train", "--data", str(data), "--out", str(run), "--steps", "5", "--n-tokens", "3", "--d-model", "16",
             "--n-layers", "1", "--n-heads", "2", "--threads", "1", "--quiet", "--device", "cpu"]
    assert main(train) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*train, "--resume", "--random-horizon"]) == 2
    assert "random_horizon: False -> True" in capsys.readouterr().err
    other = tmp_path / "other.hdf5"  # the same settings on another walk: resuming would mix two datasets
    assert main(["data", "--steps", "3000", "--seed", "1", "--out", str(other), "--quiet"]) == 0
    capsys.readouterr()
    assert main([*train[:2], str(other), *train[3:], "--resume"]) == 2
    assert "data.sha256" in capsys.readouterr().err
    assert main([*train, "--resume"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 5
    # the quickstart never writes over an earlier run
    assert main(["quickstart", "--out", str(out)]) == 2
    assert "holds an earlier run" in capsys.readouterr().err


def test_cli_train_time_budget_and_export(tmp_path, capsys):
    data = tmp_path / "u.hdf5"
    assert main(["data", "--steps", "3000", "--out", str(data), "--quiet"]) == 0
    capsys.readouterr()
    tiny = ["--n-tokens", "3", "--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--threads", "1", "--quiet",
            "--device", "cpu", "--ema", "0.5"]
    run = tmp_path / "run"
    # a 0.0002-minute (12 ms) budget stops long before 100000 steps, with a checkpoint
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "100000", "--max-minutes", "0.0002",
                 "--precision", "bf16", *tiny]) == 0
    fit = json.loads(capsys.readouterr().out)
    assert fit["out_of_time"] and 1 <= fit["step"] < 100000
    assert main(["train", "--data", str(data), "--out", str(run), "--max-minutes", "0", *tiny]) == 2
    assert "--max-minutes must be > 0" in capsys.readouterr().err
    slim = tmp_path / "slim"
    assert main(["export", "--ckpt", str(run), "--out", str(slim)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["step"] == fit["step"] and sorted(p.name for p in slim.iterdir()) == ["model.safetensors",
                                                                                          "state.json"]
    from dforce_plan.model import load_model

    full, _ = load_model(run)  # EMA weights
    raw, _ = load_model(run, use_ema=False)
    small, spec = load_model(slim)
    assert spec.d_model == 16
    for (name, a), b in zip(full.state_dict().items(), small.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert any(not torch.equal(a, c)
               for a, c in zip(full.state_dict().values(), raw.state_dict().values(), strict=True))
    assert main(["export", "--ckpt", str(run), "--out", str(slim)]) == 2  # never overwrites
    assert "not empty" in capsys.readouterr().err
    cosine = tmp_path / "cosine"
    assert main(["train", "--data", str(data), "--out", str(cosine), "--steps", "4", "--warmup", "1", "--log-every",
                 "1", "--lr-decay", "cosine", "--min-lr-ratio", "0.2", *tiny]) == 0
    capsys.readouterr()
    lrs = [row["lr"] for row in read_jsonl(cosine / "metrics.jsonl") if "lr" in row]
    # 1e-3 * (0.2 + 0.8 * (1 + cos(pi * p)) / 2) at p = 0, 0, 1/3, 2/3 (warmup of one step)
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3 * (0.2 + 0.8 * 0.75), 1e-3 * (0.2 + 0.8 * 0.25)])
    state = json.loads(next((cosine / "checkpoints").glob("step_*/state.json")).read_text())
    assert state["config"]["lr_decay"] == "cosine" and state["config"]["min_lr_ratio"] == 0.2


def test_cli_trains_and_plans_with_the_papers_rnn_and_constant_weights(tmp_path, capsys):
    data = tmp_path / "u.hdf5"
    assert main(["data", "--steps", "3000", "--out", str(data), "--quiet"]) == 0
    capsys.readouterr()
    run = tmp_path / "rnn"
    common = ["--data", str(data), "--n-tokens", "3", "--threads", "1", "--quiet", "--device", "cpu"]
    assert main(["train", *common, "--out", str(run), "--steps", "3", "--backbone", "rnn", "--z-dim", "16",
                 "--network-size", "2", "--loss-weighting", "constant", "--action-std", "2", "2",
                 "--obs-std", "1.8", "1.4", "8", "8"]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert (model["backbone"], model["z_dim"], model["network_size"], model["loss_weighting"]) == (
        "rnn", 16, 2, "constant")
    assert model["action_std"] == [2.0, 2.0] and model["obs_std"] == [1.8, 1.4, 8.0, 8.0]
    from dforce_backbones import RecurrentDenoiser
    from dforce_plan.model import load_model

    net, spec = load_model(run)
    assert isinstance(net, RecurrentDenoiser) and spec.backbone == "rnn"
    from dforce_plan.planner import Planner, PlannerConfig

    assert Planner(net, spec, PlannerConfig()).normalizer.act_std == (2.0, 2.0)  # actions unnormalised as trained
    assert main(["eval", "--ckpt", str(run), "--episodes", "2", "--sampling-steps", "1", "--replan-every", "100",
                 "--mc-samples", "2", "--show", "1", "--latency-batch", "1", "--out", str(tmp_path / "ev"),
                 "--wandb", "off", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    assert result["episodes"] == 2 and result["model"]["backbone"] == "rnn"
    assert main(["train", *common, "--out", str(tmp_path / "x"), "--z-dim", "16"]) == 2
    assert "add --backbone rnn" in capsys.readouterr().err
    assert main(["train", *common, "--out", str(tmp_path / "y"), "--backbone", "rnn", "--kind", "diffuser"]) == 2
    assert "only be a Diffusion Forcing model" in capsys.readouterr().err


def test_eval_takes_the_scales_of_the_models_training_recipe(tmp_path, capsys):
    """A constant-weight model with the main: scaling gets that recipe's scales, Multi2D's own under --both."""
    data = tmp_path / "m.hdf5"
    assert main(["data", "--maze", "medium", "--steps", "3000", "--out", str(data), "--quiet"]) == 0
    run = tmp_path / "main"
    assert main(["train", "--data", str(data), "--maze", "medium", "--n-tokens", "3", "--threads", "1", "--quiet",
                 "--device", "cpu", "--out", str(run), "--steps", "2", "--d-model", "16", "--n-layers", "1",
                 "--n-heads", "2", "--loss-weighting", "constant", "--obs-std", "2.67", "3.04", "8", "8",
                 "--action-std", "6", "6"]) == 0
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(run), "--maze", "medium", "--method", "df_mcg", "--both", "--episodes", "1",
                 "--sampling-steps", "1", "--replan-every", "1000", "--mc-samples", "2", "--latency-batch", "0",
                 "--out", str(tmp_path / "ev"), "--wandb", "off", "--quiet"]) == 0
    results = json.loads(capsys.readouterr().out)
    single, multi = results["dforce/maze2d-medium-v1"]["planner"], results["dforce/maze2d-multi-medium-v1"]["planner"]
    assert (single["guidance_scale"], multi["guidance_scale"]) == (2.0, 1.0)  # RECIPE_PLANNER_PRESETS["main"]
    assert single["mc_samples"] == multi["mc_samples"] == 2  # an explicit flag still wins, on both tasks
    assert main(["eval", "--ckpt", str(run), "--maze", "medium", "--method", "df", "--multi", "--episodes", "1",
                 "--sampling-steps", "1", "--replan-every", "1000", "--latency-batch", "0", "--guidance-scale", "0.7",
                 "--out", str(tmp_path / "ev2"), "--wandb", "off", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-multi-medium-v1"]["planner"]["guidance_scale"] == 0.7
    assert main(["eval", "--ckpt", str(run), "--maze", "medium", "--method", "df_mcg", "--multi", "--episodes", "1",
                 "--sampling-steps", "1", "--replan-every", "1000", "--mc-samples", "2", "--latency-batch", "0",
                 "--out", str(tmp_path / "ev3"), "--wandb", "off", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-multi-medium-v1"]["planner"]["guidance_scale"] == 1.0


def test_cli_trains_a_position_only_model_and_follows_its_plans_with_pd(tmp_path, capsys):
    data = tmp_path / "u.hdf5"
    assert main(["data", "--steps", "3000", "--out", str(data), "--quiet"]) == 0
    capsys.readouterr()
    run = tmp_path / "pos"
    assert main(["train", "--data", str(data), "--n-tokens", "3", "--threads", "1", "--quiet", "--device", "cpu",
                 "--out", str(run), "--steps", "3", "--size", "tiny", "--channels", "pos"]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert model["channels"] == "pos"
    common = ["eval", "--ckpt", str(run), "--episodes", "2", "--sampling-steps", "1", "--replan-every", "100",
              "--mc-samples", "2", "--show", "1", "--latency-batch", "0", "--wandb", "off", "--quiet"]
    # no --controller and the umaze preset's stop term: the model has no actions, so PD, and the preset's stop
    # weight (tuned for full tokens) is not applied unless asked for
    assert main([*common, "--out", str(tmp_path / "ev")]) == 0
    result = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    assert result["planner"]["controller"] == "pd" and result["planner"]["stop_weight"] == 0.0
    # the position-only preset: smoothed velocity reference, plans end at the goal and are held, its own scale
    assert {k: result["planner"][k] for k in ("pos_velocity", "pos_velocity_window", "hold_radius",
                                              "guidance_scale")} == {"pos_velocity": "smooth",
                                                                     "pos_velocity_window": 10, "hold_radius": 0.5,
                                                                     "guidance_scale": 1.0}
    assert result["model"]["channels"] == "pos" and result["episodes"] == 2
    assert main([*common, "--out", str(tmp_path / "ev2"), "--controller", "actions"]) == 2
    assert "--controller pd" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "ev3"), "--stop-weight", "1"]) == 0  # speed from planned steps
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]["stop_weight"] == 1.0
    assert main([*common, "--out", str(tmp_path / "ev4"), "--pos-velocity", "finite"]) == 0
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]["pos_velocity"] == "finite"
    assert main([*common, "--out", str(tmp_path / "ev6"), "--pos-velocity", "smooth", "--pos-velocity-window", "3"]) == 0
    planner = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]
    assert (planner["pos_velocity"], planner["pos_velocity_window"]) == ("smooth", 3)
    assert main([*common, "--out", str(tmp_path / "ev7"), "--pos-velocity", "finite", "--pos-velocity-window", "3"]) == 2
    assert "add that" in capsys.readouterr().err and not (tmp_path / "ev7").exists()
    assert main([*common, "--out", str(tmp_path / "ev8"), "--hold-radius", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]["hold_radius"] == 0.5
    assert main([*common, "--out", str(tmp_path / "ev8b"), "--hold-radius", "0"]) == 0  # off: follow whole plans
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]["hold_radius"] is None
    assert main([*common, "--out", str(tmp_path / "ev9"), "--hold-radius", "0.5", "--plans-only"]) == 2
    assert "--hold-radius would be ignored" in capsys.readouterr().err
    # --stall-decay: replans at 0, 100, 200; a ball that moved < 5 units between them (every one) and is not
    # within 0.5 of its goal has its guidance halved each time
    assert main([*common, "--out", str(tmp_path / "ev11"), "--stall-decay", "0.5", "--stall-distance", "5"]) == 0
    result = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    assert (result["planner"]["stall_decay"], result["planner"]["stall_distance"]) == (0.5, 5.0)
    episodes = [json.loads(line) for line in next((tmp_path / "ev11").glob("*_episodes.jsonl")).read_text().splitlines()]
    weights = np.array([e["guidance_weight"] for e in episodes])
    assert set(weights.tolist()) <= {1.0, 0.5, 0.25} and result["stalled_frac"] == pytest.approx((weights < 1).mean())
    assert all(e["guidance_weight"] == 0.25 for e in episodes if not e["success"])
    assert main([*common, "--out", str(tmp_path / "ev11b"), "--stall-decay", "1"]) == 0  # 1: off
    assert json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]["planner"]["stall_decay"] is None
    assert main([*common, "--out", str(tmp_path / "ev12"), "--stall-distance", "0.3"]) == 2
    assert "--stall-distance would be ignored" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "ev13"), "--stall-decay", "0.5", "--plans-only"]) == 2
    assert "--stall-decay would be ignored" in capsys.readouterr().err
    full = tmp_path / "full"
    assert main(["train", "--data", str(data), "--n-tokens", "3", "--threads", "1", "--quiet", "--device", "cpu",
                 "--out", str(full), "--steps", "1", "--size", "tiny"]) == 0
    capsys.readouterr()
    assert main([*common, "--ckpt", str(full), "--controller", "pd", "--pos-velocity", "step",
                 "--out", str(tmp_path / "ev5")]) == 2
    assert "this model plans its velocities" in capsys.readouterr().err
    assert main([*common, "--ckpt", str(full), "--controller", "actions", "--hold-radius", "0.5",
                 "--out", str(tmp_path / "ev10")]) == 2
    assert "add --controller pd" in capsys.readouterr().err


def test_cli_trains_a_position_only_diffuser_with_and_without_its_conditioning(tmp_path, capsys):
    """`train --kind diffuser --channels pos` (conditioned training by default, `--unconditioned` the ablation), then
    `eval --method diffuser` with the position-only preset: one plan, the same PD and hold as the DF rows."""
    data = tmp_path / "u.hdf5"
    assert main(["data", "--steps", "3000", "--out", str(data), "--quiet"]) == 0
    capsys.readouterr()
    base = ["train", "--data", str(data), "--n-tokens", "3", "--threads", "1", "--quiet", "--device", "cpu",
            "--steps", "2", "--size", "tiny", "--kind", "diffuser", "--channels", "pos"]
    assert main([*base, "--out", str(tmp_path / "c")]) == 0
    model = json.loads(capsys.readouterr().out)["model"]
    assert (model["kind"], model["channels"], model["conditioned_training"]) == ("diffuser", "pos", True)
    assert main([*base, "--out", str(tmp_path / "u"), "--unconditioned"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["conditioned_training"] is False
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "d"), "--unconditioned", "--quiet"]) == 2
    assert "add --kind diffuser" in capsys.readouterr().err and not (tmp_path / "d").exists()
    assert main(["eval", "--ckpt", str(tmp_path / "c" / "checkpoints" / "latest"), "--method", "diffuser",
                 "--episodes", "2", "--sampling-steps", "2", "--show", "1", "--latency-batch", "0", "--wandb", "off",
                 "--quiet", "--out", str(tmp_path / "ev")]) == 0
    result = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    planner = result["planner"]
    assert (planner["method"], planner["controller"], planner["replan_every"], planner["hold_radius"],
            planner["pos_velocity"]) == ("diffuser", "pd", None, 0.5, "smooth")
    assert result["episodes"] == 2 and result["model"]["conditioned_training"] is True


def test_cli_data_writes_and_reads_webdataset_shards(tmp_path, capsys):
    shards = tmp_path / "shards"
    assert main(["data", "--steps", "2500", "--seed", "3", "--out", str(shards), "--quiet"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert any(shards.glob("*.tar"))
    assert main(["data", "--source", str(shards)]) == 0
    read = json.loads(capsys.readouterr().out)
    assert read["steps"] == written["steps"] == 2500 and read["obs_mean"] == written["obs_mean"]
    before = sorted(p.stat().st_mtime_ns for p in shards.glob("*.tar"))
    assert main(["data", "--steps", "2500", "--seed", "4", "--out", str(shards), "--quiet"]) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert sorted(p.stat().st_mtime_ns for p in shards.glob("*.tar")) == before


def test_cli_data_dwell_is_recorded_and_changes_the_walk(tmp_path, capsys):
    import h5py

    paths, info = {dwell: tmp_path / f"d{dwell}.hdf5" for dwell in (0, 60)}, {}
    for dwell, path in paths.items():
        assert main(["data", "--steps", "4000", "--dwell", str(dwell), "--out", str(path), "--quiet"]) == 0
        info[dwell] = json.loads(capsys.readouterr().out)
    assert info[60]["goal_switches"] < info[0]["goal_switches"]
    # the D4RL walk passes through its goals at speed; with --dwell it stops there
    assert info[0]["at_goal_slow_frac"] < 0.05 < info[60]["at_goal_slow_frac"]
    with h5py.File(paths[60]) as f:
        assert int(f.attrs["dwell"]) == 60
        obs, goal = f["observations"][:], f["infos/goal"][:]
    speed = np.linalg.norm(obs[:, 2:], axis=1)
    inside = np.linalg.norm(obs[:, :2] - goal, axis=1) <= 0.5
    assert info[60]["speed_median"] == pytest.approx(np.median(speed), abs=1e-4)
    assert info[60]["at_goal_frac"] == pytest.approx(inside.mean(), abs=1e-4)
    assert info[60]["at_goal_slow_frac"] == pytest.approx((speed[inside] < 0.5).mean(), abs=1e-4)


@pytest.mark.parametrize("argv, message", [
    (["eval", "--ckpt", "/nonexistent/run"], "does not exist"),
    (["train", "--data", "/nonexistent/u.hdf5", "--out", "/tmp/x"], "does not exist"),
    (["train", "--data", "maze2d-umaze-v1", "--out", "/tmp/x"], "no local file"),
    (["data"], "give --out"),
    (["data", "--source", "/nonexistent/x.hdf5"], "does not exist"),
    (["data", "--dwell", "-3", "--out", "/tmp/never.hdf5"], "dwell must be >= 0"),
    (["eval", "--ckpt", "/tmp", "--episodes", "1"], "not a dforce-plan checkpoint|no planning checkpoint"),
])
def test_cli_error_paths(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("dforce-plan: error:")
    import re

    assert re.search(message, err), err


def test_cli_rejects_bad_values(capsys):
    with pytest.raises(SystemExit):
        main(["eval", "--ckpt", "x", "--method", "nope"])
    assert main(["eval", "--ckpt", "/tmp", "--threads", "0"]) == 2
    torch.set_num_threads(1)


def test_cli_choices_mirror_the_planner():
    """The CLI spells the planner's options out (it must not import torch to parse); they must not drift."""
    import argparse

    from dforce_plan import planner
    from dforce_plan.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    choices = {a.dest: tuple(a.choices) for a in sub.choices["eval"]._actions if a.choices}
    assert choices["method"] == planner.METHODS
    assert choices["controller"] == planner.CONTROLLERS
    assert choices["goal_distance"] == planner.GOAL_DISTANCES
    assert choices["guidance_form"] == planner.GUIDANCE_FORMS


def test_goal_pd_is_pd_straight_at_the_goal(tmp_path, capsys):
    from dforce_plan.planner import GoalPD

    planner = GoalPD("umaze")
    obs = np.array([[1.0, 1.0, 0.5, -0.5], [2.9, 2.9, 0.0, 0.0]])
    goals = np.array([[1.05, 1.1], [0.9, 2.9]])
    plan = planner.plan(obs, goals, 300)
    assert plan.positions.tolist() == [[[1.05, 1.1]], [[0.9, 2.9]]] and not plan.velocities.any()
    a = planner.act(plan, obs, 5)  # past the one-step plan: still the goal at rest
    # 12.5 * (0.05, 0.1) + 1.2 * (-0.5, 0.5) = (0.025, 1.85) -> clipped; 12.5 * (-2, 0) -> (-1, 0)
    assert a == pytest.approx(np.array([[0.025, 1.0], [-1.0, 0.0]]))
    assert planner.needs_replan(plan, 10) and not planner.needs_replan(plan, 9)
    summary = evaluate(planner, EvalConfig(maze="umaze", episodes=2, seed=0, show=1, progress=False), tmp_path,
                       wandb="off")
    assert summary["model"] is None and "latency" not in summary and summary["name"] == "goal_pd_umaze"
    assert 0.0 <= summary["success_rate"] <= 1.0
    # the CLI runs it without a checkpoint and refuses what it would ignore
    assert main(["eval", "--method", "goal_pd", "--episodes", "2", "--show", "0", "--pd-gains", "10", "1",
                 "--out", str(tmp_path / "cli"), "--wandb", "off", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)["dforce/maze2d-umaze-v1"]
    assert result["planner"]["pd_gains"] == [10.0, 1.0] and result["checkpoint"] is None
    assert main(["eval", "--method", "goal_pd", "--guidance-scale", "1", "--quiet"]) == 2
    assert "--guidance-scale would be ignored: --method goal_pd" in capsys.readouterr().err
    assert main(["eval", "--method", "goal_pd", "--ckpt", str(tmp_path), "--quiet"]) == 2
    assert "drop --ckpt" in capsys.readouterr().err
    assert main(["eval", "--method", "df", "--quiet"]) == 2
    assert "needs --ckpt" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs controller='pd'"):
        PlannerConfig(method="goal_pd", controller="actions")
