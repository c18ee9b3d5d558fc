"""Transfer learning for images: `cnn_learner` (a pretrained body cut from an ImageNet model plus a new head) and
`unet_learner` (a U-Net decoder grown on such a body), with the cut and layer-group split of each architecture."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn

from ..basic_data import DataBunch, DatasetType
from ..basic_train import Learner
from ..callbacks.hooks import num_features_model
from ..core import ifnone, listify
from ..layers import AdaptiveConcatPool2d, Flatten, NormType, bn_drop_lin
from ..torch_core import apply_init, is_pool_type
from . import models
from .models.unet import DynamicUnet

__all__ = ['create_body', 'create_head', 'create_cnn_model', 'cnn_learner', 'create_cnn', 'unet_learner',
           'cnn_config', 'model_meta', 'has_pool_type', 'VisionLearner']


class VisionLearner(Learner):
    "A `Learner` on images, as `cnn_learner` and `unet_learner` build it: adds `TTA` and vision interpretation."

    def TTA(self, beta: float | None = 0.4, scale: float = 1.35, ds_type: DatasetType = DatasetType.Valid,
            activ: Callable | None = None, with_loss: bool = False) -> Any:
        "Predictions on `ds_type` mixed with flipped/zoomed-crop ones (`beta` plain, `scale` zoom; see `fastlib.vision.tta`)."
        from .tta import _TTA
        return _TTA(self, beta=beta, scale=scale, ds_type=ds_type, activ=activ, with_loss=with_loss)

    def tta_only(self, ds_type: DatasetType = DatasetType.Valid, activ: Callable | None = None,
                 scale: float = 1.35) -> Any:
        "Yield the predictions on `ds_type` of each of the 8 augmented versions (`scale` zoom; see `fastlib.vision.tta`)."
        from .tta import _tta_only
        return _tta_only(self, ds_type=ds_type, activ=activ, scale=scale)

    def interpret(self, ds_type: DatasetType = DatasetType.Valid, activ: Callable | None = None) -> Any:
        "A vision ClassificationInterpretation (with `plot_top_losses`) of the predictions on `ds_type`."
        from .interpret import ClassificationInterpretation
        return ClassificationInterpretation.from_learner(self, ds_type=ds_type, activ=activ)


# --- Where to cut each architecture, and how to split it into layer groups -------------------------------------
# `cut`: the body is the children of the model before this index. `split(model)`: the modules that start the 2nd
# and 3rd layer groups of the full model, Sequential(body, head); the head is always the last group.

def _resnet_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[0][6], m[1])          # body[6] = layer3


def _squeezenet_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[0][0][5], m[1])


def _densenet_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[0][0][7], m[1])       # features[7] = transition2


def _vgg_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[0][0][22], m[1])


def _alexnet_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[0][0][6], m[1])


def _mobilenet_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[0][0][10], m[1])      # features[10]: first block at 1/16 resolution


def _xresnet_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[0][6], m[1])          # body[6] = third stage


def _efficientnet_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[0][1][8], m[1])       # blocks[8]: first block of the 112-channel stage


def _default_split(m: nn.Module) -> tuple[nn.Module, ...]:
    return (m[1],)


_resnet_meta = {'cut': -2, 'split': _resnet_split}
_densenet_meta = {'cut': -1, 'split': _densenet_split}
_squeezenet_meta = {'cut': -1, 'split': _squeezenet_split}
_vgg_meta = {'cut': -1, 'split': _vgg_split}
_alexnet_meta = {'cut': -1, 'split': _alexnet_split}
_mobilenet_meta = {'cut': -1, 'split': _mobilenet_split}
_xresnet_meta = {'cut': -3, 'split': _xresnet_split}

model_meta: dict[Callable, dict[str, Any]] = {
    models.resnet18: _resnet_meta, models.resnet34: _resnet_meta, models.resnet50: _resnet_meta,
    models.resnet101: _resnet_meta, models.resnet152: _resnet_meta,
    models.densenet121: _densenet_meta, models.densenet169: _densenet_meta, models.densenet201: _densenet_meta,
    models.densenet161: _densenet_meta,
    models.squeezenet1_0: _squeezenet_meta, models.squeezenet1_1: _squeezenet_meta,
    models.vgg16_bn: _vgg_meta, models.vgg19_bn: _vgg_meta, models.alexnet: _alexnet_meta,
    models.mobilenet_v2: _mobilenet_meta,
    models.xresnet18: _xresnet_meta, models.xresnet34: _xresnet_meta, models.xresnet50: _xresnet_meta,
    models.xresnet101: _xresnet_meta, models.xresnet152: _xresnet_meta, models.xresnet18_deep: _xresnet_meta,
    models.xresnet34_deep: _xresnet_meta, models.xresnet50_deep: _xresnet_meta,
    models.efficientnet_lite0: {'cut': -4, 'split': _efficientnet_split},
}
_default_meta = {'cut': None, 'split': _default_split}


def _fastlib_arch(arch: Callable) -> Callable:
    "torchvision's own builder (`torchvision.models.resnet34`) -> fastlib's wrapper taking `pretrained`."
    if not callable(arch):
        example = f"models.{arch}" if isinstance(arch, str) and hasattr(models, arch) else 'models.resnet34'
        raise TypeError(f"The architecture must be a function that builds the model, e.g. {example}, not the "
                        f"{type(arch).__name__} {arch!r}.")
    if getattr(arch, '__module__', '').startswith('torchvision.models'):
        wrapper = getattr(models.torchvision_models, getattr(arch, '__name__', ''), None)
        if wrapper is not None:
            return wrapper
    return arch


def cnn_config(arch: Callable) -> dict[str, Any]:
    "The cut and split of `arch` from `model_meta` (default: cut at the last pooling layer, split body/head)."
    return model_meta.get(_fastlib_arch(arch), _default_meta)


def has_pool_type(m: nn.Module) -> bool:
    "True when `m` or one of its submodules is a pooling layer."
    return is_pool_type(m) or any(is_pool_type(l) for l in m.modules())


def create_body(arch: Callable, pretrained: bool = True, cut: int | Callable | None = None) -> nn.Sequential:
    "The body of `arch(pretrained)`: its children before `cut` (default: the architecture's, else the last pooling layer), or `cut(model)`."
    arch = _fastlib_arch(arch)
    model = arch(pretrained)
    cut = ifnone(cut, cnn_config(arch)['cut'])
    if cut is None:
        kids = list(model.children())
        pools = [i for i, c in enumerate(kids) if has_pool_type(c)]
        if not pools:
            raise ValueError(f"create_body: {type(model).__name__} has no pooling layer to cut at; pass `cut` "
                             f"(an index into its children, or a function model -> body).")
        cut = pools[-1]
    if isinstance(cut, int):
        return nn.Sequential(*list(model.children())[:cut])
    if callable(cut):
        return cut(model)
    raise TypeError(f"create_body: `cut` must be an int or a function, got {type(cut).__name__}.")


def create_head(nf: int, nc: int, lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                concat_pool: bool = True, bn_final: bool = False) -> nn.Sequential:
    """A head for a body giving `nf` features: pool (concat max+avg if `concat_pool`), flatten, then
    BatchNorm/Dropout(`ps`)/Linear blocks through `lin_ftrs` (default [512]) to `nc` outputs, BatchNorm if `bn_final`."""
    lin_ftrs = [nf, 512, nc] if lin_ftrs is None else [nf, *lin_ftrs, nc]
    ps = listify(ps)
    if len(ps) == 1:
        # One value: the last dropout gets it, the ones before it half of it (fastai v1's rule).
        ps = [ps[0] / 2] * (len(lin_ftrs) - 2) + ps
    if len(ps) != len(lin_ftrs) - 1:
        raise ValueError(f"create_head: {len(ps)} dropout values for {len(lin_ftrs) - 1} linear layers; give one "
                         f"value, or one per layer.")
    actns = [nn.ReLU(inplace=True)] * (len(lin_ftrs) - 2) + [None]
    layers: list[nn.Module] = [AdaptiveConcatPool2d() if concat_pool else nn.AdaptiveAvgPool2d(1), Flatten()]
    for ni, no, p, actn in zip(lin_ftrs[:-1], lin_ftrs[1:], ps, actns):
        layers += bn_drop_lin(ni, no, True, p, actn)
    if bn_final:
        layers.append(nn.BatchNorm1d(lin_ftrs[-1], momentum=0.01))
    return nn.Sequential(*layers)


def create_cnn_model(base_arch: Callable, nc: int, cut: int | Callable | None = None, pretrained: bool = True,
                     lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                     custom_head: nn.Module | None = None, bn_final: bool = False,
                     concat_pool: bool = True) -> nn.Sequential:
    "Sequential(body of `base_arch` cut at `cut`, head for `nc` classes (`lin_ftrs`, `ps`, `bn_final`, `concat_pool`) or `custom_head`)."
    body = create_body(base_arch, pretrained, cut)
    if custom_head is None:
        nf = num_features_model(nn.Sequential(*body.children())) * (2 if concat_pool else 1)
        head = create_head(nf, nc, lin_ftrs, ps=ps, concat_pool=concat_pool, bn_final=bn_final)
    else:
        head = custom_head
    return nn.Sequential(body, head)


def _n_classes(data: DataBunch, who: str) -> int:
    nc = data.c
    if nc is None:
        raise ValueError(f"{who}: the data does not say how many outputs the model needs (data.c is None). "
                         f"Label the data (e.g. label_from_folder) or build the model yourself and use Learner.")
    if nc == 0:   # segmentation masks labelled without their codes
        raise ValueError(f"{who}: the data has no classes (data.c == 0), so the model would have no outputs. For "
                         f"segmentation pass the codes when labelling: label_from_func(get_mask, classes=codes).")
    return nc


def cnn_learner(data: DataBunch, base_arch: Callable, cut: int | Callable | None = None, pretrained: bool = True,
                lin_ftrs: Sequence[int] | None = None, ps: float | Sequence[float] = 0.5,
                custom_head: nn.Module | None = None, split_on: Callable | Sequence[nn.Module] | None = None,
                bn_final: bool = False, init: Callable | None = nn.init.kaiming_normal_, concat_pool: bool = True,
                **kwargs: Any) -> VisionLearner:
    """A learner on `data` with the body of `base_arch` (`cut`, `pretrained`: then frozen but for its batch norms)
    and a new head (`lin_ftrs`, `ps`, `custom_head`, `bn_final`, `concat_pool`; initialised with `init`), split
    into layer groups at `split_on` (default: the architecture's) for discriminative learning rates."""
    meta = cnn_config(base_arch)
    model = create_cnn_model(base_arch, _n_classes(data, 'cnn_learner'), cut, pretrained, lin_ftrs, ps=ps,
                             custom_head=custom_head, bn_final=bn_final, concat_pool=concat_pool)
    learn = VisionLearner(data, model, **kwargs)
    learn.split(ifnone(split_on, meta['split']))
    if pretrained:
        learn.freeze()
    if init is not None:
        apply_init(model[1], init)
    return learn


def create_cnn(data: DataBunch, base_arch: Callable, **kwargs: Any) -> VisionLearner:
    "The old name of `cnn_learner(data, base_arch, **kwargs)`."
    import warnings
    warnings.warn("create_cnn is deprecated: use cnn_learner (same arguments).", DeprecationWarning, stacklevel=2)
    return cnn_learner(data, base_arch, **kwargs)


def _image_size(data: DataBunch) -> tuple[int, int]:
    "The (height, width) of the first training input, as the model will see it."
    x = data.train_ds[0][0]
    if isinstance(x, Tensor):
        return tuple(x.shape[-2:])
    size = x.size() if callable(getattr(x, 'size', None)) else getattr(x, 'size', None)
    if size is None:
        size = x.data.shape[-2:]
    return tuple(int(s) for s in size)


def unet_learner(data: DataBunch, arch: Callable, pretrained: bool = True, blur_final: bool = True,
                 norm_type: NormType | None = None, split_on: Callable | Sequence[nn.Module] | None = None,
                 blur: bool = False, self_attention: bool = False, y_range: tuple[float, float] | None = None,
                 last_cross: bool = True, bottle: bool = False, cut: int | Callable | None = None,
                 **learn_kwargs: Any) -> VisionLearner:
    """A U-Net learner on `data`: the body of `arch` (`pretrained`: frozen; `cut`) as encoder of a `DynamicUnet`
    (`blur`, `blur_final`, `self_attention`, `y_range`, `last_cross`, `bottle`, `norm_type`), split at `split_on`."""
    meta = cnn_config(arch)
    n_classes = _n_classes(data, 'unet_learner')
    body = create_body(arch, pretrained, cut)
    model = DynamicUnet(body, n_classes=n_classes, img_size=_image_size(data), blur=blur,
                        blur_final=blur_final, self_attention=self_attention, y_range=y_range,
                        last_cross=last_cross, bottle=bottle, norm_type=norm_type)
    learn = VisionLearner(data, model, **learn_kwargs)
    learn.split(ifnone(split_on, meta['split']))
    if pretrained:
        learn.freeze()
    return learn
