"""What does a batched panel (8 photos, forward + backward) cost when torch's helper threads spin while
they wait, against when they sleep (OpenMP's wait policy)? Prints one JSON line; app/main.py cites it.

    python benchmarks/omp_wait.py [--repeats 8] [--out benchmarks/results/omp_wait.json]

torch's CPU kernels split each op over its intra-op threads (OpenMP: libgomp in the PyPI wheels). Between
two ops a helper thread waits for the next one: by default it SPINS for a while before it sleeps, which
costs nothing when it has a core to itself, and a lot when the cores are shared with other threads (a web
server's event loop and handlers): the spinning helper takes a core the others need, and the op it waits
for is itself waiting for that core. OMP_WAIT_POLICY=PASSIVE makes it sleep at once. libgomp reads the
policy once, when torch loads, so each policy is measured in a child process of its own.

Per policy, wall and CPU milliseconds per batch of viz.attribution.panels on the shipped model (random
photos: the cost does not depend on what they show): alone; beside a thread of the same process running
Python (the server's case, at the server's GIL switch interval; wall time only); beside another process
running Python (any other load on the machine).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time

from bench_io import emit

POLICIES = ("default", "PASSIVE")
SERVER_SWITCH_S = 0.0005       # the GIL switch interval the server runs with (app.main.server_threads)


def measure(fn, repeats: int) -> dict:
    """Median wall ms per call and mean process CPU ms per call (every thread: the helpers' spinning counts)."""
    fn()                                            # warm-up: oneDNN picks its kernels on the first pass
    walls = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / repeats
    return dict(wall_ms=round(sorted(walls)[len(walls) // 2] * 1e3, 1), cpu_ms=round(cpu * 1e3, 1))


def child(repeats: int) -> dict:
    """The measurements under the policy this process was started with."""
    import torch

    from alexnet.compact import SHIPPED, load_compact
    from viz.attribution import panels

    model, meta = load_compact(SHIPPED)
    model.eval()
    x = torch.randn(8, 3, meta["input_size"], meta["input_size"], generator=torch.Generator().manual_seed(0))
    kinds = dict(full=lambda: panels(model, x, meta=meta, keep_acts=False),
                 gradcam_only=lambda: panels(model, x, meta=meta, saliency=False, keep_acts=False))
    out = dict(threads=torch.get_num_threads(), alone={k: measure(f, repeats) for k, f in kinds.items()})

    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    sys.setswitchinterval(SERVER_SWITCH_S)
    try:   # wall time only: the process's CPU here includes the spinner's
        out["beside_a_python_thread"] = {k: dict(wall_ms=measure(f, repeats)["wall_ms"]) for k, f in kinds.items()}
    finally:
        stop.set()
        spinner.join()
    other = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        out["beside_a_python_process"] = {k: measure(f, repeats) for k, f in kinds.items()}
    finally:
        other.kill()
        other.wait()
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.repeats)), flush=True)
        return {}
    out = dict(benchmark="omp_wait", what="viz.attribution.panels of 8 photos on the shipped model, per batch",
               cpus=os.cpu_count(), python=platform.python_version(), machine=platform.machine(),
               load_average_before=[round(v, 2) for v in os.getloadavg()], policies={})
    for policy in POLICIES:
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        if policy != "default":
            env["OMP_WAIT_POLICY"] = policy
        run = subprocess.run([sys.executable, __file__, "--child", "--repeats", str(args.repeats)], env=env,
                             capture_output=True, text=True, check=True)
        out["policies"][policy] = json.loads(run.stdout.strip().splitlines()[-1])
    import torch
    out["torch"] = torch.__version__
    return emit(out, args.out)


if __name__ == "__main__":
    main()
