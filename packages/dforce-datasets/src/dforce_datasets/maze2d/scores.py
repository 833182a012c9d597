"""D4RL reference scores and the normalized score (R - min) / (max - min), reported x 100 in papers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RefScores:
    """REF_MIN_SCORE / REF_MAX_SCORE of one D4RL maze2d task (d4rl/infos.py)."""

    ref_min: float
    ref_max: float


# Keyed by D4RL env id. Multi2D ('multi') variants are scored with the single-task references (as Diffuser and DF do).
REF_SCORES: dict[str, RefScores] = {
    "maze2d-umaze-v1": RefScores(23.85, 161.86),
    "maze2d-medium-v1": RefScores(13.13, 277.39),
    "maze2d-large-v1": RefScores(6.7, 273.99),
    "maze2d-eval-umaze-v1": RefScores(36.63, 141.4),
    "maze2d-eval-medium-v1": RefScores(13.07, 204.93),
    "maze2d-eval-large-v1": RefScores(16.4, 302.22),
    "maze2d-umaze-dense-v1": RefScores(68.537689, 193.66),
    "maze2d-medium-dense-v1": RefScores(44.264742, 297.46),
    "maze2d-large-dense-v1": RefScores(30.569041, 303.49),
    "maze2d-open-v0": RefScores(0.01, 20.66),
    "maze2d-umaze-v0": RefScores(0.94, 62.6),
    "maze2d-medium-v0": RefScores(5.77, 85.14),
    "maze2d-large-v0": RefScores(4.83, 191.99),
}


def d4rl_name(env_id: str) -> str:
    """Map 'dforce/maze2d-multi-umaze-v1', 'umaze' or 'maze2d-umaze-v1' to the D4RL id that holds its references."""
    name = env_id.split("/")[-1]
    if name in ("umaze", "medium", "large", "eval-umaze", "eval-medium", "eval-large"):
        name = f"maze2d-{name}-v1"
    name = name.replace("maze2d-multi-", "maze2d-")
    if name not in REF_SCORES:
        raise ValueError(f"no D4RL reference scores for {env_id!r}; known: {sorted(REF_SCORES)}")
    return name


def normalized_score(env_id: str, raw_return: float) -> float:
    """D4RL get_normalized_score: (R - REF_MIN) / (REF_MAX - REF_MIN); multiply by 100 for the paper tables."""
    ref = REF_SCORES[d4rl_name(env_id)]
    return (raw_return - ref.ref_min) / (ref.ref_max - ref.ref_min)
