"""The geodesic distance field: hand-computed maze paths, bounds, walls, the torch lookup and its gradient."""

import math

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("numba")
torch = pytest.importorskip("torch")

from dforce_datasets.maze2d.geodesic import (  # noqa: E402
    GRID_ORIGIN,
    RESOLUTION,
    WALL_COST,
    distance_field,
    field_lookup,
    free_grid,
)
from dforce_datasets.maze2d.model import RADIUS  # noqa: E402

OCTILE = math.sqrt(4 - 2 * math.sqrt(2))  # the 8-neighbour grid's worst-case stretch of a straight line (1.0824)


def grid_nodes(origin, shape) -> np.ndarray:
    """(nx, ny, 2) qpos of every grid node."""
    axes = (o + RESOLUTION * np.arange(n) for o, n in zip(origin, shape, strict=True))
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def test_umaze_distances_follow_the_corridor_not_the_wall():
    # umaze: the goal cell (1, 1) and the cell (3, 1) below it are separated by the wall cells (2, 0..2), whose
    # boxes span x in [1.3, 2.3] and y up to 2.3 (the D4RL 0.2 offset). A ball (radius 0.1) goes around the
    # corner of that block, (2.4, 2.4) and (1.2, 2.4): 1.5232 + 1.2 + 1.4142 = 4.1374 by hand.
    f = distance_field("umaze", (1.0, 1.0))
    exact = math.hypot(0.6, 1.4) + 1.2 + math.hypot(0.2, 1.4)
    d = f(np.array([[1.0, 1.0], [1.0, 3.0], [3.0, 1.0]]))
    assert d[0] == pytest.approx(0.0, abs=1e-12)
    assert d[1] == pytest.approx(2.0, abs=1e-9)  # a straight free corridor: exact on the grid
    assert exact - 1e-9 <= d[2] <= OCTILE * exact  # never shorter than the true path, at most the grid's stretch
    assert d[2] > 2.0 * math.dist((3.0, 1.0), (1.0, 1.0))  # Euclid says 2: the field knows the wall


def test_free_space_distance_is_never_below_euclid_and_is_euclid_in_an_open_maze():
    origin, free = free_grid("medium")
    goal = np.array([6.0, 6.0])
    f = distance_field("medium", goal)
    nodes = grid_nodes(origin, free.shape)  # (nx, ny, 2)
    euclid = np.linalg.norm(nodes - goal, axis=-1)
    assert np.isfinite(f.values).all()
    assert (f.values[free] >= euclid[free] - 1e-9).all()
    assert (f.values[~free] > euclid[~free]).all()  # a wall node is farther than the straight line
    soft = distance_field("medium", goal, wall_cost=1.0)
    assert np.array_equal(soft.values[free], f.values[free])  # the wall cost never changes free-space distances
    assert (soft.values[~free] < f.values[~free]).all()
    assert (soft.values[~free] >= euclid[~free] - 1e-9).all()
    # with no interior walls the field is the straight-line distance up to the octile stretch
    g = distance_field("open", (2.0, 3.0))
    e = np.linalg.norm(grid_nodes(g.origin, g.free.shape) - np.array([2.0, 3.0]), axis=-1)[g.free]
    assert (g.values[g.free] >= e - 1e-9).all() and (g.values[g.free] <= OCTILE * e + 1e-9).all()


def test_free_nodes_clear_the_walls_and_walls_push_out():
    origin, free = free_grid("umaze")
    assert origin == GRID_ORIGIN
    assert free[round((1.0 - origin[0]) / RESOLUTION), round((1.0 - origin[1]) / RESOLUTION)]
    x_wall_top = 1.3 - RADIUS  # the last free x above the wall block (2, 0..2), at y = 1
    i = round((x_wall_top - 0.05 - origin[0]) / RESOLUTION)
    j = round((1.0 - origin[1]) / RESOLUTION)
    assert free[i, j] and not free[i + 2, j]
    # inside the wall at (2.0, 1.0) the bottom corridor (x >= 2.4, 0.4 away) is nearer than the top one (x <= 1.2,
    # 0.8 away), but the top one is 0.2 from the goal and the bottom one about 4. With the default wall cost (20)
    # the descent direction points down and out at that cost per unit; with cost 1 it is the shorter total way,
    # up, at unit speed like the straight-line distance
    xy = torch.tensor([[[2.0, 1.0], [3.0, 1.0]]], dtype=torch.float64, requires_grad=True)
    grads = {}
    for cost in (WALL_COST, 1.0):
        f = distance_field("umaze", (1.0, 1.0), wall_cost=cost)
        v = field_lookup(torch.as_tensor(f.values)[None], f.origin, f.step, xy, wall_cost=cost)
        (grads[cost],) = torch.autograd.grad(v.sum(), xy)
    assert WALL_COST == 20.0
    assert -grads[20.0][0, 0, 0] == pytest.approx(20.0, rel=1e-6)
    assert grads[1.0][0, 0, 0] == pytest.approx(1.0, rel=1e-6)
    for grad in grads.values():
        # in the bottom corridor at (3, 1) the way to the goal is along +y first (toward column 3), not up through x
        assert -grad[0, 1, 1] > 0.9 and abs(grad[0, 1, 0]) < abs(grad[0, 1, 1])


def test_lookup_is_bilinear_between_nodes_and_matches_finite_differences():
    f = distance_field("medium", (6.0, 6.0))
    i, j = 40, 77
    node = np.array(f.origin) + f.step * np.array([i, j])
    assert f(node) == pytest.approx(f.values[i, j], abs=1e-12)  # exact on nodes
    mid = node + f.step * np.array([0.25, 0.5])
    v = f.values
    want = 0.75 * 0.5 * v[i, j] + 0.25 * 0.5 * v[i + 1, j] + 0.75 * 0.5 * v[i, j + 1] + 0.25 * 0.5 * v[i + 1, j + 1]
    assert f(mid) == pytest.approx(want, abs=1e-12)
    xy = torch.tensor(mid[None, None], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(field_lookup(torch.as_tensor(v)[None], f.origin, f.step, xy).sum(), xy)
    h = 1e-6
    fd = [(f(mid + h * e) - f(mid - h * e)) / (2 * h) for e in np.eye(2)]
    assert np.allclose(grad[0, 0].numpy(), fd, atol=1e-6)
    # off the grid the value keeps growing, so the gradient points back in
    far = np.array([-5.0, 3.0])
    assert f(far) == pytest.approx(f(np.array([f.origin[0], 3.0])) + WALL_COST * (f.origin[0] - far[0]), abs=1e-9)


def test_replicas_share_their_goal_field_and_bad_input_is_rejected():
    fa, fb = distance_field("umaze", (1.0, 1.0)), distance_field("umaze", (3.0, 1.0))
    values = torch.as_tensor(np.stack([fa.values, fb.values]))  # (2, nx, ny)
    xy = torch.tensor([[3.0, 3.0]], dtype=torch.float64).expand(4, 1, 2)  # rows 0, 1 -> goal a; 2, 3 -> goal b
    out = field_lookup(values, fa.origin, fa.step, xy)[:, 0]
    a, b = float(fa(np.array([3.0, 3.0]))), float(fb(np.array([3.0, 3.0])))
    assert torch.allclose(out, torch.tensor([a, a, b, b], dtype=torch.float64))
    assert out[0] != out[2]
    with pytest.raises(ValueError, match="share"):
        field_lookup(values, fa.origin, fa.step, xy[:3])
    with pytest.raises(ValueError, match="outside the maze"):
        distance_field("umaze", (40.0, 1.0))
    with pytest.raises(ValueError, match="finite"):
        distance_field("umaze", (float("nan"), 1.0))
    with pytest.raises(ValueError, match="wall_cost"):
        distance_field("umaze", (1.0, 1.0), wall_cost=0.5)
