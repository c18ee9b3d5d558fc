"""Tests for fastlib.callbacks.hooks: stored outputs and gradients against a manual forward and autograd, hook
removal, shapes computed by hand, activation statistics recomputed, and a summary that leaves the model as it was."""
import copy
import re

import pytest
import torch
from torch import nn

from fastlib.callback import Callback
from fastlib.callbacks.hooks import (ActivationStats, Hook, HookCallback, Hooks, dummy_batch, dummy_eval,
                                     hook_output, hook_outputs, model_sizes, model_summary, num_features_model)
from fastlib.testing import fake_learner


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))


def small_cnn() -> nn.Sequential:
    # 3x64x64 -> 8x32x32 -> 8x32x32 -> 8x32x32 -> 16x16x16 -> 16x1x1 -> 16
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def no_hooks(m: nn.Module) -> bool:
    return all(not mod._forward_hooks and not mod._backward_hooks for mod in m.modules())


# ----- Hook, Hooks, hook_output(s) --------------------------------------------------------------------------------

def test_hook_output_stores_the_module_output():
    m, x = mlp(), torch.randn(4, 5)
    with hook_output(m[1]) as h:
        m(x)
    expected = torch.relu(m[0](x))
    assert torch.equal(h.stored, expected)
    assert not h.stored.requires_grad  # detached by default
    with hook_output(m[1], detach=False) as h:
        m(x)
    assert h.stored.requires_grad and h.stored.grad_fn is not None
    assert torch.equal(h.stored.detach(), expected)


def test_hook_output_grad_matches_autograd_even_before_an_inplace_relu():
    m, x = small_cnn(), torch.randn(2, 3, 16, 16)
    with hook_output(m[1], grad=True) as h:  # BatchNorm2d, followed by ReLU(inplace=True)
        m(x).pow(2).sum().backward()
    # Oracle: the same forward by hand, keeping the gradient of the batch norm's output.
    a = m[1](m[0](x))
    a.retain_grad()
    m[5](m[4](m[3](torch.relu(a)))).pow(2).sum().backward()
    assert isinstance(h.stored, tuple) and len(h.stored) == 1
    assert torch.allclose(h.stored[0], a.grad)
    assert (a.grad == 0).any() and (a.grad != 0).any()  # the ReLU's mask is in there: a real test


def test_full_backward_hook_gets_input_and_output_gradients():
    m = mlp()
    x = torch.randn(4, 5, requires_grad=True)
    with Hook(m[0], lambda mod, gi, go: (gi, go), is_forward=False) as h:
        m(x).sum().backward()
    grad_in, grad_out = h.stored
    y = m[0](x.detach().requires_grad_())
    y.retain_grad()
    m[2](m[1](y)).sum().backward()
    assert torch.allclose(grad_out[0], y.grad)
    assert torch.allclose(grad_in[0], x.grad)


def test_hooks_are_removed_after_with_and_after_an_exception():
    m, x = mlp(), torch.randn(2, 5)
    with hook_output(m[0]):
        assert len(m[0]._forward_hooks) == 1
    assert no_hooks(m)
    with pytest.raises(ZeroDivisionError):
        with hook_outputs(list(m.children())):
            m(x)
            1 / 0
    assert no_hooks(m)
    with pytest.raises(ZeroDivisionError):
        with hook_output(m[2], grad=True):
            m(x).sum().backward()
            1 / 0
    assert no_hooks(m)
    with pytest.raises(ZeroDivisionError):
        with Hook(m[2], lambda *a: None, is_forward=False):
            1 / 0
    assert no_hooks(m)
    # A registration that fails half-way takes back those already made.
    with pytest.raises(AttributeError):
        Hooks([m[0], m[1], 'not a module'], lambda *a: None)
    assert no_hooks(m)


def test_removed_hook_stops_storing():
    m, x = mlp(), torch.randn(2, 5)
    h = hook_output(m[0])
    m(x)
    first = h.stored
    h.remove()
    h.remove()  # twice is fine
    m(x + 1)
    assert h.stored is first and no_hooks(m)


def test_hooks_list_interface():
    m, x = mlp(), torch.randn(3, 5)
    with hook_outputs(list(m.children())) as hooks:
        assert len(hooks) == 3 and hooks[0] is list(hooks)[0]
        m(x)
        out0 = m[0](x)
        expected = [out0, torch.relu(out0), m[2](torch.relu(out0))]
        assert all(torch.equal(s, e) for s, e in zip(hooks.stored, expected))


# ----- dummy batches, sizes, features -----------------------------------------------------------------------------

def test_dummy_batch_and_eval_keep_modes_and_rng():
    m = small_cnn()
    m[1].eval()  # a mixed state: a frozen batch norm inside a training model
    rng = torch.get_rng_state()
    xb = dummy_batch(m, size=(10, 12))
    assert xb.shape == (1, 3, 10, 12) and xb.dtype == torch.float32
    assert xb.min() >= -1 and xb.max() <= 1
    assert torch.equal(xb, dummy_batch(m, size=(10, 12)))
    out = dummy_eval(m, size=(16, 16))
    assert out.shape == (1, 16) and not out.requires_grad
    assert torch.equal(torch.get_rng_state(), rng)
    assert m.training and m[0].training and not m[1].training


def test_model_sizes_match_shapes_by_hand():
    m = small_cnn()
    running_mean = m[1].running_mean.clone()
    sizes = model_sizes(m, size=(64, 64))
    assert [tuple(s) for s in sizes] == [(1, 8, 32, 32), (1, 8, 32, 32), (1, 8, 32, 32), (1, 16, 16, 16),
                                         (1, 16, 1, 1), (1, 16)]
    # 40 -> (40 + 2 - 3) // 2 + 1 = 20 -> 10
    assert [tuple(s) for s in model_sizes(m, size=(40, 40))][3] == (1, 16, 10, 10)
    assert torch.equal(m[1].running_mean, running_mean) and m.training and no_hooks(m)


def test_num_features_model():
    assert num_features_model(small_cnn()[:4]) == 16
    # Too small for a 64px image: 64 -> 15 -> 3 -> (kernel 7 does not fit); 128 -> 31 -> 7 -> 1.
    body = nn.Sequential(nn.Conv2d(3, 4, 7, stride=4), nn.Conv2d(4, 6, 7, stride=4), nn.Conv2d(6, 10, 7))
    assert num_features_model(body) == 10
    assert no_hooks(body)
    with pytest.raises(ValueError, match='No convolution'):
        num_features_model(mlp())


# ----- callbacks --------------------------------------------------------------------------------------------------

class _FirstTrainBatch(Callback):
    "Keep a copy of the model and the input as they are when the first training batch begins."
    _order = 100

    def on_batch_begin(self, last_input, train, **kwargs):
        if train and not hasattr(self, 'model'):
            self.model, self.input = copy.deepcopy(self.learn_model), last_input.clone()


def test_activation_stats_records_mean_and_std_of_each_hooked_output():
    learn = fake_learner(train_length=96, valid_length=32)  # 3 training batches of 32
    keep = _FirstTrainBatch()
    keep.learn_model = learn.model
    stats_cb = ActivationStats(learn)
    learn.fit(1, lr=1e-2, callbacks=[keep, stats_cb], progress=False)
    assert learn.activation_stats is stats_cb
    stats = stats_cb.stats
    n_batches = len(learn.data.train_dl)  # validation batches are not recorded
    assert stats.shape == (2, 3, n_batches) and stats.device.type == 'cpu'  # Linear, BatchNorm1d, Linear
    assert no_hooks(learn.model)
    # Recompute the first batch with the weights it saw (training mode: the batch norm uses batch statistics).
    m, x = keep.model.train(), keep.input
    with torch.no_grad():
        a = m[0](x)
        b = m[1](a)
        c = m[3](m[2](b))
    expected = torch.tensor([[a.mean(), b.mean(), c.mean()], [a.std(), b.std(), c.std()]])
    assert torch.allclose(stats[:, :, 0], expected, atol=1e-6)
    assert not torch.allclose(stats[:, :, 0], stats[:, :, -1])  # the weights moved: later batches differ


class _Boom(Callback):
    def on_batch_end(self, train, **kwargs):
        raise RuntimeError('boom')


def test_hook_callback_removes_hooks_after_an_exception():
    learn = fake_learner()
    cb = ActivationStats(learn)
    with pytest.raises(RuntimeError, match='boom'):
        learn.fit(1, callbacks=[cb, _Boom()], progress=False)
    assert no_hooks(learn.model)


class _KeepOutputs(HookCallback):
    def hook(self, m, i, o):
        return o


def test_hook_callback_modules_and_do_remove():
    learn = fake_learner(train_length=32, valid_length=32)
    cb = _KeepOutputs(learn)
    learn.fit(1, callbacks=[cb], progress=False)
    assert cb.modules == [learn.model[0], learn.model[1], learn.model[3]]  # leaves with parameters
    assert no_hooks(learn.model)
    cb = _KeepOutputs(learn, modules=[learn.model[2]], do_remove=False)
    learn.fit(1, callbacks=[cb], progress=False)
    learn.fit(1, callbacks=[cb], progress=False)
    assert len(learn.model[2]._forward_hooks) == 1  # kept, and not registered twice
    assert cb.hooks.stored[0].shape[1] == 32
    cb.remove()
    assert no_hooks(learn.model)


# ----- summary ----------------------------------------------------------------------------------------------------

def _rows(summary: str) -> list[list[str]]:
    "The table rows of a summary, split on runs of two or more spaces."
    lines = summary.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith('Layer (type)')) + 2
    return [re.split(r'\s{2,}', l) for l in lines[start:] if l and l[0] not in '=_' and not l.startswith('Total')
            and ':' not in l]


@pytest.mark.parametrize('training', [True, False])
def test_model_summary_on_a_learner(training, capsys):
    learn = fake_learner()
    model = learn.model.train(training)
    model[3].weight.requires_grad_(False)  # a frozen weight: counted in the totals, not as trainable
    before = copy.deepcopy(model.state_dict())
    rng = torch.get_rng_state()
    res = learn.summary()
    assert capsys.readouterr().out == ''
    assert isinstance(res, str) and repr(res) == res
    rows = _rows(res)
    expected = [('Linear', '[32]', 8 * 32 + 32, True), ('BatchNorm1d', '[32]', 64, True), ('ReLU', '[32]', 0, False),
                ('Linear', '[3]', 3, True)]  # last Linear: only its bias (3) is trainable, it has 32*3+3 params
    assert [r[0] for r in rows] == [e[0] for e in expected]
    assert [r[1] for r in rows] == [e[1] for e in expected]
    assert [int(r[2].replace(',', '')) for r in rows] == [sum(p.numel() for p in l.parameters())
                                                         for l in (model[0], model[1], model[2], model[3])]
    assert [r[2] for r in rows][:3] == ['288', '64', '0'] and rows[3][2] == '99'
    assert [r[3] for r in rows] == ['True', 'True', 'False', 'True']
    total = sum(p.numel() for p in model.parameters())
    assert f'Total params: {total:,}' in res and total == 451
    assert 'Total trainable params: 355' in res and 'Total non-trainable params: 96' in res
    assert 'Input shape: [8] (batch of 32)' in res
    # The model is exactly as it was: weights, batch-norm statistics (and their counter), modes; RNG too.
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(mod.training == training for mod in model.modules())
    assert torch.equal(torch.get_rng_state(), rng)
    assert no_hooks(model)


def test_model_summary_on_a_module():
    res = model_summary(small_cnn(), size=(32, 32), n=30)
    rows = _rows(res)
    assert [r[1] for r in rows] == ['[8, 16, 16]', '[8, 16, 16]', '[8, 16, 16]', '[16, 8, 8]', '[16, 1, 1]', '[16]']
    assert [r[2] for r in rows] == ['224', '16', '0', '1,168', '0', '0']  # 3*8*9+8, 2*8, 16*8*9+16
    m = mlp()
    res = model_summary(m, xb=torch.randn(2, 5))
    assert [r[1] for r in _rows(res)] == ['[7]', '[7]', '[3]']
    assert max(len(l) for l in res.splitlines()) == 70  # `n` sets the width of the rules
    assert no_hooks(m)


def test_model_summary_leaves_no_hook_when_the_forward_fails():
    m = mlp()
    with pytest.raises(RuntimeError):
        model_summary(m, xb=torch.randn(2, 4))  # wrong number of features
    assert no_hooks(m) and m.training
