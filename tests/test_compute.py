"""app.compute, the one owner of model work: which model each kind of work runs on, in which lane."""
from __future__ import annotations

import threading
import time

import torch

from alexnet.model import build
from app.compute import Compute
from app.state import Loaded


def loaded_tiny() -> Loaded:
    model = build("paper", 3, width=0.25, generator=torch.Generator().manual_seed(0)).eval()
    return Loaded("tiny", model, dict(classes=["a", "b", "c"], mean=[0.5] * 3, std=[0.25] * 3, input_size=227),
                  True, "tiny")


def test_cheap_work_runs_on_the_shared_model_and_slow_work_on_one_replica():
    compute, loaded = Compute(registry=None), loaded_tiny()
    try:
        assert compute.cheap(loaded, lambda model: model) is loaded.model
        copy1 = compute.slow(loaded, lambda model: model)
        copy2 = compute.job(loaded, lambda model: model)
        assert copy1 is copy2 and copy1 is not loaded.model                      # made once, shared by slow and job
        for a, b in zip(copy1.state_dict().values(), loaded.model.state_dict().values()):
            assert torch.equal(a, b)                                             # the same function
        assert compute.method(loaded, "saliency", lambda model: model) is loaded.model       # its record: cheap
        assert compute.method(loaded, "integrated_gradients", lambda model: model) is copy1  # its record: slow
        x = torch.randn(1, 3, 227, 227)
        with torch.no_grad():
            assert torch.allclose(compute.slow(loaded, lambda m: m(x)), compute.cheap(loaded, lambda m: m(x)))
    finally:
        compute.shutdown()


def test_the_replica_shares_the_weights_and_no_pass_writes_them():
    """The replica is a module tree of its own over the model's own tensors (no second copy of the weights),
    which is safe only while no pass writes a weight, its requires_grad or its .grad: every method, the panel,
    concepts, an attack and feature visualisation are run on the replica here and the model checked after."""
    from viz import adversarial, concepts, feature_vis
    from viz.attribution import explain, panels
    from viz.methods import METHODS
    compute, loaded = Compute(registry=None), loaded_tiny()
    model, m = loaded.model, loaded.meta
    before = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        replica = compute.slow(loaded, lambda r: r)
        assert all(a is b for a, b in zip(replica.parameters(), model.parameters()))          # the same tensors
        assert not any(a is b for a, b in zip(replica.modules(), model.modules()))             # its own modules
        hits = []
        handle = replica.features[0].register_forward_hook(lambda *a: hits.append(1))
        with torch.no_grad():
            model(torch.randn(1, 3, 227, 227))
        handle.remove()
        assert hits == []                                  # a hook on the replica never fires for the model's passes
        x = torch.randn(1, 3, 227, 227)
        x01 = torch.rand(1, 3, 227, 227)
        for name in METHODS:
            compute.slow(loaded, explain, x, 0, name, meta=m)
        compute.slow(loaded, lambda r: panels(r, x, [None], meta=m, saliency=True))
        compute.slow(loaded, concepts.channel_shares, x, 0)
        compute.slow(loaded, adversarial.attack, x01, m["mean"], m["std"], 2, method="pgd", steps=2,
                     generator=torch.Generator().manual_seed(0))
        compute.slow(loaded, feature_vis.maximise, "conv2", 3, steps=2, size=80)
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), k
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
    finally:
        compute.shutdown()


def test_a_slow_pass_waits_while_cheap_work_is_in_flight():
    compute, loaded = Compute(registry=None, max_wait_s=5.0), loaded_tiny()
    x = torch.randn(1, 3, 227, 227)
    started, release, order = threading.Event(), threading.Event(), []

    def hold(model):                               # cheap work that lasts until released
        started.set()
        release.wait(5)
        order.append("cheap done")

    try:
        compute.slow(loaded, lambda m: None)       # the replica exists before the race starts
        t = threading.Thread(target=compute.cheap, args=(loaded, hold))
        t.start()
        started.wait(5)

        def slow_pass(model):
            with torch.no_grad():
                model(x)                           # its forward pre-hook waits for the cheap work
            order.append("slow pass")
        s = threading.Thread(target=compute.slow, args=(loaded, slow_pass))
        s.start()
        time.sleep(0.5)
        assert order == []                         # the slow pass has not run beside the cheap work
        release.set()
        t.join(5)
        s.join(10)
        assert order == ["cheap done", "slow pass"]
    finally:
        release.set()
        compute.shutdown()


def test_a_models_keys_are_kept_with_it_and_follow_a_new_model():
    compute, loaded = Compute(registry=None), loaded_tiny()
    try:
        first = compute.model_key(loaded)
        assert compute.model_key(loaded) == first
        assert compute.fc7_key(loaded, "data-a") != compute.fc7_key(loaded, "data-b")
        retrained = loaded_tiny()
        with torch.no_grad():
            retrained.model.param_layer("fc8").weight.add_(1.0)
        assert compute.model_key(retrained) != first                       # another model, its own fingerprint
        assert compute.fc7_key(retrained, "data-a") == compute.fc7_key(loaded, "data-a")   # fc8 is not in fc7's key
    finally:
        compute.shutdown()
