"""Looking at what a vision model got wrong: top losses with an optional Grad-CAM heatmap, and segmentation
interpretation (per-image top losses, pixel confusion matrix, per-class IoU)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import train
from ..basic_data import DatasetType
from ..basic_train import Learner
from ..callbacks.hooks import hook_output
from ..core import ifnone
from ..torch_core import defaults, to_np

__all__ = ['ClassificationInterpretation', 'SegmentationInterpretation', 'ObjectDetectionInterpretation', 'gradcam']


def gradcam(model: nn.Module, xb: Tensor, cls: int, layer: nn.Module | None = None) -> Tensor:
    """The Grad-CAM map (Selvaraju et al., 2017) of class `cls` for the one-image batch `xb`, at the output of
    `layer` (default `model[0]`, the body of a `cnn_learner` model): ReLU(sum_k alpha_k A_k) with A_k the k-th
    activation map and alpha_k the spatial mean of d output[cls] / d A_k. Shape (h, w) of that layer's output."""
    if layer is None:
        if not isinstance(model, nn.Sequential):
            raise ValueError(f"gradcam: pass `layer` (the module whose output to explain): {type(model).__name__} "
                             f"is not a (body, head) Sequential as cnn_learner builds.")
        layer = model[0]
    was_training = model.training
    model.eval()
    try:
        with hook_output(layer) as hook_a, hook_output(layer, grad=True) as hook_g:
            xb = xb.detach().requires_grad_(True)  # so the activations of a frozen body carry a gradient
            with torch.enable_grad():
                out = model(xb)
                out[0, int(cls)].backward()
        acts = hook_a.stored[0].float()          # (C, h, w)
        grads = hook_g.stored[0][0].float()      # (C, h, w)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)        # leave no gradient behind in the learner's parameters
    alpha = grads.mean(dim=(1, 2))               # (C,)
    return F.relu((acts * alpha[:, None, None]).sum(0)).detach().cpu()


def _show_input(x: Any, ax: Any, title: str | None = None) -> None:
    "Draw the input item `x` on `ax`: with its own `show` when it has one, else as a (C, H, W) tensor."
    if hasattr(x, 'show'):
        x.show(ax=ax, title=title)
        return
    t = x.detach().cpu().float() if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x)).float()
    if t.dim() == 3:
        t = t.permute(1, 2, 0) if t.shape[0] in (1, 3) else t
        t = t.squeeze(-1) if t.shape[-1] == 1 else t
    t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-8)   # any range (e.g. normalised) -> [0, 1]
    ax.imshow(to_np(t), cmap='gray' if t.dim() == 2 else None)
    ax.axis('off')
    if title:
        ax.set_title(title)


def _item_size(x: Any) -> tuple[int, int]:
    "(height, width) of an input item (fastlib Image or tensor)."
    if isinstance(x, Tensor):
        return tuple(x.shape[-2:])
    size = x.size() if callable(getattr(x, 'size', None)) else getattr(x, 'size', None)
    return tuple(int(s) for s in (size if size is not None else x.data.shape[-2:]))


class ClassificationInterpretation(train.ClassificationInterpretation):
    "Interpretation of an image classifier: the core's confusion matrix plus `plot_top_losses` with Grad-CAM."

    def plot_top_losses(self, k: int, largest: bool = True, figsize: tuple[int, int] = (12, 12),
                        heatmap: bool = False, heatmap_thresh: int = 16, return_fig: bool | None = None,
                        alpha: float = 0.6, cmap: str = 'magma') -> Any:
        """Show the `k` images with the largest (or smallest if not `largest`) losses, titled prediction/actual/
        loss/probability of the actual class; with `heatmap`, overlay the Grad-CAM of the actual class when the
        body's output map has at least `heatmap_thresh` cells."""
        import matplotlib.pyplot as plt
        values, idxs = self.top_losses(k, largest)
        k = len(idxs)
        cols = math.ceil(math.sqrt(k))
        rows = math.ceil(k / cols)
        fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
        fig.suptitle('prediction/actual/loss/probability', weight='bold', size=14)
        for ax in axes.flat[k:]:
            ax.axis('off')
        for ax, loss, idx in zip(axes.flat, values, idxs):
            idx = int(idx)
            x, y = self.ds[idx]
            actual = int(self.y_true[idx])
            predicted = int(self.pred_class[idx])
            title = (f'{self.classes[predicted]}/{self.classes[actual]} / {float(loss):.2f} / '
                     f'{float(self.preds[idx][actual]):.2f}')
            _show_input(x, ax, title=title)
            if heatmap:
                xb, _ = self.data.one_item(x)
                cam = gradcam(self.learn.model, xb, actual)
                if cam.shape[-1] * cam.shape[-2] >= heatmap_thresh:
                    h, w = _item_size(x)
                    ax.imshow(to_np(cam), alpha=alpha, extent=(0, w, h, 0), interpolation='bilinear', cmap=cmap)
        return fig if ifnone(return_fig, defaults.return_fig) else None


class SegmentationInterpretation(train.Interpretation):
    """Interpretation of a segmentation model: `preds` (N, C, H, W) class scores, `y_true` (N, [1,] H, W) codes,
    `losses` per pixel. Images ranked by mean pixel loss, a pixel confusion matrix, per-class IoU."""

    def __init__(self, learn: Learner, preds: Tensor, y_true: Tensor, losses: Tensor,
                 ds_type: DatasetType = DatasetType.Valid):
        super().__init__(learn, preds, y_true, losses, ds_type)
        self.pred_class = preds.argmax(dim=1)                       # (N, H, W)
        self.y_true = y_true.view(self.pred_class.shape).long()     # (N, H, W)
        self.classes = self.data.classes or [str(i) for i in range(preds.shape[1])]

    def top_losses(self, sizes: tuple[int, int] | None = None, k: int | None = None, largest: bool = True
                   ) -> tuple[Tensor, Tensor]:
        "The `k` largest (smallest if not `largest`) mean pixel losses per image (masks of `sizes`, default the preds') and their indices."
        sizes = ifnone(sizes, tuple(self.pred_class.shape[-2:]))
        per_image = self.losses.view(-1, sizes[0] * sizes[1]).mean(1)
        return per_image.topk(ifnone(k, len(per_image)), largest=largest)

    def confusion_matrix(self) -> np.ndarray:
        "Pixel counts: row = actual class, column = predicted class."
        n = len(self.classes)
        idx = self.y_true.reshape(-1) * n + self.pred_class.reshape(-1)
        return to_np(torch.bincount(idx, minlength=n * n).view(n, n))

    def per_class_iou(self) -> dict[str, float]:
        "Intersection over union of each class present in the targets or the predictions (`nan` for the others)."
        cm = self.confusion_matrix().astype(float)
        inter = np.diag(cm)
        union = cm.sum(0) + cm.sum(1) - inter
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = np.where(union > 0, inter / union, np.nan)
        return {c: float(v) for c, v in zip(self.classes, iou)}

    def mean_iou(self, ignore: Sequence[str] = ()) -> float:
        "Mean IoU over the classes present, leaving out the class names in `ignore` (e.g. ['Void'])."
        vals = [v for c, v in self.per_class_iou().items() if c not in ignore and not math.isnan(v)]
        return float(np.mean(vals)) if vals else float('nan')

    def plot_per_class_iou(self, figsize: tuple[int, int] = (10, 4), return_fig: bool | None = None) -> Any:
        "Bar chart of each present class's IoU."
        import matplotlib.pyplot as plt
        ious = {c: v for c, v in self.per_class_iou().items() if not math.isnan(v)}
        fig, ax = plt.subplots(figsize=figsize)
        ax.bar(range(len(ious)), list(ious.values()))
        ax.set_xticks(range(len(ious)))
        ax.set_xticklabels(list(ious.keys()), rotation=90)
        ax.set_ylabel('IoU')
        fig.tight_layout()
        return fig if ifnone(return_fig, defaults.return_fig) else None

    def show_xyz(self, i: int, classes: Sequence[str] | None = None, sz: int = 10,
                 return_fig: bool | None = None) -> Any:
        "Show item `i`: the image, its true mask and the predicted mask side by side (`classes` to show, default all)."
        import matplotlib.pyplot as plt
        classes = ifnone(classes, self.classes)
        keep = torch.tensor([self.classes.index(c) for c in classes])
        x = self.ds[i][0]
        fig, axes = plt.subplots(1, 3, figsize=(sz * 1.5, sz / 2))
        _show_input(x, axes[0], title='input')
        for ax, mask, title in ((axes[1], self.y_true[i], 'actual'), (axes[2], self.pred_class[i], 'predicted')):
            shown = torch.where(torch.isin(mask, keep), mask.float(), torch.tensor(float('nan')))
            ax.imshow(to_np(shown), cmap='tab20', vmin=0, vmax=max(len(self.classes) - 1, 1), interpolation='nearest')
            ax.set_title(title)
            ax.axis('off')
        return fig if ifnone(return_fig, defaults.return_fig) else None


class ObjectDetectionInterpretation(train.Interpretation):
    "Interpretation of an object detection model: not available, as in fastai v1 (fastlib has no detection model)."

    def __init__(self, learn: Learner, preds: Tensor, y_true: Tensor, losses: Tensor,
                 ds_type: DatasetType = DatasetType.Valid):
        raise NotImplementedError("ObjectDetectionInterpretation is not implemented (fastai v1 did not implement it "
                                  "either): a detector's predictions depend on its anchors and decoding. Use "
                                  "`learn.get_preds()` and `learn.show_results()` instead.")
