"""maze2d env faithfulness: MJCF facts, closed-form free dynamics, wall contacts, vector env, D4RL REF_MAX."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

maze2d = pytest.importorskip("dforce_datasets.maze2d")
gym = pytest.importorskip("gymnasium")

from dforce_datasets.maze2d import (  # noqa: E402
    MazeSim,
    VectorMaze2d,
    get_layout,
    gridify,
    load_model,
    maze2d_env_class,
    normalized_score,
    parse_maze,
    run_reference,
)
from dforce_datasets.maze2d._deps import require  # noqa: E402
from dforce_datasets.maze2d.dynamics import free_step, near_wall, wall_distance  # noqa: E402
from dforce_datasets.maze2d.model import MASS, RADIUS  # noqa: E402
from dforce_datasets.maze2d.traces import check_traces, record_traces  # noqa: E402

Maze2dEnv = maze2d_env_class()


# ----------------------------------------------------------------------------------------------- layouts


def test_layouts_goals_and_reset_cells():
    assert get_layout("umaze").goal == (1, 1)
    assert get_layout("medium").goal == (6, 6)
    assert get_layout("large").goal == (7, 9)
    assert get_layout("eval-umaze").goal == (1, 3)
    assert get_layout("eval-medium").goal == (1, 6)
    assert get_layout("eval-large").goal == (1, 9)
    assert get_layout("open").goal == (2, 3)
    umaze = get_layout("umaze")
    assert umaze.shape == (5, 5)
    # sorted empty cells with the goal appended (D4RL empty_and_goal_locations)
    assert umaze.reset_cells == ((1, 2), (1, 3), (2, 3), (3, 1), (3, 2), (3, 3), (1, 1))
    assert umaze.is_free((1, 1)) and not umaze.is_free((0, 0)) and not umaze.is_free((9, 9))
    assert gridify((2.5, 3.5)) == (2, 4)  # round half to even, as Python's round
    boxes = umaze.wall_boxes()
    assert boxes.shape == (len(umaze.wall_cells), 4)
    np.testing.assert_allclose(boxes[0], [-0.7, -0.7, 0.3, 0.3])  # wall (0, 0) centred at (-0.2, -0.2)


@pytest.mark.parametrize("bad, match", [
    ("#G#\\#GO#", "same length"),
    ("#X#\\###", "unknown maze tile"),
    ("#GG#\\####", "at most one"),
    ("###\\###", "no free cell"),
])
def test_parse_maze_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        parse_maze(bad)


def test_unknown_maze_name():
    with pytest.raises(ValueError, match="unknown maze"):
        get_layout("huge")


# ------------------------------------------------------------------------------------------------ model


def test_model_matches_d4rl_facts_and_mujoco_corrections():
    model = load_model("umaze")
    particle = model.body("particle").id
    assert model.opt.timestep == 0.01
    assert model.opt.iterations == 20
    np.testing.assert_array_equal(model.opt.gravity, 0.0)
    assert model.body_mass[particle] == MASS == 4.0 / 3.0 * np.pi * 0.1**3 * 1000
    np.testing.assert_array_equal(model.geom_margin, 0.001)  # summed by MuJoCo >= 3 to D4RL's 0.002
    assert model.body_invweight0[particle, 0] == 2.0 / (3.0 * MASS)
    np.testing.assert_array_equal(model.dof_damping, 1.0)
    np.testing.assert_array_equal(model.actuator_gear[:, 0], 100.0)
    np.testing.assert_array_equal(model.actuator_ctrlrange, [[-1, 1], [-1, 1]])
    np.testing.assert_allclose(model.body_pos[particle], [1.2, 1.2, 0])
    wall = model.geom("wall_0_0")
    np.testing.assert_allclose(wall.pos, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(wall.size, [0.5, 0.5, 0.2])
    assert len([g for g in range(model.ngeom) if model.geom(g).name.startswith("wall_")]) == 25 - 7


def test_missing_extra_names_the_pip_command():
    with pytest.raises(ImportError, match=r"pip install dforce-datasets\[maze\]"):
        require("dforce_no_such_module_xyz")


def test_top_level_package_does_not_import_the_simulator():
    code = "import sys, dforce_datasets; assert not {'mujoco', 'gymnasium', 'h5py', 'numba'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------- dynamics


def test_free_space_steps_match_the_closed_form():
    sim = MazeSim("large")
    rng = np.random.default_rng(0)
    h = 0.01
    for _ in range(500):
        qpos = np.array([3.0, 3.0]) + rng.uniform(-0.05, 0.05, 2)  # (3, 3) is an open junction of the large maze
        qvel, action = rng.uniform(-5, 5, 2), rng.uniform(-1, 1, 2)
        sim.set_state(qpos, qvel)
        sim.step(action)
        v_next = qvel + h * (100 * action - qvel) / (MASS + h)  # the formula in benchmarks.md section 1.1b
        np.testing.assert_allclose(sim.qvel, v_next, rtol=0, atol=1e-12)
        np.testing.assert_allclose(sim.qpos, qpos + h * v_next, rtol=0, atol=1e-12)
        # our closed form is bit-identical, including MuJoCo's warm start
        x, v, qacc = free_step(qpos, qvel, action)
        assert np.array_equal(x, sim.qpos) and np.array_equal(v, sim.qvel)
        assert np.array_equal(qacc, sim.data.qacc_warmstart)


def test_velocity_is_clipped_before_the_step():
    sim = MazeSim("large")
    sim.set_state(np.array([3.0, 3.0]), np.array([9.0, -9.0]))
    sim.step(np.array([1.0, -1.0]))
    expected = 5.0 + 0.01 * (100.0 - 5.0) / (MASS + 0.01)
    np.testing.assert_allclose(sim.qvel, [expected, -expected], atol=1e-12)
    assert expected > 5.2  # observed speeds exceed 5 because the clip comes first


def _wall_rollout(seed: int) -> np.ndarray:
    env = Maze2dEnv(maze="umaze")
    env.reset(seed=seed)
    env.set_state(np.array([3.0, 1.0]), np.zeros(2))
    traj = []
    for t in range(300):
        # push hard into the walls around the bottom corridor, then along them
        action = np.array([1.0, -1.0]) if t < 100 else np.array([-1.0, 1.0]) if t < 200 else np.array([1.0, 1.0])
        obs, *_ = env.step(action)
        traj.append(obs)
    return np.array(traj)


def test_wall_contact_rollout_is_deterministic_and_stays_out_of_walls():
    a, b = _wall_rollout(0), _wall_rollout(1)
    assert np.array_equal(a, b)
    boxes = get_layout("umaze").wall_boxes()
    dist = wall_distance(a[:, :2], boxes)
    assert dist.min() > RADIUS - 0.06  # soft contacts penetrate a little, never through
    assert (dist < RADIUS + 0.002).sum() > 50  # and the rollout really is in contact
    # in contact the closed form is wrong (the wall pushes back), so contacts are not silently skipped
    contact = near_wall(a[:-1, :2], boxes)
    assert contact.any()


def test_vector_env_equals_single_envs():
    n = 6
    for closed_form in (True, False):
        vec = VectorMaze2d("medium", n, closed_form=closed_form, max_episode_steps=200)
        obs_v, _ = vec.reset(seed=10)
        envs = [Maze2dEnv(maze="medium") for _ in range(n)]
        obs_s = np.stack([env.reset(seed=10 + i)[0] for i, env in enumerate(envs)])
        assert np.array_equal(obs_v, obs_s)
        rng = np.random.default_rng(1)
        for t in range(200):
            actions = rng.uniform(-1.5, 1.5, (n, 2))
            obs_v, rew_v, term, trunc, _ = vec.step(actions)
            steps = [env.step(actions[i]) for i, env in enumerate(envs)]
            np.testing.assert_allclose(obs_v, np.stack([s[0] for s in steps]), rtol=0, atol=1e-12)
            np.testing.assert_array_equal(rew_v, [s[1] for s in steps])
            assert not term.any() and trunc.all() == (t == 199)
        assert vec.mujoco_steps > 0 if closed_form else vec.mujoco_steps == 200 * n
        with pytest.raises(ValueError, match="reset"):
            vec.step(np.zeros((n, 2)))


def test_vector_env_multi_goal_and_errors():
    vec = VectorMaze2d("umaze", 3, multi_goal=True)
    _, info = vec.reset(seed=0)
    envs = [Maze2dEnv(maze="umaze", reset_target=True) for _ in range(3)]
    for i, env in enumerate(envs):
        env.reset(seed=i)
        np.testing.assert_array_equal(env.get_target(), info["target"][i])
    with pytest.raises(ValueError, match="shape"):
        vec.step(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="num_envs"):
        VectorMaze2d("umaze", 0)


# --------------------------------------------------------------------------------------------- gym API


def test_registered_envs_and_time_limits():
    for name, steps in (("umaze", 300), ("medium", 600), ("large", 800)):
        for prefix in ("", "multi-", "eval-"):
            env = gym.make(f"dforce/maze2d-{prefix}{name}-v1")
            assert env.spec.max_episode_steps == steps
            env.close()
    env = gym.make("dforce/maze2d-umaze-v1")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4,) and obs.dtype == np.float64
    np.testing.assert_array_equal(env.unwrapped.get_target(), [1.0, 1.0])  # the exact goal cell, no noise
    for t in range(300):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated and truncated == (t == 299)
    assert env.unwrapped.get_normalized_score(161.86) == pytest.approx(1.0)
    env.close()


@pytest.mark.filterwarnings("ignore:.*infinity.*:UserWarning")  # D4RL's observation space is unbounded, as here
def test_env_checker_passes():
    from gymnasium.utils.env_checker import check_env

    check_env(Maze2dEnv(maze="umaze"), skip_render_check=True)


def test_reset_set_state_and_reward():
    env = Maze2dEnv(maze="umaze")
    obs, _ = env.reset(seed=3)
    cells = get_layout("umaze").reset_cells
    assert any(np.all(np.abs(obs[:2] - np.array(c)) <= 0.1) for c in cells)
    env.set_state(np.array([1.0, 1.2]), np.zeros(2))
    obs, reward, *_ = env.step(np.zeros(2))
    assert reward == 1.0 and np.allclose(obs[:2], [1.0, 1.2])
    env.set_state(np.array([1.0, 1.6]), np.zeros(2))
    assert env.step(np.zeros(2))[1] == 0.0
    dense = Maze2dEnv(maze="umaze", reward_type="dense")
    dense.reset(seed=0)
    dense.set_state(np.array([1.0, 2.0]), np.zeros(2))
    assert dense.step(np.zeros(2))[1] == pytest.approx(np.exp(-1.0))
    with pytest.raises(ValueError, match="shape"):
        env.set_state(np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="reward_type"):
        Maze2dEnv(maze="umaze", reward_type="shaped")


def test_multi_goal_draws_a_target_per_reset_and_set_target():
    env = gym.make("dforce/maze2d-multi-large-v1")
    targets = []
    for seed in range(5):
        env.reset(seed=seed)
        targets.append(env.unwrapped.get_target())
    assert len({tuple(t) for t in targets}) == 5
    cells = np.array(get_layout("large").reset_cells)
    for t in targets:
        assert np.abs(cells - t).max(axis=1).min() <= 0.1
    env.unwrapped.set_target(np.array([3.0, 3.0]))
    np.testing.assert_array_equal(env.unwrapped.get_target(), [3.0, 3.0])
    env.close()
    direct = Maze2dEnv(maze="large", multi_goal=True)
    assert direct.reset_target and not Maze2dEnv(maze="large").reset_target
    single = gym.make("dforce/maze2d-large-v1")
    single.reset(seed=0)
    single.reset(seed=1)
    np.testing.assert_array_equal(single.unwrapped.get_target(), [7.0, 9.0])


def test_normalized_scores():
    assert normalized_score("maze2d-umaze-v1", 161.86) == pytest.approx(1.0)
    assert normalized_score("dforce/maze2d-multi-large-v1", 6.7) == pytest.approx(0.0)
    assert normalized_score("medium", 277.39) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="reference"):
        normalized_score("maze2d-tiny-v1", 1.0)


def test_render_top_down_picture():
    env = gym.make("dforce/maze2d-umaze-v1", render_mode="rgb_array")
    env.reset(seed=0)
    try:
        image = env.render()
    except Exception as err:  # pragma: no cover - machines without EGL/OSMesa
        pytest.skip(f"no offscreen GL here: {err!r}")
    finally:
        env.close()
    assert image.shape == (200, 200, 3) and image.dtype == np.uint8
    assert image.std() > 10


# -------------------------------------------------------------------------------------- D4RL REF_MAX


@pytest.mark.slow
@pytest.mark.parametrize("env, ref_max, zeros", [("umaze", 161.86, 39), ("medium", 277.39, 47),
                                                  ("large", 273.99, 59)])
def test_ref_max_procedure_reproduces_d4rl_exactly_with_legacy_seeding(env, ref_max, zeros):
    """D4RL's own random streams give D4RL's REF_MAX to the digit: env, controller and contacts are exact."""
    result = run_reference(env, episodes=100, seed=0, legacy_seeding=True)
    assert round(result.raw_return, 2) == ref_max
    assert sum(r == 0 for r in result.returns) == zeros
    assert result.normalized == pytest.approx(100.0)


def test_ref_max_procedure_with_own_seeding_is_a_sample_of_the_same_distribution():
    result = run_reference("umaze", episodes=100, seed=0)
    assert abs(result.raw_return - 161.86) < 2 * result.sem


# -------------------------------------------------------------------------------- real D4RL traces


def _trace_files() -> list[Path]:
    root = os.environ.get("DFORCE_D4RL_TRACES")
    if not root:
        return []
    path = Path(root)
    return sorted(path.glob("*.npz")) if path.is_dir() else [path]


def test_open_loop_rollouts_match_recorded_d4rl_traces():
    """Open-loop rollouts against traces recorded from the real d4rl maze2d env (MuJoCo 2.1 + mujoco-py).

    Set DFORCE_D4RL_TRACES to an .npz file or a directory of them. Each file holds one maze:
    ``maze`` (str: 'umaze' | 'medium' | 'large' | a maze string), ``qpos0`` and ``qvel0`` (K, 2) float64 start
    states, ``actions`` (K, T, 2) float64, and ``observations`` (K, T, 4) float64, the observation returned by
    env.step after each action. They are recorded as ``env.reset(); env.set_state(qpos0[k], qvel0[k])`` followed
    by ``env.step(actions[k, t])`` for t < T. Every step must match to 1e-8.
    """
    files = _trace_files()
    if not files:
        pytest.skip("DFORCE_D4RL_TRACES is not set: no traces recorded from the real d4rl env on this machine")
    assert sum(check_traces(file) for file in files) > 0


def test_trace_format_round_trip(tmp_path):
    """The trace checker itself works: traces recorded from our env in the documented format replay exactly."""
    trace = record_traces(Maze2dEnv(maze="umaze"), "umaze", rollouts=3, steps=200, seed=0)
    path = tmp_path / "umaze.npz"
    np.savez(path, **trace)
    assert check_traces(path) == 600
    trace["observations"][1, 150, 0] += 1e-6
    np.savez(tmp_path / "bad.npz", **trace)
    with pytest.raises(AssertionError, match="rollout 1"):
        check_traces(tmp_path / "bad.npz")
