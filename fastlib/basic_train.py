"""The training loop, the Learner and the Recorder."""
from __future__ import annotations

import contextlib
import copy
import functools
import io
import math
import re
import time
import warnings
import weakref
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .basic_data import DataBunch, DatasetType, DeviceDataLoader
from .callback import AdamW, AverageMetric, Callback, CallbackHandler, OptimWrapper
from .core import PathOrStr, camel2snake, did_you_mean, even_mults, ifnone, is_listy, listify, noop
from .progress import PlainMasterBar, master_bar, no_progress, progress_bar
from .serialization import atomic_save, import_fastlib_modules, safe_load
from .torch_core import (bn_types, defaults, distrib_barrier, flatten_model, get_model, grab_idx, rank_distrib,
                         remove_module_load, requires_grad, split_model, to_detach, to_device)

__all__ = ['Learner', 'LearnerCallback', 'Recorder', 'RecordOnCPU', 'fit', 'loss_batch', 'train_epoch', 'validate',
           'get_preds', 'load_learner', 'AdamW', 'format_time']


# --- The loop: one batch, one epoch of validation, predictions, a whole run -----------------------------------

def loss_batch(model: nn.Module, xb: Any, yb: Any, loss_func: Callable | None = None,
               opt: OptimWrapper | None = None, cb_handler: CallbackHandler | None = None) -> Any:
    "Forward `xb`; with `loss_func` compute the loss, and with `opt` also backward and step. Returns the loss."
    if cb_handler is None:  # (not `ifnone`, which would build a handler at every call)
        cb_handler = CallbackHandler()
    xb = xb if is_listy(xb) else [xb]
    yb = yb if is_listy(yb) else [yb]
    out = model(*xb)
    out = cb_handler.on_loss_begin(out)
    if loss_func is None:
        return to_detach(out), to_detach(yb[0])
    loss = loss_func(out, *yb)
    if opt is not None:
        loss, skip_bwd = cb_handler.on_backward_begin(loss)
        if not skip_bwd:
            loss.backward()
        if not cb_handler.on_backward_end():
            opt.step()
        if not cb_handler.on_step_end():
            opt.zero_grad()
    return loss.detach()  # stays on the device: no host sync per batch


def validate(model: nn.Module, dl: DeviceDataLoader, loss_func: Callable | None = None,
             cb_handler: CallbackHandler | None = None, pbar: Any = None, average: bool = True,
             n_batch: int | None = None) -> Any:
    "The loss of `model` on `dl`: the average weighted by batch size, or the list of batch losses."
    model.eval()
    with torch.no_grad():
        val_losses, nums = [], []
        if cb_handler is not None:
            cb_handler.set_dl(dl)
        for xb, yb in progress_bar(dl, parent=pbar, leave=(pbar is not None)):
            if cb_handler is not None:
                xb, yb = cb_handler.on_batch_begin(xb, yb, train=False)
            val_loss = loss_batch(model, xb, yb, loss_func, cb_handler=cb_handler)
            val_losses.append(val_loss)
            nums.append(_batch_len(yb))
            if cb_handler is not None and cb_handler.on_batch_end(val_losses[-1]):
                break
            if n_batch and len(nums) >= n_batch:
                break
        if not average:
            return val_losses
        if not nums:
            return None
        weights = torch.tensor(nums, dtype=torch.float32, device=val_losses[0].device)
        return float((torch.stack(val_losses).float() * weights).sum() / weights.sum())


def get_preds(model: nn.Module, dl: DeviceDataLoader, pbar: Any = None, cb_handler: CallbackHandler | None = None,
              activ: Callable | None = None, loss_func: Callable | None = None,
              n_batch: int | None = None) -> list[Tensor]:
    """Predictions and targets of `model` on `dl` (on the CPU), plus per-item losses when `loss_func` is given.

    Each batch is copied into buffers sized for the whole dataset as it comes, so the memory held at the end is
    what is returned (concatenating a list of batches would briefly hold everything twice).
    """
    outs, targs = _Gathered(len(dl.dataset)), _Gathered(len(dl.dataset))
    model.eval()
    n = 0
    with torch.no_grad():
        for xb, yb in progress_bar(dl, parent=pbar, leave=(pbar is not None)):
            if cb_handler is not None:
                xb, yb = cb_handler.on_batch_begin(xb, yb, train=False)
            out, targ = loss_batch(model, xb, yb, cb_handler=cb_handler)
            outs.add(out)
            targs.add(targ)
            n += 1
            if n_batch and n >= n_batch:
                break
    if not n:
        return [torch.empty(0), torch.empty(0)] + ([torch.empty(0)] if loss_func is not None else [])
    res = [outs.result(), targs.result()]
    if loss_func is not None:
        with _per_item_loss(loss_func) as lf:
            res.append(lf(res[0], res[1]))
    if activ is not None:
        res[0] = activ(res[0])
    return res


def train_epoch(model: nn.Module, dl: DeviceDataLoader, opt: OptimWrapper, loss_func: Callable) -> None:
    "One epoch of training with no callbacks."
    model.train()
    for xb, yb in dl:
        loss = loss_func(model(xb), yb)
        loss.backward()
        opt.step()
        opt.zero_grad()


def fit(epochs: int, learn: Learner, callbacks: Collection[Callback] | None = None,
        metrics: Collection | None = None, resume: dict | None = None) -> None:
    """Train `learn.model` for `epochs` epochs, firing the events on `callbacks` and `metrics`.

    `resume`: the `train_state` of a full-state checkpoint (see `SaveModelCallback`), whose model and optimizer
    are already loaded: training continues from the epoch and batch where it was taken.
    """
    cb_handler = CallbackHandler(callbacks, metrics)
    pbar = master_bar(range(resume['epoch'] if resume else 0, epochs))
    cb_handler.on_train_begin(epochs, pbar=pbar, metrics=metrics)
    if resume:
        cb_handler.restore(resume)
    exception: BaseException | bool = False
    try:
        for epoch in pbar:
            learn.model.train()
            cb_handler.set_dl(learn.data.train_dl)
            cb_handler.on_epoch_begin()
            batches = progress_bar(learn.data.train_dl, parent=pbar)
            for xb, yb in cb_handler.resume_batches(batches, _loader_generator(learn.data.train_dl)):
                xb, yb = cb_handler.on_batch_begin(xb, yb)
                loss = loss_batch(learn.model, xb, yb, learn.loss_func, learn.opt, cb_handler)
                if cb_handler.on_batch_end(loss):
                    break
            val_loss = None
            if not cb_handler.skip_validate and not learn.data.empty_val:
                val_loss = validate(learn.model, learn.data.valid_dl, loss_func=learn.loss_func,
                                    cb_handler=cb_handler, pbar=pbar)
            if cb_handler.on_epoch_end(val_loss):
                break
    except BaseException as e:
        exception = e
        raise
    finally:
        cb_handler.on_train_end(exception)


def _loader_generator(dl: Any) -> torch.Generator | None:
    "The random generator a (device) data loader shuffles with, when it has its own."
    gen = getattr(getattr(dl, 'dl', dl), 'generator', None)
    return gen if isinstance(gen, torch.Generator) else None


# --- Learner -----------------------------------------------------------------------------------------------

class Learner:
    "Train `model` on `data` with `opt_func`, `loss_func`, `metrics` and callbacks (fastai v1's Learner)."

    def __init__(self, data: DataBunch, model: nn.Module, opt_func: Callable = AdamW,
                 loss_func: Callable | None = None, metrics: Collection | None = None, true_wd: bool = True,
                 bn_wd: bool = True, wd: float | Collection[float] | None = None, train_bn: bool = True,
                 path: PathOrStr | None = None, model_dir: PathOrStr = 'models',
                 callback_fns: Collection[Callable] | None = None, callbacks: Collection[Callback] | None = None,
                 layer_groups: Collection[nn.Module] | None = None, add_time: bool = True,
                 silent: bool | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"Learner needs a torch nn.Module as model, not {type(model).__name__}.")
        if not all(hasattr(data, a) for a in ('train_dl', 'valid_dl', 'device')):
            raise TypeError(f"Learner needs a DataBunch as data, not {type(data).__name__}: build one with "
                            f"DataBunch.create(train_ds, valid_ds, bs=...), a domain factory (ImageDataBunch."
                            f"from_folder, ...) or the data block API (... .databunch()).")
        for name, f in (('opt_func', opt_func), ('loss_func', loss_func)):
            if f is not None and not callable(f):
                raise TypeError(f"{name} must be callable (e.g. opt_func=AdamW or torch.optim.SGD, loss_func="
                                f"CrossEntropyFlat() or F.mse_loss), not the {type(f).__name__} {f!r}.")
        self.data, self.opt_func = data, opt_func
        self.model = model.to(data.device)
        self.loss_func = ifnone(loss_func, data.loss_func)
        self.metrics = metrics
        self.true_wd, self.bn_wd, self.train_bn = true_wd, bn_wd, train_bn
        self.wd = ifnone(wd, defaults.wd)
        self.path = Path(ifnone(path, data.path))
        self.model_dir = model_dir
        self.callbacks = listify(callbacks)
        self.layer_groups = listify(layer_groups) or [nn.Sequential(*flatten_model(self.model))]
        self.add_time, self.silent = add_time, ifnone(silent, defaults.silent)
        recorder = functools.partial(Recorder, add_time=self.add_time)  # reads learn.silent at each fit
        self.callback_fns = [recorder] + [_lookup_callback(cb) for cb in listify(callback_fns)]
        self.opt: OptimWrapper | None = None
        self._output_checked = False

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(data={type(self.data).__name__}, model={type(self.model).__name__}, '
                f'loss_func={self.loss_func!r}, metrics={[getattr(m, "__name__", m) for m in self.metrics]}, '
                f'layer_groups={len(self.layer_groups)}, path={str(self.path)!r})')

    @property
    def metrics(self) -> list:
        "The metrics shown after each epoch: functions `f(output, target)`, metric callbacks, or their names."
        return self._metrics

    @metrics.setter
    def metrics(self, metrics: Collection | None) -> None:
        self._metrics = [_lookup_metric(m) for m in listify(metrics)]

    def init(self, init: Callable) -> None:
        "Initialise the weights of every layer group with `init`."
        from .torch_core import apply_init
        for lg in self.layer_groups:
            apply_init(lg, init)

    def lr_range(self, lr: float | slice) -> np.ndarray:
        "One learning rate per layer group: a `slice(a, b)` spreads from a to b geometrically, `slice(b)` gives b/10 ... b."
        if not isinstance(lr, slice):
            return np.array([lr] * len(self.layer_groups), dtype=float)
        if lr.start:
            return even_mults(lr.start, lr.stop, len(self.layer_groups))
        return np.array([lr.stop / 10] * (len(self.layer_groups) - 1) + [lr.stop], dtype=float)

    def fit(self, epochs: int, lr: float | slice | Collection[float] | None = None,
            wd: float | Collection[float] | None = None, callbacks: Collection[Callback] | None = None,
            progress: bool | None = None, resume: PathOrStr | None = None) -> None:
        """Train for `epochs` epochs at learning rate `lr` (default `defaults.lr`) with weight decay `wd`.

        `resume`: a full-state checkpoint (a name in `model_dir` or a path) written by `SaveModelCallback` during
        an interrupted run of the same call: model, optimizer, schedules, random generators and history come back
        and training continues from where the checkpoint was taken, ending as the uninterrupted run would.
        """
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a whole number >= 0, not {epochs!r}.")
        lr = ifnone(lr, defaults.lr)
        lr = self.lr_range(lr) if isinstance(lr, (slice, int, float)) else np.array(listify(lr), dtype=float)
        if not (np.isfinite(lr).all() and (lr >= 0).all()):
            raise ValueError(f"The learning rate must be finite and >= 0, not {lr.tolist()} (lr_find suggests one).")
        wd = ifnone(wd, self.wd)
        if self.opt is None:
            self.create_opt(lr, wd)
        else:
            self.opt.lr, self.opt.wd = lr, wd
        self._check_model_output()
        train_state = self._load_train_state(resume, epochs) if resume is not None else None
        fns = self.callback_fns + [_lookup_callback(cb) for cb in listify(defaults.extra_callback_fns)]
        callbacks = [fn(self) for fn in fns] + listify(callbacks) + listify(defaults.extra_callbacks)
        with no_progress() if progress is False else contextlib.nullcontext():
            fit(epochs, self, metrics=self.metrics, callbacks=self.callbacks + callbacks, resume=train_state)

    def _load_train_state(self, file: PathOrStr, epochs: int) -> dict:
        "Load the model and optimizer of the full-state checkpoint `file`, and return its training state."
        source = self._model_file(file)
        state = self._read_model_file(source)
        train_state = state.get('train_state') if isinstance(state, dict) else None
        if train_state is None:
            raise ValueError(f"{source} holds a model but not the state of a run, so training cannot resume from "
                             f"it. Resume from a file that SaveModelCallback(every='epoch') or "
                             f"SaveModelCallback(every_batches=N) wrote, or load the weights with learn.load().")
        if train_state['n_epochs'] != epochs:
            raise ValueError(f"{source} was saved in a run of {train_state['n_epochs']} epochs; resume it with the "
                             f"same call (epochs={train_state['n_epochs']}), not {epochs}, so the schedules match.")
        if train_state['n_batches'] != len(self.data.train_dl):
            raise ValueError(f"{source} was saved with {train_state['n_batches']} training batches per epoch, but "
                             f"the data now gives {len(self.data.train_dl)}: resume with the same data and batch "
                             f"size.")
        self._load_state(state, source, with_opt=True)
        return train_state

    def create_opt(self, lr: float | Collection[float], wd: float | Collection[float] = 0.) -> None:
        "Create the optimizer with learning rate(s) `lr` and weight decay `wd`."
        self.opt = OptimWrapper.create(self.opt_func, lr, self.layer_groups, wd=wd, true_wd=self.true_wd,
                                       bn_wd=self.bn_wd)

    def split(self, split_on: Callable | Collection[nn.Module]) -> Learner:
        "Split the model into layer groups at the modules `split_on` (or `split_on(model)` when callable)."
        if callable(split_on) and not isinstance(split_on, nn.Module):
            split_on = split_on(get_model(self.model))
        self.layer_groups = split_model(get_model(self.model), split_on)
        self.opt = None  # the param groups changed: the next fit builds a new optimizer
        return self

    def freeze_to(self, n: int) -> None:
        "Freeze the layer groups before `n` and unfreeze the rest (batch norms stay trainable when `train_bn`)."
        if not -len(self.layer_groups) <= n < len(self.layer_groups):
            raise ValueError(f"freeze_to({n}) would freeze every layer group: this learner has "
                             f"{len(self.layer_groups)} (valid: {-len(self.layer_groups)} to "
                             f"{len(self.layer_groups) - 1}; freeze() keeps only the last one trainable).")
        for g in self.layer_groups[:n]:
            for layer in g:
                if not self.train_bn or not isinstance(layer, bn_types):
                    requires_grad(layer, False)
        for g in self.layer_groups[n:]:
            requires_grad(g, True)
        self.create_opt(defaults.lr)

    def freeze(self) -> None:
        "Freeze every layer group but the last."
        if len(self.layer_groups) < 2:
            raise ValueError("freeze() needs at least two layer groups (body and head); this learner has "
                             f"{len(self.layer_groups)}. Split the model with `learn.split(...)` first.")
        self.freeze_to(-1)

    def unfreeze(self) -> None:
        "Make every layer group trainable."
        self.freeze_to(0)

    # Saving and loading
    def _model_file(self, file: PathOrStr) -> Path:
        file = Path(file)
        return file if file.is_absolute() or file.suffix else self.path / self.model_dir / f'{file}.pth'

    def save(self, file: PathOrStr | None = None, return_path: bool = False, with_opt: bool = True,
             train_state: dict | None = None) -> Path | None:
        """Save the model (and optimizer when `with_opt`) to `path/model_dir/file.pth`, atomically.

        `train_state` (from a running fit, see `SaveModelCallback`) makes it a full-state checkpoint that
        `fit(..., resume=file)` continues from. In distributed training every rank calls it: rank 0 writes, and
        every rank returns once the file is there.
        """
        target = self._model_file(ifnone(file, 'model'))
        if rank_distrib() == 0:
            state: dict[str, Any] = {'model': get_model(self.model).state_dict()}
            if with_opt and self.opt is not None:
                state['opt'] = self.opt.state_dict()
            if train_state is not None:
                state['train_state'] = train_state
            _writable_dir(target.parent, 'learn.model_dir')
            atomic_save(state, target)
        distrib_barrier()
        return target if return_path else None

    def load(self, file: PathOrStr | None = None, device: torch.device | None = None, strict: bool = True,
             with_opt: bool | None = None, purge: bool = False, remove_module: bool = False) -> Learner:
        "Load the model (and optimizer, unless `with_opt=False`) saved as `path/model_dir/file.pth`."
        source = self._model_file(ifnone(file, 'model'))
        state = self._read_model_file(source, device)
        return self._load_state(state, source, strict=strict, with_opt=with_opt, remove_module=remove_module)

    def _read_model_file(self, source: Path, device: torch.device | None = None) -> Any:
        "The contents of the model file `source` (loaded without running code from it)."
        if not source.is_file():
            saved = sorted(p.stem for p in source.parent.glob('*.pth')) if source.parent.is_dir() else []
            hint = did_you_mean(source.stem, saved) or (f" Saved models there: {saved}." if saved else
                                                        " No model has been saved there yet (learn.save(name)).")
            raise FileNotFoundError(f"No saved model at {source}.{hint}")
        return safe_load(source, map_location=ifnone(device, self.data.device), what='saved model')

    def _load_state(self, state: Any, source: Path, strict: bool = True, with_opt: bool | None = None,
                    remove_module: bool = False) -> Learner:
        "Put the model (and optimizer) state read from `source` into this learner."
        model_state = state['model'] if isinstance(state, dict) and 'model' in state else state
        if remove_module:
            model_state = remove_module_load(model_state)
        try:
            get_model(self.model).load_state_dict(model_state, strict=strict)
        except RuntimeError as e:
            details = str(e).split('\n', 1)[-1].strip()
            raise RuntimeError(f"{source} does not fit this model: it was saved from a model with other layers or "
                               f"sizes (another architecture or number of classes?). Build the learner as the one "
                               f"that saved it; strict=False skips missing or extra layers, not layers of another "
                               f"size. {details[:600]}") from None
        if ifnone(with_opt, True) and isinstance(state, dict) and 'opt' in state:
            if self.opt is None:
                self.create_opt(defaults.lr, self.wd)
            try:
                self.opt.load_state_dict(state['opt'])
            except (ValueError, KeyError) as e:
                if with_opt:
                    raise
                import warnings
                warnings.warn(f"Model loaded, but the optimizer state in {source} does not fit this learner's "
                              f"optimizer ({e}); starting from a fresh optimizer.")
        return self

    def export(self, file: PathOrStr = 'export.pkl', destroy: bool = False) -> Path:
        """Write what inference needs (model, data processing, loss) to `path/file`, atomically.

        The file is a `torch.save` archive that `load_learner` opens without running code from it (see
        `fastlib.serialization`); it loads on a CPU-only machine even when written on a GPU. In distributed
        training rank 0 writes it and the other ranks wait for it.
        """
        target = self.path / file
        if rank_distrib() != 0:
            distrib_barrier()
            if destroy:
                self.destroy()
            return target
        model, layer_groups = _exportable(get_model(self.model), self.layer_groups)
        state = {'cls': f'{type(self).__module__}.{type(self).__qualname__}', 'model': model,
                 'layer_groups': layer_groups, 'data': self.data.export_state(), 'opt_func': self.opt_func,
                 'loss_func': self.loss_func, 'metrics': self.metrics, 'true_wd': self.true_wd,
                 'bn_wd': self.bn_wd, 'wd': self.wd, 'train_bn': self.train_bn, 'model_dir': str(self.model_dir)}
        body = io.BytesIO()
        torch.save(state, body)
        header = {'fastlib_export': 1, 'modules': _fastlib_modules_in(state, body), 'body': body.getvalue()}
        _writable_dir(target.parent, 'learn.path')
        atomic_save(header, target)
        distrib_barrier()
        if destroy:
            self.destroy()
        return target

    def destroy(self) -> None:
        "Free the model and data memory; the Learner can no longer be used."
        for attr in ('model', 'opt', 'data', 'callbacks', 'layer_groups'):
            if hasattr(self, attr):
                delattr(self, attr)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def purge(self, clear_opt: bool = True) -> Learner:
        "Drop the optimizer state (and free cached GPU memory)."
        if clear_opt:
            self.opt = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return self

    # Predictions
    def dl(self, ds_type: DatasetType = DatasetType.Valid) -> DeviceDataLoader:
        "The data loader for `ds_type`."
        return self.data.dl(ds_type)

    def get_preds(self, ds_type: DatasetType = DatasetType.Valid, activ: Callable | None = None,
                  with_loss: bool = False, n_batch: int | None = None, pbar: Any = None) -> list[Tensor]:
        "Predictions (after `activ`, by default the loss's own activation) and targets on `ds_type`."
        lf = self.loss_func if with_loss else None
        activ = ifnone(activ, _loss_func2activ(self.loss_func))
        cb_handler = CallbackHandler(self.callbacks)
        return get_preds(self.model, self.dl(ds_type), cb_handler=cb_handler, activ=activ, loss_func=lf,
                         n_batch=n_batch, pbar=pbar)

    def pred_batch(self, ds_type: DatasetType = DatasetType.Valid, batch: tuple | None = None,
                   reconstruct: bool = False, with_dropout: bool = False, activ: Callable | None = None) -> Any:
        "Predictions on one batch of `ds_type` (or on `batch`), with the loss's activation applied."
        if batch is not None:
            xb, yb = batch
        else:
            xb, yb = self.data.one_batch(ds_type, detach=False, denorm=False)
        cb_handler = CallbackHandler(self.callbacks)
        xb, yb = cb_handler.on_batch_begin(xb, yb, train=False)
        activ = ifnone(activ, _loss_func2activ(self.loss_func))
        with torch.no_grad():
            self.model.eval()
            if with_dropout:
                self.model.apply(self.apply_dropout)
            out = loss_batch(self.model, xb, yb, cb_handler=cb_handler)[0]
        out = activ(out)
        if not reconstruct:
            return out
        ds = self.dl(ds_type).dataset
        return [ds.reconstruct(o) for o in out] if hasattr(ds, 'reconstruct') else list(out)

    def backward(self, item: Any) -> None:
        "Backpropagate the loss of the single `item` (gradients land in the model's parameters)."
        xb, yb = self.data.one_item(item)
        loss = loss_batch(self.model.eval(), xb, yb, self.loss_func, opt=_NoStep(), cb_handler=CallbackHandler())
        return loss

    def predict(self, item: Any, return_x: bool = False, batch_first: bool = True, with_dropout: bool = False,
                **kwargs: Any) -> tuple:
        "Predict `item`: returns (decoded prediction, predicted index or value, raw output after activation)."
        batch = self.data.one_item(item)
        res = self.pred_batch(batch=batch, with_dropout=with_dropout)
        raw_pred = res[0] if batch_first else res[:, 0]
        raw_pred = to_detach(raw_pred)
        ds = self.data.single_ds
        if hasattr(ds, 'y') and hasattr(ds.y, 'analyze_pred'):
            pred = ds.y.analyze_pred(raw_pred, **kwargs)
            x = ds.x.reconstruct(grab_idx(batch[0], 0)) if return_x else None  # list inputs too (tabular)
            y = ds.y.reconstruct(pred, x) if _takes_x(ds.y.reconstruct) else ds.y.reconstruct(pred)
            return (x, y, pred, raw_pred) if return_x else (y, pred, raw_pred)
        classes = self.data.classes
        if classes is not None:
            pred = raw_pred.argmax(dim=-1)
            y = classes[int(pred)] if pred.dim() == 0 else pred
        else:
            pred = y = raw_pred
        return (item, y, pred, raw_pred) if return_x else (y, pred, raw_pred)

    def validate(self, dl: DeviceDataLoader | None = None, callbacks: Collection[Callback] | None = None,
                 metrics: Collection | None = None) -> list:
        "The validation loss and `metrics` (default the learner's) on `dl` (default the validation set)."
        dl = ifnone(dl, self.data.valid_dl)
        metrics = [_lookup_metric(m) for m in listify(ifnone(metrics, self.metrics))]
        cb_handler = CallbackHandler(self.callbacks + listify(callbacks), metrics)
        cb_handler.on_train_begin(1, None, metrics)
        cb_handler.on_epoch_begin()
        val_loss = validate(self.model, dl, self.loss_func, cb_handler)
        cb_handler.on_epoch_end(val_loss)
        return cb_handler.state_dict['last_metrics']

    def show_results(self, ds_type: DatasetType = DatasetType.Valid, rows: int = 5, **kwargs: Any) -> Any:
        "Show `rows` items of `ds_type` with their targets and predictions."
        ds = self.dl(ds_type).dataset
        xb, yb = self.data.one_batch(ds_type, detach=False, denorm=False)
        preds = self.pred_batch(ds_type=ds_type, batch=(xb, yb))
        n = min(rows, len(preds))
        if hasattr(ds, 'x') and hasattr(ds.x, 'show_xyzs'):
            xs = [ds.x.reconstruct(grab_idx(xb, i)) for i in range(n)]
            ys = [ds.y.reconstruct(to_detach(yb[i])) for i in range(n)]
            zs = [ds.y.reconstruct(ds.y.analyze_pred(to_detach(p))) for p in preds[:n]]
            return ds.x.show_xyzs(xs, ys, zs, **kwargs)
        import pandas as pd
        classes = self.data.classes
        decode = (lambda t: classes[int(t)]) if classes is not None else (lambda t: t.tolist())
        targets = [decode(t) for t in to_detach(yb[:n])]
        predicted = [decode(p.argmax(-1)) if classes is not None else p.tolist() for p in to_detach(preds[:n])]
        return pd.DataFrame({'target': targets, 'prediction': predicted})

    def apply_dropout(self, m: nn.Module) -> None:
        "Switch dropout layers to train mode (for Monte-Carlo dropout)."
        if 'dropout' in type(m).__name__.lower():
            m.train()

    def predict_with_mc_dropout(self, item: Any, with_dropout: bool = True, n_times: int = 10,
                                **kwargs: Any) -> list[tuple]:
        "`n_times` predictions of `item` with dropout on (Monte-Carlo dropout)."
        return [self.predict(item, with_dropout=with_dropout, **kwargs) for _ in range(n_times)]

    # Recipes (the code lives in fastlib.train and fastlib.callbacks; these are the methods users call)
    def fit_one_cycle(self, cyc_len: int, max_lr: float | slice | None = None, moms: tuple = (0.95, 0.85),
                      div_factor: float = 25., pct_start: float = 0.3, final_div: float | None = None,
                      wd: float | None = None, callbacks: Collection[Callback] | None = None,
                      tot_epochs: int | None = None, start_epoch: int | None = None,
                      resume: PathOrStr | None = None) -> None:
        "Train for `cyc_len` epochs with the one-cycle policy peaking at `max_lr` (see `fastlib.train`)."
        from .train import fit_one_cycle
        fit_one_cycle(self, cyc_len, max_lr, moms=moms, div_factor=div_factor, pct_start=pct_start,
                      final_div=final_div, wd=wd, callbacks=callbacks, tot_epochs=tot_epochs,
                      start_epoch=start_epoch, resume=resume)

    def fit_fc(self, tot_epochs: int = 1, lr: float | slice | None = None, moms: tuple = (0.95, 0.85),
               start_pct: float = 0.72, wd: float | None = None, callbacks: Collection[Callback] | None = None,
               resume: PathOrStr | None = None) -> None:
        "Train for `tot_epochs` epochs with a flat then cosine-annealed learning rate (see `fastlib.train.fit_fc`)."
        from .train import fit_fc
        fit_fc(self, tot_epochs, lr, moms=moms, start_pct=start_pct, wd=wd, callbacks=callbacks, resume=resume)

    def lr_find(self, start_lr: float = 1e-7, end_lr: float = 10, num_it: int = 100, stop_div: bool = True,
                wd: float | None = None) -> Any:
        "Explore learning rates from `start_lr` to `end_lr`, leave the learner as it was, return suggestions."
        from .train import lr_find
        return lr_find(self, start_lr, end_lr, num_it, stop_div, wd)

    def fine_tune(self, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
                  pct_start: float = 0.3, div: float = 5.0, **kwargs: Any) -> None:
        "Train the head for `freeze_epochs`, then everything for `epochs` (fastai v2's transfer-learning recipe)."
        from .train import fine_tune
        fine_tune(self, epochs, base_lr, freeze_epochs, lr_mult, pct_start, div, **kwargs)

    def to_fp16(self, loss_scale: float | None = None, max_noskip: int = 1000, dynamic: bool = True,
                clip: float | None = None, flat_master: bool = False, max_scale: float = 2 ** 24,
                loss_fp32: bool = True) -> Learner:
        "Train with float16 autocast and a GradScaler on CUDA (bfloat16 autocast on a CPU)."
        from .train import to_fp16
        return to_fp16(self, loss_scale, max_noskip, dynamic, clip, flat_master, max_scale, loss_fp32)

    def to_distributed(self, cuda_id: int | None = None, cache_dir: str = 'tmp', sync_bn: bool = False,
                       **kwargs: Any) -> Learner:
        "Train with DistributedDataParallel on GPU `cuda_id` (None: CPU), `sync_bn` for SyncBatchNorm (see `fastlib.distributed`)."
        from .distributed import to_distributed
        return to_distributed(self, cuda_id, cache_dir=cache_dir, sync_bn=sync_bn, **kwargs)

    def to_bf16(self) -> Learner:
        "Train with bfloat16 autocast (no loss scaling needed)."
        from .train import to_bf16
        return to_bf16(self)

    def to_fp32(self) -> Learner:
        "Go back to full float32 training."
        from .train import to_fp32
        return to_fp32(self)

    def to_channels_last(self) -> Learner:
        "Keep the model's weights and the 4-d input batches in channels-last memory layout (faster convolutions)."
        self.model = self.model.to(memory_format=torch.channels_last)
        if _channels_last not in self.data.dl_tfms:
            self.data.add_tfm(_channels_last)
        return self

    def compile(self, **kwargs: Any) -> Learner:
        """Run the model through `torch.compile(**kwargs)` from now on.

        The layer groups, freezing, `save`, `load` and `export` keep working on the original modules (the
        compiled wrapper shares their parameters), so files carry no trace of compilation.
        """
        self.model = torch.compile(get_model(self.model), **kwargs)
        return self

    def mixup(self, alpha: float = 0.4, stack_x: bool = False, stack_y: bool = True) -> Learner:
        "Train with mixup of strength `alpha`."
        from .train import mixup
        return mixup(self, alpha, stack_x, stack_y)

    def clip_grad(self, clip: float = 0.1) -> Learner:
        "Clip the gradient norm to `clip` at each step."
        from .train import clip_grad
        return clip_grad(self, clip)

    def interpret(self, ds_type: DatasetType = DatasetType.Valid, activ: Callable | None = None) -> Any:
        "A ClassificationInterpretation of this learner's predictions on `ds_type`."
        from .train import ClassificationInterpretation
        return ClassificationInterpretation.from_learner(self, ds_type=ds_type, activ=activ)

    def summary(self, n: int = 70) -> str:
        "A table of the model's layers, output shapes and parameter counts (computed on one batch)."
        from .callbacks.hooks import model_summary
        return model_summary(self, n=n)

    # Checks
    def _check_model_output(self) -> None:
        """Before fitting: fail early when the model is not on the data's device, cannot take the data's input, or
        outputs a number of classes other than the data's (the last two checked once, on one item)."""
        param = next(self.model.parameters(), None)
        if param is not None and not _same_device(param.device, self.data.device):
            raise RuntimeError(f"The model is on {param.device} but the data on {self.data.device}: move it with "
                               f"learn.model.to(learn.data.device) (Learner does it when it is created).")
        if self._output_checked or self.data.c is None or not self.data.classes:
            return
        ds = self.data.valid_ds if len(self.data.valid_ds) else self.data.train_ds
        if len(ds) == 0:
            return
        xb, yb = self.data.valid_dl.proc_batch(self.data.collate_fn([ds[0]]))
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                out = self.model(*(xb if is_listy(xb) else [xb]))
        except RuntimeError as e:
            if not _SHAPE_ERROR.search(str(e)):
                raise
            shapes = [tuple(x.shape) for x in (xb if is_listy(xb) else [xb]) if isinstance(x, Tensor)]
            raise ValueError(f"The model cannot take the data's input (one item: shape {shapes}): {e}. Make its "
                             f"first layer fit the data (in_features / in_channels), or the data fit the model "
                             f"(e.g. the image size).") from e
        finally:
            self.model.train(was_training)
        axis = getattr(self.loss_func, 'axis', -1)   # where the loss reads the classes (1 for a segmentation)
        if isinstance(out, Tensor) and out.dim() >= 2 and -out.dim() <= axis < out.dim() and \
                out.shape[axis] != self.data.c and _is_classification_loss(self.loss_func):
            what = 'values per item' if axis in (-1, out.dim() - 1) else f'channels on axis {axis} (the classes)'
            raise ValueError(f"The model outputs {out.shape[axis]} {what} but the data has {self.data.c} "
                             f"classes ({self.data.classes[:10]}). Make the model's last layer output "
                             f"{self.data.c} values (cnn_learner and the other factories do this from data.c).")
        self._output_checked = True


# torch's messages for an input the model's layers cannot take.
_SHAPE_ERROR = re.compile(r'shapes cannot be multiplied|size mismatch|Expected .*channels|expected input|'
                          r'must match the size|Given groups=|sizes? of tensors? must match|Input type .* weight type',
                          re.IGNORECASE)


def _same_device(a: torch.device, b: torch.device) -> bool:
    "Whether `a` and `b` are the same device ('cuda' and 'cuda:0' are, when 0 is the current one)."
    if a.type != b.type:
        return False
    if a.type != 'cuda' or a.index == b.index:
        return True
    current = torch.cuda.current_device()
    return ifnone(a.index, current) == ifnone(b.index, current)


def _channels_last(b: Any) -> Any:
    "Batch transform: 4-d input tensors to channels-last memory layout."
    xb, yb = b
    if isinstance(xb, Tensor) and xb.dim() == 4:
        xb = xb.contiguous(memory_format=torch.channels_last)
    return xb, yb


def _takes_x(f: Callable) -> bool:
    import inspect
    try:
        return 'x' in inspect.signature(f).parameters
    except (TypeError, ValueError):
        return False


class _NoStep:
    "An optimizer stand-in for `Learner.backward`: computes gradients and keeps them."

    def step(self) -> None:
        pass

    def zero_grad(self) -> None:
        pass


def load_learner(path: PathOrStr, file: PathOrStr = 'export.pkl', test: Any = None, tfm_y: Any = None,
                 trusted: bool = False, safe_globals: Collection[Any] = (), **db_kwargs: Any) -> Learner:
    """Load a learner written by `Learner.export` from `path/file`, ready to predict, on this machine's device.

    No code from the file runs unless `trusted=True`; a model class of your own can be allowed with
    `safe_globals=[MyModel]` instead (see `fastlib.serialization`).
    """
    source = Path(path) / file
    outer = safe_load(source, what='exported learner')
    if not isinstance(outer, dict) or 'fastlib_export' not in outer:
        raise ValueError(f"{source} was not written by Learner.export().")
    import_fastlib_modules(outer['modules'])
    state = safe_load(io.BytesIO(outer['body']), trusted=trusted, safe_globals=safe_globals, what='exported learner',
                      name=str(source))
    data = DataBunch.load_empty(path, state['data'], **db_kwargs)
    if test is not None:
        data.add_test(test, tfm_y=tfm_y)
    import_fastlib_modules([state['cls'].rpartition('.')[0]])  # the Learner subclass's own module (e.g. vision)
    cls = _learner_class(state['cls'])
    learn = cls(data, state['model'], opt_func=state['opt_func'], loss_func=state['loss_func'],
                metrics=state['metrics'], true_wd=state['true_wd'], bn_wd=state['bn_wd'], wd=state['wd'],
                train_bn=state['train_bn'], path=path, model_dir=state['model_dir'],
                layer_groups=state['layer_groups'])
    learn.model.eval()
    return learn


def _learner_class(name: str) -> type:
    "The fastlib Learner class called `name` (module.qualname), Learner itself when unknown."
    stack, seen = [Learner], {}
    while stack:
        c = stack.pop()
        seen[f'{c.__module__}.{c.__qualname__}'] = c
        stack.extend(c.__subclasses__())
    return seen.get(name, Learner)


def _fastlib_modules_in(state: dict, body: io.BytesIO) -> list[str]:
    "The fastlib modules defining the classes in `state`, saved in `body` (imported before loading it)."
    body.seek(0)
    # Every class or function the file names (item lists, processors, transforms...), read from the archive itself.
    names = {g.rpartition('.')[0] for g in torch.serialization.get_unsafe_globals_in_checkpoint(body)}
    body.seek(0)
    for m in state['model'].modules():
        names.add(type(m).__module__)
    for obj in (state['loss_func'], *state['metrics']):
        names.add(getattr(obj, '__module__', None) or type(obj).__module__)
    return sorted(n for n in names if n and n.startswith('fastlib'))


def _exportable(model: nn.Module, layer_groups: list[nn.Module]) -> tuple[nn.Module, list[nn.Module]]:
    """`model` and its layer groups in a form torch can pickle.

    torch refuses to pickle modules with parametrizations (weight norm, spectral norm); a copy with each
    parametrization folded into a plain weight computes the same outputs, which is what inference needs.
    """
    from torch.nn.utils import parametrize
    if not any(parametrize.is_parametrized(m) for m in model.modules()):
        return model, layer_groups
    copied = copy.deepcopy({'model': model, 'layer_groups': layer_groups})  # one copy keeps shared modules shared
    for m in copied['model'].modules():
        if parametrize.is_parametrized(m):
            # The copy shares its generated class (which holds the `weight` property) with the original, and
            # removal deletes that property from the class: give the copy a class of its own first.
            cls = type(m)
            m.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))
            for name in list(m.parametrizations.keys()):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
        # weight_norm also leaves a state-dict hook (a local function, which pickle cannot store) that converts
        # old checkpoints; with the parametrization folded in it has nothing left to convert.
        hooks = m._load_state_dict_pre_hooks
        for key in [k for k, h in hooks.items() if '<locals>' in getattr(getattr(h, 'hook', h), '__qualname__', '')]:
            del hooks[key]
    return copied['model'], copied['layer_groups']


def _writable_dir(folder: Path, setting: str) -> None:
    "Create `folder`, or explain how to point fastlib at a writable one."
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / '.fastlib_write_test'
        probe.touch()
        probe.unlink()
    except OSError as e:
        example = "learn.model_dir = '/tmp/models' (an absolute path is used as is)" if setting == 'learn.model_dir' \
            else f"{setting} = Path('/tmp/fastlib')"
        raise PermissionError(f"Cannot write to {folder} ({e.strerror}). Set {setting} to a writable folder, e.g. "
                              f"{example}.") from e


# --- Metric and callback lookup by name -------------------------------------------------------------------

def _lookup_metric(m: Any) -> Any:
    "A metric given by name ('accuracy') is looked up in fastlib.metrics; anything else is used as is."
    if not isinstance(m, str):
        if not (callable(m) or isinstance(m, Callback)):
            raise TypeError(f"A metric is a function f(output, target), a metric callback or a name such as "
                            f"'accuracy', not the {type(m).__name__} {m!r}.")
        return m
    from . import metrics as metrics_module
    names = [n for n in getattr(metrics_module, '__all__', dir(metrics_module)) if not n.startswith('_')]
    if m not in names:
        raise ValueError(f"Unknown metric {m!r}.{did_you_mean(m, names)} Metrics by name come from fastlib.metrics; "
                         f"you can also pass a function `f(output, target)`.")
    obj = getattr(metrics_module, m)
    return obj() if isinstance(obj, type) else obj


def _lookup_callback(cb: Any) -> Callable:
    "A callback factory given by name ('CSVLogger' or 'csv_logger') is looked up in fastlib.callbacks."
    if not isinstance(cb, str):
        return cb
    from . import callbacks as callbacks_module
    classes = {n: getattr(callbacks_module, n) for n in getattr(callbacks_module, '__all__', [])
               if isinstance(getattr(callbacks_module, n), type) and issubclass(getattr(callbacks_module, n), Callback)}
    by_name = {**classes, **{camel2snake(n): c for n, c in classes.items()}}
    if cb not in by_name:
        raise ValueError(f"Unknown callback {cb!r}.{did_you_mean(cb, by_name)} Callbacks by name come from "
                         f"fastlib.callbacks.")
    return by_name[cb]


# --- Callbacks that need the learner ----------------------------------------------------------------------

class LearnerCallback(Callback):
    "A callback that holds a (weak) reference to its learner, which sees it as `learn.<snake_case_name>`."

    def __init__(self, learn: Learner):
        self._learn = weakref.ref(learn)
        self.exclude, self.not_min = ['_learn'], []
        setattr(self.learn, self.cb_name, self)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != '_learn'}

    @property
    def learn(self) -> Learner:
        return self._learn()

    @learn.setter
    def learn(self, learn: Learner) -> None:
        self._learn = weakref.ref(learn)

    @property
    def cb_name(self) -> str:
        return camel2snake(type(self).__name__)


class RecordOnCPU(Callback):
    "Keep a CPU copy of each batch's input and target (as `input`, `target`)."

    def on_batch_begin(self, last_input: Any, last_target: Any, **kwargs: Any) -> None:
        self.input, self.target = to_detach(last_input), to_detach(last_target)


class Recorder(LearnerCallback):
    """Record learning rates, momentums, losses and metrics, print the epoch table and plot them.

    Batch losses stay on the device while an epoch runs and are read in one go at its end (or when you read
    `losses`), so recording never forces a host sync per batch.
    """
    _order = -10

    def __init__(self, learn: Learner, add_time: bool = True, silent: bool | None = None):
        super().__init__(learn)
        self.opt = self.learn.opt
        self.train_dl = self.learn.data.train_dl
        self.add_time, self.silent = add_time, ifnone(silent, learn.silent)
        self._losses: list[float] = []
        self._pending: list[Tensor] = []
        self._added_names: list[str] = []
        self.lrs, self.moms, self.val_losses, self.metrics, self.nb_batches = [], [], [], [], []

    def on_train_begin(self, pbar: Any, metrics_names: Sequence[str], **kwargs: Any) -> None:
        self.pbar = pbar
        self.names = ['epoch', 'train_loss', 'valid_loss'] + list(metrics_names) + self._added_names
        if self.add_time:
            self.names.append('time')
        if not self.silent:
            self.pbar.write(self.names, table=True)
        self._losses, self._pending = [], []
        self.lrs, self.moms, self.val_losses, self.metrics, self.nb_batches = [], [], [], [], []
        self._comment_t = 0.
        self._live_comment = not isinstance(pbar, PlainMasterBar)
        self._warned_non_finite = False

    def on_epoch_begin(self, **kwargs: Any) -> None:
        if self.add_time:
            self.start_epoch = time.time()

    def on_batch_begin(self, train: bool, **kwargs: Any) -> None:
        if train:
            self.opt = self.learn.opt
            self.lrs.append(self.opt.lr)
            self.moms.append(self.opt.mom)

    def on_backward_begin(self, smooth_loss: Tensor, **kwargs: Any) -> None:
        self._pending.append(smooth_loss)
        if self._live_comment and time.monotonic() - self._comment_t > 0.5:
            # A terminal or notebook bar shows the loss, read at most twice a second.
            self._comment_t = time.monotonic()
            child = getattr(self.pbar, 'child', None)
            if child is not None:
                child.comment = f'{float(smooth_loss):.4f}'

    def on_epoch_end(self, epoch: int, num_batch: int, smooth_loss: Tensor, last_metrics: list,
                     stop_training: bool = False, **kwargs: Any) -> None:
        self._flush()
        if not stop_training:   # a callback that stopped the run (TerminateOnNaN) has said why
            self._warn_non_finite(smooth_loss)
        self.nb_batches.append(num_batch)
        if last_metrics is not None and last_metrics[0] is not None:
            self.val_losses.append(last_metrics[0])
        else:  # validation skipped: '#na#' in the valid_loss and metric columns
            last_metrics = [None] * (len(self.names) - 2 - int(self.add_time))
        if len(last_metrics) > 1:
            self.metrics.append(last_metrics[1:])
        self.format_stats([epoch, None if smooth_loss is None else float(smooth_loss)] + list(last_metrics))

    def on_train_end(self, **kwargs: Any) -> None:
        self._flush()

    _checkpoint_attrs = ('_losses', 'lrs', 'moms', 'val_losses', 'metrics', 'nb_batches', '_warned_non_finite')

    def checkpoint_state(self) -> dict:
        self._flush()
        return super().checkpoint_state()

    def _warn_non_finite(self, smooth_loss: Tensor | None) -> None:
        "Say once per fit when the training loss became NaN or infinite (checked per epoch: no sync per batch)."
        if self._warned_non_finite or smooth_loss is None or math.isfinite(float(smooth_loss)):
            return
        self._warned_non_finite = True
        first = next((i for i, v in enumerate(self._losses) if not math.isfinite(v)), None)
        warnings.warn(f"The training loss became {float(smooth_loss)} (first at iteration {first} of this fit): the "
                      f"weights are not usable from there. Lower the learning rate (learn.lr_find() suggests one), "
                      f"look for NaN or inf in the data, or add the TerminateOnNaN() callback to stop at once.")

    def _flush(self) -> None:
        "Move the losses recorded on the device to the host, in one transfer."
        if self._pending:
            self._losses.extend(torch.stack(self._pending).float().cpu().tolist())
            self._pending = []

    @property
    def losses(self) -> list[float]:
        "The smoothed training loss of every batch so far."
        self._flush()
        return self._losses

    def format_stats(self, stats: Sequence) -> None:
        "Print one row of the epoch table."
        str_stats = [_format_stat(stat) for stat in stats]
        if self.add_time:
            str_stats.append(format_time(time.time() - self.start_epoch))
        if not self.silent:
            self.pbar.write(str_stats, table=True)

    def add_metric_names(self, names: Sequence[str]) -> None:
        "Add columns `names` to the epoch table (for callbacks that append metrics; call it before the Recorder's on_train_begin)."
        self._added_names += [n for n in names if n not in self._added_names]

    # Plots
    def plot_lr(self, show_moms: bool = False, skip_start: int = 0, skip_end: int = 0,
                return_fig: bool | None = None) -> Any:
        "Plot the learning rate (and momentum when `show_moms`) of each iteration."
        if rank_distrib() != 0:
            return None  # in distributed training, rank 0 draws
        import matplotlib.pyplot as plt
        lrs = _split_list(self.lrs, skip_start, skip_end)
        iterations = _split_list(range_of_list(self.lrs), skip_start, skip_end)
        lrs = [lr[-1] if is_listy(lr) or isinstance(lr, np.ndarray) else lr for lr in lrs]
        if show_moms:
            moms = _split_list(self.moms, skip_start, skip_end)
            moms = [m[-1] if is_listy(m) or isinstance(m, np.ndarray) else m for m in moms]
            fig, axs = plt.subplots(1, 2, figsize=(12, 4))
            axs[0].plot(iterations, lrs)
            axs[0].set_xlabel('Iterations')
            axs[0].set_ylabel('Learning Rate')
            axs[1].plot(iterations, moms)
            axs[1].set_xlabel('Iterations')
            axs[1].set_ylabel('Momentum')
        else:
            fig, ax = plt.subplots()
            ax.plot(iterations, lrs)
            ax.set_xlabel('Iterations')
            ax.set_ylabel('Learning Rate')
        return _maybe_return(fig, return_fig)

    def plot(self, skip_start: int = 10, skip_end: int = 5, suggestion: bool = False,
             return_fig: bool | None = None, show_grid: bool = False, **kwargs: Any) -> Any:
        "Plot loss against learning rate (after `lr_find`); with `suggestion`, mark the suggested rates."
        if rank_distrib() != 0:
            return None  # in distributed training, rank 0 draws
        import matplotlib.pyplot as plt
        lrs = [lr[-1] if is_listy(lr) or isinstance(lr, np.ndarray) else lr for lr in self.lrs]
        losses = self.losses[:len(lrs)]
        if len(lrs) - skip_start - skip_end < 2:
            skip_start, skip_end = 0, 0
        lrs, losses = _split_list(lrs, skip_start, skip_end), _split_list(losses, skip_start, skip_end)
        fig, ax = plt.subplots(1, 1)
        ax.plot(lrs, losses)
        ax.set_ylabel('Loss')
        ax.set_xlabel('Learning Rate')
        ax.set_xscale('log')
        if show_grid:
            ax.grid(True, 'both', 'x')
        if suggestion:
            from .callbacks.lr_finder import suggest_lrs
            sugg = suggest_lrs(self.lrs, self.losses)
            self.suggestions = sugg
            self.min_grad_lr = sugg.steep
            markers = {'valley': ('o', 'tab:red'), 'steep': ('^', 'tab:green'), 'minimum': ('s', 'tab:purple')}
            for name, lr in sugg._asdict().items():
                if lr is None:
                    continue
                loss_at = np.interp(np.log(lr), np.log(lrs), losses) if len(lrs) > 1 else losses[0]
                marker, color = markers[name]
                ax.plot(lr, loss_at, marker=marker, markersize=10, color=color, linestyle='none',
                        label=f'{name}: {lr:.2e}')
            ax.legend()
        return _maybe_return(fig, return_fig)

    def plot_losses(self, skip_start: int = 0, skip_end: int = 0, return_fig: bool | None = None,
                    show_grid: bool = False) -> Any:
        "Plot the training loss of each iteration and the validation loss at each epoch end."
        if rank_distrib() != 0:
            return None  # in distributed training, rank 0 draws
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 1)
        losses = _split_list(self.losses, skip_start, skip_end)
        iterations = _split_list(range_of_list(self.losses), skip_start, skip_end)
        ax.plot(iterations, losses, label='Train')
        if self.val_losses:
            val_iter = np.cumsum(self.nb_batches)[:len(self.val_losses)]
            start_val = (val_iter - skip_start >= 0).argmax() if len(val_iter) else 0
            end_val = (val_iter[-1] - val_iter - skip_end >= 0).argmin() if skip_end else len(val_iter)
            ax.plot(val_iter[start_val:end_val or None], self.val_losses[start_val:end_val or None],
                    label='Validation')
        ax.set_ylabel('Loss')
        ax.set_xlabel('Batches processed')
        ax.legend()
        if show_grid:
            ax.grid(True)
        return _maybe_return(fig, return_fig)

    def plot_metrics(self, skip_start: int = 0, skip_end: int = 0, return_fig: bool | None = None,
                     show_grid: bool = False) -> Any:
        "Plot each metric at each epoch end."
        if rank_distrib() != 0:
            return None  # in distributed training, rank 0 draws
        import matplotlib.pyplot as plt
        if not self.metrics:
            raise ValueError("There are no metrics to plot: pass metrics=[...] to the Learner and train.")
        n = len(self.metrics[0])
        fig, axes = plt.subplots(n, 1, figsize=(6, 4 * n), squeeze=False)
        val_iter = np.cumsum(self.nb_batches)[:len(self.metrics)]
        names = self.names[3:3 + n]
        for i, ax in enumerate(axes.flatten()):
            values = [met[i] for met in self.metrics]
            ax.plot(val_iter, values)
            ax.set_ylabel(str(names[i]) if i < len(names) else f'metric {i}')
            ax.set_xlabel('Batches processed')
            if show_grid:
                ax.grid(True)
        return _maybe_return(fig, return_fig)

    def smoothen_by_spline(self, xs: Sequence[float], ys: Sequence[float], **kwargs: Any) -> np.ndarray:
        "`ys` smoothed along `xs` with a univariate spline (needs scipy)."
        from scipy.interpolate import UnivariateSpline
        spl = UnivariateSpline(xs, ys, **kwargs)
        return spl(xs)


# --- Small helpers ----------------------------------------------------------------------------------------

def range_of_list(x: Sequence) -> list[int]:
    return list(range(len(x)))


def _split_list(x: Sequence, skip_start: int, skip_end: int) -> list:
    x = list(x)
    return x[skip_start:len(x) - skip_end] if skip_end > 0 else x[skip_start:]


def _maybe_return(fig: Any, return_fig: bool | None) -> Any:
    "Return the figure when asked (or `defaults.return_fig`); otherwise leave it to the notebook to show."
    return fig if ifnone(return_fig, defaults.return_fig) else None


def _format_stat(stat: Any) -> str:
    "One cell of the epoch table: '#na#' for a missing value, ints as they are, floats to 6 decimals."
    if stat is None:
        return '#na#'
    if isinstance(stat, int):
        return str(stat)
    if isinstance(stat, (list, tuple, np.ndarray)):  # per-class metrics (e.g. Precision(average=None))
        return '[' + ', '.join(_format_stat(s) for s in stat) + ']'
    return f'{float(stat):.6f}'


def format_time(t: float) -> str:
    "Seconds `t` as 'mm:ss', or 'h:mm:ss' past an hour."
    t = int(t)
    h, m, s = t // 3600, (t // 60) % 60, t % 60
    return f'{h}:{m:02d}:{s:02d}' if h else f'{m:02d}:{s:02d}'


def _batch_len(yb: Any) -> int:
    "The number of items in the target batch `yb` (read from its shape: no host sync)."
    y = yb[0] if is_listy(yb) else yb
    return y.shape[0] if hasattr(y, 'shape') and len(y.shape) else 1


class _Gathered:
    """Batches (tensors, or lists/tuples of them) gathered along the batch axis into buffers made for `n` items at
    the first batch; batches that do not fit (a different shape after the batch axis, as padded texts give, or
    more items than `n`) make it fall back to concatenating them at the end."""

    def __init__(self, n: int):
        self.n, self.pos, self.bufs, self.spec, self.pieces = n, 0, None, None, None

    def add(self, b: Any) -> None:
        leaves, spec = _flatten_batch(b)
        if self.pieces is not None:
            self.pieces.append(b)
            return
        k = leaves[0].shape[0] if leaves and leaves[0].dim() else None
        if self.bufs is None and k is not None:
            self.spec = spec
            self.bufs = [t.new_empty((max(self.n, k), *t.shape[1:])) for t in leaves]
        fits = (self.bufs is not None and spec == self.spec and k is not None and self.pos + k <= len(self.bufs[0])
                and all(t.dim() and t.shape[0] == k and t.shape[1:] == buf.shape[1:] and t.dtype == buf.dtype
                        for t, buf in zip(leaves, self.bufs)))
        if not fits:
            self.pieces = ([] if self.bufs is None or not self.pos else [self._so_far()]) + [b]
            self.bufs = None
            return
        for t, buf in zip(leaves, self.bufs):
            buf[self.pos:self.pos + k] = t
        self.pos += k

    def _so_far(self) -> Any:
        res = [buf[:self.pos] if self.pos == len(buf) else buf[:self.pos].clone() for buf in self.bufs]
        return _unflatten_batch(res, self.spec)

    def result(self) -> Any:
        return _cat(self.pieces) if self.pieces is not None else self._so_far()


def _flatten_batch(b: Any) -> tuple[list[Tensor], Any]:
    "The tensors of `b` (a tensor or nested lists/tuples of them) and the structure to rebuild it."
    if isinstance(b, Tensor):
        return [b], None
    if isinstance(b, (list, tuple)):
        leaves, specs = [], []
        for o in b:
            ls, sp = _flatten_batch(o)
            leaves += ls
            specs.append((len(ls), sp))
        return leaves, (type(b), tuple(specs))
    return [], ('other', repr(type(b)))


def _unflatten_batch(leaves: list[Tensor], spec: Any) -> Any:
    if spec is None:
        return leaves[0]
    _, specs = spec
    res, i = [], 0
    for n, sp in specs:
        res.append(_unflatten_batch(leaves[i:i + n], sp))
        i += n
    return res   # a list, whatever the batch held, as concatenating gives it


def _cat(batches: list) -> Any:
    "Concatenate a list of batch outputs (tensors, or lists of tensors) along the batch axis."
    if is_listy(batches[0]):
        return [_cat([b[i] for b in batches]) for i in range(len(batches[0]))]
    return torch.cat(batches)


@contextlib.contextmanager
def _per_item_loss(loss_func: Callable) -> Any:
    "`loss_func` made to return one loss per item (reduction='none'), restored afterwards."
    old = getattr(loss_func, 'reduction', None)
    if old is not None:
        loss_func.reduction = 'none'
        try:
            yield loss_func
        finally:
            loss_func.reduction = old
    else:
        yield functools.partial(loss_func, reduction='none')


def _loss_func_name(loss_func: Callable) -> str:
    "The name of the underlying loss (through FlattenedLoss and partial wrappers), lower case."
    f = loss_func
    for _ in range(3):
        inner = getattr(f, 'func', None)
        if inner is None or inner is f:
            break
        f = inner
    return (getattr(f, '__name__', None) or type(f).__name__).lower()


def _is_classification_loss(loss_func: Callable) -> bool:
    name = _loss_func_name(loss_func)
    return any(k in name for k in ('cross_entropy', 'crossentropy', 'nll', 'bce', 'mixup'))


def _loss_func2activ(loss_func: Callable) -> Callable:
    "The activation that turns the model's output into predictions for `loss_func` (softmax for cross-entropy)."
    name = _loss_func_name(loss_func)
    axis = getattr(loss_func, 'axis', -1)
    if 'cross_entropy' in name or 'crossentropy' in name:
        return functools.partial(F.softmax, dim=axis)
    if 'bce_with_logits' in name or 'bcewithlogits' in name:
        return torch.sigmoid
    if 'nll' in name:
        return torch.exp
    return noop
