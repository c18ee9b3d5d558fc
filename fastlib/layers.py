"""Layers, layer factories and flattened losses used to build fastlib's models (fastai v1's `layers`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from .core import ifnone
from .torch_core import Module, init_default

__all__ = ['Flatten', 'Lambda', 'View', 'ResizeBatch', 'PoolFlatten', 'NormType', 'batchnorm_2d', 'bn_drop_lin',
           'SelfAttention', 'PooledSelfAttention2d', 'conv2d', 'conv2d_trans', 'relu', 'conv_layer',
           'SequentialEx', 'MergeLayer', 'res_block', 'sigmoid_range', 'SigmoidRange', 'PartialLayer',
           'AdaptiveConcatPool2d', 'Debugger', 'icnr', 'PixelShuffle_ICNR', 'FlattenedLoss', 'CrossEntropyFlat',
           'BCEWithLogitsFlat', 'BCEFlat', 'MSELossFlat', 'NoopLoss', 'WassersteinLoss', 'simple_cnn',
           'trunc_normal_', 'embedding', 'BatchNorm1dFlat', 'LabelSmoothingCrossEntropy']


# ---------------------------------------------------------------------------------------------------------------
# Shape layers
# ---------------------------------------------------------------------------------------------------------------

class Lambda(Module):
    "A layer that applies `func` to its input (give it a named function if the model must be pickled)."

    def __init__(self, func: Callable[[Tensor], Tensor]):
        self.func = func

    def forward(self, x: Tensor) -> Tensor:
        return self.func(x)

    def __repr__(self) -> str:
        return f'Lambda({getattr(self.func, "__name__", self.func)})'


class View(Module):
    "Reshape the whole input to `size` (batch dimension included)."

    def __init__(self, *size: int):
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        return x.view(self.size)


class ResizeBatch(Module):
    "Reshape each item of the batch to `size`, keeping the batch dimension."

    def __init__(self, *size: int):
        self.size = size

    def forward(self, x: Tensor) -> Tensor:
        # (B, ...) -> (B, *size)
        return x.view((x.size(0),) + self.size)


class Flatten(Module):
    "Flatten the input to (B, -1), or to a single dimension when `full`."

    def __init__(self, full: bool = False):
        self.full = full

    def forward(self, x: Tensor) -> Tensor:
        # flatten() copes with non-contiguous inputs where view() would fail.
        return x.flatten() if self.full else x.flatten(1)


def PoolFlatten() -> nn.Sequential:
    "Average-pool to one pixel and flatten: (B, C, H, W) -> (B, C)."
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten())


# ---------------------------------------------------------------------------------------------------------------
# Normalisation and linear blocks
# ---------------------------------------------------------------------------------------------------------------

class NormType(Enum):
    "How `conv_layer` normalises: `Batch`, `BatchZero` (scale starts at 0), `Weight`, `Spectral`, `Instance(Zero)`."
    Batch = 1
    BatchZero = 2
    Weight = 3
    Spectral = 4
    Instance = 5
    InstanceZero = 6


_batch_norms = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_instance_norms = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}


def _norm_layer(nf: int, norm_type: NormType, ndim: int = 2) -> nn.Module:
    "A batch or instance norm over `nf` features for `ndim` spatial dims, initialised as `norm_type` says."
    if norm_type in (NormType.Batch, NormType.BatchZero):
        norm = _batch_norms[ndim](nf)
    else:
        norm = _instance_norms[ndim](nf, affine=True)
    with torch.no_grad():
        # A zero scale makes the block start as nothing (a residual block then starts as the identity);
        # the small positive shift is fastai v1's choice for batchnorm_2d.
        zero = norm_type in (NormType.BatchZero, NormType.InstanceZero)
        norm.weight.fill_(0. if zero else 1.)
        norm.bias.fill_(1e-3)
    return norm


def batchnorm_2d(nf: int, norm_type: NormType = NormType.Batch) -> nn.BatchNorm2d:
    "A `BatchNorm2d` over `nf` channels whose weight starts at 0 when `norm_type` is `BatchZero`, else 1."
    return _norm_layer(nf, norm_type if norm_type == NormType.BatchZero else NormType.Batch, ndim=2)


def bn_drop_lin(n_in: int, n_out: int, bn: bool = True, p: float = 0., actn: nn.Module | None = None
                ) -> list[nn.Module]:
    "The layers [BatchNorm1d (if `bn`), Dropout(`p`) (if `p`), Linear(`n_in`, `n_out`), `actn` (if given)]."
    layers: list[nn.Module] = [nn.BatchNorm1d(n_in)] if bn else []
    if p != 0:
        layers.append(nn.Dropout(p))
    layers.append(nn.Linear(n_in, n_out))
    if actn is not None:
        layers.append(actn)
    return layers


class BatchNorm1dFlat(nn.BatchNorm1d):
    "A `BatchNorm1d` that normalises the last axis of an input of any rank, e.g. (B, T, C)."

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            return super().forward(x)
        *lead, nf = x.shape
        # (B, T, C) -> (B*T, C) -> normalise -> (B, T, C)
        return super().forward(x.contiguous().view(-1, nf)).view(*lead, nf)


# ---------------------------------------------------------------------------------------------------------------
# Convolutions
# ---------------------------------------------------------------------------------------------------------------

def _conv1d_spectral(ni: int, nf: int, ks: int = 1, stride: int = 1, padding: int = 0, bias: bool = False
                     ) -> nn.Module:
    "A Kaiming-initialised `Conv1d` under spectral norm (the projections of `SelfAttention`, as in SAGAN)."
    conv = init_default(nn.Conv1d(ni, nf, ks, stride=stride, padding=padding, bias=bias), nn.init.kaiming_normal_)
    return spectral_norm(conv)


class SelfAttention(Module):
    "Self-attention over the positions of a feature map with `n_channels` channels (SAGAN); starts as the identity."

    def __init__(self, n_channels: int):
        # Queries and keys live in a space 8 times smaller than the values (the SAGAN paper's ratio).
        self.query = _conv1d_spectral(n_channels, n_channels // 8)
        self.key = _conv1d_spectral(n_channels, n_channels // 8)
        self.value = _conv1d_spectral(n_channels, n_channels)
        # gamma = 0: the layer returns its input until training makes attention useful.
        self.gamma = nn.Parameter(torch.tensor([0.]))

    def forward(self, x: Tensor) -> Tensor:
        size = x.size()
        x = x.view(*size[:2], -1)                               # (B, C, H, W) -> (B, C, N) with N = H*W
        f, g, h = self.query(x), self.key(x), self.value(x)     # (B, C/8, N), (B, C/8, N), (B, C, N)
        # beta[b, i, j]: how much output position j attends to input position i; sums to 1 over i.
        beta = F.softmax(torch.bmm(f.transpose(1, 2), g), dim=1)  # (B, N, N)
        out = self.gamma * torch.bmm(h, beta) + x               # (B, C, N)
        return out.view(*size).contiguous()


class PooledSelfAttention2d(Module):
    "Self-attention over a feature map with `n_channels` channels whose keys and values are max-pooled 2x (BigGAN)."

    def __init__(self, n_channels: int):
        self.n_channels = n_channels
        self.theta = self._conv(n_channels, n_channels // 8)   # queries
        self.phi = self._conv(n_channels, n_channels // 8)     # keys
        self.g = self._conv(n_channels, n_channels // 2)       # values
        self.o = self._conv(n_channels // 2, n_channels)       # back to the input's channels
        self.gamma = nn.Parameter(torch.tensor([0.]))

    @staticmethod
    def _conv(ni: int, nf: int) -> nn.Module:
        conv = init_default(nn.Conv2d(ni, nf, 1, bias=False), nn.init.kaiming_normal_)
        return spectral_norm(conv)

    def forward(self, x: Tensor) -> Tensor:
        bs, nc, h, w = x.shape
        theta = self.theta(x).view(bs, nc // 8, -1)                       # (B, C/8, N)
        phi = F.max_pool2d(self.phi(x), 2).view(bs, nc // 8, -1)          # (B, C/8, N/4)
        g = F.max_pool2d(self.g(x), 2).view(bs, nc // 2, -1)              # (B, C/2, N/4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)   # (B, N, N/4), sums to 1 over keys
        attended = torch.bmm(g, beta.transpose(1, 2)).view(bs, nc // 2, h, w)  # (B, C/2, H, W)
        return self.gamma * self.o(attended) + x


def conv2d(ni: int, nf: int, ks: int = 3, stride: int = 1, padding: int | None = None, bias: bool = False,
           init: Callable | None = nn.init.kaiming_normal_) -> nn.Conv2d:
    "A `Conv2d` from `ni` to `nf` channels (kernel `ks`, `stride`, `padding` ks//2, `bias`) initialised by `init`."
    padding = ifnone(padding, ks // 2)
    return init_default(nn.Conv2d(ni, nf, kernel_size=ks, stride=stride, padding=padding, bias=bias), init)


def conv2d_trans(ni: int, nf: int, ks: int = 2, stride: int = 2, padding: int = 0, bias: bool = False
                 ) -> nn.ConvTranspose2d:
    "A `ConvTranspose2d` from `ni` to `nf` channels (kernel `ks`, `stride`, `padding`, `bias`); doubles H and W."
    return nn.ConvTranspose2d(ni, nf, kernel_size=ks, stride=stride, padding=padding, bias=bias)


def relu(inplace: bool = False, leaky: float | None = None) -> nn.Module:
    "A ReLU (`inplace` or not), or a LeakyReLU of slope `leaky` when it is given."
    if leaky is not None:
        return nn.LeakyReLU(negative_slope=leaky, inplace=inplace)
    return nn.ReLU(inplace=inplace)


def conv_layer(ni: int, nf: int, ks: int = 3, stride: int = 1, padding: int | None = None, bias: bool | None = None,
               is_1d: bool = False, norm_type: NormType | None = NormType.Batch, use_activ: bool = True,
               leaky: float | None = None, transpose: bool = False, init: Callable | None = nn.init.kaiming_normal_,
               self_attention: bool = False) -> nn.Sequential:
    """Convolution (`ni` -> `nf`, kernel `ks`, `stride`, `padding`, `bias`; `is_1d`, `transpose`, `init`), then ReLU
    (`use_activ`, `leaky`), then the norm of `norm_type`, then optional `self_attention`."""
    if padding is None:
        # 'same' padding for odd kernels; transposed convolutions grow the map and take none.
        padding = 0 if transpose else (ks - 1) // 2
    has_norm_layer = norm_type in (NormType.Batch, NormType.BatchZero, NormType.Instance, NormType.InstanceZero)
    # A norm layer right after the convolution removes any constant, so a bias would be wasted.
    bias = ifnone(bias, not has_norm_layer)
    if transpose:
        conv_cls = nn.ConvTranspose1d if is_1d else nn.ConvTranspose2d
    else:
        conv_cls = nn.Conv1d if is_1d else nn.Conv2d
    conv = init_default(conv_cls(ni, nf, kernel_size=ks, stride=stride, padding=padding, bias=bias), init)
    if norm_type == NormType.Weight:
        # Normalise per output channel: dim 0 of a Conv weight (nf, ni, ...), dim 1 of a ConvTranspose (ni, nf, ...).
        conv = weight_norm(conv, dim=1 if transpose else 0)
    elif norm_type == NormType.Spectral:
        conv = spectral_norm(conv)
    layers: list[nn.Module] = [conv]
    if use_activ:
        layers.append(relu(True, leaky=leaky))
    if has_norm_layer:
        layers.append(_norm_layer(nf, norm_type, ndim=1 if is_1d else 2))
    if self_attention:
        layers.append(SelfAttention(nf))
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------------------------
# Residual and dense blocks
# ---------------------------------------------------------------------------------------------------------------

class SequentialEx(Module):
    "Like `nn.Sequential` over `layers`, but each layer sees the block's input as `x.orig` (for `MergeLayer`)."

    def __init__(self, *layers: nn.Module):
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        res = x
        for layer in self.layers:
            res.orig = x
            new_res = layer(res)
            # Drop the reference so the block's input is not kept alive by every intermediate tensor.
            res.orig = None
            res = new_res
        return res

    def __getitem__(self, i: int) -> nn.Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)

    def append(self, l: nn.Module) -> None:
        "Add the layer `l` at the end."
        self.layers.append(l)

    def extend(self, l: Sequence[nn.Module]) -> None:
        "Add the layers `l` at the end."
        self.layers.extend(l)

    def insert(self, i: int, l: nn.Module) -> None:
        "Insert the layer `l` at position `i`."
        self.layers.insert(i, l)


class MergeLayer(Module):
    "Add the block's input `x.orig` to `x` (a residual connection), or concatenate it on channels when `dense`."

    def __init__(self, dense: bool = False):
        self.dense = dense

    def forward(self, x: Tensor) -> Tensor:
        # dense: (B, C, H, W) and (B, C0, H, W) -> (B, C + C0, H, W)
        return torch.cat([x, x.orig], dim=1) if self.dense else x + x.orig


def res_block(nf: int, dense: bool = False, norm_type: NormType | None = NormType.Batch, bottle: bool = False,
              **conv_kwargs: Any) -> SequentialEx:
    "Two `conv_layer`s on `nf` channels (halved inside when `bottle`) plus the input (concatenated when `dense`)."
    # The second norm starts at zero so the residual block starts as (almost) the identity.
    norm2 = NormType.BatchZero if (not dense and norm_type == NormType.Batch) else norm_type
    nf_inner = nf // 2 if bottle else nf
    return SequentialEx(conv_layer(nf, nf_inner, norm_type=norm_type, **conv_kwargs),
                        conv_layer(nf_inner, nf, norm_type=norm2, **conv_kwargs),
                        MergeLayer(dense))


# ---------------------------------------------------------------------------------------------------------------
# Small layers
# ---------------------------------------------------------------------------------------------------------------

def sigmoid_range(x: Tensor, low: float, high: float) -> Tensor:
    "The sigmoid of `x` rescaled to lie in (`low`, `high`)."
    return torch.sigmoid(x) * (high - low) + low


class SigmoidRange(Module):
    "A layer giving `sigmoid_range(x, low, high)`: outputs in (`low`, `high`)."

    def __init__(self, low: float, high: float):
        self.low = low
        self.high = high

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid_range(x, self.low, self.high)


class PartialLayer(Module):
    "A layer giving `func(x, **kwargs)`."

    def __init__(self, func: Callable[..., Tensor], **kwargs: Any):
        self.func = func
        self.kwargs = kwargs

    def forward(self, x: Tensor) -> Tensor:
        return self.func(x, **self.kwargs)

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())
        return f'{getattr(self.func, "__name__", self.func)}({args})'


class AdaptiveConcatPool2d(Module):
    "Max-pool and average-pool to `sz` (default 1) and concatenate them on channels, max first."

    def __init__(self, sz: int | tuple[int, int] | None = None):
        self.output_size = ifnone(sz, 1)
        self.mp = nn.AdaptiveMaxPool2d(self.output_size)
        self.ap = nn.AdaptiveAvgPool2d(self.output_size)

    def forward(self, x: Tensor) -> Tensor:
        # (B, C, H, W) -> (B, 2*C, sz, sz)
        return torch.cat([self.mp(x), self.ap(x)], dim=1)


class Debugger(Module):
    "A layer that stops in the debugger (Python's `breakpoint()`) with its input `x` in reach, then returns it."

    def forward(self, x: Tensor) -> Tensor:
        breakpoint()
        return x


# ---------------------------------------------------------------------------------------------------------------
# Upsampling
# ---------------------------------------------------------------------------------------------------------------

def icnr(x: Tensor, scale: int = 2, init: Callable = nn.init.kaiming_normal_) -> Tensor:
    "Fill the conv weight `x` (kernels from `init`) so a PixelShuffle(`scale`) after it starts as nearest-neighbour."
    nf, ni, *ks = x.shape
    n_sub = scale ** 2
    if nf % n_sub != 0:
        raise ValueError(f"icnr: the weight has {nf} output channels, which is not a multiple of scale**2 = {n_sub}.")
    # PixelShuffle sends channels c*scale**2 ... c*scale**2 + scale**2 - 1 to the scale x scale block of output
    # channel c: giving those channels one shared kernel makes every block constant (Aitken et al., 2017).
    sub_kernel = init(torch.empty(nf // n_sub, ni, *ks, dtype=x.dtype, device=x.device))
    with torch.no_grad():
        x.copy_(sub_kernel.repeat_interleave(n_sub, dim=0))
    return x


class PixelShuffle_ICNR(Module):
    "Upsample `ni` to `nf` channels by `scale`: 1x1 conv (`norm_type`, ICNR), ReLU (`leaky`), PixelShuffle, `blur`."

    def __init__(self, ni: int, nf: int | None = None, scale: int = 2, blur: bool = False,
                 norm_type: NormType | None = NormType.Weight, leaky: float | None = None):
        nf = ifnone(nf, ni)
        self.conv = conv_layer(ni, nf * scale ** 2, ks=1, norm_type=norm_type, use_activ=False)
        conv = self.conv[0]
        weight = icnr(torch.empty_like(conv.weight), scale)
        with torch.no_grad():
            if parametrize.is_parametrized(conv, 'weight'):
                # Weight or spectral norm: assigning goes through the parametrization's right inverse.
                conv.weight = weight
            else:
                conv.weight.copy_(weight)
        self.shuf = nn.PixelShuffle(scale)
        # Blurring (pad the top-left by one pixel, then 2x2 average) removes checkerboard artefacts
        # (Sugawara et al., 2019) and keeps the size.
        self.pad = nn.ReplicationPad2d((1, 0, 1, 0))
        self.blur = nn.AvgPool2d(2, stride=1)
        self.do_blur = blur
        self.relu = relu(True, leaky=leaky)

    def forward(self, x: Tensor) -> Tensor:
        x = self.shuf(self.relu(self.conv(x)))  # (B, ni, H, W) -> (B, nf, scale*H, scale*W)
        return self.blur(self.pad(x)) if self.do_blur else x


# ---------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------

class FlattenedLoss:
    "`func(*args, **kwargs)` on output with class `axis` moved last and flattened (2D if `is_2d`); `floatify` targets."

    def __init__(self, func: type[nn.Module], *args: Any, axis: int = -1, floatify: bool = False,
                 is_2d: bool = True, **kwargs: Any):
        self.func = func(*args, **kwargs)
        self.axis = axis
        self.floatify = floatify
        self.is_2d = is_2d

    def __repr__(self) -> str:
        return f'FlattenedLoss of {self.func}'

    @property
    def reduction(self) -> str:
        "The reduction of the wrapped loss ('mean', 'sum' or 'none')."
        return self.func.reduction

    @reduction.setter
    def reduction(self, v: str) -> None:
        self.func.reduction = v

    @property
    def weight(self) -> Tensor | None:
        "The class weights of the wrapped loss."
        return self.func.weight

    @weight.setter
    def weight(self, v: Tensor | None) -> None:
        self.func.weight = v

    def _mismatch(self, output: Tensor, target: Tensor, detail: str) -> ValueError:
        return ValueError(f"{type(self.func).__name__} (flattened, axis={self.axis}): output of shape "
                          f"{tuple(output.shape)} does not match target of shape {tuple(target.shape)}: {detail}. "
                          f"Check that the model's last layer gives one output per target value "
                          f"(e.g. as many outputs as there are classes).")

    def __call__(self, output: Tensor, target: Tensor, **kwargs: Any) -> Tensor:
        # Put the class axis last: (B, C, H, W) -> (B, H, W, C). movedim keeps the other axes in order, so they
        # line up with a target that has no class axis, (B, H, W).
        inp = output.movedim(self.axis, -1)
        targ = target
        if target.dim() == output.dim() and target.dim() > 1:
            targ = target.movedim(self.axis, -1)
        if self.floatify:
            targ = targ.float()
        if self.is_2d:
            # One row of class scores per target: (B, H, W, C) -> (B*H*W, C).
            inp = inp.reshape(-1, inp.shape[-1])
            if targ.is_floating_point() and targ.shape == output.movedim(self.axis, -1).shape:
                targ = targ.reshape(-1, inp.shape[-1])   # class probabilities, one row per output row
            else:
                targ = targ.reshape(-1)
            if inp.shape[0] != targ.shape[0]:
                raise self._mismatch(output, target, f"{inp.shape[0]} rows of scores for {targ.shape[0]} targets")
        else:
            inp = inp.reshape(-1)
            targ = targ.reshape(-1)
            if inp.numel() != targ.numel():
                raise self._mismatch(output, target, f"{inp.numel()} output values for {targ.numel()} targets")
        return self.func(inp, targ, **kwargs)


def CrossEntropyFlat(*args: Any, axis: int = -1, **kwargs: Any) -> FlattenedLoss:
    "`nn.CrossEntropyLoss(*args, **kwargs)` with the class `axis` (1 for (B, C, H, W) segmentation) flattened."
    return FlattenedLoss(nn.CrossEntropyLoss, *args, axis=axis, **kwargs)


def BCEWithLogitsFlat(*args: Any, axis: int = -1, floatify: bool = True, **kwargs: Any) -> FlattenedLoss:
    "`nn.BCEWithLogitsLoss(*args, **kwargs)` on flattened output and target (float if `floatify`); class `axis`."
    return FlattenedLoss(nn.BCEWithLogitsLoss, *args, axis=axis, floatify=floatify, is_2d=False, **kwargs)


def BCEFlat(*args: Any, axis: int = -1, floatify: bool = True, **kwargs: Any) -> FlattenedLoss:
    "`nn.BCELoss(*args, **kwargs)` on flattened output and target (float if `floatify`); class `axis`."
    return FlattenedLoss(nn.BCELoss, *args, axis=axis, floatify=floatify, is_2d=False, **kwargs)


def MSELossFlat(*args: Any, axis: int = -1, floatify: bool = True, **kwargs: Any) -> FlattenedLoss:
    "`nn.MSELoss(*args, **kwargs)` on flattened output and target (float if `floatify`); class `axis`."
    return FlattenedLoss(nn.MSELoss, *args, axis=axis, floatify=floatify, is_2d=False, **kwargs)


class NoopLoss(Module):
    "A loss that is the mean of the model's `output` (the targets `args` are ignored)."

    def forward(self, output: Tensor, *args: Any) -> Tensor:
        return output.mean()


class WassersteinLoss(Module):
    "The critic's Wasserstein loss for WGANs: mean of `real` minus mean of `fake`."

    def forward(self, real: Tensor, fake: Tensor) -> Tensor:
        return real.mean() - fake.mean()


class LabelSmoothingCrossEntropy(Module):
    "Cross entropy with targets smoothed by `eps`: (1-eps)*NLL + eps*mean_c(-log p_c), reduced by `reduction`."

    def __init__(self, eps: float = 0.1, reduction: str = 'mean'):
        self.eps = eps
        self.reduction = reduction

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        # output (B, C) or (B, C, d1, ...), target (B,) or (B, d1, ...) of class indices, as F.cross_entropy.
        expected = output.shape[:1] + output.shape[2:]
        if target.shape != expected:
            raise ValueError(f"LabelSmoothingCrossEntropy: output of shape {tuple(output.shape)} does not match "
                             f"target of shape {tuple(target.shape)}: expected a target of class indices of shape "
                             f"{tuple(expected)} (the classes are on axis 1 of the output).")
        log_preds = F.log_softmax(output, dim=1)
        smooth = -log_preds.mean(dim=1)                                   # (B, ...): uniform-target part
        nll = F.nll_loss(log_preds, target, reduction='none')             # (B, ...): true-class part
        loss = (1 - self.eps) * nll + self.eps * smooth
        if self.reduction == 'mean':
            return loss.mean()
        if self.reduction == 'sum':
            return loss.sum()
        return loss


# ---------------------------------------------------------------------------------------------------------------
# Models and initialisation
# ---------------------------------------------------------------------------------------------------------------

def simple_cnn(actns: Sequence[int], kernel_szs: Sequence[int] | None = None, strides: Sequence[int] | None = None,
               bn: bool = False) -> nn.Sequential:
    "`conv_layer`s through channel counts `actns` (`kernel_szs` 3, `strides` 2, `bn` but last), then `PoolFlatten`."
    n_layers = len(actns) - 1
    kernel_szs = ifnone(kernel_szs, [3] * n_layers)
    strides = ifnone(strides, [2] * n_layers)
    layers: list[nn.Module] = []
    for i in range(n_layers):
        norm_type = NormType.Batch if bn and i < n_layers - 1 else None
        layers.append(conv_layer(actns[i], actns[i + 1], kernel_szs[i], stride=strides[i], norm_type=norm_type))
    layers.append(PoolFlatten())
    return nn.Sequential(*layers)


def trunc_normal_(x: Tensor, mean: float = 0., std: float = 1.) -> Tensor:
    "Fill `x` in place with a normal of `mean` and `std` truncated to within 2 std of the mean; returns `x`."
    return nn.init.trunc_normal_(x, mean=mean, std=std, a=mean - 2 * std, b=mean + 2 * std)


def embedding(ni: int, nf: int) -> nn.Embedding:
    "An `nn.Embedding` of `ni` rows of size `nf`, initialised with a truncated normal of std 0.01."
    emb = nn.Embedding(ni, nf)
    trunc_normal_(emb.weight, std=0.01)
    return emb
