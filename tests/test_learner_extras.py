"""The less common Learner and DataBunch methods, and the small training callbacks."""
import functools

import pandas as pd
import torch
from torch import nn

from fastlib.basic_data import DataBunch
from fastlib.basic_train import Learner, RecordOnCPU, train_epoch
from fastlib.callbacks.training import AccumulateScheduler, BnFreeze
from fastlib.serialization import safe_load
from fastlib.testing import FakeDataset, fake_data, fake_learner


def test_backward_fills_gradients_for_one_item():
    learn = fake_learner()
    learn.backward(learn.data.valid_ds.x[0])
    assert all(p.grad is not None for p in learn.model.parameters())


def test_mc_dropout_gives_varied_predictions():
    learn = fake_learner()
    learn.model.insert(3, nn.Dropout(0.5))
    preds = learn.predict_with_mc_dropout(learn.data.valid_ds.x[0], n_times=5)
    probs = torch.stack([p[2] for p in preds])
    assert len(preds) == 5 and probs.std(0).sum() > 0  # dropout on: the predictions differ
    assert torch.equal(learn.predict(learn.data.valid_ds.x[0])[2], learn.predict(learn.data.valid_ds.x[0])[2])


def test_show_batch_for_plain_data():
    df = fake_data().show_batch(rows=4)
    assert isinstance(df, pd.DataFrame) and len(df) == 4 and set(df['y']) <= {'class_0', 'class_1', 'class_2'}


def test_databunch_export_writes_the_classes(tmp_path):
    data = fake_data(path=tmp_path)
    data.export()
    state = safe_load(tmp_path / 'export.pkl')['state']
    assert state['classes'] == data.classes and state['c'] == 3


def test_train_epoch_trains():
    learn = fake_learner()
    learn.create_opt(1e-2)
    before = learn.validate()[0]
    for _ in range(3):
        train_epoch(learn.model, learn.data.train_dl, learn.opt, learn.loss_func)
    assert learn.validate()[0] < before


def test_record_on_cpu_keeps_the_batch():
    learn = fake_learner()
    rec = RecordOnCPU()
    learn.fit(1, callbacks=[rec])
    assert rec.input.device.type == 'cpu' and rec.input.shape[1] == 8


def test_bn_freeze_keeps_frozen_batchnorm_statistics():
    learn = fake_learner(train_bn=False, callback_fns=[BnFreeze])
    learn.freeze()
    mean = learn.model[1].running_mean.clone()
    learn.fit(1, 1e-2)
    assert torch.equal(learn.model[1].running_mean, mean)


def test_accumulate_scheduler_equals_one_big_batch():
    "Two accumulated batches of 16 with a summed loss make the same SGD step as one batch of 32 with a mean loss."
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 8, generator=g), torch.randint(0, 3, (32,), generator=g)
    ds = FakeDataset(x, y, ['a', 'b', 'c'])

    def run(bs, loss_func, callback_fns):
        data = DataBunch.create(ds, ds, bs=bs, num_workers=0, device='cpu')
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))  # no batch norm: batch size free
        learn = Learner(data, model, opt_func=torch.optim.SGD, loss_func=loss_func, wd=0.,
                        callback_fns=callback_fns)
        learn.fit(1, 0.1)
        return [p.detach().clone() for p in model.parameters()], model

    big, model = run(32, nn.CrossEntropyLoss(), [])
    small, _ = run(16, nn.CrossEntropyLoss(reduction='sum'), [functools.partial(AccumulateScheduler, n_step=2)])
    torch.manual_seed(0)
    start = [p.detach() for p in nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).parameters()]
    assert not torch.equal(big[0], start[0])  # a step was taken
    for a, b in zip(big, small):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_purge_and_destroy():
    learn = fake_learner()
    learn.fit(1)
    assert learn.purge().opt is None
    learn.destroy()
    assert not hasattr(learn, 'model')
