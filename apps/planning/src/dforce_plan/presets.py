"""Documented presets per maze: model sizes and geometry, training budgets and planner settings.

Planner presets (``PLANNER_PRESETS[method][maze]``):

* ``horizon``: the most steps one plan covers. ``None`` = the rest of the episode (flexible horizon: the
  paper's setting). The Diffuser-style baseline plans the fixed horizon of its model instead
  (``DIFFUSER_TOKENS`` tokens of ``frame_stack`` steps, i.e. Diffuser's 128 / 256 / 384 rounded up to 10s).
* ``guidance_scale``: the scale of ``dforce_sampling.MonteCarloGuidance`` (classifier-guidance form,
  eps' = eps - scale sqrt(1 - a') grad R, with R the summed world-unit distance to the goal); the paper's
  code uses a different (gradient-ascent) form, so its 8-12 do not carry over. That form is available as
  ``guidance_form="paper"`` (``--guidance-form paper``); the presets are for the default form.
* ``stop_weight``: weight of the reward's "stop at the goal" term (``planner.GoalReward``): speed near the
  goal is charged, so plans arrive and stay; the paper's reward is the goal distance alone (weight 0).
* ``mc_samples``: Monte Carlo samples per token (``df`` uses 1: the paper's "w/o MCG").
* ``replan_every``: env steps executed per plan (the paper: 10 diffused actions); ``sampling_steps`` S.

The guidance scales were chosen on umaze (README, "how the presets were chosen"): 1.0 for ``df_mcg`` and 0.3
for ``df`` were the best of {0.1, 0.3, 1.0} / {0.3, 1.0} there. The stop weight 2.0 was the best of
{1.5, 2.0} for ``df_mcg`` with the 15k-update umaze model on held-out seeds 1000-1099, after a first sweep of
{0.3, 0.6, 1.0, 1.5, 3.0, 10} with a non-smooth speed term peaked at 1.5 (README); ``df`` reuses it untuned.
Medium and large keep the paper's reward (stop weight 0): on the 9000-update medium model the umaze weight 2.0
dropped DF + MCG from 75.8 (47% success) to -0.1 (24%). Medium's scales were tuned on held-out seeds 1000-1099
with the 20,000-update model (README, "presets tuned on held-out seeds"): ``df_mcg`` 0.3 (of 0.1 / 0.3 / 1.0:
26.1 / 60.1 / 32.8), ``df`` 0.3 (of 0.1 / 0.2 / 0.3 / 1.0). Large ``df`` was tuned the same way with the
12,000-update model: 1.0 (of 0.2 / 0.3 / 1.0: 35.4 / 47.3 / 68.5). Large ``df_mcg`` was tuned the same way in the
sixth and seventh sessions: 3.0 (of 0.3 / 1.0 / 2.0 / 3.0: 34.7 / 54.4 / 73.0 / 81.1; 2.0 and 3.0 lie within one
standard error of each other, and larger scales were not tried).

The scales are for the model's own actions. With ``--controller pd`` (PD on the planned positions, reported
separately) pass ``--guidance-scale 3`` on umaze: the best of 0.3 / 1 / 3 / 6 for ``df_mcg`` on held-out seeds
1000-1029 with a constant-weight 8,000-update model (44.2 / 61.0 / 116.8 / 110.2; README, "PD on the plans at
guidance scale 3"); the presets keep 1.0 so that the quickstart's two controllers share one planner. On medium
3 was also the better of 1 / 3 for ``df_mcg`` with PD (held-out seeds 1000-1029, a constant-weight 10,000-update
model: 33.9 / 52.1; README, "medium: PD on the plans, constant-weight models"). Large was evaluated with PD at 3
without tuning (README, "large: PD on the plans, constant-weight models").

The presets are for models trained on D4RL-like data. For umaze models trained on data with stops
(``dforce-plan data --dwell 100``, not D4RL's) pass ``--guidance-scale 0.3 --stop-weight 0`` for ``df_mcg`` and
``df``: the best of 0.15 / 0.3 / 0.5 / 1.0 on held-out seeds 1000-1099 over three training seeds, where the umaze
preset (1.0, stop 2.0) scores 3.9 / -2.0 / 11.1 (README, "data that contains stops").
"""

from __future__ import annotations

from typing import Any

# world units/s: slower than this, the ball needs more than a second to cross the goal's radius ("slow" in the
# speed figures of `eval` and `data`)
SLOW_SPEED = 0.5
MAZES = ("umaze", "medium", "large")
EPISODE_STEPS = {"umaze": 300, "medium": 600, "large": 800}
DF_TOKENS = {"umaze": 30, "medium": 60, "large": 80}  # plans of the whole episode (fs = 10)
DIFFUSER_TOKENS = {"umaze": 13, "medium": 26, "large": 39}  # Diffuser's horizons 128 / 256 / 384, rounded up

MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"d_model": 64, "n_layers": 3, "n_heads": 4},  # quickstart / CPU
    "small": {"d_model": 128, "n_layers": 4, "n_heads": 4},
    "paper": {"d_model": 128, "n_layers": 12, "n_heads": 4},  # main: planning transformer size (reference §4.2)
}

_DF = {"horizon": None, "replan_every": 10, "sampling_steps": 10, "mc_samples": 4, "stop_weight": 0.0}
PLANNER_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "df_mcg": {
        "umaze": {**_DF, "guidance_scale": 1.0, "stop_weight": 2.0},
        "medium": {**_DF, "guidance_scale": 0.3},
        "large": {**_DF, "guidance_scale": 3.0},
    },
    "df": {
        "umaze": {**_DF, "mc_samples": 1, "guidance_scale": 0.3, "stop_weight": 2.0},
        "medium": {**_DF, "mc_samples": 1, "guidance_scale": 0.3},
        "large": {**_DF, "mc_samples": 1, "guidance_scale": 1.0},
    },
    "diffuser": {
        maze: {"horizon": None, "replan_every": None, "sampling_steps": 20, "mc_samples": 1,
               "guidance_scale": 0.0, "controller": "pd"}
        for maze in MAZES
    },
    "goal_pd": {maze: {"mc_samples": 1, "guidance_scale": 0.0, "controller": "pd"} for maze in MAZES},  # no model
}


# Position-only models (``--channels pos``, the main: README's v1.5 recipe) have no actions: PD follows their plans,
# replanning every 50 steps (the main: code's open_loop_horizon with PD), with the velocity the plan implies over
# +-10 frames, and each plan ends at its closest approach to the goal within 0.5 (the goal radius), held at rest.
# Scales chosen on held-out seeds 1000-1029 with seed 0's 8,000-update models, by the mean of the single-task and
# Multi2D scores, after the twenty-eighth session's hold (a ball already at the goal counts as the plan's frame -1;
# README "the hold fixed"): df medium 0.1 (of 0.02 / 0.03 / 0.05 / 0.1 / 0.2: 137.0 /
# 147.8 / 161.8 / 167.2 / 141.6), large 0.05 (of 0.03 / 0.05 / 0.1: 172.7 / 178.8 / 130.0); df_mcg medium 0.2 (of
# 0.1 / 0.2 / 0.5: 159.3 / 167.0 / 143.1), large 0.1 (of 0.1 / 0.2: 177.6 / 154.1). Umaze (twenty-seventh session,
# single task, seed 0's 4,000-update model; its ball already held the goal): df 0.1 (of 0.02 / 0.05 / 0.1 / 0.2 /
# 0.3: 78.6 / 116.1 / 122.5 / 121.9 / 112.8), df_mcg 1.0 (of 0.1 / 0.3 / 1.0: 107.7 / 131.2 / 132.4). Every sweep:
# docs/results/2026-12-06_pos_hold_heldout.md. Large also cuts a stalled ball's guidance (stall_decay 0.5, twenty-ninth
# session: a ball pinned against a wall by a plan through it has its episode's guidance halved at each replan that
# finds it stalled); chosen on held-out seeds 1000-1099 with seed 0's and seed 1's models, Multi2D, df: decay off /
# 0.1 / 0.3 / 0.5 / 0.7 scored 162.1 / 163.3 / 170.0 / 171.6 / 169.3 (mean of the two models); df_mcg with 0.5, seed
# 0's model: 171.9 -> 176.1 (paired +4.2 +- 1.9); medium df with 0.5: +1.9 single task, +0.2 Multi2D (seed 0's
# model), so medium and umaze keep it off.
_POS = {"horizon": None, "replan_every": 50, "sampling_steps": 10, "stop_weight": 0.0, "controller": "pd",
        "pos_velocity": "smooth", "pos_velocity_window": 10, "hold_radius": 0.5}
POS_PLANNER_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "df_mcg": {"umaze": {**_POS, "mc_samples": 4, "guidance_scale": 1.0},
               "medium": {**_POS, "mc_samples": 4, "guidance_scale": 0.2},
               "large": {**_POS, "mc_samples": 4, "guidance_scale": 0.1, "stall_decay": 0.5}},
    "df": {"umaze": {**_POS, "mc_samples": 1, "guidance_scale": 0.1},
           "medium": {**_POS, "mc_samples": 1, "guidance_scale": 0.1},
           "large": {**_POS, "mc_samples": 1, "guidance_scale": 0.05, "stall_decay": 0.5}},
    # the Diffuser-style baseline on position-only tokens: Diffuser's protocol (one plan of its fixed horizon,
    # start and goal position inpainted), followed by the same PD as the DF rows (smoothed velocity reference, the
    # plan ends at its closest approach during its first visit within 0.5, held there at rest; a plan that never
    # gets there is followed to its last frame, then that is held)
    "diffuser": {maze: {**_POS, "replan_every": None, "sampling_steps": 20, "mc_samples": 1, "guidance_scale": 0.0}
                 for maze in MAZES},
}


# Full-token models trained with constant loss weights (the paper: branch's weighting; every own-action row that the
# README reports since the thirty-second session): their guidance scales, by how the model normalises its tokens
# (``preset_recipe``). Chosen on held-out seeds 1000-1029 (30 episodes, seed 0's model, own actions, the paper's
# goal reward, no stop term: it lowered umaze's DF + MCG from 54.5 to 37.0 / 18.2 / 27.4 at weights 0.5 / 1 / 2 and
# DF w/o MCG from 53.5 to 28.6 / 44.9 / 19.2, thirty-fifth session). "official" (official std; umaze 5,000 updates,
# thirty-fourth session): df_mcg 2.0 (of 0.5 / 1 / 2 / 3: 38.0 / 43.8 / 54.5 / 43.5; Multi2D 1 / 2: 83.0 / 83.2), df
# 1.0 (of 0.1 / 0.3 / 1 / 2 / 3: 22.5 / 43.5 / 53.5 / 11.6 / 3.8); medium (5,000 updates, thirty-second session):
# df_mcg 0.3 (of 0.3 / 1: 42.4 / 7.0), df 0.1 (of 0.1 / 0.3 / 1: 37.1 / 35.3 / 1.5). "main" (the main: README's
# diffused-action scaling, ``--obs-std``: positions by twice the official std, velocities by 8; thirty-second to
# thirty-fourth sessions): umaze df_mcg 1.0 (of 1 / 2 / 4: 17.8 / 9.8 / 9.4), df 0.3 (of 0.3 / 1 / 3: 13.1 / 12.7 /
# 5.0); medium df_mcg 2.0 (of 0.3 / 1 / 2: 29.3 / 84.9 / 89.0) and on Multi2D 1.0 (of 0.5 / 1 / 2 / 4: 32.8 / 45.3 /
# 31.1 / 15.0), df 1.0 (of 0.1 / 0.3 / 1 / 3: 27.2 / 46.3 / 51.9 / 32.8); large (8,000 updates) df_mcg 0.1 (of 0.05 /
# 0.1 / 0.5 / 2: 10.7 / 19.4 / 11.1 / 2.2; on seeds 0-99 it scores 10.8 +- 2.0 below df, thirty-fifth session), df
# 0.1 (of 0.03 / 0.05 / 0.1 / 0.3 / 1: 18.8 / 26.4 / 18.1 / 5.8 / -0.8; 0.05 then lost to 0.1 on seeds 0-99 with two
# models, -6.8 +- 2.3 single task, -8.2 +- 3.6 Multi2D, so 0.1).
# A maze that a recipe does not list (large with the official std) keeps the ``PLANNER_PRESETS`` entry; a
# "multi-<maze>" key is Multi2D's own choice, else Multi2D uses its maze's.
RECIPE_PLANNER_PRESETS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {
    "official": {
        "df_mcg": {"umaze": {**_DF, "guidance_scale": 2.0}, "medium": {**_DF, "guidance_scale": 0.3}},
        "df": {"umaze": {**_DF, "mc_samples": 1, "guidance_scale": 1.0},
               "medium": {**_DF, "mc_samples": 1, "guidance_scale": 0.1}},
    },
    "main": {
        "df_mcg": {"umaze": {**_DF, "guidance_scale": 1.0}, "medium": {**_DF, "guidance_scale": 2.0},
                   "multi-medium": {**_DF, "guidance_scale": 1.0}, "large": {**_DF, "guidance_scale": 0.1}},
        "df": {"umaze": {**_DF, "mc_samples": 1, "guidance_scale": 0.3},
               "medium": {**_DF, "mc_samples": 1, "guidance_scale": 1.0},
               "large": {**_DF, "mc_samples": 1, "guidance_scale": 0.1}},
    },
}
RECIPES = (None, *RECIPE_PLANNER_PRESETS)


def preset_recipe(loss_weighting: str, obs_std: Any = None, action_std: Any = None,
                  backbone: str = "transformer") -> str | None:
    """Which ``RECIPE_PLANNER_PRESETS`` entry fits a model trained this way: "main" (``--obs-std`` given), "official"
    (constant loss weights, official std; the recurrent backbone too), or None (``PLANNER_PRESETS``: min-SNR weights,
    only the actions rescaled, or the recurrent backbone with the ``main:`` scaling, never tuned).

    The recurrent model shares the transformer's "official" scales because they are its own held-out best as well
    (umaze, seed 0's 5,000-update RNN, seeds 1000-1029, forty-second session: DF + MCG 1 / 2 / 3 scored 31.5 / 33.5 /
    31.5, DF w/o MCG 0.3 / 1 / 3 scored 31.8 / 35.5 / 29.6)."""
    if loss_weighting != "constant" or backbone not in ("transformer", "rnn"):
        return None
    if obs_std is not None:
        return "main" if backbone == "transformer" else None
    return "official" if action_std is None else None


def planner_preset(method: str, maze: str, channels: str = "full", recipe: str | None = None) -> dict[str, Any]:
    """The preset planner settings (a copy) of ``method`` on ``maze`` ("multi-<maze>": Multi2D) for a model whose
    tokens hold ``channels`` ("full", or "pos": position-only, ``POS_PLANNER_PRESETS``) and that was trained with
    ``recipe`` (``preset_recipe``; full tokens only, ``RECIPE_PLANNER_PRESETS``)."""
    task, maze = maze, maze.removeprefix("multi-")
    if method not in PLANNER_PRESETS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(PLANNER_PRESETS)}")
    if maze not in MAZES:
        raise ValueError(f"unknown maze {maze!r}; choose one of {MAZES}")
    if channels not in ("full", "pos"):
        raise ValueError(f"unknown channels {channels!r}; choose full or pos")
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {RECIPES}")
    if channels == "pos" and method in POS_PLANNER_PRESETS:
        return dict(POS_PLANNER_PRESETS[method][maze])
    by_maze = RECIPE_PLANNER_PRESETS.get(recipe, {}).get(method, {}) if channels == "full" else {}
    return dict(by_maze.get(task) or by_maze.get(maze) or PLANNER_PRESETS[method][maze])


def model_preset(size: str) -> dict[str, Any]:
    """Network size preset (tiny | small | paper)."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {sorted(MODEL_SIZES)}")
    return dict(MODEL_SIZES[size])
