"""Stability benchmark: Diffusion Forcing vs teacher forcing on long rollouts of a synthetic stochastic task.

Task ("noisy rotation"): a point on the unit circle turns by a per-sequence angular velocity omega with
|omega| ~ U(0.2, 0.5) and random sign, plus N(0, 0.05^2) jitter per step; a token is the 2-D position.
Nothing in a token says omega: the model must infer it from the history, so errors in generated history feed
back into the future, which is what makes long autoregressive rollouts fragile.

The same causal transformer is trained twice with `dforce_train.Trainer`, once with Diffusion Forcing noise
levels (independent per token) and once with teacher forcing (clean past, one noisy target token). Each is
rolled out autoregressively (KV cache, DDIM) from one true context token to 10x the training window. The
distance of the generated tokens' distribution from the true one is the sliced Wasserstein-1 distance
between consecutive token pairs (x_t, x_{t+1}) in a horizon window, against true futures simulated from
the same contexts. Ratios compare the last window of the 10x rollout with the last window of the 1x span.

Last line of output: JSON with df_ratio and tf_ratio (goal: df_ratio <= 1.5 and tf_ratio >= 3 * df_ratio).
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


def simulate(n: int, length: int, generator: torch.Generator, theta0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens (n, length, 2), theta0 (n, 1)) of the noisy-rotation process; theta0 is drawn when not given."""
    theta = torch.rand(n, 1, generator=generator) * 2 * math.pi if theta0 is None else theta0.clone()  # (n, 1)
    sign = torch.where(torch.rand(n, 1, generator=generator) < 0.5, -1.0, 1.0)  # (n, 1)
    omega = (0.2 + 0.3 * torch.rand(n, 1, generator=generator)) * sign  # (n, 1)
    steps = omega + 0.05 * torch.randn(n, length, generator=generator)  # (n, length)
    steps[:, 0] = 0.0  # token 0 is at theta0
    angles = theta + steps.cumsum(dim=1)  # (n, length)
    return torch.stack([angles.cos(), angles.sin()], dim=-1), theta  # (n, length, 2), (n, 1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_proj: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between point clouds a (Na, D) and b (Nb, D) (quantile matching)."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(a.shape[1], n_proj, generator=g, dtype=torch.float64)  # (D, P)
    d = d / d.norm(dim=0, keepdim=True)
    pa = (a.double() @ d).sort(dim=0).values  # (Na, P)
    pb = (b.double() @ d).sort(dim=0).values  # (Nb, P)
    q = (torch.arange(2000, dtype=torch.float64) + 0.5) / 2000  # (Q,)
    qa = pa[(q * pa.shape[0]).long().clamp(max=pa.shape[0] - 1)]  # (Q, P)
    qb = pb[(q * pb.shape[0]).long().clamp(max=pb.shape[0] - 1)]  # (Q, P)
    return float((qa - qb).abs().mean())


def pair_distance(gen: torch.Tensor, true: torch.Tensor, lo: int, hi: int) -> float:
    """Sliced W1 between consecutive-token pairs of generated (B, N, D) and true (M, N, D) tokens in [lo, hi)."""
    def pairs(x: torch.Tensor) -> torch.Tensor:
        w = x[:, lo:hi]  # (B, hi-lo, D)
        return torch.cat([w[:, :-1], w[:, 1:]], dim=-1).reshape(-1, 2 * x.shape[-1])  # (B*(hi-lo-1), 2D)

    return sliced_wasserstein(pairs(gen), pairs(true))


def train(mode: str, args: argparse.Namespace, out_dir: Path) -> tuple[CausalTransformer, DiffusionLoss, float]:
    """Train one model with the given noise-level mode; returns (model, loss, seconds)."""
    torch.manual_seed(args.seed)
    model = CausalTransformer(
        CausalTransformerConfig(token_shape=(2,), d_model=args.d_model, n_layers=args.n_layers, n_heads=4, window=args.window)
    )
    loss = DiffusionLoss(
        DiffusionConfig(beta_schedule="cosine", objective="pred_v", noise_level_mode=mode, clip_noise=6.0)
    )

    def loss_fn(net, batch, ctx):
        out = loss(lambda x, lv, c: net(x, lv), batch, generator=ctx.generator, shard=ctx.shard)
        return out.loss, {"loss": out.loss.detach()}

    def make_batches(start_step: int):
        for step in itertools.count(start_step):
            yield simulate(args.batch, args.window, step_generator(args.seed + 1, step))[0]

    cfg = TrainConfig(
        lr=args.lr, warmup_steps=100, max_steps=args.steps, grad_clip=1.0, ema_decay=None, log_every=100,
        ckpt_every=None, out_dir=str(out_dir / mode), seed=args.seed, progress=not args.no_progress, device="cpu",
    )
    t0 = time.perf_counter()
    trainer = Trainer(model, loss_fn, cfg)
    summary = trainer.fit(make_batches)
    trainer.close()
    print(f"[{mode}] trained {summary.step} steps in {time.perf_counter() - t0:.0f}s, last loss {summary.metrics.get('loss', float('nan')):.4f}", flush=True)
    return model.eval(), loss, time.perf_counter() - t0


def evaluate(model, loss: DiffusionLoss, stabilization_level: int, args, contexts, true) -> dict:
    """Roll out from the contexts to 10x the window and measure the distance per horizon window."""
    sampler = DiffusionForcingSampler(
        loss.schedule,
        SamplerConfig(num_sampling_steps=args.ddim_steps, stabilization_level=stabilization_level, objective="pred_v", clip_noise=6.0),
    )
    n = args.window * args.multiple
    t0 = time.perf_counter()
    gen = sample(
        model, sampler, n_tokens=n, context=contexts.repeat_interleave(args.rollouts_per_context, 0), use_cache=True,
        generator=torch.Generator().manual_seed(args.seed + 2),
    )
    seconds = time.perf_counter() - t0
    span = args.eval_span
    horizons = list(range(span, n + 1, span))
    curve = {h: pair_distance(gen, true, h - span, h) for h in horizons}
    at_1x = pair_distance(gen, true, args.window - span, args.window)
    at_10x = pair_distance(gen, true, n - span, n)
    radius = gen.norm(dim=-1)  # (B, N)
    return {
        "at_1x": at_1x, "at_10x": at_10x, "ratio": at_10x / at_1x, "curve": curve, "rollout_s": seconds,
        "radius_mean_last": float(radius[:, -span:].mean()), "radius_std_last": float(radius[:, -span:].std()),
        "samples": gen,
    }


def plot(path: Path, results: dict, true: torch.Tensor) -> None:
    """Distance per horizon for both models and a few rollouts in the plane."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for name, r in results.items():
        hs = list(r["curve"])
        axes[0].plot(hs, [r["curve"][h] for h in hs], marker="o", label=f"{name} (10x/1x = {r['ratio']:.2f})")
    axes[0].set_xlabel("horizon (tokens)")
    axes[0].set_ylabel("sliced W1 of token pairs vs truth")
    axes[0].set_title("distance from the true distribution")
    axes[0].legend()
    for ax, (name, r) in zip(axes[1:], results.items()):
        s = r["samples"]
        for i in range(4):
            ax.plot(s[i, :, 0], s[i, :, 1], lw=0.7)
        ax.plot(true[0, :, 0], true[0, :, 1], "k:", lw=0.5)
        ax.set_aspect("equal")
        ax.set_title(f"{name}: 4 rollouts of {s.shape[1]} tokens")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few minutes on 2 CPU cores")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--window", type=int, default=16, help="training length in tokens")
    p.add_argument("--multiple", type=int, default=10)
    p.add_argument("--d-model", type=int, default=96)
    p.add_argument("--n-layers", type=int, default=3)
    p.add_argument("--ddim-steps", type=int, default=10)
    p.add_argument("--stabilization-level", type=int, default=15, help="DF: past tokens shown at this level - 1")
    p.add_argument("--contexts", type=int, default=512)
    p.add_argument("--rollouts-per-context", type=int, default=2)
    p.add_argument("--truth-per-context", type=int, default=8)
    p.add_argument("--eval-span", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--out", type=Path, default=Path(".bench/stability"))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.steps = 2000
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    n = args.window * args.multiple
    g = torch.Generator().manual_seed(args.seed + 3)
    contexts, theta0 = simulate(args.contexts, 1, g)
    true = simulate(args.contexts * args.truth_per_context, n, g, theta0.repeat_interleave(args.truth_per_context, 0))[0]

    results, train_s = {}, {}
    for name, mode, stab in (("DF", "diffusion_forcing", args.stabilization_level), ("TF", "teacher_forcing", 1)):
        model, loss, train_s[name] = train(mode, args, args.out)
        results[name] = evaluate(model, loss, stab, args, contexts, true)
        r = results[name]
        print(f"[{name}] distance at 1x {r['at_1x']:.4f}, at 10x {r['at_10x']:.4f}, ratio {r['ratio']:.2f} (rollout {r['rollout_s']:.0f}s)", flush=True)
        print(f"[{name}] curve " + " ".join(f"{h}:{v:.3f}" for h, v in r["curve"].items()), flush=True)
    # the sampling noise floor: a second, independent set of true futures from the same contexts
    floor_gen = simulate(args.contexts * args.rollouts_per_context, n, torch.Generator().manual_seed(args.seed + 9), theta0.repeat_interleave(args.rollouts_per_context, 0))[0]
    floor = pair_distance(floor_gen, true, n - args.eval_span, n)
    png = args.out / "stability.png"
    try:
        plot(png, results, true)
    except ImportError:
        png = None
    summary = {
        "df_ratio": results["DF"]["ratio"],
        "tf_ratio": results["TF"]["ratio"],
        "df_at_1x": results["DF"]["at_1x"], "df_at_10x": results["DF"]["at_10x"],
        "tf_at_1x": results["TF"]["at_1x"], "tf_at_10x": results["TF"]["at_10x"],
        "truth_vs_truth_floor": floor,
        "df_radius_last": [results["DF"]["radius_mean_last"], results["DF"]["radius_std_last"]],
        "tf_radius_last": [results["TF"]["radius_mean_last"], results["TF"]["radius_std_last"]],
        "train_s": train_s, "steps": args.steps, "window": args.window, "rollout_tokens": n,
        "ddim_steps": args.ddim_steps, "stabilization_level": args.stabilization_level,
        "goal_met": results["DF"]["ratio"] <= 1.5 and results["TF"]["ratio"] >= 3 * results["DF"]["ratio"],
        "picture": str(png) if png else None,
        "machine": f"{platform.machine()} cpu, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
