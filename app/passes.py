"""The cheap lane's two batched passes: the recorded forward (top-5 and every layer), and the panel
(saliency + Grad-CAM at conv5).

Concurrent visitors' requests for the same model share one pass (app.lanes.Batcher); a lone
request runs alone at once. Inputs arrive already decoded and normalised, (1, 3, S, S) each, so
a broken upload fails in its own request, never in a batch.
"""
from __future__ import annotations

import torch

from alexnet import device as dev_
from app.lanes import Batcher, Lanes
from viz.attribution import Panel, panels


class Passes:
    def __init__(self, lanes: Lanes, max_batch: int = 8):
        self._forward = Batcher(lanes, _forward, max_batch, name="forward")
        self._panels = Batcher(lanes, _panels, max_batch, name="panel")

    def forward(self, loaded, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(logits (1, K), {layer: activation (1, ...)}) of one normalised image (1, 3, S, S): the
        `run` of app.state.Registry.forward."""
        return self._forward(id(loaded), (loaded, x))

    def panel(self, loaded, x: torch.Tensor, target: int | None = None, contrast: int | None = None) -> Panel:
        """viz.attribution.panel of one normalised image for `target` (None: its top-1), minus `contrast`."""
        return self._panels(id(loaded), (loaded, x, target, contrast))


def _forward(items) -> list[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    loaded = items[0][0]                                        # one key: one model for the whole batch
    x = torch.cat([x for _, x in items])                        # B x (1, 3, S, S) -> (B, 3, S, S)
    with loaded.lock, torch.inference_mode(), dev_.autocast(x.device):
        logits, acts = loaded.model(x, return_activations=True)   # (B, K), {layer: (B, ...)}
    # each image's own rows, copied: a cached image's activations must not pin the whole batch
    return [(logits[i:i + 1].clone(), {k: v[i:i + 1].clone() for k, v in acts.items()}) for i in range(len(items))]


def _panels(items) -> list[Panel]:
    loaded = items[0][0]
    x = torch.cat([x for _, x, _, _ in items])                  # B x (1, 3, S, S) -> (B, 3, S, S)
    with loaded.lock:
        return panels(loaded.model, x, [t for _, _, t, _ in items], meta=loaded.meta,
                      trained=loaded.trained and not loaded.partial, contrasts=[c for *_, c in items])
