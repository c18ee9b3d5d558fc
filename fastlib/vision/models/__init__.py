"""Architectures for `cnn_learner` and `unet_learner`: torchvision's ImageNet models, XResNet, EfficientNet-Lite0,
`simple_cnn`, and the U-Net pieces (`from fastlib.vision import models; models.resnet34`)."""
from ...layers import simple_cnn
from . import efficientnet, torchvision_models, unet, xresnet
from .efficientnet import *
from .torchvision_models import *
from .unet import *
from .xresnet import *

__all__ = sorted(set(torchvision_models.__all__ + xresnet.__all__ + efficientnet.__all__ + unet.__all__
                     + ['simple_cnn']))
