#!/usr/bin/env python3
"""Training-step speed of a Diffusion Forcing transformer: eager against ``torch.compile``, in one process.

The default network is the maze2d planner's (``main:`` planning transformer size: d_model 128, 12 layers,
4 heads; 61 tokens of 60 features, i.e. medium's context + 60 plan tokens of 10 stacked (obs, action)
frames), trained with the library ``Trainer`` and ``DiffusionLoss`` (pred_x0, linear schedule, min-SNR,
Diffusion Forcing levels) on random data of the same shape, so it needs no dataset and imports no app.

Both modes are built and warmed up first (the compile happens in the warm-up and is reported apart), then
timed in ``--repeats`` interleaved blocks of ``--steps`` updates each, on the same batch, so only the model, the
loss and the optimizer are measured and load drifting on a shared machine hits both alike. Prints one JSON line
per mode, then a last line with the median step times and the speed-up of compile over eager. On an H200,
eager paper-size bf16 at batch 1024 took 65 ms per step (docs/gpu_runs); that run had no compile mode.

    python tools/bench/train_speed.py --device cuda --precision bf16             # paper size, batch 1024
    python tools/bench/train_speed.py --device cpu --n-layers 2 --d-model 64 --batch-size 64 --steps 10
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from dforce_backbones import CausalTransformer, CausalTransformerConfig
from dforce_core import DiffusionConfig, DiffusionLoss
from dforce_train import TrainConfig, Trainer


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build(args: argparse.Namespace, compiled: bool) -> tuple[Trainer, torch.Tensor]:
    """A fresh model, loss and trainer (same seed for every mode) and the one batch it is timed on."""
    torch.manual_seed(0)
    model = CausalTransformer(CausalTransformerConfig(
        token_shape=(args.token_dim,), d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
        window=args.tokens, causal=True, level_embed_dim=max(64, args.d_model)))
    loss = DiffusionLoss(DiffusionConfig(beta_schedule="linear", objective="pred_x0", loss_weighting="min_snr",
                                         noise_level_mode="diffusion_forcing", first_token_known_prob=0.5))

    def loss_fn(m, batch, ctx):
        return loss(m, batch.to(ctx.device), generator=ctx.generator).loss, {}

    cfg = TrainConfig(lr=5e-4, max_steps=10**9, device=args.device, precision=args.precision, progress=False,
                      ema_decay=0.999, ckpt_every=None, log_every=10**9, compile=compiled)
    batch = torch.randn(args.batch_size, args.tokens, args.token_dim, generator=torch.Generator().manual_seed(1))
    return Trainer(model, loss_fn, cfg), batch


def time_steps(trainer: Trainer, batch: torch.Tensor, n: int, device: str) -> tuple[list[float], dict]:
    """Seconds of each of ``n`` training steps (synchronised on CUDA) and the last step's metrics."""
    times, metrics = [], {}
    for _ in range(n):
        t = time.perf_counter()
        metrics = trainer._train_step(batch)
        _sync(device)
        times.append(time.perf_counter() - t)
    return times, metrics


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--precision", default="bf16", choices=["fp32", "bf16", "fp16"])
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=12)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--tokens", type=int, default=61)
    p.add_argument("--token-dim", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=10, help="timed steps per block")
    p.add_argument("--repeats", type=int, default=5, help="interleaved blocks per mode")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--modes", nargs="+", default=["eager", "compile"], choices=["eager", "compile"])
    p.add_argument("--threads", type=int, help="torch CPU threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    trainers = {mode: build(args, compiled=mode == "compile") for mode in args.modes}
    warmup_s = {}
    for mode, (trainer, batch) in trainers.items():  # compilation happens here
        t0 = time.perf_counter()
        time_steps(trainer, batch, args.warmup, args.device)
        warmup_s[mode] = time.perf_counter() - t0
    times: dict[str, list[float]] = {mode: [] for mode in args.modes}
    last: dict[str, dict] = {}
    for _ in range(args.repeats):  # interleaved blocks, so drifting machine load hits both modes alike
        for mode, (trainer, batch) in trainers.items():
            block, last[mode] = time_steps(trainer, batch, args.steps, args.device)
            times[mode] += block
    rows = {}
    for mode in args.modes:
        trainers[mode][0].close()
        rows[mode] = {"mode": mode, "median_ms": round(1e3 * statistics.median(times[mode]), 2),
                      "min_ms": round(1e3 * min(times[mode]), 2), "warmup_s": round(warmup_s[mode], 1),
                      "steps_timed": len(times[mode]), "last_loss": last[mode].get("loss")}
        print(json.dumps(rows[mode]), flush=True)
    out = {"device": torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or "cpu",
           "torch": torch.__version__, "config": vars(args),
           **{f"{m}_median_ms": r["median_ms"] for m, r in rows.items()}}
    if "eager" in rows and "compile" in rows:
        out["compile_speedup"] = round(rows["eager"]["median_ms"] / rows["compile"]["median_ms"], 2)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
