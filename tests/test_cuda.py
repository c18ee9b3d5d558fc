"""Checks that need a CUDA GPU: float16 with GradScaler, pinned-memory transfers, no host sync per batch.

They skip on machines without CUDA (CI has none); run them with `python -m pytest tests/test_cuda.py` on a GPU.
"""
import pytest
import torch

from fastlib.callback import Callback
from fastlib.callbacks.fp16 import MixedPrecision
from fastlib.metrics import accuracy
from fastlib.testing import fake_data, fake_learner
from fastlib.torch_core import set_seed

pytestmark = [pytest.mark.cuda, pytest.mark.filterwarnings('ignore:Synchronization debug mode is a prototype')]


def _cuda_learner(**kwargs):
    data = fake_data(device=torch.device('cuda'), pin_memory=True, train_length=512, valid_length=256)
    return fake_learner(data=data, **kwargs)


class _NoSyncInBatches(Callback):
    "Make any GPU->host synchronisation inside a batch (forward, loss, backward, step, callbacks) an error."
    _order = -1000

    def on_batch_begin(self, **kwargs):
        torch.cuda.set_sync_debug_mode('error')


class _AllowSyncBetweenBatches(Callback):
    _order = 1000  # runs after every other callback's on_batch_end

    def on_batch_end(self, **kwargs):
        torch.cuda.set_sync_debug_mode('default')

    def on_train_end(self, **kwargs):
        torch.cuda.set_sync_debug_mode('default')


def test_no_host_sync_per_batch():
    learn = _cuda_learner(metrics=[accuracy])
    learn.fit(1, 1e-2)  # a first fit runs the one-off checks
    learn.fit(2, 1e-2, callbacks=[_NoSyncInBatches(), _AllowSyncBetweenBatches()])
    assert learn.recorder.val_losses[-1] < learn.recorder.val_losses[0] * 1.5


def test_batches_arrive_pinned_and_on_the_gpu():
    data = fake_data(device=torch.device('cuda'), pin_memory=True)
    assert data.train_dl.dl.pin_memory and data.train_dl.non_blocking
    x, y = next(iter(data.train_dl))
    assert x.is_cuda and y.is_cuda
    raw = next(iter(data.train_dl.dl))
    assert raw[0].is_pinned()


def test_fp16_with_grad_scaler_matches_fp32_accuracy():
    def train(fp16):
        set_seed(0)
        learn = _cuda_learner(metrics=[accuracy])
        if fp16:
            learn.to_fp16()
        learn.fit_one_cycle(4, 1e-2)
        return learn

    fp32, fp16 = train(False), train(True)
    mp = fp16.mixed_precision
    assert isinstance(mp, MixedPrecision) and mp.scaler is not None and mp.dtype == torch.float16
    assert mp.scaler.get_scale() > 0
    assert abs(fp16.validate()[1] - fp32.validate()[1]) < 0.05
    assert fp16.model[0].weight.dtype == torch.float32  # master weights stay float32


def test_fp16_loss_mirrors_fp32_on_one_batch():
    learn = _cuda_learner()
    xb, yb = learn.data.one_batch(detach=False, cpu=False)
    learn.model.eval()
    with torch.no_grad():
        fp32 = learn.loss_func(learn.model(xb), yb)
        with torch.autocast('cuda', dtype=torch.float16):
            out = learn.model(xb)
        assert out.dtype == torch.float16
        fp16 = learn.loss_func(out.float(), yb)
    assert float(fp16) == pytest.approx(float(fp32), rel=1e-2)


def test_export_on_gpu_loads_on_cpu(tmp_path):
    from fastlib.basic_train import load_learner
    learn = _cuda_learner(path=tmp_path)
    learn.fit(1, 1e-2)
    learn.export()
    loaded = load_learner(tmp_path, device=torch.device('cpu'))
    assert next(loaded.model.parameters()).device.type == 'cpu'
    x = learn.data.valid_ds.x[0]
    torch.testing.assert_close(loaded.predict(x)[2], learn.predict(x)[2].cpu(), rtol=1e-4, atol=1e-5)
