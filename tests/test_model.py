import pytest
import torch
import torchvision

from alexnet.errors import OptionError
from alexnet.model import LAYERS, build, count_parameters, from_spec


def test_paper_parameter_count_is_the_papers():
    assert count_parameters(build("paper", 1000)) == 60_965_224


def test_torchvision_arch_matches_torchvision_state_dict():
    ours = build("torchvision", 1000).state_dict()
    theirs = torchvision.models.alexnet(weights=None).state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


@pytest.mark.parametrize("arch,size,shapes", [
    ("paper", 227, {"conv1": (96, 55, 55), "pool1": (96, 27, 27), "conv2": (256, 27, 27), "pool2": (256, 13, 13),
                    "conv3": (384, 13, 13), "conv4": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6),
                    "fc6": (4096,), "fc7": (4096,), "fc8": (10,)}),
    ("torchvision", 224, {"conv1": (64, 55, 55), "pool1": (64, 27, 27), "conv2": (192, 27, 27), "pool5": (256, 6, 6),
                          "fc7": (4096,), "fc8": (10,)}),
])
def test_one_forward_returns_every_named_activation(arch, size, shapes):
    model = build(arch, 10).eval()
    with torch.no_grad():
        logits, acts = model(torch.randn(2, 3, size, size), return_activations=True)
    assert list(acts) == list(LAYERS)
    for name, shape in shapes.items():
        assert tuple(acts[name].shape[1:]) == shape, name
    assert torch.equal(acts["fc8"], logits)


def test_options_change_the_architecture_not_the_names():
    m = build("paper", 5, activation="tanh", lrn=False, pool=(2, 2), dropout=0.0, groups=1, width=0.5)
    assert isinstance(m.tap("conv1"), torch.nn.Tanh)
    assert not any(isinstance(x, torch.nn.LocalResponseNorm) for x in m.modules())
    assert m.param_layer("conv2").groups == 1
    assert m.param_layer("conv1").out_channels == 48 and m.param_layer("fc6").out_features == 2048
    assert m.tap("pool1").kernel_size == 2
    _, acts = m(torch.randn(1, 3, 227, 227), return_activations=True)
    assert list(acts) == list(LAYERS)
    # rebuilding from the stored spec gives identical keys and shapes
    again = from_spec(m.spec.to_dict())
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in m.state_dict().items()}


def test_paper_groups_are_where_the_paper_puts_them():
    m = build("paper")
    assert [m.param_layer(n).groups for n in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 2, 1, 2, 2]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown architecture"):
        build("vgg")
    with pytest.raises(TypeError, match="unknown option"):
        build("paper", colour=True)
    with pytest.raises(OptionError, match="unknown layer"):   # the visitor's choice: shown as a sentence
        build("paper").tap("conv9")


@pytest.mark.parametrize("size", [5, 4, 1])
def test_local_response_norm_equals_torchs_forward_and_backward(size):
    """The paper's LRN as one 1x1 convolution: torch's numbers (and gradients) for any window size."""
    from alexnet.model import LocalResponseNorm
    g = torch.Generator().manual_seed(size)
    x = (torch.rand(3, 12, 9, 9, generator=g) * 20).requires_grad_(True)   # large values: the norm matters
    x2 = x.detach().clone().requires_grad_(True)
    ours = LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0)(x)
    theirs = torch.nn.LocalResponseNorm(size, alpha=1e-2, beta=0.75, k=2.0)(x2)
    assert (theirs - x2).abs().max() > 0.1 * x2.abs().max()                # a strong normalisation
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    w = torch.randn(theirs.shape, generator=g)
    (ours * w).sum().backward()
    (theirs * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-6)
    assert LocalResponseNorm(size).state_dict() == {}                     # checkpoints are unchanged


def test_cpu_inference_shortcuts_give_the_same_numbers_as_the_plain_forward():
    """Without autograd the convs run CONV_CHUNK photos at a time, ReLU and LRN work in place, and upto="fc7"
    stops after fc7: every output must equal the forward with autograd on (separate buffers, one batch)."""
    from alexnet.model import CONV_CHUNK
    model = build("paper", 5, generator=torch.Generator().manual_seed(0)).eval()
    x = torch.randn(CONV_CHUNK * 2 + 3, 3, 227, 227, generator=torch.Generator().manual_seed(1))
    with torch.enable_grad():
        ref, acts = model(x, return_activations=True)                 # the plain path
    with torch.no_grad():
        logits = model(x)                                             # chunked convs, in-place ReLU/LRN
        fc7 = model(x, upto="fc7")
        _, acts_ng = model(x, return_activations=True)
    assert logits.shape == (len(x), 5) and fc7.shape == (len(x), 4096)
    assert torch.allclose(logits, ref.detach(), atol=1e-5, rtol=1e-4)
    assert torch.allclose(fc7, acts["fc7"].detach(), atol=1e-5, rtol=1e-4)
    for name in ("conv1", "pool1", "conv2", "conv5"):
        assert torch.allclose(acts_ng[name], acts[name].detach(), atol=1e-5, rtol=1e-4), name
    assert (acts_ng["conv1"] >= 0).all() and acts_ng["conv1"].abs().sum() > 0
