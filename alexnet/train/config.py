"""What a training run is asked to do: `TrainConfig`, the recipes, and the checks that refuse a bad one early.

Every choice-valued setting has its one tuple of allowed values here (MODES, SCHEDULES,
OPTIMIZERS, INIT_CONV1, FREEZE_CHOICES); `check_config` refuses anything else with a
sentence that names the flag, before a minute is spent decoding images, and the CLI's
`choices=` come from the same tuples.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from alexnet import device as dev_
from alexnet import weights as W
from alexnet.augment import progressive_sizes
from alexnet.errors import UserError
from alexnet.images import PREPARE_SIZE
from alexnet.model import ARCHS, CONV_LAYERS

MODES = ("finetune", "scratch")
SCHEDULES = ("onecycle", "step", "constant")
OPTIMIZERS = ("sgd", "adamw")
INIT_CONV1 = ("none", "bvlc")
FREEZE_CHOICES = ("none",) + CONV_LAYERS + ("fc6", "fc7")
# The fine-tune depths a user picks from (the Retrain tab), shallowest and quickest first: --freeze's value
# and what trains. benchmarks/finetune_speed.py measures each on the flowers.
FINETUNE_DEPTHS = (
    ("fc7", "a new fc8 on the frozen network's fc7 features, computed once and cached: seconds"),
    ("conv5", "fc6, fc7 and a new fc8 on cached pool5 features: minutes"),
    ("conv2", "conv3 to fc8 on augmented images, every step through the network: the slowest"),
)

# Defaults per recipe; an explicit lr / weight_decay / label_smoothing in the config wins.
RECIPES = {
    # Paper section 5: SGD, batch 128, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10
    # when validation stopped improving (three times in ~90 epochs). Here: at each third of the run.
    "paper": dict(optimizer="sgd", lr=dict(scratch=0.01, finetune=0.01, head=0.01), weight_decay=5e-4,
                  label_smoothing=0.0, schedule="step"),
    # One-cycle (warm up 30%, cosine down) with AdamW and label smoothing 0.1.
    # 'head': fine-tuning fc8 alone (--freeze fc7), a linear model on fixed features, takes a larger step.
    "modern": dict(optimizer="adamw", lr=dict(scratch=5e-4, finetune=1e-3, head=1e-2), weight_decay=0.05,
                   label_smoothing=0.1, schedule="onecycle"),
    # modern + what makes from-scratch training fast on a CPU (benchmarks/train_scratch.py measures
    # each lever): random-resized crops, early epochs at low resolution (alexnet.augment), batch 32
    # (more steps per epoch on 3,000 images; a CPU is no faster per image at 64 or 128).
    "fast": dict(optimizer="adamw", lr=dict(scratch=5e-4, finetune=1e-3, head=1e-2), weight_decay=0.05,
                 label_smoothing=0.1, schedule="onecycle", crop="rrc", progressive=True,
                 batch_size=dict(scratch=32, finetune=128), epochs=dict(scratch=16, finetune=10)),
    # fast, cut to a lesson's three minutes from scratch (benchmarks/finetune_speed.py times it): the paper
    # network at 99 px for 3 epochs, batch 128. At 99 px the convolutions are cheap and a step's cost is
    # fc6-fc8 and AdamW over their 58M weights, whatever the batch, so a large batch sees the most photos
    # a second. Files are written once, at the end (three epochs' worth of ~1 GB writes would be 10 s).
    # It visibly learns (chance is 20% on five classes); the 16-epoch fast run is what a real result needs.
    "lesson": dict(optimizer="adamw", lr=dict(scratch=2e-3, finetune=1e-3, head=1e-2), weight_decay=0.05,
                   label_smoothing=0.1, schedule="onecycle", crop="rrc", progressive=False,
                   batch_size=dict(scratch=128, finetune=128), epochs=dict(scratch=3, finetune=10),
                   input_size=dict(scratch=99), save="end"),
}
DEFAULT_RECIPE = "fast"


class ConfigError(UserError):
    """A training setting that cannot work; the message says which flag and what to do."""


NEEDS_WEIGHTS = ("fine-tuning needs starting weights: pass --weights imagenet (downloads torchvision's "
                 "233 MB ImageNet AlexNet once), --weights CKPT.safetensors or --weights FILE.pth; "
                 "or train from scratch with --mode scratch")


@dataclass
class TrainConfig:
    data: str | None = None            # image folder or pack; None: alexnet.data.find_data's order
    arch: str = "paper"                # scratch: paper | torchvision (finetune: the weights decide)
    mode: str = "finetune"             # finetune | scratch
    weights: str | None = None         # finetune source for alexnet.weights.load; None = 'imagenet' if cached
    epochs: int | None = None          # None: the recipe's (fast: 16 scratch / 10 finetune; others 10)
    lr: float | None = None            # None: the recipe's default
    batch_size: int | None = None      # None: the recipe's (fast: 32 scratch, 128 fine-tuning; others 128, the paper's)
    recipe: str = DEFAULT_RECIPE       # fast | modern | paper  (see RECIPES)
    freeze: str = "fc7"                # finetune: layers up to and including this one stay fixed ('none' = none);
                                       # fc7: only a new fc8 trains, on cached fc7 features (seconds on a CPU)
    input_size: int | None = None      # None: the recipe's (lesson: 99 from scratch), else the source's / arch's
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    out: str | None = None             # checkpoint stem; None: cache_dir()/checkpoints/<data>-<arch>-<mode>-<time>
    resume: bool = False
    limit: int | None = None           # use at most this many images (stratified), for quick runs and tests
    activation: str = "relu"           # scratch model options, passed to alexnet.model.build
    lrn: bool | None = None
    pool: tuple[int, int] = (3, 2)
    dropout: float = 0.5
    groups: int | None = None
    width: float = 1.0
    pca_aug: bool = True               # the paper's PCA colour augmentation (full path only)
    pca_std: float = 0.1
    compile: bool = False              # torch.compile the trained module
    weight_decay: float | None = None
    label_smoothing: float | None = None
    momentum: float = 0.9
    schedule: str | None = None        # onecycle | step | constant (None: the recipe's)
    progressive: bool | None = None    # scratch: early epochs at lower sizes (None: the recipe's)
    min_size: int = 131                # smallest progressive size (pool5 is then 3x3)
    init_conv1: str = "none"           # scratch: 'bvlc' starts conv1 from BVLC ImageNet's and keeps it fixed
    feature_cache: bool | None = None  # None: on for CPU fine-tuning with every conv frozen
    mirror: bool | None = None         # features path: a mirrored view of each training image too (None: only
                                       # for --freeze conv5; it does not pay for fc8 alone, see finetune_speed)
    image_size: int = PREPARE_SIZE     # decode size: the paper's 256x256
    log_every: int = 10                # steps between progress reports
    max_steps: int | None = None       # stop after this many steps, keeping the full run's schedule (benchmarks);
                                       # the last checkpoint then covers a partial epoch
    extra: dict = field(default_factory=dict)

    @property
    def scratch(self) -> bool:
        return self.mode == "scratch"

    @property
    def recipe_values(self) -> dict:
        return RECIPES[self.recipe]

    @property
    def head_only(self) -> bool:
        """Fine-tuning fc8 alone: a linear model on the frozen network's fc7."""
        return not self.scratch and self.freeze == "fc7"

    @property
    def base_lr(self) -> float:
        if self.lr is not None:
            return self.lr
        lrs = self.recipe_values["lr"]
        return lrs.get("head", lrs["finetune"]) if self.head_only else lrs[self.mode]

    @property
    def save_at_end_only(self) -> bool:
        """Write the checkpoints once, after the last epoch (the best epoch's weights wait in memory)."""
        return self.recipe_values.get("save") == "end"

    @property
    def train_views(self) -> tuple[str, ...]:
        """What the frozen trunk sees of each training image on the features path."""
        mirror = self.mirror if self.mirror is not None else self.freeze == "conv5"
        return ("centre", "mirror") if mirror else ("centre",)

    @property
    def wd(self) -> float:
        return self.weight_decay if self.weight_decay is not None else self.recipe_values["weight_decay"]

    @property
    def smoothing(self) -> float:
        return self.label_smoothing if self.label_smoothing is not None else self.recipe_values["label_smoothing"]

    @property
    def lr_schedule(self) -> str:
        return self.schedule or self.recipe_values["schedule"]

    @property
    def crop(self) -> str:
        return self.recipe_values.get("crop", "fixed")


def resolve(cfg: TrainConfig) -> TrainConfig:
    """A copy with the recipe's defaults filled in for every setting left at None."""
    recipe = RECIPES.get(cfg.recipe, {})
    epochs = recipe.get("epochs", {}).get(cfg.mode, 10)
    batch = recipe.get("batch_size", {}).get(cfg.mode, 128)
    size = recipe.get("input_size", {}).get(cfg.mode)
    return replace(cfg, epochs=cfg.epochs if cfg.epochs is not None else epochs,
                   batch_size=cfg.batch_size if cfg.batch_size is not None else batch,
                   input_size=cfg.input_size if cfg.input_size is not None else size,
                   progressive=(cfg.progressive if cfg.progressive is not None
                                else bool(recipe.get("progressive")) and cfg.scratch))


def epoch_sizes(cfg: TrainConfig, size: int) -> list[int]:
    """The training input size of every epoch (validation is always at `size`)."""
    if not cfg.progressive or not cfg.scratch:
        return [size] * cfg.epochs
    return progressive_sizes(cfg.epochs, size, low=min(cfg.min_size, size))


def _choice(flag: str, value, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"--{flag} must be one of {', '.join(map(str, allowed))}, not {value!r}")


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings that cannot work before a minute is spent decoding."""
    cfg = resolve(cfg)
    _choice("mode", cfg.mode, MODES)
    _choice("recipe", cfg.recipe, tuple(RECIPES))
    _choice("arch", cfg.arch, ARCHS)
    _choice("freeze", cfg.freeze, FREEZE_CHOICES)
    _choice("schedule", cfg.lr_schedule, SCHEDULES)
    _choice("init-conv1", cfg.init_conv1, INIT_CONV1)
    _choice("optimizer (of the recipe)", cfg.recipe_values["optimizer"], OPTIMIZERS)
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ConfigError("--epochs and --batch-size must be at least 1")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), not {cfg.val_fraction}")
    if cfg.input_size is not None and cfg.input_size > cfg.image_size:
        raise ConfigError(f"--input-size {cfg.input_size} is larger than the decoded images ({cfg.image_size})")
    if cfg.limit is not None and cfg.limit < 2:
        raise ConfigError("--limit must be at least 2 images")
    if cfg.init_conv1 != "none" and (not cfg.scratch or cfg.arch != "paper" or cfg.width != 1.0):
        raise ConfigError("--init-conv1 bvlc needs --mode scratch --arch paper at width 1: BVLC's conv1 has 96 filters")
    if cfg.progressive and cfg.min_size < 67:
        raise ConfigError(f"--min-size {cfg.min_size}: below 67 px pool5 would be empty")
    if cfg.resume and not cfg.out:
        raise ConfigError("--resume needs --out: the checkpoint stem of the run to continue")
    try:
        dev_.pick(cfg.device)
    except (RuntimeError, ValueError) as e:   # e.g. --device cuda on a machine without one
        raise ConfigError(str(e)) from None
    if not cfg.scratch and cfg.weights is None and not W.imagenet_weights_path().exists():
        raise ConfigError(NEEDS_WEIGHTS)
    if cfg.weights not in (None, "imagenet") and not Path(cfg.weights).expanduser().exists():
        raise ConfigError(f"--weights {cfg.weights}: no such file")


def config_dict(cfg: TrainConfig) -> dict:
    """The config as the sidecar records it (JSON: the pool tuple as a list)."""
    d = asdict(cfg)
    d["pool"] = list(d["pool"])
    return d
