"""OptimWrapper against torch.optim, the CallbackHandler's events and controls, annealing and schedulers."""
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from fastlib.callback import (CALLBACK_EVENTS, AdamW, Callback, CallbackHandler, OptimWrapper, Scheduler, SmoothenValue,
                              annealing_cos, annealing_exp, annealing_linear, annealing_no, annealing_poly)
from fastlib.testing import fake_learner


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))


def _train_steps(model, step, n=5, seed=1):
    "Run `n` steps of a squared-output loss on fixed random batches; `step()` updates the weights."
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        x = torch.randn(16, 4, generator=g)
        model(x).pow(2).mean().backward()
        step()


def _groups(model):
    return [nn.Sequential(model[0], model[1]), nn.Sequential(model[3])]


def test_decoupled_wd_matches_torch_adamw():
    ours, ref = _model(), _model()
    opt = OptimWrapper.create(AdamW, 1e-2, _groups(ours), wd=0.1, true_wd=True)
    torch_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)

    def ours_step():
        opt.step()
        opt.zero_grad()

    def ref_step():
        torch_opt.step()
        torch_opt.zero_grad()

    _train_steps(ours, ours_step)
    _train_steps(ref, ref_step)
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


class _OtherAdam(torch.optim.Adam):
    "An optimizer from outside torch.optim: OptimWrapper applies the decay itself instead of delegating."


@pytest.mark.parametrize('opt_func', [AdamW, functools.partial(_OtherAdam, betas=(0.9, 0.99))])
def test_both_decay_paths_match_torch_adamw(opt_func):
    ours, ref = _model(), _model()
    opt = OptimWrapper.create(opt_func, 1e-2, _groups(ours), wd=0.1, true_wd=True)
    assert opt._native_wd == (opt_func is AdamW)
    torch_opt = torch.optim.AdamW(ref.parameters(), lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    _train_steps(ours, lambda: (opt.step(), opt.zero_grad()))
    _train_steps(ref, lambda: (torch_opt.step(), torch_opt.zero_grad()))
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_l2_wd_matches_torch_weight_decay():
    ours, ref = _model(), _model()
    opt = OptimWrapper.create(functools.partial(torch.optim.SGD, momentum=0.9), 0.1, _groups(ours), wd=0.05,
                              true_wd=False)
    torch_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)
    _train_steps(ours, lambda: (opt.step(), opt.zero_grad()))
    _train_steps(ref, lambda: (torch_opt.step(), torch_opt.zero_grad()))
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


def test_decoupled_wd_is_not_l2():
    "With SGD, decoupled decay (lr*wd*p) and L2 (wd*p in the momentum) give different weights."
    a, b = _model(), _model()
    sgd = functools.partial(torch.optim.SGD, momentum=0.9)
    opt_a = OptimWrapper.create(sgd, 0.1, _groups(a), wd=0.1, true_wd=True)
    opt_b = OptimWrapper.create(sgd, 0.1, _groups(b), wd=0.1, true_wd=False)
    _train_steps(a, lambda: (opt_a.step(), opt_a.zero_grad()))
    _train_steps(b, lambda: (opt_b.step(), opt_b.zero_grad()))
    assert not torch.allclose(a[0].weight, b[0].weight)


def test_bn_wd_false_leaves_norm_and_bias_undecayed():
    model = _model()
    opt = OptimWrapper.create(torch.optim.SGD, 0.5, _groups(model), wd=0.1, true_wd=True, bn_wd=False)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # the SGD step itself changes nothing: only the decay moves weights
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        if n.startswith('1.') or n.endswith('bias'):  # model[1] is the BatchNorm
            torch.testing.assert_close(p, before[n])
        else:
            torch.testing.assert_close(p, before[n] * (1 - 0.5 * 0.1))


def test_one_param_group_per_layer_group_and_settable_hyper_params():
    model = _model()
    opt = OptimWrapper.create(AdamW, [1e-3, 1e-2], _groups(model), wd=[0.1, 0.2], true_wd=True)
    assert len(opt.opt.param_groups) == 2
    assert [pg['lr'] for pg in opt.opt.param_groups] == [1e-3, 1e-2]
    assert opt.lr == 1e-2 and opt.wd == 0.2
    assert opt.mom == 0.9 and opt.beta == 0.99
    opt.mom = 0.8
    assert [pg['betas'] for pg in opt.opt.param_groups] == [(0.8, 0.99), (0.8, 0.99)]
    opt.beta = [0.95, 0.98]
    assert [pg['betas'] for pg in opt.opt.param_groups] == [(0.8, 0.95), (0.8, 0.98)]
    opt.lr = 3e-3
    assert [pg['lr'] for pg in opt.opt.param_groups] == [3e-3, 3e-3]
    assert [pg['weight_decay'] for pg in opt.opt.param_groups] == [0.1, 0.2]  # Adam decays (decoupled) itself
    assert all(pg['decoupled_weight_decay'] for pg in opt.opt.param_groups)


def test_sgd_mom_maps_to_momentum():
    opt = OptimWrapper.create(functools.partial(torch.optim.SGD, momentum=0.9), 0.1, _groups(_model()))
    opt.mom = 0.5
    assert all(pg['momentum'] == 0.5 for pg in opt.opt.param_groups)


def test_optimwrapper_state_dict_round_trip():
    model = _model()
    opt = OptimWrapper.create(AdamW, 1e-2, _groups(model), wd=0.1, true_wd=True)
    _train_steps(model, lambda: (opt.step(), opt.zero_grad()), n=2)
    sd = opt.state_dict()
    other = OptimWrapper.create(AdamW, 5e-1, _groups(model), wd=0., true_wd=True)
    other.load_state_dict(sd)
    assert other.lr == 1e-2 and other.wd == 0.1
    for p in model.parameters():
        torch.testing.assert_close(other.opt.state[p]['exp_avg'], opt.opt.state[p]['exp_avg'])


def test_all_frozen_gives_clear_error():
    model = _model()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match='no trainable parameters'):
        OptimWrapper.create(AdamW, 1e-3, _groups(model))


@pytest.mark.parametrize('func,expected', [
    (annealing_no, [2., 2., 2.]),
    (annealing_linear, [2., 6., 10.]),
    (annealing_exp, [2., 2 * 5 ** 0.5, 10.]),
    (annealing_cos, [2., 6., 10.]),
    (annealing_poly(2), [2., 10 + (2 - 10) * 0.25, 10.]),
])
def test_annealing_formulas(func, expected):
    got = [func(2., 10., pct) for pct in (0., 0.5, 1.)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_annealing_cos_is_a_half_cosine():
    for pct in np.linspace(0, 1, 7):
        assert annealing_cos(1., 0., pct) == pytest.approx((1 + math.cos(math.pi * pct)) / 2)


def test_scheduler_steps_and_is_done():
    sched = Scheduler((1., 3.), 4)
    vals = [sched.step() for _ in range(4)]
    assert vals == pytest.approx([1.5, 2., 2.5, 3.])
    assert sched.is_done
    sched.restart()
    assert not sched.is_done and sched.step() == pytest.approx(1.5)


def test_smoothen_value_is_bias_corrected_ema():
    sv = SmoothenValue(0.9)
    vals = [3., 1., 4., 1., 5.]
    for i, v in enumerate(vals):
        sv.add_value(torch.tensor(v))
        avg = sum(0.1 * 0.9 ** (i - j) * vals[j] for j in range(i + 1))
        assert float(sv.smooth) == pytest.approx(avg / (1 - 0.9 ** (i + 1)), rel=1e-6)


class _Spy(Callback):
    "Records every event it receives."

    def __init__(self):
        self.events = []


def _recorder_of(event):
    def method(self, **kwargs):
        self.events.append(event)
    return method


for _event in CALLBACK_EVENTS:
    setattr(_Spy, f'on_{_event}', _recorder_of(f'on_{_event}'))


def test_events_fire_in_order():
    learn = fake_learner(train_length=64, valid_length=32, batch_size=32)
    spy = _Spy()
    learn.fit(1, 1e-3, callbacks=[spy])
    events = [e for e in spy.events]
    train_batch = ['on_batch_begin', 'on_loss_begin', 'on_backward_begin', 'on_backward_end', 'on_step_end',
                   'on_batch_end']
    valid_batch = ['on_batch_begin', 'on_loss_begin', 'on_batch_end']
    expected = (['on_train_begin', 'on_epoch_begin'] + train_batch * 2 + valid_batch * 1 + ['on_epoch_end',
                                                                                             'on_train_end'])
    assert events == expected


class _StopAfter(Callback):
    def __init__(self, n):
        self.n = n

    def on_batch_end(self, iteration, **kwargs):
        if iteration + 1 >= self.n:
            return {'stop_epoch': True, 'stop_training': True}


def test_stop_training_from_a_callback():
    learn = fake_learner()
    learn.fit(3, 1e-3, callbacks=[_StopAfter(3)])
    assert len(learn.recorder.losses) == 3
    assert len(learn.recorder.nb_batches) == 1


class _SkipStep(Callback):
    def on_backward_end(self, **kwargs):
        return {'skip_step': True}


class _SkipBwd(Callback):
    def on_backward_begin(self, **kwargs):
        return {'skip_bwd': True}


@pytest.mark.parametrize('cb', [_SkipStep(), _SkipBwd()])
def test_skip_step_and_skip_bwd_leave_weights(cb):
    learn = fake_learner()
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(1, 1e-2, wd=0., callbacks=[cb])
    for p, q in zip(learn.model.parameters(), before):
        assert torch.equal(p, q)


class _ZeroInput(Callback):
    def on_batch_begin(self, last_input, train, **kwargs):
        if train:
            return {'last_input': torch.zeros_like(last_input)}


def test_callback_replaces_the_input():
    learn = fake_learner()
    model = learn.model
    seen = []
    hook = model[0].register_forward_hook(lambda m, i, o: seen.append((m.training, i[0].abs().sum().item())))
    learn.fit(1, 1e-3, callbacks=[_ZeroInput()])
    hook.remove()
    assert all(s == 0 for training, s in seen if training)
    assert any(s > 0 for training, s in seen if not training)


class _Typo(Callback):
    def on_epoch_ended(self, **kwargs):
        pass


def test_misspelt_event_method_is_an_error():
    with pytest.raises(AttributeError, match=r"on_epoch_ended is not a callback event.*Did you mean 'on_epoch_end'"):
        CallbackHandler([_Typo()])


class _BadKey(Callback):
    def on_batch_end(self, **kwargs):
        return {'stop_trainig': True}


def test_returning_an_unknown_state_key_is_an_error():
    learn = fake_learner()
    with pytest.raises(KeyError, match="stop_trainig.*Did you mean 'stop_training'"):
        learn.fit(1, callbacks=[_BadKey()])
