"""What the server holds between requests: which models exist, which are loaded, the current upload.

No model is loaded at start-up: the page is served first, and the first request that
needs a model loads it (with progress). Each visitor picks a model by key from a
dropdown; the registry keeps the two most recently used in memory.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import torch

from alexnet import device as dev_
from alexnet import images, weights
from alexnet.compact import SHIPPED
from alexnet.lru import LRU
from alexnet.model import build
from app import text
from app.i18n import current_lang
from app.text import knows_line, partial_notice, start_label

log = logging.getLogger("alexnet-explainer")
UNTRAINED = "untrained"
IMAGENET = "imagenet"
FLOWERS = "flowers"      # the compact model shipped in assets/ (alexnet.compact)
GIVEN = "given"          # the --weights file
CKPT = "checkpoint:"     # + a file name in the checkpoints folder


@dataclass
class Loaded:
    key: str
    model: torch.nn.Module
    meta: dict
    trained: bool
    label: str
    # Captum's Grad-CAM and Guided Backprop hook the model while they run: one pass at a time per model.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _replica: Loaded | None = field(default=None, repr=False, compare=False)   # app.compute's private copy

    @property
    def partial(self) -> dict | None:
        """The load report of a file that filled only some layers (BVLC conv1 alone, say), else None."""
        report = self.meta.get("load_report") or {}
        return report if report.get("partial") else None

    @property
    def notice(self) -> str:
        """The untrained / partly loaded warning, in the language of the visitor whose event runs (app.i18n)."""
        if not self.trained:
            return text.untrained_notice(current_lang())
        if self.partial:
            return partial_notice(self.partial, current_lang())
        return ""

    @property
    def top5_note(self) -> str:
        """Beside the top-5: the untrained/partial notice, and for a small model what it can name at all."""
        parts = [self.notice] if self.notice else []
        if len(self.meta["classes"]) < 1000:
            parts.append(self.knows)
        return "\n\n".join(parts)

    @property
    def knows(self) -> str:
        """One line on what the model can answer, shown beside every top-5."""
        return knows_line(self.meta["classes"], current_lang())

    def seen(self, x: torch.Tensor) -> "images.Image.Image":
        """The crop the network actually saw, as a picture (for overlays)."""
        return images.Image.fromarray(images.display_image(x, self.meta["mean"], self.meta["std"]))

    def prepare(self, upload) -> tuple[torch.Tensor, "images.Image.Image"]:
        """An upload -> (1, 3, S, S) input on the model's device, and the validated RGB image."""
        img = images.open_image(upload)
        x = images.preprocess(img, self.meta["input_size"], self.meta["mean"], self.meta["std"])
        return dev_.to_input(x, next(self.model.parameters()).device), img


class Registry:
    """Lists and lazily loads models: given weights, project checkpoints, ImageNet, untrained."""

    def __init__(self, weights_arg: str | None = None, data: str | None = None, device: str = "auto",
                 checkpoints_dir: str | Path | None = None, keep: int = 2, shipped: str | Path | None = SHIPPED):
        self.weights_arg = weights_arg
        self.data = data
        self.device = dev_.pick(device)
        self.checkpoints_dir = Path(checkpoints_dir) if checkpoints_dir else weights.cache_dir() / "checkpoints"
        self.shipped = Path(shipped) if shipped and Path(shipped).is_file() else None
        self._loaded: LRU[Loaded] = LRU(keep)                 # the models in memory
        self._lock = threading.Lock()                          # guards _loading and _metas
        self._acts: LRU[tuple] = LRU(16)                       # (model key, image digest) -> (logits, acts)
        self._metas: dict[str, dict] = {}                      # sidecars read for labels and banners
        self._loading: dict[str, threading.Lock] = {}          # key -> held while that model loads

    # -------------------------------------------------------------- what exists
    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for the model dropdown, default first. Keys never show server paths.

        Default, first match wins: --weights > the newest checkpoint in the cache > cached
        ImageNet weights > the flowers model shipped in assets/ > untrained.
        """
        out = []
        if self.weights_arg and self.weights_arg not in (IMAGENET, UNTRAINED):
            out.append((f"given: {Path(self.weights_arg).name}", GIVEN))
        for p in weights.list_checkpoints(self.checkpoints_dir):
            if str(p) != str(self.weights_arg):
                out.append((f"checkpoint: {p.stem}", CKPT + p.name))
        cached = weights.imagenet_weights_path().exists()
        imagenet = ("torchvision ImageNet (1,000 classes" + (")" if cached else ", downloads 233 MB)"), IMAGENET)
        shipped = []
        if self.shipped is not None:
            meta = self.meta_of(FLOWERS)
            shipped = [(f"flowers AlexNet ({len(meta.get('classes', []))} classes, {start_label(meta)}; shipped)",
                        FLOWERS)]
        out += ([imagenet] if cached else []) + shipped + [("untrained paper model (random weights)", UNTRAINED)]
        if not cached:                # offered second: choosing it downloads the weights, with progress
            out.insert(1, imagenet)
        if self.weights_arg in (IMAGENET, UNTRAINED):
            out.insert(0, out.pop([k for _, k in out].index(self.weights_arg)))
        return out

    def meta_of(self, key: str) -> dict:
        """A model's sidecar without loading its weights (cached); {} when there is none to read."""
        with self._lock:
            if key in self._metas:
                return self._metas[key]
        try:
            meta = self._read_meta(key)                     # file reads outside the lock
        except (weights.WeightsError, OSError, ValueError, KeyError) as e:   # a damaged or vanished file
            log.warning("cannot read the metadata of %s: %s", key, e)
            return {}
        with self._lock:                                    # _metas is guarded, as forget() expects
            return self._metas.setdefault(key, meta)

    def _read_meta(self, key: str) -> dict:
        path = Path(self.resolve(key))
        if key == IMAGENET:
            return dict(classes=weights.imagenet_classes())
        if path.suffix in (".safetensors", ".json"):
            return weights.read_meta(path)
        if path.suffix in (".npy", ".npz"):              # Caffe arrays: a partial file is told by its layer names
            layers = set(weights.caffe_layers(path))
            order = list(weights.CONV_LAYERS + weights.FC_LAYERS)
            missing = [n for n in order if n not in layers]
            return dict(classes=weights.imagenet_classes(),
                        load_report=dict(loaded=[n for n in order if n in layers], missing=missing,
                                         partial=bool(missing)))
        return {}

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
        if key == FLOWERS and self.shipped is not None:
            return str(self.shipped)
        if key in (IMAGENET, UNTRAINED):
            return key
        raise weights.WeightsError(f"unknown model {key!r}; pick one from the list")

    def key_for(self, path) -> str:
        """The dropdown key of a checkpoint file that training just wrote."""
        path = Path(path)
        return CKPT + path.name if path.parent.resolve() == self.checkpoints_dir.resolve() else GIVEN

    def default_key(self) -> str:
        return self.choices()[0][1]

    def banner(self, key: str, lang: str | None = None) -> str:
        """What the page says above every tab about model `key`, in the visitor's language `lang` (English when
        None or unknown; the words are app.text.banner's). The model's name is the dropdown's, as the visitor
        sees it there."""
        label = dict((k, lbl) for lbl, k in self.choices()).get(key, key)
        untrained = key == UNTRAINED
        return text.banner(label, self.device.type, {} if untrained else self.meta_of(key), untrained, lang)

    # -------------------------------------------------------------- loading
    def get(self, key: str | None = None, progress=None) -> Loaded:
        key = key or self.default_key()
        found = self._loaded.get(key)
        if found is not None:
            return found
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        # One load (or ImageNet download) per key: a model change fires several tabs' events at once,
        # and the second one waits for the first instead of downloading 233 MB again. Other keys
        # load meanwhile (the LRU's own get_or_make would serialise every load behind one lock).
        with loading:
            found = self._loaded.get(key)
            return found if found is not None else self._load(key, progress)

    def _load(self, key: str, progress) -> Loaded:
        if progress is not None:
            progress(0.1, desc=f"loading {key} weights")
        if key == UNTRAINED:
            model = build("paper", 1000, generator=torch.Generator().manual_seed(0))
            meta = weights.make_meta(model, weights.imagenet_classes(), source="untrained (random init, seed 0)")
            trained = False
        elif key == IMAGENET:
            model, meta = load_imagenet(progress)
            trained = True
        else:
            model, meta = weights.load(self.resolve(key))
            trained = True
        model = dev_.prepare(model, self.device).eval()
        return self._loaded.put(key, Loaded(key, model, meta, trained, key))

    def forward(self, loaded: Loaded, upload, run=None) -> tuple[torch.Tensor, dict, torch.Tensor, "images.Image.Image"]:
        """One recorded forward pass per (model, image), cached (bounded) so tabs share it. `run(loaded, x)
        -> (logits, activations)` makes the pass on a miss (default: alone, under the model's lock;
        app.compute.Compute.forward batches it with other visitors')."""
        x, img = loaded.prepare(upload)
        found = self._acts.get(self._act_key(loaded, img))
        if found is not None:
            logits, acts = found
            return logits, acts, x, img
        logits, acts = (run or self._forward)(loaded, x)
        logits, acts = self.remember(loaded, img, logits, acts)
        return logits, acts, x, img

    def _forward(self, loaded: Loaded, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
        with loaded.lock, torch.inference_mode(), dev_.autocast(self.device):
            return loaded.model(x, return_activations=True)

    @staticmethod
    def _act_key(loaded: Loaded, img) -> tuple:
        return loaded.key, hashlib.sha1(images.to_uint8(img, 64).numpy().tobytes()).hexdigest()

    def remember(self, loaded: Loaded, img, logits: torch.Tensor, acts: dict) -> tuple[torch.Tensor, dict]:
        """Keep one pass's activations (bounded) so the other tabs reuse it instead of running the model again."""
        logits = logits.detach().float().cpu().reshape(1, -1)                 # (K,) or (1, K) -> (1, K)
        acts = {n: a.detach().float().cpu() for n, a in acts.items()}
        self._acts.put(self._act_key(loaded, img), (logits, acts))
        return logits, acts

    def forget(self, key: str) -> None:
        """Drop a cached model (a checkpoint was rewritten by training)."""
        self._loaded.pop_where(lambda k: k == key)
        self._acts.pop_where(lambda k: k[0] == key)
        with self._lock:
            self._metas.pop(key, None)


def load_imagenet(progress=None):
    """torchvision's ImageNet AlexNet, downloading it first (progress in the page) when it is not cached;
    a download that cannot happen is a WeightsError whose one sentence names the cause and the way out."""
    def report(done: int, total: int | None) -> None:
        if progress is not None:
            mb = f"{done / 1e6:.0f}" + (f"/{total / 1e6:.0f}" if total else "")
            progress(done / total if total else None, desc=f"downloading ImageNet weights: {mb} MB")
    weights.download_imagenet(report)
    return weights.load("imagenet", progress=False)
