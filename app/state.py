"""What the server holds between requests: which models exist, which are loaded, the current upload.

No model is loaded at start-up: the page is served first, and the first request that
needs a model loads it (with progress). Each visitor picks a model by key from a
dropdown; the registry keeps the two most recently used in memory.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alexnet import device as D
from alexnet import images, weights
from alexnet.model import build

log = logging.getLogger("alexnet-explainer")
UNTRAINED = "untrained"
IMAGENET = "imagenet"
GIVEN = "given"          # the --weights file
CKPT = "checkpoint:"     # + a file name in the checkpoints folder
UNTRAINED_NOTICE = ("**This model is untrained** (random weights): its top-5 and every explanation below are "
                    "noise, shown so you can see what the pipeline does. Load ImageNet weights or train it on the "
                    "flowers in the Retrain tab to get meaningful pictures.")


@dataclass
class Loaded:
    key: str
    model: torch.nn.Module
    meta: dict
    trained: bool
    label: str
    # Captum's Grad-CAM and Guided Backprop hook the model while they run: one pass at a time per model.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def notice(self) -> str:
        return "" if self.trained else UNTRAINED_NOTICE

    def seen(self, x: torch.Tensor) -> "images.Image.Image":
        """The crop the network actually saw, as a picture (for overlays)."""
        return images.Image.fromarray(images.display_image(x, self.meta["mean"], self.meta["std"]))

    def prepare(self, upload) -> tuple[torch.Tensor, "images.Image.Image"]:
        """An upload -> (1, 3, S, S) input on the model's device, and the validated RGB image."""
        img = images.open_image(upload)
        x = images.preprocess(img, self.meta["input_size"], self.meta["mean"], self.meta["std"])
        return D.to_input(x, next(self.model.parameters()).device), img


class Registry:
    """Lists and lazily loads models: given weights, project checkpoints, ImageNet, untrained."""

    def __init__(self, weights_arg: str | None = None, data: str | None = None, device: str = "auto",
                 checkpoints_dir: str | Path | None = None, keep: int = 2):
        self.weights_arg = weights_arg
        self.data = data
        self.device = D.pick(device)
        self.checkpoints_dir = Path(checkpoints_dir) if checkpoints_dir else weights.cache_dir() / "checkpoints"
        self._loaded: OrderedDict[str, Loaded] = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()
        self._acts: OrderedDict[tuple, tuple] = OrderedDict()  # (model key, image digest) -> (logits, acts)

    # -------------------------------------------------------------- what exists
    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for the model dropdown, default first. Keys never show server paths."""
        out = []
        if self.weights_arg and self.weights_arg != IMAGENET:
            out.append((f"given: {Path(self.weights_arg).name}", GIVEN))
        for p in weights.list_checkpoints(self.checkpoints_dir):
            if str(p) != str(self.weights_arg):
                out.append((f"checkpoint: {p.stem}", CKPT + p.name))
        cached = weights.imagenet_weights_path().exists()
        out.append(("torchvision ImageNet" + ("" if cached else " (downloads 233 MB)"), IMAGENET))
        out.append(("untrained paper model (random weights)", UNTRAINED))
        if self.weights_arg == IMAGENET:
            out.insert(0, out.pop(len(out) - 2))
        elif not self.weights_arg and not weights.list_checkpoints(self.checkpoints_dir) and not cached:
            out.insert(0, out.pop())   # nothing trained is here: start honest, with the untrained model
        return out

    def resolve(self, key: str) -> str:
        """A dropdown key -> what alexnet.weights.load takes ('imagenet' or a path)."""
        if key == GIVEN and self.weights_arg:
            return str(self.weights_arg)
        if key.startswith(CKPT):
            name = Path(key[len(CKPT):]).name          # a name, never a path a visitor could steer
            path = self.checkpoints_dir / name
            if not path.is_file():
                raise weights.WeightsError(f"checkpoint {name} is no longer there; press 'Refresh model list'")
            return str(path)
        if key in (IMAGENET, UNTRAINED):
            return key
        raise weights.WeightsError(f"unknown model {key!r}; pick one from the list")

    def key_for(self, path) -> str:
        """The dropdown key of a checkpoint file that training just wrote."""
        path = Path(path)
        return CKPT + path.name if path.parent.resolve() == self.checkpoints_dir.resolve() else GIVEN

    def default_key(self) -> str:
        return self.choices()[0][1]

    def banner(self, key: str) -> str:
        label = dict((k, lbl) for lbl, k in self.choices()).get(key, key)
        msg = f"**Model:** {label} · device: `{self.device.type}`"
        if key == UNTRAINED:
            msg += "\n\n" + UNTRAINED_NOTICE
        return msg

    # -------------------------------------------------------------- loading
    def get(self, key: str | None = None, progress=None) -> Loaded:
        key = key or self.default_key()
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        if progress is not None:
            progress(0.1, desc=f"loading {key} weights")
        if key == UNTRAINED:
            torch.manual_seed(0)
            model = build("paper", 1000)
            meta = weights.make_meta(model, weights.imagenet_classes(), source="untrained (random init, seed 0)")
            trained = False
        else:
            model, meta = weights.load(self.resolve(key))
            trained = True
        model = D.prepare(model, self.device).eval()
        loaded = Loaded(key, model, meta, trained, key)
        with self._lock:
            self._loaded[key] = loaded
            while len(self._loaded) > self._keep:
                self._loaded.popitem(last=False)
        return loaded

    def forward(self, loaded: Loaded, upload) -> tuple[torch.Tensor, dict, torch.Tensor, "images.Image.Image"]:
        """One recorded forward pass per (model, image), cached (bounded) so tabs share it."""
        x, img = loaded.prepare(upload)
        k = self._act_key(loaded, img)
        with self._lock:
            if k in self._acts:
                self._acts.move_to_end(k)
                logits, acts = self._acts[k]
                return logits, acts, x, img
        with loaded.lock, torch.inference_mode(), D.autocast(self.device):
            logits, acts = loaded.model(x, return_activations=True)
        logits, acts = self.remember(loaded, img, logits, acts)
        return logits, acts, x, img

    @staticmethod
    def _act_key(loaded: Loaded, img) -> tuple:
        return loaded.key, hashlib.sha1(images.to_uint8(img, 64).numpy().tobytes()).hexdigest()

    def remember(self, loaded: Loaded, img, logits: torch.Tensor, acts: dict) -> tuple[torch.Tensor, dict]:
        """Keep one pass's activations (bounded) so the other tabs reuse it instead of running the model again."""
        logits = logits.detach().float().cpu().reshape(1, -1)                 # (K,) or (1, K) -> (1, K)
        acts = {n: a.detach().float().cpu() for n, a in acts.items()}
        with self._lock:
            self._acts[self._act_key(loaded, img)] = (logits, acts)
            while len(self._acts) > 16:
                self._acts.popitem(last=False)
        return logits, acts

    def forget(self, key: str) -> None:
        """Drop a cached model (a checkpoint was rewritten by training)."""
        with self._lock:
            self._loaded.pop(key, None)
            for k in [k for k in self._acts if k[0] == key]:
                del self._acts[k]
