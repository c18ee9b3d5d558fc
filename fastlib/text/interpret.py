"""Interpretation of a text classifier: intrinsic attention (how much each token moved the prediction) and the
texts with the largest losses."""
from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..basic_data import DatasetType
from ..basic_train import Learner
from ..torch_core import get_model
from ..train import ClassificationInterpretation
from .data import Text

__all__ = ['TextClassificationInterpretation']


def _value2rgba(x: float, cmap: Any, alpha_mult: float = 1.0) -> str:
    c = cmap(float(x))
    return f'rgba({int(c[0] * 255)},{int(c[1] * 255)},{int(c[2] * 255)},{c[3] * alpha_mult:.2f})'


class TextClassificationInterpretation(ClassificationInterpretation):
    "ClassificationInterpretation for text classifiers, with intrinsic attention and the top-loss texts."

    @classmethod
    def from_learner(cls, learn: Learner, ds_type: DatasetType = DatasetType.Valid,
                     activ: Callable | None = None) -> TextClassificationInterpretation:
        "Compute the predictions of `learn` on `ds_type` (in the dataset's order) and interpret them."
        preds, y_true, losses = learn.get_preds(ds_type=ds_type, activ=activ, with_loss=True)
        return cls(learn, preds, y_true, losses, ds_type)

    def intrinsic_attention(self, text: str, class_id: int | None = None) -> tuple[Text, Tensor]:
        """The tokens of `text` and, for each, the norm of the gradient of the probability of `class_id` (default
        the predicted class) with respect to its embedding, scaled so that the largest is 1."""
        model = get_model(self.learn.model)
        model.eval()
        model.zero_grad()
        model.reset()
        ids = self.data.one_item(text)[0]  # (1, T)
        encoder = model[0].module
        emb = encoder.encoder(ids).detach().requires_grad_(True)
        with torch.enable_grad():
            raw_outputs, outputs = encoder(emb, from_embeddings=True)
            mask = torch.zeros_like(ids, dtype=torch.bool)
            probs = model[1]((raw_outputs, outputs, mask))[0].softmax(dim=-1)
            if class_id is None:
                class_id = int(probs.argmax())
            probs[0][class_id].backward()
        attn = emb.grad.squeeze(0).abs().sum(dim=-1)
        attn = attn / attn.max().clamp(min=1e-12)
        model.zero_grad()
        tokens = self.data.single_ds.x.reconstruct(ids[0].cpu())
        return tokens, attn.cpu()

    def html_intrinsic_attention(self, text: str, class_id: int | None = None, **kwargs: Any) -> str:
        "`text` as HTML, each token's background as dark as its intrinsic attention."
        import matplotlib.cm
        text, attn = self.intrinsic_attention(text, class_id)
        cmap = matplotlib.colormaps.get_cmap(kwargs.get('cmap', 'Greens'))
        spans = [f'<span title="{float(a):.3f}" style="background-color: {_value2rgba(float(a), cmap, 0.5)};">'
                 f'{html.escape(tok)}</span>' for tok, a in zip(text.text.split(), attn)]
        return ' '.join(spans)

    def show_intrinsic_attention(self, text: str, class_id: int | None = None, **kwargs: Any) -> str:
        "Show the intrinsic attention of `text` (HTML in a notebook, tokens with their weights elsewhere)."
        try:
            from IPython import get_ipython
            from IPython.display import HTML, display
            in_notebook = get_ipython() is not None and 'IPKernelApp' in get_ipython().config
        except ImportError:
            in_notebook = False
        res = self.html_intrinsic_attention(text, class_id, **kwargs)
        if in_notebook:
            display(HTML(res))
        else:
            tokens, attn = self.intrinsic_attention(text, class_id)
            print(' '.join(f'{t}({float(a):.2f})' for t, a in zip(tokens.text.split(), attn)))
        return res

    def show_top_losses(self, k: int, max_len: int = 70) -> Any:
        "A table of the `k` texts with the largest losses: text (first `max_len` tokens), prediction, actual, loss, probability."
        import pandas as pd
        losses, idxs = self.top_losses(k)
        rows = []
        for loss, i in zip(losses.tolist(), idxs.tolist()):
            x, y = self.ds[i]
            pred = int(self.pred_class[i])
            rows.append({'Text': ' '.join(str(x).split(' ')[:max_len]), 'Prediction': self.classes[pred],
                         'Actual': str(y), 'Loss': round(loss, 2),
                         'Probability': round(float(self.preds[i][pred]), 2)})
        return pd.DataFrame(rows)
