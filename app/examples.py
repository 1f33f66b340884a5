"""The example photos the Classify tab offers, and how the flower ones were picked.

Two kinds, shown apart:
- **Flowers the shipped model never trained on**: for each of its classes, the first photo (in file-name
  order) of the held-out files its sidecar lists, whatever the model answers for it. They are copied
  unchanged from the TensorFlow flower photos (256 px, CC-BY 2.0 by their Flickr photographers) into
  `assets/examples/`, with `examples.json` naming each file's true class and credit. Rebuild with
  `python -m app.examples --data DIR` after retraining the shipped model (its held-out files change).
- **Not flowers**, shipped by our dependencies: matplotlib's `grace_hopper.jpg` (US Navy, public
  domain) and scikit-learn's `flower.jpg` and `china.jpg` (CC BY 2.0, credited in their README). A
  5-class model still names a flower for them; the banner says why.
"""
from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.errors import UserError
from alexnet.pack import read_credits

FOLDER = W.ASSETS / "examples"
INDEX = FOLDER / "examples.json"


@dataclass(frozen=True)
class Example:
    path: str              # the file the gallery shows and the upload receives
    label: str             # what it shows: the true class for the flowers
    credit: str            # photographer and source, as the licence asks


def flower_examples() -> list[Example]:
    """The held-out flower photos shipped in assets/examples/ (empty if the folder is missing)."""
    if not INDEX.is_file():
        return []
    rows = json.loads(INDEX.read_text())["photos"]
    return [Example(str(FOLDER / r["file"]), r["class"], r["credit"])
            for r in rows if (FOLDER / r["file"]).is_file()]


def other_examples() -> list[Example]:
    """Photos that are not flowers, found inside matplotlib and scikit-learn if they are installed."""
    found = []
    try:
        import matplotlib
        found.append((Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
                      "Grace Hopper", "US Navy, public domain (matplotlib sample data)"))
    except ImportError:
        pass
    try:
        import sklearn.datasets
        d = Path(sklearn.datasets.__file__).parent / "images"
        found += [(d / "flower.jpg", "another flower", "CC BY 2.0 by vultilion (scikit-learn sample images)"),
                  (d / "china.jpg", "a pagoda", "CC BY 2.0 by danielbuechele (scikit-learn sample images)")]
    except ImportError:
        pass
    return [Example(str(p), label, credit) for p, label, credit in found if p.is_file()]


def credits_line(examples: list[Example]) -> str:
    """One line of Markdown under the gallery: who took each flower photo."""
    return "Flower photos CC-BY 2.0: " + "; ".join(
        f"{e.label} by {e.credit.split(' - ')[0]}" for e in examples) + "."


# ---------------------------------------------------------------- picking them (a maintainer's command)

def pick(data: Path, sidecar: dict) -> list[dict]:
    """For each class of the model, its first held-out file by name, with the photographer's credit."""
    credits = read_credits(data / "LICENSE.txt") if (data / "LICENSE.txt").is_file() else {}
    rows = []
    for cls in sidecar["classes"]:
        held = sorted(f for f in sidecar.get("held_out_files", []) if f.startswith(f"{cls}/"))
        if not held:
            raise UserError(f"the model's sidecar lists no held-out photo of {cls!r}: retrain it with a validation split")
        file = held[0]
        if not (data / file).is_file():
            raise UserError(f"{data / file} is missing: point --data at the folder the model was trained on")
        if file not in credits:
            raise UserError(f"no credit for {file} in {data / 'LICENSE.txt'}: only credited photos can be shipped")
        rows.append({"class": cls, "source": file, "file": file.replace("/", "_"), "credit": credits[file]})
    return rows


def write(rows: list[dict], data: Path, folder: Path = FOLDER) -> None:
    """Copy the picked photos unchanged and write examples.json; each file lands whole or not at all."""
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        W.atomic_write_bytes(folder / r["file"], lambda tmp, src=data / r["source"]: shutil.copyfile(src, tmp))
    index = {"picked": "the first held-out photo of each class, by file name, whatever the model answers",
             "model": SHIPPED.name, "licence": "https://creativecommons.org/licenses/by/2.0/", "photos": rows}
    W.atomic_write_text(folder / INDEX.name, json.dumps(index, indent=1, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m app.examples",
                                 description="Copy one held-out photo per class of the shipped flowers model into "
                                             "assets/examples/, with its photographer's credit (run after retraining it).")
    ap.add_argument("--data", type=Path, required=True, help="the flower photo folder the model was trained on")
    args = ap.parse_args(argv)
    sidecar = json.loads(SHIPPED.with_suffix(".json").read_text())
    try:
        rows = pick(args.data, sidecar)
    except UserError as e:
        raise SystemExit(str(e))
    write(rows, args.data)
    for r in rows:
        print(f"{r['class']:>10}: {r['file']}  ({r['credit']})")


if __name__ == "__main__":
    main()
