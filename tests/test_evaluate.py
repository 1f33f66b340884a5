import json

import pytest
import torch
from torch import nn

from alexnet import data as D
from alexnet import weights as W
from alexnet.evaluate import evaluate, main, predict, ten_crop
from alexnet.model import build
from conftest import make_image_folder


def test_ten_crop_on_a_known_tensor():
    x = torch.arange(2 * 1 * 6 * 6).view(2, 1, 6, 6)
    c = ten_crop(x, 4)
    assert c.shape == (10, 2, 1, 4, 4)
    expected = [x[..., :4, :4], x[..., :4, 2:], x[..., 2:, :4], x[..., 2:, 2:], x[..., 1:5, 1:5]]
    for k, e in enumerate(expected):
        assert torch.equal(c[k], e), k
        assert torch.equal(c[k + 5], e.flip(-1)), k
    assert c[0, 0, 0, 0].tolist() == [0, 1, 2, 3] and c[5, 0, 0, 0].tolist() == [3, 2, 1, 0]
    assert c[3, 1, 0, 3].tolist() == [68, 69, 70, 71] and c[4, 0, 0, 0].tolist() == [7, 8, 9, 10]


class _MeanColour(nn.Module):
    """Logits = each channel's mean: predicts the dominant colour, so its answers are known."""

    def forward(self, x):
        return x.mean((2, 3)) * 10                              # (B, 3)


class _LeftBright(nn.Module):
    """Logits depend on where the light is, so every one of the ten crops gives a different answer."""

    def forward(self, x):
        w = x.shape[-1]
        left, right = x[..., : w // 2].mean((1, 2, 3)), x[..., w // 2:].mean((1, 2, 3))
        top = x[..., : x.shape[-2] // 2, :].mean((1, 2, 3))
        return torch.stack([left, right, top], 1) * 5          # (B, 3)


META = dict(classes=["red", "green", "blue"], input_size=8, mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])


def test_metrics_confusion_and_per_class_on_known_predictions():
    colours = torch.tensor([[230, 20, 20], [20, 230, 20], [20, 20, 230]], dtype=torch.uint8)
    truth = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    images = colours[truth].view(8, 3, 1, 1).expand(8, 3, 12, 12).contiguous()
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0])           # two labelled wrongly on purpose
    r = evaluate(_MeanColour(), META, images, labels, device="cpu")
    assert torch.equal(r["predictions"], truth) and r["top1"] == pytest.approx(6 / 8) and r["top5"] == 1.0
    assert r["confusion"] == [[2, 0, 1], [1, 2, 0], [0, 0, 2]]   # rows: label given, columns: predicted
    assert r["per_class"] == pytest.approx({"red": 2 / 3, "green": 2 / 3, "blue": 1.0})
    ten = evaluate(_MeanColour(), META, images, labels, ten_crop=True, device="cpu", batch_size=3)
    assert torch.equal(ten["predictions"], r["predictions"]) and ten["confusion"] == r["confusion"]


def test_ten_crop_averages_the_softmax_of_all_ten_views():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 12, 12), generator=g, dtype=torch.uint8)
    probs = predict(_LeftBright(), META, images, use_ten_crop=True, batch_size=2, device="cpu")
    views = ten_crop(D.normalize(images, META["mean"], META["std"]), 8)          # (10, 5, 3, 8, 8)
    manual = torch.stack([_LeftBright()(v).softmax(-1) for v in views]).mean(0)  # (5, 3)
    assert probs.shape == (5, 3) and torch.allclose(probs, manual, atol=1e-6)
    centre = predict(_LeftBright(), META, images, batch_size=2, device="cpu")
    assert torch.allclose(centre, _LeftBright()(D.normalize(D.center_crop(images, 8), META["mean"], META["std"])).softmax(-1))
    assert not torch.allclose(centre, probs)


def test_cli_scores_the_held_out_split_of_a_checkpoint(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", per_class=5, size=80)
    model = build("torchvision", 3, width=0.125)
    bare = W.save_checkpoint(tmp_path / "bare.safetensors", model, W.make_meta(model, ["a", "b", "c"], input_size=67))
    assert main(["--weights", str(bare), "--data", str(root)]) == 2
    assert "--split all" in capsys.readouterr().err             # no split recorded: a sentence, not a traceback

    assert main(["--weights", str(bare), "--data", str(root), "--split", "all", "--json", "--device", "cpu"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["n"] == 15 and len(r["confusion"]) == 3 and sum(map(sum, r["confusion"])) == 15

    meta = W.make_meta(model, ["a", "b", "c"], input_size=67, split_seed=4,
                       split=dict(val_fraction=0.4, limit=None, data_key=D.decode_folder(root, cache=True).key))
    ckpt = W.save_checkpoint(tmp_path / "trained.safetensors", model, meta)
    assert main(["--weights", str(ckpt), "--data", str(root), "--ten-crop", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "6 images (val), 10-crop" in out and "confusion" in out   # 2 of each class's 5, from split seed 4

    other = build("torchvision", 2, width=0.125)
    wrong = W.save_checkpoint(tmp_path / "wrong.safetensors", other, W.make_meta(other, ["x", "y"]))
    assert main(["--weights", str(wrong), "--data", str(root), "--split", "all"]) == 2
    assert "classes the model does not know: a, b, c" in capsys.readouterr().err


def test_cli_reproduces_the_validation_score_training_recorded(tmp_path, capsys):
    from alexnet.train import TrainConfig, train
    root = make_image_folder(tmp_path / "images", per_class=10, size=80)
    result = train(TrainConfig(data=str(root), mode="scratch", width=0.125, input_size=67, image_size=80, epochs=1,
                               batch_size=8, recipe="modern", device="cpu", out=str(tmp_path / "run")))
    meta = result.meta
    assert meta["split"]["val"] == D.stratified_split(D.decode_folder(root, 80).labels, 0.2, 0)[1].tolist()
    dec = D.decode_folder(root, 80)
    idx = torch.tensor(meta["split"]["val"])
    model, meta2 = W.load_checkpoint(result.checkpoint)
    r = evaluate(model, meta2, dec.images[idx], dec.labels[idx], device="cpu")
    assert r["top1"] == pytest.approx(meta["metrics"]["val_top1"]) and r["n"] == 6
    # The CLI decodes at the size training used and rebuilds the same held-out images.
    assert main(["--weights", str(result.checkpoint), "--data", str(root), "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 6 and out["top1"] == pytest.approx(meta["metrics"]["val_top1"])
