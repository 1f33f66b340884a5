"""Measurements into words and pictures: `paper.json`'s content -> `paper.md`, the PNGs and `paper.json`, atomically.

Nothing is trained or measured here, so `python -m report --render paper.json` redoes the text and
plots of an earlier run, and the About tab shows a run's claims table with `claims_markdown`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from alexnet import data as D
from alexnet.weights import atomic_write_text
from report import ablations, arithmetic, conv1, neighbours
from report.config import CLAIMS, SECTIONS, from_payload
from report.stats import plural, secs
from viz.plots import save_png

MODULES = dict(arithmetic=arithmetic, conv1=conv1, ablations=ablations, neighbours=neighbours)
assert tuple(MODULES) == SECTIONS
TITLE = "AlexNet (Krizhevsky, Sutskever, Hinton 2012): the paper's claims beside this project's numbers"


def claims_table(rows: dict) -> list[str]:
    """paper.json's `claims` (id -> claim, paper, project, how, seconds) as Markdown rows, in the paper's order."""
    md = ["| claim | paper | this project | how obtained | time |", "|---|---|---|---|---:|"]
    for cid in [c for c in CLAIMS if c in rows] + [c for c in rows if c not in CLAIMS]:
        r = rows[cid]
        md.append(f"| {r['claim']} | {r['paper']} | {r['project']} | {r['how']} | {secs(r['seconds'])} |")
    return md


def claims_markdown(payload: dict) -> str:
    """The claims table of a paper.json payload: the same table paper.md shows."""
    return "\n".join(claims_table(payload.get("claims", {})))


def summary(payload: dict) -> list[str]:
    """How, where and at what scale the run was made: paper.md's paragraphs above the claims."""
    cfg, info = from_payload(payload), payload["machine"]
    return [
        f"Generated {payload['generated']} by `python -m report {' '.join(cfg.argv)}` "
        f"in {secs(payload['seconds'])}." + (f" Text and plots re-rendered from its paper.json on "
                                             f"{payload['rendered']} (nothing re-measured)."
                                             if payload.get("rendered") else ""), "",
        f"Machine: {info['platform']}; {info['cpu']}, {info['cpu_count']} CPUs ({info['torch_threads']} torch "
        f"threads); Python {info['python']}; torch {info['torch']}; device {info.get('device', 'cpu')}"
        + (f" ({info['cuda']})" if info.get("cuda") else "") + ".", "",
        f"Settings: {cfg.size}px crops of {cfg.decode_size}px images, width {cfg.width:g}, "
        f"{plural(cfg.epochs, 'epoch')}, {plural(cfg.seeds, 'seed')}, {'all' if cfg.limit is None else cfg.limit} "
        f"images, batch {cfg.batch_size}, recipe {cfg.recipe}" + (f", lr {cfg.lr:g}" if cfg.lr else "") + ". The "
        "same code runs full size on a GPU (`--size 227 --width 1 --device cuda`). A verdict of \"inconclusive at "
        "this scale\" means the seeds' spread is too wide (or the models too weak) to support or refute the paper "
        "here."]


def _upgrade(sections: dict) -> dict:
    """Early paper.json files lack conv1's `baseline_seconds`: it was the ablation's baseline time."""
    c = sections.get("conv1")
    if c is not None and "baseline_seconds" not in c:
        base = sections.get("ablations", {}).get("variants", {}).get("baseline", {})
        sections = dict(sections, conv1=dict(c, baseline_seconds=base.get("seconds", 0.0)))
    return sections


def write_report(payload: dict, out: str | os.PathLike, decoded: D.Decoded | None = None) -> dict:
    """Render measured results (`paper.json`'s content) into `<out>/paper.md`, PNGs and `paper.json`.

    `decoded` (the photos, for the neighbour thumbnails) is read from the data folder's decode cache
    when not given.
    """
    cfg, info = from_payload(payload), payload["machine"]
    sec = _upgrade(payload["sections"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = [decoded]

    def images() -> D.Decoded:
        if loaded[0] is None:
            loaded[0] = D.decode_folder(D.find_data_dir(info.get("data") or cfg.data), cfg.decode_size)
        return loaded[0]

    claims: dict[str, tuple] = {}
    body: list[str] = []
    pngs: list[str] = []
    for name, mod in MODULES.items():
        if name not in sec:
            continue
        claims.update(mod.claims(sec[name], cfg))
        image = mod.figure(sec[name], cfg, images)
        if image is not None:
            save_png(image, out / mod.PNG)
            pngs.append(mod.PNG)
        body += mod.markdown(sec[name], cfg) + [""]
    rows = {cid: dict(claim=CLAIMS[cid][0], paper=CLAIMS[cid][1], project=v[0], how=v[1], seconds=v[2])
            for cid, v in claims.items()}
    md = "\n".join([f"# {TITLE}", ""] + summary(payload) + ["", "## Claims", ""] + claims_table(rows) + [""]
                   + body) + "\n"
    atomic_write_text(out / "paper.md", md)
    payload = dict(payload, pngs=pngs, claims=rows)
    atomic_write_text(out / "paper.json", json.dumps(payload, indent=1, default=json_default))
    return dict(markdown=md, claims=claims, sections=sec, machine=info, seconds=payload["seconds"],
                paths=[out / "paper.md", out / "paper.json"] + [out / p for p in pngs])


def json_default(o):
    """numpy and torch numbers and arrays, and paths, as JSON."""
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, (np.ndarray, torch.Tensor)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")
