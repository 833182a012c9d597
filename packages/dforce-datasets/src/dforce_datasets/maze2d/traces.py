"""Open-loop traces for checking a maze2d port against the real d4rl env (record there, replay here).

A trace file (.npz) holds one maze: ``maze`` (str), ``qpos0`` / ``qvel0`` (K, 2) start states, ``actions``
(K, T, 2) and ``observations`` (K, T, 4), the observation env.step returned after each action, recorded as
``env.reset(); env.set_state(qpos0[k], qvel0[k])`` then ``env.step(actions[k, t])``. Actions are float64; starts
are spread over the free cells and actions are random in [-1.2, 1.2] so that wall contacts are frequent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layouts import get_layout


def record_traces(env, maze: str, rollouts: int = 20, steps: int = 300, seed: int = 0) -> dict[str, np.ndarray]:
    """Record traces from any env with reset(), set_state(qpos, qvel) and step(action) (gym or gymnasium API).

    With the real d4rl installed: ``record_traces(gym.make('maze2d-umaze-v1').unwrapped, 'umaze')``.
    """
    rng = np.random.default_rng(seed)
    cells = np.array(get_layout(maze).reset_cells, dtype=np.float64)
    qpos0 = cells[rng.integers(len(cells), size=rollouts)] + rng.uniform(-0.1, 0.1, (rollouts, 2))
    qvel0 = rng.normal(0.0, 2.0, (rollouts, 2))
    actions = rng.uniform(-1.2, 1.2, (rollouts, steps, 2))
    observations = np.zeros((rollouts, steps, 4))
    for k in range(rollouts):
        env.reset()
        env.set_state(qpos0[k], qvel0[k])
        for t in range(steps):
            observations[k, t] = np.asarray(env.step(actions[k, t])[0], dtype=np.float64)
    return {"maze": np.str_(maze), "qpos0": qpos0, "qvel0": qvel0, "actions": actions, "observations": observations}


def check_traces(path: str | Path, atol: float = 1e-8) -> int:
    """Replay a trace file on our Maze2dEnv; raise AssertionError at the first step off by more than atol.

    Returns the number of steps compared.
    """
    from .env import maze2d_env_class

    compared = 0
    with np.load(path, allow_pickle=False) as trace:
        env = maze2d_env_class()(maze=str(trace["maze"]))
        for k in range(len(trace["qpos0"])):
            env.reset(seed=k)
            env.set_state(trace["qpos0"][k], trace["qvel0"][k])
            observed = np.stack([env.step(a)[0] for a in trace["actions"][k]])
            np.testing.assert_allclose(observed, trace["observations"][k], rtol=0, atol=atol,
                                       err_msg=f"{Path(path).name}, rollout {k}")
            compared += len(observed)
    return compared
