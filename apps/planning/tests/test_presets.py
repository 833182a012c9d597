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


def test_recipe_presets_follow_how_the_model_was_trained():
    """Constant-weight full-token models get their recipe's held-out scales; anything else keeps PLANNER_PRESETS."""
    from dforce_plan.presets import RECIPE_PLANNER_PRESETS, preset_recipe

    main_std, act = [2.67, 3.04, 8, 8], [6, 6]
    assert preset_recipe("constant", main_std, act) == "main"
    assert preset_recipe("constant") == "official"
    assert preset_recipe("min_snr") is None and preset_recipe("min_snr", main_std, act) is None
    assert preset_recipe("constant", None, [2, 2]) is None  # only the actions rescaled (the authors' issue #2)
    assert preset_recipe("constant", main_std, act, backbone="rnn") is None  # never tuned
    assert preset_recipe("constant", backbone="rnn") == "official"  # the RNN's own held-out best (s42)
    assert preset_recipe("min_snr", backbone="rnn") is None
    assert planner_preset("df_mcg", "umaze", recipe="official")["guidance_scale"] == 2.0
    assert planner_preset("df", "umaze", recipe="official")["guidance_scale"] == 1.0
    assert planner_preset("df_mcg", "medium", recipe="main")["guidance_scale"] == 2.0
    assert planner_preset("df_mcg", "multi-medium", recipe="main")["guidance_scale"] == 1.0  # Multi2D's own choice
    assert planner_preset("df", "multi-medium", recipe="main")["guidance_scale"] == 1.0  # else its maze's
    assert planner_preset("df", "large", recipe="main")["guidance_scale"] == 0.1
    # large has no official-std entry: the full-token preset; position-only models ignore the recipe
    assert planner_preset("df_mcg", "large", recipe="official") == PLANNER_PRESETS["df_mcg"]["large"]
    assert planner_preset("df", "large", "pos", recipe="main") == POS_PLANNER_PRESETS["df"]["large"]
    assert planner_preset("diffuser", "medium", recipe="main") == PLANNER_PRESETS["diffuser"]["medium"]
    for recipe, methods in RECIPE_PLANNER_PRESETS.items():
        for method, by_maze in methods.items():
            for task, preset in by_maze.items():
                got = planner_preset(method, task, recipe=recipe)
                assert got == preset and got["stop_weight"] == 0.0 and got["mc_samples"] == (
                    4 if method == "df_mcg" else 1)
                PlannerConfig(method=method, **got)
    planner_preset("df", "umaze", recipe="official")["guidance_scale"] = 9.0  # a copy
    assert RECIPE_PLANNER_PRESETS["official"]["df"]["umaze"]["guidance_scale"] == 1.0
    with pytest.raises(ValueError, match="unknown recipe"):
        planner_preset("df", "umaze", recipe="paper")
