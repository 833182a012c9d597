"""D4RL's REF_MAX procedure (scripts/reference_scores/maze2d_controller.py), quirk included."""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .controller import WaypointController
from .registration import get_task
from .scores import normalized_score


def gym021_random_state(seed: int) -> np.random.RandomState:
    """The RandomState that gym <= 0.21's env.seed(seed) gives an env (sha512-hashed seed, legacy MT19937)."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    digest = hashlib.sha512(str(seed % 2**64).encode("utf8")).digest()[:8]
    padded = digest + b"\0" * (4 - len(digest) % 4)  # gym pads even when the length is a multiple of 4
    words = struct.unpack(f"<{len(padded) // 4}I", padded)
    bigint = sum(w << (32 * i) for i, w in enumerate(words))
    ints = []
    while bigint > 0:
        bigint, mod = divmod(bigint, 2**32)
        ints.append(mod)
    return np.random.RandomState(ints or [0])


@dataclass(frozen=True)
class ReferenceResult:
    """Per-episode returns of the REF_MAX procedure and their summary."""

    env: str
    returns: tuple[float, ...]

    @property
    def raw_return(self) -> float:
        """Mean raw return over episodes."""
        return float(np.mean(self.returns))

    @property
    def sem(self) -> float:
        """Standard error of the mean (ddof=1)."""
        n = len(self.returns)
        return float(np.std(self.returns, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def normalized(self) -> float:
        """D4RL normalized score x 100."""
        return 100.0 * normalized_score(self.env, self.raw_return)


def run_reference(env: str = "umaze", episodes: int = 100, seed: int = 0, legacy_seeding: bool = False,
                  progress: Callable[[int, float], None] | None = None) -> ReferenceResult:
    """One WaypointController shared by all episodes; each episode reset() then max_episode_steps actions.

    With legacy_seeding the env and the controller draw from the exact streams D4RL's script used (gym 0.21's
    env.seed(seed) and np.random.seed(seed)); otherwise both come from numpy Generators spawned from `seed`.
    """
    from .env import maze2d_env_class

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    task = get_task(env)
    maze_env = maze2d_env_class()(maze=task.maze, reward_type=task.reward_type, reset_target=task.multi_goal,
                                  ref_name=task.ref_name)
    if legacy_seeding:
        maze_env.np_random = gym021_random_state(seed)
        ctrl_rng = np.random.RandomState(seed)
    else:
        env_seq, ctrl_seq = np.random.SeedSequence(seed).spawn(2)
        maze_env.np_random = np.random.Generator(np.random.PCG64(env_seq))
        ctrl_rng = np.random.Generator(np.random.PCG64(ctrl_seq))
    controller = WaypointController(task.maze, rng=ctrl_rng)
    returns = []
    for episode in range(episodes):
        obs, _ = maze_env.reset()
        total = 0.0
        for _ in range(task.max_episode_steps):
            action, _ = controller.get_action(obs[:2], obs[2:], maze_env.get_target())
            obs, reward, _, _, _ = maze_env.step(action)
            total += reward
        returns.append(total)
        if progress is not None:
            progress(episode, total)
    return ReferenceResult(env=task.ref_name, returns=tuple(returns))
