"""Collaborative-filtering models: dot product with biases, and a neural net on the two embeddings; `pca`."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..core import ifnone
from ..layers import embedding, sigmoid_range
from ..tabular.models import TabularModel
from ..torch_core import Module

__all__ = ['EmbeddingDotBias', 'EmbeddingNN', 'pca']


class EmbeddingDotBias(Module):
    "Rating = dot product of `n_factors`-wide user and item embeddings plus a user and an item bias, squeezed into `y_range` if given."

    def __init__(self, n_factors: int, n_users: int, n_items: int, y_range: Sequence[float] | None = None):
        self.y_range = y_range
        self.u_weight, self.i_weight = embedding(n_users, n_factors), embedding(n_items, n_factors)
        self.u_bias, self.i_bias = embedding(n_users, 1), embedding(n_items, 1)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        # users, items: (B,) codes -> (B,) ratings
        dot = (self.u_weight(users) * self.i_weight(items)).sum(1)
        res = dot + self.u_bias(users).squeeze(-1) + self.i_bias(items).squeeze(-1)
        if self.y_range is None:
            return res
        return sigmoid_range(res, *self.y_range)


class EmbeddingNN(TabularModel):
    "A TabularModel on the user and item embeddings of sizes `emb_szs`, with hidden `layers` (default none), `ps`, `emb_drop`, `y_range`, `use_bn`, `bn_final`."

    def __init__(self, emb_szs: Sequence[tuple[int, int]], layers: Sequence[int] | None = None,
                 ps: float | Sequence[float] | None = None, emb_drop: float = 0.,
                 y_range: Sequence[float] | None = None, use_bn: bool = True, bn_final: bool = False):
        super().__init__(emb_szs, n_cont=0, out_sz=1, layers=ifnone(layers, []), ps=ps, emb_drop=emb_drop,
                         y_range=y_range, use_bn=use_bn, bn_final=bn_final)

    def forward(self, users: Tensor, items: Tensor) -> Tensor:
        # (B,), (B,) -> (B, 2) codes -> (B,) ratings
        return super().forward(torch.stack([users, items], dim=1), None).squeeze(-1)


def pca(x: Tensor, k: int = 2) -> Tensor:
    "The rows of `x` (n, d) projected on its `k` principal axes (after centering): fastai v1's `x.pca(k)`."
    x = x.detach().float()
    centered = x - x.mean(0)
    # Right singular vectors of the centered data = eigenvectors of its covariance, largest variance first.
    _, _, vh = torch.linalg.svd(centered, full_matrices=False)
    return centered @ vh[:k].T
