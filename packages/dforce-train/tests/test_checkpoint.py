"""Atomic checkpoints, shape validation, weights_only loading, pruning."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from torch import nn

import dforce_train.checkpoint as ckpt_mod
from dforce_train import (
    EMA,
    CheckpointManager,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)


def _model_and_opt(in_features: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Linear(in_features, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(2, in_features)).sum().backward()
    opt.step()
    return model, opt


def test_round_trip_restores_everything(tmp_path):
    model, opt = _model_and_opt()
    ema = EMA(model, decay=0.9)
    ema.update(model)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    path = save_checkpoint(
        tmp_path / "c", model=model, optimizer=opt, ema=ema, scaler=scaler, step=7, config={"lr": 1e-2}
    )
    names = sorted(p.name for p in path.iterdir())
    assert names == [
        "ema.safetensors",
        "model.safetensors",
        "optimizer.pt",
        "rng.safetensors",
        "scaler.pt",
        "state.json",
    ]

    model2, opt2 = _model_and_opt(seed=1)
    ema2 = EMA(model2, decay=0.5)
    scaler2 = torch.amp.GradScaler("cpu")
    info = load_checkpoint(path, model=model2, optimizer=opt2, ema=ema2, scaler=scaler2)
    assert info.step == 7 and info.config == {"lr": 1e-2}
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    for k in ema.shadow:
        assert torch.equal(ema.shadow[k], ema2.shadow[k])
    assert ema2.num_updates == 1 and ema2.decay == 0.9
    assert scaler2.get_scale() == 1024.0
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg_sq"], s2[i]["exp_avg_sq"]) for i in s1)


def test_torch_load_always_uses_weights_only(tmp_path, monkeypatch):
    model, opt = _model_and_opt()
    path = save_checkpoint(tmp_path / "c", model=model, optimizer=opt, scaler=torch.amp.GradScaler("cpu"), step=1)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_checkpoint(path, model=model, optimizer=opt, scaler=torch.amp.GradScaler("cpu"))
    assert calls == [True, True]


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt = _model_and_opt()
    manager = CheckpointManager(tmp_path / "ckpts")
    first = manager.save(1, model=model, optimizer=opt)
    saved_weight = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash)  # model.safetensors is already written when this fires
    with pytest.raises(OSError, match="simulated"):
        manager.save(2, model=model, optimizer=opt)
    monkeypatch.undo()

    assert manager.latest() == first
    assert [s for s, _ in list_checkpoints(manager.root)] == [1]
    assert not list(manager.root.glob(".tmp-*"))
    fresh, fresh_opt = _model_and_opt(seed=3)
    assert load_checkpoint(manager.root, model=fresh, optimizer=fresh_opt).step == 1
    assert torch.equal(fresh.weight, saved_weight)


def test_killed_save_leftovers_are_ignored_and_cleaned(tmp_path):
    model, opt = _model_and_opt()
    manager = CheckpointManager(tmp_path / "ckpts")
    manager.save(1, model=model, optimizer=opt)
    partial = manager.root / ".tmp-step_00000002-dead"  # what a SIGKILL mid-save leaves behind
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"truncated")
    assert load_checkpoint(manager.root, model=model).step == 1
    manager.save(3, model=model, optimizer=opt)
    assert not partial.exists()
    assert load_checkpoint(manager.root, model=model).step == 3


def test_mismatched_model_gives_clear_error(tmp_path):
    model, _ = _model_and_opt(in_features=4)
    path = save_checkpoint(tmp_path / "c", model=model, step=1, model_config={"in_features": 4})
    other = nn.Linear(5, 3)
    before = other.weight.detach().clone()
    with pytest.raises(ValueError, match=r"was written for a model with weight 'weight' of shape \(3, 4\)") as err:
        load_checkpoint(path, model=other)
    assert "pass the matching config" in str(err.value) and '"in_features": 4' in str(err.value)
    assert torch.equal(other.weight, before)
    with pytest.raises(ValueError, match="does not have"):
        load_checkpoint(path, model=nn.Sequential(nn.Linear(4, 3)))
    with pytest.raises(FileNotFoundError, match="optimizer.pt"):
        load_checkpoint(path, model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nothing", model=model)


def test_refuses_to_save_non_finite_weights(tmp_path):
    model, _ = _model_and_opt()
    with torch.no_grad():
        model.bias[0] = float("nan")
    with pytest.raises(ValueError, match="contains NaN"):
        save_checkpoint(tmp_path / "c", model=model, step=1)
    assert not (tmp_path / "c").exists()


def test_tied_weights_round_trip(tmp_path):
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(5, 3)
            self.out = nn.Linear(3, 5, bias=False)
            self.out.weight = self.emb.weight

    model = Tied()
    path = save_checkpoint(tmp_path / "c", model=model, step=1)
    fresh = Tied()
    load_checkpoint(path, model=fresh)
    assert torch.equal(fresh.out.weight, model.emb.weight) and fresh.out.weight is fresh.emb.weight


def test_keep_last_prunes_and_latest_pointer(tmp_path):
    model, opt = _model_and_opt()
    manager = CheckpointManager(tmp_path / "ckpts", keep_last=2)
    for step in (10, 20, 30):
        manager.save(step, model=model, optimizer=opt)
    assert [s for s, _ in list_checkpoints(manager.root)] == [20, 30]
    pointer = json.loads((manager.root / "latest").read_text())
    assert pointer == {"path": "step_00000030", "step": 30}
    assert latest_checkpoint(manager.root) == manager.root / "step_00000030"
    # the run dir (holding checkpoints/), the checkpoints dir, the pointer file itself and a step dir all resolve
    run = manager.root.parent
    manager.root.rename(run / "checkpoints")
    ckpts = run / "checkpoints"
    for given in (run, ckpts, ckpts / "latest", ckpts / "step_00000020"):
        assert resolve_checkpoint(given) == (given if given.name == "step_00000020" else ckpts / "step_00000030")
    shutil.rmtree(ckpts / "step_00000030")
    with pytest.raises(FileNotFoundError, match="names .*step_00000030, which holds no state.json"):
        resolve_checkpoint(ckpts / "latest")
    (ckpts / "latest").write_text("not json")
    with pytest.raises(ValueError, match="is not a checkpoint pointer"):
        resolve_checkpoint(ckpts / "latest")
    (ckpts / "latest").write_text('{"path": "../elsewhere"}')
    with pytest.raises(ValueError, match="is not a checkpoint pointer"):
        resolve_checkpoint(run)
    ckpts.rename(manager.root)
    ckpt_mod.write_latest(manager.root, manager.root / "step_00000020", 20)
    manager.save(30, model=model, optimizer=opt)  # re-saving a step replaces it atomically
    assert [s for s, _ in list_checkpoints(manager.root)] == [20, 30]
    assert not list(manager.root.glob(".old-*"))


def test_rng_states_restored(tmp_path):
    model, _ = _model_and_opt()
    torch.manual_seed(123)
    path = save_checkpoint(tmp_path / "c", model=model, step=1)
    expected = torch.rand(3)
    torch.manual_seed(999)
    info = ckpt_mod.load_checkpoint(path, rng_rank=0)
    assert info.rng_restored
    assert torch.equal(torch.rand(3), expected)
