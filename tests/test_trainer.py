"""The app's training slot: one run per server, a second request is told so, cancel frees the slot."""
import time

import gradio as gr
import pytest

from alexnet.train import TrainConfig
from app.trainer import Trainer
from conftest import make_image_folder


def test_second_run_is_refused_while_one_trains_and_cancel_frees_the_slot(tmp_path):
    data = make_image_folder(tmp_path / "d", per_class=10, size=80)
    tr = Trainer(registry=None)
    cfg = TrainConfig(data=str(data), mode="scratch", width=0.125, input_size=67, epochs=200, batch_size=4,
                      device="cpu", out=str(tmp_path / "run"), recipe="modern")
    tr.start(cfg)
    try:
        with pytest.raises(gr.Error, match="already in progress"):
            tr.start(cfg)
    finally:
        tr.cancel.set()
    deadline = time.time() + 60
    while tr.running and time.time() < deadline:
        time.sleep(0.1)
    assert not tr.running and tr.result is not None and tr.result.cancelled
    assert not list(tmp_path.glob("run*.safetensors"))     # a cancelled first run writes nothing
    tr.start(TrainConfig(data=str(data), mode="scratch", width=0.125, input_size=67, epochs=1, batch_size=8,
                         device="cpu", out=str(tmp_path / "run2"), recipe="modern"))
    while tr.running:
        time.sleep(0.1)
    assert tr.error is None and tr.result.checkpoint.exists() and tr.points     # the slot is free again
    # the live curve's validation points are the epochs' own numbers, one per epoch
    assert [e["val_acc"] for e in tr.epochs] == [h["val_acc"] for h in tr.result.history]
