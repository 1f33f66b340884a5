import pytest
import torch

from alexnet import device as D


def test_auto_and_cpu():
    assert D.pick("cpu").type == "cpu"
    assert D.pick("auto").type in ("cpu", "cuda", "mps")
    assert D.autocast_dtype(torch.device("cpu")) is None
    assert D.autocast_dtype(torch.device("cuda")) is torch.bfloat16
    assert D.memory_format(torch.device("cuda")) is torch.channels_last


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_asking_for_missing_cuda_is_a_clear_error():
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        D.pick("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_forward_in_bf16_channels_last():
    from alexnet.model import build
    dev = D.pick("cuda")
    m = D.prepare(build("paper", 10), dev).eval()
    with torch.no_grad(), D.autocast(dev):
        y = m(D.to_input(torch.randn(2, 3, 227, 227), dev))
    assert y.shape == (2, 10) and y.dtype == torch.bfloat16
