"""Vision interpretation: Grad-CAM against the class activation map computed by hand, plot_top_losses, and
segmentation interpretation against loops over pixels."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastlib.basic_data import DataBunch
from fastlib.basic_train import Learner
from fastlib.layers import Flatten
from fastlib.testing import FakeDataset
from fastlib.vision import ClassificationInterpretation, SegmentationInterpretation
from fastlib.vision.interpret import gradcam


def _tiny_cnn(c=3):
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), Flatten(), nn.Linear(4, c))
    return nn.Sequential(body, head)


def test_gradcam_equals_class_activation_map():
    # With global average pooling then a linear layer, d out[c] / d A_k(i, j) = W[c, k] / (h*w), so Grad-CAM is
    # ReLU(sum_k W[c, k] A_k) / (h*w): the class activation map of Zhou et al. (2016).
    model = _tiny_cnn()
    x = torch.randn(1, 3, 6, 5)
    acts = model[0](x)[0].detach()                        # (4, 6, 5)
    w = model[1][2].weight.detach()                       # (3, 4)
    for cls in range(3):
        expected = F.relu((w[cls][:, None, None] * acts).sum(0)) / (6 * 5)
        torch.testing.assert_close(gradcam(model, x, cls), expected)
    assert all(p.grad is None for p in model.parameters())   # gradients are cleared afterwards
    assert model.training


def _classification_learner(n=10, size=8):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 3, size, size, generator=g), torch.randint(0, 3, (n,), generator=g)
    ds = FakeDataset(x, y, ['cat', 'dog', 'bird'])
    data = DataBunch.create(ds, ds, bs=4, num_workers=0, device='cpu')
    return Learner(data, _tiny_cnn(), loss_func=nn.CrossEntropyLoss())


def test_vision_interpretation_from_learner_and_top_losses():
    learn = _classification_learner()
    interp = ClassificationInterpretation.from_learner(learn)
    assert isinstance(interp, ClassificationInterpretation)
    x, y = learn.data.valid_ds.x, learn.data.valid_ds.y
    expected = F.cross_entropy(learn.model.eval()(x), y, reduction='none').detach()
    values, idxs = interp.top_losses(4)
    torch.testing.assert_close(values, expected.sort(descending=True).values[:4])


def test_plot_top_losses_titles_and_heatmaps():
    learn = _classification_learner(size=8)
    interp = ClassificationInterpretation.from_learner(learn)
    fig = interp.plot_top_losses(5, heatmap=True, heatmap_thresh=16, return_fig=True)
    axes = fig.axes
    assert len(axes) == 6   # ceil(sqrt(5)) = 3 columns, 2 rows
    values, idxs = interp.top_losses(5)
    for ax, loss, i in zip(axes, values, idxs):
        i = int(i)
        actual, pred = int(interp.y_true[i]), int(interp.preds[i].argmax())
        prob = float(interp.preds[i][actual])
        assert ax.get_title() == f'{interp.classes[pred]}/{interp.classes[actual]} / {float(loss):.2f} / {prob:.2f}'
        assert len(ax.images) == 2   # the image and its 8x8 Grad-CAM (64 cells >= 16)
    assert all(not ax.axison for ax in axes[5:])
    plt.close(fig)
    fig = interp.plot_top_losses(2, largest=False, heatmap=True, heatmap_thresh=65, return_fig=True)
    assert [len(ax.images) for ax in fig.axes[:2]] == [1, 1]   # 64 cells < 65: no heatmap
    small = interp.top_losses(2, largest=False)[0]
    assert fig.axes[0].get_title().split(' / ')[1] == f'{float(small[0]):.2f}'
    plt.close(fig)


def _segmentation_interp():
    g = torch.Generator().manual_seed(2)
    n, c, h, w = 3, 4, 5, 6
    preds = torch.randn(n, c, h, w, generator=g).softmax(1)
    y = torch.randint(0, c, (n, 1, h, w), generator=g)
    y[:, :, 0, 0] = 0
    losses = F.nll_loss(preds.log(), y[:, 0], reduction='none').view(-1)   # per pixel, flattened
    ds = FakeDataset(torch.randn(n, 3, h, w), y, ['sky', 'road', 'car', 'Void'])
    data = DataBunch.create(ds, ds, bs=2, num_workers=0, device='cpu', no_check=True)
    learn = Learner(data, nn.Conv2d(3, c, 1))
    return SegmentationInterpretation(learn, preds, y, losses), preds, y[:, 0], losses


def test_segmentation_top_losses_per_image():
    interp, preds, y, losses = _segmentation_interp()
    per_image = losses.view(3, -1).mean(1)
    values, idxs = interp.top_losses((5, 6), k=2)
    torch.testing.assert_close(values, per_image.sort(descending=True).values[:2])
    assert idxs.tolist() == per_image.argsort(descending=True)[:2].tolist()
    assert interp.top_losses(largest=False)[1].tolist() == per_image.argsort().tolist()


def test_segmentation_confusion_and_iou():
    interp, preds, y, _ = _segmentation_interp()
    pred = preds.argmax(1)
    cm = np.zeros((4, 4), dtype=int)
    for a, p in zip(y.flatten().tolist(), pred.flatten().tolist()):
        cm[a, p] += 1
    np.testing.assert_array_equal(interp.confusion_matrix(), cm)
    ious = interp.per_class_iou()
    for k, name in enumerate(interp.classes):
        inter = ((y == k) & (pred == k)).sum().item()
        union = ((y == k) | (pred == k)).sum().item()
        assert ious[name] == pytest.approx(inter / union) if union else math.isnan(ious[name])
    kept = [v for n, v in ious.items() if n != 'Void' and not math.isnan(v)]
    assert interp.mean_iou(ignore=['Void']) == pytest.approx(np.mean(kept))


def test_segmentation_plots():
    interp, *_ = _segmentation_interp()
    fig = interp.show_xyz(1, classes=['sky', 'road'], return_fig=True)
    shown = fig.axes[1].images[0].get_array()
    true = interp.y_true[1].numpy()
    assert np.isnan(np.asarray(shown, dtype=float)[true >= 2]).all()   # classes not asked for are left blank
    plt.close(fig)
    fig = interp.plot_per_class_iou(return_fig=True)
    assert len(fig.axes[0].patches) == sum(not math.isnan(v) for v in interp.per_class_iou().values())
    plt.close(fig)


def test_object_detection_interpretation_says_it_is_not_available():
    from fastlib.vision.interpret import ObjectDetectionInterpretation
    with pytest.raises(NotImplementedError, match=r'Use `learn.get_preds\(\)` and `learn.show_results\(\)`'):
        ObjectDetectionInterpretation(None, None, None, None)
