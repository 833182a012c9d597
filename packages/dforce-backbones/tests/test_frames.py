"""Tests for frame stacking (reference §1.7)."""

from __future__ import annotations

import pytest
import torch

from dforce_backbones import stack_frames, unstack_frames


@pytest.mark.parametrize("shape", [(2, 12, 3), (2, 12, 3, 4, 5)])
def test_round_trip(shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    s = stack_frames(x, 4)
    assert s.shape == (shape[0], 3, 4 * shape[2], *shape[3:])
    assert torch.equal(unstack_frames(s, 4), x)


def test_channels_are_consecutive_frames() -> None:
    x = torch.arange(2 * 4 * 3).float().reshape(1, 4, 3, 2)  # (B, T*fs, C, W)
    s = stack_frames(x, 2)
    assert torch.equal(s[0, 1, :3], x[0, 2]) and torch.equal(s[0, 1, 3:], x[0, 3])


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        stack_frames(torch.randn(2, 10, 3), 4)
    with pytest.raises(ValueError, match="divisible"):
        unstack_frames(torch.randn(2, 10, 3), 2)
    with pytest.raises(ValueError, match="positive"):
        stack_frames(torch.randn(2, 10, 3), 0)
    with pytest.raises(ValueError, match="shape"):
        stack_frames(torch.randn(2, 10), 2)
