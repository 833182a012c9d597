"""Gradients flow through the adaLN-Zero transformer: it fits a fixed small batch."""

from __future__ import annotations

import pytest
import torch

from dforce_backbones import TRANSFORMER_PRESETS


@pytest.mark.slow  # the first torch.optim use imports torch._dynamo (seconds on a busy CPU)
def test_transformer_overfits_fixed_batch() -> None:
    m = TRANSFORMER_PRESETS["tiny"]((4,), window=8, cond_dim=2).train()
    x, k, c = torch.randn(4, 8, 4), torch.randint(0, 1000, (4, 8)), torch.randn(4, 8, 2)
    target = torch.randn(4, 8, 4)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        loss = torch.nn.functional.mse_loss(m(x, k, c), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 10, (losses[0], losses[-1])
