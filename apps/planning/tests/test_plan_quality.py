import json

import numpy as np
import pytest

from dforce_datasets.maze2d import get_layout
from dforce_plan.evaluate import EvalConfig
from dforce_plan.plan_quality import inside_walls, plan_metrics, plan_quality
from dforce_plan.planner import Planner, PlannerConfig

# umaze ("#####", "#GOO#", "###O#", "#OOO#", "#####"): cell (r, c) is centred at qpos (r - 0.2, c - 0.2), so the
# free cells (1, 1) and (3, 1) sit at (0.8, 0.8) and (2.8, 0.8) with the wall cell (2, 1) between them, and the
# corridor goes round through (1, 3), (2, 3), (3, 3) at y = 2.8
BOXES = get_layout("umaze").wall_boxes()


def _line(a, b, n):
    return np.linspace(a, b, n + 1)  # (n + 1, 2)


def test_a_straight_line_through_the_wall_is_caught_on_the_right_steps():
    # 0.1 units a step from x = 0.81 (no checked point lands on the wall box's faces x = 1.3, 2.3)
    through = _line((0.81, 0.8), (2.81, 0.8), 20)[None]  # (1, 21, 2)
    w = inside_walls(through, BOXES)
    assert w.shape == (1, 20)
    # step k's checked points are x = 0.81 + 0.1 k + 0.025 j, j = 1..4; inside the box when 1.3 < x < 2.3
    expected = [1.3 < 0.81 + 0.1 * k + 0.025 * j < 2.3 for k in range(20) for j in range(1, 5)]
    assert w[0].tolist() == np.array(expected).reshape(20, 4).any(1).tolist()
    around = np.concatenate([_line((0.8, 0.8), (0.8, 2.8), 20), _line((0.8, 2.8), (2.8, 2.8), 20)[1:],
                             _line((2.8, 2.8), (2.8, 0.8), 20)[1:]])[None]  # (1, 61, 2) along the corridor
    assert not inside_walls(around, BOXES).any()


def test_a_jump_over_a_wall_is_caught_between_planned_positions():
    jump = np.array([[[0.8, 0.8], [2.8, 0.8]]])  # one planned step across the whole wall cell
    assert inside_walls(jump, BOXES).tolist() == [[True]]
    assert inside_walls(jump, BOXES, substeps=1).tolist() == [[False]]  # the end point alone is free
    with pytest.raises(ValueError, match=r"\(B, L \+ 1, 2\)"):
        inside_walls(np.zeros((3, 2)), BOXES)


def test_plan_metrics_by_hand():
    starts = np.array([[0.81, 0.8], [0.81, 0.8]])
    goals = np.array([[2.81, 0.8], [2.81, 0.8]])
    straight = _line((0.81, 0.8), (2.81, 0.8), 20)[1:]  # (20, 2) through the wall
    around = np.concatenate([_line((0.81, 0.8), (0.81, 2.8), 10)[1:],
                             _line((0.81, 2.8), (2.81, 2.8), 10)[1:]])  # (20, 2) along the corridor
    m = plan_metrics(starts, np.stack([straight, around]), goals, BOXES, 0.5)
    assert m["through_wall"].tolist() == [True, False]
    assert m["reaches"].tolist() == [True, False]  # the second ends at (2.8, 2.8), 2 units from the goal
    assert m["reaches_clean"].tolist() == [False, False]
    # the straight plan's steps k = 4 .. 14 have a checked point in the box x in (1.3, 2.3)
    assert m["wall_frac"][0] == pytest.approx(11 / 20) and m["wall_frac"][1] == 0.0
    assert m["steps_clear"].tolist() == [4, 20]  # the whole plan when it never enters a wall
    assert m["end_dist"] == pytest.approx([0.0, 2.0]) and m["min_dist"] == pytest.approx([0.0, 2.0])
    # a plan that reaches the goal and only afterwards runs into a wall still reaches it cleanly
    late = np.concatenate([around, _line((2.81, 2.8), (2.81, 0.8), 10)[1:], _line((2.81, 0.8), (0.81, 0.8), 10)[1:]])
    m = plan_metrics(starts[:1], late[None], goals[:1], BOXES, 0.5)
    assert m["through_wall"].tolist() == [True] and m["reaches_clean"].tolist() == [True]


def test_token_boundary_steps_by_hand():
    starts = np.array([[0.0, 0.0], [0.0, 0.0]])
    smooth = np.stack([np.arange(1, 7) * 0.1, np.zeros(6)], axis=-1)  # (6, 2): 0.1 a step throughout
    torn = smooth.copy()
    torn[3:, 0] += 0.5  # the second token (fs = 3) starts 0.6 after the first one's last frame
    m = plan_metrics(starts, np.stack([smooth, torn]), np.array([[5.0, 5.0], [5.0, 5.0]]), BOXES, 0.5,
                     frame_stack=3)
    # boundary steps: into frames 0 and 3 (0.1, 0.1 / 0.1, 0.6); inner steps: into frames 1, 2, 4, 5
    assert m["boundary_step"] == pytest.approx([0.1, 0.35])
    assert m["inner_step"] == pytest.approx([0.1, 0.1])
    assert "boundary_step" not in plan_metrics(starts, np.stack([smooth, torn]), starts, BOXES, 0.5)
    with pytest.raises(ValueError, match="divide the planned steps 6"):
        plan_metrics(starts, np.stack([smooth, torn]), starts, BOXES, 0.5, frame_stack=4)


def test_the_walk_data_never_goes_through_a_wall(small_data):
    obs = small_data["observations"][:6000, :2].reshape(20, 300, 2)  # (20 windows, 300 steps, 2)
    assert not inside_walls(obs, BOXES).any()


def test_plan_quality_writes_files_and_is_seeded(tmp_path, make_model):
    model, spec = make_model()
    planner = Planner(model, spec, PlannerConfig(method="df", guidance_scale=0.0, sampling_steps=2, horizon=40))
    cfg = EvalConfig(maze="umaze", episodes=3, seed=4, show=2, progress=False)
    a = plan_quality(planner, cfg, tmp_path)
    b = plan_quality(planner, cfg)
    assert a["plan_steps"] == 40 and a["episodes"] == 3
    for key in ("through_wall", "wall_frac", "reaches", "reaches_clean", "end_dist", "end_geodesic",
                "boundary_step", "inner_step"):
        assert a[key] == b[key]  # same seed, same plans
    assert a["boundary_step"] > 0.0 and a["inner_step"] > 0.0
    rows = [json.loads(line) for line in (tmp_path / "plans_df_umaze_plans.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [4, 5, 6]
    assert np.mean([r["through_wall"] for r in rows]) == pytest.approx(a["through_wall"])
    assert all(r["start_geodesic"] >= np.linalg.norm(np.subtract(r["start"], r["goal"])) - 0.1 for r in rows)
    assert (tmp_path / "plans_df_umaze.png").read_bytes()[:4] == b"\x89PNG"
