"""Pictures of planned and executed trajectories over the maze (matplotlib, no OpenGL needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _draw_maze(ax, layout) -> None:
    from matplotlib.patches import Rectangle

    boxes = layout.wall_boxes()  # (n, 4) [x_lo, y_lo, x_hi, y_hi] in qpos coordinates
    for x_lo, y_lo, x_hi, y_hi in boxes:
        # horizontal axis = y (columns), vertical axis = x (rows, downwards), as the maze strings read
        ax.add_patch(Rectangle((y_lo, x_lo), y_hi - y_lo, x_hi - x_lo, color="0.35", lw=0))
    ax.set_xlim(boxes[:, 1].min(), boxes[:, 3].max())
    ax.set_ylim(boxes[:, 2].max(), boxes[:, 0].min())
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_episodes(path: str | Path, layout, executed: Sequence[np.ndarray], plans: Sequence[Sequence[np.ndarray]],
                  goals: np.ndarray, titles: Sequence[str], suptitle: str = "") -> Path:
    """One panel per episode: walls, the executed path (black), every plan (first one bold), start and goal.

    ``executed[i]`` is (L, 2) positions, ``plans[i]`` a list of (L_j, 2) planned positions, ``goals`` (n, 2).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    n = len(executed)
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        _draw_maze(ax, layout)
        for j, p in enumerate(plans[i]):
            color = cmap(j / max(1, len(plans[i]) - 1))
            ax.plot(p[:, 1], p[:, 0], color=color, lw=2.0 if j == 0 else 0.7, alpha=0.9 if j == 0 else 0.5)
        e = executed[i]
        ax.plot(e[:, 1], e[:, 0], color="black", lw=1.4)
        ax.plot(e[0, 1], e[0, 0], "o", color="tab:blue", ms=6)
        ax.plot(goals[i, 1], goals[i, 0], "*", color="tab:red", ms=14)
        ax.add_patch(Circle((goals[i, 1], goals[i, 0]), 0.5, fill=False, color="tab:red", lw=0.8, ls="--"))
        ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
