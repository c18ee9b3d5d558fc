"""XResNet: the ResNet-D of "Bag of Tricks for Image Classification with CNNs" (He et al., 2019).

Tricks: a stem of three 3x3 convolutions instead of one 7x7; in downsampling blocks the stride sits on the 3x3
convolution (not the first 1x1), and the shortcut averages 2x2 before its 1x1 convolution instead of skipping
pixels with a strided 1x1; the last batch norm of each residual branch starts at zero, so each block starts as
the identity. No pretrained weights: train from scratch (`pretrained=False`).
"""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ...layers import Flatten
from ...torch_core import Module

__all__ = ['XResNet', 'ResBlock', 'xresnet18', 'xresnet34', 'xresnet50', 'xresnet101', 'xresnet152',
           'xresnet18_deep', 'xresnet34_deep', 'xresnet50_deep']


def _conv_bn(ni: int, nf: int, ks: int = 3, stride: int = 1, zero_bn: bool = False, act: bool = True
             ) -> nn.Sequential:
    "Conv (`ks`, `stride`, no bias, Kaiming init), batch norm (scale 0 when `zero_bn`), ReLU when `act`."
    conv = nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False)
    nn.init.kaiming_normal_(conv.weight, nonlinearity='relu')
    bn = nn.BatchNorm2d(nf)
    nn.init.constant_(bn.weight, 0. if zero_bn else 1.)
    layers: list[nn.Module] = [conv, bn]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResBlock(Module):
    "A residual block from `ni`*`expansion` to `nh`*`expansion` channels at `stride` (basic if `expansion` is 1, else bottleneck)."

    def __init__(self, expansion: int, ni: int, nh: int, stride: int = 1):
        nf, ni = nh * expansion, ni * expansion
        if expansion == 1:
            self.convs = nn.Sequential(_conv_bn(ni, nh, 3, stride), _conv_bn(nh, nf, 3, zero_bn=True, act=False))
        else:
            self.convs = nn.Sequential(_conv_bn(ni, nh, 1), _conv_bn(nh, nh, 3, stride),
                                       _conv_bn(nh, nf, 1, zero_bn=True, act=False))
        # ResNet-D shortcut: average-pool then 1x1 conv, so no input pixel is dropped.
        self.idconv = nn.Identity() if ni == nf else _conv_bn(ni, nf, 1, act=False)
        self.pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.convs(x) + self.idconv(self.pool(x)))


class XResNet(nn.Sequential):
    """An XResNet with `layers[i]` blocks in stage i, `expansion` 1 (basic blocks) or 4 (bottlenecks), `c_in`
    input channels and `c_out` outputs: [stem x3, max-pool, stages..., avg-pool, flatten, linear]."""

    def __init__(self, expansion: int, layers: list[int], c_in: int = 3, c_out: int = 1000):
        stem_szs = [c_in, 32, 32, 64]
        stem = [_conv_bn(stem_szs[i], stem_szs[i + 1], stride=2 if i == 0 else 1) for i in range(3)]
        # Stage widths before expansion; stages past the fourth (the `_deep` models) stay at 256.
        block_szs = [64 // expansion, 64, 128, 256, 512] + [256] * (len(layers) - 4)
        stages = [self._make_stage(expansion, block_szs[i], block_szs[i + 1], n, stride=1 if i == 0 else 2)
                  for i, n in enumerate(layers)]
        super().__init__(*stem, nn.MaxPool2d(kernel_size=3, stride=2, padding=1), *stages,
                         nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(block_szs[len(layers)] * expansion, c_out))

    @staticmethod
    def _make_stage(expansion: int, ni: int, nf: int, n_blocks: int, stride: int) -> nn.Sequential:
        return nn.Sequential(*[ResBlock(expansion, ni if i == 0 else nf, nf, stride if i == 0 else 1)
                               for i in range(n_blocks)])


def _xresnet(name: str, expansion: int, layers: list[int], pretrained: bool, **kwargs: Any) -> XResNet:
    if pretrained:
        raise ValueError(f"fastlib has no pretrained weights for {name}: pass pretrained=False (e.g. "
                         f"cnn_learner(data, models.{name}, pretrained=False)) to train it from scratch.")
    return XResNet(expansion, layers, **kwargs)


def xresnet18(pretrained: bool = False, **kwargs: Any) -> XResNet:
    "XResNet-18 (`kwargs`: c_in, c_out); `pretrained` must be False."
    return _xresnet('xresnet18', 1, [2, 2, 2, 2], pretrained, **kwargs)


def xresnet34(pretrained: bool = False, **kwargs: Any) -> XResNet:
    "XResNet-34 (`kwargs`: c_in, c_out); `pretrained` must be False."
    return _xresnet('xresnet34', 1, [3, 4, 6, 3], pretrained, **kwargs)


def xresnet50(pretrained: bool = False, **kwargs: Any) -> XResNet:
    "XResNet-50 (`kwargs`: c_in, c_out); `pretrained` must be False."
    return _xresnet('xresnet50', 4, [3, 4, 6, 3], pretrained, **kwargs)


def xresnet101(pretrained: bool = False, **kwargs: Any) -> XResNet:
    "XResNet-101 (`kwargs`: c_in, c_out); `pretrained` must be False."
    return _xresnet('xresnet101', 4, [3, 4, 23, 3], pretrained, **kwargs)


def xresnet152(pretrained: bool = False, **kwargs: Any) -> XResNet:
    "XResNet-152 (`kwargs`: c_in, c_out); `pretrained` must be False."
    return _xresnet('xresnet152', 4, [3, 8, 36, 3], pretrained, **kwargs)


def xresnet18_deep(pretrained: bool = False, **kwargs: Any) -> XResNet:
    "XResNet-18 with two more single-block stages (`kwargs`: c_in, c_out); `pretrained` must be False."
    return _xresnet('xresnet18_deep', 1, [2, 2, 2, 2, 1, 1], pretrained, **kwargs)


def xresnet34_deep(pretrained: bool = False, **kwargs: Any) -> XResNet:
    "XResNet-34 with two more single-block stages (`kwargs`: c_in, c_out); `pretrained` must be False."
    return _xresnet('xresnet34_deep', 1, [3, 4, 6, 3, 1, 1], pretrained, **kwargs)


def xresnet50_deep(pretrained: bool = False, **kwargs: Any) -> XResNet:
    "XResNet-50 with two more single-block stages (`kwargs`: c_in, c_out); `pretrained` must be False."
    return _xresnet('xresnet50_deep', 4, [3, 4, 6, 3, 1, 1], pretrained, **kwargs)
