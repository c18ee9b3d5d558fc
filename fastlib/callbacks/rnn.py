"""RNNTrainer: what training an AWD-LSTM needs from the loop (hidden-state reset, AR and TAR regularization)."""
from __future__ import annotations

from typing import Any

from torch import Tensor

from ..basic_train import Learner, LearnerCallback

__all__ = ['RNNTrainer']


class RNNTrainer(LearnerCallback):
    """Reset the model's hidden state at each epoch and when validation starts, keep only the decoded output for the loss, and add
    activation regularization (`alpha` * mean squared final-layer output, after dropout) and temporal
    activation regularization (`beta` * mean squared change of the final layer's raw output between time
    steps) to the training loss (Merity et al., 2017)."""

    def __init__(self, learn: Learner, alpha: float = 0., beta: float = 0.):
        super().__init__(learn)
        self.not_min += ['raw_out', 'out']
        self.alpha, self.beta = alpha, beta
        self.raw_out: Tensor | None = None
        self.out: Tensor | None = None
        self._train: bool | None = None

    def on_epoch_begin(self, **kwargs: Any) -> None:
        "Start each epoch from a zero hidden state."
        self.learn.model.reset()
        self._train = True

    def on_batch_begin(self, train: bool, **kwargs: Any) -> None:
        "Start validation (and training after it) from a zero hidden state, not from the other loader's streams."
        if train != self._train:
            self.learn.model.reset()
            self._train = train

    def on_loss_begin(self, last_output: Any, **kwargs: Any) -> dict | None:
        "Keep the last layer's outputs for the regularization; the loss sees the decoded output only."
        if not isinstance(last_output, tuple):
            return None
        self.raw_out, self.out = last_output[1][-1], last_output[2][-1]  # (B, T, n_hid) each
        return {'last_output': last_output[0]}

    def on_backward_begin(self, last_loss: Tensor, last_input: Any, **kwargs: Any) -> dict | None:
        "Add AR and TAR to the loss."
        if self.out is None:
            return None
        if self.alpha != 0.:
            last_loss = last_loss + self.alpha * self.out.float().pow(2).mean()
        if self.beta != 0. and self.raw_out.size(1) > 1:
            h = self.raw_out
            last_loss = last_loss + self.beta * (h[:, 1:] - h[:, :-1]).float().pow(2).mean()
        return {'last_loss': last_loss}
