"""Recipes on a Learner: one-cycle, lr_find, fine_tune, mixed precision, mixup, clipping, interpretation."""
from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Collection
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .basic_data import DatasetType
from .basic_train import Learner, LearnerCallback
from .callback import Callback, annealing_cos
from .callbacks.fp16 import MixedPrecision
from .callbacks.general_sched import GeneralScheduler, TrainingPhase
from .callbacks.lr_finder import LRFinder, SuggestedLRs, suggest_lrs
from .callbacks.mixup import MixUpCallback
from .callbacks.one_cycle import OneCycleScheduler
from .callbacks.training import AccumulateScheduler, BnFreeze, GradientClipping, ShowGraph
from .core import PathOrStr, ifnone, listify
from .torch_core import bn_types, defaults, get_rng_states, set_rng_states, to_np

__all__ = ['fit_one_cycle', 'fit_fc', 'one_cycle_scheduler', 'lr_find', 'fine_tune', 'to_fp16', 'to_bf16', 'to_fp32', 'mixup',
           'clip_grad', 'BnFreeze', 'GradientClipping', 'ShowGraph', 'AccumulateScheduler', 'Interpretation',
           'ClassificationInterpretation', 'MultiLabelClassificationInterpretation']


def one_cycle_scheduler(lr_max: float, **kwargs: Any) -> Callable[[Learner], OneCycleScheduler]:
    "A factory of OneCycleScheduler at `lr_max`, for `callback_fns`."
    return functools.partial(OneCycleScheduler, lr_max=lr_max, **kwargs)


def fit_one_cycle(learn: Learner, cyc_len: int, max_lr: float | slice | None = None,
                  moms: tuple[float, float] = (0.95, 0.85), div_factor: float = 25., pct_start: float = 0.3,
                  final_div: float | None = None, wd: float | None = None,
                  callbacks: Collection[Callback] | None = None, tot_epochs: int | None = None,
                  start_epoch: int | None = None, resume: PathOrStr | None = None) -> None:
    """Train `learn` for `cyc_len` epochs with the one-cycle policy peaking at `max_lr` (default `defaults.lr`).

    To continue an interrupted run, repeat the call with `resume=` a full-state checkpoint (`SaveModelCallback`), or
    with `start_epoch=k` as in fastai v1 (the schedule jumps to epoch k; see `SaveModelCallback`)."""
    max_lr = learn.lr_range(ifnone(max_lr, defaults.lr))
    callbacks = listify(callbacks)
    callbacks.append(OneCycleScheduler(learn, max_lr, moms=moms, div_factor=div_factor, pct_start=pct_start,
                                       final_div=final_div, tot_epochs=tot_epochs, start_epoch=start_epoch))
    learn.fit(cyc_len, max_lr, wd=wd, callbacks=callbacks, resume=resume)


def fit_fc(learn: Learner, tot_epochs: int = 1, lr: float | slice | None = None,
           moms: tuple[float, float] = (0.95, 0.85), start_pct: float = 0.72, wd: float | None = None,
           callbacks: Collection[Callback] | None = None, resume: PathOrStr | None = None) -> None:
    """Train `learn` for `tot_epochs` epochs with a flat learning rate `lr` (default `defaults.lr`) and momentum
    `moms[0]` for the first `start_pct` of the iterations, then a cosine annealing of the learning rate to 0 with
    momentum `moms[1]` (the flat-cosine schedule). `resume`: see `Learner.fit`."""
    if not 0 <= start_pct < 1:
        raise ValueError(f"fit_fc: start_pct is the flat share of the iterations, in [0, 1), not {start_pct}.")
    lr = learn.lr_range(ifnone(lr, defaults.lr))
    n = len(learn.data.train_dl) * tot_epochs
    n_flat = int(n * start_pct)
    phases = [TrainingPhase(n_flat).schedule_hp('lr', lr).schedule_hp('mom', moms[0])] if n_flat else []
    phases.append(TrainingPhase(n - n_flat).schedule_hp('lr', lr, anneal=annealing_cos).schedule_hp('mom', moms[1]))
    learn.fit(tot_epochs, lr, wd=wd, callbacks=listify(callbacks) + [GeneralScheduler(learn, phases)], resume=resume)


def lr_find(learn: Learner, start_lr: float | slice = 1e-7, end_lr: float | slice = 10, num_it: int = 100,
            stop_div: bool = True, wd: float | None = None) -> SuggestedLRs:
    """Train with learning rates growing from `start_lr` to `end_lr` over `num_it` batches, then put the model,
    optimizer, callbacks and random generators back exactly as they were (from memory: no file is written).

    Stops at a non-finite loss, or when the loss exceeds 4x its best if `stop_div`. Returns the suggested
    learning rates (valley, steep, minimum); `learn.recorder.plot(suggestion=True)` marks them.
    """
    if isinstance(num_it, bool) or not isinstance(num_it, (int, np.integer)) or num_it < 2:
        raise ValueError(f"lr_find needs num_it >= 2 batches to sweep the learning rate (default 100), not {num_it!r}.")
    start_lr = learn.lr_range(start_lr)
    end_lr = learn.lr_range(end_lr)
    if not (np.all(start_lr > 0) and np.all(end_lr > start_lr)):
        raise ValueError(f"lr_find sweeps from start_lr up to end_lr: both > 0 and start_lr < end_lr (defaults 1e-7 "
                         f"and 10), not {start_lr.tolist()} and {end_lr.tolist()}.")
    start_lr = start_lr if len(start_lr) > 1 else float(start_lr[0])
    end_lr = end_lr if len(end_lr) > 1 else float(end_lr[0])
    snapshot = _LearnerSnapshot(learn)
    finder = LRFinder(learn, start_lr, end_lr, num_it, stop_div)
    epochs = int(np.ceil(num_it / len(learn.data.train_dl)))
    silent = learn.silent
    learn.silent = True  # a table of per-epoch lines says nothing about a learning-rate sweep
    try:
        learn.fit(epochs, start_lr, callbacks=[finder], wd=wd)
    finally:
        learn.silent = silent
        snapshot.restore()
    suggestions = suggest_lrs(learn.recorder.lrs, learn.recorder.losses)
    if not silent:
        print('LR Finder is complete: ' + ', '.join(f'{k}={v:.2e}' for k, v in suggestions._asdict().items()
                                                    if v is not None)
              + '. learn.recorder.plot(suggestion=True) shows the curve.')
    return suggestions


class _LearnerSnapshot:
    "An in-memory copy of what training changes: weights and buffers, optimizer, callback state, RNGs, modes."

    def __init__(self, learn: Learner):
        self.learn = learn
        # Copies on the CPU, so the snapshot costs no GPU memory.
        self.model_state = {k: v.detach().to('cpu', copy=True) for k, v in learn.model.state_dict().items()}
        self.opt_state = copy.deepcopy(learn.opt.state_dict()) if learn.opt is not None else None
        self.cb_states = [(cb, copy.deepcopy(cb.state_dict())) for cb in learn.callbacks
                          if hasattr(cb, 'state_dict') and hasattr(cb, 'load_state_dict')]
        self.modes = [(m, m.training) for m in learn.model.modules()]
        self.loss_func = learn.loss_func
        self.rng = get_rng_states()

    def restore(self) -> None:
        learn = self.learn
        learn.model.load_state_dict(self.model_state)
        if self.opt_state is None:
            learn.opt = None
        else:
            learn.opt.load_state_dict(self.opt_state)
        for cb, state in self.cb_states:
            cb.load_state_dict(state)
        for m, training in self.modes:
            m.training = training
        learn.loss_func = self.loss_func
        set_rng_states(self.rng)


def fine_tune(learn: Learner, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
              pct_start: float = 0.3, div: float = 5.0, **kwargs: Any) -> None:
    "Train the head for `freeze_epochs`, then the whole model for `epochs` with discriminative rates (fastai v2)."
    learn.freeze()
    learn.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99, **kwargs)
    base_lr /= 2
    learn.unfreeze()
    learn.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div_factor=div, **kwargs)


def _set_precision(learn: Learner, dtype: torch.dtype | None, **kwargs: Any) -> Learner:
    "Replace any MixedPrecision callback of `learn` by one in `dtype` (None: back to float32)."
    learn.callbacks = [cb for cb in learn.callbacks if not isinstance(cb, MixedPrecision)]
    if hasattr(learn, 'mixed_precision'):
        del learn.mixed_precision
    if dtype is not None:
        learn.callbacks.append(MixedPrecision(learn, dtype=dtype, **kwargs))
    return learn


def to_fp16(learn: Learner, loss_scale: float | None = None, max_noskip: int = 1000, dynamic: bool = True,
            clip: float | None = None, flat_master: bool = False, max_scale: float = 2 ** 24,
            loss_fp32: bool = True) -> Learner:
    "Train `learn` with float16 autocast and loss scaling on CUDA (bfloat16 autocast on a CPU). Weights stay float32."
    return _set_precision(learn, torch.float16, loss_scale=loss_scale, max_noskip=max_noskip, dynamic=dynamic,
                          clip=clip, flat_master=flat_master, max_scale=max_scale, loss_fp32=loss_fp32)


def to_bf16(learn: Learner) -> Learner:
    "Train `learn` with bfloat16 autocast (same range as float32, so no loss scaling)."
    return _set_precision(learn, torch.bfloat16)


def to_fp32(learn: Learner) -> Learner:
    "Undo `to_fp16`/`to_bf16`: train in float32."
    return _set_precision(learn, None)


def mixup(learn: Learner, alpha: float = 0.4, stack_x: bool = False, stack_y: bool = True) -> Learner:
    "Add mixup of strength `alpha` to `learn`'s training."
    learn.callback_fns.append(functools.partial(MixUpCallback, alpha=alpha, stack_x=stack_x, stack_y=stack_y))
    return learn


def clip_grad(learn: Learner, clip: float = 0.1) -> Learner:
    "Clip the gradient norm of `learn` to `clip` at each step."
    learn.callback_fns.append(functools.partial(GradientClipping, clip=clip))
    return learn


class Interpretation:
    "The predictions, targets and per-item losses of a learner on a dataset, to look at what went wrong."

    def __init__(self, learn: Learner, preds: Tensor, y_true: Tensor, losses: Tensor,
                 ds_type: DatasetType = DatasetType.Valid):
        self.learn, self.preds, self.y_true, self.losses, self.ds_type = learn, preds, y_true, losses, ds_type
        self.data = learn.data
        self.ds = learn.data.dl(ds_type).dataset

    @classmethod
    def from_learner(cls, learn: Learner, ds_type: DatasetType = DatasetType.Valid,
                     activ: Callable | None = None) -> Interpretation:
        "Compute the predictions of `learn` on `ds_type` and interpret them."
        preds, y_true, losses = learn.get_preds(ds_type=ds_type, activ=activ, with_loss=True)
        return cls(learn, preds, y_true, losses, ds_type)

    def top_losses(self, k: int | None = None, largest: bool = True) -> tuple[Tensor, Tensor]:
        "The `k` largest (or smallest) per-item losses and their indices."
        losses = self.losses.view(len(self.losses), -1).mean(1) if self.losses.dim() > 1 else self.losses
        return losses.topk(ifnone(k, len(losses)), largest=largest)


class ClassificationInterpretation(Interpretation):
    "Interpretation of a single-label classifier: confusion matrix and most confused pairs."

    def __init__(self, learn: Learner, preds: Tensor, y_true: Tensor, losses: Tensor,
                 ds_type: DatasetType = DatasetType.Valid):
        super().__init__(learn, preds, y_true, losses, ds_type)
        self.pred_class = self.preds.argmax(dim=-1)
        self.classes = self.data.classes or [str(i) for i in range(self.preds.shape[-1])]

    def confusion_matrix(self, slice_size: int = 1) -> np.ndarray:
        "The confusion matrix: row = actual class, column = predicted class (computed `slice_size` items at a time)."
        n = len(self.classes)
        cm = torch.zeros(n, n, dtype=torch.long)
        actual, predicted = self.y_true.view(-1).long(), self.pred_class.view(-1).long()
        step = max(1, slice_size) * 1_000_000  # bincount works in one go; slices only bound its memory
        for i in range(0, len(actual), step):
            idx = actual[i:i + step] * n + predicted[i:i + step]
            cm += torch.bincount(idx, minlength=n * n).view(n, n)
        return to_np(cm)

    def plot_confusion_matrix(self, normalize: bool = False, title: str = 'Confusion matrix', cmap: Any = 'Blues',
                              slice_size: int = 1, norm_dec: int = 2, plot_txt: bool = True,
                              return_fig: bool | None = None, **kwargs: Any) -> Any:
        "Plot the confusion matrix (row-normalised when `normalize`), with the counts written in when `plot_txt`."
        import matplotlib.pyplot as plt
        cm = self.confusion_matrix(slice_size=slice_size)
        if normalize:
            cm = cm.astype('float') / np.maximum(cm.sum(axis=1)[:, np.newaxis], 1)
        fig = plt.figure(**kwargs)
        plt.imshow(cm, interpolation='nearest', cmap=cmap)
        plt.title(title)
        ticks = np.arange(len(self.classes))
        plt.xticks(ticks, self.classes, rotation=90)
        plt.yticks(ticks, self.classes, rotation=0)
        if plot_txt:
            thresh = cm.max() / 2.
            for i in range(cm.shape[0]):
                for j in range(cm.shape[1]):
                    txt = f'{cm[i, j]:.{norm_dec}f}' if normalize else f'{cm[i, j]}'
                    plt.text(j, i, txt, horizontalalignment='center', verticalalignment='center',
                             color='white' if cm[i, j] > thresh else 'black')
        plt.tight_layout()
        plt.ylabel('Actual')
        plt.xlabel('Predicted')
        plt.grid(False)
        return fig if ifnone(return_fig, defaults.return_fig) else None

    def most_confused(self, min_val: int = 1, slice_size: int = 1) -> list[tuple[str, str, int]]:
        "The (actual, predicted, count) pairs of different classes seen at least `min_val` times, most first."
        cm = self.confusion_matrix(slice_size=slice_size)
        np.fill_diagonal(cm, 0)
        pairs = [(self.classes[i], self.classes[j], int(cm[i, j])) for i, j in zip(*np.where(cm >= min_val))]
        return sorted(pairs, key=lambda o: o[2], reverse=True)


class MultiLabelClassificationInterpretation(Interpretation):
    "Interpretation of a multi-label classifier: predictions thresholded at `thresh` (after a sigmoid)."

    def __init__(self, learn: Learner, preds: Tensor, y_true: Tensor, losses: Tensor,
                 ds_type: DatasetType = DatasetType.Valid, sigmoid: bool = True, thresh: float = 0.3):
        super().__init__(learn, preds, y_true, losses, ds_type)
        probs = self.preds.sigmoid() if sigmoid else self.preds
        self.pred_class = probs > thresh

    @classmethod
    def from_learner(cls, learn: Learner, ds_type: DatasetType = DatasetType.Valid, activ: Callable | None = None,
                     sigmoid: bool = True, thresh: float = 0.3) -> MultiLabelClassificationInterpretation:
        "Interpret `learn`'s raw outputs on `ds_type`: a sigmoid (when `sigmoid`), then a cut at `thresh`."
        preds, y_true, losses = learn.get_preds(ds_type=ds_type, activ=activ or (lambda x: x), with_loss=True)
        return cls(learn, preds, y_true, losses, ds_type, sigmoid=sigmoid, thresh=thresh)
