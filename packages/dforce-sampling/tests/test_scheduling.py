"""Scheduling matrices (reference §2.2): exact small cases and validation errors."""

from __future__ import annotations

import pytest
import torch

from dforce_sampling import (
    autoregressive,
    full_sequence,
    pyramid,
    scheduling_matrix,
    trapezoid,
    validate_matrix,
)


def _t(rows):
    return torch.tensor(rows, dtype=torch.int64)


def test_pyramid_h3_s3():
    expected = _t([[3, 3, 3], [2, 3, 3], [1, 2, 3], [0, 1, 2], [0, 0, 1], [0, 0, 0]])
    assert torch.equal(pyramid(3, 3), expected)


def test_pyramid_fractional_scale():
    # int(t * 0.5) = 0, 0, 1; height S + int(2 * 0.5) + 1 = 4
    assert torch.equal(pyramid(3, 2, 0.5), _t([[2, 2, 2], [1, 1, 2], [0, 0, 1], [0, 0, 0]]))


def test_autoregressive_h2_s2():
    assert torch.equal(autoregressive(2, 2), _t([[2, 2], [1, 2], [0, 2], [0, 1], [0, 0]]))
    assert autoregressive(4, 5).shape == (4 * 5 + 1, 4)


def test_full_sequence():
    assert torch.equal(full_sequence(3, 2), _t([[2, 2, 2], [1, 1, 1], [0, 0, 0]]))


def test_trapezoid_h4_symmetric():
    assert torch.equal(trapezoid(4, 2), _t([[2, 2, 2, 2], [1, 2, 2, 1], [0, 1, 1, 0], [0, 0, 0, 0]]))


def test_trapezoid_h5():
    expected = _t([[2, 2, 2, 2, 2], [1, 2, 2, 2, 1], [0, 1, 2, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    assert torch.equal(trapezoid(5, 2), expected)


def test_trapezoid_h5_fractional_ends_clean():
    # the official height S + int(3 * 0.5) = 3 rows would leave the middle token at 1; ours ends all-zero
    expected = _t([[2, 2, 2, 2, 2], [1, 1, 2, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]])
    assert torch.equal(trapezoid(5, 2, 0.5), expected)


@pytest.mark.parametrize("h", [1, 2, 3, 4, 5, 8, 9])
@pytest.mark.parametrize("u", [0.3, 0.5, 1.0, 1.7, 3.0])
def test_matrices_are_valid_and_trapezoid_symmetric(h, u):
    s = 4
    for m in (pyramid(h, s, u), trapezoid(h, s, u), autoregressive(h, s), full_sequence(h, s)):
        assert m.dtype == torch.int64
        validate_matrix(m, s, horizon=h)
        # no wasted rows: the second-to-last row still has a token to finish
        assert bool((m[-2] > 0).any())
    t = trapezoid(h, s, u)
    assert torch.equal(t, t.flip(1))


def test_dispatcher():
    assert torch.equal(scheduling_matrix("pyramid", 3, 3, uncertainty_scale=1.0), pyramid(3, 3))
    assert torch.equal(scheduling_matrix("autoregressive", 2, 2), autoregressive(2, 2))
    with pytest.raises(ValueError, match="unknown scheduling matrix"):
        scheduling_matrix("zigzag", 3, 3)
    with pytest.raises(ValueError, match="uncertainty_scale"):
        scheduling_matrix("full_sequence", 3, 3, uncertainty_scale=2.0)


@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        (torch.tensor([[2.0, 2.0], [0.0, 0.0]]), "integers"),
        (torch.tensor([2, 1, 0]), "shape"),
        (torch.tensor([[2, 2]]), "shape"),
        (torch.tensor([[3, 2], [0, 0]]), "0..S"),
        (torch.tensor([[2, 1], [0, 0]]), "first row"),
        (torch.tensor([[2, 2], [1, 0], [0, 1]]), "last row"),
        (torch.tensor([[2, 2], [0, 1], [1, 1], [0, 0]]), "column 0 increases"),
    ],
)
def test_validate_matrix_errors(matrix, match):
    with pytest.raises(ValueError, match=match):
        validate_matrix(matrix, 2)


def test_validate_matrix_accepts_user_matrix_and_lists():
    m = validate_matrix([[2, 2], [2, 1], [1, 1], [0, 0]], 2)
    assert m.dtype == torch.int64 and m.shape == (4, 2)
    with pytest.raises(ValueError, match="H = 3"):
        validate_matrix(m, 2, horizon=3)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_sizes(bad):
    with pytest.raises(ValueError):
        pyramid(bad, 3)
    with pytest.raises(ValueError):
        full_sequence(3, bad)


def test_bad_uncertainty_scale():
    with pytest.raises(ValueError, match="uncertainty_scale"):
        pyramid(3, 3, -1.0)
    with pytest.raises(ValueError, match="uncertainty_scale"):
        trapezoid(3, 3, float("nan"))
