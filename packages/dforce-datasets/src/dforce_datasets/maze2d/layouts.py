"""D4RL maze2d layouts: the maze strings, their goals and cell helpers (row index = x, column index = y)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# '#' wall, 'O' free, 'G' free goal cell. Rows are joined with a backslash, as in D4RL's maze strings.
U_MAZE = "\\".join(["#####", "#GOO#", "###O#", "#OOO#", "#####"])
U_MAZE_EVAL = "\\".join(["#####", "#OOG#", "#O###", "#OOO#", "#####"])
MEDIUM_MAZE = "\\".join(["########", "#OO##OO#", "#OO#OOO#", "##OOO###", "#OO#OOO#", "#O#OO#O#", "#OOO#OG#", "########"])
MEDIUM_MAZE_EVAL = "\\".join(
    ["########", "#OOOOOG#", "#O#O##O#", "#OOOO#O#", "###OO###", "#OOOOOO#", "#OO##OO#", "########"]
)
LARGE_MAZE = "\\".join([
    "############", "#OOOO#OOOOO#", "#O##O#O#O#O#", "#OOOOOO#OOO#", "#O####O###O#",
    "#OO#O#OOOOO#", "##O#O#O#O###", "#OO#OOO#OGO#", "############",
])
LARGE_MAZE_EVAL = "\\".join([
    "############", "#OO#OOO#OGO#", "##O###O#O#O#", "#OO#O#OOOOO#", "#O##O#OO##O#",
    "#OOOOOO#OOO#", "#O##O#O#O###", "#OOOO#OOOOO#", "############",
])
OPEN = "\\".join(["#######", "#OOOOO#", "#OOGOO#", "#OOOOO#", "#######"])
SMALL_MAZE = "\\".join(["######", "#OOOO#", "#O##O#", "#OOOO#", "######"])

MAZE_STRINGS: dict[str, str] = {
    "umaze": U_MAZE,
    "medium": MEDIUM_MAZE,
    "large": LARGE_MAZE,
    "eval-umaze": U_MAZE_EVAL,
    "eval-medium": MEDIUM_MAZE_EVAL,
    "eval-large": LARGE_MAZE_EVAL,
    "open": OPEN,
    "small": SMALL_MAZE,
}


@dataclass(frozen=True)
class MazeLayout:
    """A parsed maze: a boolean wall grid, the goal cell and D4RL's ordered reset cells."""

    name: str
    spec: str
    walls: np.ndarray = field(repr=False)  # (rows, cols) bool
    goal: tuple[int, int] | None
    empty_cells: tuple[tuple[int, int], ...] = field(repr=False)  # sorted 'O' cells (D4RL reset_locations)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the grid."""
        return self.walls.shape

    @property
    def wall_cells(self) -> tuple[tuple[int, int], ...]:
        """Wall cells in row-major order (the order the MJCF boxes are written in)."""
        return tuple((int(r), int(c)) for r, c in np.argwhere(self.walls))

    @property
    def reset_cells(self) -> tuple[tuple[int, int], ...]:
        """D4RL's empty_and_goal_locations: sorted empty cells with the goal cell appended."""
        return self.empty_cells + ((self.goal,) if self.goal is not None else ())

    @property
    def default_target(self) -> tuple[int, int]:
        """The fixed single-task target: the goal cell, or the first empty cell when there is none."""
        return self.goal if self.goal is not None else self.empty_cells[0]

    def is_free(self, cell: tuple[int, int]) -> bool:
        """True for an in-bounds cell that is not a wall."""
        r, c = cell
        return 0 <= r < self.walls.shape[0] and 0 <= c < self.walls.shape[1] and not self.walls[r, c]

    def wall_boxes(self) -> np.ndarray:
        """(n_walls, 4) rectangles [x_lo, y_lo, x_hi, y_hi] of the wall boxes in qpos coordinates."""
        cells = np.asarray(self.wall_cells, dtype=np.float64).reshape(-1, 2)
        # a wall of cell (w, h) sits at world (w + 1, h + 1); the particle body origin is at world (1.2, 1.2)
        centre = cells - 0.2
        return np.concatenate([centre - 0.5, centre + 0.5], axis=1)


def parse_maze(spec: str, name: str = "custom") -> MazeLayout:
    """Parse a D4RL maze string ('#' wall, 'O' or ' ' free, 'G' goal; rows separated by a backslash)."""
    rows = spec.strip().rstrip("\\").split("\\")
    if not rows or not rows[0]:
        raise ValueError("maze string is empty; expected rows like '#####\\\\#GOO#\\\\...'")
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"maze rows must all have the same length, got {[len(r) for r in rows]}")
    walls = np.zeros((len(rows), len(rows[0])), dtype=bool)
    goals, empty = [], []
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            if tile == "#":
                walls[r, c] = True
            elif tile == "G":
                goals.append((r, c))
            elif tile in "O 0":
                empty.append((r, c))
            else:
                raise ValueError(f"unknown maze tile {tile!r} at row {r}, column {c}; use '#', 'O' or 'G'")
    if len(goals) > 1:
        raise ValueError(f"a maze may have at most one 'G' cell, found {len(goals)} at {goals}")
    if not empty and not goals:
        raise ValueError("maze has no free cell")
    walls.setflags(write=False)
    return MazeLayout(name=name, spec=spec, walls=walls, goal=goals[0] if goals else None,
                      empty_cells=tuple(sorted(empty)))


def get_layout(maze: str | MazeLayout) -> MazeLayout:
    """A layout by name ('umaze', 'medium', 'large', 'eval-umaze', ..., 'open'), raw maze string, or as is."""
    if isinstance(maze, MazeLayout):
        return maze
    if maze in MAZE_STRINGS:
        return parse_maze(MAZE_STRINGS[maze], name=maze)
    if "\\" in maze:
        return parse_maze(maze)
    raise ValueError(f"unknown maze {maze!r}; expected one of {sorted(MAZE_STRINGS)} or a maze string")


def gridify(xy) -> tuple[int, int]:
    """The cell (row, col) a continuous position rounds to (round half to even, as Python's round)."""
    return int(round(float(xy[0]))), int(round(float(xy[1])))
