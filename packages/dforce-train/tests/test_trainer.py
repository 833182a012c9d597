"""Trainer: learning, exact resume, warmup, non-finite detection, bf16 autocast, sharding."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dforce_train import (
    NonFiniteLossError,
    StepContext,
    TrainConfig,
    Trainer,
    latest_checkpoint,
    list_checkpoints,
    lr_factor,
    read_jsonl,
    warmup_factor,
)


def _cfg(**kwargs) -> TrainConfig:
    base = {"device": "cpu", "progress": False, "log_every": 1, "grad_clip": None}
    return TrainConfig(**{**base, **kwargs})


def test_linear_regression_learns(tmp_path):
    gen = torch.Generator().manual_seed(0)
    w_true = torch.randn(4, 2, generator=gen)
    x_all = torch.randn(256, 4, generator=gen)
    y_all = x_all @ w_true + 0.5

    def make_batches(start):
        for step in itertools.count(start):
            idx = torch.randint(0, 256, (32,), generator=torch.Generator().manual_seed(step))
            yield x_all[idx], y_all[idx]

    def loss_fn(model, batch, ctx):
        x, y = ctx.shard_batch(batch)
        loss = F.mse_loss(model(x), y)
        return loss, {"mse": loss}

    cfg = _cfg(lr=0.05, max_steps=200, log_every=10, out_dir=str(tmp_path), ckpt_every=None)
    trainer = Trainer(nn.Linear(4, 2), loss_fn, cfg)
    summary = trainer.fit(make_batches)
    trainer.close()
    records = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(10, 201, 10))
    assert {"loss", "mse", "lr", "grad_norm", "steps_per_s"} <= set(records[0])
    assert summary.step == 200 and not summary.stopped_early
    assert records[-1]["loss"] < records[0]["loss"] / 1000
    assert summary.checkpoint == latest_checkpoint(tmp_path / "checkpoints")  # final checkpoint written


class DropoutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.SiLU(), nn.Dropout(0.2), nn.Linear(16, 6))

    def forward(self, x):
        return self.net(x)


def _denoise_loss(model, batch, ctx):
    noise = torch.randn(batch.shape, generator=ctx.generator, device=ctx.device)
    t = torch.rand(batch.shape[0], 1, generator=ctx.generator, device=ctx.device)
    noisy, target = ctx.shard(batch * (1 - t) + noise * t), ctx.shard(noise)
    return F.mse_loss(model(noisy), target), {}


def test_exact_resume_is_bitwise_identical(tmp_path):
    data = torch.randn(20, 8, 6, generator=torch.Generator().manual_seed(5))

    def make_batches(start):
        return iter(data[start:])

    common = {"lr": 1e-2, "warmup_steps": 5, "ema_decay": 0.9, "ema_start": 3, "grad_clip": 0.5, "ckpt_every": 5}
    torch.manual_seed(0)
    straight = Trainer(DropoutNet(), _denoise_loss, _cfg(max_steps=20, out_dir=str(tmp_path / "a"), **common))
    straight.fit(make_batches)

    torch.manual_seed(0)
    first = Trainer(DropoutNet(), _denoise_loss, _cfg(max_steps=10, out_dir=str(tmp_path / "b"), **common))
    assert first.fit(make_batches).step == 10
    torch.manual_seed(42)  # a different init and RNG state: everything must come from the checkpoint
    second = Trainer(DropoutNet(), _denoise_loss, _cfg(max_steps=20, out_dir=str(tmp_path / "b"), **common))
    summary = second.fit(make_batches, resume="auto")
    assert summary.step == 20

    for (name, a), b in zip(straight.model.state_dict().items(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for name, a in straight.ema.shadow.items():
        assert torch.equal(a, second.ema.shadow[name]), name
    assert straight.ema.num_updates == second.ema.num_updates == 20
    assert straight.lr == second.lr
    state_a, state_b = straight.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(torch.equal(state_a[i]["exp_avg"], state_b[i]["exp_avg"]) for i in state_a)


def _lrs_seen(cfg: TrainConfig) -> list[float]:
    """The learning rate of every optimiser step of a short run."""
    seen = []
    trainer = None

    def loss_fn(model, batch, ctx):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        return model(batch).pow(2).mean(), {}

    trainer = Trainer(nn.Linear(2, 1), loss_fn, cfg)
    trainer.fit(lambda start: itertools.repeat(torch.ones(4, 2)))
    return seen


def test_warmup_learning_rates():
    seen = _lrs_seen(_cfg(lr=0.1, warmup_steps=4, max_steps=7))
    assert seen[0] == pytest.approx(0.025)  # step 0: lr * 1/4
    assert seen[1] == pytest.approx(0.05)  # step 1: lr * 2/4
    assert seen[3] == pytest.approx(0.1)  # the 4th step reaches the full lr
    assert seen[4] == pytest.approx(0.1) and seen[6] == pytest.approx(0.1)  # step == warmup_steps and after
    assert warmup_factor(0, 0) == 1.0 and warmup_factor(10, 4) == 1.0


def test_cosine_decay_learning_rates():
    seen = _lrs_seen(_cfg(lr=0.1, warmup_steps=2, max_steps=6, lr_decay="cosine", min_lr_ratio=0.1))
    # warmup 0.05, 0.1; then 0.1 * (0.1 + 0.9 * (1 + cos(pi * p)) / 2) with p = 0, 1/4, 1/2, 3/4
    expected = [0.05, 0.1, 0.1, 0.1 * (0.1 + 0.45 * (1 + 0.5 ** 0.5)), 0.1 * 0.55, 0.1 * (0.1 + 0.45 * (1 - 0.5 ** 0.5))]
    assert seen == pytest.approx(expected)
    assert lr_factor(6, 2, 6, "cosine", 0.1) == pytest.approx(0.1)  # max_steps reaches the floor
    assert lr_factor(50, 2, 6, "cosine", 0.0) == pytest.approx(0.0)  # and stays there
    assert lr_factor(3, 2, 6) == 1.0  # constant: the default
    with pytest.raises(ValueError, match="lr_decay"):
        _cfg(lr_decay="linear")
    with pytest.raises(ValueError, match="min_lr_ratio"):
        _cfg(min_lr_ratio=1.5)


def test_non_finite_loss_stops_without_checkpoint(tmp_path):
    def loss_fn(model, batch, ctx):
        loss = model(batch).pow(2).mean()
        if ctx.step == 5:
            loss = loss * float("nan")
        return loss, {"aux": 1.5}

    trainer = Trainer(nn.Linear(3, 1), loss_fn, _cfg(lr=1e-2, max_steps=50, ckpt_every=2, out_dir=str(tmp_path)))
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit(lambda start: itertools.repeat(torch.ones(4, 3)))
    message = str(err.value)
    for fragment in ("step 5", "loss=nan", "aux=1.5", "lower the learning rate", "grad_clip", "NaN"):
        assert fragment in message
    assert err.value.step == 5 and trainer.step == 5
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [2, 4]
    assert latest_checkpoint(tmp_path / "checkpoints").name == "step_00000004"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_non_finite_gradient_is_detected():
    def loss_fn(model, batch, ctx):
        return torch.sqrt(model(batch) * 0.0).mean(), {}  # finite loss, NaN gradient

    model = nn.Linear(3, 1)
    before = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, loss_fn, _cfg(lr=1e-2, max_steps=3, precision="bf16"))
    with pytest.raises(NonFiniteLossError, match=r"grad_norm=nan.*fp32"):
        trainer.fit(lambda start: itertools.repeat(torch.ones(2, 3)))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_bf16_autocast_on_cpu():
    dtypes = []

    def loss_fn(model, batch, ctx):
        out = model(ctx.shard(batch))
        dtypes.append(out.dtype)
        return out.float().pow(2).mean(), {}

    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    trainer = Trainer(model, loss_fn, _cfg(lr=1e-2, max_steps=4, precision="bf16", grad_clip=1.0))
    summary = trainer.fit(lambda start: itertools.repeat(torch.randn(4, 8)))
    assert dtypes == [torch.bfloat16] * 4
    assert torch.isfinite(torch.tensor(summary.metrics["loss"]))
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_shard_and_shard_batch():
    ctx = StepContext(step=0, rank=1, world_size=2, generator=torch.Generator(), device=torch.device("cpu"))
    x = torch.arange(8)
    assert ctx.shard(x).tolist() == [4, 5, 6, 7]
    sharded = ctx.shard_batch({"x": x, "pair": (x, x * 2), "name": "keep"})
    assert sharded["pair"][1].tolist() == [8, 10, 12, 14] and sharded["name"] == "keep"
    with pytest.raises(ValueError, match="multiple of 2"):
        ctx.shard(torch.arange(5))


def test_fit_rejects_plain_iterable_and_bad_loss():
    trainer = Trainer(nn.Linear(2, 1), lambda m, b, c: (torch.tensor(1.0), {}), _cfg(max_steps=2))
    with pytest.raises(ValueError, match="make_batches"):
        trainer.fit([torch.ones(2, 2)])
    with pytest.raises(ValueError, match="requires grad"):
        trainer.fit(lambda start: itertools.repeat(torch.ones(2, 2)))


def test_fp16_on_cpu_rejected():
    with pytest.raises(ValueError, match="fp16"):
        Trainer(nn.Linear(2, 1), _denoise_loss, TrainConfig(precision="fp16", device="auto", progress=False))


def test_time_budget_stops_with_a_checkpoint_and_resume_continues(tmp_path):
    data = torch.randn(400, 8, 6, generator=torch.Generator().manual_seed(7))
    slow = {"n": 0}

    def make_batches(start):
        for step in range(start, len(data)):
            slow["n"] += 1
            if step >= 3:
                import time

                time.sleep(0.05)  # steps 3.. are slow, so the 0.1 s budget runs out within a few of them
            yield data[step]

    cfg = _cfg(lr=1e-2, max_steps=400, max_seconds=0.1, out_dir=str(tmp_path), ckpt_every=None)
    trainer = Trainer(DropoutNet(), _denoise_loss, cfg)
    summary = trainer.fit(make_batches)
    trainer.close()
    assert summary.out_of_time and not summary.stopped_early
    assert 3 <= summary.step < 20
    assert summary.checkpoint == latest_checkpoint(tmp_path / "checkpoints")
    assert summary.checkpoint.name.endswith(f"{summary.step:08d}")
    # a resumed run with no budget continues from that step to max_steps
    trainer = Trainer(DropoutNet(), _denoise_loss, _cfg(lr=1e-2, max_steps=40, out_dir=str(tmp_path), ckpt_every=None))
    resumed = trainer.fit(make_batches, resume="auto")
    trainer.close()
    assert resumed.step == 40 and not resumed.out_of_time


def test_time_budget_is_validated():
    for bad in (0, -1.0, float("nan"), "5"):
        with pytest.raises(ValueError, match="max_seconds"):
            _cfg(max_seconds=bad)


def test_compiled_training_matches_eager_and_saves_plain_weights(tmp_path):
    data = torch.randn(6, 8, 6, generator=torch.Generator().manual_seed(11))
    runs = {}
    for compiled in (False, True):
        torch.manual_seed(0)
        cfg = _cfg(lr=1e-2, max_steps=4, compile=compiled, compile_backend="aot_eager", ckpt_every=None,
                   out_dir=str(tmp_path / str(compiled)))
        trainer = Trainer(DropoutNet(), _denoise_loss, cfg)
        summary = trainer.fit(lambda start: iter(data[start:]))
        trainer.close()
        runs[compiled] = (summary, trainer.model.state_dict())
    (eager, w_eager), (comp, w_comp) = runs[False], runs[True]
    assert comp.step == eager.step == 4
    assert comp.metrics["loss"] == pytest.approx(eager.metrics["loss"], rel=1e-4, abs=1e-6)
    assert list(w_comp) == list(w_eager)  # no "_orig_mod." prefixes in what is saved
    for k in w_eager:
        torch.testing.assert_close(w_comp[k], w_eager[k], rtol=1e-4, atol=1e-5)
    from safetensors.torch import load_file

    saved = load_file(str(comp.checkpoint / "model.safetensors"))
    assert sorted(saved) == sorted(w_eager)
    with pytest.raises(ValueError, match="compile"):
        _cfg(compile="yes")


def test_existing_run_is_never_overwritten_without_resume(tmp_path):
    data = torch.randn(10, 8, 6, generator=torch.Generator().manual_seed(1))
    cfg = _cfg(lr=1e-2, max_steps=4, out_dir=str(tmp_path), ckpt_every=2)
    first = Trainer(DropoutNet(), _denoise_loss, cfg)
    first.fit(lambda start: iter(data[start:]))
    first.close()
    before = {p.name: (p / "model.safetensors").read_bytes() for _, p in list_checkpoints(tmp_path / "checkpoints")}
    again = Trainer(DropoutNet(), _denoise_loss, cfg)
    with pytest.raises(FileExistsError, match="already holds a run.*resume"):
        again.fit(lambda start: iter(data[start:]))
    again.close()
    after = {p.name: (p / "model.safetensors").read_bytes() for _, p in list_checkpoints(tmp_path / "checkpoints")}
    assert after == before and set(before) == {"step_00000002", "step_00000004"}


def test_resume_refuses_another_model_config_and_warns_on_ignored_settings(tmp_path):
    data = torch.randn(10, 8, 6, generator=torch.Generator().manual_seed(2))
    batches = lambda start: iter(data[start:])  # noqa: E731
    spec = {"planning": {"maze": "umaze", "n_tokens": 30, "d_model": 16}}
    cfg = _cfg(lr=1e-2, max_steps=3, out_dir=str(tmp_path), ckpt_every=None, seed=0)
    Trainer(DropoutNet(), _denoise_loss, cfg, model_config=spec).fit(batches)

    # same weight shapes, another maze: refused before anything is loaded
    other = Trainer(DropoutNet(), _denoise_loss, _cfg(lr=1e-2, max_steps=6, out_dir=str(tmp_path), seed=0),
                    model_config={"planning": {**spec["planning"], "maze": "large"}})
    before = {k: v.clone() for k, v in other.model.state_dict().items()}
    with pytest.raises(ValueError, match=r"planning\.maze: 'umaze' -> 'large'"):
        other.fit(batches, resume="auto")
    assert other.step == 0
    assert all(torch.equal(v, before[k]) for k, v in other.model.state_dict().items())  # nothing was loaded

    # a key the checkpoint predates is not a mismatch; a changed lr / seed resumes with a warning
    newer = {"planning": {**spec["planning"], "random_horizon": False}}
    resumed = Trainer(DropoutNet(), _denoise_loss, _cfg(lr=5e-2, max_steps=6, out_dir=str(tmp_path), seed=3),
                      model_config=newer)
    with pytest.warns(UserWarning, match=r"lr=0\.01, seed=0 \(new values lr=0\.05, seed=3 are ignored\)"):
        summary = resumed.fit(batches, resume="auto")
    assert summary.step == 6
    assert resumed.lr == pytest.approx(1e-2)  # the checkpoint's scheduler base lr


def test_a_failed_checkpoint_save_raises(tmp_path, monkeypatch):
    trainer = Trainer(nn.Linear(2, 1), lambda m, b, c: (m(b).pow(2).mean(), {}),
                      _cfg(lr=0.1, max_steps=2, out_dir=str(tmp_path), ckpt_every=None))

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer.checkpoints, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        trainer.fit(lambda start: iter(torch.randn(2, 4, 2)[start:]))
    assert trainer._last_saved_step != trainer.step
