"""``dforce-forecast`` command line: ``data`` (describe a dataset) and ``run`` (train, score, plot)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from dforce_datasets.timeseries import DATASETS, WindowSpec, load_dataset, to_multivariate
from dforce_forecast.config import BACKBONES, METHODS, ForecastConfig
from dforce_forecast.data import EVALUATIONS, SCALINGS, TARGETS


def data_info(dataset: str, *, data_dir: str | None = None, cache_dir: str | None = None,
              download: bool = True) -> dict:
    """Load a dataset (registered name or path) and describe it as the benchmark sees it."""
    ds = load_dataset(dataset, data_dir=data_dir, cache_dir=cache_dir, download=download)
    info = DATASETS.get(dataset)
    md = to_multivariate(ds, max_target_dim=info.max_target_dim if info else None)
    spec = WindowSpec.for_freq(ds.freq, md.prediction_length)
    return {
        "dataset": dataset,
        **ds.summary(),
        "target_dim": md.target_dim,
        "train_steps": md.train.length,
        "num_test_dates": md.num_test_dates,
        "test_window_lengths": [w.length for w in md.test],
        "lags": list(spec.lags),
        "context_length": spec.context_length,
        "history_length": spec.history_length,
        "train_start": str(md.train.times()[0]),
        "train_end": str(md.train.times()[-1]),
    }


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
    """--dataset / --data-dir / --cache-dir / --no-download, shared by the sub-commands."""
    parser.add_argument("--dataset", required=True,
                        help=f"registered name ({', '.join(DATASETS)}) or a GluonTS dataset directory / .tar.gz")
    parser.add_argument("--data-dir", help="directory holding <name>/ or <name>.tar.gz (no download then)")
    parser.add_argument("--cache-dir", help="download/extraction cache (default $DFORCE_DATA_DIR or ~/.cache/dforce)")
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands)."""
    parser = argparse.ArgumentParser(prog="dforce-forecast", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is read, extracted, downloaded")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="load a dataset and print its description as JSON")
    _add_dataset_args(data)

    run = sub.add_parser("run", help="train and score methods x seeds on the test windows; results JSON + plots")
    _add_dataset_args(run)
    run.add_argument("--methods", default="df,tf,naive", help=f"comma list of {', '.join(METHODS)} (default all)")
    run.add_argument("--seeds", type=int, default=1, help="number of seeds (default 1; the paper reports 5)")
    run.add_argument("--seed-offset", type=int, default=0, help="first seed (default 0)")
    run.add_argument("--max-minutes", type=float, default=None,
                     help="wall-clock training budget per method and seed, in minutes (default: none)")
    run.add_argument("--out", default="forecast_runs", help="output directory (results.json, plots, models)")
    run.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    run.add_argument("--no-plots", action="store_true", help="do not write forecast PNGs")
    run.add_argument("--plot-window", type=int, default=-1, help="test window to plot (default: the last)")
    run.add_argument("--quiet", action="store_true", help="no per-epoch progress on stderr")
    d = ForecastConfig()
    g = run.add_argument_group("model and training (defaults: the paper's setup at a CPU-friendly size)")
    g.add_argument("--backbone", choices=BACKBONES, default=d.backbone)
    g.add_argument("--z-dim", type=int, default=d.z_dim, help="GRU latent size (paper: 1024)")
    g.add_argument("--network-size", type=int, default=d.network_size, help="level embedding width (paper: 64)")
    g.add_argument("--num-gru-layers", type=int, default=d.num_gru_layers)
    g.add_argument("--num-mlp-layers", type=int, default=d.num_mlp_layers)
    g.add_argument("--d-model", type=int, default=d.d_model, help="transformer width")
    g.add_argument("--n-layers", type=int, default=d.n_layers, help="transformer depth")
    g.add_argument("--target", choices=TARGETS, default=d.target,
                   help="level: normalised values (paper); delta: normalised first differences (measured setting)")
    g.add_argument("--scaling", choices=SCALINGS, default=d.scaling,
                   help="context: divide each window by its context's RMS change (delta target only)")
    g.add_argument("--scale-floor", type=float, default=d.scale_floor, help="smallest context scale")
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--batches-per-epoch", type=int, default=d.batches_per_epoch)
    g.add_argument("--max-epochs", type=int, default=d.max_epochs)
    g.add_argument("--patience", type=int, default=d.patience)
    g.add_argument("--ema-decay", type=float, default=d.ema_decay, help="EMA of the weights (0 = off)")
    g.add_argument("--sampling-steps", type=int, default=d.sampling_steps, help="DDIM steps (paper: 50)")
    g.add_argument("--eta", type=float, default=d.eta)
    g.add_argument("--stabilization-level", type=int, default=d.stabilization_level,
                   help="DF: generated tokens are fed back at this level - 1 (paper: 19 for 50 DDIM steps)")
    g.add_argument("--num-samples", type=int, default=d.num_samples, help="sample paths per test window")
    g.add_argument("--val-windows", type=int, default=None,
                   help="validation windows drawn from the training split (default: as many as the test windows, "
                        "the paper's protocol)")
    g.add_argument("--val-num-samples", type=int, default=d.val_num_samples,
                   help="sample paths per validation window")
    g.add_argument("--evaluation", choices=EVALUATIONS, default=d.evaluation,
                   help="how validation (early stopping) and the headline test score are computed: rollout = the "
                        "real forecast; one_step = the authors' code, whose horizon lag covariates come from the "
                        "truth (one-step-ahead; the paper's Table 2). The test is always scored both ways")
    return parser


def config_from_args(args: argparse.Namespace) -> ForecastConfig:
    """The ForecastConfig the ``run`` flags describe."""
    return ForecastConfig(
        backbone=args.backbone, z_dim=args.z_dim, network_size=args.network_size,
        num_gru_layers=args.num_gru_layers, num_mlp_layers=args.num_mlp_layers, d_model=args.d_model,
        n_layers=args.n_layers, target=args.target, scaling=args.scaling,
        scale_floor=args.scale_floor, lr=args.lr, weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps, batch_size=args.batch_size, batches_per_epoch=args.batches_per_epoch,
        max_epochs=args.max_epochs, patience=args.patience, ema_decay=args.ema_decay or None,
        sampling_steps=args.sampling_steps, eta=args.eta, stabilization_level=args.stabilization_level,
        num_samples=args.num_samples, val_num_samples=args.val_num_samples, evaluation=args.evaluation)


def run_command(args: argparse.Namespace) -> int:
    """``dforce-forecast run``: train, evaluate, write results and plots; print the summary table."""
    from dforce_forecast.experiment import format_table, run_experiment

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    results = run_experiment(
        args.dataset, methods=args.methods, seeds=args.seeds, seed_offset=args.seed_offset,
        max_minutes=args.max_minutes, out=args.out, config=config_from_args(args), data_dir=args.data_dir,
        cache_dir=args.cache_dir, download=not args.no_download, progress=not args.quiet, plots=not args.no_plots,
        plot_window=args.plot_window, val_windows=args.val_windows)
    print(format_table(results))
    print(json.dumps({"results": results["results_path"],
                      **{m: s["crps_sum"]["mean"] for m, s in results["summary"].items()}}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dforce-forecast`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if args.command == "run":
            return run_command(args)
        info = data_info(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir,
                         download=not args.no_download)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"dforce-forecast: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
