"""Learner: training, layer groups and freezing, predictions, saving, clear errors, no per-batch host sync."""
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastlib.basic_data import DatasetType
from fastlib.basic_train import Learner
from fastlib.metrics import accuracy
from fastlib.testing import fake_data, fake_learner
from fastlib.torch_core import set_seed


def test_fit_learns_the_toy_problem():
    learn = fake_learner(metrics=[accuracy])
    learn.fit(4, 1e-2)
    val_loss, acc = learn.validate()
    assert acc > 0.85
    assert learn.recorder.val_losses[-1] < learn.recorder.val_losses[0]
    assert len(learn.recorder.losses) == 4 * len(learn.data.train_dl)


def test_same_seed_same_run():
    def run():
        set_seed(7)
        learn = fake_learner()
        learn.fit(2, 1e-2)
        return learn.recorder.losses, [p.detach().clone() for p in learn.model.parameters()]

    (l1, p1), (l2, p2) = run(), run()
    assert l1 == l2
    assert all(torch.equal(a, b) for a, b in zip(p1, p2))


def test_lr_range_spreads_a_slice_geometrically():
    learn = fake_learner()
    np.testing.assert_allclose(learn.lr_range(slice(1e-4, 1e-2)), [1e-4, 1e-2])
    learn.split([learn.model[1], learn.model[3]])
    np.testing.assert_allclose(learn.lr_range(slice(1e-4, 1e-2)), [1e-4, 1e-3, 1e-2])
    np.testing.assert_allclose(learn.lr_range(slice(1e-2)), [1e-3, 1e-3, 1e-2])
    np.testing.assert_allclose(learn.lr_range(1e-2), [1e-2] * 3)


def test_discriminative_lrs_reach_the_param_groups():
    learn = fake_learner()
    learn.fit(1, slice(1e-4, 1e-2))
    assert [pg['lr'] for pg in learn.opt.opt.param_groups] == pytest.approx([1e-4, 1e-2])


def test_freeze_leaves_body_grads_none_and_bn_trainable():
    learn = fake_learner()  # layer groups: [Linear, BatchNorm1d, ReLU], [Linear]
    learn.freeze()
    learn.fit(1, 1e-2)
    body_linear, bn, head = learn.model[0], learn.model[1], learn.model[3]
    assert body_linear.weight.grad is None and body_linear.bias.grad is None
    assert not body_linear.weight.requires_grad
    assert bn.weight.requires_grad  # train_bn=True keeps batch norm trainable when frozen
    assert head.weight.requires_grad
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters())


def test_freeze_without_train_bn_freezes_batch_norm():
    learn = fake_learner(train_bn=False)
    learn.freeze()
    assert not learn.model[1].weight.requires_grad


def test_frozen_body_weights_do_not_move():
    learn = fake_learner()
    learn.freeze()
    before = learn.model[0].weight.detach().clone()
    learn.fit(1, 1e-2)
    assert torch.equal(learn.model[0].weight, before)


def test_freeze_needs_two_layer_groups():
    learn = Learner(fake_data(), nn.Sequential(nn.Linear(8, 3)))
    with pytest.raises(ValueError, match=r'at least two layer groups.*learn.split'):
        learn.freeze()


def test_model_output_size_mismatch_error():
    learn = Learner(fake_data(n_classes=3), nn.Linear(8, 10))
    with pytest.raises(ValueError, match=r'outputs 10 values per item but the data has 3 classes'):
        learn.fit(1)


def test_model_output_checked_on_the_loss_class_axis():
    "A segmentation model has its classes on axis 1 (CrossEntropyFlat(axis=1)), not on the last axis."
    from fastlib.basic_data import DataBunch
    from fastlib.layers import CrossEntropyFlat
    from fastlib.testing import FakeDataset
    x, y = torch.randn(8, 2, 5, 6), torch.randint(0, 3, (8, 5, 6))
    classes = ['void', 'road', 'sky']
    data = DataBunch.create(FakeDataset(x, y, classes), FakeDataset(x, y, classes), bs=4, num_workers=0)
    learn = Learner(data, nn.Conv2d(2, 3, 1), loss_func=CrossEntropyFlat(axis=1))
    learn.fit(1, 1e-3)   # 3 channels for 3 classes, whatever the width (6)
    learn = Learner(data, nn.Conv2d(2, 4, 1), loss_func=CrossEntropyFlat(axis=1))
    with pytest.raises(ValueError, match=r'outputs 4 channels on axis 1 \(the classes\) but the data has 3 classes'):
        learn.fit(1)


def test_metric_typo_error():
    with pytest.raises(ValueError, match=r"Unknown metric 'acuracy'. Did you mean 'accuracy'"):
        fake_learner(metrics=['acuracy'])


def test_metric_by_name():
    learn = fake_learner(metrics=['accuracy'])
    assert learn.metrics == [accuracy]


def test_callback_typo_error():
    with pytest.raises(ValueError, match=r"Unknown callback 'CSVLoger'. Did you mean 'CSVLogger'"):
        fake_learner(callback_fns=['CSVLoger'])


def test_get_preds_activation_and_losses():
    learn = fake_learner()
    learn.fit(1, 1e-2)
    preds, targs, losses = learn.get_preds(with_loss=True)
    n = len(learn.data.valid_ds)
    assert preds.shape == (n, 3) and targs.shape == (n,) and losses.shape == (n,)
    torch.testing.assert_close(preds.sum(1), torch.ones(n))  # softmax for cross-entropy
    raw = learn.get_preds(activ=lambda x: x)[0]
    torch.testing.assert_close(losses, F.cross_entropy(raw, targs, reduction='none'))
    assert learn.loss_func.reduction == 'mean'  # restored


def test_predict_decodes_the_class():
    learn = fake_learner()
    learn.fit(2, 1e-2)
    x = learn.data.valid_ds.x[0]
    label, idx, probs = learn.predict(x)
    with torch.no_grad():
        expected = learn.model.eval()(x[None]).softmax(-1)[0]
    torch.testing.assert_close(probs, expected)
    assert idx == expected.argmax() and label == learn.data.classes[int(idx)]


def test_validate_matches_a_manual_computation():
    learn = fake_learner(metrics=[accuracy])
    learn.fit(1, 1e-2)
    val_loss, acc = learn.validate()
    xs, ys = learn.data.valid_ds.x, learn.data.valid_ds.y
    with torch.no_grad():
        out = learn.model.eval()(xs)
    assert val_loss == pytest.approx(F.cross_entropy(out, ys).item(), rel=1e-5)
    assert acc == pytest.approx((out.argmax(1) == ys).float().mean().item())


def test_pred_batch_and_show_results():
    learn = fake_learner()
    out = learn.pred_batch()
    assert out.shape == (learn.data.valid_dl.batch_size, 3)
    df = learn.show_results(rows=4)
    assert list(df.columns) == ['target', 'prediction'] and len(df) == 4


def test_save_and_load_with_optimizer(tmp_path):
    learn = fake_learner(path=tmp_path)
    learn.fit(1, 1e-2)
    path = learn.save('stage1', return_path=True)
    assert path == tmp_path / 'models' / 'stage1.pth'
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    opt_state = {k: v['exp_avg'].clone() for k, v in learn.opt.opt.state.items()}
    learn.fit(1, 1e-2)
    learn.load('stage1')
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, weights[k])
    for p, exp_avg in opt_state.items():
        assert torch.equal(learn.opt.opt.state[p]['exp_avg'], exp_avg)


def test_load_missing_file_error_suggests_saved_names(tmp_path):
    learn = fake_learner(path=tmp_path)
    learn.save('stage-1')
    with pytest.raises(FileNotFoundError, match=r"No saved model at .*stage1.pth. Did you mean 'stage-1'"):
        learn.load('stage1')
    other = fake_learner(path=tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='No model has been saved there yet'):
        other.load('anything')


def test_save_is_atomic(tmp_path, monkeypatch):
    learn = fake_learner(path=tmp_path)
    path = learn.save('m', return_path=True)
    good = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b'half a file')
        raise RuntimeError('disk full')

    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(RuntimeError, match='disk full'):
        learn.save('m')
    assert path.read_bytes() == good
    assert sorted(p.name for p in path.parent.iterdir()) == ['m.pth']  # no temporary file left behind


def test_read_only_model_dir_error(tmp_path):
    learn = fake_learner(path=tmp_path)
    (tmp_path / 'models').mkdir()
    (tmp_path / 'models').chmod(0o500)
    try:
        if (tmp_path / 'models').stat().st_mode & 0o200 or _can_write(tmp_path / 'models'):
            pytest.skip('running as a user that can write to read-only folders (root)')
        with pytest.raises(PermissionError, match=r'Set learn.model_dir to a writable folder'):
            learn.save('m')
    finally:
        (tmp_path / 'models').chmod(0o700)


def _can_write(folder):
    try:
        (folder / 'probe').touch()
        (folder / 'probe').unlink()
        return True
    except OSError:
        return False


def test_unwritable_model_dir_error_even_as_root(tmp_path):
    "A model_dir under a regular file cannot be created, whoever runs the test."
    (tmp_path / 'a_file').write_text('x')
    learn = fake_learner(path=tmp_path, model_dir=tmp_path / 'a_file' / 'models')
    with pytest.raises(PermissionError, match=r'Set learn.model_dir to a writable folder'):
        learn.save('m')


_SYNC_METHODS = ('item', 'tolist', 'cpu', 'numpy', '__float__', '__bool__', '__int__')


def _count_host_reads(monkeypatch, learn, epochs):
    counts = {'n': 0}
    for name in _SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, **kwargs):
            counts['n'] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    learn.fit(epochs, 1e-3)
    monkeypatch.undo()
    return counts['n']


def test_no_host_read_per_batch(monkeypatch):
    """The loop reads tensors on the host a fixed number of times per epoch, whatever the number of batches.

    Each read of a CUDA tensor is a sync with the GPU; this counts the reads on the CPU, where they can be seen.
    SGD, because torch's Adam reads its step counter (a CPU tensor, never a GPU sync) at each step.
    """
    sgd = functools.partial(torch.optim.SGD, momentum=0.9)
    few = fake_learner(train_length=64, valid_length=32, batch_size=16, metrics=[accuracy], opt_func=sgd)
    many = fake_learner(train_length=512, valid_length=256, batch_size=16, metrics=[accuracy], opt_func=sgd)
    assert _count_host_reads(monkeypatch, few, 2) == _count_host_reads(monkeypatch, many, 2)


def test_recorder_plots_return_figures():
    import matplotlib.pyplot as plt
    learn = fake_learner(metrics=[accuracy])
    learn.fit_one_cycle(2, 1e-2)
    fig = learn.recorder.plot_losses(return_fig=True)
    assert len(fig.axes[0].lines) == 2  # train and validation
    fig = learn.recorder.plot_lr(show_moms=True, return_fig=True)
    assert len(fig.axes) == 2
    fig = learn.recorder.plot_metrics(return_fig=True)
    np.testing.assert_allclose(fig.axes[0].lines[0].get_ydata(), [m[0] for m in learn.recorder.metrics])
    assert learn.recorder.plot_losses() is None  # not returned unless asked
    plt.close('all')


def test_callback_fns_by_name_are_built_at_each_fit(tmp_path):
    from fastlib.callbacks import CSVLogger, GradientClipping
    learn = fake_learner(callback_fns=['GradientClipping', 'csv_logger'], path=tmp_path)
    learn.fit(1)
    first = learn.csv_logger
    assert isinstance(learn.gradient_clipping, GradientClipping) and isinstance(first, CSVLogger)
    learn.fit(1)
    assert learn.csv_logger is not first


def test_metrics_set_after_creation_are_looked_up_by_name():
    learn = fake_learner()
    learn.metrics = ['accuracy', 'error_rate']
    learn.fit(1)
    assert len(learn.recorder.metrics[0]) == 2


def test_channels_last_is_a_one_liner_that_survives_freezing():
    from fastlib.layers import simple_cnn
    from fastlib.testing import FakeDataset
    from fastlib.basic_data import DataBunch
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 3, 8, 8, generator=g), torch.randint(0, 2, (64,), generator=g)
    data = DataBunch.create(FakeDataset(x, y, ['a', 'b']), FakeDataset(x, y, ['a', 'b']), bs=16, num_workers=0,
                            device='cpu')
    model = simple_cnn((3, 8, 16, 2))
    learn = Learner(data, model).split([model[-2]]).to_channels_last()
    seen = []
    model[0][0].register_forward_pre_hook(lambda m, i: seen.append(i[0].is_contiguous(memory_format=torch.channels_last)))
    learn.freeze()
    learn.fit(1, 1e-3)
    learn.unfreeze()
    learn.fit(1, 1e-3)
    assert seen and all(seen)
    assert model[0][0].weight.is_contiguous(memory_format=torch.channels_last)


def test_compile_is_a_one_liner_that_survives_freezing_and_saving(tmp_path):
    learn = fake_learner(path=tmp_path)
    learn.compile(backend='eager')  # the eager backend checks the plumbing without generating code
    learn.freeze()
    learn.fit(1, 1e-2)
    assert learn.layer_groups[0][0].weight.grad is None  # the frozen body got no gradient
    learn.unfreeze()
    learn.fit(1, 1e-2)
    path = learn.save('compiled', return_path=True)
    keys = torch.load(path, weights_only=True)['model'].keys()
    assert not any(k.startswith('_orig_mod') for k in keys)  # files carry no trace of compilation
    plain = fake_learner(path=tmp_path)
    plain.load('compiled')
    x = learn.data.valid_ds.x[:4]
    learn.model.eval()
    plain.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.model(x), learn.model(x))
