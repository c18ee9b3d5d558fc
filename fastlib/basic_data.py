"""DeviceDataLoader, DataBunch and DatasetType: the data side of a Learner."""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from .core import PathOrStr, ifnone, is_listy, listify
from .layers import CrossEntropyFlat, MSELossFlat
from .serialization import atomic_save, safe_load
from .torch_core import data_collate, defaults, distrib_barrier, rank_distrib, to_detach, to_device

__all__ = ['DatasetType', 'DeviceDataLoader', 'CollateThenTfms', 'DataBunch', 'load_data', 'EmptyDataset']


class DatasetType(IntEnum):
    "Which dataset of a DataBunch: Train, Valid, Test, Single (one item for predict) or Fix (train, unshuffled)."
    Train = 1
    Valid = 2
    Test = 3
    Single = 4
    Fix = 5


class CollateThenTfms:
    """A collate function that also applies the batch transforms `tfms`: in a DataLoader's worker processes when it
    has workers, so that on a CPU device they share that work. `DeviceDataLoader` skips these transforms after."""

    def __init__(self, collate_fn: Callable, tfms: Collection[Callable]):
        self.collate_fn, self.tfms = collate_fn, tuple(tfms)   # fixed: what the workers were given

    def __call__(self, samples: Any) -> Any:
        b = self.collate_fn(samples)
        for f in self.tfms:
            b = f(b)
        return b


class DeviceDataLoader:
    """A DataLoader whose batches arrive on `device` with the batch transforms `tfms` applied.

    On a CUDA device the loader pins host memory and copies with `non_blocking=True`, so the copy of batch
    n+1 overlaps the computation on batch n.
    """

    def __init__(self, dl: DataLoader, device: torch.device | str, tfms: Collection[Callable] | None = None,
                 collate_fn: Callable = data_collate):
        self.dl, self.device, self.tfms = dl, torch.device(device), listify(tfms)
        self.collate_fn = collate_fn
        self.dl.collate_fn = collate_fn
        self.non_blocking = self.device.type == 'cuda' and getattr(dl, 'pin_memory', False)

    def __len__(self) -> int:
        return len(self.dl)

    @property
    def dataset(self) -> Dataset:
        return self.dl.dataset

    @property
    def batch_size(self) -> int:
        return self.dl.batch_size

    @batch_size.setter
    def batch_size(self, v: int) -> None:
        self.dl = self._new_dl(batch_size=v)

    @property
    def num_workers(self) -> int:
        return self.dl.num_workers

    @num_workers.setter
    def num_workers(self, v: int) -> None:
        self.dl.num_workers = v

    def add_tfm(self, tfm: Callable) -> None:
        "Add the batch transform `tfm`."
        self.tfms.append(tfm)

    def remove_tfm(self, tfm: Callable) -> None:
        "Remove the batch transform `tfm`."
        if tfm in self.tfms:
            self.tfms.remove(tfm)

    def run_tfms_in_collate(self) -> None:
        """From now on, apply the current batch transforms in the collate function, that is in the worker processes
        (worth it on a CPU device, where the workers are the cores that would run them). The loader is rebuilt, so
        running workers (persistent ones too) start again with these transforms; transforms added later run here."""
        self.dl = self._new_dl(collate_fn=CollateThenTfms(self.collate_fn, self.tfms))

    def _new_dl(self, **kwargs: Any) -> DataLoader:
        "A DataLoader like ours with some arguments changed (`shuffle`, `batch_size`, `drop_last`, ...)."
        dl = self.dl
        if callable(getattr(dl, 'new', None)):   # a loader that knows how to copy itself (e.g. TabularDataLoader)
            return dl.new(**kwargs)
        sampler = dl.sampler
        shuffle = isinstance(sampler, RandomSampler)
        args = dict(dataset=dl.dataset, batch_size=dl.batch_size, num_workers=dl.num_workers,
                    collate_fn=dl.collate_fn, pin_memory=dl.pin_memory, drop_last=dl.drop_last, timeout=dl.timeout,
                    worker_init_fn=dl.worker_init_fn, persistent_workers=dl.persistent_workers)
        if isinstance(sampler, (RandomSampler, SequentialSampler)) or 'shuffle' in kwargs:
            args['shuffle'] = kwargs.pop('shuffle', shuffle)
        else:
            args['sampler'] = sampler
        args.update(kwargs)
        if args['num_workers'] == 0:
            args['persistent_workers'] = False
        return DataLoader(**args)

    def new(self, **kwargs: Any) -> DeviceDataLoader:
        "A copy of this loader with some DataLoader arguments changed."
        return DeviceDataLoader(self._new_dl(**kwargs), self.device, list(self.tfms), self.collate_fn)

    def proc_batch(self, b: Any) -> Any:
        "Move the batch `b` to the device and apply the batch transforms."
        if isinstance(b, (tuple, list)) and all(isinstance(t, Tensor) for t in b):  # the usual (xb, yb)
            b = [t.to(self.device, non_blocking=self.non_blocking) for t in b]
        else:
            b = to_device(b, self.device, non_blocking=self.non_blocking)
        done = self.dl.collate_fn.tfms if isinstance(self.dl.collate_fn, CollateThenTfms) else ()
        for f in self.tfms:
            if not any(f is d for d in done):
                b = f(b)
        return b

    def __iter__(self) -> Iterator[Any]:
        if getattr(self.dl, 'drop_last', False) and len(self.dl) == 0 and len(self.dl.dataset) > 0:
            # else a fit on this loader silently does nothing
            raise ValueError(f"This loader gives no batch: its {len(self.dl.dataset)} items are fewer than the batch "
                             f"size {self.batch_size} and drop_last=True drops the incomplete batch. Lower the batch "
                             f"size (e.g. dl.new(batch_size={len(self.dl.dataset)})) or pass drop_last=False.")
        for b in self.dl:
            yield self.proc_batch(b)

    @classmethod
    def create(cls, dataset: Dataset, bs: int = 64, shuffle: bool = False, device: torch.device | None = None,
               tfms: Collection[Callable] | None = None, num_workers: int | None = None,
               collate_fn: Callable = data_collate, **kwargs: Any) -> DeviceDataLoader:
        "A DeviceDataLoader over `dataset` with batch size `bs`."
        device = ifnone(device, defaults.device)
        num_workers = ifnone(num_workers, defaults.cpus)
        dl = DataLoader(dataset, batch_size=bs, shuffle=shuffle, num_workers=num_workers,
                        **_loader_kwargs(device, num_workers, kwargs))
        return cls(dl, device=device, tfms=tfms, collate_fn=collate_fn)


def _loader_kwargs(device: torch.device, num_workers: int, kwargs: dict) -> dict:
    "DataLoader defaults fastlib picks: pinned memory for CUDA, workers kept alive between epochs."
    res = dict(kwargs)
    res.setdefault('pin_memory', torch.device(device).type == 'cuda')
    if num_workers > 0:
        res.setdefault('persistent_workers', True)  # no process start-up cost at every epoch
    return res


class EmptyDataset(Dataset):
    "A dataset with no items that still knows the classes (the data side of a learner loaded for inference)."

    def __init__(self, c: int | None = None, classes: Sequence | None = None, loss_func: Callable | None = None):
        self.c, self.classes, self.loss_func = c, classes, loss_func

    def __len__(self) -> int:
        return 0

    def __getitem__(self, i: int) -> Any:
        raise IndexError('EmptyDataset has no items')


class DataBunch:
    "The training, validation and optional test data loaders of a learner, on one device."

    def __init__(self, train_dl: DataLoader, valid_dl: DataLoader, fix_dl: DataLoader | None = None,
                 test_dl: DataLoader | None = None, device: torch.device | None = None,
                 dl_tfms: Collection[Callable] | None = None, path: PathOrStr = '.',
                 collate_fn: Callable = data_collate, no_check: bool = False):
        self.dl_tfms = listify(dl_tfms)
        self.device = torch.device(ifnone(device, defaults.device))
        if isinstance(train_dl, DeviceDataLoader) or isinstance(valid_dl, DeviceDataLoader):
            raise TypeError("DataBunch takes plain torch DataLoaders; it wraps them in DeviceDataLoaders itself.")

        def _wrap(dl):
            return None if dl is None else DeviceDataLoader(dl, self.device, self.dl_tfms, collate_fn)

        self.train_dl, self.valid_dl, self.test_dl = _wrap(train_dl), _wrap(valid_dl), _wrap(test_dl)
        self.fix_dl = _wrap(fix_dl) if fix_dl is not None else self.train_dl.new(shuffle=False, drop_last=False)
        self.single_dl = _wrap(DataLoader(valid_dl.dataset, batch_size=1, num_workers=0))
        self.path = Path(path)
        self.collate_fn = collate_fn
        if not no_check:
            self.sanity_check()

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__};\n\nTrain: {self.train_ds};\n\nValid: {self.valid_ds};\n\n'
                f'Test: {self.test_ds}')

    @classmethod
    def create(cls, train_ds: Dataset, valid_ds: Dataset, test_ds: Dataset | None = None, path: PathOrStr = '.',
               bs: int = 64, val_bs: int | None = None, num_workers: int | None = None,
               dl_tfms: Collection[Callable] | None = None, device: torch.device | None = None,
               collate_fn: Callable = data_collate, no_check: bool = False, **dl_kwargs: Any) -> DataBunch:
        """A DataBunch from datasets: `bs` per training batch, `val_bs` (default `bs`) for validation and test.

        The training loader shuffles and drops its last incomplete batch, except when the training set holds
        fewer than `bs` items: then its one short batch is kept rather than training on nothing.
        """
        _check_not_empty(train_ds, 'training')
        if valid_ds is None:
            raise ValueError("No validation set: pass valid_ds (it may be empty, e.g. from `split_none()`).")
        val_bs = ifnone(val_bs, bs)
        num_workers = ifnone(num_workers, defaults.cpus)
        device = torch.device(ifnone(device, defaults.device))
        kwargs = _loader_kwargs(device, num_workers, dl_kwargs)
        drop_last = len(train_ds) > bs
        train_dl = DataLoader(train_ds, bs, shuffle=True, drop_last=drop_last, num_workers=num_workers, **kwargs)
        valid_dl = DataLoader(valid_ds, val_bs, shuffle=False, num_workers=num_workers, **kwargs)
        test_dl = None
        if test_ds is not None:
            test_dl = DataLoader(test_ds, val_bs, shuffle=False, num_workers=num_workers, **kwargs)
        return cls(train_dl, valid_dl, test_dl=test_dl, device=device, dl_tfms=dl_tfms, path=path,
                   collate_fn=collate_fn, no_check=no_check)

    def dl(self, ds_type: DatasetType = DatasetType.Valid) -> DeviceDataLoader:
        "The DeviceDataLoader for `ds_type`."
        loaders = {DatasetType.Train: self.train_dl, DatasetType.Valid: self.valid_dl, DatasetType.Test: self.test_dl,
                   DatasetType.Single: self.single_dl, DatasetType.Fix: self.fix_dl}
        res = loaders[DatasetType(ds_type)]
        if res is None:
            raise ValueError(f"This DataBunch has no {DatasetType(ds_type).name} set. "
                             + ("Add one with `add_test`." if ds_type == DatasetType.Test else ''))
        return res

    @property
    def dls(self) -> list[DeviceDataLoader]:
        "The train, valid, (fix,) (single,) and test loaders that exist."
        res = [self.train_dl, self.fix_dl, self.single_dl]
        if self.valid_dl is not None:
            res.insert(1, self.valid_dl)
        return res if not self.test_dl else res + [self.test_dl]

    def add_tfm(self, tfm: Callable) -> None:
        "Add the batch transform `tfm` to every loader."
        for dl in self.dls:
            dl.add_tfm(tfm)
        if tfm not in self.dl_tfms:
            self.dl_tfms.append(tfm)

    def remove_tfm(self, tfm: Callable) -> None:
        "Remove the batch transform `tfm` from every loader."
        for dl in self.dls:
            dl.remove_tfm(tfm)
        if tfm in self.dl_tfms:
            self.dl_tfms.remove(tfm)

    def add_test(self, items: Any, label: Any = None, tfms: Any = None, tfm_y: Any = None) -> None:
        "Add `items` as the test set: a Dataset, or raw items processed like the validation set's (`label`: theirs)."
        if not isinstance(items, Dataset) or hasattr(items, 'empty_copy'):
            if not hasattr(self.valid_ds, 'test_set'):
                raise TypeError(f"add_test takes a Dataset for a {type(self).__name__} built from datasets, "
                                f"not {type(items).__name__}.")
            items = self.valid_ds.test_set(items, label=label, tfms=tfms, tfm_y=tfm_y)
        self.test_dl = DeviceDataLoader(self.valid_dl._new_dl(dataset=items, shuffle=False), self.device,
                                        self.dl_tfms, self.collate_fn)

    def one_batch(self, ds_type: DatasetType = DatasetType.Train, detach: bool = True, denorm: bool = True,
                  cpu: bool = True) -> tuple[Any, Any]:
        "One batch from the `ds_type` loader, read in this process (no worker start-up)."
        dl = self.dl(ds_type)
        w = dl.num_workers
        dl.num_workers = 0
        try:
            x, y = next(iter(dl))
        finally:
            dl.num_workers = w
        if detach:
            x, y = to_detach(x, cpu=cpu), to_detach(y, cpu=cpu)
        norm = getattr(self, 'norm', None)
        if denorm and norm is not None and hasattr(self, 'denorm'):
            x = self.denorm(x)
        return x, y

    def one_item(self, item: Any, detach: bool = False, denorm: bool = False, cpu: bool = False) -> tuple[Any, Any]:
        "`item` made into a batch of one, on the device, as the model expects it for prediction."
        ds = self.single_ds
        if hasattr(ds, 'set_item'):
            with ds.set_item(item):
                return self.one_batch(ds_type=DatasetType.Single, detach=detach, denorm=denorm, cpu=cpu)
        # A plain dataset: `item` is the model's input for one sample.
        if not isinstance(item, Tensor):
            try:
                item = torch.as_tensor(item)
            except (TypeError, ValueError, RuntimeError) as e:
                raise TypeError(f"This DataBunch holds plain datasets, so predict takes the model's input for one "
                                f"sample (a tensor or array, without the batch axis), not a {type(item).__name__}. "
                                f"Build the data with the data block API (or a domain DataBunch) to predict from raw "
                                f"items.") from e
        xb = self.collate_fn([item])
        yb = torch.zeros(1, dtype=torch.long)
        x, y = self.single_dl.proc_batch((xb, yb))
        return (to_detach(x, cpu), to_detach(y, cpu)) if detach else (x, y)

    def show_batch(self, rows: int = 5, ds_type: DatasetType = DatasetType.Train, reverse: bool = False,
                   **kwargs: Any) -> Any:
        "Show `rows` items of a batch of `ds_type`, with the item types' own display when they have one."
        x, y = self.one_batch(ds_type, True, True)
        if reverse:
            x, y = x.flip(0), y.flip(0)
        n_items = min(rows ** 2 if _is_image_batch(x) else rows, len(y))
        ds = self.dl(ds_type).dataset
        if hasattr(ds, 'x') and hasattr(ds.x, 'show_xys'):
            xs = [ds.x.reconstruct(_grab(x, i)) for i in range(n_items)]
            ys = [ds.y.reconstruct(_grab(y, i)) for i in range(n_items)]
            return ds.x.show_xys(xs, ys, **kwargs)
        return _show_plain_batch(x, y, n_items, self.classes)

    def export(self, file: PathOrStr = 'export.pkl') -> None:
        "Save what is needed to process new items for prediction to `path/file` (see `Learner.export`; rank 0 writes)."
        if rank_distrib() == 0:
            atomic_save({'fastlib_data_export': 1, 'state': self.export_state()}, self.path / file)
        distrib_barrier()

    def export_state(self) -> dict:
        """What `load_empty` needs to process new items for inference (see `Learner.export`).

        A data block DataBunch keeps an empty copy of its validation set (processors, classes, transforms; no
        items) and `export_extra()`; a DataBunch of plain datasets, whose items are already the model's inputs,
        keeps the number of classes, their names and the loss.
        """
        if hasattr(self.valid_ds, 'empty_copy'):
            return {'kind': 'items', 'bunch_cls': _qualname(type(self)), 'ds': self.valid_ds.empty_copy(),
                    'extra': self.export_extra()}
        return {'kind': 'plain', 'c': self.c, 'classes': self.classes, 'loss_func': self.loss_func}

    def export_extra(self) -> dict:
        "What prediction needs beyond the dataset's processors (subclasses: e.g. normalization statistics)."
        return {}

    @classmethod
    def load_empty(cls, path: PathOrStr, state: dict, **kwargs: Any) -> DataBunch:
        "A DataBunch with no items that processes new ones as the exported one did (from `export_state`)."
        if state.get('kind') == 'items':
            return _databunch_class(state['bunch_cls']).from_empty(path, state['ds'], state.get('extra', {}),
                                                                   **kwargs)
        ds = EmptyDataset(state['c'], state['classes'], state['loss_func'])
        return cls._from_empty_ds(path, ds, **kwargs)

    @classmethod
    def from_empty(cls, path: PathOrStr, ds: Dataset, extra: dict, **kwargs: Any) -> DataBunch:
        """A DataBunch around the empty dataset `ds` (from `export_state`), ready for `predict` and `add_test`.

        Subclasses restore what they put in `export_extra` (normalization, say) by overriding this.
        """
        for lst in (getattr(ds, 'x', None), getattr(ds, 'y', None)):
            if lst is not None and hasattr(lst, 'path'):
                lst.path = Path(path)
        return cls._from_empty_ds(path, ds, **kwargs)

    @classmethod
    def _from_empty_ds(cls, path: PathOrStr, ds: Dataset, **kwargs: Any) -> DataBunch:
        bs = kwargs.pop('bs', 64)
        num_workers = kwargs.pop('num_workers', 0)
        collate_fn = kwargs.pop('collate_fn', data_collate)
        loaders = [DataLoader(ds, bs, shuffle=False, num_workers=num_workers) for _ in range(2)]
        return cls(*loaders, path=path, no_check=True, collate_fn=collate_fn, **kwargs)

    def save(self, file: PathOrStr = 'data_save.pkl') -> None:
        "Save the datasets to `path/file` (atomically; rank 0 writes); `load_data` rebuilds the DataBunch."
        if rank_distrib() == 0:
            state = {'fastlib_data': 1, 'cls': _qualname(type(self)), 'train_ds': self.train_ds,
                     'valid_ds': self.valid_ds, 'test_ds': self.test_ds}
            atomic_save(state, self.path / file)
        distrib_barrier()

    @property
    def train_ds(self) -> Dataset:
        return self.train_dl.dl.dataset

    @property
    def valid_ds(self) -> Dataset:
        return self.valid_dl.dl.dataset

    @property
    def fix_ds(self) -> Dataset:
        return self.fix_dl.dl.dataset

    @property
    def single_ds(self) -> Dataset:
        return self.single_dl.dl.dataset

    @property
    def test_ds(self) -> Dataset | None:
        return self.test_dl.dl.dataset if self.test_dl is not None else None

    @property
    def empty_val(self) -> bool:
        "True when there is no validation data."
        return self.valid_dl is None or len(self.valid_ds) == 0

    @property
    def is_empty(self) -> bool:
        "True when there is no training data."
        return len(self.train_ds) == 0

    @property
    def batch_size(self) -> int:
        return self.train_dl.batch_size

    @batch_size.setter
    def batch_size(self, v: int) -> None:
        self.train_dl.batch_size, self.valid_dl.batch_size = v, v
        if self.test_dl is not None:
            self.test_dl.batch_size = v

    @property
    def classes(self) -> list | None:
        "The class names of the targets, when the datasets know them."
        for ds in (self.train_ds, self.valid_ds):
            for obj in (ds, getattr(ds, 'y', None)):
                if getattr(obj, 'classes', None) is not None:
                    return list(obj.classes)
        return None

    @property
    def c(self) -> int | None:
        "The number of model outputs the targets need (number of classes, or of regression targets)."
        for obj in (self.train_ds, getattr(self.train_ds, 'y', None)):
            if getattr(obj, 'c', None) is not None:
                return obj.c
        classes = self.classes
        return len(classes) if classes is not None else None

    @property
    def loss_func(self) -> Callable:
        "The loss the targets call for: the datasets' own, else cross-entropy for integer targets, else MSE."
        for obj in (self.train_ds, getattr(self.train_ds, 'y', None)):
            if getattr(obj, 'loss_func', None) is not None:
                return obj.loss_func
        if len(self.train_ds) == 0:
            return CrossEntropyFlat()
        y = _target_of(self.train_ds[0])
        is_int = isinstance(y, int) or (isinstance(y, Tensor) and not torch.is_floating_point(y))
        return CrossEntropyFlat() if is_int else MSELossFlat()

    def sanity_check(self) -> None:
        "Check that a batch of training and of validation data can be built, and that both sets agree."
        bs = self.train_dl.batch_size
        train_b = _try_collate(self.train_ds, bs, self.collate_fn, 'training')
        if len(self.valid_ds) == 0:
            warnings.warn("The validation set is empty: training will report no validation loss or metrics.")
            return
        valid_b = _try_collate(self.valid_ds, self.valid_dl.batch_size, self.collate_fn, 'validation')
        # A collate function of the user's may pad each batch to its own length: then sizes legitimately differ.
        _check_same_structure(train_b, valid_b, same_sizes=self.collate_fn is data_collate)
        train_classes = _classes_of(self.train_ds)
        valid_classes = _classes_of(self.valid_ds)
        if train_classes is not None and valid_classes is not None and list(train_classes) != list(valid_classes):
            raise ValueError(f"The training and validation sets have different classes: {list(train_classes)[:10]} "
                             f"vs {list(valid_classes)[:10]}. Build the validation labels from the training "
                             f"classes (e.g. pass `classes=` when labelling) so that label i means the same in both.")


def load_data(path: PathOrStr, file: PathOrStr = 'data_save.pkl', bs: int = 64, val_bs: int | None = None,
              num_workers: int | None = None, dl_tfms: Collection[Callable] | None = None,
              device: torch.device | None = None, collate_fn: Callable = data_collate, no_check: bool = False,
              trusted: bool = False, **kwargs: Any) -> DataBunch:
    "Load a DataBunch saved with `DataBunch.save` from `path/file` (no code runs from the file unless `trusted`)."
    state = safe_load(Path(path) / file, trusted=trusted, what='saved DataBunch')
    if not isinstance(state, dict) or 'train_ds' not in state:
        raise ValueError(f"{Path(path) / file} was not written by DataBunch.save.")
    return _databunch_class(state['cls']).create(state['train_ds'], state['valid_ds'], state['test_ds'], path=path, bs=bs, val_bs=val_bs,
                            num_workers=num_workers, dl_tfms=dl_tfms, device=device, collate_fn=collate_fn,
                            no_check=no_check, **kwargs)


def _qualname(cls: type) -> str:
    return f'{cls.__module__}.{cls.__qualname__}'


def _databunch_class(name: str) -> type:
    "The DataBunch subclass called `name` (module.qualname): its fastlib module is imported; DataBunch if unknown."
    module = name.rpartition('.')[0]
    if module == 'fastlib' or module.startswith('fastlib.'):
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    stack, seen = [DataBunch], {}
    while stack:
        c = stack.pop()
        seen[_qualname(c)] = c
        seen.setdefault(c.__qualname__, c)  # files written before the class name held its module
        stack.extend(c.__subclasses__())
    return seen.get(name, DataBunch)


def _check_not_empty(ds: Dataset | None, name: str) -> None:
    if ds is None or len(ds) == 0:
        raise ValueError(f"The {name} set is empty (0 items), so there is nothing to train on. Check the folder, "
                         f"file list or DataFrame it was built from, and the split and filters applied to it.")


def _try_collate(ds: Dataset, bs: int, collate_fn: Callable, name: str) -> Any:
    "A batch of the first items of `ds`, or a clear error saying which item broke and why."
    n = min(bs, len(ds))
    items = []
    for i in range(n):
        try:
            items.append(ds[i])
        except Exception as e:
            raise RuntimeError(f"Item {i} of the {name} set cannot be read: {type(e).__name__}: {e}") from e
    try:
        return collate_fn(items)
    except Exception as e:
        shapes = sorted({tuple(getattr(_input_of(o), 'shape', ())) for o in items})[:5]
        raise RuntimeError(f"The first {n} items of the {name} set cannot be put in one batch ({type(e).__name__}: "
                           f"{e}). Input shapes seen: {shapes}. Give every item the same size (a resize "
                           f"transform), or pass a collate_fn that pads.") from e


def _check_same_structure(train_b: Any, valid_b: Any, same_sizes: bool = True) -> None:
    """Raise when a training and a validation batch differ in a way no model could handle (`same_sizes`: also
    when the items of a vector or scalar per item differ in size)."""
    for part, tb, vb in (('input', train_b[0], valid_b[0]), ('target', train_b[1], valid_b[1])):
        tl, vl = listify(tb) if is_listy(tb) else [tb], listify(vb) if is_listy(vb) else [vb]
        if len(tl) != len(vl):
            raise ValueError(f"Training and validation {part}s have different structures: {len(tl)} vs {len(vl)} "
                             f"tensors per batch.")
        for t, v in zip(tl, vl):
            if not (isinstance(t, Tensor) and isinstance(v, Tensor)):
                continue
            if t.dim() != v.dim() or (same_sizes and t.dim() <= 2 and t.shape[1:] != v.shape[1:]):
                raise ValueError(f"Training and validation {part}s do not match: one item is shaped "
                                 f"{tuple(t.shape[1:])} in training and {tuple(v.shape[1:])} in validation.")
            if t.is_floating_point() != v.is_floating_point():
                raise ValueError(f"Training and validation {part}s have different kinds of values ({t.dtype} vs "
                                 f"{v.dtype}): one set holds class indices and the other numbers?")


def _classes_of(ds: Dataset) -> Sequence | None:
    for obj in (ds, getattr(ds, 'y', None)):
        if getattr(obj, 'classes', None) is not None:
            return obj.classes
    return None


def _input_of(sample: Any) -> Any:
    return sample[0] if isinstance(sample, (tuple, list)) else sample


def _target_of(sample: Any) -> Any:
    y = sample[1] if isinstance(sample, (tuple, list)) and len(sample) > 1 else None
    return getattr(y, 'data', y) if not isinstance(y, Tensor) else y


def _grab(b: Any, i: int) -> Any:
    return [o[i] for o in b] if is_listy(b) else b[i]


def _is_image_batch(x: Any) -> bool:
    return isinstance(x, Tensor) and x.dim() == 4 and x.shape[1] in (1, 3)


def _show_plain_batch(x: Any, y: Any, n: int, classes: Sequence | None) -> Any:
    "Show a batch of a plain dataset: an image grid for image-shaped inputs, else a table."
    labels = [classes[int(o)] if classes is not None and not torch.is_floating_point(o) else o.tolist()
              for o in y[:n]] if isinstance(y, Tensor) else [None] * n
    if _is_image_batch(x):
        import matplotlib.pyplot as plt
        cols = max(1, int(n ** 0.5))
        rows = (n + cols - 1) // cols
        fig, axs = plt.subplots(rows, cols, figsize=(2 * cols, 2 * rows), squeeze=False)
        for i, ax in enumerate(axs.flatten()):
            ax.axis('off')
            if i < n:
                img = x[i].permute(1, 2, 0).float()
                img = (img - img.min()) / (img.max() - img.min() + 1e-8)
                ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap='gray' if img.shape[-1] == 1 else None)
                ax.set_title(str(labels[i]))
        return fig
    import pandas as pd
    xs = x[:n].reshape(n, -1).tolist() if isinstance(x, Tensor) else [None] * n
    return pd.DataFrame({'x': xs, 'y': labels})
