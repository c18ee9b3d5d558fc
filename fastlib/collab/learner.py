"""collab_learner and CollabLearner (biases and weights of users and items by name)."""
from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from ..basic_data import DataBunch
from ..basic_train import Learner
from ..core import did_you_mean, ifnone
from ..torch_core import tensor
from .models import EmbeddingDotBias, EmbeddingNN

__all__ = ['CollabLearner', 'collab_learner']


class CollabLearner(Learner):
    "A Learner for collaborative filtering: look up the bias and embedding of users or items by their names."

    def _names(self, is_item: bool) -> tuple[str, list]:
        x = self.data.train_ds.x
        col = x.cat_names[1 if is_item else 0]
        return col, x.classes[col]

    def get_idx(self, arr: Collection, is_item: bool = True) -> Tensor:
        "The embedding indices of the items (or users, `is_item=False`) named in `arr`."
        col, classes = self._names(is_item)
        c2i = {v: k for k, v in enumerate(classes)}
        names = [o.item() if isinstance(o, np.generic) else o for o in arr]
        unknown = [o for o in names if o not in c2i or o == '#na#']
        if unknown:
            hint = did_you_mean(str(unknown[0]), [str(c) for c in classes[1:]])
            raise ValueError(f"{len(unknown)} value(s) of {col!r} were not in the training data: "
                             f"{unknown[:5]}.{hint} The known ones are learn.data.train_ds.x.classes[{col!r}] "
                             f"(the first, '#na#', stands for any unknown one).")
        return tensor([c2i[o] for o in names]).long().to(self.data.device)

    def bias(self, arr: Collection, is_item: bool = True) -> Tensor:
        "The learnt biases of the items (or users, `is_item=False`) named in `arr`."
        idx = self.get_idx(arr, is_item)
        m = self.model
        if not isinstance(m, EmbeddingDotBias):
            raise TypeError("bias needs an EmbeddingDotBias model (collab_learner(..., use_nn=False)): "
                            f"a {type(m).__name__} has no biases.")
        layer = m.i_bias if is_item else m.u_bias
        return layer(idx).squeeze(-1).detach()   # for analysis: no graph to carry around

    def weight(self, arr: Collection, is_item: bool = True) -> Tensor:
        "The learnt embeddings of the items (or users, `is_item=False`) named in `arr`."
        idx = self.get_idx(arr, is_item)
        m = self.model
        if isinstance(m, EmbeddingDotBias):
            layer = m.i_weight if is_item else m.u_weight
        else:
            layer = m.embeds[1 if is_item else 0]
        return layer(idx).detach()


def collab_learner(data: DataBunch, n_factors: int | None = None, use_nn: bool = False,
                   emb_szs: dict | None = None, layers: Sequence[int] | None = None,
                   ps: float | Sequence[float] | None = None, emb_drop: float = 0.,
                   y_range: Sequence[float] | None = None, use_bn: bool = True, bn_final: bool = False,
                   **learn_kwargs: Any) -> CollabLearner:
    "A CollabLearner on `data`: an EmbeddingDotBias with `n_factors` and `y_range`, or with `use_nn` an EmbeddingNN (`emb_szs`, `layers`, `ps`, `emb_drop`, `use_bn`, `bn_final`)."
    emb_szs = data.get_emb_szs(ifnone(emb_szs, {}))
    users, items = data.train_ds.x.classes.values()
    if use_nn:
        model: nn.Module = EmbeddingNN(emb_szs=emb_szs, layers=layers, ps=ps, emb_drop=emb_drop, y_range=y_range,
                                       use_bn=use_bn, bn_final=bn_final)
    else:
        if n_factors is None:
            raise ValueError("collab_learner needs n_factors (the embedding width, e.g. 40) for the dot-product "
                             "model, or use_nn=True for the neural model.")
        model = EmbeddingDotBias(n_factors, len(users), len(items), y_range=y_range)
    return CollabLearner(data, model, **learn_kwargs)
