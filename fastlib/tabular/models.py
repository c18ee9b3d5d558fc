"""TabularModel: embeddings for the categorical columns, batch norm for the continuous ones, then an MLP."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ..core import ifnone, listify
from ..layers import SigmoidRange, bn_drop_lin, embedding
from ..torch_core import Module

__all__ = ['TabularModel', 'emb_sz_rule', 'def_emb_sz']


def emb_sz_rule(n_cat: int) -> int:
    "fastai's rule of thumb for the embedding size of a variable with `n_cat` categories: min(600, round(1.6 * n_cat**0.56))."
    return min(600, round(1.6 * n_cat ** 0.56))


def def_emb_sz(classes: dict, n: str, sz_dict: dict | None = None) -> tuple[int, int]:
    "(number of categories, embedding size) of column `n` whose categories are `classes[n]`; `sz_dict` overrides the size."
    sz_dict = ifnone(sz_dict, {})
    n_cat = len(classes[n])
    sz = sz_dict.get(n, int(emb_sz_rule(n_cat)))
    return n_cat, sz


class TabularModel(Module):
    """Embeddings of sizes `emb_szs` for the categorical inputs and BatchNorm for `n_cont` continuous ones, then
    linear layers of sizes `layers` (dropout `ps`, BatchNorm if `use_bn`) to `out_sz` outputs.

    `emb_drop` is the dropout on the embeddings; `y_range` squeezes the outputs into (low, high) with a sigmoid;
    `bn_final` adds a BatchNorm on the outputs.
    """

    def __init__(self, emb_szs: Sequence[tuple[int, int]], n_cont: int, out_sz: int, layers: Sequence[int],
                 ps: float | Sequence[float] | None = None, emb_drop: float = 0., y_range: Sequence[float] | None = None,
                 use_bn: bool = True, bn_final: bool = False):
        ps = listify(ifnone(ps, [0.] * len(layers)), len(layers))
        self.embeds = nn.ModuleList([embedding(ni, nf) for ni, nf in emb_szs])
        self.emb_drop = nn.Dropout(emb_drop)
        self.bn_cont = nn.BatchNorm1d(n_cont) if n_cont > 0 else None
        self.n_emb = sum(nf for _, nf in emb_szs)
        self.n_cont, self.y_range = n_cont, y_range
        sizes = self.get_sizes(layers, out_sz)
        actns = [nn.ReLU(inplace=True) for _ in range(len(sizes) - 2)] + [None]
        mods: list[nn.Module] = []
        # No BatchNorm before the first linear layer: its inputs are embeddings and already-normalized columns.
        for i, (n_in, n_out, p, act) in enumerate(zip(sizes[:-1], sizes[1:], [0.] + ps, actns)):
            mods += bn_drop_lin(n_in, n_out, bn=use_bn and i != 0, p=p, actn=act)
        if bn_final:
            mods.append(nn.BatchNorm1d(sizes[-1]))
        if y_range is not None:
            mods.append(SigmoidRange(*y_range))
        self.layers = nn.Sequential(*mods)

    def get_sizes(self, layers: Sequence[int], out_sz: int) -> list[int]:
        "The widths of the linear layers: inputs (embeddings + continuous), then `layers`, then `out_sz`."
        return [self.n_emb + self.n_cont] + list(layers) + [out_sz]

    def forward(self, x_cat: Tensor, x_cont: Tensor | None) -> Tensor:
        parts = []
        if self.n_emb != 0:
            # x_cat (B, n_cat) int64 -> (B, n_emb)
            x = torch.cat([e(x_cat[:, i]) for i, e in enumerate(self.embeds)], 1)
            parts.append(self.emb_drop(x))
        if self.n_cont != 0:
            parts.append(self.bn_cont(x_cont))   # (B, n_cont)
        x = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
        return self.layers(x)
