"""Section 3, ablations: the paper's choices (ReLU, LRN, 3/2 pooling, dropout, PCA lighting, two groups)
changed one at a time over seeds, 10-crop vs centre-crop testing, and ReLU vs tanh on the small 4-layer net."""
from __future__ import annotations

import time

import numpy as np

from alexnet.evaluate import evaluate
from alexnet.train import RECIPES
from report.config import VARIANTS
from report.small_net import SMALL_LR, relu_vs_tanh
from report.stats import epochs_to_error, mean_sd, plural, pm, secs, verdict
from viz.plots import figure_to_image, new_figure

PNG = "ablations.png"
WEAK = "inconclusive at this scale (the baseline barely beats chance)"


def measure(cfg, lab) -> dict:
    """Every variant for every seed, the 10-crop test on the baseline, and the 4-layer ReLU/tanh net."""
    lab.log(f"  {len(VARIANTS)} variants x {cfg.seeds} seeds")
    dec = lab.decoded()
    k = len(dec.classes)
    res: dict = dict(variants={}, chance=lab.chance())
    for variant in VARIANTS:
        runs = [lab.run(variant, seed) for seed in range(cfg.seeds)]
        res["variants"][variant] = dict(
            val=[r.val_acc for r in runs], train=[r.history[-1]["train_acc"] for r in runs],
            seconds=sum(r.seconds for r in runs),
            curves=[[1 - h["train_acc"] for h in r.history] for r in runs],
            epochs_to_target=[epochs_to_error(r.history, cfg.target_error, 1 - 1 / k) for r in runs])
    # Dropout's train/val gap: training accuracy measured like validation (eval mode, centre crop), since
    # the running training accuracy is taken with dropout and augmentation on.
    for variant in ("baseline", "no_dropout"):
        t0 = time.perf_counter()
        fit = []
        for seed in range(cfg.seeds):
            model, meta = lab.model(variant, seed)
            tr, _ = lab.split(seed)
            fit.append(evaluate(model, meta, dec.images[tr], dec.labels[tr], device=lab.device)["top1"])
        res["variants"][variant]["train_eval"] = fit
        res["variants"][variant]["seconds"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    centre, ten = [], []
    for seed in range(cfg.seeds):
        model, meta = lab.model("baseline", seed)
        _, va = lab.split(seed)
        centre.append(evaluate(model, meta, dec.images[va], dec.labels[va], device=lab.device)["top1"])
        ten.append(evaluate(model, meta, dec.images[va], dec.labels[va], ten_crop=True, device=lab.device)["top1"])
    res["ten_crop"] = dict(centre=centre, ten=ten, seconds=time.perf_counter() - t0)
    res["small"] = relu_vs_tanh(lab, cfg.seeds, cfg.small_epochs)
    return res


def ratio_text(relu: list, tanh: list, epochs: int, target: float) -> str:
    """Epochs to `target` per activation, tanh/ReLU ratio (the paper's 6x) and a verdict on the paired
    differences. A run that never got there counts as `epochs`, so its ratio is a bound."""
    reached = lambda xs: f"{sum(x is not None for x in xs)}/{len(xs)}"  # noqa: E731
    if not any(r is not None for r in relu):
        return (f"ReLU never reached {target:.0%} training error in {plural(epochs, 'epoch')} "
                f"(tanh: {reached(tanh)} seeds did): inconclusive at this scale")
    pairs = [(r, float(epochs) if t is None else t) for r, t in zip(relu, tanh) if r is not None]
    bound = any(t is None for r, t in zip(relu, tanh) if r is not None)
    m, s = mean_sd([t / max(r, 1e-9) for r, t in pairs])
    th = pm([t for t in tanh if t is not None], 1, 1) if any(t is not None for t in tanh) else "never"
    return (f"epochs to {target:.0%} train error: ReLU {pm([r for r, _ in pairs], 1, 1)} ({reached(relu)} seeds), "
            f"tanh {th} ({reached(tanh)} seeds); tanh/ReLU {'>= ' if bound else ''}{m:.2f}x ± {s:.2f} "
            f"({verdict([t - r for r, t in pairs])})")


def claims(a: dict, cfg) -> dict:
    v = a["variants"]
    base = v["baseline"]
    weak = mean_sd(base["val"])[0] < a["chance"] + 0.10

    def diff_claim(alt: str, what: str) -> tuple:
        diffs = [b - x for b, x in zip(base["val"], v[alt]["val"])]
        verdict_ = WEAK if weak else verdict(diffs)
        text = (f"val accuracy {pm(base['val'])}% with {what} vs {pm(v[alt]['val'])}% without: "
                f"{pm(diffs, unit=' points')} ({verdict_})")
        return text, f"flowers val top-1, paired by seed; {cfg.scale}", v[alt]["seconds"]

    out = {}
    r, t = base["epochs_to_target"], v["tanh"]["epochs_to_target"]
    sm = a["small"]
    small_text = ratio_text([x["epochs_to_target"] for x in sm["runs"]["relu"]],
                            [x["epochs_to_target"] for x in sm["runs"]["tanh"]], sm["epochs"], sm["target"])
    out["relu"] = (f"paper net: {ratio_text(r, t, cfg.epochs, cfg.target_error)}. 4-layer net at 32px: {small_text}",
                   f"training error per epoch (running, with augmentation), interpolated to the target; 4-layer net: "
                   f"flowers downsampled to 32x32 (no CIFAR-10 offline), SGD lr {SMALL_LR} for both, "
                   f"{plural(sm['epochs'], 'epoch')}, {sm['n_train']} images; paper net: {cfg.scale}",
                   v["tanh"]["seconds"] + sm["seconds"])
    out["lrn"] = diff_claim("no_lrn", "LRN")
    out["pool"] = diff_claim("pool_2_2", "3/2 pooling (vs 2/2)")
    out["pca"] = diff_claim("no_pca", "PCA lighting")
    out["groups"] = diff_claim("one_group", "two groups (vs one at the same width)")
    gap_d = [tr - va for tr, va in zip(base["train_eval"], base["val"])]
    gap_n = [tr - va for tr, va in zip(v["no_dropout"]["train_eval"], v["no_dropout"]["val"])]
    verdict_ = WEAK if weak else verdict([n - d for n, d in zip(gap_n, gap_d)])
    out["dropout"] = (f"train-val gap {pm(gap_d, unit=' points')} with dropout vs {pm(gap_n, unit=' points')} "
                      f"without ({verdict_})",
                      f"train accuracy in eval mode (centre crop) minus val accuracy; {cfg.scale}",
                      v["no_dropout"]["seconds"])
    tc = a["ten_crop"]
    d = [x - c for x, c in zip(tc["ten"], tc["centre"])]
    out["ten_crop"] = (f"val accuracy {pm(tc['centre'])}% centre crop vs {pm(tc['ten'])}% 10-crop: "
                       f"{pm(d, unit=' points')} ({verdict(d)})",
                       f"alexnet.evaluate on the baseline models; {cfg.scale}", tc["seconds"])
    return out


def markdown(a: dict, cfg) -> list[str]:
    v = a["variants"]
    md = [f"## 3. Ablations on the flowers ({secs(a['seconds'])})", "", f"![ablations]({PNG})", "",
          f"Chance (largest class): {a['chance']:.1%}. Baseline = the paper's choices; each row changes one.", "",
          "| variant | val top-1 % (mean ± sd) | per seed | train acc % (running) | "
          f"epochs to {cfg.target_error:.0%} train error | time |", "|---|---:|---|---:|---|---:|"]
    for name, r in v.items():
        per = ", ".join(f"{x:.3f}" for x in r["val"])
        ett = ", ".join("-" if e is None else f"{e:.1f}" for e in r["epochs_to_target"])
        md.append(f"| {name} | {pm(r['val'])} | {per} | {pm(r['train'])} | {ett} | {secs(r['seconds'])} |")
    for name in ("baseline", "no_dropout"):
        md.append("")
        md.append(f"{name}: train accuracy in eval mode {pm(v[name]['train_eval'])}% vs val {pm(v[name]['val'])}%.")
    tc = a["ten_crop"]
    md += ["", f"10-crop on the baseline: centre {', '.join(f'{x:.3f}' for x in tc['centre'])}; "
           f"10-crop {', '.join(f'{x:.3f}' for x in tc['ten'])}."]
    sm = a["small"]
    md += ["", f"4-layer CIFAR-style net (3 conv + 1 fc) on the flowers downsampled to 32x32, {sm['n_train']} "
           f"training images, SGD lr {SMALL_LR} momentum 0.9 batch 64, {plural(sm['epochs'], 'epoch')} (the paper "
           "tuned each network's learning rate; this uses one for both):", "",
           f"| activation | epochs to {sm['target']:.0%} train error, per seed | final train error % |", "|---|---|---:|"]
    for act, runs in sm["runs"].items():
        ett = ", ".join("never" if r["epochs_to_target"] is None else f"{r['epochs_to_target']:.1f}" for r in runs)
        md.append(f"| {act} | {ett} | {pm([1 - r['history'][-1]['train_acc'] for r in runs])} |")
    r = RECIPES[cfg.recipe]
    md += ["", f"Recipe `{cfg.recipe}`: {r['optimizer']}, {r['schedule']} schedule, lr "
           f"{cfg.lr if cfg.lr is not None else r['lr']['scratch']:g}, weight decay {r['weight_decay']:g}."]
    if cfg.recipe != "paper":
        md.append("The paper's recipe (`--recipe paper`: SGD, lr 0.01, momentum 0.9, weight decay 5e-4) left the "
                  "paper net at 80px, width 0.25 at chance accuracy for 6 epochs in a trial on 2 CPU cores, so "
                  "short runs use AdamW with one-cycle; every variant gets the same recipe.")
    md += ["The paper's two-group comparison was against a one-GPU net with half the conv kernels; here both "
           "nets have the same width, so `one_group` has more conv2/4/5 weights than `baseline`.",
           "Training error here is the running error over each epoch, with dropout and augmentation on, "
           "as the paper's Figure 1 plots it; the crossing epoch is interpolated between epoch ends."]
    return md


def figure(a: dict, cfg, images):
    """Left: val accuracy per variant (bars: mean ± sd, dots: seeds). Right: training error curves, ReLU vs tanh."""
    fig = new_figure(9.5, 3.6, dpi=80)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(1.3, 1))
    names = list(a["variants"]) + ["10-crop"]
    vals = [a["variants"][n]["val"] for n in a["variants"]] + [a["ten_crop"]["ten"]]
    for j, v in enumerate(vals):
        m, s = mean_sd(v)
        ax1.bar(j, m * 100, yerr=s * 100, color="#3b6fb6" if j else "#66a182", alpha=0.7, capsize=3)
        ax1.scatter([j] * len(v), np.asarray(v) * 100, color="k", s=8, zorder=3)
    ax1.axhline(a["chance"] * 100, color="0.5", linestyle=":", label="chance")
    ax1.set_xticks(range(len(names)), names, rotation=35, fontsize=8, ha="right")
    ax1.set_ylabel("val top-1 %")
    ax1.set_title(f"one change at a time ({cfg.size}px, width {cfg.width:g})", fontsize=10)
    ax1.legend(fontsize=8)
    for name, colour in (("baseline", "#d1495b"), ("tanh", "#3b6fb6")):
        for i, curve in enumerate(a["variants"][name]["curves"]):
            ax2.plot(range(1, len(curve) + 1), np.asarray(curve) * 100, color=colour, alpha=0.8, marker=".",
                     label=f"paper net, {'ReLU' if name == 'baseline' else 'tanh'}" if i == 0 else None)
    for act, colour in (("relu", "#d1495b"), ("tanh", "#3b6fb6")):
        for i, r in enumerate(a["small"]["runs"][act]):
            e = [1 - h["train_acc"] for h in r["history"]]
            ax2.plot(range(1, len(e) + 1), np.asarray(e) * 100, color=colour, linestyle="--", alpha=0.8, marker=".",
                     label=f"4-layer 32px, {act}" if i == 0 else None)
    ax2.axhline(cfg.target_error * 100, color="#d1495b", linestyle=":", linewidth=0.8)
    ax2.axhline(a["small"]["target"] * 100, color="0.3", linestyle=":", linewidth=0.8)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("training error %")
    ax2.set_title("ReLU vs tanh", fontsize=10)
    ax2.legend(fontsize=7)
    return figure_to_image(fig)
