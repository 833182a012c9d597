"""Score ceilings: the kinematic speed bound by hand, the arrival bound on open ground and around walls, and the
oracle controller (it reaches and holds goals, and never beats the bound)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")

from dforce_datasets.maze2d import VectorMaze2d  # noqa: E402
from dforce_datasets.maze2d.ceiling import (  # noqa: E402
    DAMPING_KEEP,
    SPEED_GAIN,
    GeodesicOracle,
    arrival_bound,
    chebyshev_to_goal,
    return_bound,
    step_reach,
)
from dforce_datasets.maze2d.dynamics import free_step  # noqa: E402
from dforce_datasets.maze2d.model import GEAR, MASS, TIMESTEP  # noqa: E402

OPEN = "#######\\#OOOOO#\\#OOOOO#\\#OOOOO#\\#OOOOO#\\#OOOOO#\\#######"


def test_speed_constants_match_the_physics():
    assert SPEED_GAIN == pytest.approx(0.01 * 100 / (4 / 3 * np.pi * 0.001 * 1000 + 0.01), rel=1e-12)
    assert SPEED_GAIN == pytest.approx(0.238164, abs=1e-6)
    # full throttle from rest in the closed-form step gains exactly SPEED_GAIN; damping keeps DAMPING_KEEP
    _, v, _ = free_step(np.zeros(2), np.array([0.0, 2.0]), np.array([1.0, 0.0]))
    assert v[0] == pytest.approx(SPEED_GAIN, rel=1e-12)
    assert v[1] == pytest.approx(2.0 * DAMPING_KEEP, rel=1e-12)
    assert TIMESTEP * GEAR / (MASS + TIMESTEP) == SPEED_GAIN


def test_step_reach_by_hand():
    reach = step_reach(np.array([0.0, 5.0]), 3)
    s1 = SPEED_GAIN
    s2 = s1 * DAMPING_KEEP + SPEED_GAIN
    s3 = s2 * DAMPING_KEEP + SPEED_GAIN
    assert reach[0] == pytest.approx([0.01 * s1, 0.01 * (s1 + s2), 0.01 * (s1 + s2 + s3)])
    top = 5.0 * DAMPING_KEEP + SPEED_GAIN  # at the clip, every step moves 0.0522
    assert reach[1] == pytest.approx(0.01 * top * np.arange(1, 4))
    assert 0.01 * top == pytest.approx(0.05226, abs=1e-5)


def test_the_bound_is_never_beaten_by_full_throttle_on_open_ground():
    # the fastest possible run in a straight line: full action along x from rest; its first arrival at the
    # goal disc can be no earlier than the bound, and is within a few steps of it
    env = VectorMaze2d(OPEN, 1, max_episode_steps=200)
    env.reset(seed=0)
    env.set_state(np.array([[1.0, 3.0]]), np.zeros((1, 2)))
    goal = np.array([[5.0, 3.0]])
    env.set_targets(goal)
    first = None
    for t in range(200):
        obs, *_ = env.step(np.array([[1.0, 0.0]]))
        if np.linalg.norm(obs[0, :2] - goal[0]) <= 0.5:
            first = t + 1
            break
    bound = int(arrival_bound(OPEN, [[1.0, 3.0]], [[0.0, 0.0]], goal)[0])
    assert first is not None and bound <= first <= bound + 3


def test_chebyshev_field_goes_around_walls():
    # umaze: from (3, 1) to the goal (1, 1) the way runs around the wall block, 4 cells of corridor in Chebyshev
    origin, values = chebyshev_to_goal("umaze", np.array([1.0, 1.0]))
    node = lambda x, y: values[round((x - origin[0]) / 0.05), round((y - origin[1]) / 0.05)]  # noqa: E731
    assert node(1.0, 2.0) == pytest.approx(0.5, abs=0.051)  # open corridor: the straight distance to the disc
    assert node(3.0, 1.0) > 3.0  # around the block, while the straight line is 2 - 0.5 = 1.5
    assert node(1.0, 1.0) == 0.0


def test_return_bound_and_inside_the_goal():
    ret = return_bound("umaze", [[1.0, 1.1], [3.0, 1.0]], np.zeros((2, 2)), [[1.0, 1.0], [1.0, 1.0]], 300)
    assert ret[0] == 300.0  # already inside the goal: every step can be rewarded
    assert 200 < ret[1] < 300
    with pytest.raises(ValueError, match="must all be"):
        arrival_bound("umaze", np.zeros((2, 2)), np.zeros((3, 2)), np.zeros((2, 2)))


@pytest.mark.parametrize(("maze", "multi"), [("umaze", False), ("medium", True)])
def test_oracle_reaches_and_holds_goals_below_the_bound(maze, multi):
    n, steps = 12, {"umaze": 300, "medium": 600}[maze]
    env = VectorMaze2d(maze, n, multi_goal=multi, max_episode_steps=steps)
    obs, info = env.reset(seed=5)
    goals = info["target"]
    bound = return_bound(maze, obs[:, :2], obs[:, 2:], goals, steps)
    oracle = GeodesicOracle(maze, goals)
    returns = np.zeros(n)
    for _ in range(steps):
        prev = obs[:, :2]
        obs, reward, *_ = env.step(oracle.act(obs))
        assert np.abs(obs[:, :2] - prev).max() <= 0.01 * (5.0 * DAMPING_KEEP + SPEED_GAIN) + 1e-9
        returns += reward
    assert np.all(returns <= bound)
    assert np.all(returns > 0)  # every episode reaches its goal
    assert np.all(np.linalg.norm(obs[:, :2] - goals, axis=1) <= 0.5)  # and is still there at the end
    assert returns.mean() > 0.8 * bound.mean()  # close to the bound
