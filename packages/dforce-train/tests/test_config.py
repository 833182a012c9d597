"""TrainConfig validation and round trip."""

from __future__ import annotations

import pytest

from dforce_train import TrainConfig


def test_defaults_are_valid_and_round_trip():
    cfg = TrainConfig(out_dir="runs/x", ema_decay=0.999, warmup_steps=10)
    assert cfg.betas == (0.9, 0.99)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": 0.0}, "lr must be a positive"),
        ({"lr": float("nan")}, "lr must be a positive"),
        ({"betas": (0.9, 1.0)}, "betas must be two numbers"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"max_steps": 0}, "max_steps"),
        ({"grad_clip": 0.0}, "grad_clip"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"precision": "fp16", "device": "cpu"}, "fp16' needs CUDA"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"ema_start": -2}, "ema_start"),
        ({"log_every": 0}, "log_every"),
        ({"ckpt_every": 0}, "ckpt_every"),
        ({"keep_last": 0}, "keep_last"),
        ({"device": "tpu"}, "device must be one of"),
        ({"seed": -1}, "seed"),
        ({"progress": 1}, "progress"),
        ({"max_steps": 10.5}, "max_steps"),
    ],
)
def test_invalid_values_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="no fields"):
        TrainConfig.from_dict({"lr": 1e-3, "learning_rate": 1e-3})
