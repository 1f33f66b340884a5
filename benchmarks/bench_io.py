"""What the small CPU benchmarks share: a timed median, and one JSON object printed (and written if asked).

Imported by name from a benchmark run as `python benchmarks/NAME.py` (its folder is then first on sys.path).
"""
from __future__ import annotations

import json
import time
from pathlib import Path


def median_ms(fn, repeats: int) -> float:
    """Median wall ms of `repeats` calls of fn(), after one warm-up call (oneDNN picks its kernels on the first)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(sorted(times)[len(times) // 2] * 1e3, 1)


def emit(out: dict, path: str | None) -> dict:
    """Print `out` as one JSON line; also write it, indented, to `path` when given."""
    print(json.dumps(out), flush=True)
    if path:
        Path(path).write_text(json.dumps(out, indent=1) + "\n")
    return out
