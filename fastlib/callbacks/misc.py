"""Small callbacks for debugging a training run."""
from __future__ import annotations

from typing import Any

from ..callback import Callback

__all__ = ['StopAfterNBatches']


class StopAfterNBatches(Callback):
    "Stop training (without validating) after `n_batches` training batches: a quick check that a run works."

    def __init__(self, n_batches: int = 2):
        self.n_batches = n_batches

    def on_batch_end(self, iteration: int, train: bool = True, **kwargs: Any) -> dict | None:
        # `iteration` counts the training batches finished before this one (the handler adds 1 after this event).
        if train and iteration + 1 >= self.n_batches:
            return {'stop_epoch': True, 'stop_training': True, 'skip_validate': True}
        return None
