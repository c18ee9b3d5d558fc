"""Preparing DataFrames for tabular models: date features, column splits and the procs.

A proc (`FillMissing`, `Categorify`, `Normalize`) is fitted on the training DataFrame with `apply_train`
and then applied unchanged to the validation and test DataFrames and to single rows with `apply_test`.
Each proc keeps its fitted state as plain Python data (lists, dicts, floats), so an exported learner
holds no pandas object.
"""
from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import numpy as np
import pandas as pd

from ..core import ifnone, listify
from ..serialization import register_safe_globals

__all__ = ['make_date', 'add_datepart', 'add_cyclic_datepart', 'add_elapsed_times', 'cont_cat_split',
           'TabularProc', 'FillStrategy', 'FillMissing', 'Categorify', 'Normalize']


# --- Dates ---------------------------------------------------------------------------------------------------

def make_date(df: pd.DataFrame, date_field: str) -> None:
    "Make the column `date_field` of `df` a datetime column, in place."
    field = df[date_field]
    if isinstance(field.dtype, pd.DatetimeTZDtype):
        field = field.dt.tz_localize(None)  # the features below are wall-clock ones
    if not pd.api.types.is_datetime64_any_dtype(field.dtype):
        field = pd.to_datetime(field)
    df[date_field] = field


def _date_prefix(field_name: str, prefix: str | None) -> str:
    # 'saledate' -> 'sale', 'Date' -> '' (fastai's convention for the new columns' names)
    return ifnone(prefix, re.sub('[Dd]ate$', '', field_name))


def _elapsed_seconds(field: pd.Series) -> pd.Series:
    # Seconds since 1970-01-01 whatever the column's resolution (pandas 3 may store 'us' rather than 'ns').
    return (field - pd.Timestamp(0)) / pd.Timedelta(seconds=1)


def add_datepart(df: pd.DataFrame, field_name: str, prefix: str | None = None, drop: bool = True,
                 time: bool = False) -> pd.DataFrame:
    "Add the date features of column `field_name` (Year, Month, ..., Elapsed) named with `prefix`; `drop` the column; `time` adds Hour/Minute/Second."
    make_date(df, field_name)
    field = df[field_name]
    prefix = _date_prefix(field_name, prefix)
    parts = {'Year': field.dt.year, 'Month': field.dt.month, 'Week': field.dt.isocalendar().week.astype('Int64'),
             'Day': field.dt.day, 'Dayofweek': field.dt.day_of_week, 'Dayofyear': field.dt.day_of_year}
    for attr in ('is_month_end', 'is_month_start', 'is_quarter_end', 'is_quarter_start', 'is_year_end',
                 'is_year_start'):
        parts[attr.capitalize()] = getattr(field.dt, attr)
    if time:
        parts.update(Hour=field.dt.hour, Minute=field.dt.minute, Second=field.dt.second)
    parts['Elapsed'] = _elapsed_seconds(field)
    for name, values in parts.items():
        df[prefix + name] = values
    if drop:
        del df[field_name]
    return df


def add_cyclic_datepart(df: pd.DataFrame, field_name: str, prefix: str | None = None, drop: bool = True,
                        time: bool = False, add_linear: bool = False) -> pd.DataFrame:
    """Add cos/sin features of the position of `field_name` in its week, month and year (and day, with `time`).

    Each period gives `{prefix}{period}_cos` and `_sin` of 2*pi*fraction; `add_linear` also adds the fraction
    itself as `{prefix}{period}_lin`. The periods are weekday, day_month, month_year, day_year, and with
    `time` hour_day, clock_hour (minutes in the hour), min_sec (seconds in the minute).
    """
    make_date(df, field_name)
    field = df[field_name]
    prefix = _date_prefix(field_name, prefix)
    days_in_year = np.where(field.dt.is_leap_year, 366, 365)
    fractions = {'weekday': field.dt.day_of_week / 7,
                 'day_month': (field.dt.day - 1) / field.dt.days_in_month,
                 'month_year': (field.dt.month - 1) / 12,
                 'day_year': (field.dt.day_of_year - 1) / days_in_year}
    if time:
        fractions.update(hour_day=(field.dt.hour + field.dt.minute / 60) / 24,
                         clock_hour=(field.dt.minute + field.dt.second / 60) / 60,
                         min_sec=field.dt.second / 60)
    for name, frac in fractions.items():
        frac = pd.Series(np.asarray(frac, dtype=float), index=df.index)
        df[f'{prefix}{name}_cos'] = np.cos(2 * np.pi * frac)
        df[f'{prefix}{name}_sin'] = np.sin(2 * np.pi * frac)
        if add_linear:
            df[f'{prefix}{name}_lin'] = frac
    if drop:
        del df[field_name]
    return df


def add_elapsed_times(df: pd.DataFrame, field_names: str | Sequence[str], date_field: str,
                      base_field: str) -> pd.DataFrame:
    """For each event column of `field_names`: days since the last event (`After{f}`), days to the next
    (`Before{f}`, zero or negative), and event counts over the 7 rows before (`{f}_bw`) and after (`{f}_fw`),
    each computed within the groups of `base_field` in the order of `date_field`. Returns a new DataFrame.
    """
    field_names = listify(field_names)
    df = df.copy()
    make_date(df, date_field)
    for f in field_names:
        df[f] = df[f].astype(bool)
    order = df.sort_values([base_field, date_field], kind='stable').index
    work = df.loc[order, [base_field, date_field, *field_names]]
    groups = work[base_field]
    for f in field_names:
        event_dates = work[date_field].where(work[f])
        last = event_dates.groupby(groups).ffill()
        nxt = event_dates.groupby(groups).bfill()
        work[f'After{f}'] = ((work[date_field] - last).dt.days).fillna(0).astype(int)
        work[f'Before{f}'] = ((work[date_field] - nxt).dt.days).fillna(0).astype(int)
        as_float = work[f].astype(float)
        work[f'{f}_bw'] = as_float.groupby(groups).transform(lambda s: s.rolling(7, min_periods=1).sum())
        # The forward window: the same rolling sum on the reversed group.
        work[f'{f}_fw'] = as_float.groupby(groups).transform(lambda s: s[::-1].rolling(7, min_periods=1).sum()[::-1])
    new_cols = [c for c in work.columns if c not in (base_field, date_field, *field_names)]
    for c in new_cols:
        df[c] = work[c].reindex(df.index)
    return df


def cont_cat_split(df: pd.DataFrame, max_card: int = 20, dep_var: str | None = None) -> tuple[list, list]:
    "Split the columns of `df` (but `dep_var`) into continuous (floats, and integers with more than `max_card` values) and categorical names."
    cont_names, cat_names = [], []
    for name in df.columns:
        if name == dep_var:
            continue
        col = df[name]
        is_float = pd.api.types.is_float_dtype(col.dtype)
        is_int = pd.api.types.is_integer_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype)
        if is_float or (is_int and col.nunique() > max_card):
            cont_names.append(name)
        else:
            cat_names.append(name)
    return cont_names, cat_names


# --- Procs ---------------------------------------------------------------------------------------------------

def _plain(v: Any) -> Any:
    "A numpy scalar as the Python value it holds (exported state must be plain data)."
    return v.item() if isinstance(v, np.generic) else v


@register_safe_globals
class TabularProc:
    "A transformation of the columns `cat_names` and `cont_names` of a DataFrame, fitted on the training set."

    def __init__(self, cat_names: Sequence[str], cont_names: Sequence[str]):
        self.cat_names, self.cont_names = list(cat_names), list(cont_names)

    def __call__(self, df: pd.DataFrame, test: bool = False) -> None:
        "Apply to `df` in place: fit on it (training set), or with `test` apply the fitted state."
        if test:
            self.apply_test(df)
        else:
            self.apply_train(df)

    def apply_train(self, df: pd.DataFrame) -> None:
        "Fit on the training DataFrame `df` and transform it in place."
        raise NotImplementedError

    def apply_test(self, df: pd.DataFrame) -> None:
        "Transform `df` in place as the training set was (default: the same as `apply_train`)."
        self.apply_train(df)

    def __repr__(self) -> str:
        return f'{type(self).__name__}(cat_names={self.cat_names}, cont_names={self.cont_names})'


@register_safe_globals
class FillStrategy(IntEnum):
    "How FillMissing fills: with the training MEDIAN, the most COMMON value, or a CONSTANT `fill_val`."
    MEDIAN = 1
    COMMON = 2
    CONSTANT = 3


@register_safe_globals
class FillMissing(TabularProc):
    """Fill the missing values of the continuous columns with `fill_strategy` (fitted on the training set).

    With `add_col`, each column that had missing values in training gets a boolean `{name}_na` column, added to
    `cat_names`. A column with no missing values in training but some later is filled with its training
    median (with a warning), since the model has no `_na` column for it.
    """

    def __init__(self, cat_names: Sequence[str], cont_names: Sequence[str],
                 fill_strategy: FillStrategy = FillStrategy.MEDIAN, add_col: bool = True, fill_val: float = 0.):
        super().__init__(cat_names, cont_names)
        self.fill_strategy, self.add_col, self.fill_val = FillStrategy(fill_strategy), add_col, fill_val
        self.na_dict: dict = {}       # column -> fill value, for the columns with missing values in training
        self.medians: dict = {}       # column -> training median, the fallback for the other columns

    def __getstate__(self) -> dict:
        # Exported state is plain data: the strategy as its number.
        return {**self.__dict__, 'fill_strategy': int(self.fill_strategy)}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.fill_strategy = FillStrategy(self.fill_strategy)

    def _filler(self, col: pd.Series) -> Any:
        if self.fill_strategy == FillStrategy.MEDIAN:
            return float(col.median())
        if self.fill_strategy == FillStrategy.COMMON:
            return _plain(col.dropna().value_counts().idxmax())
        return self.fill_val

    def apply_train(self, df: pd.DataFrame) -> None:
        "Fit the fill values on the training DataFrame `df` and fill it in place."
        for name in self.cont_names:
            missing = df[name].isna()
            self.medians[name] = float(df[name].median()) if not missing.all() else float(self.fill_val)
            if not missing.any():
                continue
            if missing.all() and self.fill_strategy != FillStrategy.CONSTANT:
                raise ValueError(f"FillMissing: the continuous column {name!r} has no values in the training set, "
                                 f"so there is no {self.fill_strategy.name.lower()} to fill with. Drop the column "
                                 f"or use fill_strategy=FillStrategy.CONSTANT.")
            self.na_dict[name] = self._filler(df[name])
            self._fill(df, name, missing, self.na_dict[name])
            if self.add_col and f'{name}_na' not in self.cat_names:
                self.cat_names.append(f'{name}_na')

    def _fill(self, df: pd.DataFrame, name: str, missing: pd.Series, value: Any) -> None:
        if self.add_col:
            df[f'{name}_na'] = missing
        df[name] = df[name].fillna(value)

    def apply_test(self, df: pd.DataFrame) -> None:
        "Fill the missing values of `df` in place with the values fitted on the training set."
        for name in self.cont_names:
            missing = df[name].isna()
            if name in self.na_dict:
                self._fill(df, name, missing, self.na_dict[name])
            elif missing.any():
                warnings.warn(f"FillMissing: the continuous column {name!r} has {int(missing.sum())} missing "
                              f"value(s) but had none in the training set; they are filled with the training "
                              f"median {self.medians[name]!r}.")
                df[name] = df[name].fillna(self.medians[name])


@register_safe_globals
class Categorify(TabularProc):
    """Make the categorical columns pandas categoricals with the (ordered) categories of the training set.

    Code 0 is kept for missing values ('#na#'); a value unseen in training is treated as missing, with a warning.
    """

    def __init__(self, cat_names: Sequence[str], cont_names: Sequence[str]):
        super().__init__(cat_names, cont_names)
        self.categories: dict = {}    # column -> list of its training values, in sorted order

    def apply_train(self, df: pd.DataFrame) -> None:
        "Fit the categories of each categorical column on the training DataFrame `df` and apply them in place."
        for name in self.cat_names:
            col = df[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                cats = col.cat.categories  # keep the user's own category order
            else:
                cats = pd.Categorical(col.dropna().unique()).categories
            self.categories[name] = [_plain(c) for c in cats.tolist()]
            df[name] = pd.Categorical(col, categories=self.categories[name], ordered=True)

    def apply_test(self, df: pd.DataFrame) -> None:
        "Apply the training categories to `df` in place; values unseen in training become missing (code 0)."
        for name in self.cat_names:
            col = df[name]
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.astype(object)
            known = col.isin(self.categories[name]).to_numpy()
            unseen = col.notna().to_numpy() & ~known
            # Unseen values are made missing first (pandas will not build a Categorical holding them).
            new = pd.Categorical(col.where(known), categories=self.categories[name], ordered=True)
            if unseen.any():
                examples = list(dict.fromkeys(col[unseen].tolist()))[:5]
                warnings.warn(f"Categorify: {int(unseen.sum())} value(s) of the column {name!r} were not seen in "
                              f"training (e.g. {', '.join(repr(e) for e in examples)}); they are treated as "
                              f"missing ('#na#', code 0).")
            df[name] = new

    @property
    def classes(self) -> dict:
        "Column -> ['#na#', *training categories]: the values of codes 0, 1, 2, ..."
        return {name: ['#na#'] + cats for name, cats in self.categories.items()}


@register_safe_globals
class Normalize(TabularProc):
    "Normalize the continuous columns with the mean and standard deviation of the training set."

    def __init__(self, cat_names: Sequence[str], cont_names: Sequence[str]):
        super().__init__(cat_names, cont_names)
        self.means: dict = {}
        self.stds: dict = {}

    def apply_train(self, df: pd.DataFrame) -> None:
        "Fit the means and standard deviations on the training DataFrame `df` and normalize it in place."
        for name in self.cont_names:
            col = df[name].astype(float)
            self.means[name] = float(col.mean())
            std = float(col.std())
            self.stds[name] = 0. if math.isnan(std) else std  # one row: std is NaN
        self.apply_test(df)

    def apply_test(self, df: pd.DataFrame) -> None:
        "Normalize `df` in place with the training statistics."
        for name in self.cont_names:
            # 1e-7: a constant column has std 0 (fastai's epsilon)
            df[name] = (df[name].astype(float) - self.means[name]) / (1e-7 + self.stds[name])
