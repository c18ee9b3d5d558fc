"""tabular_learner: a Learner with a TabularModel sized for a TabularDataBunch."""
from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from ..basic_data import DataBunch
from ..basic_train import Learner
from ..core import ifnone
from .models import TabularModel

__all__ = ['tabular_learner']


def tabular_learner(data: DataBunch, layers: Sequence[int], emb_szs: dict | None = None,
                    metrics: Collection | None = None, ps: float | Sequence[float] | None = None,
                    emb_drop: float = 0., y_range: Sequence[float] | None = None, use_bn: bool = True,
                    **learn_kwargs: Any) -> Learner:
    "A Learner on `data` with a TabularModel of hidden sizes `layers`, dropouts `ps` and `emb_drop`, `y_range`, `use_bn`; `emb_szs` maps column names to embedding sizes."
    emb_szs = data.get_emb_szs(ifnone(emb_szs, {}))
    model = TabularModel(emb_szs, len(data.cont_names), out_sz=data.c, layers=layers, ps=ps, emb_drop=emb_drop,
                         y_range=y_range, use_bn=use_bn)
    return Learner(data, model, metrics=metrics, **learn_kwargs)
