"""The paper's five tricks (section 3-4: ReLU, LRN, overlapping pooling, dropout, data augmentation) on one photo.

Each view takes the model first (so the app runs it through its one owner of model work) and returns a
`Trick`: a picture, the numbers behind it, and a paragraph with this photo's values. The report's measured
verdict on each claim is added by the caller (report floor above this one).

    t = activations(model, x)                        # conv1's pre-activations through none / ReLU / tanh
    t = lrn(model, x)                                 # conv1 before and after LRN, the formula with its numbers
    t = pooling(model, x)                             # pool 3/2 against 2/2 on the map pool1 reads
    t = dropout(model, x, classes, generator)         # 10 dropout masks on fc6 and the top-1 they give
    t = augmentation(photo, size, stats, generator)   # the paper's crops, flips and PCA lighting

`x` is one normalised photo (1, 3, S, S). Randomness comes only from the generator passed in.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from alexnet.data import pca_lighting
from alexnet.model import LocalResponseNorm
from alexnet.shapes import out_side
from viz.formula import windows
from viz.plots import figure_to_image, image_grid, new_figure

# The paper's LRN constants (section 3.3) for a model built without LRN, so the view still has something to show.
PAPER_LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
TRICKS = ("relu", "lrn", "pool", "dropout", "augmentation")   # the order of the tab
# (Each trick's title, section and reason are UI text: app/locales, keys trick_<name>.)


@dataclass
class Trick:
    name: str                  # one of TRICKS
    picture: Image.Image
    numbers: dict = field(default_factory=dict)   # what was measured on this photo (tests check these)
    words: dict = field(default_factory=dict)     # the values the paragraph about it needs, ready to format
    # The paragraph itself is the app's (app/locales, trick_<name>_text, in the visitor's language).


def _conv1(model, x: torch.Tensor) -> torch.Tensor:
    """conv1's pre-activations (96, 55, 55) of one photo: the Conv2d alone, before any ReLU."""
    with torch.no_grad():
        return model.param_layer("conv1")(x)[0]            # (1, C, H, W) -> (C, H, W)


def _busiest(a: torch.Tensor, n: int) -> list[int]:
    """The n channels of a (C, H, W) map with the largest mean after rectification."""
    return a.clamp_min(0).mean((1, 2)).topk(n).indices.tolist()


def _row_figure(rows: list[tuple[str, list[np.ndarray]]], col_titles: list[str], cmap: str, symmetric: bool):
    """A grid of maps: one row per variant, one column per channel, each channel on one colour scale.
    One channel only: the variants side by side instead, titled "<variant>, <channel>"."""
    one = len(col_titles) == 1
    n_r, n_c = (1, len(rows)) if one else (len(rows), len(col_titles))
    fig = new_figure(2.4 * n_c + 0.6, 2.3 * n_r + 0.3)
    axes = fig.subplots(n_r, n_c, squeeze=False)
    for j, title in enumerate(col_titles):
        vmax = max(float(np.abs(r[1][j]).max()) for r in rows) or 1.0
        for i, (label, maps) in enumerate(rows):
            ax = axes[0][i] if one else axes[i][j]
            ax.imshow(maps[j], cmap=cmap, vmin=-vmax if symmetric else 0, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            if one:
                ax.set_title(f"{label}, {title}", fontsize=10)
                continue
            if i == 0:
                ax.set_title(title, fontsize=10)
            if j == 0:
                ax.set_ylabel(label, fontsize=11)
    return figure_to_image(fig)


# ---------------------------------------------------------------- ReLU vs tanh vs none (section 3.1)
def activations(model, x: torch.Tensor, channels: int = 4) -> Trick:
    """conv1's pre-activations z of the photo drawn three ways: z, ReLU(z) = max(0, z) and tanh(z).

    Numbers: the share of units ReLU sets to 0, and on the rest the gradient each passes back
    (ReLU: exactly 1; tanh: 1 - tanh(z)^2, which is small where tanh saturates).
    """
    z = _conv1(model, x)                                     # (96, 55, 55)
    pick = _busiest(z, channels)
    relu, tanh = z.clamp_min(0), torch.tanh(z)
    pos = z > 0
    zeroed = float((~pos).float().mean())
    tanh_grad = float((1 - tanh[pos] ** 2).mean()) if pos.any() else float("nan")
    saturated = float((tanh.abs() > 0.9).float().mean())
    rows = [("none: z", [z[c].numpy() for c in pick]), ("ReLU: max(0, z)", [relu[c].numpy() for c in pick]),
            ("tanh(z)", [tanh[c].numpy() for c in pick])]
    picture = _row_figure(rows, [f"conv1 channel {c}" for c in pick], "RdBu_r", symmetric=True)
    words = dict(count=z.numel(), shape="x".join(map(str, z.shape)), zeroed=zeroed, saturated=saturated,
                 tanh_grad=tanh_grad)
    return Trick("relu", picture, words=words, numbers=dict(zeroed=zeroed, tanh_gradient=tanh_grad, tanh_saturated=saturated,
                                             channels=pick))


# ---------------------------------------------------------------- local response normalisation (section 3.3)
def _lrn_module(model) -> tuple[LocalResponseNorm, bool]:
    for m in model.features:
        if isinstance(m, torch.nn.LocalResponseNorm):
            return m, True
    return LocalResponseNorm(**PAPER_LRN), False


def lrn(model, x: torch.Tensor) -> Trick:
    """conv1's rectified maps before and after LRN, and one unit's division written out with its neighbours."""
    a = _conv1(model, x).clamp_min(0)                       # (96, 55, 55): what LRN reads
    module, own = _lrn_module(model)
    with torch.no_grad():
        b = module(a[None])[0]                              # (1, C, H, W) -> (C, H, W)
    c = _busiest(a, 1)[0]
    y, xx = divmod(int(a[c].argmax()), a.shape[2])
    n, alpha, beta, k = module.size, module.alpha, module.beta, module.k
    lo, hi = max(0, c - n // 2), min(a.shape[0], c + (n - 1) // 2 + 1)        # torch's window around c
    neigh = a[lo:hi, y, xx]
    divisor = (k + alpha / n * float((neigh ** 2).sum())) ** beta
    value = float(a[c, y, xx]) / divisor
    d_all = (a / b.clamp_min(1e-12)).where(a > 0, torch.ones_like(a))          # every unit's divisor
    rows = [("before LRN", [a[c].numpy()]), ("after LRN", [b[c].numpy()]), ("divisor", [d_all[c].numpy()])]
    picture = _row_figure(rows, [f"conv1 channel {c}"], "viridis", symmetric=False)
    terms = ", ".join(f"{v:.3g}" for v in neigh.tolist())
    words = dict(n=n, k=k, alpha=alpha, beta=beta, own=own, c=c, y=y, x=xx, a=float(a[c, y, xx]), lo=lo, last=hi - 1,
                 terms=terms, sumsq=float((neigh ** 2).sum()), divisor=divisor, b=value, dmin=float(d_all.min()),
                 dmax=float(d_all.max()))
    return Trick("lrn", picture, words=words, numbers=dict(channel=c, y=y, x=xx, a=float(a[c, y, xx]), divisor=divisor, b=value,
                                            b_module=float(b[c, y, xx]), max_divisor=float(d_all.max())))


# ---------------------------------------------------------------- overlapping pooling (section 3.4)
def _pool_input(model, x: torch.Tensor) -> torch.Tensor:
    """The (C, H, W) map the model's pool1 reads: conv1, its activation, and LRN if the model has it."""
    with torch.no_grad():
        h = x
        for m in model.features:
            if isinstance(m, torch.nn.MaxPool2d):
                return h[0].clone()                          # (1, C, H, W) -> (C, H, W)
            h = m(h)
    raise ValueError("the model has no max-pool")


def pooling(model, x: torch.Tensor) -> Trick:
    """Max-pool 3/2 (the paper's, overlapping) against 2/2 on the same map, and how often a maximum is shared."""
    m = _pool_input(model, x)                               # (96, 55, 55)
    c = _busiest(m, 1)[0]
    out = {}
    for kernel, stride in ((3, 2), (2, 2)):
        p, idx = F.max_pool2d(m[None], kernel, stride, return_indices=True)   # (1, C, h, w) each
        winners = idx[0].flatten(1)                                             # (C, h*w) flat input positions
        shared = float(np.mean([1 - w.unique().numel() / w.numel() for w in winners]))   # won more than once
        side = out_side(m.shape[1], kernel, stride, 0)
        out[(kernel, stride)] = dict(map=p[0], side=side, shared=shared)
    o, n = out[(3, 2)], out[(2, 2)]
    fig_maps = _row_figure([("input", [m[c].numpy()]), ("3/2 (paper)", [o["map"][c].numpy()]),
                            ("2/2", [n["map"][c].numpy()])], [f"channel {c}"], "viridis", symmetric=False)
    strips = [(f"{k}/{s_} windows on the first 23 pixels of a row", windows(min(m.shape[1], 23), k, s_, 0, rows=2))
              for k, s_ in ((3, 2), (2, 2))]
    w = max([s_.width for _, s_ in strips] + [fig_maps.width])
    picture = Image.new("RGB", (w, fig_maps.height + sum(s_.height + 24 for _, s_ in strips)), "white")
    picture.paste(fig_maps, (0, 0))
    g, y = ImageDraw.Draw(picture), fig_maps.height
    for label, strip in strips:
        g.text((4, y + 4), label, fill=(20, 20, 20))
        picture.paste(strip, (0, y + 20))
        y += strip.height + 24
    words = dict(h=m.shape[1], w=m.shape[2], out=o["side"]["out"], f32=o["side"]["formula"], f22=n["side"]["formula"],
                 dropped=bool(n["side"]["dropped"]), shared_32=o["shared"], shared_22=n["shared"])
    return Trick("pool", picture, words=words, numbers=dict(channel=c, side_32=o["side"]["out"], side_22=n["side"]["out"],
                                             shared_32=o["shared"], shared_22=n["shared"]))


# ---------------------------------------------------------------- dropout (section 4.2)
def dropout(model, x: torch.Tensor, classes: list[str], generator: torch.Generator, draws: int = 10,
            p: float | None = None) -> Trick:
    """fc6's units of the photo with `draws` random masks (each unit kept with probability 1 - p, the kept ones
    scaled by 1/(1-p) as in training), each run on through fc7 and fc8: how often the top-1 survives."""
    p = float(model.spec.dropout if p is None else p)
    act = torch.relu if model.spec.activation == "relu" else torch.tanh
    with torch.no_grad():
        pool5 = torch.flatten(model.avgpool(model.features(x)), 1)          # (1, C*6*6)
        fc6 = act(model.param_layer("fc6")(pool5))                           # (1, 4096)
        keep = (torch.rand((draws, fc6.shape[1]), generator=generator) >= p).float()   # (draws, 4096)
        dropped = fc6 * keep / (1 - p) if p < 1 else fc6 * 0                  # (draws, 4096)
        both = torch.cat([fc6, dropped])                                      # row 0: no dropout (test time)
        logits = model.param_layer("fc8")(act(model.param_layer("fc7")(both)))
    probs = logits.softmax(1)                                                 # (1 + draws, K)
    top1 = probs.argmax(1).tolist()
    base = top1[0]
    same = sum(t == base for t in top1[1:])
    show = probs[0].topk(min(5, len(classes))).indices.tolist()
    fig = new_figure(9.5, 3.4)
    ax_mask, ax_p = fig.subplots(1, 2, width_ratios=[1, 2.2])
    side = int(np.ceil(np.sqrt(keep.shape[1])))
    grid = np.zeros(side * side)
    grid[:keep.shape[1]] = keep[0].numpy()
    ax_mask.imshow(grid.reshape(side, side), cmap="gray", vmin=0, vmax=1)
    ax_mask.set_title(f"draw 1's mask on fc6 ({int(keep[0].sum()):,} of {keep.shape[1]:,} kept)", fontsize=9)
    ax_mask.set_xticks([]), ax_mask.set_yticks([])
    img = probs[:, show].numpy()                                              # (1 + draws, 5)
    ax_p.imshow(img, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax_p.set_xticks(range(len(show)), [classes[i] for i in show], fontsize=9)
    ax_p.set_yticks(range(1 + draws), ["no dropout"] + [f"draw {i + 1}" for i in range(draws)], fontsize=8)
    for i in range(1 + draws):
        for j in range(len(show)):
            ax_p.text(j, i, f"{img[i, j]:.0%}", ha="center", va="center", fontsize=7,
                      color="white" if img[i, j] < 0.5 else "black")
    ax_p.set_title("probability of this photo's top classes", fontsize=9)
    counts = {classes[t]: top1[1:].count(t) for t in dict.fromkeys(top1[1:])}
    words = dict(p=p, draws=draws, top=classes[base], agree=same, counts=", ".join(f"{k}: {v}" for k, v in counts.items()),
                 pmin=float(probs[1:, base].min()), pmax=float(probs[1:, base].max()), p0=float(probs[0, base]))
    return Trick("dropout", figure_to_image(fig), words=words, numbers=dict(top1=top1, agree=same, kept=keep.sum(1).tolist(),
                                                               probs=probs.tolist()))


# ---------------------------------------------------------------- data augmentation (section 4.1)
def augmentation(photo: Image.Image, size: int, stats: dict, generator: torch.Generator, n: int = 6,
                 pca_std: float = 0.1, exaggerate: float = 5.0) -> Trick:
    """The paper's augmentation of one photo: random `size` crops of its 256x256 version, mirrored at random,
    with PCA colour lighting along the data's RGB eigenvectors (`stats`: alexnet.data.rgb_stats).
    Row 1 at the paper's strength (std 0.1), row 2 the same draws `exaggerate` times stronger, to see the direction."""
    base = torch.from_numpy(np.array(photo.convert("RGB").resize((256, 256), Image.BILINEAR))).permute(2, 0, 1)
    base = base.float() / 255                                                     # (3, 256, 256) in 0-1
    room = 256 - size + 1
    ys = torch.randint(0, room, (n,), generator=generator).tolist()
    xs = torch.randint(0, room, (n,), generator=generator).tolist()
    flips = (torch.rand(n, generator=generator) < 0.5).tolist()
    crops = torch.stack([base[:, y:y + size, x:x + size] for y, x in zip(ys, xs)])  # (n, 3, size, size)
    crops = torch.where(torch.tensor(flips).view(n, 1, 1, 1), crops.flip(3), crops)
    alpha_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))
    state = alpha_gen.get_state()
    lit = pca_lighting(crops, stats["eigvals"], stats["eigvecs"], pca_std, alpha_gen).clamp(0, 1)
    alpha_gen.set_state(state)                                                    # the same alphas, stronger
    strong = pca_lighting(crops, stats["eigvals"], stats["eigvecs"], pca_std * exaggerate, alpha_gen).clamp(0, 1)
    tiles = (torch.cat([lit, strong]).permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)   # (2n, S, S, 3)
    picture = Image.fromarray(image_grid(tiles, cols=n, pad=4))
    positions = (256 - size + 1) ** 2
    grey = float(stats["eigvecs"][:, 0].abs().sum() / 3 ** 0.5)                  # |cos| of p_1 with (1, 1, 1)/sqrt(3)
    ev = ", ".join(f"{v:.4f}" for v in stats["eigvals"].tolist())
    vec = "; ".join("(" + ", ".join(f"{v:+.2f}" for v in col) + ")" for col in stats["eigvecs"].T.tolist())
    words = dict(n=n, size=size, positions=positions, flipped=sum(flips), pca_std=pca_std, exaggerate=exaggerate,
                 ev=ev, vec=vec, grey=grey, brightness=grey > 0.9)
    return Trick("augmentation", picture, words=words, numbers=dict(crops=list(zip(ys, xs)), flips=flips, positions=positions, grey=grey))
