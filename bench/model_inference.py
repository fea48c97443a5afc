"""Benchmark: scikit-learn predict_proba vs onnxruntime, 1 row and 1,024 rows, for each model family.

Each family is fitted (calibrated, as registered) on Lending Club 2018 with its default
configuration, exported to ONNX, parity-checked, then timed: median latency over repeated calls
and rows/s. The baseline row is a constant-prevalence "model" (numpy, no library call), i.e. the
floor of calling anything at all. Run: ``.venv/bin/python bench/model_inference.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from models.dataset import lending_club
from models.export import export_onnx, onnx_proba, parity, session
from models.train import DEFAULTS, FAMILIES, boosting_name, final_estimator


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` calls after three warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    """Fit, export and time every family; print one table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200, help="timed calls per cell (default 200)")
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    ts = lending_club()
    X = ts.matrix()
    one, batch = X[:1], X[:1024]
    prevalence = ts.prevalence
    rows = [("baseline: constant prevalence (numpy)",
             median_seconds(lambda: np.full(len(one), prevalence), args.repeats),
             median_seconds(lambda: np.full(len(batch), prevalence), args.repeats), float("nan"), "-")]
    for family in FAMILIES:
        est = final_estimator(family, DEFAULTS[family]).fit(X.astype(np.float64), ts.label)
        model = export_onnx(est, ts.feature_names)
        sess = session(model)
        diff = parity(est, model, batch)
        name = boosting_name() if family == "gradient_boosting" else family
        one64, batch64 = one.astype(np.float64), batch.astype(np.float64)
        rows.append((f"{name} sklearn", median_seconds(lambda e=est, x=one64: e.predict_proba(x), args.repeats),
                     median_seconds(lambda e=est, x=batch64: e.predict_proba(x), args.repeats), diff,
                     f"{len(model) / 1024:.0f} KiB"))
        rows.append((f"{name} onnxruntime", median_seconds(lambda s=sess: onnx_proba(s, one), args.repeats),
                     median_seconds(lambda s=sess: onnx_proba(s, batch), args.repeats), diff, ""))
    print(f"model inference, median of {args.repeats} calls, {os.cpu_count()} cores (shared), "
          f"{len(ts.feature_names)} features, onnxruntime 1 thread")
    print(f"{'model':44s} {'1 row (us)':>11s} {'1,024 rows (ms)':>16s} {'rows/s @1024':>13s} "
          f"{'parity':>9s} {'onnx size':>9s}")
    for name, t1, tb, diff, size in rows:
        print(f"{name:44s} {t1 * 1e6:11.1f} {tb * 1e3:16.3f} {1024 / tb:13,.0f} "
              f"{'-' if np.isnan(diff) else f'{diff:.1e}':>9s} {size:>9s}")


if __name__ == "__main__":
    main()
