"""Section 4, fc7 nearest neighbours (Fig. 4), counted: how often the 6 nearest training images of a val
query share its class, in fc7 space (`viz.embedding.fc7_features`) and in centre-crop pixel space."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from alexnet.images import center_crop
from report.stats import secs, verdict
from viz.embedding import fc7_features, pairwise_distances
from viz.plots import figure_to_image, new_figure

PNG = "neighbours.png"


def nearest(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) indices into `bank` of each query's k nearest rows by Euclidean distance, nearest first."""
    return np.argsort(pairwise_distances(queries, bank), axis=1, kind="stable")[:, :k]   # (Q, N) -> (Q, k)


def pixels(images: torch.Tensor, size: int) -> np.ndarray:
    """(N, 3, H, W) uint8 -> (N, 3*S*S) centre-crop pixels in 0-1."""
    return center_crop(images, size).float().div(255).flatten(1).numpy()


def measure(cfg, lab, seed: int = 0) -> dict:
    """Queries: `cfg.queries` val images per class; neighbours: the `cfg.k` nearest of the same seed's train split."""
    model, meta = lab.model("baseline", seed)
    dec = lab.decoded()
    tr, va = lab.split(seed)
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(len(dec.classes)):
        members = va[dec.labels[va] == c]
        picks += members[torch.randperm(len(members), generator=g)[:cfg.queries]].tolist()
    picks = torch.tensor(picks, dtype=torch.int64)
    size = int(meta["input_size"])

    def fc7(images):
        return fc7_features(model, images, meta["mean"], meta["std"], size, device=lab.device, cache=False)

    k = min(cfg.k, len(tr))
    nn_f = nearest(fc7(dec.images[tr]), fc7(dec.images[picks]), k)                       # (Q, k) indices into tr
    nn_p = nearest(pixels(dec.images[tr], size), pixels(dec.images[picks], size), k)
    y_tr, y_q = dec.labels[tr].numpy(), dec.labels[picks].numpy()
    same_f = (y_tr[nn_f] == y_q[:, None]).mean(1)                                         # (Q,)
    same_p = (y_tr[nn_p] == y_q[:, None]).mean(1)
    per_class = {dec.classes[c]: dict(fc7=float(same_f[y_q == c].mean()), pixels=float(same_p[y_q == c].mean()))
                 for c in np.unique(y_q)}
    chance = float(np.mean([(y_tr == c).mean() for c in y_q]))
    return dict(fc7=float(same_f.mean()), pixels=float(same_p.mean()), chance=chance, per_class=per_class,
                per_query=dict(fc7=same_f.tolist(), pixels=same_p.tolist()),
                queries=picks.tolist(), fc7_neighbours=tr[nn_f].tolist(), pixel_neighbours=tr[nn_p].tolist(),
                k=k, val_acc=lab.run("baseline", seed).val_acc)


def claims(n: dict, cfg) -> dict:
    word = verdict([f - p for f, p in zip(n["per_query"]["fc7"], n["per_query"]["pixels"])])
    text = (f"same-class share of the {n['k']} nearest training images: fc7 {n['fc7']:.0%}, pixels "
            f"{n['pixels']:.0%}, chance {n['chance']:.0%} ({word}, paired over {len(n['queries'])} queries)")
    how = (f"Euclidean distance on fc7 (baseline seed 0, val acc {n['val_acc']:.1%}) and on centre-crop pixels; "
           f"queries from the val split, neighbours from train; {cfg.size}px, width {cfg.width:g}")
    return {"neighbours": (text, how, n["seconds"])}


def markdown(n: dict, cfg) -> list[str]:
    md = [f"## 4. fc7 nearest neighbours ({secs(n['seconds'])})", "", f"![neighbours]({PNG})", "",
          "| class | fc7 same-class share | pixel same-class share |", "|---|---:|---:|"]
    for c, r in n["per_class"].items():
        md.append(f"| {c} | {r['fc7']:.0%} | {r['pixels']:.0%} |")
    md.append(f"| **all** | **{n['fc7']:.0%}** | **{n['pixels']:.0%}** |")
    return md


def figure(n: dict, cfg, images, rows: int = 5, thumb: int = 40):
    """One query per class: the query, its fc7 neighbours, its pixel neighbours; frames green = same class."""
    dec = images()
    queries = n["queries"]
    per = max(1, len(queries) // max(1, len(set(dec.labels[queries].tolist()))))
    chosen = list(range(0, len(queries), per))[:rows]

    def tile(i: int, same: bool | None) -> np.ndarray:
        img = np.asarray(Image.fromarray(dec.images[i].permute(1, 2, 0).numpy()).resize((thumb, thumb)))
        t = np.full((thumb + 4, thumb + 4, 3), 255, np.uint8)
        if same is not None:
            t[:] = (60, 170, 80) if same else (210, 60, 60)
        t[2:-2, 2:-2] = img
        return t

    blank = np.full((thumb + 4, 8, 3), 255, np.uint8)
    lines = []
    for q in chosen:
        qi, y = queries[q], int(dec.labels[queries[q]])
        row = [tile(qi, None), blank]
        row += [tile(i, int(dec.labels[i]) == y) for i in n["fc7_neighbours"][q]] + [blank]
        row += [tile(i, int(dec.labels[i]) == y) for i in n["pixel_neighbours"][q]]
        lines.append(np.concatenate(row, 1))
    mosaic = np.concatenate(lines, 0)
    fig = new_figure(mosaic.shape[1] / 80 + 0.3, mosaic.shape[0] / 80 + 0.6, dpi=80)
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(thumb + 4) * (r + 0.5) for r in range(len(chosen))],
                  [dec.classes[int(dec.labels[queries[q]])] for q in chosen], fontsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"query | {n['k']} nearest in fc7 ({n['fc7']:.0%} same class) | {n['k']} nearest in pixels "
                 f"({n['pixels']:.0%}); green frame = same class", fontsize=8)
    return figure_to_image(fig)
