"""How much does a batched panel pay the kernel for its memory under two glibc malloc settings? Prints one
JSON line; app/main.py's bound_malloc cites it.

    python benchmarks/malloc_faults.py [--repeats 12] [--out benchmarks/results/malloc_faults.json]

Each setting runs in a child process of its own (mallopt settings cannot be undone): app.main.bound_malloc
with the given thresholds, then viz.attribution.panels of 8 random photos on the shipped model, `repeats`
times per kind. Reported per batch: wall ms, user and system CPU ms (every thread), minor page faults
(fresh pages the kernel had to map), and the process's resident memory after the batches (VmRSS) and at
its peak (VmHWM): what the faster setting keeps.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from bench_io import emit

SETTINGS = {   # bound_malloc's arguments
    "1 MB mmap threshold (before)": dict(arenas=2, mmap_threshold=1 << 20, trim_threshold=128 << 10),  # trim: glibc default
    "32 MB mmap, 64 MB trim (now)": dict(arenas=2, mmap_threshold=32 << 20, trim_threshold=64 << 20),
}


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def child(setting: str, repeats: int) -> dict:
    from app.main import bound_malloc
    bound_malloc(**SETTINGS[setting])                 # before torch allocates anything
    import torch

    from alexnet.compact import SHIPPED, load_compact
    from viz.attribution import panels

    model, meta = load_compact(SHIPPED)
    model.eval()
    x = torch.randn(8, 3, meta["input_size"], meta["input_size"], generator=torch.Generator().manual_seed(0))
    out = {}
    for kind, saliency in (("saliency_and_gradcam", True), ("gradcam_only", False)):
        panels(model, x, meta=meta, saliency=saliency, keep_acts=False)          # warm-up
        walls = []
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(repeats):
            t0 = time.perf_counter()
            panels(model, x, meta=meta, saliency=saliency, keep_acts=False)
            walls.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        out[kind] = dict(wall_ms=round(sorted(walls)[len(walls) // 2] * 1e3, 1),
                         user_ms=round((r1.ru_utime - r0.ru_utime) / repeats * 1e3, 1),
                         system_ms=round((r1.ru_stime - r0.ru_stime) / repeats * 1e3, 1),
                         minor_faults=round((r1.ru_minflt - r0.ru_minflt) / repeats))
    out.update(rss_after_mb=status_mb("VmRSS"), rss_peak_mb=status_mb("VmHWM"))
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.repeats)), flush=True)
        return {}
    out = dict(benchmark="malloc_faults", what="viz.attribution.panels of 8 photos on the shipped model, per batch",
               cpus=os.cpu_count(), python=platform.python_version(), machine=platform.machine(),
               load_average_before=[round(v, 2) for v in os.getloadavg()], settings={})
    for setting in SETTINGS:
        run = subprocess.run([sys.executable, __file__, "--child", setting, "--repeats", str(args.repeats)],
                             capture_output=True, text=True, check=True)
        out["settings"][setting] = dict(SETTINGS[setting], **json.loads(run.stdout.strip().splitlines()[-1]))
    return emit(out, args.out)


if __name__ == "__main__":
    main()
