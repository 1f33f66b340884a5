"""`make_report`: measure the chosen sections (training through one shared `Lab`), then write them out.

Sections are measured in `MEASURE_ORDER` - ablations first, since conv1 and neighbours reuse its
baseline runs - each timed, and the results go to `render.write_report` as one JSON payload.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from report.config import SECTIONS, PaperConfig
from report.lab import Lab
from report.render import MODULES, json_default, write_report

MEASURE_ORDER = ("arithmetic", "ablations", "conv1", "neighbours")
TRAINED = {"conv1", "ablations", "neighbours"}     # the sections that need a Lab


def machine() -> dict:
    """What ran the report: platform, CPU, torch, device."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return dict(platform=platform.platform(), python=platform.python_version(), cpu=cpu, cpu_count=os.cpu_count(),
                torch_threads=torch.get_num_threads(), torch=torch.__version__,
                cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)


def make_report(cfg: PaperConfig, log=None) -> dict:
    """Run the chosen sections, then write `<out>/paper.md`, `paper.json` and PNGs (see `write_report`)."""
    unknown = set(cfg.only) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if cfg.seeds < 1 or cfg.epochs < 1:
        raise ValueError("--seeds and --epochs must be at least 1")
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    started = _dt.datetime.now().astimezone()
    t_start = time.perf_counter()
    info = machine()
    sections: dict[str, dict] = {}
    lab = None
    workdir = Path(tempfile.mkdtemp(prefix="alexnet-report-"))   # checkpoints of the runs, deleted at the end
    try:
        if TRAINED & set(cfg.only):
            lab = Lab(cfg, workdir, log)
            info.update(device=str(lab.device), data=str(lab.root))
        for name in MEASURE_ORDER:
            if name in cfg.only:
                log(name)
                t0 = time.perf_counter()
                sections[name] = MODULES[name].measure(cfg, lab)
                sections[name]["seconds"] = time.perf_counter() - t0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    payload = dict(generated=started.isoformat(timespec="seconds"), seconds=time.perf_counter() - t_start,
                   machine=info, config={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
                   sections=sections)
    decoded = lab.decoded() if lab is not None and "neighbours" in sections else None
    return write_report(json.loads(json.dumps(payload, default=json_default)), cfg.out, decoded)
