"""Rebuild assets/flowers_map.safetensors (`python -m viz.fc7_map`; the map's format is viz.fc7_map).

The shipped flowers model's fc7 over the shipped flowers pack, PCA + UMAP, fitted once and saved
beside the model, so the Embeddings tab opens drawn on a fresh install with no network.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from alexnet import data as D
from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.files import sha256_file
from alexnet.pack import PACK_FILE
from viz.embedding import fc7_features, fit_map
from viz.fc7_map import SHIPPED_MAP, Map, save_map


def build_shipped(out: Path = SHIPPED_MAP) -> Map:
    """The shipped flowers model's fc7 map of the shipped flowers pack, fitted and saved beside the model."""
    t0 = time.perf_counter()
    model, meta = W.load(SHIPPED)
    d = D.decode_folder(PACK_FILE)
    feats = fc7_features(model.eval(), d.images, meta["mean"], meta["std"], meta["input_size"], cache=False)
    m = fit_map(feats, d.labels.numpy(), d.classes, seed=0)
    m.info.update(model=SHIPPED.name, model_sha256=sha256_file(SHIPPED), data_key=d.key,
                  data=f"flowers pack ({len(d.paths)} photos)", seconds=round(time.perf_counter() - t0, 1),
                  rebuild_command="python -m viz.fc7_map")
    save_map(out, m)
    return m


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m viz.fc7_map",
                                 description="Rebuild assets/flowers_map.safetensors: the shipped flowers model's fc7 "
                                             "map (PCA + UMAP) of the shipped flowers pack, so Embeddings opens drawn.")
    ap.add_argument("--out", type=Path, default=SHIPPED_MAP, help="(default: the shipped one)")
    args = ap.parse_args(argv)
    m = build_shipped(args.out)
    print(f"{args.out}: {len(m.coords)} points, {args.out.stat().st_size / 1e6:.2f} MB, {m.info['seconds']} s")


if __name__ == "__main__":
    main()
