import pytest

from dforce_plan.planner import PlannerConfig
from dforce_plan.presets import MAZES, PLANNER_PRESETS, POS_PLANNER_PRESETS, planner_preset


def test_position_only_presets_follow_plans_with_pd_and_hold_them():
    """A position-only model's preset: PD, replan every 50, smoothed velocity, plans held at the goal."""
    assert planner_preset("df", "large", "pos")["guidance_scale"] == 0.05
    assert planner_preset("df", "multi-medium", "pos")["guidance_scale"] == 0.1  # Multi2D uses its maze's
    assert planner_preset("df_mcg", "large", "pos")["guidance_scale"] == 0.1
    for method in ("df", "df_mcg"):  # large cuts a stalled ball's guidance
        assert planner_preset(method, "large", "pos")["stall_decay"] == 0.5
    assert "stall_decay" not in planner_preset("df", "medium", "pos")  # off elsewhere (PlannerConfig: None)
    for method in POS_PLANNER_PRESETS:
        for maze in MAZES:
            got = planner_preset(method, maze, "pos")
            # the DF rows replan every 50 steps; the Diffuser-style baseline plans once (Diffuser's protocol)
            assert (got["controller"], got["replan_every"], got["pos_velocity"], got["hold_radius"]) == \
                ("pd", None if method == "diffuser" else 50, "smooth", 0.5)
            assert got["mc_samples"] == (4 if method == "df_mcg" else 1)
            PlannerConfig(method=method, **got)  # every preset is a valid configuration
            assert planner_preset(method, maze) == PLANNER_PRESETS[method][maze]  # full tokens: unchanged
    # methods without position-only settings keep theirs; the preset is a copy
    assert planner_preset("goal_pd", "umaze", "pos") == PLANNER_PRESETS["goal_pd"]["umaze"]
    planner_preset("df", "large", "pos")["guidance_scale"] = 9.0
    assert POS_PLANNER_PRESETS["df"]["large"]["guidance_scale"] == 0.05
    with pytest.raises(ValueError, match="unknown channels"):
        planner_preset("df", "large", "xy")
