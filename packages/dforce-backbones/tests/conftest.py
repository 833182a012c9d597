"""Shared fixtures for the dforce-backbones tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn


def _perturb(model: nn.Module, scale: float = 0.05, seed: int = 0) -> nn.Module:
    """Add Gaussian noise to every parameter (so zero-initialised gates/outputs are not trivially zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return model.eval()


@pytest.fixture
def perturb() -> Callable[..., nn.Module]:
    """Function ``perturb(model, scale=0.05, seed=0)`` returning the model with noisy parameters, in eval mode."""
    return _perturb


@pytest.fixture(autouse=True)
def _seed_and_single_thread() -> Iterator[None]:
    """Seed torch; run on one intra-op thread (tiny ops + a busy 2-core box make OpenMP waits dominate)."""
    torch.manual_seed(1234)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
