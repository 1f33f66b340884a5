import json
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alexnet import weights as W
from alexnet.model import build
from conftest import BVLC_CONV1


def _small():
    return build("paper", 3, width=0.125)


def test_checkpoint_round_trip(tmp_path):
    m = _small()
    meta = W.make_meta(m, ["x", "y", "z"], metrics={"val_top1": 0.5}, split_seed=7)
    path = W.save_checkpoint(tmp_path / "run1", m, meta)
    assert path.suffix == ".safetensors" and path.with_suffix(".json").exists()
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["classes"] == ["x", "y", "z"] and side["split_seed"] == 7 and side["input_size"] == 227
    m2, meta2 = W.load_checkpoint(path)
    assert meta2["metrics"] == {"val_top1": 0.5} and meta2["spec"]["width"] == 0.125
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_metadata_travels_inside_the_weights_file(tmp_path):
    m = _small()
    path = W.save_checkpoint(tmp_path / "c", m, W.make_meta(m, ["x", "y", "z"]))
    path.with_suffix(".json").unlink()      # a lost sidecar does not lose the architecture
    _, meta = W.load_checkpoint(path)
    assert meta["classes"] == ["x", "y", "z"]


def test_torchvision_pth_local_and_shape_errors(tmp_path):
    tv = build("torchvision", 1000)
    torch.save(tv.state_dict(), tmp_path / "alexnet.pth")
    m, meta = W.load_torchvision_imagenet(tmp_path / "alexnet.pth")
    assert torch.equal(m.param_layer("conv1").weight, tv.param_layer("conv1").weight)
    assert len(meta["classes"]) == 1000 and meta["classes"][0] == "tench"
    sd = tv.state_dict()
    sd["features.3.weight"] = torch.zeros(192, 64, 3, 3)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(W.WeightsError, match=r"conv2 .*\(192, 64, 3, 3\).*\(192, 64, 5, 5\)"):
        W.load_torchvision_imagenet(tmp_path / "bad.pth")


class _Payload:
    def __reduce__(self):
        import pathlib
        return (pathlib.Path.touch, (pathlib.Path(self.target),))


def test_pickled_code_is_refused_not_run(tmp_path):
    target = tmp_path / "pwned"
    p = _Payload()
    p.target = str(target)
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"features.0.weight": p}, f)
    with pytest.raises(W.WeightsError, match="refused"):
        W.load(tmp_path / "evil.pth")
    np.save(tmp_path / "evil.npy", np.array({"conv1": [p]}, dtype=object), allow_pickle=True)
    target.unlink(missing_ok=True)
    with pytest.raises(W.WeightsError, match="refused"):
        W.load(tmp_path / "evil.npy")
    assert not target.exists()


def test_bvlc_npy_hwio_bgr_full_round_trip(tmp_path):
    """A synthetic file with bvlc_alexnet.npy's real keys and shapes (HWIO, BGR)."""
    ref = build("paper", 1000)
    d = {}
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"):
        layer = ref.param_layer(name)
        w = layer.weight.detach().numpy()
        if w.ndim == 4:
            w = w.transpose(2, 3, 1, 0)          # OIHW -> HWIO
        else:
            w = w.T                              # (out, in) -> (in, out)
        if name == "conv1":
            w = w[:, :, ::-1, :]                 # RGB -> BGR as Caffe stored it
        d[name] = [np.ascontiguousarray(w), layer.bias.detach().numpy()]
    assert d["conv1"][0].shape == (11, 11, 3, 96) and d["conv2"][0].shape == (5, 5, 48, 256)
    assert d["fc6"][0].shape == (9216, 4096)
    np.save(tmp_path / "bvlc_alexnet.npy", np.array(d, dtype=object), allow_pickle=True)
    model, meta = W.load(tmp_path / "bvlc_alexnet.npy")
    assert meta["load_report"]["missing"] == [] and len(meta["classes"]) == 1000
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    x = torch.randn(1, 3, 227, 227)
    assert torch.allclose(model.eval()(x), ref.eval()(x), atol=1e-5)


def test_partial_npz_reports_what_loaded(tmp_path):
    np.savez(tmp_path / "part.npz", **{"conv1.weight": np.ones((96, 3, 11, 11), np.float32),
                                       "conv1.bias": np.zeros(96, np.float32)})
    model, rep = W.load_caffe(tmp_path / "part.npz")
    assert rep["loaded"] == ["conv1"] and "fc8" in rep["missing"] and rep["partial"]
    assert float(model.param_layer("conv1").weight.detach().sum()) == 96 * 3 * 121
    np.savez(tmp_path / "wrong.npz", weight=np.ones((96, 3, 5, 5), np.float32))
    with pytest.raises(W.WeightsError, match=r"conv1.*\(96, 3, 5, 5\).*\(96, 3, 11, 11\)"):
        W.load_caffe(tmp_path / "wrong.npz")


def test_bvlc_conv1_in_paper_model_equals_raw_conv2d():
    z = np.load(BVLC_CONV1)
    model, rep = W.load_caffe(BVLC_CONV1)
    assert rep["loaded"] == ["conv1"]
    x = torch.randn(2, 3, 227, 227)
    with torch.no_grad():
        _, acts = model(x, return_activations=True)
        raw = F.relu(F.conv2d(x, torch.from_numpy(z["weight"]), torch.from_numpy(z["bias"]), stride=4))
    assert acts["conv1"].shape == (2, 96, 55, 55)
    assert torch.allclose(acts["conv1"], raw, atol=1e-5)


def test_load_dispatch_errors(tmp_path):
    with pytest.raises(W.WeightsError, match="no weights file"):
        W.load(tmp_path / "missing.safetensors")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(W.WeightsError, match="unknown weights format"):
        W.load(tmp_path / "x.txt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(W.WeightsError, match="not a readable safetensors"):
        W.load(tmp_path / "junk.safetensors")


def test_imagenet_class_names_asset():
    names = W.imagenet_classes()
    assert len(names) == 1000 and names[0] == "tench" and len(set(names)) >= 999
