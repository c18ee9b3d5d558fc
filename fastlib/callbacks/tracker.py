"""Callbacks that watch a quantity during training: stop on NaN, stop early, save the best model, reduce the lr."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor

from ..basic_train import Learner, LearnerCallback
from ..callback import Callback
from ..core import atomic_write, did_you_mean
from ..torch_core import rank_distrib

__all__ = ['TerminateOnNaNCallback', 'TrackerCallback', 'EarlyStoppingCallback', 'SaveModelCallback',
           'ReduceLROnPlateauCallback', 'TrackEpochCallback']

# Columns of the epoch table that are not measurements, so no tracker can monitor them.
_NOT_MONITORABLE = ('epoch', 'time')
# Names that mean "lower is better" for mode='auto': any name containing 'loss' or 'error', or having one of
# these words between underscores (fastlib.metrics' mse, mae, rmse, msle, exp_rmspe, perplexity).
_LOWER_IS_BETTER_WORDS = {'mse', 'mae', 'rmse', 'msle', 'rmspe', 'perplexity'}


class TerminateOnNaNCallback(Callback):
    "Stop training cleanly at the first training batch whose loss is NaN or infinite, before it changes the weights."

    def __init__(self):
        self.stop = False

    def on_train_begin(self, **kwargs: Any) -> None:
        self.stop = False

    def on_backward_begin(self, last_loss: Any, **kwargs: Any) -> dict | None:
        "Check the loss before backward, so that a NaN loss never reaches the gradients or the weights."
        # Reading the loss on the host syncs with the device at every batch. That is this callback's purpose:
        # only use it when you want the run to stop at the first bad batch.
        if math.isfinite(float(last_loss.detach() if isinstance(last_loss, Tensor) else last_loss)):
            return None
        self.stop = True
        return {'skip_bwd': True, 'skip_step': True}

    def on_batch_end(self, last_loss: Any, epoch: int, num_batch: int, train: bool = True,
                     **kwargs: Any) -> dict | None:
        if not (train and self.stop):
            return None
        _say(f'Epoch {epoch}, batch {num_batch}: the training loss is {float(last_loss)}; stopping training '
              '(this batch did not update the weights).')
        return {'stop_epoch': True, 'stop_training': True, 'skip_validate': True}


class TrackerCallback(LearnerCallback):
    """Base class for callbacks that watch the column `monitor` of the epoch table and keep its best value.

    `mode` is 'min', 'max' or 'auto'; 'auto' picks 'min' for losses and errors (a name with 'loss' or 'error',
    or mse, mae, rmse, msle, rmspe, perplexity) and 'max' for anything else (accuracy, dice, r2_score...).
    """

    def __init__(self, learn: Learner, monitor: str = 'valid_loss', mode: str = 'auto'):
        super().__init__(learn)
        if mode not in ('auto', 'min', 'max'):
            raise ValueError(f"{type(self).__name__}: mode must be 'auto', 'min' or 'max', not {mode!r}.")
        self.monitor, self.mode = monitor, mode
        if mode == 'auto':
            mode = 'min' if _lower_is_better(monitor) else 'max'
        # fastai v1 exposes the comparison as `operator` (np.less or np.greater); subclasses may use it.
        self.operator = np.less if mode == 'min' else np.greater
        self.best = self._worst()

    _checkpoint_attrs: tuple[str, ...] = ('best',)

    def _worst(self) -> float:
        return float('inf') if self.operator is np.less else -float('inf')

    def on_train_begin(self, **kwargs: Any) -> None:
        "Check that `monitor` is a column of the epoch table and forget the best value of earlier runs."
        names = list(self.learn.recorder.names)
        choices = [n for n in names if n not in _NOT_MONITORABLE]
        if self.monitor not in choices:
            raise ValueError(f"{type(self).__name__}: monitor={self.monitor!r} is not a column of the epoch table."
                             f"{did_you_mean(self.monitor, choices)} The columns you can monitor are: "
                             f"{', '.join(repr(n) for n in choices)}.")
        self.best = self._worst()

    def get_monitor_value(self, last_metrics: list | None = None, smooth_loss: Any = None) -> float | None:
        """The value of `monitor` this epoch, from the `last_metrics` and `smooth_loss` given to `on_epoch_end`.

        Called with neither, it reads the recorder's last row instead. Returns None when the value was not
        computed (validation skipped).
        """
        recorder = self.learn.recorder
        if last_metrics is None and smooth_loss is None:
            smooth_loss = recorder.losses[-1] if recorder.losses else None
            last_metrics = [recorder.val_losses[-1] if recorder.val_losses else None]
            last_metrics += list(recorder.metrics[-1]) if recorder.metrics else []
        if self.monitor == 'train_loss':
            value = smooth_loss
        else:
            # The table is ['epoch', 'train_loss', 'valid_loss', <metrics>...]; last_metrics starts at valid_loss.
            idx = list(recorder.names).index(self.monitor) - 2
            value = last_metrics[idx] if last_metrics is not None and idx < len(last_metrics) else None
        return None if value is None else float(value)  # one host read per epoch

    def is_improvement(self, current: float, min_delta: float = 0.) -> bool:
        "True when `current` beats the best value so far by more than `min_delta` (in the direction of `mode`)."
        if self.operator is np.less:
            return bool(current < self.best - min_delta)
        return bool(current > self.best + min_delta)


class EarlyStoppingCallback(TrackerCallback):
    """Stop training when `monitor` has not improved by more than `min_delta` for more than `patience` epochs.

    With `patience=0` training stops at the first epoch without improvement.
    """

    def __init__(self, learn: Learner, monitor: str = 'valid_loss', mode: str = 'auto', min_delta: float = 0,
                 patience: int = 0):
        super().__init__(learn, monitor=monitor, mode=mode)
        # A magnitude: an improvement must beat the best by min_delta whichever the direction.
        self.min_delta, self.patience = abs(min_delta), patience
        self.wait = 0

    _checkpoint_attrs = ('best', 'wait')

    def on_train_begin(self, **kwargs: Any) -> None:
        super().on_train_begin(**kwargs)
        self.wait = 0

    def on_epoch_end(self, epoch: int, last_metrics: list | None = None, smooth_loss: Any = None,
                     **kwargs: Any) -> dict | None:
        current = self.get_monitor_value(last_metrics, smooth_loss)
        if current is None:
            return None
        if self.is_improvement(current, self.min_delta):
            self.best, self.wait = current, 0
            return None
        self.wait += 1
        if self.wait > self.patience:
            _say(f'Epoch {epoch}: early stopping ({self.monitor} has not improved for {self.wait} epochs; '
                  f'best {self.best:.6f}).')
            return {'stop_training': True}
        return None


class SaveModelCallback(TrackerCallback):
    """Save the model with `learn.save`: as `name` whenever `monitor` improves (`every='improvement'`), loading the
    best one back at the end of training, or as `{name}_{epoch}` after every epoch (`every='epoch'`).

    The files of `every='epoch'` are full-state checkpoints: model, optimizer, the schedules' position, epoch and
    iteration, random generators, the recorder's history and the callbacks' state. With `every_batches=N`, a
    full-state checkpoint `{name}_last` is also rewritten every N training batches and at the end of each epoch.
    Resume an interrupted run with the same call plus `resume='{name}_last'` (or `resume='{name}_{epoch}'`), or,
    as in fastai v1, with `fit_one_cycle(..., start_epoch=k)` and this callback (`every='epoch'`), which then
    loads `{name}_{k-1}`; it ends with the weights of the uninterrupted run, bit for bit on a CPU when the data
    loader draws its random numbers in this process or in workers started each epoch (`persistent_workers=False`);
    persistent workers keep their own random state, so the augmentation after the resume point is drawn afresh
    (training is as sound, the numbers differ). Distributed runs resume from epoch files only, with their own
    shuffling order. Every write is atomic, so a crash
    while saving leaves the previous file. In distributed training rank 0 writes the file (`learn.save` makes the
    others wait for it) and every rank loads the best model back.
    """
    _order = 100   # after the other callbacks, so that a checkpoint holds their state after the batch or epoch
    _checkpoint_attrs = ('best', '_saved_this_run')

    def __init__(self, learn: Learner, monitor: str = 'valid_loss', mode: str = 'auto', every: str = 'improvement',
                 name: str = 'bestmodel', every_batches: int | None = None):
        super().__init__(learn, monitor=monitor, mode=mode)
        if every not in ('improvement', 'epoch'):
            raise ValueError(f"SaveModelCallback: every must be 'improvement' or 'epoch', not {every!r}.")
        if every_batches is not None and (not isinstance(every_batches, int) or every_batches < 1):
            raise ValueError(f"SaveModelCallback: every_batches must be a whole number >= 1 (or None), not "
                             f"{every_batches!r}.")
        self.every, self.name, self.every_batches = every, name, every_batches
        self._saved_this_run = False
        self.handler: Any = None

    def on_train_begin(self, cb_handler: Any = None, **kwargs: Any) -> None:
        super().on_train_begin(**kwargs)
        self._saved_this_run = False
        self.handler = cb_handler

    def _save_state(self, file: str, end_of_epoch: bool) -> None:
        "Write a full-state checkpoint as `file`."
        state = self.handler.checkpoint(end_of_epoch, len(self.learn.data.train_dl))
        self.learn.save(file, train_state=state)

    def jump_to_epoch(self, epoch: int) -> None:
        """When resuming at `epoch` (`start_epoch`), load the model saved at the end of the epoch before, with the
        random generators and the recorder's history when it is a full-state checkpoint."""
        file = f'{self.name}_{epoch - 1}'
        try:
            state = self.learn._read_model_file(self.learn._model_file(file))
        except FileNotFoundError:
            print(f'Model {file} not found: resuming from the current weights.')
            return
        self.learn._load_state(state, self.learn._model_file(file))
        train_state = state.get('train_state') if isinstance(state, dict) else None
        if train_state is not None:
            # The schedules have jumped themselves: take back the rest (counters, generators, the history).
            self.handler.restore(train_state, callbacks=False)
            recorder = getattr(self.learn, 'recorder', None)
            if recorder is not None and 'Recorder' in train_state['callbacks']:
                recorder.load_checkpoint_state(train_state['callbacks']['Recorder'])
        print(f'Loaded {file}.')

    def on_batch_end(self, train: bool, num_batch: int, **kwargs: Any) -> None:
        if train and self.every_batches and (num_batch + 1) % self.every_batches == 0:
            self._save_state(f'{self.name}_last', end_of_epoch=False)

    def on_epoch_end(self, epoch: int, last_metrics: list | None = None, smooth_loss: Any = None,
                     **kwargs: Any) -> None:
        if self.every == 'epoch':
            self._save_state(f'{self.name}_{epoch}', end_of_epoch=True)
        else:
            current = self.get_monitor_value(last_metrics, smooth_loss)
            if current is not None and self.is_improvement(current):
                _say(f'Better model found at epoch {epoch} with {self.monitor} value: {current}.')
                self.best = current
                self._saved_this_run = True
                self.learn.save(self.name)
        if self.every_batches:   # last, so that it holds this epoch's best value
            self._save_state(f'{self.name}_last', end_of_epoch=True)

    def on_train_end(self, exception: BaseException | bool = False, **kwargs: Any) -> None:
        "Load the best model back (after an error, only when it was an interrupt from the keyboard)."
        if self.every != 'improvement' or not self._saved_this_run:
            return  # only a model saved in this run counts: a file left by an earlier run is not the best here
        if not exception or isinstance(exception, KeyboardInterrupt):
            self.learn.load(self.name, purge=False)


class ReduceLROnPlateauCallback(TrackerCallback):
    """Multiply the learning rate by `factor` when `monitor` has not improved by more than `min_delta` for more
    than `patience` epochs, never going below `min_lr`.
    """

    def __init__(self, learn: Learner, monitor: str = 'valid_loss', mode: str = 'auto', patience: int = 0,
                 factor: float = 0.2, min_delta: float = 0, min_lr: float = 0.001):
        super().__init__(learn, monitor=monitor, mode=mode)
        self.patience, self.factor, self.min_delta, self.min_lr = patience, factor, abs(min_delta), min_lr
        self.wait = 0

    _checkpoint_attrs = ('best', 'wait')

    def on_train_begin(self, **kwargs: Any) -> None:
        super().on_train_begin(**kwargs)
        self.wait, self.opt = 0, self.learn.opt

    def on_epoch_end(self, epoch: int, last_metrics: list | None = None, smooth_loss: Any = None,
                     **kwargs: Any) -> None:
        current = self.get_monitor_value(last_metrics, smooth_loss)
        if current is None:
            return
        if self.is_improvement(current, self.min_delta):
            self.best, self.wait = current, 0
            return
        self.wait += 1
        if self.wait > self.patience:
            self.wait = 0
            # Scale each layer group's lr, so discriminative lrs keep their ratios; a group already at or
            # below min_lr is left alone (reducing must never raise a learning rate).
            lrs = self.opt.read_val('lr')
            self.opt.lr = [max(lr * self.factor, self.min_lr) if lr > self.min_lr else lr for lr in lrs]
            _say(f'Epoch {epoch}: reducing lr to {self.opt.lr}')


class TrackEpochCallback(LearnerCallback):
    """Write the number of each finished epoch to `learn.path/learn.model_dir/name`, and start the next run at the
    epoch after it (or at `epoch_offset` when given), so that schedules resume where they stopped.
    """

    def __init__(self, learn: Learner, name: str = 'epoch', epoch_offset: int | None = None):
        super().__init__(learn)
        self.path = Path(learn.path) / learn.model_dir / name
        self.epoch_offset = epoch_offset

    def on_train_begin(self, **kwargs: Any) -> dict:
        self.start_epoch = self.epoch_offset if self.epoch_offset is not None else self._read_last_epoch() + 1
        return {'epoch': self.start_epoch}

    def _read_last_epoch(self) -> int:
        "The last finished epoch written to the file, or -1 when there is none."
        try:
            return int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return -1

    def on_epoch_end(self, epoch: int, **kwargs: Any) -> None:
        if rank_distrib() != 0:
            return   # distributed training: rank 0 writes, every rank has the same epoch
        with atomic_write(self.path, 'w') as f:  # a crash mid-write leaves the previous number intact
            f.write(f'{epoch}')

    def restart(self) -> None:
        "Forget the epochs written so far: the next run starts at epoch 0."
        self.path.unlink(missing_ok=True)


def _say(message: str) -> None:
    "Print `message`, once in distributed training (on rank 0)."
    if rank_distrib() == 0:
        print(message)


def _lower_is_better(name: str) -> bool:
    "True when the column `name` is a loss or an error measure."
    name = name.lower()
    return 'loss' in name or 'error' in name or bool(_LOWER_IS_BETTER_WORDS & set(name.split('_')))
