"""Mixup (Zhang et al., 2018): train on convex combinations of pairs of items and of their targets."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..basic_train import Learner, LearnerCallback
from ..torch_core import Module

__all__ = ['MixUpCallback', 'MixUpLoss']


class MixUpCallback(LearnerCallback):
    "Mix each training batch with a shuffled copy of itself, weights drawn from Beta(`alpha`, `alpha`)."
    _order = -20  # before callbacks that look at the (mixed) input

    def __init__(self, learn: Learner, alpha: float = 0.4, stack_x: bool = False, stack_y: bool = True):
        super().__init__(learn)
        self.alpha, self.stack_x, self.stack_y = alpha, stack_x, stack_y

    def on_train_begin(self, **kwargs: Any) -> None:
        if self.stack_y and not isinstance(self.learn.loss_func, MixUpLoss):
            self.learn.loss_func = MixUpLoss(self.learn.loss_func)

    def on_batch_begin(self, last_input: Tensor, last_target: Tensor, train: bool, **kwargs: Any) -> dict | None:
        if not train:
            return None
        bs = last_target.size(0)
        lambd = torch.distributions.Beta(self.alpha, self.alpha).sample((bs,))
        lambd = torch.maximum(lambd, 1 - lambd).to(last_input.device)  # the item keeps the larger share
        shuffle = torch.randperm(bs, device=last_input.device)
        x1, y1 = last_input[shuffle], last_target[shuffle]
        if self.stack_x:
            new_input = [last_input, x1, lambd]
        else:
            shape = (bs,) + (1,) * (last_input.dim() - 1)
            new_input = last_input * lambd.view(shape) + x1 * (1 - lambd).view(shape)
        if self.stack_y:
            # (B, 3): target, partner's target, weight; MixUpLoss mixes the two losses.
            new_target = torch.stack([last_target.float(), y1.float(), lambd.float()], 1)
        else:
            shape = (bs,) + (1,) * (last_target.dim() - 1)
            new_target = last_target.float() * lambd.view(shape) + y1.float() * (1 - lambd).view(shape)
        return {'last_input': new_input, 'last_target': new_target}

    def on_train_end(self, **kwargs: Any) -> None:
        if self.stack_y and isinstance(self.learn.loss_func, MixUpLoss):
            self.learn.loss_func = self.learn.loss_func.get_old()


class MixUpLoss(Module):
    "Apply `crit` to both targets of a mixed batch and mix the losses; plain targets get plain `crit`."

    def __init__(self, crit: Callable, reduction: str = 'mean'):
        self.crit = crit
        self.reduction = reduction

    def forward(self, output: Tensor, target: Tensor) -> Tensor:
        if target.dim() == 2 and target.size(1) == 3:
            with _no_reduction(self.crit) as crit:
                loss1 = crit(output, target[:, 0].long())
                loss2 = crit(output, target[:, 1].long())
            lambd = target[:, 2]
            loss = loss1 * lambd + loss2 * (1 - lambd)
            if self.reduction == 'mean':
                return loss.mean()
            return loss.sum() if self.reduction == 'sum' else loss
        return self.crit(output, target)

    def get_old(self) -> Callable:
        "The loss function before mixup wrapped it."
        return self.crit


class _no_reduction:
    "Context manager giving `crit` with reduction 'none'."

    def __init__(self, crit: Callable):
        self.crit = crit
        self.old = getattr(crit, 'reduction', None)

    def __enter__(self) -> Callable:
        if self.old is None:
            return lambda out, targ: self.crit(out, targ, reduction='none')
        self.crit.reduction = 'none'
        return self.crit

    def __exit__(self, *args: Any) -> None:
        if self.old is not None:
            self.crit.reduction = self.old
