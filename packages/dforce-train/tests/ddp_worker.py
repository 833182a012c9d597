"""Worker for test_distributed.py: a few denoising steps on a fixed global batch; rank 0 saves the weights.

Run as `python ddp_worker.py OUT.safetensors [OUT_DIR]` or under
`python -m torch.distributed.run --standalone --nproc_per_node=2 ddp_worker.py ...`.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from dforce_train import TrainConfig, Trainer, cleanup


def loss_fn(model, batch, ctx):
    """Random draws for the whole global batch from ctx.generator, then this rank's shard."""
    noise = torch.randn(batch.shape, generator=ctx.generator, device=ctx.device)
    t = torch.rand(batch.shape[0], 1, generator=ctx.generator, device=ctx.device)
    noisy, target = ctx.shard(batch * (1 - t) + noise * t), ctx.shard(noise)
    assert noisy.shape[0] == batch.shape[0] // ctx.world_size
    loss = F.mse_loss(model(noisy), target)
    return loss, {"mse": loss.detach()}


def main(out_file: str, out_dir: str | None) -> None:
    """Train 5 steps and write the final weights (and EMA) from rank 0."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.SiLU(), nn.Linear(32, 6))
    data = torch.randn(5, 8, 6, generator=torch.Generator().manual_seed(1))  # 5 global batches of 8
    cfg = TrainConfig(
        lr=1e-2,
        warmup_steps=2,
        max_steps=5,
        grad_clip=1.0,
        ema_decay=0.5,
        log_every=1,
        ckpt_every=None,
        progress=False,
        device="cpu",
        out_dir=out_dir,
    )
    trainer = Trainer(model, loss_fn, cfg)
    summary = trainer.fit(lambda start: iter(data[start:]))
    assert summary.step == 5
    if trainer.dist.is_main:
        tensors = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
        tensors.update({f"ema.{k}": v.contiguous() for k, v in trainer.ema.shadow.items()})
        save_file(tensors, out_file)
    trainer.close()
    cleanup()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
