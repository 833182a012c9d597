"""EMA arithmetic, buffers, swapping and state round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dforce_train import EMA


class WithBuffer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1, bias=False)
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))


def _set(model: WithBuffer, values: list[float], count: int) -> None:
    with torch.no_grad():
        model.lin.weight.copy_(torch.tensor([values]))
        model.count.fill_(count)


def test_ema_matches_hand_computation():
    model = WithBuffer()
    _set(model, [1.0, 2.0], 0)
    ema = EMA(model, decay=0.9, start_step=1)
    _set(model, [3.0, 4.0], 1)
    ema.update(model)  # update 0 < start_step: plain copy
    torch.testing.assert_close(ema.shadow["lin.weight"], torch.tensor([[3.0, 4.0]]), rtol=0, atol=0)
    _set(model, [5.0, 6.0], 2)
    ema.update(model)  # 0.9 * [3, 4] + 0.1 * [5, 6]
    torch.testing.assert_close(ema.shadow["lin.weight"], torch.tensor([[3.2, 4.2]]))
    _set(model, [-1.0, 0.0], 7)
    ema.update(model)  # 0.9 * [3.2, 4.2] + 0.1 * [-1, 0]
    torch.testing.assert_close(ema.shadow["lin.weight"], torch.tensor([[2.78, 3.78]]))
    assert int(ema.shadow["count"]) == 7  # buffers are copied, not averaged
    assert ema.num_updates == 3


def test_applied_to_swaps_and_restores():
    model = WithBuffer()
    _set(model, [1.0, 1.0], 0)
    ema = EMA(model, decay=0.5)
    _set(model, [3.0, 3.0], 4)
    ema.update(model)  # [2, 2]
    with ema.applied_to(model) as m:
        assert m is model
        torch.testing.assert_close(model.lin.weight, torch.tensor([[2.0, 2.0]]))
    torch.testing.assert_close(model.lin.weight, torch.tensor([[3.0, 3.0]]))
    assert int(model.count) == 4


def test_state_dict_round_trip_and_shape_check():
    model = WithBuffer()
    ema = EMA(model, decay=0.99, start_step=5)
    _set(model, [4.0, -4.0], 3)
    ema.update(model)
    other = EMA(WithBuffer(), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 1 and other.decay == 0.99 and other.start_step == 5
    torch.testing.assert_close(other.shadow["lin.weight"], torch.tensor([[4.0, -4.0]]))
    bad = ema.state_dict()
    bad["weights"] = {**bad["weights"], "lin.weight": torch.zeros(1, 3)}
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(bad)
    with pytest.raises(ValueError, match="decay must be in"):
        EMA(model, decay=1.5)
