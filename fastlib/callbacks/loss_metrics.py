"""Show the parts of a composite loss as metrics."""
from __future__ import annotations

from typing import Any

import torch

from ..basic_train import LearnerCallback
from ..core import is_listy

__all__ = ['LossMetrics']


class LossMetrics(LearnerCallback):
    """Add one column per part of the loss, averaged over the validation set.

    The loss function names its parts in `loss_func.metric_names` and, at each call, stores their values in the
    dict `loss_func.metrics` (fastai v1's convention).
    """
    # Before the Recorder (-10): its table must get the new columns when it is built at train begin, and the
    # values must be in `last_metrics` when it records them at epoch end.
    _order = -20

    def on_train_begin(self, **kwargs: Any) -> None:
        "Read the names of the loss's parts and add them as columns of the epoch table."
        loss_func = self.learn.loss_func
        names = getattr(loss_func, 'metric_names', None)
        if names is None:
            names = list(getattr(loss_func, 'metrics', None) or {})
        if not names:
            raise ValueError("LossMetrics needs a loss function that names its parts: give it a `metric_names` "
                             "list and make each call store `self.metrics = {name: value}` for those names.")
        self.names = list(names)
        self.learn.recorder.add_metric_names(self.names)

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self.sums: dict[str, Any] = {name: 0. for name in self.names}
        self.count = 0

    def on_batch_end(self, last_target: Any, train: bool, **kwargs: Any) -> None:
        "Add the parts of this validation batch's loss, weighted by its size (kept on the device)."
        if train:
            return
        parts = getattr(self.learn.loss_func, 'metrics', None) or {}
        missing = [name for name in self.names if name not in parts]
        if missing:
            raise KeyError(f"LossMetrics: the loss function's `metrics` dict lacks {missing} (it has "
                           f"{list(parts)}); it must store every name of `metric_names` at each call.")
        target = last_target[0] if is_listy(last_target) else last_target
        bs = target.shape[0]
        for name in self.names:
            self.sums[name] = self.sums[name] + torch.as_tensor(parts[name]).detach().float() * bs
        self.count += bs

    def on_epoch_end(self, last_metrics: list | None, **kwargs: Any) -> dict | None:
        if not self.count:  # validation skipped: the recorder shows '#na#'
            return None
        sums = torch.stack([torch.as_tensor(self.sums[name]) for name in self.names])
        means = (sums / self.count).tolist()  # one host read per epoch for all the parts
        return {'last_metrics': list(last_metrics or []) + means}
