"""Gymnasium ids for the maze2d tasks: dforce/maze2d-{umaze,medium,large}-v1, eval, Multi2D, dense and open."""

from __future__ import annotations

from dataclasses import dataclass

from ._deps import require


@dataclass(frozen=True)
class Maze2dTask:
    """One registered maze2d task."""

    env_id: str
    maze: str
    max_episode_steps: int
    reward_type: str = "sparse"
    multi_goal: bool = False  # Multi2D: a new random target at every reset
    ref_name: str = ""  # D4RL id whose REF_MIN / REF_MAX score it


def _tasks() -> dict[str, Maze2dTask]:
    tasks: list[Maze2dTask] = []
    for maze, steps in (("umaze", 300), ("medium", 600), ("large", 800)):
        ref = f"maze2d-{maze}-v1"
        tasks += [
            Maze2dTask(f"dforce/maze2d-{maze}-v1", maze, steps, ref_name=ref),
            Maze2dTask(f"dforce/maze2d-multi-{maze}-v1", maze, steps, multi_goal=True, ref_name=ref),
            Maze2dTask(f"dforce/maze2d-{maze}-dense-v1", maze, steps, "dense", ref_name=f"maze2d-{maze}-dense-v1"),
            Maze2dTask(f"dforce/maze2d-eval-{maze}-v1", f"eval-{maze}", steps, ref_name=f"maze2d-eval-{maze}-v1"),
        ]
    tasks.append(Maze2dTask("dforce/maze2d-open-v0", "open", 150, ref_name="maze2d-open-v0"))
    return {t.env_id: t for t in tasks}


TASKS: dict[str, Maze2dTask] = _tasks()


def get_task(name: str) -> Maze2dTask:
    """A task by full id, id without the 'dforce/' namespace, or short maze name ('umaze', 'multi-large', ...)."""
    for key in (name, f"dforce/{name}", f"dforce/maze2d-{name}-v1"):
        if key in TASKS:
            return TASKS[key]
    raise ValueError(f"unknown maze2d task {name!r}; known ids: {sorted(TASKS)}")


def register_envs() -> None:
    """Register every task with gymnasium (idempotent)."""
    gym = require("gymnasium")
    for task in TASKS.values():
        if task.env_id in gym.registry:
            continue
        gym.register(
            id=task.env_id,
            entry_point="dforce_datasets.maze2d.env:Maze2dEnv",
            max_episode_steps=task.max_episode_steps,
            kwargs={"maze": task.maze, "reward_type": task.reward_type, "reset_target": task.multi_goal,
                    "ref_name": task.ref_name},
        )
