"""Tabular data: TabularList (rows of a DataFrame), its processor, and TabularDataBunch.

After processing, a TabularList holds its rows as two arrays built once: `codes` (N, n_cat) int64 category
codes and `conts` (N, n_cont) float32 values. A batch is an index gather on those arrays
(`TabularDataLoader`), not N calls to `__getitem__` and a per-row collate.
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ..basic_data import DataBunch
from ..core import PathOrStr, did_you_mean, ifnone, is_listy, listify
from ..data_block import CategoryList, EmptyLabelList, FloatList, ItemBase, ItemList, PreProcessor
from ..serialization import register_safe_globals
from ..torch_core import data_collate, defaults
from .models import def_emb_sz
from .transform import Categorify, Normalize, TabularProc

__all__ = ['TabularLine', 'TabularProcessor', 'TabularList', 'TabularDataBunch', 'TabularDataLoader']


class TabularLine(ItemBase):
    "One row: category codes `cats` and continuous values `conts`, with the `classes` of each category and the column `names`."

    def __init__(self, cats: Any, conts: Any, classes: dict, names: Sequence[str]):
        self.cats = torch.as_tensor(np.asarray(cats, dtype=np.int64))
        self.conts = torch.as_tensor(np.asarray(conts, dtype=np.float32))
        self.classes, self.names = classes, list(names)
        super().__init__([self.cats, self.conts])

    def values(self) -> dict:
        "Column name -> the row's value (category names for the categorical columns)."
        res = {}
        cat_cols = self.names[:len(self.cats)]
        for name, code in zip(cat_cols, self.cats.tolist()):
            res[name] = self.classes[name][code]
        for name, v in zip(self.names[len(self.cats):], self.conts.tolist()):
            res[name] = v
        return res

    def __str__(self) -> str:
        return ' '.join(f'{name} {round(value, 4) if isinstance(value, float) else value};'
                        for name, value in self.values().items())

    def __repr__(self) -> str:
        return f'{type(self).__name__} {self}'


def _check_columns(df: pd.DataFrame, names: Sequence, kind: str, where: str = "the DataFrame's columns") -> None:
    "Raise a clear error when some `names` (of the `kind` given) are not columns of `df`, naming the closest columns."
    missing = [n for n in names if n not in df.columns]
    if missing:
        hints = ''.join(f"\n  {n!r}:{did_you_mean(n, df.columns) or ' no similar column.'}" for n in missing)
        raise ValueError(f"{kind} {missing} not in {where}.{hints}\nThe columns are: {list(df.columns)}.")


def _numeric_conts(df: pd.DataFrame, cont_names: Sequence[str]) -> None:
    "Make the continuous columns of `df` numeric in place, or say which column holds what instead."
    for name in cont_names:
        col = df[name]
        if pd.api.types.is_bool_dtype(col.dtype):
            df[name] = col.astype(np.float32)
            continue
        if pd.api.types.is_numeric_dtype(col.dtype):
            continue
        converted = pd.to_numeric(col, errors='coerce')
        bad = converted.isna() & col.notna()
        if bad.any():
            examples = list(dict.fromkeys(col[bad].tolist()))[:3]
            raise ValueError(f"The continuous column {name!r} holds values that are not numbers "
                             f"({', '.join(repr(e) for e in examples)}, {int(bad.sum())} in all). Convert them "
                             f"(e.g. df[{name!r}] = pd.to_numeric(df[{name!r}], errors='coerce') to make them "
                             f"missing), or list the column in cat_names.")
        df[name] = converted
    for name in cont_names:   # inf passes FillMissing and makes Normalize's mean and std (and so every value) NaN
        inf = np.isinf(df[name].to_numpy(dtype=np.float64, na_value=np.nan))
        if inf.any():
            raise ValueError(f"The continuous column {name!r} holds infinite values ({int(inf.sum())} in all, e.g. at "
                             f"rows {df.index[inf][:5].tolist()}). Make them missing so FillMissing fills them "
                             f"(df[{name!r}] = df[{name!r}].replace([np.inf, -np.inf], np.nan)), or clip them.")


@register_safe_globals
class TabularProcessor(PreProcessor):
    """Runs the procs of a TabularList: the first list it processes (the training set) fits them, every later
    one (validation, test, a single row at predict time) gets the same fitted transformation."""

    def __init__(self, ds: ItemList | None = None, procs: Collection | None = None):
        procs = ifnone(procs, getattr(ds, 'procs', None) if ds is not None else None)
        self.procs = listify(procs)
        self.cat_names = list(getattr(ds, 'cat_names', None) or [])
        self.cont_names = list(getattr(ds, 'cont_names', None) or [])
        self.classes: dict | None = None

    @property
    def fitted(self) -> bool:
        "True once the procs have been fitted on a training set."
        return self.classes is not None

    def _run_procs(self, df: pd.DataFrame) -> None:
        "Fit (first call) or apply the procs on `df` in place."
        if self.fitted:
            for proc in self.procs:
                proc(df, test=True)
            return
        cat_names, cont_names = list(self.cat_names), list(self.cont_names)
        for i, proc in enumerate(self.procs):
            if not isinstance(proc, TabularProc):   # a class or a partial: make it for the current columns
                proc = proc(cat_names, cont_names)
                proc(df)
            else:                                   # an instance passed in: fitted already
                proc(df, test=True)
            cat_names, cont_names = proc.cat_names, proc.cont_names  # FillMissing adds `{name}_na` columns
            self.procs[i] = proc
        self.cat_names, self.cont_names = list(cat_names), list(cont_names)
        self.classes = {}
        for proc in self.procs:
            if isinstance(proc, Categorify):
                self.classes.update(proc.classes)

    def _arrays(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        "The (N, n_cat) int64 codes (0 = missing) and (N, n_cont) float32 values of the processed `df`."
        n = len(df)
        codes = np.zeros((n, len(self.cat_names)), dtype=np.int64)
        for j, name in enumerate(self.cat_names):
            col = df[name]
            if not isinstance(col.dtype, pd.CategoricalDtype):
                raise ValueError(f"The categorical column {name!r} was not made categorical: add Categorify to the "
                                 f"procs (procs=[FillMissing, Categorify, Normalize]).")
            codes[:, j] = col.cat.codes.to_numpy() + 1
        conts = np.zeros((n, len(self.cont_names)), dtype=np.float32)
        for j, name in enumerate(self.cont_names):
            conts[:, j] = df[name].to_numpy(dtype=np.float32, na_value=np.nan)
        missing = np.isnan(conts).any(0)
        if missing.any():   # a NaN input makes every output NaN: stop here rather than train on it
            names = [n for n, m in zip(self.cont_names, missing) if m]
            raise ValueError(f"The continuous column(s) {names} still hold missing values after the procs: add "
                             f"FillMissing to the procs (procs=[FillMissing, Categorify, Normalize]) or fill them.")
        return codes, conts

    def _frame(self, df: pd.DataFrame, cat_names: Sequence, cont_names: Sequence,
               where: str = "the DataFrame's columns") -> pd.DataFrame:
        "A copy of the columns the procs read, with the continuous ones numeric."
        _check_columns(df, list(cat_names), 'Categorical column(s) (cat_names)', where)
        _check_columns(df, list(cont_names), 'Continuous column(s) (cont_names)', where)
        df = df[list(dict.fromkeys([*cat_names, *cont_names]))].copy()
        _numeric_conts(df, cont_names)
        return df

    def process_one(self, item: Any) -> TabularLine:
        "Process one row `item` (a pandas Series, a dict, or a one-row DataFrame) as the training set was."
        if not self.fitted:
            raise ValueError("This TabularProcessor has not been fitted on a training set yet.")
        df = _row_frame(item, self._input_names)
        df = self._frame(df, self._input_cats, self._input_conts, where='the row to predict')
        self._run_procs(df)
        codes, conts = self._arrays(df)
        return TabularLine(codes[0], conts[0], self.classes, self.cat_names + self.cont_names)

    def process(self, ds: ItemList) -> None:
        "Process the TabularList `ds`: fit the procs when this is the first (training) list, then build its arrays."
        if ds.inner_df is None:   # an empty list rebuilt for inference: take the fitted state
            ds.classes, ds.cat_names, ds.cont_names = self.classes, self.cat_names, self.cont_names
            ds.codes = np.zeros((0, len(self.cat_names)), np.int64)
            ds.conts = np.zeros((0, len(self.cont_names)), np.float32)
            ds.preprocessed = True
            return
        if not self.fitted:
            self._input_cats, self._input_conts = list(self.cat_names), list(self.cont_names)
            if not self.cat_names and not self.cont_names:
                self._input_cats, self._input_conts = list(ds.cat_names), list(ds.cont_names)
                self.cat_names, self.cont_names = list(ds.cat_names), list(ds.cont_names)
            if len(ds.inner_df) == 0:
                raise ValueError("The training DataFrame is empty (0 rows): there is nothing to fit the procs on "
                                 "or to train with. Check the DataFrame and the split.")
        df = self._frame(ds.inner_df, self._input_cats, self._input_conts)
        self._run_procs(df)
        ds.codes, ds.conts = self._arrays(df)
        ds.classes, ds.cat_names, ds.cont_names = self.classes, list(self.cat_names), list(self.cont_names)
        ds.preprocessed = True

    @property
    def _input_names(self) -> list:
        return list(dict.fromkeys([*self._input_cats, *self._input_conts]))

    def normalize_stats(self) -> tuple[dict, dict]:
        "The means and standard deviations of the Normalize proc, or two empty dicts without one."
        for proc in self.procs:
            if isinstance(proc, Normalize):
                return proc.means, proc.stds
        return {}, {}


def _row_frame(item: Any, names: Sequence) -> pd.DataFrame:
    "A one-row DataFrame from `item`: a Series, a dict, a one-row DataFrame or a sequence of values in `names` order."
    if isinstance(item, pd.DataFrame):
        if len(item) != 1:
            raise ValueError(f"predict takes one row; got a DataFrame of {len(item)} rows. For many rows use "
                             f"`learn.data.add_test(...)` and `learn.get_preds(DatasetType.Test)`.")
        return item.reset_index(drop=True)
    if isinstance(item, pd.Series):
        # One column per field; object dtype keeps each value as it is (numbers are made numeric later).
        return pd.DataFrame({k: [v] for k, v in item.items()})
    if isinstance(item, dict):
        return pd.DataFrame({k: [v] for k, v in item.items()})
    if is_listy(item) and len(item) == len(names):
        return pd.DataFrame({k: [v] for k, v in zip(names, item)})
    raise TypeError(f"Cannot make a table row from a {type(item).__name__}: pass a pandas Series (e.g. df.iloc[0]), a "
                    f"dict of column -> value, or a sequence of the values of {list(names)}.")


class TabularDataLoader(DataLoader):
    """A DataLoader whose batches are gathered from the dataset's pre-built tensors: one index operation per
    batch instead of a `__getitem__` and a collate per row. The tensors are built once, on `device`.

    The dataset is a LabelList whose `x` has `batch_tensors()`; its targets are collated once, as the per-row
    path would collate them, so both paths give the same batches.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 64, shuffle: bool = False, drop_last: bool = False,
                 device: torch.device | None = None, **kwargs: Any):
        kwargs.pop('num_workers', None)  # a gather is cheaper than handing batches over from worker processes
        kwargs.pop('persistent_workers', None)
        kwargs.pop('pin_memory', None)
        super().__init__(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=0,
                         collate_fn=data_collate, **kwargs)
        self.device = torch.device(ifnone(device, defaults.device))
        self._tensors: list[Tensor] | None = None

    def new(self, **kwargs: Any) -> TabularDataLoader:
        """A loader like this one with some of `dataset`, `batch_size`, `shuffle`, `drop_last`, `device` changed
        (sharing the built tensors when the dataset and device stay the same)."""
        args = dict(dataset=self.dataset, batch_size=self.batch_size, shuffle=isinstance(self.sampler, RandomSampler),
                    drop_last=self.drop_last, device=self.device)
        args.update(kwargs)
        res = TabularDataLoader(**args)
        if res.device == self.device and res.dataset is self.dataset:
            res._tensors = self._tensors
        return res

    def tensors(self) -> list[Tensor]:
        "[*x tensors, y tensor] of the whole dataset, on the device (built at the first call)."
        if self._tensors is None:
            ds = self.dataset
            xs = ds.x.batch_tensors()
            self._tensors = [t.to(self.device) for t in [*xs, _targets(ds.y)]]
        return self._tensors

    def __iter__(self) -> Iterator:
        ds = self.dataset
        if getattr(ds, 'item', None) is not None or not hasattr(getattr(ds, 'x', None), 'batch_tensors'):
            yield from super().__iter__()   # a single item being predicted, or a dataset of another kind
            return
        *xs, y = self.tensors()
        n = len(ds)
        if isinstance(self.sampler, RandomSampler):
            order = torch.randperm(n, generator=self.generator)   # what RandomSampler draws, as one tensor
        else:
            order = torch.arange(n)
        order = order.to(self.device)
        stop = n - n % self.batch_size if self.drop_last else n
        for i in range(0, stop, self.batch_size):
            idx = order[i:i + self.batch_size]
            yield [t[idx] for t in xs], y[idx]


def _targets(y: ItemList) -> Tensor:
    "All the targets of `y` as one tensor, as collating its items one by one would give them."
    items = y.items
    if isinstance(y, (CategoryList, EmptyLabelList)) and items.dtype.kind in 'iu':
        return torch.from_numpy(items.astype(np.int64))      # Category.data / EmptyLabel.data: ints
    if isinstance(y, FloatList) and items.dtype.kind == 'f':
        return torch.from_numpy(items.astype(np.float32))    # FloatItem.data: float32
    if len(y) == 0:
        return torch.zeros(0)
    return data_collate([y[i] for i in range(len(y))])


class TabularDataBunch(DataBunch):
    "A DataBunch of TabularLists, whose loaders gather batches from pre-built tensors."

    @classmethod
    def create(cls, train_ds: Dataset, valid_ds: Dataset, test_ds: Dataset | None = None, path: PathOrStr = '.',
               bs: int = 64, val_bs: int | None = None, num_workers: int | None = None,
               dl_tfms: Collection[Callable] | None = None, device: torch.device | None = None,
               collate_fn: Callable = data_collate, no_check: bool = False, **dl_kwargs: Any) -> TabularDataBunch:
        "A TabularDataBunch from LabelLists of TabularLists: `bs` rows per training batch, `val_bs` (default `bs`) else."
        if train_ds is None or len(train_ds) == 0:
            raise ValueError("The training set is empty (0 rows): there is nothing to train on. Check the DataFrame "
                             "and the split.")
        val_bs = ifnone(val_bs, bs)
        device = torch.device(ifnone(device, defaults.device))
        drop_last = len(train_ds) > bs

        def _dl(ds, b, shuffle, drop):
            return TabularDataLoader(ds, b, shuffle=shuffle, drop_last=drop, device=device, **dl_kwargs)

        train_dl = _dl(train_ds, bs, True, drop_last)
        valid_dl = _dl(valid_ds, val_bs, False, False)
        fix_dl = _dl(train_ds, val_bs, False, False)
        test_dl = _dl(test_ds, val_bs, False, False) if test_ds is not None else None
        return cls(train_dl, valid_dl, fix_dl=fix_dl, test_dl=test_dl, device=device, dl_tfms=dl_tfms, path=path,
                   collate_fn=collate_fn, no_check=no_check)

    @classmethod
    def from_df(cls, path: PathOrStr, df: pd.DataFrame, dep_var: str, valid_idx: Collection[int],
                procs: Collection | None = None, cat_names: Sequence[str] | None = None,
                cont_names: Sequence[str] | None = None, classes: Collection | None = None,
                test_df: pd.DataFrame | None = None, bs: int = 64, val_bs: int | None = None,
                num_workers: int | None = None, dl_tfms: Collection[Callable] | None = None,
                device: torch.device | None = None, collate_fn: Callable = data_collate,
                no_check: bool = False) -> TabularDataBunch:
        "A TabularDataBunch from `df` with target `dep_var`, validation rows `valid_idx`, `procs`, `cat_names`, `cont_names` and optional `test_df`."
        if isinstance(df, pd.DataFrame):
            _check_columns(df, [dep_var], 'Target column (dep_var)')
        cat_names = list(ifnone(cat_names, []))
        if cont_names is None:
            cont_names = [c for c in df.columns if c not in cat_names and c != dep_var]
        procs = listify(procs)
        src = (TabularList.from_df(df, path=path, cat_names=cat_names, cont_names=cont_names, procs=procs)
               .split_by_idx(valid_idx))
        src = src.label_from_df(cols=dep_var) if classes is None else src.label_from_df(cols=dep_var, classes=classes)
        if test_df is not None:
            src.add_test(TabularList.from_df(test_df, cat_names=cat_names, cont_names=cont_names, procs=procs))
        return src.databunch(path=path, bs=bs, val_bs=val_bs, num_workers=num_workers, dl_tfms=dl_tfms,
                             device=device, collate_fn=collate_fn, no_check=no_check)

    def add_test(self, items: Any, label: Any = None, tfms: Any = None, tfm_y: Any = None) -> None:
        "Add `items` (a DataFrame, a TabularList or a processed dataset) as the test set, processed like the training set."
        if isinstance(items, pd.DataFrame):
            if len(items) == 0:
                raise ValueError("The test DataFrame is empty (0 rows).")
            items = TabularList(range(len(items)), inner_df=items.reset_index(drop=True))
        super().add_test(items, label=label, tfms=tfms, tfm_y=tfm_y)   # the validation loader's copy: a gather too

    def get_emb_szs(self, sz_dict: dict | None = None) -> list[tuple[int, int]]:
        "The embedding sizes of the categorical columns of the training set (see `TabularList.get_emb_szs`)."
        return self.train_ds.x.get_emb_szs(sz_dict)

    @property
    def cat_names(self) -> list:
        return self.train_ds.x.cat_names

    @property
    def cont_names(self) -> list:
        return self.train_ds.x.cont_names


class TabularList(ItemList):
    "The rows of a DataFrame `inner_df`, for a tabular model: categorical columns `cat_names`, continuous `cont_names`, processed by `procs`."
    _processor = TabularProcessor
    _bunch = TabularDataBunch

    def __init__(self, items: Any, cat_names: Sequence[str] | None = None, cont_names: Sequence[str] | None = None,
                 procs: Collection | None = None, **kwargs: Any):
        super().__init__(items, **kwargs)
        self.cat_names, self.cont_names = list(ifnone(cat_names, [])), list(ifnone(cont_names, []))
        self.procs = listify(procs)
        self.preprocessed = False
        self.codes: np.ndarray | None = None
        self.conts: np.ndarray | None = None
        self.classes: dict | None = None
        self.copy_new += ['cat_names', 'cont_names', 'procs']
        fitted = [p for p in listify(self.processor) if isinstance(p, TabularProcessor) and p.fitted]
        if self.inner_df is None and fitted:
            fitted[0].process(self)   # a list with no rows (exported for inference): take the fitted state

    @classmethod
    def from_df(cls, df: pd.DataFrame, cat_names: Sequence[str] | None = None,
                cont_names: Sequence[str] | None = None, procs: Collection | None = None, **kwargs: Any) -> TabularList:
        "A TabularList of the rows of `df` with categorical columns `cat_names`, continuous `cont_names` and `procs`."
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"TabularList.from_df takes a pandas DataFrame, not {type(df).__name__}.")
        if len(df) == 0:
            raise ValueError("The DataFrame is empty (0 rows): there are no rows to make a TabularList from.")
        cat_names, cont_names = list(ifnone(cat_names, [])), list(ifnone(cont_names, []))
        _check_columns(df, cat_names, 'Categorical column(s) (cat_names)')
        _check_columns(df, cont_names, 'Continuous column(s) (cont_names)')
        both = set(cat_names) & set(cont_names)
        if both:
            raise ValueError(f"Column(s) {sorted(both)} are in both cat_names and cont_names: give each column one role.")
        return cls(range(len(df)), cat_names=cat_names, cont_names=cont_names, procs=procs,
                   inner_df=df.reset_index(drop=True), **kwargs)

    def get(self, i: int) -> TabularLine:
        "The `i`-th row, as a TabularLine (after processing)."
        if not self.preprocessed:
            return self.inner_df.iloc[i]
        return TabularLine(self.codes[i], self.conts[i], self.classes, self.col_names)

    @property
    def col_names(self) -> list:
        return self.cat_names + self.cont_names

    def batch_tensors(self) -> list[Tensor]:
        "The whole list as the tensors a batch gathers rows from: [codes (N, n_cat) int64, conts (N, n_cont) float32]."
        self._check_processed()
        return [torch.from_numpy(self.codes), torch.from_numpy(self.conts)]

    def _check_processed(self) -> None:
        if not self.preprocessed:
            raise ValueError("This TabularList has not been processed yet: split and label it (or call .process()).")

    def get_emb_szs(self, sz_dict: dict | None = None) -> list[tuple[int, int]]:
        "(number of categories, embedding size) of each categorical column; `sz_dict` overrides sizes by column name."
        self._check_processed()
        return [def_emb_sz(self.classes, n, sz_dict) for n in self.cat_names]

    def reconstruct(self, t: Any, x: Any = None) -> TabularLine:
        "The TabularLine of the tensors `t` = [codes, conts] of one row."
        return TabularLine(t[0], t[1], self.classes, self.col_names)

    def _denormalized(self, line: TabularLine) -> dict:
        "The values of `line` with the continuous columns brought back to their original scale."
        values = line.values()
        processor = listify(self.processor)[0] if self.processor is not None else None
        if isinstance(processor, TabularProcessor):
            means, stds = processor.normalize_stats()
            for name in self.cont_names:
                if name in means:
                    values[name] = values[name] * (1e-7 + stds[name]) + means[name]
        return values

    def show_xys(self, xs: Sequence[TabularLine], ys: Sequence[Any], **kwargs: Any) -> pd.DataFrame:
        "A table of the rows `xs` (continuous values on their original scale) with their targets `ys`."
        rows = [dict(self._denormalized(x), target=str(y)) for x, y in zip(xs, ys)]
        return pd.DataFrame(rows)

    def show_xyzs(self, xs: Sequence[TabularLine], ys: Sequence[Any], zs: Sequence[Any], **kwargs: Any) -> pd.DataFrame:
        "A table of the rows `xs` with their targets `ys` and predictions `zs`."
        rows = [dict(self._denormalized(x), target=str(y), prediction=str(z)) for x, y, z in zip(xs, ys, zs)]
        return pd.DataFrame(rows)
