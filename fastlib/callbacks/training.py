"""Callbacks that shape training steps: gradient clipping and accumulation, frozen batch norm, a live graph."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ..basic_train import Learner, LearnerCallback
from ..torch_core import set_bn_eval

__all__ = ['BnFreeze', 'GradientClipping', 'ShowGraph', 'AccumulateScheduler']


class ShowGraph(LearnerCallback):
    "Update a graph of training and validation loss at each epoch end (in a notebook)."

    def on_epoch_end(self, n_epochs: int, last_metrics: list, **kwargs: Any) -> None:
        rec = self.learn.recorder
        iters = list(range(len(rec.losses)))
        val_iter = np.cumsum(rec.nb_batches)[:len(rec.val_losses)]
        x_bounds = (0, (n_epochs - len(rec.nb_batches)) * (rec.nb_batches[-1] if rec.nb_batches else 0) + len(iters))
        losses = rec.losses + rec.val_losses
        y_bounds = (0, max(losses) if losses else 1)
        rec.pbar.update_graph([(iters, rec.losses), (val_iter, rec.val_losses)], x_bounds, y_bounds)


class BnFreeze(LearnerCallback):
    "Keep the batch-norm layers whose parameters are frozen in eval mode, so their statistics stay put."

    def on_epoch_begin(self, **kwargs: Any) -> None:
        set_bn_eval(self.learn.model)


class GradientClipping(LearnerCallback):
    "Clip the gradient norm to `clip` after backward (after unscaling, under mixed precision)."

    def __init__(self, learn: Learner, clip: float = 0.):
        super().__init__(learn)
        self.clip = clip

    def on_backward_end(self, skip_step: bool = False, **kwargs: Any) -> None:
        if not self.clip or skip_step:
            return
        mp = getattr(self.learn, 'mixed_precision', None)
        if mp is not None and mp in self.learn.callbacks:
            mp.unscale_grads()
        params = [p for pg in self.learn.opt.param_groups for p in pg['params']]
        torch.nn.utils.clip_grad_norm_(params, self.clip)


class AccumulateScheduler(LearnerCallback):
    "Accumulate gradients over `n_step` batches before each optimizer step (the loss should sum, not average)."

    def __init__(self, learn: Learner, n_step: int = 1, drop_last: bool = False):
        super().__init__(learn)
        self.n_step, self.drop_last = n_step, drop_last

    def on_train_begin(self, **kwargs: Any) -> None:
        if hasattr(self.learn.loss_func, 'reduction') and self.learn.loss_func.reduction != 'sum':
            warnings.warn("AccumulateScheduler: for gradients equal to a big batch, use a loss with reduction='sum'.")

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self.acc_samples, self.acc_batches = 0, 0

    def on_batch_begin(self, last_input: Any, last_target: Any, **kwargs: Any) -> None:
        self.acc_samples += last_input.shape[0]
        self.acc_batches += 1

    def on_backward_end(self, **kwargs: Any) -> dict:
        if self.acc_batches % self.n_step == 0:
            for p in (p for pg in self.learn.opt.param_groups for p in pg['params']):
                if p.requires_grad and p.grad is not None:
                    p.grad.div_(self.acc_samples)
            self.acc_samples = 0
            return {'skip_step': False, 'skip_zero': False}
        return {'skip_step': True, 'skip_zero': True}

    def on_epoch_end(self, **kwargs: Any) -> None:
        "Step on the last, incomplete accumulation unless `drop_last`."
        if self.acc_samples > 0 and not self.drop_last:
            for p in (p for pg in self.learn.opt.param_groups for p in pg['params']):
                if p.requires_grad and p.grad is not None:
                    p.grad.div_(self.acc_samples)
            self.learn.opt.step()
        self.learn.opt.zero_grad()
