"""alexnet.gradients: conv1's input gradient by phases and LRN's backward written out give torch's numbers
(first and second derivatives), and the model takes them exactly when a pass differentiates its input."""
import pytest
import torch
import torch.nn.functional as F

import alexnet.gradients as G
import alexnet.model as M
from alexnet.gradients import StridedConv2d, conv_input_grad, lrn
from alexnet.model import LocalResponseNorm, build


@pytest.mark.parametrize("k,s,p,size", [
    (11, 4, 0, 227),     # the paper's conv1: 12 = 3 taps x 4, one row of zeros past the kernel
    (11, 4, 2, 224),     # torchvision's conv1: padded
    (11, 4, 0, 230),     # three rows past the last window: no gradient there
    (5, 2, 1, 17),
    (4, 4, 0, 16),       # kernel = stride: one tap per phase
    (3, 2, 0, 10),
])
def test_input_gradient_by_phases_is_torchs(k, s, p, size):
    g = torch.Generator().manual_seed(k * 100 + size)
    weight = torch.randn(6, 3, k, k, generator=g, dtype=torch.float64)
    out = (size + 2 * p - k) // s + 1
    grad_out = torch.randn(2, 6, out, out, generator=g, dtype=torch.float64)
    ours = conv_input_grad(grad_out, weight, (size, size), s, p)
    theirs = torch.nn.grad.conv2d_input((2, 3, size, size), weight, grad_out, stride=s, padding=p)
    assert ours.shape == theirs.shape == (2, 3, size, size)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)


def test_strided_conv_first_and_second_derivatives_are_torchs():
    conv = StridedConv2d(2, 3, 5, stride=2, padding=1).double()
    x = torch.randn(2, 2, 11, 11, dtype=torch.float64, requires_grad=True)
    assert conv(x).grad_fn.name() == "_PhaseConvBackward"                  # the written-out path was taken
    params = (x, conv.weight, conv.bias)
    assert torch.autograd.gradcheck(lambda *a: G._PhaseConv.apply(*a, 2, 1), params)
    assert torch.autograd.gradgradcheck(lambda *a: G._PhaseConv.apply(*a, 2, 1), params)


def test_strided_conv_is_nn_conv2d_when_the_input_needs_no_gradient():
    """Training (weight gradients only), inference and GPU-like cases run nn.Conv2d's own forward."""
    conv = StridedConv2d(3, 4, 11, stride=4)
    x = torch.randn(1, 3, 35, 35)
    assert conv(x).grad_fn.name().startswith("Convolution")                 # weights need grads, the input none
    assert conv.state_dict().keys() == torch.nn.Conv2d(3, 4, 11, stride=4).state_dict().keys()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias, stride=4))


def test_lrn_values_and_derivatives_are_torchs():
    x = (torch.randn(2, 7, 5, 5, dtype=torch.float64) * 30).relu().requires_grad_()
    ours = LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0)
    y = ours(x)
    assert y.grad_fn.name() == "_LRNBackward"
    theirs = torch.nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0)(x)
    torch.testing.assert_close(y, theirs)
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(theirs, x, g)[0])
    band = ((torch.arange(7)[None] - torch.arange(7)[:, None]).abs() <= 2).double() * (1e-2 / 5)
    small = x[:1, :, :3, :3].detach().clone().requires_grad_()
    for beta in (0.75, 0.5):                                                # the rsqrt path and the pow path
        assert torch.autograd.gradcheck(lambda a: lrn(a, band, 2.0, beta), (small,))
        assert torch.autograd.gradgradcheck(lambda a: lrn(a, band, 2.0, beta), (small,))


def test_lrn_with_an_even_window_is_torchs():
    """An even size puts n // 2 channels before c and (n - 1) // 2 after: the band is not symmetric, and the
    backward must use its transpose."""
    x = (torch.randn(1, 6, 4, 4, dtype=torch.float64) * 30).relu().requires_grad_()
    y, theirs = LocalResponseNorm(4, alpha=1e-2)(x), torch.nn.LocalResponseNorm(4, alpha=1e-2)(x)
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(theirs, x, g)[0])


@pytest.mark.parametrize("arch", ["paper", "torchvision"])
def test_a_models_pixel_gradient_is_autograds(arch, monkeypatch):
    """The saliency of a whole model is the same with the written-out backwards as with autograd's."""
    model = build(arch, 10, generator=torch.Generator().manual_seed(0)).eval()
    size = 227 if arch == "paper" else 224
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))

    def pixel_grad():
        xi = x.clone().requires_grad_()
        return torch.autograd.grad(model(xi)[:, 3].sum(), xi)[0]
    fast = pixel_grad()
    monkeypatch.setattr(G, "by_hand", lambda t: False)
    monkeypatch.setattr(M, "by_hand", lambda t: False)
    slow = pixel_grad()
    assert fast.abs().max() > 0
    torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-6 * float(slow.abs().max()))
