"""D4RL's REF_MAX procedure on our maze2d port: 100 episodes of the waypoint controller, quirk included.

One controller is shared by all episodes (so it plans only in episode 0 and then steers straight at the goal);
each episode is reset() then max_episode_steps controller actions; the score is the mean raw return. D4RL's
numbers are 161.86 / 277.39 / 273.99 (umaze / medium / large). ``--legacy-seeding`` draws from exactly the
streams D4RL's script used (gym 0.21's env.seed(0), np.random.seed(0)) and reproduces them to the digit; the
default uses our own seeding, which gives another sample of the same distribution (SEM about 13 / 26 / 33).
Last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from dforce_datasets.maze2d import REF_SCORES, get_task, run_reference


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="umaze", help="umaze | medium | large (or any registered maze2d id)")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--legacy-seeding", action="store_true", help="D4RL's exact random streams (gym 0.21)")
    args = parser.parse_args(argv)
    task = get_task(args.env)
    start = time.perf_counter()

    def progress(episode: int, ret: float) -> None:
        if (episode + 1) % 10 == 0 or episode + 1 == args.episodes:
            print(f"[{task.env_id}] episode {episode + 1}/{args.episodes} return {ret:.0f} "
                  f"({time.perf_counter() - start:.1f}s)", file=sys.stderr, flush=True)

    result = run_reference(args.env, episodes=args.episodes, seed=args.seed, legacy_seeding=args.legacy_seeding,
                           progress=progress)
    ref_max = REF_SCORES[result.env].ref_max
    summary = {
        "env": result.env,
        "raw_return": result.raw_return,
        "sem": result.sem,
        "normalized": result.normalized,
        "episodes": args.episodes,
        "seed": args.seed,
        "legacy_seeding": args.legacy_seeding,
        "d4rl_ref_max": ref_max,
        "z_vs_ref_max": (result.raw_return - ref_max) / result.sem if result.sem > 0 else None,
        "zero_return_episodes": sum(r == 0 for r in result.returns),
        "seconds": round(time.perf_counter() - start, 2),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
