"""Time-series preprocessing benchmark: training-window sampling + lag building, numba kernel vs numpy reference.

Both backends run in this one process on the same random window starts (after a warm-up that includes numba's
compilation) and must return identical arrays; timings are medians over ``--repeats`` runs of ``--iters``
batches each. Cases: the real exchange_rate_nips training split (if the archive is found) and synthetic
hourly series shaped like electricity_nips (370 series, lags 1/24/168). Last line of output is JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from dforce_datasets.timeseries import (
    WindowSpec,
    fourier_time_features,
    load_dataset,
    make_windows,
    period_times,
    sample_starts,
    to_multivariate,
)

REPO = Path(__file__).resolve().parents[2]
EXCHANGE = REPO.parent / "shared" / "data" / "exchange_rate_nips.tar.gz"


def exchange_case(archive: Path, cache_dir: str | None) -> dict | None:
    """Normalised exchange training array (float32) and its features, or None when the archive is absent."""
    if not archive.is_file():
        return None
    md = to_multivariate(load_dataset("exchange_rate_nips", data_dir=archive.parent, cache_dir=cache_dir))
    x = md.normalizer.normalize(md.train.values).astype(np.float32)
    tf = fourier_time_features(md.train.times(), md.freq)
    return {"name": "exchange_rate_nips", "x": x, "tf": tf, "spec": WindowSpec.for_freq(md.freq, 30)}


def synthetic_case(n_time: int, dim: int) -> dict:
    """Random hourly data with the electricity_nips geometry (prediction length 24, lags 1/24/168)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n_time, dim)).astype(np.float32)
    tf = fourier_time_features(period_times(0, n_time, "H"), "H")
    return {"name": f"synthetic_H_{dim}x{n_time}", "x": x, "tf": tf, "spec": WindowSpec.for_freq("H", 24)}


def time_backend(case: dict, starts: list[np.ndarray], backend: str, repeats: int) -> list[float]:
    """Seconds per batch (one entry per repeat) of make_windows over all the start batches."""
    per_batch = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in starts:
            make_windows(case["x"], case["tf"], s, case["spec"], backend=backend)
        per_batch.append((time.perf_counter() - t0) / len(starts))
    return per_batch


def run_case(case: dict, args: argparse.Namespace) -> dict:
    """Check both backends agree, then time them; returns the case's JSON record."""
    rng = np.random.default_rng(1)
    starts = [sample_starts(case["x"].shape[0], case["spec"], args.batch, rng) for _ in range(args.iters)]
    a = make_windows(case["x"], case["tf"], starts[0], case["spec"], backend="numba")  # compiles
    b = make_windows(case["x"], case["tf"], starts[0], case["spec"], backend="numpy")
    identical = all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("target", "lags", "time_features"))
    numpy_s = time_backend(case, starts, "numpy", args.repeats)
    numba_s = time_backend(case, starts, "numba", args.repeats)
    med_np, med_nb = statistics.median(numpy_s), statistics.median(numba_s)
    return {
        "case": case["name"],
        "x_shape": list(case["x"].shape),
        "batch": args.batch,
        "window_rows": case["spec"].window_length,
        "lags": list(case["spec"].lags),
        "identical": identical,
        "numpy_ms_per_batch": round(med_np * 1e3, 4),
        "numba_ms_per_batch": round(med_nb * 1e3, 4),
        "speedup": round(med_np / med_nb, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=32, help="windows per batch (paper: 32)")
    p.add_argument("--iters", type=int, default=100, help="batches per timed repeat")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--archive", type=Path, default=EXCHANGE, help="exchange_rate_nips.tar.gz")
    p.add_argument("--cache-dir", help="extraction cache (default $DFORCE_DATA_DIR or ~/.cache/dforce)")
    p.add_argument("--quick", action="store_true", help="few iterations (smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.iters, args.repeats = 10, 3
    cases = [c for c in (exchange_case(args.archive, args.cache_dir), synthetic_case(5833, 370)) if c]
    results = []
    for case in cases:
        r = run_case(case, args)
        print(f"{r['case']:>28}: numpy {r['numpy_ms_per_batch']:.3f} ms  numba {r['numba_ms_per_batch']:.3f} ms  "
              f"x{r['speedup']}  identical={r['identical']}")
        results.append(r)
    report = {
        "benchmark": "ts_preprocess",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "exchange_found": args.archive.is_file(),
        "cases": results,
        "speedup": {r["case"]: r["speedup"] for r in results},
    }
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
