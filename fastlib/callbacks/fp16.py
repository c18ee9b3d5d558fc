"""Mixed-precision training on torch.amp: autocast for the forward pass, a GradScaler for float16 on CUDA."""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from ..basic_train import Learner, LearnerCallback
from ..torch_core import to_float

__all__ = ['MixedPrecision']


class MixedPrecision(LearnerCallback):
    """Run the model's forward pass under `torch.autocast` in `dtype` (float16 or bfloat16), weights in float32.

    With float16 on CUDA, the loss is scaled by a `torch.amp.GradScaler` (dynamic unless `dynamic=False`;
    starting at `loss_scale`, growing after `max_noskip` clean steps, at most `max_scale`) and steps with
    inf/NaN gradients are skipped. float16 autocast is a GPU feature: on a CPU, fastlib uses bfloat16 instead.
    `clip` clips the gradient norm after unscaling. `loss_fp32` computes the loss in float32.
    """
    _order = 90  # after callbacks that change the loss (scaling comes last) or skip the step

    def __init__(self, learn: Learner, loss_scale: float | None = None, max_noskip: int = 1000,
                 dynamic: bool = True, clip: float | None = None, flat_master: bool = False,
                 max_scale: float = 2 ** 24, loss_fp32: bool = True, dtype: torch.dtype = torch.float16):
        super().__init__(learn)
        self.device_type = learn.data.device.type
        if dtype == torch.float16 and self.device_type != 'cuda':
            warnings.warn("float16 autocast needs a CUDA GPU; training in bfloat16 autocast on the CPU instead.")
            dtype = torch.bfloat16
        self.dtype, self.clip, self.loss_fp32, self.max_scale = dtype, clip, loss_fp32, max_scale
        self.scaler = None
        if dtype == torch.float16:
            growth = 2.0 if dynamic else 1.0
            self.scaler = torch.amp.GradScaler(self.device_type, init_scale=loss_scale or 2. ** 16,
                                               growth_factor=growth, backoff_factor=0.5 if dynamic else 1.0,
                                               growth_interval=max_noskip)
        self._autocast = None
        self._unscaled = False
        self._step_pending = False

    def _exit_autocast(self) -> None:
        if self._autocast is not None:
            self._autocast.__exit__(None, None, None)
            self._autocast = None

    def on_batch_begin(self, **kwargs: Any) -> None:
        self._exit_autocast()
        self._autocast = torch.autocast(device_type=self.device_type, dtype=self.dtype)
        self._autocast.__enter__()

    def on_loss_begin(self, last_output: Any, **kwargs: Any) -> dict:
        self._exit_autocast()  # the loss is computed outside autocast
        return {'last_output': to_float(last_output) if self.loss_fp32 else last_output}

    def on_backward_begin(self, last_loss: Tensor, **kwargs: Any) -> dict | None:
        self._unscaled = False
        if self.scaler is None:
            return None
        return {'last_loss': self.scaler.scale(last_loss)}

    def unscale_grads(self) -> None:
        "Divide the gradients by the loss scale (once per step); gradient clipping calls this first."
        if self.scaler is not None and not self._unscaled:
            self.scaler.unscale_(self.learn.opt)
            self._unscaled = True

    def on_backward_end(self, skip_step: bool, **kwargs: Any) -> dict | None:
        if skip_step:  # another callback (e.g. gradient accumulation) holds this step back
            return None
        self.unscale_grads()
        if self.clip is not None:
            torch.nn.utils.clip_grad_norm_([p for pg in self.learn.opt.param_groups for p in pg['params']], self.clip)
        if self.scaler is None:
            return None
        self._step_pending = True
        return {'skip_step': True}  # the scaler steps in on_step_end, skipping steps with inf/NaN gradients

    def on_step_end(self, **kwargs: Any) -> None:
        if self._step_pending:
            self.scaler.step(self.learn.opt)
            self.scaler.update()
            if self.scaler.get_scale() > self.max_scale:
                self.scaler.update(self.max_scale)
            self._step_pending = False

    def on_train_end(self, **kwargs: Any) -> None:
        self._exit_autocast()

    def state_dict(self) -> dict:
        "The loss scaler's state (lr_find restores it)."
        return {'scaler': self.scaler.state_dict() if self.scaler is not None else None}

    def checkpoint_state(self) -> dict:
        return self.state_dict()

    def load_checkpoint_state(self, state: dict) -> None:
        self.load_state_dict(state)

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state.get('scaler'):
            self.scaler.load_state_dict(state['scaler'])
