"""maze2d data: waypoint controller, the dataset walk (fast == MuJoCo loop), hdf5/shard files, loader, windows."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("dforce_datasets.maze2d")
h5py = pytest.importorskip("h5py")
torch = pytest.importorskip("torch")

from dforce_datasets.maze2d import (  # noqa: E402
    GenerateConfig,
    GridPlanner,
    Maze2dWindows,
    WaypointController,
    WindowConfig,
    generate,
    generate_reference,
    get_layout,
    load_dataset,
    read_hdf5,
    read_shards,
    to_d4rl,
    validate,
    write_hdf5,
    write_shards,
)
from dforce_datasets.maze2d import loader as loader_module  # noqa: E402

torch.set_num_threads(1)
FIELDS = ("observations", "actions", "goals", "timeouts", "qpos", "qvel")


# ------------------------------------------------------------------------------------------- controller


def test_grid_planner_shortest_path_and_jitter():
    planner = GridPlanner("umaze")
    rng = np.random.default_rng(0)
    wps = planner.plan((3, 1), (1, 1), rng)
    cells = [tuple(int(round(c)) for c in np.ceil(w)) for w in wps]  # jitter subtracts U[0, 0.2)
    assert cells == [(3, 2), (3, 3), (2, 3), (1, 3), (1, 2), (1, 1)]
    np.testing.assert_array_equal(wps[-1], [1.0, 1.0])  # the target itself is not jittered
    offsets = np.ceil(wps[:-1]) - wps[:-1]
    assert offsets.min() >= 0 and offsets.max() < 0.2
    q, _ = planner.q_values((1, 1))
    assert q.shape == (25, 5)


def test_grid_planner_tie_break_order_is_noop_up_down_left_right():
    planner = GridPlanner("open")  # (1,1) -> (3,3): LEFT/RIGHT and UP/DOWN tie; DOWN (col + 1) comes first
    wps = planner.plan((1, 1), (3, 3), np.random.default_rng(0))
    cells = [tuple(int(c) for c in np.ceil(w)) for w in wps]
    assert cells == [(1, 2), (1, 3), (2, 3), (3, 3)]


def test_controller_replans_only_when_the_gridified_target_changes():
    ctrl = WaypointController("umaze", rng=np.random.default_rng(0))
    ctrl.get_action(np.array([3.0, 1.0]), np.zeros(2), np.array([1.0, 1.0]))
    first = ctrl.waypoints.copy()
    ctrl.get_action(np.array([3.0, 1.05]), np.zeros(2), np.array([1.08, 0.95]))  # same cell: no new plan
    assert np.array_equal(first, ctrl.waypoints)
    ctrl.get_action(np.array([3.0, 1.05]), np.zeros(2), np.array([3.0, 3.0]))
    assert not np.array_equal(first[-1], ctrl.waypoints[-1])


def test_controller_solves_and_actions_are_clipped():
    ctrl = WaypointController("umaze", rng=np.random.default_rng(0))
    action, solved = ctrl.get_action(np.array([3.0, 1.0]), np.zeros(2), np.array([1.0, 1.0]))
    assert np.abs(action).max() <= 1.0 and not solved
    # at the target, at rest, after one call to settle the previous-location test
    ctrl.get_action(np.array([1.02, 1.0]), np.zeros(2), np.array([1.0, 1.0]))
    action, solved = ctrl.get_action(np.array([1.02, 1.0]), np.zeros(2), np.array([1.0, 1.0]))
    assert solved
    np.testing.assert_allclose(action, [10.0 * (1.0 - 1.02), 0.0])


def test_controller_initial_target_quirk_is_an_error():
    ctrl = WaypointController("umaze")
    with pytest.raises(ValueError, match="quirk"):
        ctrl.get_action(np.array([3.0, 1.0]), np.zeros(2), np.array([0.0, 0.0]))


# ------------------------------------------------------------------------------------------- generator


@pytest.mark.parametrize("maze, noisy, steps", [("umaze", False, 4000), ("large", True, 6000)])
def test_fast_walk_equals_the_mujoco_loop(maze, noisy, steps):
    config = GenerateConfig(maze=maze, steps=steps, seed=5, noisy=noisy)
    fast, slow = generate(config), generate_reference(config)
    for key in FIELDS:
        np.testing.assert_allclose(getattr(fast, key), getattr(slow, key), rtol=0, atol=1e-8, err_msg=key)
    assert fast.metadata["replans"] > 5 and fast.metadata["goal_switches"] == int(fast.timeouts.sum())
    if noisy:
        assert fast.metadata["mujoco_steps"] > 0  # the contact path was exercised


def test_dwell_walk_equals_the_mujoco_loop_and_adds_stops():
    """--dwell (not D4RL): the same walk until a goal is first solved, then held; the fast path stays exact."""
    plain = generate(GenerateConfig(maze="umaze", steps=20_000, seed=2, noisy=True))
    dwell_cfg = GenerateConfig(maze="umaze", steps=20_000, seed=2, noisy=True, dwell=80)
    dwell = generate(dwell_cfg)
    assert dwell.metadata["dwell"] == 80 and plain.metadata["dwell"] == 0
    small = GenerateConfig(maze="umaze", steps=3000, seed=2, noisy=True, dwell=80)
    fast, slow = generate(small), generate_reference(small)
    for key in FIELDS:
        np.testing.assert_allclose(getattr(fast, key), getattr(slow, key), rtol=0, atol=1e-8, err_msg=key)
    # identical up to the first goal switch of the plain walk, the step where it first solved its goal
    first = int(np.flatnonzero(plain.timeouts)[0])
    for key in FIELDS:
        np.testing.assert_array_equal(getattr(plain, key)[:first], getattr(dwell, key)[:first], err_msg=key)
    assert not dwell.timeouts[first]

    def stops(d):  # fraction of steps at rest (speed < 0.5) within 0.5 of the goal's cell
        near = np.linalg.norm(d.observations[:, :2] - np.rint(d.goals), axis=1) < 0.5
        return float((near & (np.linalg.norm(d.observations[:, 2:], axis=1) < 0.5)).mean())

    assert stops(plain) < 0.005 < 0.15 < stops(dwell)  # D4RL's walk never stops; the dwell walk does
    assert dwell.timeouts.sum() < 0.8 * plain.timeouts.sum()  # goals are held longer, so fewer switches
    with pytest.raises(ValueError, match="dwell"):
        GenerateConfig(dwell=-1)


def test_walk_quirks_duplicate_observation_and_time_limit():
    data = generate(GenerateConfig(maze="medium", steps=3000, seed=1, max_episode_steps=40))
    switches = np.flatnonzero(data.timeouts[:-1])
    assert len(switches) > 10
    # the observation is not advanced at a goal switch, though the simulator was stepped
    np.testing.assert_array_equal(data.observations[switches + 1], data.observations[switches])
    assert not np.array_equal(data.qpos[switches + 1], data.qpos[switches])
    # a goal switch at least every 41 steps (ts >= 40), and the goal changes right after it
    gaps = np.diff(np.concatenate([[-1], switches]))
    assert gaps.max() <= 41
    assert (np.abs(data.goals[switches + 1] - data.goals[switches]).max(axis=1) > 0).mean() > 0.5
    # recorded qpos is the simulator state, which equals the observation except at duplicates
    ok = np.ones(len(data), dtype=bool)
    ok[switches + 1] = False
    np.testing.assert_array_equal(data.qpos[ok], data.observations[ok, :2])
    cells = np.array(get_layout("medium").reset_cells)
    assert all(np.abs(cells - g).max(axis=1).min() <= 0.1 for g in data.goals[::97])


def test_generate_config_errors():
    with pytest.raises(ValueError, match="unknown maze2d task"):
        GenerateConfig(maze="huge")
    with pytest.raises(ValueError, match="steps"):
        GenerateConfig(steps=0)
    assert GenerateConfig(maze="large").n_steps == 4_000_000


# --------------------------------------------------------------------------------------------- storage


@pytest.fixture(scope="module")
def d4rl_data():
    return to_d4rl(generate(GenerateConfig(maze="umaze", steps=2500, seed=2)))


def test_to_d4rl_schema(d4rl_data):
    assert d4rl_data["observations"].dtype == np.float32 and d4rl_data["observations"].shape == (2500, 4)
    assert d4rl_data["terminals"].dtype == bool and not d4rl_data["terminals"].any()
    assert d4rl_data["timeouts"].any()
    goal_dist = np.linalg.norm(d4rl_data["observations"][:, :2] - np.array([1.0, 1.0]), axis=1)
    np.testing.assert_array_equal(d4rl_data["rewards"], (goal_dist <= 0.5).astype(np.float32))
    assert set(d4rl_data) == {"observations", "actions", "rewards", "terminals", "timeouts", "infos/goal",
                              "infos/qpos", "infos/qvel"}


def test_hdf5_round_trip(tmp_path, d4rl_data):
    path = write_hdf5(tmp_path / "umaze.hdf5", d4rl_data, attrs={"maze": "umaze", "meta": {"seed": 2}})
    back = read_hdf5(path)
    assert set(back) == set(d4rl_data)
    for key, value in d4rl_data.items():
        np.testing.assert_array_equal(back[key], value)
        assert back[key].dtype == value.dtype
    assert load_dataset(path)["actions"].shape == (2500, 2)


def test_shard_round_trip(tmp_path, d4rl_data):
    paths = write_shards(tmp_path / "shards", d4rl_data, chunk=300, max_chunks_per_shard=3)
    assert len(paths) == 3  # 9 chunks of <= 300 steps, 3 per shard
    back = read_shards(tmp_path / "shards")
    for key, value in d4rl_data.items():
        np.testing.assert_array_equal(back[key], value)
    np.testing.assert_array_equal(load_dataset(tmp_path / "shards")["rewards"], d4rl_data["rewards"])
    with pytest.raises(FileExistsError, match="already holds shards"):  # never beside an earlier write
        write_shards(tmp_path / "shards", d4rl_data, chunk=300)
    # shards of two writes, or the same chunk twice, are refused instead of mixed
    other = write_shards(tmp_path / "other", d4rl_data, chunk=300, max_chunks_per_shard=3)
    with pytest.raises(ValueError, match="a second chunk starting at step 0"):
        read_shards([paths[0], other[0]])
    with pytest.raises(ValueError, match="2 different writes"):
        read_shards([paths[0], other[1], paths[2]])
    paths[1].unlink()
    with pytest.raises(ValueError, match="missing steps"):
        read_shards(tmp_path / "shards")


def test_reader_errors(tmp_path, d4rl_data):
    corrupt = tmp_path / "corrupt.hdf5"
    corrupt.write_bytes(b"this is not an hdf5 file" * 10)
    with pytest.raises(ValueError, match="not a readable HDF5"):
        read_hdf5(corrupt)
    truncated = tmp_path / "truncated.hdf5"
    write_hdf5(tmp_path / "full.hdf5", d4rl_data, compression=None)
    truncated.write_bytes((tmp_path / "full.hdf5").read_bytes()[:4000])
    with pytest.raises(ValueError, match="corrupt"):
        read_hdf5(truncated)
    with pytest.raises(ValueError, match="no such file"):
        read_hdf5(tmp_path / "absent.hdf5")
    missing = {k: v for k, v in d4rl_data.items() if k != "rewards"}
    with pytest.raises(ValueError, match="missing key"):
        validate(missing)
    short = dict(d4rl_data, actions=d4rl_data["actions"][:-1])
    with pytest.raises(ValueError, match="shape"):
        validate(short)
    wrong = dict(d4rl_data, observations=d4rl_data["observations"].astype(np.int32))
    with pytest.raises(ValueError, match="float"):
        validate(wrong)
    bad_tar = tmp_path / "bad.tar"
    bad_tar.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="shard"):
        read_shards(bad_tar)


def test_reads_a_released_d4rl_file_layout(tmp_path):
    """A file laid out like the released maze2d-umaze-sparse-v1.hdf5 (float32, bool flags, extra keys)."""
    n = 50
    path = tmp_path / "maze2d-umaze-sparse-v1.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.zeros((n, 4), np.float32)
        f["actions"] = np.zeros((n, 2), np.float32)
        f["rewards"] = np.zeros(n, np.float32)
        f["terminals"] = np.zeros(n, bool)
        f["timeouts"] = np.zeros(n, bool)
        for key in ("goal", "qpos", "qvel"):
            f[f"infos/{key}"] = np.zeros((n, 2), np.float32)
        f["metadata/algorithm"] = np.bytes_("waypoint")
    data = read_hdf5(path)
    assert data["infos/qpos"].shape == (n, 2) and "metadata/algorithm" in data


def test_loader_uses_the_d4rl_cache_then_explains(tmp_path, monkeypatch, d4rl_data):
    monkeypatch.setenv("D4RL_DATASET_DIR", str(tmp_path))
    monkeypatch.setattr(loader_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="d4rl package is not importable"):
        load_dataset("maze2d-umaze-v1")
    write_hdf5(tmp_path / "maze2d-umaze-sparse-v1.hdf5", d4rl_data)
    assert len(load_dataset("maze2d-umaze-v1")["observations"]) == 2500
    with pytest.raises(ValueError, match="cannot load"):
        load_dataset("maze2d-tiny-v9")


# --------------------------------------------------------------------------------------------- windows


def test_windows_tokens_padding_and_masks(d4rl_data):
    cfg = WindowConfig(n_tokens=4, frame_stack=3, stride=5)
    ds = Maze2dWindows(d4rl_data, cfg)
    obs, act = d4rl_data["observations"], d4rl_data["actions"]
    item = ds[2]
    t0 = 10
    np.testing.assert_array_equal(item["start"].numpy(), obs[t0])
    tokens = item["tokens"].numpy()
    assert tokens.shape == (4, 3 * 6)
    # frame j of the window is [o_{t0+j+1}, a_{t0+j}], frames concatenated on the channel axis
    np.testing.assert_array_equal(tokens[1, 6:12], np.concatenate([obs[t0 + 5], act[t0 + 4]]))
    assert item["valid"].all() and item["frame_valid"].all()
    last = ds[len(ds) - 1]
    real = int(last["frame_valid"].sum())
    assert 3 <= real < 12  # at least one complete token, padding after
    assert not last["valid"].all() and last["valid"][0]
    assert (last["tokens"].reshape(12, 6)[real:] == 0).all()
    with pytest.raises(IndexError):
        ds[len(ds)]


@pytest.mark.parametrize("random_horizon", [False, True])
def test_windows_batch_equals_stacked_items(d4rl_data, random_horizon):
    ds = Maze2dWindows(d4rl_data, WindowConfig(n_tokens=4, frame_stack=3, stride=2, random_horizon=random_horizon,
                                               seed=1), normalization="umaze")
    n = len(ds)
    indices = [0, 7, n - 1, n - 2, 3, 7, -1]  # repeats, the padded tail and a negative index
    batch = ds.batch(indices)
    for key in ("start", "tokens", "frame_valid", "valid"):
        expected = torch.stack([ds[i][key] for i in indices])
        assert batch[key].dtype == expected.dtype and batch[key].shape == expected.shape
        assert torch.equal(batch[key], expected), key
    assert not batch["valid"][2].all()  # the last window is padded
    with pytest.raises(IndexError, match="window indices"):
        ds.batch([0, n])


def test_windows_normalization_and_random_horizon(d4rl_data):
    plain = Maze2dWindows(d4rl_data, WindowConfig(n_tokens=5, frame_stack=2))
    norm = Maze2dWindows(d4rl_data, WindowConfig(n_tokens=5, frame_stack=2), normalization="umaze")
    from dforce_datasets.maze2d import NORMALIZATION

    mean, std = np.array(NORMALIZATION["umaze"]["obs_mean"]), np.array(NORMALIZATION["umaze"]["obs_std"])
    np.testing.assert_allclose(norm[0]["start"].numpy(), (plain[0]["start"].numpy() - mean) / std, rtol=1e-5)
    rand = Maze2dWindows(d4rl_data, WindowConfig(n_tokens=5, frame_stack=2, random_horizon=True, seed=3))
    counts = [int(rand[i]["valid"].sum()) for i in range(40)]
    assert min(counts) >= 2 and max(counts) <= 5 and len(set(counts)) > 1
    assert counts == [int(rand[i]["valid"].sum()) for i in range(40)]  # deterministic per (seed, index)
    with pytest.raises(ValueError, match="too short"):
        Maze2dWindows({k: v[:3] for k, v in d4rl_data.items()}, WindowConfig(n_tokens=4, frame_stack=3))
    with pytest.raises(ValueError, match="n_tokens"):
        WindowConfig(n_tokens=0)
