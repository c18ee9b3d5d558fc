"""The data block API: `ItemList.from_*` -> `split_by_*` -> `label_from_*` -> `transform` -> `add_test` -> `databunch`.

An `ItemList` holds raw items (file names, texts, row indices) in a numpy array and turns one into an item
object (`get`) when a dataset asks for it. Splitting gives an `ItemLists` (train, valid); labelling gives a
`LabelLists` of two `LabelList` datasets whose processors (e.g. the class list of a `CategoryList`) are fitted on
the training set and applied unchanged to the validation and test sets, and to one item at predict time.
"""
from __future__ import annotations

import contextlib
import copy
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .basic_data import DataBunch
from .core import PathOrStr, atomic_write, did_you_mean, ifnone, is_listy, listify, uniqueify
from .layers import BCEWithLogitsFlat, CrossEntropyFlat, MSELossFlat
from .serialization import register_safe_globals
from .torch_core import data_collate, defaults

__all__ = ['get_files', 'ItemBase', 'Category', 'MultiCategory', 'FloatItem', 'EmptyLabel', 'PreProcessor',
           'ItemList', 'EmptyLabelList', 'CategoryProcessor', 'CategoryListBase', 'CategoryList',
           'MultiCategoryProcessor', 'MultiCategoryList', 'FloatList', 'ItemLists', 'LabelLists', 'LabelList',
           'MixedProcessor', 'MixedItem', 'MixedItemList', 'df_names_to_idx', 'csv_file']


def _register_fastlib_class(cls: type) -> None:
    "Allow fastlib's own item, item-list and processor classes in exported files (see fastlib.serialization)."
    if cls.__module__.split('.')[0] == 'fastlib':
        register_safe_globals(cls)


def get_files(path: PathOrStr, extensions: Collection[str] | None = None, recurse: bool = False,
              exclude: Collection[str] | None = None, include: Collection[str] | None = None, presort: bool = False,
              followlinks: bool = False) -> list[Path]:
    """The files in `path` (in its subfolders too if `recurse`) whose suffix is in `extensions` (any if None).

    `include` / `exclude` name the first-level subfolders to walk or skip; hidden files and folders (a leading
    '.') are skipped; `presort` sorts the result.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder.")
    exts = None if extensions is None else {e.lower() if e.startswith('.') else f'.{e.lower()}'
                                            for e in listify(extensions)}

    def keep(name: str) -> bool:
        return not name.startswith('.') and (exts is None or os.path.splitext(name)[1].lower() in exts)

    if not recurse:
        res = [path / e.name for e in os.scandir(path) if e.is_file() and keep(e.name)]
        return sorted(res) if presort else res
    res = []
    for i, (folder, dirs, files) in enumerate(os.walk(path, followlinks=followlinks)):
        if i == 0:
            dirs[:] = [d for d in dirs if (include is None or d in include) and (exclude is None or d not in exclude)]
        dirs[:] = [d for d in dirs if not d.startswith('.')]
        if presort:
            dirs.sort()
        res += [Path(folder) / f for f in (sorted(files) if presort else files) if keep(f)]
    return res


class ItemBase:
    "One item of a dataset: `data` is what goes in a batch, `obj` what a person reads."

    def __init__(self, data: Any):
        self.data = self.obj = data

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _register_fastlib_class(cls)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__} {self}'

    def __str__(self) -> str:
        return str(self.obj)

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, ItemBase):
            return NotImplemented
        a, b = self.data, other.data
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            return torch.equal(torch.as_tensor(a), torch.as_tensor(b))
        return bool(np.all(np.asarray(a) == np.asarray(b)))

    __hash__ = None

    def show(self, ax: Any, **kwargs: Any) -> None:
        "Show the item on the matplotlib axis `ax` (as its title; image items draw themselves)."
        ax.set_title(str(self))

    def apply_tfms(self, tfms: Any, **kwargs: Any) -> ItemBase:
        "Apply the transforms `tfms`: items that have no transforms reject them rather than ignore them."
        if tfms:
            raise TypeError(f"{self.__class__.__name__} items take no transforms; got {listify(tfms)}.")
        return self


class Category(ItemBase):
    "A class label: `data` is its index in the classes, `obj` its name."

    def __init__(self, data: int, obj: Any):
        self.data, self.obj = data, obj

    def __int__(self) -> int:
        return int(self.data)


class MultiCategory(ItemBase):
    "Several class labels: `data` is a one-hot float tensor, `obj` the names and `raw` the indices."

    def __init__(self, data: Tensor, obj: list, raw: Any):
        self.data, self.obj, self.raw = data, obj, raw

    def __str__(self) -> str:
        return ';'.join(str(o) for o in self.obj)


class FloatItem(ItemBase):
    "A regression target: one number or an array of them, as float32."

    def __init__(self, obj: Any):
        self.obj = obj
        self.data = torch.as_tensor(np.asarray(obj, dtype=np.float32))

    def __str__(self) -> str:
        return str(np.round(np.asarray(self.obj, dtype=np.float32), 4).tolist())


class EmptyLabel(ItemBase):
    "The label of an unlabelled item (a test set, or an item to predict)."

    def __init__(self):
        self.obj, self.data = None, 0

    def __str__(self) -> str:
        return ''


def _to_array(items: Any) -> np.ndarray:
    "`items` as a 1-d numpy array (an object array when they are lists or arrays of different lengths)."
    if isinstance(items, np.ndarray):
        return items
    if isinstance(items, (pd.Series, pd.Index)):
        return items.to_numpy()
    items = list(items)
    if items and (is_listy(items[0]) or isinstance(items[0], (np.ndarray, Tensor))):
        res = np.empty(len(items), dtype=object)
        for i, o in enumerate(items):
            res[i] = o
        return res
    return np.array(items, dtype=object if any(isinstance(o, Path) for o in items[:1]) else None)


def csv_file(fn: PathOrStr) -> Path:
    "`fn` as a Path, or a FileNotFoundError naming the CSV files in its folder (to read before `pd.read_csv`)."
    fn = Path(fn)
    if fn.is_file():
        return fn
    if not fn.parent.is_dir():
        raise FileNotFoundError(f"No CSV file at {fn}: the folder {fn.parent} does not exist. Check the path.")
    found = sorted(p.name for p in fn.parent.iterdir() if p.suffix.lower() in ('.csv', '.tsv', '.txt', '.gz'))
    hint = did_you_mean(fn.name, found) or (f" Files there: {found[:20]}." if found else " No CSV files there.")
    raise FileNotFoundError(f"No CSV file at {fn}.{hint} Pass the file name relative to `path`.")


def df_names_to_idx(names: int | str | Sequence, df: pd.DataFrame) -> list[int]:
    "The column positions in `df` of `names` (column names or positions), with a did-you-mean for a typo."
    res = []
    for n in listify(names):
        if isinstance(n, Integral) and not isinstance(n, bool) and n not in df.columns:
            if not -len(df.columns) <= n < len(df.columns):
                raise IndexError(f"Column {n} is out of range: the DataFrame has {len(df.columns)} columns.")
            res.append(int(n) % len(df.columns))
        elif n in df.columns:
            res.append(df.columns.get_loc(n))
        else:
            raise KeyError(f"No column {n!r} in the DataFrame.{did_you_mean(str(n), [str(c) for c in df.columns])} "
                           f"Columns: {list(df.columns)[:20]}")
    return res


def _maybe_squeeze(a: np.ndarray) -> np.ndarray:
    "A one-column 2-d array as 1-d, other shapes unchanged."
    return a[:, 0] if a.ndim == 2 and a.shape[1] == 1 else a


class PreProcessor:
    "Processes the items of an item list in place (`process`) or one new item (`process_one`)."

    def __init__(self, ds: Any = None):
        self.ref_ds = ds

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _register_fastlib_class(cls)

    def __getstate__(self) -> dict:
        # The list it was created from is not part of its state: an exported processor carries no data.
        return {k: v for k, v in self.__dict__.items() if k != 'ref_ds'}

    def process_one(self, item: Any) -> Any:
        "`item` processed."
        return item

    def process(self, ds: ItemList) -> None:
        "Process every item of `ds` in place."
        ds.items = _to_array([self.process_one(o) for o in ds.items])


class ItemList:
    """Raw items (file names, texts, row indices...) in `items`, made into item objects by `get`.

    `path` is where the items come from (and where models are saved); `inner_df` the DataFrame they were read from;
    `processor` the fitted PreProcessors (None: created from the class's `_processor` when labelling).
    """
    _bunch = DataBunch          # the DataBunch class `databunch()` builds
    _processor = None           # the PreProcessor class(es) labelling creates
    _label_cls = None           # the label list class labelling picks when none is given
    _square_show = False        # show_batch draws a square grid
    _square_show_res = False

    def __init__(self, items: Iterable, path: PathOrStr = '.', label_cls: type | None = None,
                 inner_df: pd.DataFrame | None = None, processor: Any = None, x: ItemList | None = None,
                 ignore_empty: bool = False):
        self.path = Path(path)
        self.num_parts = len(self.path.parts)
        self.items = _to_array(items)
        self.x, self.label_cls, self.inner_df, self.processor = x, label_cls, inner_df, processor
        self.ignore_empty = ignore_empty
        self.copy_new = ['x', 'label_cls', 'path']  # attributes `new` passes on to lists made from this one

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _register_fastlib_class(cls)

    def __getstate__(self) -> dict:
        # A saved or exported list keeps its items and processors, not the DataFrame it was read from.
        return {k: (None if k == 'inner_df' else v) for k, v in self.__dict__.items()}

    # What splitting and labelling make of this class (subclasses such as TextList change them).
    @property
    def _label_list(self) -> type:
        return LabelList

    @property
    def _split(self) -> type:
        return ItemLists

    def __len__(self) -> int:
        return len(self.items)

    def get(self, i: int) -> Any:
        "The item object for index `i` (subclasses open files, look up rows, ...)."
        return self.items[i]

    def __repr__(self) -> str:
        shown = ','.join(str(self[i]) for i in range(min(5, len(self))))
        return f'{self.__class__.__name__} ({len(self)} items)\n{shown}\nPath: {self.path}'

    def __getitem__(self, idxs: int | np.ndarray | Sequence[int] | slice) -> Any:
        "The item at index `idxs`, or a new list of the items at indices (or mask, or slice) `idxs`."
        if isinstance(idxs, (Integral, np.integer)):
            return self.get(int(idxs))
        idxs = np.asarray(idxs) if not isinstance(idxs, slice) else idxs
        inner_df = None if self.inner_df is None else self.inner_df.iloc[idxs]
        return self.new(self.items[idxs], inner_df=inner_df)

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]

    def new(self, items: Iterable, processor: Any = None, **kwargs: Any) -> ItemList:
        "A list of the same class and settings (`copy_new`) holding `items`."
        processor = ifnone(processor, self.processor)
        copied = {k: getattr(self, k) for k in self.copy_new}
        return self.__class__(items=items, processor=processor, **{**copied, **kwargs})

    def add(self, items: ItemList) -> ItemList:
        "Append the items of `items` (a list of the same kind) to this one."
        self.items = np.concatenate([self.items, items.items], 0)
        if self.inner_df is not None and items.inner_df is not None:
            self.inner_df = pd.concat([self.inner_df, items.inner_df])
        else:
            self.inner_df = self.inner_df if items.inner_df is None else items.inner_df
        return self

    def process(self, processor: Any = None) -> ItemList:
        "Run `processor` (default this list's) over the items in place."
        if processor is not None:
            self.processor = processor
        self.processor = listify(self.processor)
        for p in self.processor:
            p.process(self)
        return self

    def process_one(self, item: Any, processor: Any = None) -> Any:
        "One new `item` processed as this list's items were."
        for p in listify(ifnone(processor, self.processor)):
            item = p.process_one(item)
        return item

    def analyze_pred(self, pred: Tensor) -> Any:
        "The decoded form of the model output `pred` for one item."
        return pred

    def reconstruct(self, t: Any, x: Any = None) -> Any:
        "The item object for the tensor `t` of a batch."
        return t

    def show_xys(self, xs: Sequence, ys: Sequence, **kwargs: Any) -> pd.DataFrame:
        "A table of inputs `xs` and targets `ys` (item lists that draw themselves override this)."
        return pd.DataFrame({'x': [str(x) for x in xs], 'y': [str(y) for y in ys]})

    def show_xyzs(self, xs: Sequence, ys: Sequence, zs: Sequence, **kwargs: Any) -> pd.DataFrame:
        "A table of inputs `xs`, targets `ys` and predictions `zs`."
        return pd.DataFrame({'x': [str(x) for x in xs], 'target': [str(y) for y in ys],
                             'prediction': [str(z) for z in zs]})

    # Creating
    @classmethod
    def from_folder(cls, path: PathOrStr, extensions: Collection[str] | None = None, recurse: bool = True,
                    exclude: Collection[str] | None = None, include: Collection[str] | None = None,
                    processor: Any = None, presort: bool = False, **kwargs: Any) -> ItemList:
        "The files in `path` (recursively) with a suffix in `extensions`; `include`/`exclude` first-level folders."
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"No folder at {path}.")
        files = get_files(path, extensions, recurse=recurse, exclude=exclude, include=include, presort=presort)
        if not files and not kwargs.get('ignore_empty', False):
            kinds = f" with a suffix in {sorted(extensions)}" if extensions else ''
            raise FileNotFoundError(f"No files{kinds} found in {path} (subfolders included: {recurse}). "
                                    f"Check the path, or the `include`/`exclude` folders and `extensions`.")
        return cls(files, path=path, processor=processor, **kwargs)

    @classmethod
    def from_df(cls, df: pd.DataFrame, path: PathOrStr = '.', cols: int | str | Sequence = 0,
                processor: Any = None, **kwargs: Any) -> ItemList:
        "The values of the columns `cols` of `df` (names or positions); the DataFrame is kept for labelling."
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"{cls.__name__}.from_df takes a pandas DataFrame, not {type(df).__name__}: make one with "
                            f"pd.DataFrame(...) or read it with pd.read_csv.")
        if len(df) == 0:
            raise ValueError("The DataFrame is empty (0 rows): there are no items to build a dataset from.")
        inputs = df.iloc[:, df_names_to_idx(cols, df)]
        missing = inputs.isna().to_numpy()
        if missing.any():
            rows = list(df.index[missing.any(axis=1)][:5])
            raise ValueError(f"Column(s) {list(inputs.columns)} hold missing values (NaN), e.g. at rows {rows}. "
                             f"Drop or fill those rows first.")
        return cls(items=_maybe_squeeze(inputs.to_numpy()), path=path, inner_df=df, processor=processor, **kwargs)

    @classmethod
    def from_csv(cls, path: PathOrStr, csv_name: str, cols: int | str | Sequence = 0, delimiter: str | None = None,
                 header: str | int | None = 'infer', processor: Any = None, **kwargs: Any) -> ItemList:
        "The values of the columns `cols` of the CSV file `path/csv_name`."
        df = pd.read_csv(csv_file(Path(path) / csv_name), delimiter=delimiter, header=header)
        return cls.from_df(df, path=path, cols=cols, processor=processor, **kwargs)

    def _relative_item_path(self, i: int) -> Path:
        return Path(self.items[i]).relative_to(self.path)

    def _relative_item_paths(self) -> list[Path]:
        return [self._relative_item_path(i) for i in range(len(self.items))]

    def use_partial_data(self, sample_pct: float = 0.01, seed: int | None = None) -> ItemList:
        "A random `sample_pct` of the items (`seed` makes the draw repeatable)."
        rng = np.random.default_rng(seed)
        n = int(len(self) * sample_pct)
        return self[np.sort(rng.permutation(len(self))[:n])]

    def to_text(self, fn: str) -> None:
        "Write the items, one per line, to `path/fn` (atomically)."
        with atomic_write(self.path / fn, 'w') as f:
            f.writelines(f'{o}\n' for o in self._relative_item_paths())

    # Filtering
    def _filter(self, keep: np.ndarray) -> ItemList:
        self.items = self.items[keep]
        if self.inner_df is not None:
            self.inner_df = self.inner_df.iloc[np.flatnonzero(keep)]
        return self

    def filter_by_func(self, func: Callable) -> ItemList:
        "Keep only the items for which `func(item)` is True."
        return self._filter(np.array([bool(func(o)) for o in self.items], dtype=bool))

    def filter_by_folder(self, include: Collection[str] | None = None,
                         exclude: Collection[str] | None = None) -> ItemList:
        "Keep only the items in the first-level folders `include`, and none in `exclude`."
        include, exclude = listify(include), listify(exclude)

        def keep(o: Any) -> bool:
            folder = Path(o).relative_to(self.path).parts[0]
            return (not include or folder in include) and folder not in exclude

        return self.filter_by_func(keep)

    def filter_by_rand(self, p: float, seed: int | None = None) -> ItemList:
        "Keep each item with probability `p`."
        return self._filter(np.random.default_rng(seed).random(len(self)) < p)

    # Splitting
    def split_none(self) -> ItemLists:
        "No validation set: all items train."
        return self._split(self.path, self, self[np.array([], dtype=np.int64)])

    no_split = split_none

    def split_by_list(self, train: ItemList, valid: ItemList) -> ItemLists:
        "Split into the lists `train` and `valid`."
        return self._split(self.path, train, valid)

    def split_by_idxs(self, train_idx: Collection[int], valid_idx: Collection[int]) -> ItemLists:
        "Split by the indices `train_idx` and `valid_idx`."
        return self.split_by_list(self[np.asarray(train_idx, dtype=np.int64)],
                                  self[np.asarray(valid_idx, dtype=np.int64)])

    def split_by_idx(self, valid_idx: Collection[int]) -> ItemLists:
        "Items at `valid_idx` go to the validation set, the others train."
        valid_idx = np.asarray(valid_idx, dtype=np.int64).reshape(-1)
        if len(valid_idx) and (valid_idx.min() < -len(self) or valid_idx.max() >= len(self)):
            raise IndexError(f"valid_idx holds indices outside 0..{len(self) - 1} (there are {len(self)} items).")
        valid_idx = valid_idx % max(len(self), 1)
        train_idx = np.setdiff1d(np.arange(len(self)), valid_idx)
        return self.split_by_idxs(train_idx, valid_idx)

    def _folder_idxs(self, name: str) -> np.ndarray:
        parts = [Path(o).relative_to(self.path).parts for o in self.items]
        return np.array([i for i, p in enumerate(parts) if len(p) > 1 and p[0] == name], dtype=np.int64)

    def split_by_folder(self, train: str = 'train', valid: str = 'valid') -> ItemLists:
        "Split by the first-level folders `train` and `valid` (items elsewhere are left out)."
        train_idx, valid_idx = self._folder_idxs(train), self._folder_idxs(valid)
        if len(train_idx) == 0:
            found = sorted({Path(o).relative_to(self.path).parts[0] for o in self.items})
            raise ValueError(f"No items in a folder {train!r} under {self.path}; first-level folders found: "
                             f"{found[:10]}. Pass split_by_folder(train=..., valid=...).")
        return self.split_by_idxs(train_idx, valid_idx)

    def split_by_rand_pct(self, valid_pct: float = 0.2, seed: int | None = None) -> ItemLists:
        "A random `valid_pct` of the items for validation (`seed` makes the split repeatable)."
        if not 0 <= valid_pct < 1:
            raise ValueError(f"valid_pct must be in [0, 1), got {valid_pct}.")
        if valid_pct == 0:
            return self.split_none()
        rand_idx = np.random.default_rng(seed).permutation(len(self))
        return self.split_by_idx(np.sort(rand_idx[:int(valid_pct * len(self))]))

    random_split_by_pct = split_by_rand_pct

    def split_subsets(self, train_size: float, valid_size: float, seed: int | None = None) -> ItemLists:
        "Random disjoint subsets of `train_size` and `valid_size` (fractions of the items)."
        if not (0 < train_size and 0 < valid_size and train_size + valid_size <= 1):
            raise ValueError(f"train_size and valid_size must be positive fractions adding up to at most 1, "
                             f"got {train_size} and {valid_size}.")
        rand_idx = np.random.default_rng(seed).permutation(len(self))
        n_train, n_valid = int(train_size * len(self)), int(valid_size * len(self))
        return self.split_by_idxs(np.sort(rand_idx[:n_train]), np.sort(rand_idx[n_train:n_train + n_valid]))

    def split_by_valid_func(self, func: Callable) -> ItemLists:
        "Items for which `func(item)` is True go to the validation set."
        return self.split_by_idx([i for i, o in enumerate(self.items) if func(o)])

    def split_by_files(self, valid_names: Collection[str]) -> ItemLists:
        "Items whose file name is in `valid_names` go to the validation set."
        names = {Path(n).name for n in valid_names}
        return self.split_by_valid_func(lambda o: Path(o).name in names)

    def split_by_fname_file(self, fname: PathOrStr, path: PathOrStr | None = None) -> ItemLists:
        "Items whose file name is listed (one per line) in the file `path/fname` go to the validation set."
        source = Path(ifnone(path, self.path)) / fname
        return self.split_by_files([line.strip() for line in source.read_text().splitlines() if line.strip()])

    def split_from_df(self, col: int | str = 2) -> ItemLists:
        "Rows of `inner_df` whose column `col` is True go to the validation set."
        if self.inner_df is None:
            raise ValueError("split_from_df needs items created from a DataFrame (from_df or from_csv).")
        values = self.inner_df.iloc[:, df_names_to_idx(col, self.inner_df)[0]]
        return self.split_by_idx(np.flatnonzero(_as_bool(values)))

    # Labelling
    def get_label_cls(self, labels: Any, label_cls: type | None = None, label_delim: str | None = None,
                      **kwargs: Any) -> type:
        "The label list class for `labels`: `label_cls`, else categories, several categories, or floats."
        if label_cls is not None:
            return label_cls
        if self.label_cls is not None:
            return self.label_cls
        if self._label_cls is not None:
            return self._label_cls
        if label_delim is not None:
            return MultiCategoryList
        it = labels[0] if len(labels) else None
        if isinstance(it, (float, np.floating)):
            return FloatList
        if isinstance(it, (str, Integral, np.integer, bool, np.bool_)):
            return CategoryList
        if isinstance(it, (np.ndarray, list, tuple)):
            sub = np.asarray(it).reshape(-1)
            return FloatList if sub.dtype.kind == 'f' else MultiCategoryList
        return ItemList

    def _label_from_list(self, labels: Iterable, label_cls: type | None = None, from_item_lists: bool = False,
                         **kwargs: Any) -> LabelList:
        "A LabelList of this list and the labels `labels` (one per item)."
        if not from_item_lists:
            raise RuntimeError("Split the data before labelling it (use `split_none()` for no validation set).")
        labels = _to_array(labels)
        if len(labels) != len(self):
            raise ValueError(f"There are {len(self)} items but {len(labels)} labels: give one label per item, in "
                             f"the order of the items.")
        label_cls = self.get_label_cls(labels, label_cls=label_cls, **kwargs)
        y = label_cls(labels, path=self.path, **kwargs)
        return self._label_list(x=self, y=y)

    def label_from_df(self, cols: int | str | Sequence = 1, label_cls: type | None = None, **kwargs: Any) -> Any:
        "Label with the column(s) `cols` of the DataFrame the items came from."
        if self.inner_df is None:
            raise ValueError("label_from_df needs items created from a DataFrame (from_df or from_csv).")
        labels = self.inner_df.iloc[:, df_names_to_idx(cols, self.inner_df)]
        missing = labels.isna().to_numpy().any(axis=1)
        if missing.any():
            rows = list(self.inner_df.index[missing][:5])
            raise ValueError(f"The label column(s) {list(labels.columns)} hold missing values (NaN) in {missing.sum()} "
                             f"rows, e.g. at rows {rows}. Drop or fill those rows before labelling.")
        infinite = np.isinf(labels.select_dtypes('number').to_numpy(dtype=np.float64)).any(axis=1)
        if infinite.any():
            rows = self.inner_df.index[infinite][:5].tolist()
            raise ValueError(f"The label column(s) {list(labels.columns)} hold infinite values in {infinite.sum()} "
                             f"rows, e.g. at rows {rows}. Drop or fix those rows (or clip the values) before "
                             f"labelling.")
        if is_listy(cols) and len(cols) > 1 and (label_cls is None or label_cls is MultiCategoryList):
            first = labels.iloc[:, 0].to_numpy()
            if label_cls is MultiCategoryList or first.dtype.kind not in 'f':
                kwargs = {'one_hot': True, 'classes': list(labels.columns), **kwargs}
                label_cls = MultiCategoryList
        return self._label_from_list(_maybe_squeeze(labels.to_numpy()), label_cls=label_cls, **kwargs)

    def label_const(self, const: Any = 0, label_cls: type | None = None, **kwargs: Any) -> Any:
        "Label every item with `const`."
        return self.label_from_func(lambda o: const, label_cls=label_cls, **kwargs)

    def label_empty(self, **kwargs: Any) -> Any:
        "No labels (e.g. for a test set or unsupervised data)."
        kwargs.pop('label_cls', None)
        return self.label_from_func(lambda o: 0, label_cls=EmptyLabelList, **kwargs)

    def label_from_func(self, func: Callable, label_cls: type | None = None, **kwargs: Any) -> Any:
        "Label each item with `func(item)`."
        return self._label_from_list([func(o) for o in self.items], label_cls=label_cls, **kwargs)

    def label_from_folder(self, label_cls: type | None = None, **kwargs: Any) -> Any:
        "Label each file with the name of its folder."
        return self.label_from_func(lambda o: Path(o).parent.name, label_cls=label_cls, **kwargs)

    def label_from_re(self, pat: str, full_path: bool = False, label_cls: type | None = None, **kwargs: Any) -> Any:
        "Label each file with the first group of the regular expression `pat` matched on its name (or full path)."
        regex = re.compile(pat)

        def label(o: Any) -> str:
            s = str(Path(o).as_posix() if full_path else Path(o).name)
            match = regex.search(s)
            if match is None:
                raise ValueError(f"The pattern {pat!r} does not match {s!r}: every item needs a label.")
            return match.group(1)

        return self.label_from_func(label, label_cls=label_cls, **kwargs)

    def transform(self, tfms: Any = (None, None), **kwargs: Any) -> Any:
        raise RuntimeError("Split and label the items before transforming them, e.g. "
                           "`.split_by_rand_pct(0.2).label_from_folder().transform(tfms, size=224)`.")

    def databunch(self, **kwargs: Any) -> Any:
        raise RuntimeError("Split and label the items before making a DataBunch, e.g. "
                           "`.split_by_rand_pct(0.2).label_from_folder().databunch()` (`.split_none()` for no "
                           "validation set, `.label_empty()` for no labels).")


def _as_bool(values: pd.Series) -> np.ndarray:
    "A column of booleans, 0/1 or 'True'/'False' strings as a boolean array (anything else is an error)."
    if values.dtype == bool:
        return values.to_numpy()
    words = {'true': True, 'false': False, '1': True, '0': False}
    res = [words.get(str(v).strip().lower()) for v in values]
    if any(r is None for r in res):
        bad = [v for v, r in zip(values, res) if r is None][:5]
        raise ValueError(f"The split column {values.name!r} must hold booleans (True/False or 1/0); found {bad}.")
    return np.array(res, dtype=bool)


class EmptyLabelList(ItemList):
    "The labels of unlabelled items."

    def get(self, i: int) -> EmptyLabel:
        return EmptyLabel()

    def reconstruct(self, t: Any, x: Any = None) -> EmptyLabel:
        return EmptyLabel()

    @property
    def c(self) -> int:
        return 0


class CategoryProcessor(PreProcessor):
    "Maps labels to class indices; the classes are learnt from the first list processed (the training set)."

    def __init__(self, ds: ItemList):
        super().__init__(ds)
        self.create_classes(ds.classes)

    def create_classes(self, classes: Sequence | None) -> None:
        "Use `classes` (a list of names) as the classes."
        self.classes = None if classes is None else list(classes)
        self.c2i = None if classes is None else {v: k for k, v in enumerate(self.classes)}

    def generate_classes(self, items: Iterable) -> list:
        "The sorted unique labels of `items`."
        return _sorted_unique(items)

    def process_one(self, item: Any) -> int | None:
        "The class index of `item` (None when it is not a known class)."
        return self.c2i.get(_plain(item))

    def process(self, ds: ItemList) -> None:
        if self.classes is None:
            self.create_classes(self.generate_classes(ds.items))
        ds.classes, ds.c2i = self.classes, self.c2i
        codes = [self.process_one(o) for o in ds.items]
        unknown = Counter(_plain(o) for o, c in zip(ds.items, codes) if c is None)
        if unknown:
            raise _unknown_labels_error(unknown, self.classes)
        ds.items = np.array(codes, dtype=np.int64)


def _plain(o: Any) -> Any:
    "numpy scalars as Python ones, so that 3 and np.int64(3) are the same label."
    return o.item() if isinstance(o, np.generic) else o


def _sorted_unique(items: Iterable) -> list:
    res = uniqueify(_plain(o) for o in items)
    try:
        return sorted(res)
    except TypeError:  # mixed kinds (e.g. numbers and strings): sort by their text
        return sorted(res, key=str)


def _unknown_labels_error(unknown: Counter, classes: Sequence) -> ValueError:
    def one(k: Any, n: int) -> str:
        hint = did_you_mean(str(k), [str(c) for c in classes])   # ' Did you mean ...?'
        return f'{k!r} ({n} item{"s" if n > 1 else ""}{", d" + hint[2:] if hint else ""})'
    shown = ', '.join(one(k, n) for k, n in unknown.most_common(5))
    return ValueError(f"{sum(unknown.values())} labels are not among the classes learnt from the training set "
                      f"({len(classes)} classes: {list(classes)[:10]}): {shown}. Fix those labels, pass `classes=` "
                      f"listing every class, or remove those items (e.g. with `filter_by_func`).")


class CategoryListBase(ItemList):
    "Labels that are classes: `classes` (learnt from the training set when None) and `c` their number."

    def __init__(self, items: Iterable, classes: Sequence | None = None, **kwargs: Any):
        self.classes = None if classes is None else list(classes)
        self.filter_missing_y = True
        super().__init__(items, **kwargs)
        self.copy_new.append('classes')

    @property
    def c(self) -> int:
        return len(self.classes) if self.classes is not None else 0


class CategoryList(CategoryListBase):
    "Single-label classification targets, trained with cross-entropy."
    _processor = CategoryProcessor

    def __init__(self, items: Iterable, classes: Sequence | None = None, label_delim: str | None = None,
                 **kwargs: Any):
        super().__init__(items, classes=classes, **kwargs)
        self.loss_func = CrossEntropyFlat()

    def get(self, i: int) -> Category:
        o = self.items[i]
        return Category(int(o), self.classes[o]) if _is_code(o) else Category(o, o)

    def analyze_pred(self, pred: Tensor, thresh: float = 0.5) -> Tensor:
        "The predicted class index."
        return pred.argmax()

    def reconstruct(self, t: Any, x: Any = None) -> Category:
        return Category(int(t), self.classes[int(t)])


def _is_code(o: Any) -> bool:
    return isinstance(o, (Integral, np.integer)) and not isinstance(o, bool)


class MultiCategoryProcessor(CategoryProcessor):
    "Maps lists of labels to class indices (or checks one-hot rows)."

    def __init__(self, ds: ItemList, one_hot: bool = False):
        super().__init__(ds)
        self.one_hot = one_hot or getattr(ds, 'one_hot', False)

    def process_one(self, item: Any) -> Any:
        if self.one_hot or isinstance(item, EmptyLabel):
            return item
        return [self.c2i.get(_plain(o)) for o in item]

    def generate_classes(self, items: Iterable) -> list:
        return _sorted_unique(o for labels in items for o in labels)

    def process(self, ds: ItemList) -> None:
        if self.classes is None:
            self.create_classes(self.generate_classes(ds.items))
        ds.classes, ds.c2i = self.classes, self.c2i
        if self.one_hot:
            ds.items = _to_array([np.asarray(o, dtype=np.float32) for o in ds.items])
            return
        codes = [self.process_one(o) for o in ds.items]
        unknown = Counter(_plain(o) for labels, cs in zip(ds.items, codes) for o, c in zip(labels, cs) if c is None)
        if unknown:
            raise _unknown_labels_error(unknown, self.classes)
        ds.items = _to_array([np.array(c, dtype=np.int64) for c in codes])


class MultiCategoryList(CategoryListBase):
    "Multi-label targets (lists of classes, or `label_delim`-separated strings), trained with BCE on logits."
    _processor = MultiCategoryProcessor

    def __init__(self, items: Iterable, classes: Sequence | None = None, label_delim: str | None = None,
                 one_hot: bool = False, **kwargs: Any):
        items = _to_array(items)
        if label_delim is not None:
            items = _to_array([o.split(label_delim) if isinstance(o, str) else o for o in items])
        elif len(items) and isinstance(items[0], str):
            items = _to_array([[o] for o in items])
        super().__init__(items, classes=classes, **kwargs)
        self.one_hot = one_hot
        self.loss_func = BCEWithLogitsFlat()
        self.copy_new.append('one_hot')

    def get(self, i: int) -> MultiCategory:
        o = self.items[i]
        if self.one_hot:
            t = torch.as_tensor(np.asarray(o, dtype=np.float32))
            return MultiCategory(t, [self.classes[k] for k in np.flatnonzero(np.asarray(o))], o)
        t = torch.zeros(self.c)
        t[torch.as_tensor(np.asarray(o, dtype=np.int64))] = 1.
        return MultiCategory(t, [self.classes[k] for k in o], o)

    def analyze_pred(self, pred: Tensor, thresh: float = 0.5) -> Tensor:
        "Which classes the probabilities `pred` exceed `thresh` for, as a 0/1 float tensor."
        return (pred >= thresh).float()

    def reconstruct(self, t: Tensor, x: Any = None) -> MultiCategory:
        raw = [i for i in range(self.c) if t[i] == 1.]
        return MultiCategory(t, [self.classes[i] for i in raw], raw)


class FloatList(ItemList):
    "Regression targets (one number or several per item), trained with mean squared error; `log` takes their log."

    def __init__(self, items: Iterable, log: bool = False, classes: Sequence | None = None, **kwargs: Any):
        items = np.asarray(list(items) if not isinstance(items, np.ndarray) else items)
        try:
            items = items.astype(np.float32)
        except (TypeError, ValueError):
            bad = [_plain(o) for o in items.reshape(-1)[:1000] if not _is_number(o)][:5]
            raise ValueError(f"Regression targets must be numbers; found {bad}. Convert or drop them.") from None
        bad = ~np.isfinite(items.reshape(len(items), -1)).all(1) if items.size else np.zeros(0, bool)
        if bad.any():   # one inf or NaN target makes the loss, and so every weight, NaN
            raise ValueError(f"{int(bad.sum())} regression target(s) are infinite or NaN, e.g. at positions "
                             f"{np.flatnonzero(bad)[:5].tolist()}: {items[bad][:3].tolist()}. Drop or fix "
                             f"those rows (or clip the values) before labelling.")
        if log:
            if (items <= 0).any():
                raise ValueError("FloatList(log=True) needs positive targets; some are <= 0.")
            items = np.log(items)
        super().__init__(items, **kwargs)
        self.log, self.classes = log, classes
        self.copy_new.append('log')
        self.c = self.items.shape[1] if self.items.ndim > 1 else 1
        self.loss_func = MSELossFlat()

    def get(self, i: int) -> FloatItem:
        return FloatItem(self.items[i])

    def reconstruct(self, t: Any, x: Any = None) -> FloatItem:
        return FloatItem(t.numpy() if isinstance(t, Tensor) else t)


def _is_number(o: Any) -> bool:
    try:
        float(o)
    except (TypeError, ValueError):
        return False
    return True


class ItemLists:
    "The training and validation item lists of a split, not yet labelled."

    def __init__(self, path: PathOrStr, train: ItemList, valid: ItemList):
        self.path, self.train, self.valid, self.test = Path(path), train, valid, None
        if not getattr(train, 'ignore_empty', False) and len(train) == 0:
            warnings.warn("The training set is empty: check the split (and the folder names it uses).")

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _register_fastlib_class(cls)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__};\n\nTrain: {self.train};\n\nValid: {self.valid};\n\nTest: {self.test}'

    @property
    def lists(self) -> list:
        "The training, validation and (when there is one) test lists."
        return [self.train, self.valid] + ([self.test] if self.test is not None else [])

    def _label(self, method: str, *args: Any, **kwargs: Any) -> LabelLists:
        "Label the training and the validation list with `method`, the validation list like the training one."
        train = getattr(self.train, method)(*args, from_item_lists=True, **kwargs)
        valid_kwargs = {**kwargs, 'label_cls': type(train.y)}
        valid = getattr(self.valid, method)(*args, from_item_lists=True, **valid_kwargs)
        return LabelLists(self.path, train, valid).process()

    def label_from_df(self, cols: int | str | Sequence = 1, label_cls: type | None = None, **kwargs: Any) -> LabelLists:
        "Label with the column(s) `cols` of the DataFrame (see `ItemList.label_from_df`)."
        return self._label('label_from_df', cols, label_cls=label_cls, **kwargs)

    def label_const(self, const: Any = 0, label_cls: type | None = None, **kwargs: Any) -> LabelLists:
        "Label every item with `const`."
        return self._label('label_const', const, label_cls=label_cls, **kwargs)

    def label_empty(self, **kwargs: Any) -> LabelLists:
        "No labels."
        return self._label('label_empty', **kwargs)

    def label_from_func(self, func: Callable, label_cls: type | None = None, **kwargs: Any) -> LabelLists:
        "Label each item with `func(item)`."
        return self._label('label_from_func', func, label_cls=label_cls, **kwargs)

    def label_from_folder(self, label_cls: type | None = None, **kwargs: Any) -> LabelLists:
        "Label each file with the name of its folder."
        return self._label('label_from_folder', label_cls=label_cls, **kwargs)

    def label_from_re(self, pat: str, full_path: bool = False, label_cls: type | None = None,
                      **kwargs: Any) -> LabelLists:
        "Label each file with the first group of `pat` matched on its name (or full path)."
        return self._label('label_from_re', pat, full_path=full_path, label_cls=label_cls, **kwargs)

    def label_from_lists(self, train_labels: Iterable, valid_labels: Iterable, label_cls: type | None = None,
                         **kwargs: Any) -> LabelLists:
        "Label the training items with `train_labels` and the validation items with `valid_labels`."
        train = self.train._label_from_list(train_labels, label_cls=label_cls, from_item_lists=True, **kwargs)
        valid = self.valid._label_from_list(valid_labels, label_cls=type(train.y), from_item_lists=True, **kwargs)
        return LabelLists(self.path, train, valid).process()

    def filter_by_func(self, func: Callable) -> ItemLists:
        "Keep only the items for which `func(item)` is True, in every list."
        for lst in self.lists:
            lst.filter_by_func(func)
        return self

    def transform(self, tfms: Any = (None, None), **kwargs: Any) -> Any:
        raise RuntimeError("Label the data before transforming it (e.g. `label_from_folder()`, or `label_empty()` "
                           "for unlabelled data).")

    def transform_y(self, tfms: Any = (None, None), **kwargs: Any) -> Any:
        raise RuntimeError("Label the data before transforming its targets (e.g. `label_from_folder()`).")

    def databunch(self, **kwargs: Any) -> Any:
        raise RuntimeError("Label the data before making a DataBunch (e.g. `label_from_folder()`, or `label_empty()` "
                           "for unlabelled data).")


class LabelLists(ItemLists):
    "The labelled training, validation (and test) datasets: transform them, add a test set, make a DataBunch."

    @property
    def x(self) -> ItemList:
        return self.train.x

    @property
    def y(self) -> ItemList:
        return self.train.y

    def get_processors(self) -> tuple[list, list]:
        "The x and y processors, created from (and fitted on) the training set unless the lists already have them."
        procs_x, procs_y = listify(self.train.x._processor), listify(self.train.y._processor)
        xp = ifnone(self.train.x.processor, [p(ds=self.train.x) for p in procs_x])
        yp = ifnone(self.train.y.processor, [p(ds=self.train.y) for p in procs_y])
        return xp, yp

    def process(self) -> LabelLists:
        "Process every list with the processors fitted on the training set."
        xp, yp = self.get_processors()
        for ds, name in zip(self.lists, ('training', 'validation', 'test')):
            ds.process(xp, yp, name=name)
        return self

    def filter_by_func(self, func: Callable) -> LabelLists:
        "Remove the items for which `func(x, y)` is True (`x` a raw input, `y` its label), in every list."
        for ds in self.lists:
            ds.filter_by_func(func)
        return self

    def transform(self, tfms: Any = (None, None), **kwargs: Any) -> LabelLists:
        "Apply `tfms[0]` to the training set and `tfms[1]` to the validation and test sets; `kwargs` go to both."
        if not tfms:
            tfms = (None, None)
        if not (is_listy(tfms) and len(tfms) == 2):
            raise ValueError("transform takes a pair (train_tfms, valid_tfms), as get_transforms() returns.")
        self.train.transform(tfms[0], **kwargs)
        self.valid.transform(tfms[1], **kwargs)
        if self.test is not None:
            self.test.transform(tfms[1], **kwargs)
        return self

    def transform_y(self, tfms: Any = (None, None), **kwargs: Any) -> LabelLists:
        "Apply `tfms` (a pair, as in `transform`) to the targets too."
        if not tfms:
            tfms = (None, None)
        self.train.transform_y(tfms[0], **kwargs)
        self.valid.transform_y(tfms[1], **kwargs)
        if self.test is not None:
            self.test.transform_y(tfms[1], **kwargs)
        return self

    def databunch(self, path: PathOrStr | None = None, bs: int = 64, val_bs: int | None = None,
                  num_workers: int | None = None, dl_tfms: Collection[Callable] | None = None,
                  device: torch.device | None = None, collate_fn: Callable = data_collate, no_check: bool = False,
                  **kwargs: Any) -> DataBunch:
        "A DataBunch of the lists (of the class the items ask for: `x._bunch`), `bs` items per batch."
        path = Path(ifnone(path, self.path))
        num_workers = ifnone(num_workers, defaults.cpus)
        data = self.x._bunch.create(self.train, self.valid, test_ds=self.test, path=path, bs=bs, val_bs=val_bs,
                                    num_workers=num_workers, dl_tfms=dl_tfms, device=device, collate_fn=collate_fn,
                                    no_check=no_check, **kwargs)
        data.label_list = self
        return data

    def add_test(self, items: Iterable | ItemList, label: Any = None, tfms: Any = None,
                 tfm_y: bool | None = None) -> LabelLists:
        "Add a test set of `items` (raw items or an ItemList), labelled `label` when given (else unlabelled)."
        self.test = self.valid.test_set(items, label=label, tfms=tfms, tfm_y=tfm_y)
        return self

    def add_test_folder(self, test_folder: str = 'test', label: Any = None, tfms: Any = None,
                        tfm_y: bool | None = None) -> LabelLists:
        "Add the files of the folder `path/test_folder` as the test set."
        items = self.x.__class__.from_folder(self.path / test_folder)
        return self.add_test(items.items, label=label, tfms=tfms, tfm_y=tfm_y)

    @classmethod
    def load_state(cls, path: PathOrStr, state: dict) -> LabelLists:
        """Training and validation lists with no items that process new ones as the saved ones did (`state`: what
        `LabelList.get_state` or a DataBunch's `export_state` gives)."""
        train = LabelList.load_state(path, state)
        train.ignore_empty = True   # empty on purpose: no warning about the split
        return cls(path, train, LabelList.load_state(path, copy.deepcopy(state)))

    @classmethod
    def load_empty(cls, path: PathOrStr, fn: PathOrStr = 'export.pkl') -> LabelLists:
        "The empty lists of the file `path/fn` written by `learn.export()` or `LabelList.export` (no code runs)."
        from .serialization import safe_load
        state = safe_load(Path(path) / fn, what='exported file')
        state = state.get('data', state) if isinstance(state, dict) else state
        if not (isinstance(state, dict) and 'ds' in state):
            raise ValueError(f"{Path(path) / fn} holds no data block dataset (it was exported from a DataBunch of "
                             f"plain datasets): LabelLists.load_empty needs a file from a data block DataBunch.")
        return cls.load_state(path, state)


class LabelList(Dataset):
    "A dataset of inputs `x` and targets `y` (item lists), with the transforms `tfms` applied to the inputs."

    def __init__(self, x: ItemList, y: ItemList, tfms: Any = None, tfm_y: bool = False, **kwargs: Any):
        self.x, self.y, self.tfm_y = x, y, tfm_y
        self.y.x = x
        self.item = None
        self.transform(tfms, **kwargs)

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        _register_fastlib_class(cls)

    def __len__(self) -> int:
        return len(self.x) if self.item is None else 1

    def __repr__(self) -> str:
        items = [self[i] for i in range(min(5, len(self.x)))] if self.item is None else []
        shown = ','.join(f'({x},{y})' for x, y in items)
        return (f'{self.__class__.__name__} ({len(self.x)} items)\nx: {self.x.__class__.__name__}\n'
                f'y: {self.y.__class__.__name__}\n{shown}\nPath: {self.path}')

    @property
    def path(self) -> Path:
        return self.x.path

    @property
    def items(self) -> np.ndarray:
        return self.x.items

    @property
    def c(self) -> int | None:
        return getattr(self.y, 'c', None)

    @property
    def classes(self) -> list | None:
        return getattr(self.y, 'classes', None)

    @property
    def loss_func(self) -> Callable | None:
        return getattr(self.y, 'loss_func', None)

    @contextlib.contextmanager
    def set_item(self, item: Any) -> Iterator[None]:
        "For the `with` block, the dataset holds just `item` (processed like the inputs): used by `predict`."
        self.item = self.x.process_one(item)
        try:
            yield None
        finally:
            self.item = None

    def predict(self, res: Tensor) -> Any:
        "The target decoded from the model output `res` for one item."
        pred = self.y.analyze_pred(res)
        return self.y.reconstruct(pred, self.x) if 'x' in _params(self.y.reconstruct) else self.y.reconstruct(pred)

    def new(self, x: ItemList, y: ItemList, tfms: Any = None, tfm_y: bool | None = None, **kwargs: Any) -> LabelList:
        "A LabelList of `x` and `y` with this one's transforms (unless given)."
        tfms, tfm_y = ifnone(tfms, self.tfms), ifnone(tfm_y, self.tfm_y)
        res = self.__class__(x, y, tfms=tfms, tfm_y=tfm_y, **{**self.tfmargs, **kwargs})
        if self.tfm_y and hasattr(self, 'tfms_y') and tfm_y == self.tfm_y:
            res.tfms_y, res.tfmargs_y = self.tfms_y, self.tfmargs_y
        return res

    def test_set(self, items: Iterable | ItemList, label: Any = None, tfms: Any = None,
                 tfm_y: bool | None = None) -> LabelList:
        "A test set of `items` (raw items or an ItemList) processed like this one, labelled `label` or unlabelled."
        if isinstance(items, LabelList):
            items = items.x
        raw = items.items if isinstance(items, ItemList) else items
        inner_df = items.inner_df if isinstance(items, ItemList) else None
        x = self.x.new(raw, inner_df=inner_df).process()
        y = EmptyLabelList([0] * len(x)) if label is None else self.y.new([label] * len(x)).process()
        return self.new(x, y, tfms=tfms, tfm_y=tfm_y)

    def empty_copy(self) -> LabelList:
        "A LabelList with no items that processes and transforms new ones as this one does (what `export` keeps)."
        x = self.x.new([])
        return self.new(x, self.y.new([], x=x))

    def __getitem__(self, idxs: int | np.ndarray | slice) -> Any:
        "The pair (input, target) at index `idxs` with the transforms applied, or a new LabelList of several."
        if not isinstance(idxs, (Integral, np.integer)):
            return self.new(self.x[idxs], self.y[idxs])
        if self.item is None:
            x, y = self.x[idxs], self.y[idxs]
        else:
            x, y = self.item, EmptyLabel()
        if self.tfms or self.tfmargs:
            x = x.apply_tfms(self.tfms, **self.tfmargs)
        if self.tfm_y and self.item is None and hasattr(self, 'tfms_y'):
            y = y.apply_tfms(self.tfms_y, **{**self.tfmargs_y, 'do_resolve': False})
        return x, y

    def to_df(self) -> pd.DataFrame:
        "The inputs and targets as a DataFrame (their text forms)."
        return pd.DataFrame({'x': [str(o) for o in self.x.items], 'y': [str(self.y[i]) for i in range(len(self.y))]})

    def to_csv(self, dest: str) -> None:
        "Save `to_df()` to `path/dest` (atomically)."
        with atomic_write(self.path / dest, 'w') as f:
            self.to_df().to_csv(f, index=False)

    def get_state(self, **kwargs: Any) -> dict:
        "What `load_state` needs to rebuild this dataset without its items: see `empty_copy`."
        return {'ds': self.empty_copy(), **kwargs}

    def export(self, fn: PathOrStr, **kwargs: Any) -> None:
        "Save the state (processors, classes, transforms; no items) to `path/fn`, atomically."
        from .serialization import atomic_save
        atomic_save(self.get_state(**kwargs), self.path / fn)

    @classmethod
    def load_empty(cls, path: PathOrStr, fn: PathOrStr) -> LabelList:
        "The empty dataset saved by `export` to `path/fn` (no code from the file runs)."
        from .serialization import safe_load
        return cls.load_state(path, safe_load(Path(path) / fn, what='exported dataset'))

    @classmethod
    def load_state(cls, path: PathOrStr, state: dict) -> LabelList:
        "The empty dataset of `state` (from `get_state`), with its path set to `path`."
        ds = state['ds']
        ds.x.path = ds.y.path = Path(path)
        return ds

    def process(self, xp: Any = None, yp: Any = None, name: str | None = None, max_warn_items: int = 5) -> LabelList:
        "Process the targets with `yp` and the inputs with `xp` (the processors fitted on the training set)."
        try:
            self.y.process(yp)
        except ValueError as e:
            raise ValueError(f"In the {name or 'given'} set: {e}") from None
        self.x.process(xp)
        return self

    def filter_by_func(self, func: Callable) -> LabelList:
        "Remove the items for which `func(x, y)` is True (`x` a raw input, `y` its label as a person reads it)."
        labels = [getattr(y, 'obj', y) for y in (self.y[i] for i in range(len(self.y)))]
        drop = np.array([bool(func(x, y)) for x, y in zip(self.x.items, labels)], dtype=bool)
        self.x, self.y = self.x[~drop], self.y[~drop]
        self.y.x = self.x
        return self

    def transform(self, tfms: Any, tfm_y: bool | None = None, **kwargs: Any) -> LabelList:
        "Apply `tfms` to the inputs (and to the targets when `tfm_y`), with `kwargs` such as `size`."
        self.tfms, self.tfmargs = tfms, kwargs
        if tfm_y is None:
            tfm_y = self.tfm_y
        self.tfm_y = tfm_y
        if tfm_y:
            # Transforms that only make sense on inputs (lighting, say) declare `use_on_y = False`.
            self.tfms_y = None if tfms is None else [t for t in listify(tfms) if getattr(t, 'use_on_y', True)]
            self.tfmargs_y = dict(kwargs)
        if (tfms or kwargs) and self.item is None:
            self._check_tfms()
        return self

    def transform_y(self, tfms: Any = None, **kwargs: Any) -> LabelList:
        "Apply `tfms` (default the inputs' transforms) to the targets, with `kwargs` added to the inputs' ones."
        self.tfm_y = True
        self.tfms_y = self.tfms if tfms is None else tfms
        self.tfmargs_y = {**self.tfmargs, **kwargs}
        return self

    def databunch(self, **kwargs: Any) -> Any:
        raise RuntimeError("A LabelList is one dataset: call `.databunch()` on the LabelLists that holds the training "
                           "and validation sets (`.split_...().label_...().databunch()`), or pass both LabelLists "
                           "to `DataBunch.create(train_ds, valid_ds)`.")

    def _check_tfms(self) -> None:
        "Transform the first few items now, so that a wrong transform fails here rather than in a worker."
        for i in range(min(3, len(self.x))):
            try:
                self[i]
            except Exception as e:
                raise type(e)(f"The transforms cannot be applied to item {i} ({self.x.items[i]}): {e}") from e


def _params(f: Callable) -> Collection[str]:
    import inspect
    try:
        return inspect.signature(f).parameters
    except (TypeError, ValueError):
        return ()


class MixedProcessor(PreProcessor):
    "The processors of several item lists, one per list, for `MixedItemList`."

    def __init__(self, procs: Sequence):
        self.procs = procs

    def process_one(self, item: Sequence) -> list:
        res = []
        for procs, it in zip(self.procs, item):
            for p in listify(procs):
                it = p.process_one(it)
            res.append(it)
        return res

    def process(self, ds: MixedItemList) -> None:
        for procs, lst in zip(self.procs, ds.item_lists):
            lst.process(procs)


class MixedItem(ItemBase):
    "Several items (e.g. an image and a row of a table) that make one input."

    def __init__(self, items: Sequence[ItemBase]):
        self.obj = items
        self.data = [o.data for o in items]

    def apply_tfms(self, tfms: Sequence, **kwargs: Any) -> MixedItem:
        "Apply `tfms[i]` to the i-th item."
        self.obj = [o.apply_tfms(t, **kwargs) if t else o for o, t in zip(self.obj, listify(tfms, self.obj))]
        self.data = [o.data for o in self.obj]
        return self


class MixedItemList(ItemList):
    "Several item lists of the same length whose i-th items make one input."

    def __init__(self, item_lists: Sequence[ItemList], path: PathOrStr | None = None, label_cls: type | None = None,
                 inner_df: pd.DataFrame | None = None, x: ItemList | None = None, ignore_empty: bool = False,
                 processor: Any = None):
        lengths = {len(o) for o in item_lists}
        if len(lengths) > 1:
            raise ValueError(f"MixedItemList needs lists of the same length, got lengths {sorted(lengths)}.")
        self.item_lists = list(item_lists)
        if processor is None:
            processor = MixedProcessor([ifnone(o.processor, listify(o._processor and o._processor(ds=o)))
                                        for o in self.item_lists])
        path = ifnone(path, self.item_lists[0].path)
        super().__init__(np.arange(len(self.item_lists[0])), path=path, label_cls=label_cls, inner_df=inner_df,
                         processor=processor, x=x, ignore_empty=ignore_empty)

    def new(self, item_lists: Sequence[ItemList] | np.ndarray, processor: Any = None, **kwargs: Any) -> MixedItemList:
        "A MixedItemList of `item_lists` (or, given indices, of these lists' items at those indices)."
        if isinstance(item_lists, np.ndarray) or not all(isinstance(o, ItemList) for o in item_lists):
            idxs = np.asarray(item_lists, dtype=np.int64)
            item_lists = [o[idxs] for o in self.item_lists]
        kwargs.pop('inner_df', None)
        return self.__class__(item_lists, processor=ifnone(processor, self.processor), path=self.path, **kwargs)

    def get(self, i: int) -> MixedItem:
        return MixedItem([o.get(i) for o in self.item_lists])


register_safe_globals(ItemBase, PreProcessor, ItemList, ItemLists, LabelList)
