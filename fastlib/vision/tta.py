"""Test-time augmentation: average a classifier's predictions over zoomed corner crops of each image, with and
without a horizontal flip, and mix that average with the plain predictions.

The eight versions are made on whole batches on the device, after the data's own processing (resize,
normalisation), by cropping 1/`scale` of the image at one of its four corners, resizing it back (bilinear) and
flipping it or not. Cropping, resizing and flipping commute with per-channel normalisation, so this equals
augmenting the raw images. Use it as `learn.TTA()` on learners from `cnn_learner`, or `TTA(learn)` on any.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..basic_data import DatasetType
from ..basic_train import Learner, _loss_func2activ, get_preds
from ..callback import CallbackHandler
from ..core import ifnone
from ..progress import master_bar

__all__ = ['TTA', 'tta_only', 'zoom_corner']


def zoom_corner(x: Tensor, scale: float = 1.35, row_pct: float = 0., col_pct: float = 0., flip: bool = False
                ) -> Tensor:
    """The crop of 1/`scale` of each image of the batch `x` (B, C, H, W) whose top-left corner sits at `row_pct`,
    `col_pct` of the free room (0: top/left, 1: bottom/right), resized back to (H, W); flipped left-right if `flip`."""
    h, w = x.shape[-2:]
    ch, cw = max(1, round(h / scale)), max(1, round(w / scale))
    top, left = round(row_pct * (h - ch)), round(col_pct * (w - cw))
    crop = x[..., top:top + ch, left:left + cw]
    out = F.interpolate(crop.float(), size=(h, w), mode='bilinear', align_corners=False).to(x.dtype)
    return out.flip(-1) if flip else out


class _ZoomCornerTfm:
    "A batch transform (for a DeviceDataLoader) applying `zoom_corner` to the input of each (xb, yb) batch."

    def __init__(self, scale: float, row_pct: float, col_pct: float, flip: bool):
        self.scale, self.row_pct, self.col_pct, self.flip = scale, row_pct, col_pct, flip

    def __call__(self, b: Any) -> Any:
        xb, yb = b
        if not isinstance(xb, Tensor) or xb.dim() != 4:
            raise TypeError("TTA augments batches of images of shape (B, C, H, W); this data gives "
                            f"{type(xb).__name__} {tuple(getattr(xb, 'shape', ()))}.")
        return zoom_corner(xb, self.scale, self.row_pct, self.col_pct, self.flip), yb


def _tta_only(learn: Learner, ds_type: DatasetType = DatasetType.Valid, activ: Callable | None = None,
              scale: float = 1.35) -> Iterator[Tensor]:
    "Yield the predictions of `learn` on `ds_type` for each of the 8 versions: 4 corners, with/without flip."
    dl = learn.dl(ds_type)
    activ = ifnone(activ, _loss_func2activ(learn.loss_func))
    pbar = master_bar(range(8))
    for i in pbar:
        tfm = _ZoomCornerTfm(scale, row_pct=float(i & 1), col_pct=float((i >> 1) & 1), flip=bool(i & 4))
        dl.add_tfm(tfm)
        try:
            yield get_preds(learn.model, dl, pbar=pbar, cb_handler=CallbackHandler(learn.callbacks),
                            activ=activ)[0]
        finally:
            dl.remove_tfm(tfm)


def _TTA(learn: Learner, beta: float | None = 0.4, scale: float = 1.35, ds_type: DatasetType = DatasetType.Valid,
         activ: Callable | None = None, with_loss: bool = False) -> Any:
    """`beta` * plain predictions + (1 - `beta`) * mean of the 8 augmented ones on `ds_type`, and the targets (and
    the per-item losses if `with_loss`). With `beta=None`: (plain predictions, augmented mean, targets)."""
    preds, y = learn.get_preds(ds_type, activ=activ)
    avg_preds = torch.stack(list(_tta_only(learn, ds_type=ds_type, activ=activ, scale=scale))).mean(0)
    if beta is None:
        return preds, avg_preds, y
    final_preds = preds * beta + avg_preds * (1 - beta)
    if with_loss:
        # The mix is a probability: score it with the negative log-likelihood of the true class.
        losses = F.nll_loss(torch.log(final_preds.clamp_min(1e-12)), y.long(), reduction='none')
        return final_preds, y, losses
    return final_preds, y


def TTA(learn: Learner, beta: float | None = 0.4, scale: float = 1.35, ds_type: DatasetType = DatasetType.Valid,
        activ: Callable | None = None, with_loss: bool = False) -> Any:
    "Test-time augmentation of `learn` on `ds_type`: `beta` plain + (1-`beta`) zoomed (`scale`)/flipped mean; `activ`, `with_loss`."
    return _TTA(learn, beta=beta, scale=scale, ds_type=ds_type, activ=activ, with_loss=with_loss)


def tta_only(learn: Learner, ds_type: DatasetType = DatasetType.Valid, activ: Callable | None = None,
             scale: float = 1.35) -> Iterator[Tensor]:
    "Yield the predictions of `learn` on `ds_type` (`activ`) for each of the 8 zoomed (`scale`)/flipped versions."
    return _tta_only(learn, ds_type=ds_type, activ=activ, scale=scale)
