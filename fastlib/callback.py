"""Callbacks and the machinery they drive: OptimWrapper, Callback, CallbackHandler, annealing, Scheduler."""
from __future__ import annotations

import copy
import functools
import math
import warnings
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .core import camel2snake, did_you_mean, ifnone, is_listy, listify
from .torch_core import get_rng_states, set_rng_states, split_no_wd_params, trainable_params

__all__ = ['OptimWrapper', 'Callback', 'CallbackHandler', 'CallbackList', 'SmoothenValue', 'AverageMetric',
           'Scheduler', 'annealing_no', 'annealing_linear', 'annealing_exp', 'annealing_cos', 'annealing_poly',
           'AdamW', 'CALLBACK_EVENTS']

# fastai v1's default optimizer: Adam with beta2 0.99; with true_wd=True (the default) its decay is decoupled.
AdamW = functools.partial(torch.optim.Adam, betas=(0.9, 0.99))


class OptimWrapper:
    """Wrap a torch optimizer with one param group per layer group and fastai's hyper-parameter names.

    `lr`, `mom`, `beta` and `wd` are readable (the last group's value) and settable (one value, or one per
    group). With `true_wd=True` weight decay is decoupled (weights shrink by `lr*wd` before the step, as in
    AdamW), else it is added to the gradients (L2, as torch's `weight_decay`). With `bn_wd=False`, norm-layer
    weights and biases get no decay. When a torch optimizer can do the requested decay on all parameters
    itself (Adam's `decoupled_weight_decay`, AdamW, or L2 for the others), it does, in its own fused or
    foreach kernels; otherwise the wrapper applies it before each step.
    """

    def __init__(self, opt: torch.optim.Optimizer, wd: float | Collection[float] = 0., true_wd: bool = False,
                 bn_wd: bool = True, no_wd_params: Sequence[Collection[Tensor]] | None = None):
        self.opt, self.true_wd, self.bn_wd = opt, true_wd, bn_wd
        self.opt_keys = list(self.opt.param_groups[0].keys())
        self.opt_keys.remove('params')
        no_wd_params = no_wd_params if no_wd_params is not None else [[] for _ in self.opt.param_groups]
        self._no_wd_ids = [{id(p) for p in ps} for ps in no_wd_params]
        self._decay_params = None
        self.read_defaults()
        self._native_wd = self._use_native_wd()
        self.wd = wd

    def _use_native_wd(self) -> bool:
        "Whether the inner optimizer applies the requested kind of decay itself (set up here when it can)."
        is_torch = type(self.opt).__module__.startswith('torch.optim')
        if not self.bn_wd or not is_torch or 'weight_decay' not in self.opt_keys:
            return False  # some parameters are excluded, or the optimizer is not one whose decay we know
        if isinstance(self.opt, torch.optim.AdamW):
            return self.true_wd
        if 'decoupled_weight_decay' in self.opt_keys:
            self.set_val('decoupled_weight_decay', [self.true_wd] * len(self.opt.param_groups))
            return True
        return not self.true_wd  # torch's other optimizers apply L2

    @classmethod
    def create(cls, opt_func: Callable, lr: float | Collection[float], layer_groups: Sequence[nn.Module],
               wd: float | Collection[float] = 0., true_wd: bool = False, bn_wd: bool = True) -> OptimWrapper:
        "An `OptimWrapper` around `opt_func`, with one param group (of trainable parameters) per layer group."
        groups = [{'params': trainable_params(lg)} for lg in layer_groups]
        if not any(g['params'] for g in groups):
            raise ValueError("The model has no trainable parameters: every layer is frozen. "
                             "Call `learn.unfreeze()` or `learn.freeze_to(n)` with a smaller n.")
        opt = cls(opt_func(groups, lr=_first(lr)), wd=wd, true_wd=true_wd, bn_wd=bn_wd,
                  no_wd_params=split_no_wd_params(layer_groups))
        opt.lr, opt.opt_func = lr, opt_func
        return opt

    def new(self, layer_groups: Sequence[nn.Module], split_no_wd: bool = True) -> OptimWrapper:
        "A fresh optimizer of the same kind and hyper-parameters over `layer_groups`."
        opt_func = getattr(self, 'opt_func', self.opt.__class__)
        res = self.create(opt_func, self.lr, layer_groups, wd=self.wd, true_wd=self.true_wd, bn_wd=self.bn_wd)
        res.mom, res.beta = self.mom, self.beta
        return res

    def new_with_params(self, param_groups: Sequence[Collection[Tensor]]) -> OptimWrapper:
        "A fresh optimizer of the same kind over the given lists of parameters."
        opt_func = getattr(self, 'opt_func', self.opt.__class__)
        opt = opt_func([{'params': list(ps)} for ps in param_groups], lr=self._lr[-1])
        res = OptimWrapper(opt, wd=self.wd, true_wd=self.true_wd, bn_wd=self.bn_wd)
        res.lr, res.opt_func = self.lr, opt_func
        return res

    def __repr__(self) -> str:
        return f'OptimWrapper over {self.opt!r}.\nTrue weight decay: {self.true_wd}'

    # Training
    def step(self) -> None:
        "Apply weight decay (unless the inner optimizer does), then the inner optimizer's step."
        if not self._native_wd:
            self._apply_wd()
        self.opt.step()

    @torch.no_grad()
    def _apply_wd(self) -> None:
        for lr, wd, params in zip(self._lr, self._wd, self._params_to_decay()):
            if wd == 0 or not params:
                continue
            if self.true_wd:
                torch._foreach_mul_(params, 1 - lr * wd)  # decoupled: p <- p * (1 - lr*wd)
            else:
                torch._foreach_add_([p.grad for p in params], params, alpha=wd)  # L2: g <- g + wd*p

    def _params_to_decay(self) -> list[list[Tensor]]:
        "For each group, the parameters with a gradient that weight decay applies to."
        if self._decay_params is None:
            self._decay_params = [[p for p in pg['params'] if self.bn_wd or id(p) not in no_wd]
                                  for pg, no_wd in zip(self.opt.param_groups, self._no_wd_ids)]
        return [[p for p in ps if p.grad is not None] for ps in self._decay_params]

    def zero_grad(self) -> None:
        "Reset the gradients (to None, which is cheaper than zeros)."
        self.opt.zero_grad(set_to_none=True)

    def clear(self) -> None:
        "Forget the optimizer's state (momentum buffers), keeping the hyper-parameters."
        self.opt.state.clear()

    def n_params(self) -> int:
        "The number of parameter tensors handled by the optimizer."
        return sum(len(pg['params']) for pg in self.opt.param_groups)

    @property
    def param_groups(self) -> list[dict]:
        return self.opt.param_groups

    @property
    def state(self) -> dict:
        return self.opt.state

    def state_dict(self) -> dict:
        "The inner optimizer's state dict plus this wrapper's hyper-parameters."
        return {'opt': self.opt.state_dict(), 'lr': list(self._lr), 'mom': list(self._mom),
                'beta': list(self._beta), 'wd': list(self._wd)}

    def load_state_dict(self, sd: dict) -> None:
        "Restore a `state_dict()` (a bare torch optimizer state dict is accepted too)."
        if 'opt' not in sd:
            self.opt.load_state_dict(sd)
            self.read_defaults()
            return
        self.opt.load_state_dict(sd['opt'])
        self._decay_params = None
        self.lr, self.mom, self.wd = sd['lr'], sd['mom'], sd['wd']
        if sd['beta'] and sd['beta'][0] is not None:
            self.beta = sd['beta']

    # Hyper-parameters
    @property
    def lr(self) -> float:
        return self._lr[-1]

    @lr.setter
    def lr(self, val: float | Collection[float]) -> None:
        self._lr = self.set_val('lr', _floats(listify(val, self._lr)))

    @property
    def mom(self) -> float:
        return self._mom[-1]

    @mom.setter
    def mom(self, val: float | Collection[float]) -> None:
        val = _floats(listify(val, self._mom))
        if 'momentum' in self.opt_keys:
            self.set_val('momentum', val)
        elif 'betas' in self.opt_keys:
            self.set_val('betas', (val, self._beta))
        self._mom = val

    @property
    def beta(self) -> float | None:
        return self._beta[-1]

    @beta.setter
    def beta(self, val: float | Collection[float] | None) -> None:
        if val is None:
            return
        val = _floats(listify(val, self._beta))
        if 'betas' in self.opt_keys:
            self.set_val('betas', (self._mom, val))
        elif 'alpha' in self.opt_keys:
            self.set_val('alpha', val)
        self._beta = val

    @property
    def wd(self) -> float:
        return self._wd[-1]

    @wd.setter
    def wd(self, val: float | Collection[float]) -> None:
        self._wd = _floats(listify(val, self.opt.param_groups))
        if self._native_wd:
            self.set_val('weight_decay', self._wd)

    def read_defaults(self) -> None:
        "Read lr, momentum and beta from the inner optimizer, and switch its own weight decay off."
        self._beta = None
        if 'lr' in self.opt_keys:
            self._lr = self.read_val('lr')
        if 'momentum' in self.opt_keys:
            self._mom = self.read_val('momentum')
        if 'alpha' in self.opt_keys:
            self._beta = self.read_val('alpha')
        if 'betas' in self.opt_keys:
            self._mom, self._beta = self.read_val('betas')
        if 'weight_decay' in self.opt_keys:  # `wd` decides from now on (set by the wd setter)
            self.set_val('weight_decay', [0.] * len(self.opt.param_groups))
        if not hasattr(self, '_mom'):
            self._mom = [0.] * len(self.opt.param_groups)
        if self._beta is None:
            self._beta = [None] * len(self.opt.param_groups)

    def get_stat(self, name: str) -> float:
        "The value of hyper-parameter `name` in the last group."
        if name in ('lr', 'mom', 'beta', 'wd'):
            return getattr(self, name)
        return self.opt.param_groups[-1][name]

    def set_stat(self, name: str, value: float | Collection[float]) -> None:
        "Set hyper-parameter `name` (one value, or one per group)."
        if name in ('lr', 'mom', 'beta', 'wd'):
            setattr(self, name, value)
        else:
            self.set_val(name, listify(value, self.opt.param_groups))

    def set_val(self, key: str, val: Any, bn_groups: bool = True) -> Any:
        "Set `key` to `val` in each param group (`val` a list, or a pair of lists for `betas`)."
        if isinstance(val, tuple) and len(val) == 2 and is_listy(val[0]):
            val = [(v1, v2) for v1, v2 in zip(*val)]
        for v, pg in zip(val, self.opt.param_groups):
            pg[key] = v
        return val

    def read_val(self, key: str) -> list | tuple[list, list]:
        "The values of `key` in each param group (a pair of lists for `betas`)."
        val = [pg[key] for pg in self.opt.param_groups]
        if isinstance(val[0], tuple):
            val = [o[0] for o in val], [o[1] for o in val]
        return val

    def get_state(self) -> dict:
        "Everything needed to rebuild this optimizer later (see `load_with_state_and_layer_group`)."
        return {'opt_state': self.opt.state_dict(), 'lr': self._lr, 'wd': self._wd, 'beta': self._beta,
                'mom': self._mom, 'opt_func': getattr(self, 'opt_func', self.opt.__class__),
                'true_wd': self.true_wd, 'bn_wd': self.bn_wd}

    @classmethod
    def load_with_state_and_layer_group(cls, state: dict, layer_groups: Sequence[nn.Module]) -> OptimWrapper:
        "Rebuild an optimizer saved with `get_state` over `layer_groups`."
        res = cls.create(state['opt_func'], state['lr'], layer_groups, wd=state['wd'], true_wd=state['true_wd'],
                         bn_wd=state['bn_wd'])
        res._mom, res._beta = state['mom'], state['beta']
        res.opt.load_state_dict(state['opt_state'])
        return res


def _floats(vals: list) -> list[float]:
    "Plain Python floats (not NumPy scalars), so that optimizer states save and load as plain data."
    return [float(v) for v in vals]


def _first(x: Any) -> Any:
    "The first element of a list-like, or `x` itself."
    if isinstance(x, (list, tuple, np.ndarray)):
        return x[0]
    return x


# The events of a training run, in the order they fire (fastai v1's names).
CALLBACK_EVENTS = ('train_begin', 'epoch_begin', 'batch_begin', 'loss_begin', 'backward_begin', 'backward_end',
                   'step_end', 'batch_end', 'epoch_end', 'train_end')


class Callback:
    """Base class for callbacks: override the `on_<event>` methods you need.

    Each method receives the handler's whole state as keyword arguments and may return a dict to change it,
    e.g. `{'stop_training': True}` or `{'last_input': new_xb}`. `_order` sorts callbacks (lower runs first).
    """
    _order = 0

    def on_train_begin(self, **kwargs: Any) -> None:
        "Before the first epoch."

    def on_epoch_begin(self, **kwargs: Any) -> None:
        "At the start of each epoch."

    def on_batch_begin(self, **kwargs: Any) -> None:
        "With the batch in `last_input`/`last_target`, before the forward pass (may replace them)."

    def on_loss_begin(self, **kwargs: Any) -> None:
        "After the forward pass, before the loss (may replace `last_output`)."

    def on_backward_begin(self, **kwargs: Any) -> None:
        "After the loss, before backward (may replace `last_loss`, or set `skip_bwd`)."

    def on_backward_end(self, **kwargs: Any) -> None:
        "After backward, before the optimizer step (gradient clipping; may set `skip_step`)."

    def on_step_end(self, **kwargs: Any) -> None:
        "After the optimizer step, before zero_grad (may set `skip_zero`)."

    def on_batch_end(self, **kwargs: Any) -> None:
        "At the end of the batch (may set `stop_epoch` or `stop_training`)."

    def on_epoch_end(self, **kwargs: Any) -> None:
        "After validation, at the end of the epoch (metrics append to `last_metrics`)."

    def on_train_end(self, **kwargs: Any) -> None:
        "After training (also after an exception, given in `exception`)."

    def jump_to_epoch(self, epoch: int) -> None:
        "Move the callback's schedule to the start of `epoch` (for resuming)."

    # The attributes a full-state checkpoint keeps (see `SaveModelCallback`); resuming puts them back.
    _checkpoint_attrs: tuple[str, ...] = ()

    def checkpoint_state(self) -> dict:
        "What a full-state checkpoint stores of this callback: by default copies of `_checkpoint_attrs`."
        return {k: copy.deepcopy(getattr(self, k)) for k in self._checkpoint_attrs if hasattr(self, k)}

    def load_checkpoint_state(self, state: dict) -> None:
        "Take back a `checkpoint_state()` when resuming, after this run's `on_train_begin`."
        for k, v in state.items():
            setattr(self, k, v)

    def get_state(self, minimal: bool = True) -> dict:
        "The callback's attributes (without references to the learner)."
        to_remove = ['exclude', 'not_min'] + getattr(self, 'exclude', []).copy()
        if minimal:
            to_remove += getattr(self, 'not_min', []).copy()
        return {k: v for k, v in self.__dict__.items() if k not in to_remove and not k.startswith('_')}

    def __repr__(self) -> str:
        attrs = [k for k in self.__dict__ if not k.startswith('_') and k != 'learn']
        return f'{self.__class__.__name__}(' + ', '.join(f'{k}={getattr(self, k)!r}' for k in attrs[:4]) + ')'


CallbackList = Collection[Callback]


class SmoothenValue:
    "An exponentially weighted moving average with bias correction (works on tensors, with no host sync)."

    def __init__(self, beta: float):
        self.beta, self.n, self.mov_avg = beta, 0, 0.
        self.smooth = None

    def add_value(self, val: float | Tensor) -> None:
        "Add `val` to the average."
        self.n += 1
        if isinstance(val, Tensor):
            val = val.detach().float()
            # Two small ops per batch, on the value's device: the average and its bias correction.
            if isinstance(self.mov_avg, Tensor):
                self.mov_avg = torch.lerp(self.mov_avg, val, 1 - self.beta)
            else:
                self.mov_avg = val * (1 - self.beta)
        else:
            self.mov_avg = self.beta * self.mov_avg + (1 - self.beta) * val
        self.smooth = self.mov_avg * (1 / (1 - self.beta ** self.n))


class CallbackHandler:
    "Fire the events of training on a list of callbacks and metrics, and keep the state they share."

    def __init__(self, callbacks: CallbackList | None = None, metrics: Collection | None = None, beta: float = 0.98):
        self.callbacks = sorted(listify(callbacks), key=lambda o: getattr(o, '_order', 0))
        self.metrics = [m if isinstance(m, Callback) else AverageMetric(m) for m in listify(metrics)]
        for cb in self.callbacks + self.metrics:
            _check_event_names(cb)
        self.beta = beta
        self.smoothener = SmoothenValue(beta)
        self.state_dict: dict[str, Any] = _initial_state()
        self._index_handlers()

    def _index_handlers(self) -> None:
        "For each event, the metrics and callbacks that override it: the others are not called (a per-batch saving)."
        def overriding(objs, event):
            return [o for o in objs if getattr(type(o), f'on_{event}', None) is not getattr(Callback, f'on_{event}')]

        self._handlers = {e: (overriding(self.metrics, e), overriding(self.callbacks, e)) for e in CALLBACK_EVENTS}

    def _call_and_update(self, cb: Callback, cb_name: str, **kwargs: Any) -> None:
        "Call `cb.on_<cb_name>` with the state, and merge the dict it returns into the state."
        new = getattr(cb, f'on_{cb_name}')(**self.state_dict, **kwargs)
        if not new:
            return
        for k, v in new.items():
            if k not in self.state_dict:
                raise KeyError(f"{type(cb).__name__}.on_{cb_name} returned {k!r}, which is not part of the "
                               f"callbacks' state.{did_you_mean(k, self.state_dict)}")
            self.state_dict[k] = v

    def __call__(self, cb_name: str, call_mets: bool = True, **kwargs: Any) -> None:
        "Fire event `cb_name` on the metrics (when `call_mets`) and the callbacks."
        metrics, callbacks = self._handlers[cb_name]
        if call_mets:
            for met in metrics:
                self._call_and_update(met, cb_name, **kwargs)
        for cb in callbacks:
            self._call_and_update(cb, cb_name, **kwargs)

    def set_dl(self, dl: Any) -> None:
        "Tell the callbacks which data loader is running."
        changed = False
        if hasattr(self, 'cb_dl'):
            self.callbacks.remove(self.cb_dl)
            del self.cb_dl
            changed = True
        if isinstance(dl.dataset, Callback):
            self.callbacks.append(dl.dataset)
            self.cb_dl = dl.dataset
            changed = True
        if changed:
            self._index_handlers()

    def on_train_begin(self, epochs: int, pbar: Any, metrics: Collection | None, **kwargs: Any) -> None:
        "Start a run of `epochs` epochs shown on `pbar`."
        self.state_dict = _initial_state()
        self.state_dict.update(dict(n_epochs=epochs, pbar=pbar, metrics=metrics))
        names = [m.name if hasattr(m, 'name') else camel2snake(type(m).__name__) for m in self.metrics]
        self.epoch_rng: dict | None = None
        self._resume: dict | None = None
        self('train_begin', metrics_names=names, cb_handler=self, **kwargs)
        if self.state_dict['epoch'] != 0:  # a callback asked to resume at a later epoch
            for cb in self.callbacks:
                cb.jump_to_epoch(self.state_dict['epoch'])

    # Full-state checkpoints: what resuming needs besides the model and the optimizer.
    def _callback_keys(self) -> list[tuple[str, Callback]]:
        "A name for each callback (its class, numbered when repeated), to match them up when resuming."
        seen: dict[str, int] = {}
        res = []
        for cb in self.callbacks:
            name = type(cb).__name__
            seen[name] = seen.get(name, 0) + 1
            res.append((name if seen[name] == 1 else f'{name}#{seen[name]}', cb))
        return res

    def checkpoint(self, end_of_epoch: bool, n_batches: int) -> dict:
        """The state of the run (counters, smoothed loss, random generators, callbacks), taken at the end of an
        epoch or of a training batch, for `restore` to continue exactly from there. `n_batches`: batches per epoch."""
        sd = self.state_dict
        epoch, num_batch, iteration = ((sd['epoch'] + 1, 0, sd['iteration']) if end_of_epoch else
                                       (sd['epoch'], sd['num_batch'] + 1, sd['iteration'] + 1))
        sm = self.smoothener
        return {'epoch': epoch, 'num_batch': num_batch, 'iteration': iteration, 'n_epochs': sd['n_epochs'],
                'n_batches': n_batches, 'smooth': {'n': sm.n, 'mov_avg': sm.mov_avg, 'smooth': sm.smooth},
                'rng': get_rng_states(), 'epoch_rng': self.epoch_rng,
                'callbacks': {k: cb.checkpoint_state() for k, cb in self._callback_keys()}}

    def restore(self, state: dict, callbacks: bool = True) -> None:
        """Continue from a `checkpoint()`: counters, smoothed loss, random generators and (when `callbacks`) each
        callback's state. A checkpoint taken mid-epoch is finished by `resume_batches` at the start of the epoch."""
        self.state_dict.update(epoch=state['epoch'], iteration=state['iteration'])
        sm = self.smoothener
        sm.n, sm.mov_avg, sm.smooth = state['smooth']['n'], state['smooth']['mov_avg'], state['smooth']['smooth']
        if callbacks:
            saved = state['callbacks']
            fresh = []
            for key, cb in self._callback_keys():
                if key in saved:
                    cb.load_checkpoint_state(saved[key])
                elif cb.checkpoint_state():
                    fresh.append(key)
            if fresh:
                warnings.warn(f"Resuming: the checkpoint has no state for {', '.join(fresh)} (not in the run that "
                              f"saved it), which start afresh.")
        if state['num_batch']:
            self._resume = state   # the random generators are set once the epoch's loader is rebuilt
        else:
            set_rng_states(state['rng'])

    def resume_batches(self, batches: Any, generator: torch.Generator | None = None) -> Any:
        """Start this epoch's iteration over `batches` (the training loader; `generator` its own generator, if any).

        Keeps the random state at the start of the epoch for checkpoints. When resuming mid-epoch, replays the
        epoch's start so the data come in the same order with the same augmentation, loads (and drops) the batches
        already trained on, then sets the generators to where the checkpoint left them.
        """
        resume, self._resume = self._resume, None
        if resume is not None:
            set_rng_states(resume['epoch_rng'])
            if generator is not None and 'loader' in resume['epoch_rng']:
                generator.set_state(resume['epoch_rng']['loader'])
        self.epoch_rng = get_rng_states()
        if generator is not None:
            self.epoch_rng['loader'] = generator.get_state()
        it = iter(batches)
        if resume is not None:
            for _ in range(resume['num_batch']):
                next(it)
            self.state_dict['num_batch'] = resume['num_batch']
            set_rng_states(resume['rng'])
        return it

    def on_epoch_begin(self) -> None:
        "Start an epoch."
        self.state_dict['num_batch'], self.state_dict['stop_training'] = 0, False
        self('epoch_begin')

    def on_batch_begin(self, xb: Any, yb: Any, train: bool = True) -> tuple[Any, Any]:
        "Start a batch; returns the (possibly replaced) input and target."
        self.state_dict.update(dict(last_input=xb, last_target=yb, train=train, stop_epoch=False,
                                    skip_step=False, skip_zero=False, skip_bwd=False))
        self('batch_begin', call_mets=not train)
        return self.state_dict['last_input'], self.state_dict['last_target']

    def on_loss_begin(self, out: Any) -> Any:
        "After the forward pass; returns the (possibly replaced) output."
        self.state_dict['last_output'] = out
        self('loss_begin', call_mets=False)
        return self.state_dict['last_output']

    def on_backward_begin(self, loss: Tensor) -> tuple[Tensor, bool]:
        "After the loss; returns the (possibly replaced) loss and whether to skip backward."
        self.smoothener.add_value(loss)
        self.state_dict['last_loss'], self.state_dict['smooth_loss'] = loss, self.smoothener.smooth
        self('backward_begin', call_mets=False)
        return self.state_dict['last_loss'], self.state_dict['skip_bwd']

    def on_backward_end(self) -> bool:
        "After backward; returns whether to skip the optimizer step."
        self('backward_end', call_mets=False)
        return self.state_dict['skip_step']

    def on_step_end(self) -> bool:
        "After the step; returns whether to skip zero_grad."
        self('step_end', call_mets=False)
        return self.state_dict['skip_zero']

    def on_batch_end(self, loss: Tensor) -> bool:
        "End a batch; returns whether to stop the epoch."
        self.state_dict['last_loss'] = loss
        self('batch_end', call_mets=not self.state_dict['train'])
        if self.state_dict['train']:
            self.state_dict['iteration'] += 1
            self.state_dict['num_batch'] += 1
        return self.state_dict['stop_epoch']

    def on_epoch_end(self, val_loss: Any) -> bool:
        "End an epoch with validation loss `val_loss` (None when skipped); returns whether to stop training."
        self.state_dict['last_metrics'] = [val_loss] if val_loss is not None else [None]
        self('epoch_end', call_mets=val_loss is not None)
        self.state_dict['epoch'] += 1
        return self.state_dict['stop_training']

    def on_train_end(self, exception: BaseException | bool) -> None:
        "End training (`exception` is the error that stopped it, or False)."
        self('train_end', exception=exception)

    @property
    def skip_validate(self) -> bool:
        return self.state_dict['skip_validate']


def _initial_state() -> dict[str, Any]:
    "The state a run starts with; callbacks may only return keys that exist here."
    return dict(epoch=0, iteration=0, num_batch=0, n_epochs=0, skip_validate=False, train=True,
                stop_training=False, stop_epoch=False, skip_step=False, skip_zero=False, skip_bwd=False,
                last_input=None, last_target=None, last_output=None, last_loss=None, smooth_loss=None,
                last_metrics=None, pbar=None, metrics=None)


_EVENT_METHODS = {f'on_{e}' for e in CALLBACK_EVENTS}


def _check_event_names(cb: Any) -> None:
    "Fail early when a callback defines an `on_...` method that no event calls (a typo would never fire)."
    for name in dir(type(cb)):
        if name.startswith('on_') and name not in _EVENT_METHODS and callable(getattr(cb, name, None)):
            raise AttributeError(f"{type(cb).__name__}.{name} is not a callback event, so it would never be "
                                 f"called.{did_you_mean(name, sorted(_EVENT_METHODS))} The events are: "
                                 + ', '.join(f'on_{e}' for e in CALLBACK_EVENTS) + '.')


class AverageMetric(Callback):
    "Turn a metric function `func(output, target)` into a callback that averages it over the validation set."

    def __init__(self, func: Callable):
        name = getattr(func, '__name__', None) or getattr(getattr(func, 'func', None), '__name__', None)
        self.func, self.name = func, ifnone(name, type(func).__name__)
        self.world = 1

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self.val, self.count = 0., 0

    def on_batch_end(self, last_output: Any, last_target: Any, **kwargs: Any) -> None:
        targs = list(last_target) if is_listy(last_target) else [last_target]
        bs = targs[0].size(0)
        # Accumulated on the device; read once per epoch in on_epoch_end.
        self.val = self.val + self.func(last_output, *targs).detach().float() * bs
        self.count += bs

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        val = self.val / self.count if self.count else float('nan')
        return {'last_metrics': list(last_metrics) + [float(val)]}


def annealing_no(start: float, end: float, pct: float) -> float:
    "No annealing: always `start`."
    return start


def annealing_linear(start: float, end: float, pct: float) -> float:
    "Linear from `start` to `end` as `pct` goes from 0 to 1."
    return start + pct * (end - start)


def annealing_exp(start: float, end: float, pct: float) -> float:
    "Exponential (geometric) from `start` to `end` as `pct` goes from 0 to 1."
    return start * (end / start) ** pct


def annealing_cos(start: float, end: float, pct: float) -> float:
    "Half a cosine from `start` to `end` as `pct` goes from 0 to 1."
    cos_out = math.cos(math.pi * pct) + 1
    return end + (start - end) / 2 * cos_out


def annealing_poly(degree: float) -> Callable[[float, float, float], float]:
    "Polynomial annealing of `degree`: `end + (start-end) * (1-pct)**degree`."
    def _anneal(start, end, pct):
        return end + (start - end) * (1 - pct) ** degree
    return _anneal


class Scheduler:
    "Step a hyper-parameter from `vals[0]` to `vals[1]` over `n_iter` iterations with the annealing `func`."

    def __init__(self, vals: float | tuple, n_iter: int, func: Callable | None = None):
        self.start, self.end = (vals[0], vals[1]) if is_listy(vals) else (vals, 0)
        self.n_iter = max(1, n_iter)
        if func is None:
            func = annealing_linear if is_listy(vals) else annealing_no
        self.func = func
        self.n = 0

    def restart(self) -> None:
        "Go back to the start of the schedule."
        self.n = 0

    def step(self) -> Any:
        "Advance one iteration and return the new value."
        self.n += 1
        return self.func(self.start, self.end, self.n / self.n_iter)

    @property
    def is_done(self) -> bool:
        "True once the schedule is complete."
        return self.n >= self.n_iter
