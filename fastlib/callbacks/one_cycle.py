"""The one-cycle policy (Smith, 2018): learning rate up then down, momentum down then up."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..basic_train import Learner, LearnerCallback
from ..callback import Scheduler, annealing_cos
from ..core import ifnone

__all__ = ['OneCycleScheduler']


class OneCycleScheduler(LearnerCallback):
    """Anneal the learning rate from `lr_max/div_factor` to `lr_max` over `pct_start` of the iterations, then
    down to `lr_max/final_div`, with half-cosines; momentum moves from `moms[0]` to `moms[1]` and back.
    """

    def __init__(self, learn: Learner, lr_max: float | Sequence[float], moms: tuple[float, float] = (0.95, 0.85),
                 div_factor: float = 25., pct_start: float = 0.3, final_div: float | None = None,
                 tot_epochs: int | None = None, start_epoch: int | None = None):
        super().__init__(learn)
        self.lr_max, self.div_factor, self.pct_start = lr_max, div_factor, pct_start
        self.final_div = ifnone(final_div, div_factor * 1e4)
        self.moms = tuple(moms) if isinstance(moms, (list, tuple)) else (moms, moms)
        if isinstance(self.lr_max, (list, tuple)):
            self.lr_max = np.array(self.lr_max)
        self.tot_epochs, self.start_epoch = tot_epochs, start_epoch

    def steps(self, *steps_cfg: tuple) -> list[Scheduler]:
        "One Scheduler per phase `(n_iter, (start, end))`, each annealed with a half-cosine."
        return [Scheduler(step, n_iter, func=annealing_cos) for n_iter, step in steps_cfg]

    def on_train_begin(self, n_epochs: int, epoch: int, **kwargs: Any) -> dict | None:
        res = {'epoch': self.start_epoch} if self.start_epoch is not None else None
        self.tot_epochs = ifnone(self.tot_epochs, n_epochs)
        n = len(self.learn.data.train_dl) * self.tot_epochs
        a1 = int(n * self.pct_start)
        a2 = n - a1
        low_lr = self.lr_max / self.div_factor
        self.lr_scheds = self.steps((a1, (low_lr, self.lr_max)), (a2, (self.lr_max, self.lr_max / self.final_div)))
        self.mom_scheds = self.steps((a1, self.moms), (a2, (self.moms[1], self.moms[0])))
        self.opt = self.learn.opt
        self.opt.lr, self.opt.mom = self.lr_scheds[0].start, self.mom_scheds[0].start
        self.idx_s, self.n_steps = 0, 0
        return res

    def jump_to_epoch(self, epoch: int) -> None:
        for _ in range(len(self.learn.data.train_dl) * epoch):
            self.on_batch_end(True)

    _checkpoint_attrs = ('n_steps',)

    def load_checkpoint_state(self, state: dict) -> None:
        "Replay the schedule up to where the checkpoint was taken (the same floats as the run that saved it)."
        for _ in range(state['n_steps']):
            self.on_batch_end(True)

    def on_batch_end(self, train: bool, **kwargs: Any) -> dict | None:
        if not train:
            return None
        if self.idx_s >= len(self.lr_scheds):
            return {'stop_training': True, 'stop_epoch': True}
        self.n_steps += 1
        self.opt.lr = self.lr_scheds[self.idx_s].step()
        self.opt.mom = self.mom_scheds[self.idx_s].step()
        if self.lr_scheds[self.idx_s].is_done:  # a phase of 0 iterations never runs: skip past empty ones
            self.idx_s += 1
        return None

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> dict | None:
        # Stop once the schedule is done, before another epoch trains a batch past its end (a run resumed
        # with start_epoch loops over more epochs than the schedule has left).
        if epoch > self.tot_epochs or self.idx_s >= len(self.lr_scheds):
            return {'stop_training': True}
        return None
