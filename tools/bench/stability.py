"""Stability benchmark: Diffusion Forcing vs teacher forcing on long rollouts of a tiny synthetic video.

Task ("blob on a torus"): a Gaussian blob moves over an 8x8 periodic image with a velocity that performs a
clipped random walk; a token is one 64-pixel frame in [-1, 1]. Position is uniform at every time step, so
any drift of the generated distribution is the model's doing.

The same causal transformer is trained twice with `dforce_train.Trainer`: once with Diffusion Forcing noise
levels (independent per token) and once with teacher forcing (clean past, one noisy target token). Each is
rolled out autoregressively (KV cache, DDIM) from one true frame to 10x its training window. Per horizon
window we measure:

* the Frechet distance between the generated frames and true frames simulated from the same context
  positions (with velocities drawn from the prior, as one frame does not show the velocity) — the primary
  "distance of the generated tokens' distribution from the true one";
* the manifold error: RMS distance of a generated frame to the clean blob rendered at its estimated
  position (how far frames degrade into non-blob images);
* the sliced Wasserstein-1 distance, as a second distribution distance.

Ratios compare the last window of the 10x rollout with the last window of the 1x span. Last line of output:
JSON with df_ratio and tf_ratio (Frechet distance; goal: df_ratio <= 1.5 and tf_ratio >= 3 * df_ratio).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import time
from pathlib import Path

import torch

from dforce_backbones import CausalTransformer, CausalTransformerConfig
from dforce_core import DiffusionConfig, DiffusionLoss
from dforce_sampling import DiffusionForcingSampler, SamplerConfig, sample
from dforce_train import TrainConfig, Trainer, step_generator

SIDE = 8  # image side in pixels
GRID = torch.linspace(-1, 1, SIDE + 1)[:-1]  # (SIDE,) pixel centres on the torus [-1, 1)
VMAX = 0.05  # largest speed per step
BLOB = 0.3  # blob radius (std of the Gaussian)


def simulate(n: int, length: int, generator: torch.Generator, pos0: torch.Tensor | None = None) -> torch.Tensor:
    """Positions (n, length, 2) on the torus [-1, 1)^2; velocity is a clipped random walk from N(0, (VMAX/2)^2)."""
    pos = torch.rand(n, 2, generator=generator) * 2 - 1 if pos0 is None else pos0.clone()  # (n, 2)
    vel = torch.randn(n, 2, generator=generator) * VMAX / 2  # (n, 2)
    out = [pos]
    for _ in range(length - 1):
        vel = (vel + torch.randn(n, 2, generator=generator) * VMAX / 5).clamp(-VMAX, VMAX)  # (n, 2)
        pos = torch.remainder(pos + vel + 1, 2) - 1  # (n, 2)
        out.append(pos)
    return torch.stack(out, dim=1)  # (n, length, 2)


def _periodic_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = torch.remainder(a - b + 1, 2) - 1
    return d * d


def render(pos: torch.Tensor) -> torch.Tensor:
    """Frames (..., SIDE*SIDE) in [-1, 1] of blobs at positions (..., 2)."""
    d = _periodic_sq(pos[..., 0, None, None], GRID[:, None]) + _periodic_sq(pos[..., 1, None, None], GRID[None, :])
    return (torch.exp(-d / (2 * BLOB**2)) * 2 - 1).flatten(-2)  # (..., SIDE*SIDE)


def estimate_position(frames: torch.Tensor) -> torch.Tensor:
    """Circular centre of mass (..., 2) of frames (..., SIDE*SIDE)."""
    w = ((frames.reshape(*frames.shape[:-1], SIDE, SIDE) + 1) / 2).clamp_min(0)  # (..., SIDE, SIDE)
    ang = GRID * math.pi  # (SIDE,)

    def circular_mean(m: torch.Tensor) -> torch.Tensor:
        return torch.atan2((m * ang.sin()).sum(-1), (m * ang.cos()).sum(-1)) / math.pi

    return torch.stack([circular_mean(w.sum(-1)), circular_mean(w.sum(-2))], dim=-1)


def manifold_error(frames: torch.Tensor) -> float:
    """RMS distance of frames to clean blobs re-rendered at their estimated positions."""
    return float((frames - render(estimate_position(frames))).pow(2).mean().sqrt())


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussian fits of a (Na, D) and b (Nb, D)."""
    a, b = a.double(), b.double()
    ca, cb = torch.cov(a.T), torch.cov(b.T)  # (D, D)
    trace_sqrt = torch.linalg.eigvals(ca @ cb).real.clamp_min(0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).pow(2).sum() + ca.trace() + cb.trace() - 2 * trace_sqrt)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_proj: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between point clouds a (Na, D) and b (Nb, D)."""
    d = torch.randn(a.shape[1], n_proj, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    d = d / d.norm(dim=0, keepdim=True)  # (D, P)
    q = (torch.arange(2000, dtype=torch.float64) + 0.5) / 2000  # (Q,)

    def quantiles(x: torch.Tensor) -> torch.Tensor:
        p = (x.double() @ d).sort(dim=0).values  # (N, P)
        return p[(q * p.shape[0]).long().clamp(max=p.shape[0] - 1)]  # (Q, P)

    return float((quantiles(a) - quantiles(b)).abs().mean())


def window_metrics(gen: torch.Tensor, true: torch.Tensor, lo: int, hi: int) -> dict[str, float]:
    """Distances between generated (B, N, D) and true (M, N, D) frames in horizon window [lo, hi)."""
    a = gen[:, lo:hi].reshape(-1, gen.shape[-1])  # (B*(hi-lo), D)
    b = true[:, lo:hi].reshape(-1, true.shape[-1])  # (M*(hi-lo), D)
    return {"fd": frechet_distance(a, b), "sw": sliced_wasserstein(a, b), "manifold": manifold_error(a)}


def train(mode: str, args: argparse.Namespace) -> tuple[CausalTransformer, DiffusionLoss, float]:
    """Train one model with the given noise-level mode; returns (model, loss, seconds)."""
    torch.manual_seed(args.seed)
    model = CausalTransformer(
        CausalTransformerConfig(token_shape=(SIDE * SIDE,), d_model=args.d_model, n_layers=args.n_layers, n_heads=4, window=args.window)
    )
    loss = DiffusionLoss(DiffusionConfig(beta_schedule="cosine", objective="pred_v", noise_level_mode=mode, clip_noise=6.0))

    def loss_fn(net, batch, ctx):
        out = loss(lambda x, lv, c: net(x, lv), batch, generator=ctx.generator, shard=ctx.shard)
        return out.loss, {"loss": out.loss.detach()}

    def make_batches(start_step: int):
        for step in itertools.count(start_step):
            yield render(simulate(args.batch, args.window, step_generator(args.seed + 1, step)))

    cfg = TrainConfig(
        lr=args.lr, warmup_steps=100, max_steps=args.steps, grad_clip=1.0, log_every=100, ckpt_every=None,
        out_dir=str(args.out / mode), seed=args.seed, progress=not args.no_progress, device="cpu",
    )
    t0 = time.perf_counter()
    trainer = Trainer(model, loss_fn, cfg)
    summary = trainer.fit(make_batches)
    trainer.close()
    seconds = time.perf_counter() - t0
    print(f"[{mode}] {summary.step} steps in {seconds:.0f}s, last loss {summary.metrics.get('loss', float('nan')):.4f}", flush=True)
    return model.eval(), loss, seconds


def rollout(model, loss: DiffusionLoss, stabilization_level: int, args, contexts: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Autoregressive KV-cached rollout of 10x the window from the context frames; returns (frames, seconds)."""
    sampler = DiffusionForcingSampler(
        loss.schedule,
        SamplerConfig(num_sampling_steps=args.ddim_steps, stabilization_level=stabilization_level, objective="pred_v", clip_noise=6.0),
    )
    t0 = time.perf_counter()
    gen = sample(
        model, sampler, n_tokens=args.window * args.multiple, context=contexts.repeat_interleave(args.rollouts_per_context, 0),
        use_cache=True, generator=torch.Generator().manual_seed(args.seed + 2),
    )
    return gen, time.perf_counter() - t0


def plot(path: Path, curves: dict, samples: dict, true: torch.Tensor, horizons: list[int]) -> None:
    """Distance curves and filmstrips of generated frames at several horizons."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = true.shape[1] - 1
    frames_at = [t for t in (1, 8, 16, 40, 80, 120) if t < last] + [last]
    fig = plt.figure(figsize=(14, 8))
    for i, key in enumerate(("fd", "manifold")):
        ax = fig.add_subplot(2, 2, i + 1)
        for name, c in curves.items():
            ax.plot(horizons, [m[key] for m in c], marker="o", label=name)
        ax.set_xlabel("horizon (frames)")
        ax.set_ylabel({"fd": "Frechet distance to truth", "manifold": "manifold error (RMS)"}[key])
        ax.axvline(true.shape[1] / 10, color="gray", ls=":", lw=0.8)
        ax.legend()
    rows = [("truth", true)] + list(samples.items())
    for r, (name, s) in enumerate(rows):
        for c, t in enumerate(frames_at):
            ax = fig.add_subplot(2 * len(rows), len(frames_at), (len(rows) + r) * len(frames_at) + c + 1)
            ax.imshow(s[0, t].reshape(SIDE, SIDE).numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(f"t={t}", fontsize=8)
    fig.subplots_adjust(hspace=0.35, wspace=0.25)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="about 10 minutes on 2 CPU cores")
    p.add_argument("--steps", type=int, default=6000, help="training steps per model")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--window", type=int, default=16, help="training length in frames")
    p.add_argument("--multiple", type=int, default=10)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-layers", type=int, default=3)
    p.add_argument("--ddim-steps", type=int, default=10)
    p.add_argument("--stabilization-level", type=int, default=15, help="DF shows past frames at this level - 1")
    p.add_argument("--contexts", type=int, default=512)
    p.add_argument("--rollouts-per-context", type=int, default=2)
    p.add_argument("--truth-per-context", type=int, default=4)
    p.add_argument("--span", type=int, default=8, help="frames per horizon window")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--out", type=Path, default=Path(".bench/stability"))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.steps = 1500
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    n = args.window * args.multiple
    g = torch.Generator().manual_seed(args.seed + 3)
    pos0 = simulate(args.contexts, 1, g)[:, 0]  # (C, 2)
    contexts = render(pos0)[:, None]  # (C, 1, D)
    truth = lambda seed, k: render(simulate(args.contexts * k, n, torch.Generator().manual_seed(seed), pos0.repeat_interleave(k, 0)))  # noqa: E731
    true = truth(args.seed + 4, args.truth_per_context)  # (C*k, N, D)
    horizons = list(range(args.span, n + 1, args.span))

    curves, samples, report = {}, {}, {}
    for name, mode, stab in (("DF", "diffusion_forcing", args.stabilization_level), ("TF", "teacher_forcing", 1)):
        model, loss, train_s = train(mode, args)
        gen, roll_s = rollout(model, loss, stab, args, contexts)
        curves[name] = [window_metrics(gen, true, h - args.span, h) for h in horizons]
        samples[name] = gen
        at_1x, at_10x = window_metrics(gen, true, args.window - args.span, args.window), curves[name][-1]
        report[name] = {"at_1x": at_1x, "at_10x": at_10x, "train_s": train_s, "rollout_s": roll_s}
        print(f"[{name}] 1x {at_1x}  10x {at_10x}  (rollout {roll_s:.0f}s)", flush=True)
        print(f"[{name}] FD per horizon " + " ".join(f"{h}:{m['fd']:.2f}" for h, m in zip(horizons, curves[name], strict=True)), flush=True)
    floor = window_metrics(truth(args.seed + 5, args.rollouts_per_context), true, n - args.span, n)
    png = args.out / "stability.png"
    try:
        plot(png, curves, samples, true, horizons)
    except ImportError:
        png = None
    ratio = {k: report[k]["at_10x"]["fd"] / report[k]["at_1x"]["fd"] for k in report}
    manifold_ratio = {k: report[k]["at_10x"]["manifold"] / report[k]["at_1x"]["manifold"] for k in report}
    summary = {
        "df_ratio": ratio["DF"],
        "tf_ratio": ratio["TF"],
        "metric": "frechet_distance",
        "df": report["DF"], "tf": report["TF"],
        "manifold_ratio": manifold_ratio,
        "truth_vs_truth_at_10x": floor,
        "steps": args.steps, "window": args.window, "rollout_frames": n, "ddim_steps": args.ddim_steps,
        "stabilization_level": args.stabilization_level, "seed": args.seed,
        "goal_met": ratio["DF"] <= 1.5 and ratio["TF"] >= 3 * ratio["DF"],
        "picture": str(png) if png else None,
        "machine": f"{platform.machine()} cpu, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
