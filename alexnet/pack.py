"""The flowers pack: a few hundred credited flower photos shipped as ONE file, so every tab works offline.

    d = alexnet.data.decode_folder(PACK_FILE)   # a Decoded, like a decoded folder: (N, 3, 256, 256) uint8
    pack = read_pack()                     # classes, files, credits; pack.jpeg(i) is one photo's original bytes

The pack is `assets/flowers_pack.safetensors` (arrays only: the photos' original JPEG bytes laid end to
end, their offsets and labels) and `assets/flowers_pack.json` (classes, relative file names, each
photo's CC-BY credit, how it was picked and the command that rebuilds it). The photos are copied byte
for byte from the prepared 256x256 flower folder, so a photo decodes to exactly the pixels the full set
gives it, and a model's features on the pack equal its features on those files.

They are the shipped flowers model's held-out photos (never trained on), the same number per class,
picked by a seeded shuffle: a map of the pack shows how the model sees photos it has not memorised.

Rebuild (needs the full prepared folder, e.g. ../shared/data/flower_photos_256):

    python -m alexnet.pack --data DIR [--per-class 100]
"""
from __future__ import annotations

import argparse
import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from alexnet.compact import SHIPPED
from alexnet.errors import UserError
from alexnet.files import ASSETS, atomic_write_bytes, atomic_write_text, sha256_file
from alexnet.images import PREPARE_SIZE

PACK_FILE = ASSETS / "flowers_pack.safetensors"
FORMAT = "alexnet-explainer/flowers-pack/1"
PER_CLASS = 100                      # 500 photos: 7.7 MB of JPEG, enough for a map, neighbours and a fine-tune
FULL_SET = 3_667                     # photos in TensorFlow's flower_photos (the 218 MB download)
REBUILD = "python -m alexnet.pack --data DIR"
LICENCE = "https://creativecommons.org/licenses/by/2.0/"


@dataclass(frozen=True)
class Pack:
    """What the sidecar says, and the arrays: photo i is jpeg bytes offsets[i]:offsets[i+1]."""
    path: Path
    classes: list[str]
    files: list[str]                 # relative names, "roses/10503217854_e66a804309.jpg"
    credits: list[str]               # "Name - https://www.flickr.com/photos/...", one per photo
    labels: np.ndarray               # (N,) int64
    offsets: np.ndarray              # (N + 1,) int64
    blob: np.ndarray                 # (total bytes,) uint8
    key: str                         # names caches built on the pack (a hash of its bytes)

    def __len__(self) -> int:
        return len(self.files)

    def jpeg(self, i: int) -> bytes:
        return self.blob[self.offsets[i]:self.offsets[i + 1]].tobytes()

    def data_key(self, size: int | None = None) -> str:
        """`Decoded.key` of the pack decoded at `size`: names the feature passes and maps made on it."""
        return f"pack-{self.key}-{size or PREPARE_SIZE}"

    def credit(self, i: int) -> str:
        """'daisy, by Name' (the photographer, as CC-BY asks)."""
        return f"{self.classes[int(self.labels[i])]}, by {self.credits[i].split(' - ')[0]}"

    @property
    def describe(self) -> str:
        return (f"flowers pack: {len(self)} of the {FULL_SET:,} photos ({len(self) // max(len(self.classes), 1)} "
                f"per class, held out from the shipped model's training)")


def is_pack(path) -> bool:
    return Path(path).suffix == ".safetensors" and Path(path).with_suffix(".json").is_file()


@functools.lru_cache(maxsize=2)
def read_pack(path: str | Path = PACK_FILE) -> Pack:
    """The pack at `path` (default: the shipped one); a UserError naming the fix when it is missing."""
    path = Path(path)
    side = path.with_suffix(".json")
    if not (path.is_file() and side.is_file()):
        raise UserError(f"the flowers pack {path.name} is missing from {path.parent}; reinstall the package, "
                        f"or rebuild it with `{REBUILD}`")
    meta = json.loads(side.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise UserError(f"{side.name} is not a flowers pack ({meta.get('format')!r}, expected {FORMAT!r})")
    a = load_file(str(path))
    return Pack(path, meta["classes"], meta["files"], meta["credits"], a["labels"].astype(np.int64),
                a["offsets"].astype(np.int64), a["jpeg"], sha256_file(path)[:24])


# ---------------------------------------------------------------- building it (a maintainer's command)

def read_credits(license_txt: Path) -> dict[str, str]:
    """'daisy/123_n.jpg CC-BY by Name - https://...' lines of the dataset's LICENSE.txt -> {file: 'Name - url'}."""
    out = {}
    for line in license_txt.read_text(encoding="utf-8").splitlines():
        file, sep, credit = line.partition(" CC-BY by ")
        if sep:
            out[file.strip()] = credit.strip()
    return out


def pick(held_out: list[str], classes: list[str], credits: dict[str, str], per_class: int, seed: int = 0) -> list[str]:
    """`per_class` credited held-out files of each class, by a seeded shuffle, in class then name order."""
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes:
        files = sorted(f for f in held_out if f.startswith(f"{c}/") and f in credits)
        if len(files) < per_class:
            raise UserError(f"only {len(files)} credited held-out photos of {c!r}; ask for --per-class {len(files)}")
        order = torch.randperm(len(files), generator=g)[:per_class].sort().values
        chosen += [files[i] for i in order.tolist()]
    return chosen


def build(data: Path, per_class: int = PER_CLASS, out: Path = PACK_FILE, seed: int = 0) -> Pack:
    """Copy the picked photos' bytes from `data` into the pack and write its sidecar; both land whole."""
    model = json.loads(SHIPPED.with_suffix(".json").read_text())
    license_txt = data / "LICENSE.txt"
    if not license_txt.is_file():
        raise UserError(f"{license_txt} is missing: only credited photos can be shipped")
    credits = read_credits(license_txt)
    files = pick(model["held_out_files"], model["classes"], credits, per_class, seed)
    blobs = [(data / f).read_bytes() for f in files]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    arrays = dict(jpeg=np.frombuffer(b"".join(blobs), dtype=np.uint8), offsets=offsets,
                  labels=np.array([model["classes"].index(f.split("/")[0]) for f in files], dtype=np.int64))
    atomic_write_bytes(out, lambda tmp: save_file(arrays, tmp))
    side = dict(format=FORMAT, classes=model["classes"], files=files, credits=[credits[f] for f in files],
                picked=f"{per_class} per class of the shipped model's held-out photos ({SHIPPED.name}), seeded "
                       f"shuffle (seed {seed}); bytes copied unchanged from the prepared 256x256 folder",
                licence=LICENCE, source="TensorFlow flower_photos, CC-BY 2.0 by their Flickr photographers",
                rebuild_command=f"{REBUILD} --per-class {per_class}")
    atomic_write_text(out.with_suffix(".json"), json.dumps(side, indent=1, ensure_ascii=False) + "\n")
    read_pack.cache_clear()
    return read_pack(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m alexnet.pack",
                                 description="Build assets/flowers_pack.safetensors (+ .json credits) from the full "
                                             "prepared flower folder: the shipped model's held-out photos, N per class.")
    ap.add_argument("--data", type=Path, required=True, help="the prepared flower_photos_256 folder (with LICENSE.txt)")
    ap.add_argument("--per-class", type=int, default=PER_CLASS, help=f"photos per class (default {PER_CLASS})")
    ap.add_argument("--out", type=Path, default=PACK_FILE, help="where to write the pack (default: the shipped one)")
    args = ap.parse_args(argv)
    try:
        pack = build(args.data, args.per_class, args.out)
    except UserError as e:
        raise SystemExit(str(e))
    print(f"{pack.path}: {len(pack)} photos, {pack.path.stat().st_size / 1e6:.1f} MB, classes {', '.join(pack.classes)}")


if __name__ == "__main__":
    main()
