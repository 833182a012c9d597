"""KV-cache benchmark: one causal transformer rolled out autoregressively to 10x its training window.

Both paths produce the same samples (same seed); the cached path encodes every finished token once, the
uncached path re-encodes the history on every denoising call. Two uncached baselines are timed:

* ``full``: the whole history is re-encoded each call (the plain no-cache rollout);
* ``receptive_field``: only the last ``n_layers * (window - 1) + 1`` tokens, the fewest that still give
  exactly the same output under the banded causal mask (the strongest exact uncached baseline).

Timings are medians over ``--repeats`` runs in this one process. Last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from dforce_backbones import CausalTransformer, CausalTransformerConfig
from dforce_core import NoiseSchedule
from dforce_sampling import DiffusionForcingSampler, SamplerConfig, sample


def build_model(args: argparse.Namespace) -> CausalTransformer:
    """A randomly initialised transformer whose zero-initialised gates are re-drawn, so outputs are non-trivial."""
    torch.manual_seed(0)
    cfg = CausalTransformerConfig(
        token_shape=(args.token_dim,), d_model=args.d_model, n_layers=args.n_layers, n_heads=args.n_heads,
        window=args.window,
    )
    model = CausalTransformer(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 0 and torch.all(p == 0):
                p.normal_(0.0, 0.05)
    return model


def rollout(model, sampler, args, n_tokens: int, *, use_cache: bool, max_history) -> tuple[torch.Tensor, float]:
    """One seeded autoregressive rollout; returns (samples, seconds)."""
    g = torch.Generator().manual_seed(1234)
    context = torch.randn(args.batch, 1, args.token_dim, generator=torch.Generator().manual_seed(7))
    t0 = time.perf_counter()
    with torch.no_grad():
        out = sample(
            model, sampler, n_tokens=n_tokens, context=context, chunk_size=1, scheduling="autoregressive",
            use_cache=use_cache, max_history=max_history, generator=g,
        )
    return out, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, about a minute on 2 CPU cores")
    p.add_argument("--window", type=int, default=16, help="training window (attention span) in tokens")
    p.add_argument("--multiple", type=int, default=10, help="rollout length as a multiple of the window")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--token-dim", type=int, default=16)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--n-layers", type=int, default=4)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps per token")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.repeats, args.batch, args.d_model = 8, 3, 16, 128
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args)
    schedule = NoiseSchedule.from_name("cosine", 1000)
    sampler = DiffusionForcingSampler(
        schedule, SamplerConfig(num_sampling_steps=args.steps, eta=0.0, stabilization_level=15, objective="pred_v")
    )
    n_long = args.window * args.multiple
    rollout(model, sampler, args, args.window, use_cache=True, max_history=None)  # warm-up

    results: dict[str, list[float]] = {k: [] for k in ("cached", "full", "receptive_field", "cached_1x", "full_1x")}
    diffs = {"full": 0.0, "receptive_field": 0.0}
    for r in range(args.repeats):
        ref, t = rollout(model, sampler, args, n_long, use_cache=True, max_history=None)
        results["cached"].append(t)
        out, t = rollout(model, sampler, args, n_long, use_cache=False, max_history=None)
        results["full"].append(t)
        diffs["full"] = max(diffs["full"], (out - ref).abs().max().item())
        out, t = rollout(model, sampler, args, n_long, use_cache=False, max_history="receptive_field")
        results["receptive_field"].append(t)
        diffs["receptive_field"] = max(diffs["receptive_field"], (out - ref).abs().max().item())
        results["cached_1x"].append(rollout(model, sampler, args, args.window, use_cache=True, max_history=None)[1])
        results["full_1x"].append(rollout(model, sampler, args, args.window, use_cache=False, max_history=None)[1])
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in results.items()), flush=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    summary = {
        "speedup_10x": med["full"] / med["cached"],
        "speedup_10x_vs_receptive_field": med["receptive_field"] / med["cached"],
        "speedup_1x": med["full_1x"] / med["cached_1x"],
        "max_abs_diff": max(diffs.values()),
        "cached_s_per_token_1x": med["cached_1x"] / (args.window - 1),
        "cached_s_per_token_10x": med["cached"] / (n_long - 1),
        "median_s": med,
        "rollout_tokens": n_long,
        "window": args.window,
        "ddim_steps": args.steps,
        "batch": args.batch,
        "model": {"d_model": args.d_model, "n_layers": args.n_layers, "params": sum(p.numel() for p in model.parameters())},
        "device": "cpu",
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
