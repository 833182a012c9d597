"""Stability benchmark: Diffusion Forcing vs teacher forcing on long rollouts of 2-D random walks on a torus.

Task: a point moves on the torus [-1, 1)^2 with an Ornstein-Uhlenbeck velocity (smooth, stochastic paths); a
token is the embedding (cos pi x, sin pi x, cos pi y, sin pi y) of its position, so clean tokens lie on a 2-D
manifold of R^4 (two unit circles). The start (uniform position, stationary velocity) is the stationary law
and the dynamics are translation invariant, so the true marginal is the same at every horizon: any drift of
the generated distribution is the model's doing.

The same causal transformer is trained twice with `dforce_train.Trainer` (same seed, steps, EMA): once with
Diffusion Forcing noise levels (independent per token) and once with teacher forcing (clean past, one noisy
target token). Each is rolled out autoregressively (KV cache, DDIM) from two true tokens to 10x its training
window; DF shows its past at the stabilization level, teacher forcing shows it clean (as it was trained).
Both draw their training levels as floor(K u^p) with ``--level-power`` p (default 3; 1 is the paper's uniform
draw, with which DF did not learn the walk's momentum at this budget: README).
Per horizon h the generated tokens [h - span, h) are compared with true continuations of the same contexts:

* ``fd`` (primary): the Frechet distance between Gaussian fits of the per-token dynamics statistics -- the
  velocity (wrapped difference of decoded positions, scaled to the tokens' spread) together with the previous
  velocity (the walk's momentum), and the radius of each circle of the embedding (1 on the manifold). The task is translation invariant, so the true law of these
  statistics is the same at every horizon and for every context: they show whether a rollout keeps the
  task's dynamics and stays on the data manifold, i.e. whether it diverges.
* ``fd_full``: the same distance on the token itself plus its velocity. It also sees the absolute position,
  whose generated law relaxes to the model's own stationary law over the torus' mixing time (~40 tokens):
  a slightly position-dependent model drifts there even when its dynamics are right (reported, not the goal).
* ``sw``: the sliced Wasserstein-1 distance of the dynamics statistics, a second distribution distance;
* ``off_manifold``: RMS distance of a token to the clean embedding of its decoded position;
* ``momentum``: the lag-1 correlation of generated velocities (the truth's is RHO = 0.9), reported beside the
  distances because a model can be stable by generating a simpler walk (see the README's results).

Ratios compare the last span of the 10x rollout with the last span of the first window (1x). Last line of
output: JSON with df_ratio and tf_ratio (``--metric``, default ``fd``; goal: df_ratio <= 1.5 and
tf_ratio >= 3 * df_ratio) and every metric's ratios.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import sys
import time
from pathlib import Path

import torch

from dforce_backbones import CausalTransformer, CausalTransformerConfig
from dforce_core import DiffusionConfig, DiffusionLoss
from dforce_sampling import DiffusionForcingSampler, SamplerConfig, sample
from dforce_train import TrainConfig, Trainer, step_generator

DEFAULT_RHO = 0.9  # velocity autocorrelation per step
DEFAULT_VSTD = 0.08  # stationary velocity std per coordinate
DEFAULT_HARMONICS = (1,)  # harmonics of the position embedding (1: two unit circles in R^4)
# The task's live settings: main() sets them from its flags (defaults above, never from a previous call).
RHO = DEFAULT_RHO
VSTD = DEFAULT_VSTD
VSCALE = 0.7 / VSTD  # velocity features are scaled to the token features' std (cos of a uniform angle: 0.71)
HARMONICS = DEFAULT_HARMONICS


def simulate(n: int, length: int, generator: torch.Generator, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
    """Positions (n, length, 2) on the torus [-1, 1)^2 and the final (pos, vel) state; starts stationary unless ``state``."""
    if state is None:
        pos = torch.rand(n, 2, generator=generator) * 2 - 1  # (n, 2)
        vel = torch.randn(n, 2, generator=generator) * VSTD  # (n, 2)
    else:
        pos, vel = (s.clone() for s in state)
    out = []
    for t in range(length):
        if t or state is not None:
            vel = RHO * vel + torch.randn(n, 2, generator=generator) * VSTD * (1 - RHO**2) ** 0.5  # (n, 2)
            pos = torch.remainder(pos + vel + 1, 2) - 1  # (n, 2)
        out.append(pos)
    return torch.stack(out, dim=1), (pos, vel)


def embed(pos: torch.Tensor) -> torch.Tensor:
    """Tokens (..., 4 * len(HARMONICS)): cos / sin of k * pi * position for every harmonic k."""
    ang = torch.cat([pos * (k * math.pi) for k in HARMONICS], dim=-1)  # (..., 2H)
    return torch.cat([ang.cos(), ang.sin()], dim=-1)  # (..., 4H)


def decode(tokens: torch.Tensor) -> torch.Tensor:
    """Positions (..., 2) from the first harmonic of tokens (..., 4H)."""
    h = len(HARMONICS)
    return torch.atan2(tokens[..., 2 * h : 2 * h + 2], tokens[..., :2]) / math.pi


def off_manifold(tokens: torch.Tensor) -> torch.Tensor:
    """RMS distance (...,) of each token to the clean embedding of its decoded position."""
    return (tokens - embed(decode(tokens))).pow(2).mean(-1).sqrt()


def features(x: torch.Tensor) -> torch.Tensor:
    """Per-token statistics (B, T-1, D+2): the token and its scaled velocity (wrapped position difference)."""
    pos = decode(x)  # (B, T, 2)
    vel = torch.remainder(pos[:, 1:] - pos[:, :-1] + 1, 2) - 1  # (B, T-1, 2)
    return torch.cat([x[:, 1:], vel * VSCALE], dim=-1)


def circle_radii(tokens: torch.Tensor) -> torch.Tensor:
    """Radius (..., 2H) of every (cos, sin) pair of tokens (..., 4H); 1 on the data manifold."""
    h2 = tokens.shape[-1] // 2
    return torch.stack([tokens[..., :h2], tokens[..., h2:]], dim=-1).norm(dim=-1)  # (..., 2H)


def dynamics_features(x: torch.Tensor) -> torch.Tensor:
    """Translation-invariant statistics (B, T-2, 4 + 2H) per token: its scaled velocity, the previous one, radii.

    The pair of consecutive velocities carries the walk's momentum (lag-1 correlation RHO); the circle radii
    measure how far a token is from the data manifold.
    """
    pos = decode(x)  # (B, T, 2)
    vel = (torch.remainder(pos[:, 1:] - pos[:, :-1] + 1, 2) - 1) * VSCALE  # (B, T-1, 2)
    return torch.cat([vel[:, :-1], vel[:, 1:], circle_radii(x[:, 2:])], dim=-1)


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
    """Distances between generated (B, N, D) and true (M, N, D) tokens in horizon window [lo, hi)."""
    g, t = gen[:, max(lo - 2, 0) : hi], true[:, max(lo - 2, 0) : hi]  # each token with its two predecessors
    a, b = dynamics_features(g).flatten(0, 1), dynamics_features(t).flatten(0, 1)  # (B*(hi-lo), F)
    full = frechet_distance(features(g[:, 1:]).flatten(0, 1), features(t[:, 1:]).flatten(0, 1))
    off = float(off_manifold(gen[:, lo:hi]).mean())
    momentum = float(torch.corrcoef(torch.stack([a[:, :2].flatten(), a[:, 2:4].flatten()]))[0, 1])
    return {"fd": frechet_distance(a, b), "fd_full": full, "sw": sliced_wasserstein(a, b), "off_manifold": off,
            "momentum": momentum}


def train(mode: str, args: argparse.Namespace) -> tuple[CausalTransformer, DiffusionLoss, float]:
    """Train one model with the given noise-level mode; returns (model, loss, seconds)."""
    torch.manual_seed(args.seed)
    model = CausalTransformer(
        CausalTransformerConfig(token_shape=(4 * len(HARMONICS),), d_model=args.d_model, n_layers=args.n_layers, n_heads=4, window=args.window)
    )
    loss = DiffusionLoss(DiffusionConfig(beta_schedule="cosine", objective="pred_v", noise_level_mode=mode, clip_noise=6.0,
                                         level_power=args.level_power))

    def loss_fn(net, batch, ctx):
        out = loss(lambda x, lv, c: net(x, lv), batch, generator=ctx.generator, shard=ctx.shard)
        return out.loss, {"loss": out.loss.detach()}

    def make_batches(start_step: int):
        for step in itertools.count(start_step):
            yield embed(simulate(args.batch, args.window, step_generator(args.seed + 1, step))[0])

    cfg = TrainConfig(
        lr=args.lr, warmup_steps=100, max_steps=args.steps, grad_clip=1.0, log_every=100, ckpt_every=None,
        ema_decay=args.ema, out_dir=str(args.out / mode), seed=args.seed, progress=not args.no_progress, device="cpu",
    )
    t0, c0 = time.perf_counter(), time.process_time()
    trainer = Trainer(model, loss_fn, cfg)
    try:
        summary = trainer.fit(make_batches)
        if trainer.ema is not None:
            trainer.ema.copy_to(model)
    finally:
        trainer.close()
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"[{mode}] {summary.step} steps in {seconds:.0f}s ({cpu:.0f}s CPU), last loss {summary.metrics.get('loss', float('nan')):.4f}", flush=True)
    return model.eval(), loss, seconds


def rollout(model, loss: DiffusionLoss, stabilization_level: int, args, contexts: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Autoregressive KV-cached rollout of 10x the window from the context tokens; returns (tokens, seconds)."""
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


def plot(path: Path, curves: dict, samples: dict, true: torch.Tensor, horizons: list[int], window: int, metric: str) -> None:
    """Distance curves and sample trajectories (decoded positions) over the first window and the 10x rollout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("truth", true)] + list(samples.items())
    fig, axes = plt.subplots(2, len(rows) + 1, figsize=(4 * (len(rows) + 1), 8))
    for r, key in enumerate((metric, "off_manifold")):
        ax = axes[r, 0]
        for name, c in curves.items():
            ax.plot(horizons, [m[key] for m in c], marker="o", ms=3, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("horizon (tokens)")
        ax.set_ylabel({"sw": "sliced W1 to truth (dynamics)", "fd": "Frechet distance to truth (dynamics)",
                       "fd_full": "Frechet distance to truth (token + velocity)",
                       "off_manifold": "off-manifold error (RMS)"}[key])
        ax.axvline(window, color="gray", ls=":", lw=0.8)
        ax.legend()
    for c, (name, s) in enumerate(rows):
        for r, (end, label) in enumerate(((window, "1x"), (s.shape[1], "10x"))):
            ax = axes[r, c + 1]
            for i in range(4):
                tr = decode(s[i * (s.shape[0] // 4), :end])  # (end, 2)
                jump = (tr[1:] - tr[:-1]).abs().amax(-1) > 1  # wrapped around the torus
                tr = torch.cat([tr[:1], torch.where(jump[:, None], float("nan"), tr[1:])]).numpy()
                ax.plot(tr[:, 0], tr[:, 1], lw=0.8)
                ax.plot(tr[-1, 0], tr[-1, 1], "o", ms=3, color="k")
            ax.set_xlim(-1, 1)
            ax.set_ylim(-1, 1)
            ax.set_aspect("equal")
            ax.set_title(f"{name}, first {end} tokens ({label})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    global RHO, VSTD, VSCALE, HARMONICS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1500 training steps per model (a few minutes on one thread)")
    p.add_argument("--steps", type=int, default=4000, help="training steps per model")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--ema", type=float, default=0.995, help="EMA decay of the weights both models sample with")
    p.add_argument("--window", type=int, default=4, help="training length (attention window) in tokens")
    p.add_argument("--multiple", type=int, default=10)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--n-layers", type=int, default=2)
    p.add_argument("--ddim-steps", type=int, default=50)
    p.add_argument("--stabilization-level", type=int, default=15, help="DF shows past tokens at this level - 1")
    p.add_argument("--context", type=int, default=2, help="true tokens given to the rollout")
    p.add_argument("--contexts", type=int, default=1024)
    p.add_argument("--rollouts-per-context", type=int, default=2)
    p.add_argument("--truth-per-context", type=int, default=2)
    p.add_argument("--span", type=int, default=2, help="tokens per horizon window")
    p.add_argument("--metric", choices=("fd", "fd_full", "sw"), default="fd", help="distance behind df_ratio / tf_ratio")
    p.add_argument("--level-power", type=float, default=3.0,
                   help="training levels floor(K u^p) for both models (1 = the paper's uniform draw)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--out", type=Path, default=Path(".bench/stability"))
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--rho", type=float, default=DEFAULT_RHO, help="velocity autocorrelation per step")
    p.add_argument("--vstd", type=float, default=DEFAULT_VSTD, help="stationary velocity std")
    p.add_argument("--harmonics", type=int, default=len(DEFAULT_HARMONICS), help="harmonics of the token embedding")
    args = p.parse_args(argv)
    RHO, VSTD, VSCALE = args.rho, args.vstd, 0.7 / args.vstd
    HARMONICS = tuple(range(1, args.harmonics + 1))
    if args.quick:
        args.steps = 1500
    if args.threads:
        torch.set_num_threads(args.threads)
    if any((args.out / name).exists() for name in ("diffusion_forcing", "teacher_forcing", "stability.png")):
        stamp = time.strftime("%Y%m%d-%H%M%S")  # an earlier run lives there: keep it, write beside it
        args.out = args.out / f"run-{stamp}"
        print(f"{args.out.parent} holds an earlier run; writing into {args.out}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    t_start, c_start = time.perf_counter(), time.process_time()
    n = args.window * args.multiple
    g = torch.Generator().manual_seed(args.seed + 3)
    ctx_pos, state = simulate(args.contexts, args.context, g)  # (C, c, 2)
    ctx = embed(ctx_pos)  # (C, c, D)

    def truth(seed: int, k: int) -> torch.Tensor:
        rest, _ = simulate(args.contexts * k, n - args.context, torch.Generator().manual_seed(seed),
                           tuple(s.repeat_interleave(k, 0) for s in state))
        return embed(torch.cat([ctx_pos.repeat_interleave(k, 0), rest], dim=1))  # (C*k, N, D)

    true = truth(args.seed + 4, args.truth_per_context)
    horizons = [h for h in range(args.span, n + 1, args.span) if h > max(args.context, 2)]  # generated tokens only

    curves, samples, report = {}, {}, {}
    for name, mode, stab in (("DF", "diffusion_forcing", args.stabilization_level), ("TF", "teacher_forcing", 1)):
        model, loss, train_s = train(mode, args)
        gen, roll_s = rollout(model, loss, stab, args, ctx)
        curves[name] = [window_metrics(gen, true, h - args.span, h) for h in horizons]
        samples[name] = gen
        at_1x, at_10x = window_metrics(gen, true, args.window - args.span, args.window), curves[name][-1]
        report[name] = {"at_1x": at_1x, "at_10x": at_10x, "train_s": train_s, "rollout_s": roll_s}
        print(f"[{name}] 1x {at_1x}  10x {at_10x}  (rollout {roll_s:.0f}s)", flush=True)
        for key in ("fd", "fd_full", "sw", "off_manifold"):
            print(f"[{name}] {key} per horizon " + " ".join(f"{h}:{m[key]:.3f}" for h, m in zip(horizons, curves[name], strict=True)), flush=True)
    floor = {k: window_metrics(truth(args.seed + 5, args.rollouts_per_context), true, lo, hi)
             for k, (lo, hi) in {"at_1x": (args.window - args.span, args.window), "at_10x": (n - args.span, n)}.items()}
    print(f"[truth] {floor}", flush=True)
    png = args.out / "stability.png"
    try:
        plot(png, curves, samples, true, horizons, args.window, args.metric)
    except ImportError:
        png = None
    ratios = {m: {k: report[k]["at_10x"][m] / report[k]["at_1x"][m] for k in report} for m in ("fd", "fd_full", "sw", "off_manifold")}
    momentum = {k: {h: report[k][h]["momentum"] for h in ("at_1x", "at_10x")} for k in report}
    momentum["truth"] = {h: floor[h]["momentum"] for h in ("at_1x", "at_10x")}
    ratio = ratios[args.metric]
    summary = {
        "df_ratio": ratio["DF"],
        "tf_ratio": ratio["TF"],
        "metric": {"sw": "sliced_wasserstein_1 (dynamics)",
                   "fd": "frechet_distance (dynamics: velocity, previous velocity, circle radii)",
                   "fd_full": "frechet_distance (token + velocity)"}[args.metric],
        "ratios": ratios,
        "df_over_tf_at_10x": report["DF"]["at_10x"][args.metric] / report["TF"]["at_10x"][args.metric],
        "momentum": momentum,
        "df": report["DF"], "tf": report["TF"],
        "truth_vs_truth": floor,
        "steps": args.steps, "window": args.window, "rollout_tokens": n, "ddim_steps": args.ddim_steps,
        "stabilization_level": args.stabilization_level, "seed": args.seed, "level_power": args.level_power,
        "goal_met": ratio["DF"] <= 1.5 and ratio["TF"] >= 3 * ratio["DF"],
        "picture": str(png) if png else None,
        "wall_s": time.perf_counter() - t_start, "cpu_s": time.process_time() - c_start,
        "machine": f"{platform.machine()} cpu, {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
