"""Schedule any optimizer hyper-parameter through a sequence of training phases."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..basic_train import Learner, LearnerCallback
from ..callback import Scheduler

__all__ = ['TrainingPhase', 'GeneralScheduler']


class TrainingPhase:
    "A phase of `length` training iterations, over which hyper-parameters follow the schedules of `schedule_hp`."

    def __init__(self, length: int):
        if length < 1:
            raise ValueError(f"TrainingPhase: length is a number of iterations and must be at least 1, not {length}.")
        self.length = length
        self.scheds: dict[str, Scheduler] = {}

    def schedule_hp(self, name: str, vals: float | Sequence[float], anneal: Callable | None = None) -> TrainingPhase:
        """Make hyper-parameter `name` go from `vals[0]` to `vals[1]` with `anneal` over the phase; returns the phase.

        As in fastai v1, `anneal` defaults to linear for a pair and constant for a single number (a single
        number with an `anneal` function goes to 0). `name` is 'lr', 'mom', 'beta', 'wd' or any key of the
        optimizer's param groups (such as 'eps').
        """
        self.scheds[name] = Scheduler(vals, self.length, anneal)
        return self

    def __repr__(self) -> str:
        return f'TrainingPhase(length={self.length}, hyper-parameters={list(self.scheds)})'


class GeneralScheduler(LearnerCallback):
    """Run the `phases` one after the other, setting `learn.opt`'s scheduled hyper-parameters before each batch.

    In a phase of length n, batch i (from 0) trains with `anneal(start, end, i/n)`: the first batch of each phase
    uses its start value. Training stops when the last phase ends. With `start_epoch`, training resumes there.
    """

    def __init__(self, learn: Learner, phases: Sequence[TrainingPhase], start_epoch: int | None = None):
        super().__init__(learn)
        self.phases, self.start_epoch = list(phases), start_epoch
        if not self.phases:
            raise ValueError("GeneralScheduler needs at least one TrainingPhase.")

    def on_train_begin(self, epoch: int, **kwargs: Any) -> dict | None:
        self.opt = self.learn.opt
        self.n_steps = 0
        self._start_phase(0)
        return {'epoch': self.start_epoch} if self.start_epoch is not None else None

    def _start_phase(self, idx: int) -> None:
        "Make phase `idx` current and set its hyper-parameters to their start values."
        self.idx_s, self.n_in_phase = idx, 0
        if idx >= len(self.phases):
            return
        for name, sched in self.phases[idx].scheds.items():
            sched.restart()
            self.opt.set_stat(name, sched.start)

    def _step(self) -> bool:
        "Move one iteration forward and set the values for the next batch; True once every phase is done."
        if self.idx_s >= len(self.phases):
            return True
        self.n_steps += 1
        phase = self.phases[self.idx_s]
        self.n_in_phase += 1
        if self.n_in_phase >= phase.length:
            self._start_phase(self.idx_s + 1)
            return self.idx_s >= len(self.phases)
        for name, sched in phase.scheds.items():
            self.opt.set_stat(name, sched.step())
        return False

    def jump_to_epoch(self, epoch: int) -> None:
        "Move the schedule to the start of `epoch` (when resuming)."
        for _ in range(len(self.learn.data.train_dl) * epoch):
            self._step()

    _checkpoint_attrs = ('n_steps',)

    def load_checkpoint_state(self, state: dict) -> None:
        "Replay the schedule up to where the checkpoint was taken."
        for _ in range(state['n_steps']):
            self._step()

    def on_batch_end(self, train: bool, **kwargs: Any) -> dict | None:
        if train and self._step():
            return {'stop_epoch': True, 'stop_training': True}
        return None
