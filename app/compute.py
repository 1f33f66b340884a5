"""The one owner of model work in the app: every tab runs the network through the page's `Compute`.

    compute.forward(loaded, upload)            -> (logits, acts, x, img)   top-5 and every layer; batched, cached per photo
    compute.panel(loaded, x, target, contrast, saliency, acts) -> Panel    saliency + Grad-CAM at conv5; batched
    compute.cheap(loaded, fn, *args)           -> fn(model, *args)         one pass (a map at another layer, a weight view)
    compute.slow(loaded, fn, *args)            -> fn(copy, *args)          many passes: IG, occlusion, the grid, the checks
    compute.job(loaded, fn, *args)             -> fn(copy, *args)          long jobs: a dataset pass, feature visualisation,
                                                                           the Retrain tab's evaluation
    compute.pair(after, before, fn, *args)     -> fn(copy, copy, *args)    a job on two models: before/after views
    compute.method(loaded, name, fn, *args)    -> cheap or slow by the method's record (viz.methods)

The rules, each in one place:
- Which model: cheap work runs on the registry's model under its lock (Captum's Grad-CAM and Guided
  Backprop hook the model they run on: one pass at a time per model). Slow work and jobs run on the
  model's replica, a private copy made once (`_replica`), under the replica's own lock, so a 32-step
  IG never holds the lock a one-pass saliency needs. The replica is its own tree of modules (its own
  hooks and modes) over the SAME weight tensors (`shared_copy`): no second 244 MB copy of the paper
  model per loaded model. That is safe because no pass here writes a weight, its requires_grad or its
  .grad (every method differentiates with torch.autograd.grad; Zennit swaps a module's parameter
  attribute, not the tensor), which tests/test_compute.py checks.
- Which lane and how many at once: app.lanes (cheap workers, one thread per batcher, one slow worker).
  Jobs share the slow lane's single worker: at most one many-pass computation runs at any time.
- Priority: every forward pass of the replica first waits while cheap work is in flight (at most
  `max_wait_s`: app.lanes.Lanes.yield_to_cheap); the trainer's steps call `yield_to_cheap` too.
- Batching: concurrent visitors' top-5 passes share one forward, their panels one forward + backward
  (app.lanes.Batcher: 33 against 58 ms a photo for 8 at once on 2 cores).
A `tab_*` module never touches a model itself (tests/test_structure.py checks it): it hands a function
and its arguments here, and the function gets the model to run as its first argument.
"""
from __future__ import annotations

import copy
import threading
import weakref
from dataclasses import replace

import torch

from alexnet import device as dev_
from alexnet.features import fc7_key, model_hash
from app.lanes import CHEAP, SLOW, Batcher, Lanes, lane_of
from viz.attribution import Panel, panels


class Compute:
    def __init__(self, registry, cheap_workers: int = 2, max_wait_s: float = 3.0, max_batch: int = 8):
        self.registry = registry
        self.lanes = Lanes(cheap_workers=cheap_workers, max_wait_s=max_wait_s)
        self._forward = Batcher(self.lanes, _forward, max_batch, name="forward")
        self._panels = Batcher(self.lanes, _panels, max_batch, name="panel")
        # model -> {what: its fingerprint or store key}; weak, so a model reloaded at the same address (a
        # retrained checkpoint) never inherits the keys of the one it replaced
        self._keys: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._keys_lock = threading.Lock()
        self._replica_lock = threading.Lock()

    # -------------------------------------------------------------- cheap, batched across visitors
    def forward(self, loaded, upload) -> tuple[torch.Tensor, dict, torch.Tensor, object]:
        """(logits (1, K), {layer: activation}, input (1, 3, S, S), the validated image) of one upload: the
        registry's cached pass when another tab already made it, else one batched with other visitors'."""
        return self.registry.forward(loaded, upload, run=lambda who, x: self._forward(id(who), (who, x)))

    def panel(self, loaded, x: torch.Tensor, target: int | None = None, contrast: int | None = None,
              saliency: bool = True, acts: bool = True) -> Panel:
        """viz.attribution.panel of one normalised image for `target` (None: its top-1), minus `contrast`.
        `saliency=False`: Grad-CAM alone, at about half the cost; `acts=False`: no layer activations kept
        (a caller showing only the maps). Requests of one kind are batched together."""
        kind = (saliency, acts)
        return self._panels((id(loaded), kind), (loaded, x, target, contrast, kind))

    # -------------------------------------------------------------- one call each
    def cheap(self, loaded, fn, /, *args, **kwargs):
        """fn(the model, *args) in the cheap lane, under the model's lock: one pass, or a look at the weights."""
        def work():
            with loaded.lock:
                return fn(loaded.model, *args, **kwargs)
        return self.lanes.run(CHEAP, work)

    def slow(self, loaded, fn, /, *args, **kwargs):
        """fn(the model's replica, *args) in the slow lane; each of its forward passes gives way to cheap work.
        A visitor's many-pass map: refused at once with a sentence (app.lanes.Busy) when eight already wait."""
        return self.lanes.run(SLOW, self._on_replica, loaded, fn, args, kwargs)

    def job(self, loaded, fn, /, *args, **kwargs):
        """A long job (a dataset pass, feature visualisation, the views after a training run): slow work in the
        same lane, one at a time, but queued rather than refused when visitors' maps fill it."""
        return self.lanes.run(SLOW, self._on_replica, loaded, fn, args, kwargs, admit=False)

    def pair(self, loaded, other, fn, /, *args, **kwargs):
        """fn(loaded's replica, other's replica or None, *args): a job comparing two models (the Retrain tab's
        before and after), each on its private copy, so neither visitor-facing model is held."""
        def both(model):
            if other is None:
                return fn(model, None, *args, **kwargs)
            who = self._replica(other)
            with who.lock:
                return fn(model, who.model, *args, **kwargs)
        return self.job(loaded, both)

    def admits(self, name: str) -> None:
        """Raise app.lanes.Busy now if attribution method `name` would be refused: a caller checks before
        decoding the photo, so a refusal costs the server next to nothing."""
        if lane_of(name) != CHEAP:
            self.lanes.admits()

    def method(self, loaded, name: str, fn, /, *args, **kwargs):
        """fn(model, *args) in the lane of attribution method `name` (its record's cost, viz.methods)."""
        run = self.cheap if lane_of(name) == CHEAP else self.slow
        return run(loaded, fn, *args, **kwargs)

    def _on_replica(self, loaded, fn, args, kwargs):
        who = self._replica(loaded)
        with who.lock:
            return fn(who.model, *args, **kwargs)

    def _replica(self, loaded):
        """The private copy of a registry model (its own lock), made once and kept with it; its passes give way."""
        with self._replica_lock:
            if loaded._replica is None:
                with loaded.lock:                 # copied while no explanation's hooks are attached
                    loaded._replica = replace(loaded, model=shared_copy(loaded.model), lock=threading.RLock())
                self.lanes.pausable(loaded._replica.model)
            return loaded._replica

    # -------------------------------------------------------------- what the model is, without running it
    def model_key(self, loaded) -> str:
        """The model's fingerprint (alexnet.features.model_hash), computed once per loaded model."""
        return self._key(loaded, ("model",), lambda: self.cheap(loaded, model_hash))

    def fc7_key(self, loaded, data_key: str) -> str:
        """The feature store's name for this model's fc7 over a dataset (shared with training)."""
        m = loaded.meta
        return self._key(loaded, ("fc7", data_key), lambda: self.cheap(
            loaded, fc7_key, data_key, m["mean"], m["std"], m["input_size"]))

    def _key(self, loaded, what: tuple, make) -> str:
        with self._keys_lock:
            found = self._keys.get(loaded.model, {}).get(what)
        if found is None:                         # computed outside the lock: a fingerprint reads 61M weights
            found = make()
            with self._keys_lock:
                self._keys.setdefault(loaded.model, {})[what] = found
        return found

    # -------------------------------------------------------------- the trainer and the server's end
    def yield_to_cheap(self) -> None:
        """Called by a training run before each step: wait while visitors' cheap passes run (bounded)."""
        self.lanes.yield_to_cheap()

    def thread(self, target, name: str):
        """A thread of the app's own that runs the network (the trainer's): started with every core."""
        return self.lanes.thread(target, name)

    def shutdown(self, wait: bool = False) -> None:
        self.lanes.shutdown(wait=wait)


def shared_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A new module tree over the same parameter and buffer tensors: hooks, modes and locks of its own,
    no second copy of the weights (deepcopy's memo maps each tensor to itself)."""
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo)


def _forward(items) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    loaded = items[0][0]                                        # one key: one model for the whole batch
    x = torch.cat([x for _, x in items])                        # B x (1, 3, S, S) -> (B, 3, S, S)
    with loaded.lock, torch.inference_mode(), dev_.autocast(x.device):
        logits, acts = loaded.model(x, return_activations=True)   # (B, K), {layer: (B, ...)}
    # each image's own rows, copied: a cached image's activations must not pin the whole batch
    return [(logits[i:i + 1].clone(), {k: v[i:i + 1].clone() for k, v in acts.items()}) for i in range(len(items))]


def _panels(items) -> list[Panel]:
    loaded, (saliency, acts) = items[0][0], items[0][-1]        # one key: one model, one kind of panel
    x = torch.cat([x for _, x, *_ in items])                    # B x (1, 3, S, S) -> (B, 3, S, S)
    with loaded.lock:
        return panels(loaded.model, x, [t for _, _, t, _, _ in items], meta=loaded.meta,
                      trained=loaded.trained and not loaded.partial, contrasts=[c for *_, c, _ in items],
                      saliency=saliency, keep_acts=acts)
