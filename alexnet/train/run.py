"""`train(config)`: the whole run, top to bottom - data, model, batch source, optimizer, epochs, files.

    result = train(TrainConfig(mode="scratch", epochs=16), progress=print, cancel=stop_event, pause=None)

Randomness: the split, the init and the new head come from `cfg.seed`; each epoch's order,
crops, flips and dropout masks from generators seeded by (seed, epoch), so a resumed run
repeats them exactly. torch's global RNG is never touched: the app trains in a thread
beside requests that draw their own random numbers.

Files: the full path writes its checkpoints at every epoch's end (minutes apart, so a crash loses
at most one epoch). The features path trains only the head, an epoch in a fraction of a second, so
it writes once, at the end: the last head, and the best epoch's head kept in memory until then
(a model's two files are ~0.5 GB of writes, which would otherwise be most of a second run's time);
so does a recipe that says save="end" (the three-minute lesson).
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from alexnet import data as D
from alexnet import device as dev_
from alexnet import weights as W
from alexnet.augment import step_work
from alexnet.model import use_generator

from . import dist as dist_
from .batches import FeatureSource, ImageSource
from .checkpoints import Stems, load_resume, save_epoch
from .config import ConfigError, TrainConfig, check_config, config_dict, epoch_sizes, resolve
from .loop import Cancelled, Loop, is_cancelled, make_optimizer, train_one_epoch, validate
from .progress import Phase, Progress, Reporter
from .surgery import build_model, frozen_layers, split_frozen, trains_on_features


@dataclass
class TrainResult:
    checkpoint: Path | None            # the last epoch's checkpoint (.safetensors)
    best_checkpoint: Path | None       # the best validation accuracy's checkpoint
    history: list[dict]                # per epoch: train_loss, train_acc, val_loss, val_acc, img_per_s, seconds
    cancelled: bool
    meta: dict                         # the sidecar of `checkpoint` (or of the run so far)
    phase_seconds: dict = field(default_factory=dict)   # where the wall time went (alexnet.train.progress)


def train(config: TrainConfig, progress=None, cancel=None, pause=None) -> TrainResult:
    """Train as `config` says. `progress(Progress)` gets every event (see alexnet.train.progress);
    `cancel` is a threading.Event or a callable returning True; it is checked every step (and
    while decoding and extracting features), and a cancelled run writes nothing new. `pause()`, if
    given, is called before every step and every batch of the feature pass: the app's server lets
    visitors' requests run first there (the run waits; it is not slowed otherwise).
    """
    cfg = resolve(config)
    check_config(cfg)
    dist = dist_.setup(cfg.device)
    try:
        return _run(cfg, progress if dist.main else None, cancel, dist, pause)
    except Cancelled:   # while decoding or extracting features: nothing new was written
        if progress is not None:
            progress(Progress(phase=Phase.DONE, epochs=cfg.epochs, eta_s=0.0))
        last, best = Stems.of(cfg, "data").existing() if cfg.out else (None, None)
        meta = W.read_meta(last) if last else {}
        return TrainResult(last, best, list(meta.get("history", [])), True, meta)
    finally:
        if dist.owns_group:
            torch.distributed.destroy_process_group()


def _data(cfg: TrainConfig, root: Path, dist: dist_.Dist, rep: Reporter, cancel, pause):
    """The folder decoded once (rank 0 first, the others read its cache), limited and split by seed."""
    def step(done, total):     # decoding can take minutes: a cancel stops it too (single process)
        rep.update(step=done, steps=total)
        if dist.world == 1 and is_cancelled(cancel):
            raise Cancelled
        if pause is not None:
            pause()
    decoded = dist.rank0_first(lambda: D.decode_folder(root, cfg.image_size, progress=step))
    if dist.main:
        for path, why in decoded.skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
    keep = D.stratified_subset(decoded.labels, cfg.limit, cfg.seed)
    tr, va = D.stratified_split(decoded.labels[keep], cfg.val_fraction, cfg.seed)
    return decoded, keep[tr], keep[va]


def _work_before(sizes: list[int], size: int, steps_per_epoch: int) -> list[float]:
    """Cumulative work before each step, in 227-px-step units: a step at 131 px costs about a third."""
    total = steps_per_epoch * len(sizes)
    out = [0.0]
    for st in range(total):
        out.append(out[-1] + step_work(sizes[min(st // steps_per_epoch, len(sizes) - 1)], size))
    return out


def _run(cfg: TrainConfig, progress, cancel, dist: dist_.Dist, pause=None) -> TrainResult:
    device = dist_.pick_device(cfg.device, dist)
    rep = Reporter(cfg.epochs, progress)
    root = D.find_data_dir(cfg.data)
    stems = Stems.of(cfg, root.stem if root.is_file() else root.name)   # a folder, or the flowers pack file
    if not cfg.resume and dist.main and stems.last_file.exists():
        raise ConfigError(f"{stems.last}.safetensors already exists: pass --resume to continue that run, "
                          f"or choose another --out")
    decoded, train_idx, val_idx = _data(cfg, root, dist, rep, cancel, pause)

    # The model, its frozen layers and where its batches come from.
    rep.update(phase=Phase.MODEL, step=0, steps=0)
    model, info = build_model(cfg, decoded.classes, torch.Generator().manual_seed(cfg.seed), decoded.images, train_idx)
    size, mean, std = int(info["input_size"]), info["mean"], info["std"]
    frozen = frozen_layers(cfg, model)
    sizes = epoch_sizes(cfg, size)
    model = dev_.prepare(model, device)
    use_features = trains_on_features(cfg, device)
    if use_features:
        def step(done, total):
            rep.update(phase=Phase.FEATURES, step=done, steps=total)
            if dist.world == 1 and is_cancelled(cancel):
                raise Cancelled
            if pause is not None:
                pause()
        trunk, head = split_frozen(model, cfg.freeze)
        source = dist.rank0_first(lambda: FeatureSource(trunk, head, decoded, train_idx, val_idx, info, device, cfg,
                                                        progress=step, model=model))
    else:
        source = ImageSource(model, decoded, train_idx, val_idx, info, device, cfg)
    net = source.net

    per_rank = len(train_idx) // dist.world
    steps_per_epoch = max(1, math.ceil(per_rank / cfg.batch_size))
    optimizer = make_optimizer(net.parameters(), cfg.recipe_values["optimizer"], cfg.base_lr, cfg.wd, cfg.momentum,
                               device)
    trained = net
    if dist.world > 1 or torch.distributed.is_initialized():
        trained = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        trained = torch.compile(trained)

    # Resume: weights, optimizer, step count and history from the last epoch's files.
    state, history, meta = dict(step=0, epoch=0, best=-math.inf), [], {}
    last_path = best_path = None
    if cfg.resume:
        state, meta = load_resume(stems, model, optimizer, decoded.classes, device)
        history = list(meta.get("history", []))
        last_path, best_path = stems.existing()

    loop = Loop(device=device, dist=dist, total_steps=steps_per_epoch * cfg.epochs, lr=cfg.base_lr,
                schedule=cfg.lr_schedule, label_smoothing=cfg.smoothing, log_every=max(1, cfg.log_every),
                max_steps=cfg.max_steps, cancel=cancel, step=state["step"], pause=pause)
    work = _work_before(sizes, size, steps_per_epoch)
    run_start, step_start = time.perf_counter(), state["step"]

    def train_report(**kw):
        done = work[kw["step"]] - work[step_start]
        eta = (time.perf_counter() - run_start) / max(done, 1e-9) * (work[-1] - work[kw["step"]])
        rep.update(phase=Phase.TRAIN, eta_s=eta, **kw)
    loop.report = train_report

    def epoch_meta(row: dict, epoch: int) -> dict:
        """The sidecar of the model as it stands after `epoch` (1-based), whose row is `row`."""
        return W.make_meta(
            model, decoded.classes, mean, std, source=info["source"], input_size=size,
            metrics=dict(val_top1=row["val_acc"], val_loss=row["val_loss"], train_top1=row["train_acc"],
                         train_loss=row["train_loss"], epoch=epoch),
            split_seed=cfg.seed, split=dict(val_fraction=cfg.val_fraction, limit=cfg.limit, data_key=decoded.key,
                                            n_train=len(train_idx), n_val=len(val_idx),
                                            val=val_idx.tolist()),   # indices into the decoded folder
            data=str(root), skipped=decoded.skipped, history=history[:epoch], config=config_dict(cfg), frozen=frozen,
            path="features" if use_features else "full", features_seconds=source.features_seconds,
            features_cached=source.features_cached, phase_seconds=dict(rep.seconds),
            train_state=dict(step=loop.step, epoch=epoch, epochs=cfg.epochs))

    cancelled, best_state = False, None
    for epoch in range(state["epoch"], cfg.epochs):
        if cfg.max_steps is not None and loop.step >= cfg.max_steps:
            break
        # Order, crops and flips from one generator, dropout masks from another (per rank): both
        # depend only on (seed, epoch), so a resumed run repeats them exactly.
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch)
        use_generator(model, torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch + 7919 * dist.rank))
        perm = torch.randperm(len(train_idx), generator=gen, device=device)[:per_rank * dist.world]
        mine = perm[dist.rank::dist.world]
        rep.update(epoch=epoch + 1, steps=loop.total_steps, step=loop.step, phase=Phase.TRAIN, size=sizes[epoch])
        t0 = time.perf_counter()
        try:
            row = train_one_epoch(trained, optimizer, source.train(mine, sizes[epoch], gen), steps_per_epoch, loop)
        except Cancelled:
            cancelled = True
            break
        rep.update(phase=Phase.VAL)
        row.update(validate(net, source.val(dist.rank, dist.world), device, dist))
        row.update(epoch=epoch + 1, step=loop.step, lr=optimizer.param_groups[0]["lr"],
                   seconds=time.perf_counter() - t0, size=sizes[epoch], wall_s=time.perf_counter() - run_start)
        history.append(row)
        # the epoch's numbers go out while the phase is still VAL: consumers key validation points on it
        rep.update(val_acc=row["val_acc"], img_per_s=row["img_per_s"], loss=row["train_loss"], acc=row["train_acc"])
        score = row["val_acc"] if row["val_acc"] is not None else -row["train_loss"]
        is_best = score > state["best"]
        state.update(step=loop.step, epoch=epoch + 1, best=max(state["best"], score))
        ending = epoch + 1 == cfg.epochs or (cfg.max_steps is not None and loop.step >= cfg.max_steps)
        at_end_only = use_features or cfg.save_at_end_only
        if is_best and at_end_only:           # the best weights wait in memory for the end (a head: MBs)
            best_state = ({k: v.detach().clone() for k, v in net.state_dict().items()}, epoch + 1)
        if dist.main and (ending or not at_end_only):
            rep.update(phase=Phase.SAVE)
            meta = epoch_meta(row, epoch + 1)
            last_path, best = save_epoch(stems, model, meta, state, optimizer, is_best)
            best_path = best or best_path
            if at_end_only and not is_best and best_state is not None:    # an earlier epoch was the best
                weights, best_epoch = best_state
                best_path = _save_best(stems, model, net, weights,
                                       epoch_meta(history[best_epoch - 1], best_epoch))
        dist.barrier()
    use_generator(model, None)
    rep.update(phase=Phase.DONE, eta_s=0.0)
    return TrainResult(last_path, best_path, history, cancelled, meta, dict(rep.seconds))


def _save_best(stems: Stems, model: nn.Module, net: nn.Module, state: dict, meta: dict) -> Path:
    """Write the best file with the best epoch's weights of `net` (what trained: the head, or the whole model,
    kept in memory), then put the last epoch's back."""
    last = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    try:
        return W.save_checkpoint(stems.best_file, model, dict(meta, kind="best"))
    finally:
        net.load_state_dict(last)
