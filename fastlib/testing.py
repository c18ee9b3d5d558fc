"""Tiny synthetic data and learners for tests and examples: they train in well under a second on a CPU."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from .basic_data import DataBunch
from .basic_train import Learner
from .core import ifnone
from .serialization import register_safe_globals

__all__ = ['FakeDataset', 'fake_datasets', 'fake_data', 'fake_model', 'fake_learner']


@register_safe_globals
class FakeDataset(Dataset):
    "Items `x[i]` with targets `y[i]`; `classes` names the target values of a classification set."

    def __init__(self, x: Tensor, y: Tensor, classes: Sequence[str] | None = None):
        if len(x) != len(y):
            raise ValueError(f"FakeDataset needs as many targets as inputs, got {len(x)} and {len(y)}.")
        self.x, self.y = x, y
        self.classes = list(classes) if classes is not None else None
        self.c = len(self.classes) if self.classes is not None else (y.shape[1] if y.dim() > 1 else 1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.x[i], self.y[i]

    def __repr__(self) -> str:
        return f'FakeDataset({len(self)} items, x {tuple(self.x.shape[1:])}, classes={self.classes})'


def fake_datasets(n_in: int = 8, n_classes: int | None = 3, train_length: int = 256, valid_length: int = 128,
                  seed: int = 0) -> tuple[FakeDataset, FakeDataset]:
    """A learnable toy problem: `n_in` Gaussian features, labelled by a fixed random linear map.

    With `n_classes`, the label is the arg-max of `n_classes` linear scores; with None, the target is one
    float (a linear function plus a little noise).
    """
    g = torch.Generator().manual_seed(seed)
    n_out = ifnone(n_classes, 1)
    w = torch.randn(n_in, n_out, generator=g)

    def _make(n):
        x = torch.randn(n, n_in, generator=g)
        scores = x @ w
        if n_classes is None:
            return x, scores.squeeze(1) + 0.1 * torch.randn(n, generator=g)
        return x, scores.argmax(1)

    classes = [f'class_{i}' for i in range(n_classes)] if n_classes is not None else None
    (xt, yt), (xv, yv) = _make(train_length), _make(valid_length)
    return FakeDataset(xt, yt, classes), FakeDataset(xv, yv, classes)


def fake_data(n_in: int = 8, n_classes: int | None = 3, batch_size: int = 32, train_length: int = 256,
              valid_length: int = 128, seed: int = 0, **kwargs: Any) -> DataBunch:
    "A DataBunch of the toy problem of `fake_datasets`, on the CPU, read in this process (no workers)."
    train_ds, valid_ds = fake_datasets(n_in, n_classes, train_length, valid_length, seed)
    kwargs.setdefault('num_workers', 0)
    kwargs.setdefault('device', torch.device('cpu'))
    return DataBunch.create(train_ds, valid_ds, bs=batch_size, **kwargs)


def fake_model(n_in: int = 8, n_out: int = 3, hidden: int = 32) -> nn.Sequential:
    "A small MLP: a body (linear, batch norm, ReLU) and a head (linear)."
    return nn.Sequential(nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, n_out))


def fake_learner(n_in: int = 8, n_classes: int | None = 3, batch_size: int = 32, train_length: int = 256,
                 valid_length: int = 128, seed: int = 0, hidden: int = 32, data: DataBunch | None = None,
                 **learn_kwargs: Any) -> Learner:
    "A Learner on `fake_data` with `fake_model`, split into two layer groups (body and head) so it can freeze."
    if data is None:
        data = fake_data(n_in, n_classes, batch_size, train_length, valid_length, seed)
    torch.manual_seed(seed)
    model = fake_model(n_in, ifnone(n_classes, 1), hidden)
    if n_classes is None:
        model.append(nn.Flatten(0))  # (B, 1) -> (B,) to match float targets
    learn = Learner(data, model, **learn_kwargs)
    learn.split([model[3]])
    return learn
