"""Recipes: one-cycle against its formula, lr_find that leaves no trace, mixed precision, mixup, clipping."""
import contextlib
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from fastlib.callback import Callback
from fastlib.callbacks.fp16 import MixedPrecision
from fastlib.callbacks.lr_finder import suggest_lrs
from fastlib.callbacks.mixup import MixUpLoss
from fastlib.metrics import accuracy
from fastlib.testing import fake_learner
from fastlib.torch_core import set_seed
from fastlib.train import ClassificationInterpretation


def _one_cycle_lr(i, n, lr_max, div=25., pct=0.3, final_div=None):
    "The one-cycle learning rate at iteration `i` of `n`, from its definition (two half-cosines)."
    final_div = final_div or div * 1e4
    a1 = int(n * pct)
    a2 = n - a1

    def cos(start, end, p):
        return end + (start - end) / 2 * (1 + math.cos(math.pi * p))

    if i < a1:
        return cos(lr_max / div, lr_max, i / a1)
    return cos(lr_max, lr_max / final_div, (i - a1) / a2)


def _one_cycle_mom(i, n, moms=(0.95, 0.85), pct=0.3):
    a1 = int(n * pct)

    def cos(start, end, p):
        return end + (start - end) / 2 * (1 + math.cos(math.pi * p))

    return cos(moms[0], moms[1], i / a1) if i < a1 else cos(moms[1], moms[0], (i - a1) / (n - a1))


def test_one_cycle_follows_the_formula():
    learn = fake_learner()
    learn.fit_one_cycle(3, 1e-2)
    n = 3 * len(learn.data.train_dl)
    assert len(learn.recorder.lrs) == n
    np.testing.assert_allclose(learn.recorder.lrs, [_one_cycle_lr(i, n, 1e-2) for i in range(n)], rtol=1e-10)
    np.testing.assert_allclose(learn.recorder.moms, [_one_cycle_mom(i, n) for i in range(n)], rtol=1e-10)


def test_one_cycle_defaults_and_options():
    learn = fake_learner()
    learn.fit_one_cycle(2, 1e-2, moms=(0.9, 0.8), div_factor=10., pct_start=0.5, final_div=100.)
    n = 2 * len(learn.data.train_dl)
    expected = [_one_cycle_lr(i, n, 1e-2, div=10., pct=0.5, final_div=100.) for i in range(n)]
    np.testing.assert_allclose(learn.recorder.lrs, expected, rtol=1e-10)
    assert learn.recorder.moms[0] == pytest.approx(0.9)


def test_one_cycle_with_discriminative_lrs():
    learn = fake_learner()
    learn.fit_one_cycle(1, slice(1e-4, 1e-2))
    n = len(learn.data.train_dl)
    first_group = [pg['lr'] for pg in learn.opt.opt.param_groups]
    assert first_group[0] == pytest.approx(_one_cycle_lr(n, n, 1e-4), rel=1e-9)
    assert first_group[1] == pytest.approx(_one_cycle_lr(n, n, 1e-2), rel=1e-9)


def _state(learn):
    return {k: v.clone() for k, v in learn.model.state_dict().items()}


def test_lr_find_restores_everything_and_writes_nothing(tmp_path):
    learn = fake_learner(path=tmp_path)
    learn.fit(1, 1e-2)  # an optimizer with state, BN statistics that moved
    set_seed(5)
    weights = _state(learn)
    opt_state = {p: {k: v.clone() for k, v in s.items()} for p, s in learn.opt.opt.state.items()}
    opt_lr = [pg['lr'] for pg in learn.opt.opt.param_groups]
    rng_next = torch.get_rng_state()
    learn.model.eval()
    sugg = learn.lr_find(num_it=30)
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for p, s in learn.opt.opt.state.items():
        for k, v in s.items():
            assert torch.equal(v, opt_state[p][k])
    assert [pg['lr'] for pg in learn.opt.opt.param_groups] == opt_lr
    assert torch.equal(torch.get_rng_state(), rng_next)
    assert not learn.model.training  # its mode is put back too
    assert list(tmp_path.rglob('*')) == []
    assert sugg.valley is not None and sugg.steep is not None and sugg.minimum is not None


def test_training_after_lr_find_is_the_same_as_without():
    def run(with_lr_find):
        set_seed(3)
        learn = fake_learner()
        if with_lr_find:
            learn.lr_find(num_it=20)
        learn.fit_one_cycle(2, 1e-2)
        return learn.recorder.losses, _state(learn)

    (losses_a, state_a), (losses_b, state_b) = run(False), run(True)
    assert losses_a == losses_b
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


class _NaNAbove(nn.Module):
    "Cross-entropy that turns NaN once the learning rate passes `threshold` (a model diverging)."

    def __init__(self, learn, threshold):
        super().__init__()
        self.learn, self.threshold = [learn], threshold

    def forward(self, out, targ):
        loss = nn.functional.cross_entropy(out, targ)
        return loss * float('nan') if self.learn[0].opt.lr > self.threshold else loss


def test_lr_find_stops_cleanly_on_nan():
    learn = fake_learner()
    learn.loss_func = _NaNAbove(learn, 1e-3)
    weights = _state(learn)
    sugg = learn.lr_find(start_lr=1e-6, end_lr=1, num_it=60)
    lrs = learn.recorder.lrs
    assert max(lrs) < 2e-3  # stopped at the first NaN, not at the end of the sweep
    for k, v in learn.model.state_dict().items():
        assert torch.equal(v, weights[k])
    assert all(math.isfinite(s) for s in sugg)
    assert all(s <= 2e-3 for s in sugg)


def test_suggestions_on_a_known_curve():
    lrs = np.logspace(-6, 0, 100)
    x = np.log10(lrs)
    losses = 2 - 1.5 / (1 + np.exp(-3 * (x + 3)))  # falls fastest at 1e-3, flat after
    losses[80:] = losses[80] + (x[80:] - x[80]) * 3  # then diverges
    sugg = suggest_lrs(lrs, losses)
    assert sugg.steep == pytest.approx(1e-3, rel=0.2)
    assert sugg.minimum == pytest.approx(lrs[80] / 10, rel=0.01)
    assert 1e-6 < sugg.valley < lrs[80]


def test_plot_suggestion_marks_the_suggestions():
    learn = fake_learner()
    sugg = learn.lr_find(num_it=30)
    fig = learn.recorder.plot(suggestion=True, return_fig=True)
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert f'valley: {sugg.valley:.2e}' in labels
    assert f'steep: {sugg.steep:.2e}' in labels
    assert learn.recorder.min_grad_lr == sugg.steep
    plt.close('all')


@pytest.mark.parametrize('method', ['to_fp16', 'to_bf16'])
def test_mixed_precision_on_cpu_matches_fp32_accuracy(method):
    def train(precision):
        set_seed(0)
        learn = fake_learner(metrics=[accuracy])
        if precision:
            with pytest.warns(UserWarning, match='bfloat16') if precision == 'to_fp16' else contextlib.nullcontext():
                getattr(learn, precision)()
        learn.fit_one_cycle(4, 1e-2)
        return learn.validate()[1]

    fp32, low = train(None), train(method)
    assert fp32 > 0.85
    assert abs(low - fp32) < 0.05


def test_bf16_loss_mirrors_fp32_on_one_batch():
    learn = fake_learner()
    xb, yb = learn.data.one_batch(detach=False)
    learn.model.eval()
    with torch.no_grad():
        fp32 = learn.loss_func(learn.model(xb), yb)
    learn.to_bf16()
    from fastlib.callback import CallbackHandler
    from fastlib.basic_train import loss_batch
    handler = CallbackHandler(learn.callbacks)
    xb2, yb2 = handler.on_batch_begin(xb, yb, train=False)
    with torch.no_grad():
        low = loss_batch(learn.model, xb2, yb2, learn.loss_func, cb_handler=handler)
    assert low.dtype == torch.float32  # the loss itself is computed in float32
    assert float(low) == pytest.approx(float(fp32), rel=2e-2)
    assert float(low) != float(fp32)  # autocast really ran in bfloat16


def test_autocast_is_active_in_the_forward_pass_only():
    learn = fake_learner(train_length=64)
    learn.fit(1, 1e-3)  # the first fit also runs a one-off float32 check of the model's output size
    learn.to_bf16()
    dtypes = []
    learn.model[0].register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    learn.fit(1, 1e-3)
    assert set(dtypes) == {torch.bfloat16}
    assert torch.is_autocast_enabled('cpu') is False  # no autocast left on after training
    assert learn.model[0].weight.dtype == torch.float32  # master weights stay float32
    learn.to_fp32()
    assert not any(isinstance(cb, MixedPrecision) for cb in learn.callbacks)
    dtypes.clear()
    learn.fit(1, 1e-3)
    assert set(dtypes) == {torch.float32}


def test_mixup_mixes_training_and_restores_the_loss():
    learn = fake_learner()
    original = learn.loss_func
    seen = []

    class Spy(Callback):
        _order = 10

        def on_loss_begin(self, last_target, train, **kwargs):
            seen.append((train, tuple(last_target.shape)))

    learn.mixup(alpha=0.4)
    learn.fit(1, 1e-3, callbacks=[Spy()])
    assert all(shape == (32, 3) for train, shape in seen if train)  # target, partner target, lambda
    assert all(len(shape) == 1 for train, shape in seen if not train)
    assert learn.loss_func is original


def test_mixup_loss_formula():
    crit = nn.CrossEntropyLoss()
    out = torch.randn(4, 3)
    y1, y2, lam = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2]), torch.tensor([0.9, 0.6, 0.7, 0.5])
    loss = MixUpLoss(crit)(out, torch.stack([y1.float(), y2.float(), lam], 1))
    ce = nn.functional.cross_entropy
    expected = (ce(out, y1, reduction='none') * lam + ce(out, y2, reduction='none') * (1 - lam)).mean()
    torch.testing.assert_close(loss, expected)
    assert crit.reduction == 'mean'


def test_clip_grad_bounds_the_gradient_norm():
    learn = fake_learner()
    norms = []

    class Probe(Callback):
        _order = 50  # after GradientClipping

        def on_backward_end(self, **kwargs):
            params = [p for p in learn.model.parameters() if p.grad is not None]
            norms.append(float(torch.norm(torch.stack([p.grad.norm() for p in params]))))

    learn.clip_grad(1e-3)
    learn.fit(1, 1e-3, callbacks=[Probe()])
    assert max(norms) <= 1e-3 * 1.0001


def test_fine_tune_trains_head_then_everything():
    learn = fake_learner(metrics=[accuracy])
    body = learn.model[0].weight.detach().clone()
    body_after_frozen_phase = []

    class Probe(Callback):
        def on_train_end(self, **kwargs):
            body_after_frozen_phase.append(learn.model[0].weight.detach().clone())

    learn.callbacks.append(Probe())
    learn.fine_tune(2, base_lr=1e-2, freeze_epochs=1)
    assert torch.equal(body_after_frozen_phase[0], body)  # phase 1: the body is frozen
    assert not torch.equal(learn.model[0].weight, body)   # phase 2: everything trains
    assert all(p.requires_grad for p in learn.model.parameters())
    lrs = [pg['lr'] for pg in learn.opt.opt.param_groups]
    assert lrs[1] / lrs[0] == pytest.approx(100)  # slice(base_lr / lr_mult, base_lr) over the two groups


def test_classification_interpretation():
    learn = fake_learner()
    learn.fit(2, 1e-2)
    interp = ClassificationInterpretation.from_learner(learn)
    preds, targs = learn.get_preds()
    cm = interp.confusion_matrix()
    manual = np.zeros((3, 3), dtype=int)
    for t, p in zip(targs.tolist(), preds.argmax(1).tolist()):
        manual[t, p] += 1
    np.testing.assert_array_equal(cm, manual)
    confused = interp.most_confused(min_val=1)
    assert confused == sorted(confused, key=lambda o: -o[2])
    assert all(a != p and manual[int(a[-1]), int(p[-1])] == n for a, p, n in confused)
    losses, idx = interp.top_losses(5)
    assert torch.all(losses[:-1] >= losses[1:])
    fig = interp.plot_confusion_matrix(return_fig=True)
    assert fig is not None
    plt.close('all')


def test_multilabel_interpretation_thresholds_probabilities():
    from fastlib.layers import BCEWithLogitsFlat
    from fastlib.train import MultiLabelClassificationInterpretation
    from fastlib.testing import FakeDataset
    from fastlib.basic_data import DataBunch
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 8, generator=g)
    y = (x[:, :3] > 0).float()  # three independent labels
    data = DataBunch.create(FakeDataset(x, y), FakeDataset(x, y), bs=16, num_workers=0, device='cpu')
    learn = fake_learner(data=data, loss_func=BCEWithLogitsFlat())
    interp = MultiLabelClassificationInterpretation.from_learner(learn, thresh=0.5)
    raw = learn.get_preds(activ=lambda t: t)[0]
    assert torch.equal(interp.pred_class, raw.sigmoid() > 0.5)


def test_fit_fc_is_flat_then_cosine():
    learn = fake_learner()
    learn.fit_fc(2, 1e-2, moms=(0.9, 0.8), start_pct=0.5)
    n = 2 * len(learn.data.train_dl)
    flat = n // 2
    want = [1e-2] * flat + [1e-2 * (1 + math.cos(math.pi * i / (n - flat))) / 2 for i in range(n - flat)]
    np.testing.assert_allclose(learn.recorder.lrs, want, rtol=1e-10)
    np.testing.assert_allclose(learn.recorder.moms, [0.9] * flat + [0.8] * (n - flat), rtol=1e-10)
    with pytest.raises(ValueError, match=r'start_pct is the flat share of the iterations'):
        learn.fit_fc(1, start_pct=1.)
