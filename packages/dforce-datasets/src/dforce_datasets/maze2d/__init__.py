"""D4RL maze2d on the official MuJoCo bindings: envs, waypoint controller, dataset generation and loading.

Needs the `maze` extra (``pip install dforce-datasets[maze]``). Importing this package registers the Gymnasium ids
``dforce/maze2d-{umaze,medium,large}-v1`` and their eval, Multi2D (``multi``), dense and open variants.
"""

from __future__ import annotations

from ._deps import require as _require

for _module in ("mujoco", "gymnasium"):
    _require(_module)

from .controller import ControllerGains, GridPlanner, WaypointController  # noqa: E402
from .env import Maze2dCore, maze2d_env_class, maze_reward  # noqa: E402
from .generate import DEFAULT_STEPS, GenerateConfig, Maze2dData, generate, generate_reference  # noqa: E402
from .layouts import MAZE_STRINGS, MazeLayout, get_layout, gridify, parse_maze  # noqa: E402
from .loader import load_dataset  # noqa: E402
from .model import build_mjcf, load_model  # noqa: E402
from .reference import ReferenceResult, gym021_random_state, run_reference  # noqa: E402
from .registration import TASKS, Maze2dTask, get_task, register_envs  # noqa: E402
from .scores import REF_SCORES, normalized_score  # noqa: E402
from .sim import MazeSim  # noqa: E402
from .storage import SCHEMA, read_hdf5, read_shards, to_d4rl, validate, write_hdf5, write_shards  # noqa: E402
from .traces import check_traces, record_traces  # noqa: E402
from .vector import VectorMaze2d  # noqa: E402

register_envs()


def __getattr__(name: str):
    if name == "Maze2dEnv":
        return maze2d_env_class()
    if name in ("Maze2dWindows", "WindowConfig", "NORMALIZATION"):  # torch is imported only when asked for
        from . import windows

        return getattr(windows, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_STEPS",
    "MAZE_STRINGS",
    "NORMALIZATION",
    "REF_SCORES",
    "SCHEMA",
    "TASKS",
    "ControllerGains",
    "GenerateConfig",
    "GridPlanner",
    "Maze2dCore",
    "Maze2dData",
    "Maze2dEnv",
    "Maze2dTask",
    "Maze2dWindows",
    "MazeLayout",
    "MazeSim",
    "ReferenceResult",
    "VectorMaze2d",
    "WaypointController",
    "WindowConfig",
    "build_mjcf",
    "check_traces",
    "generate",
    "generate_reference",
    "get_layout",
    "get_task",
    "gridify",
    "gym021_random_state",
    "load_dataset",
    "load_model",
    "maze2d_env_class",
    "maze_reward",
    "normalized_score",
    "parse_maze",
    "read_hdf5",
    "read_shards",
    "record_traces",
    "register_envs",
    "run_reference",
    "to_d4rl",
    "validate",
    "write_hdf5",
    "write_shards",
]
