"""``dforce-forecast`` command line (for now only ``data``: load a dataset and print what it holds)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from dforce_datasets.timeseries import DATASETS, WindowSpec, load_dataset, to_multivariate


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (sub-commands)."""
    parser = argparse.ArgumentParser(prog="dforce-forecast", description=__doc__.split("\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log what is read, extracted, downloaded")
    sub = parser.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="load a dataset and print its description as JSON")
    data.add_argument("--dataset", required=True,
                      help=f"registered name ({', '.join(DATASETS)}) or a GluonTS dataset directory / .tar.gz")
    data.add_argument("--data-dir", help="directory holding <name>/ or <name>.tar.gz (no download then)")
    data.add_argument("--cache-dir", help="download/extraction cache (default $DFORCE_DATA_DIR or ~/.cache/dforce)")
    data.add_argument("--no-download", action="store_true", help="fail instead of downloading")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dforce-forecast`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        info = data_info(args.dataset, data_dir=args.data_dir, cache_dir=args.cache_dir,
                         download=not args.no_download)
    except (ValueError, FileNotFoundError) as exc:
        print(f"dforce-forecast: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
