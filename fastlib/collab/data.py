"""Ratings as data: CollabList (user and item columns, categorified) and CollabDataBunch."""
from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from ..core import PathOrStr
from ..data_block import FloatList
from ..tabular.data import TabularDataBunch, TabularLine, TabularList, TabularProcessor, _check_columns
from ..tabular.transform import Categorify
from ..torch_core import data_collate

__all__ = ['CollabProcessor', 'CollabLine', 'CollabList', 'CollabDataBunch']


class CollabLine(TabularLine):
    "One (user, item) pair: `data` is [user code, item code], the two inputs of a collaborative-filtering model."

    def __init__(self, cats: Any, conts: Any, classes: dict, names: list):
        super().__init__(cats, conts, classes, names)
        self.data = [self.cats[0], self.cats[1]]


class CollabProcessor(TabularProcessor):
    "A TabularProcessor whose items are CollabLines; `process_one` also takes a (user, item) pair."

    def process_one(self, item: Any) -> CollabLine:
        "Process one (user, item) pair: a pandas Series, a dict, or a tuple (user, item)."
        line = super().process_one(item)
        return CollabLine(line.cats, line.conts, line.classes, line.names)


class CollabDataBunch(TabularDataBunch):
    "A DataBunch of (user, item) -> rating."

    @classmethod
    def from_df(cls, ratings: pd.DataFrame, valid_pct: float = 0.2, user_name: str | None = None,
                item_name: str | None = None, rating_name: str | None = None, test: pd.DataFrame | None = None,
                seed: int | None = None, path: PathOrStr = '.', bs: int = 64, val_bs: int | None = None,
                num_workers: int | None = None, dl_tfms: Collection[Callable] | None = None,
                device: torch.device | None = None, collate_fn: Callable = data_collate,
                no_check: bool = False) -> CollabDataBunch:
        "A CollabDataBunch from `ratings` (default columns: user, item, rating = the first three), a random `valid_pct` split (`seed`) and an optional `test` DataFrame."
        if not isinstance(ratings, pd.DataFrame):
            raise TypeError(f"CollabDataBunch.from_df takes a pandas DataFrame of ratings, not {type(ratings).__name__} "
                            f"(e.g. pd.DataFrame(array, columns=['user', 'item', 'rating'])).")
        if len(ratings) == 0:
            raise ValueError("The ratings DataFrame is empty (0 rows): there is nothing to learn from.")
        if len(ratings.columns) < 3 and None in (user_name, item_name, rating_name):
            raise ValueError(f"The ratings DataFrame needs a user, an item and a rating column; it has "
                             f"{list(ratings.columns)}. Name them with user_name=, item_name=, rating_name=.")
        user_name = user_name if user_name is not None else ratings.columns[0]
        item_name = item_name if item_name is not None else ratings.columns[1]
        rating_name = rating_name if rating_name is not None else ratings.columns[2]
        cat_names = [user_name, item_name]
        _check_columns(ratings, cat_names + [rating_name], 'Rating column(s)')
        src = (CollabList.from_df(ratings, cat_names=cat_names, procs=Categorify, path=path)
               .split_by_rand_pct(valid_pct=valid_pct, seed=seed)
               .label_from_df(cols=rating_name, label_cls=FloatList))
        if test is not None:
            src.add_test(CollabList.from_df(test, cat_names=cat_names))
        return src.databunch(path=path, bs=bs, val_bs=val_bs, num_workers=num_workers, dl_tfms=dl_tfms,
                             device=device, collate_fn=collate_fn, no_check=no_check)


class CollabList(TabularList):
    "The (user, item) pairs of a ratings DataFrame; `cat_names` = [user column, item column]."
    _processor = CollabProcessor
    _bunch = CollabDataBunch

    def get(self, i: int) -> CollabLine:
        "The `i`-th (user, item) pair, as a CollabLine."
        line = super().get(i)
        if not self.preprocessed:
            return line
        return CollabLine(line.cats, line.conts, line.classes, line.names)

    def batch_tensors(self) -> list[Tensor]:
        "[user codes (N,), item codes (N,)]: the two inputs of the model, gathered per batch."
        codes, _ = super().batch_tensors()
        return [codes[:, 0], codes[:, 1]]

    def reconstruct(self, t: Any, x: Any = None) -> CollabLine:
        "The CollabLine of the tensors `t` = [user code, item code] of one pair."
        cats = torch.stack([torch.as_tensor(t[0]), torch.as_tensor(t[1])]).reshape(-1)
        return CollabLine(cats, [], self.classes, self.col_names)
