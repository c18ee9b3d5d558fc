"""The learning-rate finder: train with an exponentially growing learning rate and watch the loss."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ..basic_train import Learner, LearnerCallback
from ..callback import Scheduler, annealing_exp

__all__ = ['LRFinder', 'SuggestedLRs', 'suggest_lrs']


class LRFinder(LearnerCallback):
    "Grow the learning rate from `start_lr` to `end_lr` over `num_it` batches; stop early when the loss diverges."

    def __init__(self, learn: Learner, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100,
                 stop_div: bool = True):
        super().__init__(learn)
        self.stop_div = stop_div
        self.sched = Scheduler((start_lr, end_lr), num_it, annealing_exp)

    def on_train_begin(self, pbar: Any, **kwargs: Any) -> dict:
        self.learn.opt.lr = self.sched.start
        self.stop, self.best_loss = False, math.inf
        return {'skip_validate': True}

    def on_batch_end(self, iteration: int, smooth_loss: Any, **kwargs: Any) -> dict | None:
        # The one place the loop reads the loss every batch: deciding to stop needs its value.
        loss = float(smooth_loss)
        if not math.isfinite(loss):
            self.stop = True
            return {'stop_epoch': True, 'stop_training': True}
        self.best_loss = min(self.best_loss, loss)
        self.learn.opt.lr = self.sched.step()
        if self.sched.is_done or (self.stop_div and loss > 4 * self.best_loss):
            self.stop = True
            return {'stop_epoch': True, 'stop_training': True}
        return None

    def on_epoch_end(self, **kwargs: Any) -> dict | None:
        return {'stop_training': True} if self.stop else None


class SuggestedLRs(NamedTuple):
    "Learning rates suggested by an `lr_find` run."
    valley: float | None
    steep: float | None
    minimum: float | None


def suggest_lrs(lrs: Sequence, losses: Sequence[float]) -> SuggestedLRs:
    """Suggestions from an lr_find curve (for the last layer group's learning rate):

    - `valley`: the middle of the longest stretch over which the loss keeps going down (fastai v2's default);
    - `steep`: where the loss falls fastest against log(lr);
    - `minimum`: a tenth of the learning rate at the lowest loss.
    Points after the first non-finite loss are ignored; the first tenth and last five points are skipped
    when the curve is long enough, since they are noise and divergence.
    """
    lrs = np.array([lr[-1] if isinstance(lr, (list, tuple, np.ndarray)) else lr for lr in lrs], dtype=float)
    losses = np.array(losses[:len(lrs)], dtype=float)
    lrs = lrs[:len(losses)]
    finite = np.isfinite(losses)
    if not finite.all():
        n_ok = int(np.argmin(finite))
        lrs, losses = lrs[:n_ok], losses[:n_ok]
    if len(losses) > 20:
        start, end = len(losses) // 10, len(losses) - 5
        lrs, losses = lrs[start:end], losses[start:end]
    if len(losses) < 2:
        return SuggestedLRs(None, None, None)
    minimum = float(lrs[np.argmin(losses)] / 10)
    slopes = np.gradient(losses, np.log(lrs))
    steep = float(lrs[np.argmin(slopes)])
    return SuggestedLRs(float(lrs[_valley_index(losses)]), steep, minimum)


def _valley_index(losses: np.ndarray) -> int:
    "The index halfway along the longest strictly decreasing run of points (a longest decreasing subsequence)."
    n = len(losses)
    length = np.ones(n, dtype=int)   # length[i]: longest decreasing subsequence ending at i
    first = np.arange(n)             # first[i]: where that subsequence starts
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and length[j] + 1 > length[i]:
                length[i], first[i] = length[j] + 1, first[j]
    end = int(np.argmax(length))
    start = int(first[end])
    return start + (end - start) // 2
