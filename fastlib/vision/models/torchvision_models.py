"""torchvision's ImageNet models, built with `pretrained=` as fastai v1 calls them, their weights coming through
torchvision's own loading and cache (`$TORCH_HOME/hub/checkpoints`, by default ~/.cache/torch/hub/checkpoints).

A pretrained model whose weights file is not in the cache is downloaded by torchvision only when the download
server answers within a few seconds; otherwise (offline) the call fails at once, naming the file to put where.
Set FASTLIB_OFFLINE=1 to skip the network probe altogether.
"""
from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

__all__ = ['resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'densenet121', 'densenet169',
           'densenet201', 'densenet161', 'vgg16_bn', 'vgg19_bn', 'squeezenet1_0', 'squeezenet1_1', 'alexnet',
           'mobilenet_v2', 'pretrained_weights_file', 'PretrainedWeightsMissing']


class PretrainedWeightsMissing(FileNotFoundError):
    "The pretrained weights of a model are not in torch's cache and cannot be downloaded."


def pretrained_weights_file(name: str) -> Path:
    "Where torchvision's cache keeps the default ImageNet weights of the torchvision model `name`."
    weights = torchvision.models.get_model_weights(name).DEFAULT
    return Path(torch.hub.get_dir()) / 'checkpoints' / os.path.basename(urlparse(weights.url).path)


def _can_reach(url: str, timeout: float = 3.) -> bool:
    "True when a TCP connection to `url`'s host opens within `timeout` seconds (run in a thread: DNS has no timeout)."
    if os.environ.get('FASTLIB_OFFLINE', '').lower() in ('1', 'true', 'yes'):
        return False
    host = urlparse(url).hostname
    result = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(result and result[0])


def _torchvision_model(name: str, pretrained: bool, progress: bool = True, **kwargs: Any) -> nn.Module:
    "The torchvision model `name`, with its default ImageNet weights when `pretrained`."
    builder = getattr(torchvision.models, name)
    if not pretrained:
        return builder(weights=None, **kwargs)
    weights = torchvision.models.get_model_weights(name).DEFAULT
    file = pretrained_weights_file(name)
    if not file.is_file() and not _can_reach(weights.url):
        raise PretrainedWeightsMissing(
            f"The pretrained weights of {name} are not in torch's cache and {urlparse(weights.url).hostname} cannot "
            f"be reached. Download {weights.url} and put it at {file} (folder {file.parent}: set TORCH_HOME to use "
            f"another cache), or pass pretrained=False to train from random weights.")
    return builder(weights=weights, progress=progress, **kwargs)


def resnet18(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's ResNet-18 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('resnet18', pretrained, progress, **kwargs)


def resnet34(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's ResNet-34 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('resnet34', pretrained, progress, **kwargs)


def resnet50(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's ResNet-50 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('resnet50', pretrained, progress, **kwargs)


def resnet101(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's ResNet-101 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('resnet101', pretrained, progress, **kwargs)


def resnet152(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's ResNet-152 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('resnet152', pretrained, progress, **kwargs)


def densenet121(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's DenseNet-121 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('densenet121', pretrained, progress, **kwargs)


def densenet169(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's DenseNet-169 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('densenet169', pretrained, progress, **kwargs)


def densenet201(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's DenseNet-201 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('densenet201', pretrained, progress, **kwargs)


def densenet161(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's DenseNet-161 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('densenet161', pretrained, progress, **kwargs)


def vgg16_bn(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's VGG-16 with batch norm (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('vgg16_bn', pretrained, progress, **kwargs)


def vgg19_bn(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's VGG-19 with batch norm (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('vgg19_bn', pretrained, progress, **kwargs)


def squeezenet1_0(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's SqueezeNet 1.0 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('squeezenet1_0', pretrained, progress, **kwargs)


def squeezenet1_1(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's SqueezeNet 1.1 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('squeezenet1_1', pretrained, progress, **kwargs)


def alexnet(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's AlexNet (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('alexnet', pretrained, progress, **kwargs)


def mobilenet_v2(pretrained: bool = False, progress: bool = True, **kwargs: Any) -> nn.Module:
    "torchvision's MobileNetV2 (ImageNet weights when `pretrained`; `kwargs` go to torchvision)."
    return _torchvision_model('mobilenet_v2', pretrained, progress, **kwargs)
