"""AlexNet in two flavours that share one vocabulary of layer names.

`paper` is the 2012 two-tower network (227 input, LRN, grouped conv2/4/5).
`torchvision` matches `torchvision.models.alexnet` key for key, so the released
IMAGENET1K_V1 weights load unchanged. Both are the same class, built from a
`Spec`: experiments change options, never copy the class.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from alexnet.errors import OptionError
from alexnet.gradients import StridedConv2d, by_hand, lrn

# The one list of named layers, in forward order. Everything else reads it.
LAYERS = ("conv1", "pool1", "conv2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8")
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
FC_LAYERS = ("fc6", "fc7", "fc8")

# (out_channels, kernel, stride, padding, grouped) per conv layer at width 1.
_ARCH = {
    "paper": dict(
        input_size=227,
        convs=((96, 11, 4, 0, False), (256, 5, 1, 2, True), (384, 3, 1, 1, False),
               (384, 3, 1, 1, True), (256, 3, 1, 1, True)),
        fc=4096, lrn=True, groups=2,
    ),
    "torchvision": dict(
        input_size=224,
        convs=((64, 11, 4, 2, False), (192, 5, 1, 2, False), (384, 3, 1, 1, False),
               (256, 3, 1, 1, False), (256, 3, 1, 1, False)),
        fc=4096, lrn=False, groups=1,
    ),
}
ARCHS = tuple(_ARCH)
CONV_CHUNK = 16  # images per conv pass in CPU inference (see AlexNet._pool5)
POOL_OUT = 6  # pool5 is averaged to 6x6 so any input size feeds fc6 (identity at 227/224)


def default_input_size(arch: str) -> int:
    return _ARCH[_check_arch(arch)]["input_size"]


def _check_arch(arch: str) -> str:
    if arch not in _ARCH:
        raise OptionError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHS)}")
    return arch


@dataclass(frozen=True)
class Spec:
    """Everything needed to rebuild a model; stored in every checkpoint's sidecar."""
    arch: str = "paper"
    num_classes: int = 1000
    activation: str = "relu"        # relu | tanh  (the paper's 6x-faster-training claim)
    lrn: bool | None = None         # None = the arch's default (paper: on)
    pool: tuple[int, int] = (3, 2)  # (kernel, stride): 3/2 overlapping as in the paper, or 2/2
    dropout: float = 0.5
    groups: int | None = None       # None = the arch's default (paper: 2)
    width: float = 1.0              # channel multiplier; 0.5 gives 48-128-192-192-128, fc 2048
    extra: dict = field(default_factory=dict, compare=False)

    def resolved(self) -> "Spec":
        a = _ARCH[_check_arch(self.arch)]
        if self.activation not in ("relu", "tanh"):
            raise ValueError(f"activation must be 'relu' or 'tanh', not {self.activation!r}")
        groups = a["groups"] if self.groups is None else int(self.groups)
        if groups not in (1, 2):
            raise ValueError(f"groups must be 1 or 2, not {groups}")
        lrn = a["lrn"] if self.lrn is None else bool(self.lrn)
        pool = tuple(int(v) for v in self.pool)
        return Spec(self.arch, int(self.num_classes), self.activation, lrn, pool,
                    float(self.dropout), groups, float(self.width), dict(self.extra))

    def to_dict(self) -> dict:
        d = asdict(self.resolved())
        d["pool"] = list(d["pool"])
        d.pop("extra")
        return d

    @property
    def input_size(self) -> int:
        return _ARCH[self.arch]["input_size"]


class Dropout(nn.Dropout):
    """nn.Dropout whose masks may come from a generator the trainer owns instead of torch's global one.

    With `generator` set (alexnet.train does, per epoch), a run is reproducible from its seed
    and never touches the process-wide RNG that concurrent requests share. Unset, it is
    exactly nn.Dropout. It holds no tensors, so state dicts are unchanged.
    """

    generator: torch.Generator | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or self.generator is None:
            return super().forward(x)
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p   # (B, D) bool
        return x * keep / (1.0 - self.p)


class LocalResponseNorm(nn.LocalResponseNorm):
    """nn.LocalResponseNorm with the channel window summed by one 1x1 convolution.

    b_c = a_c / (k + alpha/n * sum of a_j^2 over the n channels j around c), as torch computes it
    (zero padding, n // 2 channels before c and (n - 1) // 2 after). torch builds the window with
    an average pool over a padded copy of a^2; here a banded (C, C) matrix of alpha/n does it as a
    1x1 convolution: the same numbers to float rounding, and twice as fast forward and backward on
    a CPU (batch 8, 2 threads: 22 against 51 ms after conv1, 18 against 29 ms after conv2). It holds
    no tensors, so state dicts are unchanged. With a gradient on a CPU it runs alexnet.gradients.lrn, the
    same formula with its backward written out; without one, the in-place inference branch below.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = torch.arange(x.shape[1], device=x.device)
        offset = c[None, :] - c[:, None]                               # (C, C): j - c
        band = ((offset >= -(self.size // 2)) & (offset <= (self.size - 1) // 2)).to(x.dtype) * (self.alpha / self.size)
        if torch.is_grad_enabled() and by_hand(x):
            return lrn(x, band, self.k, self.beta)                     # its backward written out (alexnet.gradients)
        squares = x * x
        window = nn.functional.conv2d(squares, band[:, :, None, None])  # (B, C, H, W): alpha/n * sum of squares
        if self.beta == 0.75 and not torch.is_grad_enabled():
            # Inference (dataset passes, classify): d^-0.75 as rsqrt(d) * sqrt(rsqrt(d)), in place, the sqrt
            # written over `squares` (a fresh 19 MB buffer for 16 photos after conv1 costs its page faults).
            # libm's pow was a tenth of a whole forward pass on a CPU; the same numbers to float rounding (7e-7).
            r = window.add_(self.k).rsqrt_()
            return r.mul_(torch.sqrt(r, out=squares)).mul_(x)
        return x / (self.k + window).pow(self.beta)


class ReLU(nn.ReLU):
    """nn.ReLU that rectifies in place when no gradient is being recorded.

    Inference (dataset passes, classify) then writes no second copy of every conv map. With
    autograd on it is exactly nn.ReLU: a separate output that Captum's GuidedBackprop and every
    hook can rely on. Hooks on the ReLU fire either way; under no_grad, a hook on the Conv2d
    before it sees its output rectified afterwards, so it must copy what it keeps.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) if torch.is_grad_enabled() else torch.relu_(x)


def use_generator(model: nn.Module, generator: torch.Generator | None) -> None:
    """Draw every dropout mask of `model` from `generator` (None: back to torch's global RNG)."""
    for m in model.modules():
        if isinstance(m, Dropout):
            m.generator = generator


class AlexNet(nn.Module):
    """`features` / `avgpool` / `classifier` as in torchvision, so its weights load by key.

    ReLUs are separate, non-inplace modules: Captum's GuidedBackprop swaps their
    backward, and hooks see each named layer's own output.
    """

    def __init__(self, spec: Spec):
        super().__init__()
        self.spec = spec = spec.resolved()
        arch = _ARCH[spec.arch]
        act = ReLU if spec.activation == "relu" else nn.Tanh
        feats: list[nn.Module] = []
        self._taps: dict[str, tuple[str, int]] = {}    # layer name -> (sequential, index) of its output
        self._params: dict[str, tuple[str, int]] = {}  # layer name -> (sequential, index) of its Conv/Linear
        in_ch = 3
        for i, (out, k, s, p, grouped) in enumerate(arch["convs"]):
            name = CONV_LAYERS[i]
            out = max(1, round(out * spec.width))
            g = spec.groups if grouped else 1
            self._params[name] = ("features", len(feats))
            conv = StridedConv2d if s > 1 else nn.Conv2d   # conv1: its input gradient by phases (alexnet.gradients)
            feats.append(conv(in_ch, out, k, stride=s, padding=p, groups=g))
            feats.append(act())
            self._taps[name] = ("features", len(feats) - 1)
            if name in ("conv1", "conv2") and spec.lrn:
                # Paper section 3.3: k=2, n=5, alpha=1e-4, beta=0.75.
                feats.append(LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
            if name in ("conv1", "conv2", "conv5"):
                feats.append(nn.MaxPool2d(spec.pool[0], stride=spec.pool[1]))
                self._taps[{"conv1": "pool1", "conv2": "pool2", "conv5": "pool5"}[name]] = ("features", len(feats) - 1)
            in_ch = out
        self.features = nn.Sequential(*feats)
        self.avgpool = nn.AdaptiveAvgPool2d((POOL_OUT, POOL_OUT))
        fc = max(1, round(arch["fc"] * spec.width))
        cls: list[nn.Module] = []
        for name, (n_in, n_out) in zip(FC_LAYERS, ((in_ch * POOL_OUT * POOL_OUT, fc), (fc, fc), (fc, spec.num_classes))):
            if name != "fc8":
                cls.append(Dropout(spec.dropout))
            self._params[name] = ("classifier", len(cls))
            cls.append(nn.Linear(n_in, n_out))
            if name != "fc8":
                cls.append(act())
            self._taps[name] = ("classifier", len(cls) - 1)
        self.classifier = nn.Sequential(*cls)
        self._tap_index = {seq: {i: n for n, (s, i) in self._taps.items() if s == seq} for seq in ("features", "classifier")}

    def tap(self, name: str) -> nn.Module:
        """The module whose output is layer `name`'s activation (hook it, or give it to Captum)."""
        seq, i = self._taps[_check_layer(name)]
        return getattr(self, seq)[i]

    def param_layer(self, name: str) -> nn.Conv2d | nn.Linear:
        """The Conv2d/Linear holding layer `name`'s weights (pools have none)."""
        seq, i = self._params[_check_layer(name)]
        return getattr(self, seq)[i]

    def param_key(self, name: str) -> str:
        """State-dict prefix of layer `name`, e.g. 'features.0' for conv1."""
        seq, i = self._params[_check_layer(name)]
        return f"{seq}.{i}"

    def forward(self, x: torch.Tensor, return_activations: bool = False, upto: str | None = None):
        """(B, 3, S, S) -> logits (B, K), with {layer: activation} when `return_activations`.

        `upto` ("fc6" or "fc7"): stop there and return that layer's output (after its ReLU), e.g. a dataset
        pass's fc7 features without fc8. A module call either way, so hooks on the model see every pass.
        """
        acts: dict[str, torch.Tensor] = {}
        if return_activations:
            taps = self._tap_index["features"]
            for i, m in enumerate(self.features):
                x = m(x)
                if i in taps:
                    acts[taps[i]] = x
            x = torch.flatten(self.avgpool(x), 1)  # (B, C*6*6) in C,H,W order, as Caffe flattened pool5
        else:
            x = self._pool5(x)
        stop = len(self.classifier) if upto is None else self._taps[_check_fc(upto)][1] + 1
        taps = self._tap_index["classifier"]
        for i, m in enumerate(self.classifier[:stop]):
            x = m(x)
            if i in taps:
                acts[taps[i]] = x
        return (x, acts) if return_activations else x

    def _pool5(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> pool5 flattened (B, C*6*6), C,H,W order as Caffe flattened it.

        Inference on a CPU runs the convs `CONV_CHUNK` images at a time and the fc layers on the
        whole batch: conv1's maps for 16 photos (19 MB) stay near the caches, while fc6/fc7's
        90 MB of weights are read once per batch instead of once per chunk. The shipped model's
        fc7 pass: 14 ms a photo this way, 19.5 in batches of 128, 16 in batches of 16 (2 cores).
        Each image is computed alone either way, so the numbers are the same.
        """
        if torch.is_grad_enabled() or x.device.type != "cpu" or len(x) <= CONV_CHUNK:
            return torch.flatten(self.avgpool(self.features(x)), 1)
        return torch.cat([torch.flatten(self.avgpool(self.features(c)), 1) for c in x.split(CONV_CHUNK)])


def _check_fc(name: str) -> str:
    if name not in FC_LAYERS:
        raise OptionError(f"upto must be one of {', '.join(FC_LAYERS)}, not {name!r}")
    return name


def _check_layer(name: str) -> str:
    if name not in LAYERS:
        raise OptionError(f"unknown layer {name!r}; layers are {', '.join(LAYERS)}")
    return name


def build(arch: str = "paper", num_classes: int = 1000, generator: torch.Generator | None = None,
          **options) -> AlexNet:
    """Build an AlexNet. Options: activation, lrn, pool, dropout, groups, width (see `Spec`).

    `generator`: draw the initial weights from it (PyTorch's default scheme) instead of the
    global RNG, so a server can build the same untrained model without reseeding torch.
    """
    unknown = set(options) - {"activation", "lrn", "pool", "dropout", "groups", "width"}
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)} for alexnet.model.build")
    model = AlexNet(Spec(arch=_check_arch(arch), num_classes=num_classes, **options))
    if generator is not None:
        reinit(model, generator)
    return model


@torch.no_grad()
def reinit(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Conv2d/Linear initialisation (kaiming_uniform a=sqrt(5), uniform bias), from `generator`."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            if m.bias is not None:
                fan_in = m.weight[0].numel()
                bound = 1 / math.sqrt(fan_in)
                nn.init.uniform_(m.bias, -bound, bound, generator=generator)


def from_spec(d: dict) -> AlexNet:
    """Rebuild from `Spec.to_dict()` (a checkpoint sidecar)."""
    d = dict(d)
    return build(d.pop("arch"), d.pop("num_classes"), **{k: (tuple(v) if k == "pool" else v) for k, v in d.items()})


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
