"""A U-Net built around any convolutional encoder (fastai v1's DynamicUnet): the decoder is sized by running the
encoder once on a dummy image and noting where the feature maps shrink.

The skip connections are plain attributes filled by `DynamicUnet.forward` (no hooks stay registered on the
encoder), so the model can be deep-copied, exported and loaded without running code.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...callbacks.hooks import dummy_eval, model_sizes
from ...layers import (MergeLayer, NormType, PixelShuffle_ICNR, SequentialEx, SigmoidRange, batchnorm_2d, conv_layer,
                       relu, res_block)
from ...serialization import register_safe_globals
from ...torch_core import Module, in_channels

__all__ = ['UnetBlock', 'DynamicUnet', 'SkipConnection', 'ResizeToInput']


@register_safe_globals
class SkipConnection:
    "Holds, in `.stored`, the encoder activation a `UnetBlock` concatenates (reads like a forward `Hook`)."

    def __init__(self):
        self.stored: Tensor | None = None

    def __repr__(self) -> str:
        return 'SkipConnection()'


class ResizeToInput(Module):
    "Resize a (B, C, H, W) map to the spatial size of the U-Net's input `x.orig` (nearest neighbour)."

    def forward(self, x: Tensor) -> Tensor:
        size = x.orig.shape[-2:]
        return x if x.shape[-2:] == size else F.interpolate(x, size, mode='nearest')


class UnetBlock(Module):
    """Upsample `up_in` (`up_in_c` channels) 2x, concatenate the encoder map `hook.stored` (`x_in_c` channels),
    then two `conv_layer`s (keeping the channel count, or halving it when `final_div` is False; `blur`, `leaky`,
    `self_attention`)."""

    def __init__(self, up_in_c: int, x_in_c: int, hook: Any, final_div: bool = True, blur: bool = False,
                 leaky: float | None = None, self_attention: bool = False, **kwargs: Any):
        self.hook = hook
        self.shuf = PixelShuffle_ICNR(up_in_c, up_in_c // 2, blur=blur, leaky=leaky, **kwargs)
        self.bn = batchnorm_2d(x_in_c)
        ni = up_in_c // 2 + x_in_c
        nf = ni if final_div else ni // 2
        self.conv1 = conv_layer(ni, nf, leaky=leaky, **kwargs)
        self.conv2 = conv_layer(nf, nf, leaky=leaky, self_attention=self_attention, **kwargs)
        self.relu = relu(leaky=leaky)

    def forward(self, up_in: Tensor) -> Tensor:
        s = self.hook.stored                      # (B, x_in_c, H, W)
        up_out = self.shuf(up_in)                 # (B, up_in_c/2, ~H, ~W)
        if up_out.shape[-2:] != s.shape[-2:]:     # odd sizes: the encoder rounded down somewhere
            up_out = F.interpolate(up_out, s.shape[-2:], mode='nearest')
        cat_x = self.relu(torch.cat([up_out, self.bn(s)], dim=1))
        return self.conv2(self.conv1(cat_x))


def _skip_idxs(sizes: list[torch.Size]) -> list[int]:
    "Indices of the encoder layers whose output is the last one at its resolution (where the next layer shrinks it)."
    widths = np.array([s[-1] for s in sizes])
    idxs = list(np.where(widths[:-1] != widths[1:])[0])
    if widths[0] != widths[1]:
        idxs = [0] + idxs   # the first layer already shrinks its input: keep its output too
    return [int(i) for i in dict.fromkeys(idxs)]


class DynamicUnet(SequentialEx):
    """A U-Net on the `encoder` (an `nn.Sequential`, e.g. `create_body(models.resnet34)`) for `n_classes` outputs
    per pixel, sized on images of `img_size`; `blur`/`blur_final` in the upsamplers, `self_attention` in the third
    block from the end, `y_range` for a sigmoid output range, `last_cross` for a final residual block on the input
    (`bottle` for its bottleneck). `kwargs` (such as `norm_type`) go to the decoder's layers."""

    def __init__(self, encoder: nn.Sequential, n_classes: int, img_size: tuple[int, int] = (256, 256),
                 blur: bool = False, blur_final: bool = True, self_attention: bool = False,
                 y_range: tuple[float, float] | None = None, last_cross: bool = True, bottle: bool = False,
                 **kwargs: Any):
        if not isinstance(encoder, nn.Sequential):
            raise TypeError(f"DynamicUnet needs an nn.Sequential encoder whose children run in order, got "
                            f"{type(encoder).__name__}: build it with create_body(arch).")
        img_size = tuple(img_size)
        sizes = model_sizes(encoder, size=img_size)
        idxs = list(reversed(_skip_idxs(sizes)))          # deepest skip first
        skips = [SkipConnection() for _ in idxs]
        norm_type = kwargs.get('norm_type', NormType.Batch)
        x = dummy_eval(encoder, img_size).detach()
        ni = sizes[-1][1]
        middle_conv = nn.Sequential(conv_layer(ni, ni * 2, norm_type=norm_type),
                                    conv_layer(ni * 2, ni, norm_type=norm_type)).eval()
        with torch.no_grad():
            x = middle_conv(x)
            layers: list[nn.Module] = [encoder, batchnorm_2d(ni), nn.ReLU(), middle_conv]
            for i, (idx, skip) in enumerate(zip(idxs, skips)):
                not_final = i != len(idxs) - 1
                up_in_c, x_in_c = int(x.shape[1]), int(sizes[idx][1])
                skip.stored = torch.zeros(1, *sizes[idx][1:])   # a stand-in of the right shape to size the block
                block = UnetBlock(up_in_c, x_in_c, skip, final_div=not_final, blur=blur and (not_final or blur_final),
                                  self_attention=self_attention and i == len(idxs) - 3, **kwargs).eval()
                x = block(x)
                skip.stored = None
                layers.append(block)
            ni = int(x.shape[1])
            if tuple(sizes[0][-2:]) != img_size:
                layers.append(PixelShuffle_ICNR(ni, **kwargs))
            layers.append(ResizeToInput())
            if last_cross:
                layers.append(MergeLayer(dense=True))
                ni += in_channels(encoder)
                layers.append(res_block(ni, bottle=bottle, **kwargs))
            layers.append(conv_layer(ni, n_classes, ks=1, use_activ=False, norm_type=norm_type))
            if y_range is not None:
                layers.append(SigmoidRange(*y_range))
        super().__init__(*layers)
        self.sfs_idxs, self.sfs = idxs, skips

    def forward(self, x: Tensor) -> Tensor:
        inp = x
        where = {idx: skip for idx, skip in zip(self.sfs_idxs, self.sfs)}
        encoder = self.layers[0]
        try:
            for i, layer in enumerate(encoder):
                x = layer(x)
                if i in where:
                    where[i].stored = x
            for layer in self.layers[1:]:
                x.orig = inp   # what MergeLayer and ResizeToInput read (SequentialEx's convention)
                out = layer(x)
                x.orig = None
                x = out
        finally:
            for skip in self.sfs:
                skip.stored = None   # keep no activation alive (nor in an exported file)
        return x

    def __repr__(self) -> str:
        return f'{type(self).__name__}(skips at encoder layers {self.sfs_idxs})\n' + super().__repr__()
