"""Section 2, conv1 group specialisation: is one conv2 group's conv1 block colourful and the other grey (Fig. 3)?

Scored with `viz.filters.colour_score` per filter and `split_auc` between the two blocks, on BVLC's
real ImageNet conv1 and on this project's two-group baseline models before and after training.
"""
from __future__ import annotations

import numpy as np
import torch

from alexnet import bvlc
from alexnet.model import build
from report.stats import plural, pm, secs, verdict
from viz.filters import colour_score, split_auc
from viz.plots import figure_to_image, new_figure

PNG = "conv1_groups.png"


def groups(weight: torch.Tensor, n_groups: int) -> dict:
    """Colour score per filter, median per contiguous block, and AUC of block 0 against block 1.

    AUC 0.5 means no difference; which block turns colourful is arbitrary, so `split` is
    max(AUC, 1 - AUC), and it is compared with the same model's untrained weights.
    """
    s = np.asarray(colour_score(weight), dtype=np.float64)
    blocks = np.arange(s.size).reshape(n_groups, -1)                # (groups, N / groups)
    out = dict(medians=[float(np.median(s[b])) for b in blocks], scores=s.tolist())
    if n_groups == 2:
        auc = split_auc(s, np.arange(s.size) < blocks.shape[1])     # block 0 vs block 1
        out.update(auc=float(auc), split=float(max(auc, 1 - auc)))
    return out


def measure(cfg, lab) -> dict:
    """BVLC's real ImageNet conv1, and (with a lab) the baseline models before and after training."""
    trained, initial = [], []
    if lab is not None:
        for seed in range(cfg.seeds):
            m, _ = lab.model("baseline", seed)
            trained.append(groups(m.param_layer("conv1").weight, 2))
            # The same draw as alexnet.train's initialisation for this seed.
            init = build("paper", len(lab.decoded().classes), width=cfg.width,
                         generator=torch.Generator().manual_seed(seed))
            initial.append(groups(init.param_layer("conv1").weight, 2))
    out = dict(bvlc=groups(bvlc.conv1()[0], 2), trained=trained, initial=initial)
    if lab is not None:
        out["baseline_seconds"] = sum(lab.run("baseline", s).seconds for s in range(cfg.seeds))
    return out


def claims(c: dict, cfg) -> dict:
    b = c["bvlc"]
    text = (f"BVLC ImageNet conv1: median colour score {b['medians'][0]:.2f} (filters 0-47) vs "
            f"{b['medians'][1]:.2f} (48-95), AUC {b['split']:.2f}")
    if c["trained"]:
        tr = [t["split"] for t in c["trained"]]
        init = [t["split"] for t in c["initial"]]
        v = verdict([t - i for t, i in zip(tr, init)])
        grew = "the split grows with training" if v == "agrees" else "no split beyond the untrained weights"
        text += (f". Flowers, {len(tr)} seeds: AUC {pm(tr, 1, 2)} after training vs {pm(init, 1, 2)} at init: "
                 f"{grew} ({v})")
    how = ("colour score = share of filter energy off the grey axis (viz.filters); AUC of one group's scores "
           "against the other's (0.5 = no split)")
    if c["trained"]:
        how += f"; baseline runs at {cfg.size}px, width {cfg.width:g}, {plural(cfg.epochs, 'epoch')}"
    return {"conv1_split": (text, how, c["seconds"] + c.get("baseline_seconds", 0.0))}


def markdown(c: dict, cfg) -> list[str]:
    md = [f"## 2. conv1 group specialisation ({secs(c['seconds'])} + the baseline runs)", "",
          f"![conv1 groups]({PNG})", "",
          "| model | median score, group 0 | median score, group 1 | split AUC (0.5 = none, 1 = full) |",
          "|---|---:|---:|---:|"]
    b = c["bvlc"]
    md.append(f"| BVLC AlexNet (ImageNet) | {b['medians'][0]:.3f} | {b['medians'][1]:.3f} | {b['split']:.3f} |")
    for seed, (t, i) in enumerate(zip(c["trained"], c["initial"])):
        md.append(f"| flowers baseline, seed {seed}, untrained | {i['medians'][0]:.3f} | {i['medians'][1]:.3f} | "
                  f"{i['split']:.3f} |")
        md.append(f"| flowers baseline, seed {seed}, trained | {t['medians'][0]:.3f} | {t['medians'][1]:.3f} | "
                  f"{t['split']:.3f} |")
    md += ["", "In the BVLC file the colour-specific block is filters 0-47; the paper's Figure 3 shows it on "
           "GPU 2. Which block becomes colourful is arbitrary (the two towers are symmetric), so the split is "
           "measured as max(AUC, 1 - AUC). Random weights score about 2/3 in every group; with few filters "
           "per group the AUC of random weights already strays from 0.5, hence the untrained rows."]
    return md


def figure(c: dict, cfg, images):
    """Box plots of the colour scores, group 0 red and group 1 blue, per model."""
    fig = new_figure(7.5, 3.2, dpi=80)
    ax = fig.add_subplot()
    models = [("BVLC\nImageNet", c["bvlc"])]
    for s, (i, t) in enumerate(zip(c["initial"], c["trained"])):
        models += [(f"seed {s}\nuntrained", i), (f"seed {s}\ntrained", t)]
    for j, (name, m) in enumerate(models):
        s = np.asarray(m["scores"])
        half = s.size // 2
        for g, colour in ((0, "#d1495b"), (1, "#3b6fb6")):
            ax.boxplot(s[g * half:(g + 1) * half], positions=[j * 3 + g], widths=0.8, patch_artist=True,
                       boxprops=dict(facecolor=colour, alpha=0.6), medianprops=dict(color="k"), showfliers=False)
    ax.axhline(2 / 3, color="0.5", linestyle=":", label="random weights (2/3)")
    ax.set_xticks([j * 3 + 0.5 for j in range(len(models))], [n for n, _ in models], fontsize=8)
    ax.set_ylabel("colour score")
    ax.set_title("conv1 colour score by group (red: filters of group 0, blue: group 1)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return figure_to_image(fig)
