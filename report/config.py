"""What the report runs and what it checks: `PaperConfig`, the ablation variants and the paper's claims."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from report.stats import plural


# One option changed at a time; `baseline` is the paper's network (ReLU, LRN, 3/2 pooling, dropout 0.5,
# PCA lighting, two groups). Values are alexnet.train.TrainConfig fields.
VARIANTS = {
    "baseline": {},
    "tanh": dict(activation="tanh"),
    "no_lrn": dict(lrn=False),
    "pool_2_2": dict(pool=(2, 2)),
    "no_dropout": dict(dropout=0.0),
    "no_pca": dict(pca_aug=False),
    "one_group": dict(groups=1),
}

# The paper's claims, in table order, by the section that measures them: id -> [claim, what the paper
# says]. Data, so it lives in paper_claims.json beside this file. Tests check every row is written.
CLAIMS_BY_SECTION: dict[str, dict[str, list[str]]] = json.loads(
    (resources.files("report") / "paper_claims.json").read_text(encoding="utf-8"))
# One committed CPU run of the whole report, shipped with the package (the About tab shows it until
# `alexnet-report` has written the user's own reports/paper.json).
EXAMPLE = Path(str(resources.files("report") / "example"))
SECTIONS = tuple(CLAIMS_BY_SECTION)                    # the order of paper.md
CLAIMS = {cid: claim for claims in CLAIMS_BY_SECTION.values() for cid, claim in claims.items()}
SECTION_CLAIMS = {section: tuple(claims) for section, claims in CLAIMS_BY_SECTION.items()}


@dataclass
class PaperConfig:
    """What `make_report` runs. Defaults are the full-size settings (a GPU); `quick()` is the test size."""
    out: str = "reports"
    data: str | None = None            # image folder; None: alexnet.data.find_data_dir's search
    size: int = 227                    # crop fed to the paper net
    image_size: int | None = None      # decode size; None: size * 256 / 227, the paper's ratio
    width: float = 1.0                 # channel multiplier of the paper net
    epochs: int = 30
    seeds: int = 3
    limit: int | None = None           # images used (stratified); None: all
    batch_size: int = 128
    recipe: str = "modern"             # alexnet.train.RECIPES; see the report for why not 'paper'
    lr: float | None = None            # None: the recipe's
    target_error: float = 0.5          # ReLU vs tanh: epochs until the paper net's training error <= this
    small_epochs: int = 30             # the 4-layer CIFAR-style net
    queries: int = 5                   # neighbours: query images per class
    k: int = 6                         # neighbours per query
    only: tuple[str, ...] = SECTIONS
    device: str = "auto"
    argv: list[str] = field(default_factory=list)   # the command line, for the report

    @property
    def decode_size(self) -> int:
        return self.image_size or max(self.size, round(self.size * 256 / 227))

    @property
    def scale(self) -> str:
        """The training settings in one phrase, for the 'how obtained' column."""
        return (f"{self.size}px, width {self.width:g}, {plural(self.epochs, 'epoch')}, {plural(self.seeds, 'seed')}, "
                f"{'all' if self.limit is None else self.limit} images, recipe {self.recipe}")


def quick(**overrides) -> PaperConfig:
    """Tiny everything: every section end to end in seconds (the tests' size)."""
    base = dict(size=67, width=0.125, epochs=1, seeds=2, limit=30, batch_size=8, lr=3e-3, small_epochs=1,
                target_error=0.5)
    return PaperConfig(**{**base, **overrides})


def from_payload(payload: dict) -> PaperConfig:
    """The config a paper.json was made with."""
    return PaperConfig(**{**payload["config"], "only": tuple(payload["config"]["only"])})

