"""Tests of fastlib.callbacks.tracker: NaN guard, early stopping, best-model saving, lr reduction, epoch tracking."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastlib.callback import Callback
from fastlib.callbacks.tracker import (EarlyStoppingCallback, ReduceLROnPlateauCallback, SaveModelCallback,
                                       TerminateOnNaNCallback, TrackEpochCallback, TrackerCallback)
from fastlib.testing import fake_learner

N_BATCHES = 8  # fake_learner: 256 training items in batches of 32


class ScriptedMetric(Callback):
    "A metric column `name` whose value at epoch i is `values[i]`: lets a test decide what a tracker sees."

    def __init__(self, name, values):
        self.name, self.values = name, list(values)

    def on_epoch_end(self, epoch, last_metrics, **kwargs):
        return {'last_metrics': list(last_metrics) + [self.values[epoch]]}


class SnapshotWeights(Callback):
    "Keep a copy of the model's weights at the end of each epoch (runs after the trackers)."
    _order = 100

    def __init__(self, learn):
        self.learn, self.states = learn, []

    def on_epoch_end(self, **kwargs):
        self.states.append(copy.deepcopy(self.learn.model.state_dict()))


def scripted_learner(tmp_path, name, values, **kwargs):
    "A small learner (2 training batches per epoch) with a scripted metric column `name`."
    return fake_learner(path=tmp_path, metrics=[ScriptedMetric(name, values)], silent=True, train_length=64,
                        valid_length=64, **kwargs)


def n_epochs_run(learn):
    return len(learn.recorder.nb_batches)


def states_equal(a, b):
    return all(torch.equal(a[k], b[k]) for k in a)


# --- TrackerCallback: mode, monitor ----------------------------------------------------------------------

@pytest.mark.parametrize('monitor, operator', [
    ('valid_loss', np.less), ('train_loss', np.less), ('error_rate', np.less), ('root_mean_squared_error', np.less),
    ('rmse', np.less), ('perplexity', np.less), ('accuracy', np.greater), ('dice', np.greater),
    ('r2_score', np.greater)])
def test_auto_mode_picks_min_for_losses_and_errors(tmp_path, monitor, operator):
    learn = fake_learner(path=tmp_path)
    assert TrackerCallback(learn, monitor=monitor).operator is operator


def test_explicit_mode_and_bad_mode(tmp_path):
    learn = fake_learner(path=tmp_path)
    assert TrackerCallback(learn, monitor='valid_loss', mode='max').operator is np.greater
    assert TrackerCallback(learn, monitor='accuracy', mode='min').operator is np.less
    with pytest.raises(ValueError, match="'auto', 'min' or 'max'"):
        TrackerCallback(learn, mode='minimum')


def test_typo_in_monitor_fails_at_train_begin_with_suggestion(tmp_path):
    learn = fake_learner(path=tmp_path, metrics=['accuracy'], silent=True)
    with pytest.raises(ValueError) as err:
        learn.fit(1, callbacks=[EarlyStoppingCallback(learn, monitor='valid_los')])
    msg = str(err.value)
    assert "monitor='valid_los' is not a column" in msg
    assert "Did you mean 'valid_loss'" in msg
    assert "'train_loss', 'valid_loss', 'accuracy'" in msg  # the available names are listed
    with pytest.raises(ValueError, match="Did you mean 'accuracy'"):
        learn.fit(1, callbacks=[SaveModelCallback(learn, monitor='acuracy')])


def test_get_monitor_value_reads_the_column(tmp_path):
    learn = scripted_learner(tmp_path, 'score', [0.25, 0.75])
    seen = []

    class Spy(TrackerCallback):
        def on_epoch_end(self, last_metrics=None, smooth_loss=None, **kwargs):
            seen.append((self.get_monitor_value(last_metrics, smooth_loss), self.get_monitor_value()))

    learn.fit(2, 1e-2, callbacks=[Spy(learn, monitor='score'), Spy(learn, monitor='train_loss'),
                                  Spy(learn, monitor='valid_loss')])
    rec = learn.recorder
    ends = np.cumsum(rec.nb_batches) - 1
    for epoch in range(2):
        score, train, valid = seen[3 * epoch:3 * epoch + 3]
        assert score == (rec.metrics[epoch][0],) * 2
        assert train[0] == pytest.approx(rec.losses[ends[epoch]]) and train[1] == pytest.approx(train[0])
        assert valid == (rec.val_losses[epoch],) * 2


# --- EarlyStoppingCallback ---------------------------------------------------------------------------------

def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path, capsys):
    # best at epoch 1; epochs 2, 3, 4 do not improve: with patience 2, stop at the end of epoch 4
    learn = scripted_learner(tmp_path, 'fake_loss', [1.0, 0.9, 0.95, 0.92, 0.91, 0.5, 0.4])
    learn.fit(7, 1e-2, callbacks=[EarlyStoppingCallback(learn, monitor='fake_loss', patience=2)])
    assert n_epochs_run(learn) == 5
    assert 'Epoch 4: early stopping' in capsys.readouterr().out


def test_early_stopping_patience_zero_and_max_mode(tmp_path):
    learn = scripted_learner(tmp_path, 'accuracy', [0.5, 0.6, 0.6, 0.9])
    learn.fit(4, 1e-2, callbacks=[EarlyStoppingCallback(learn, monitor='accuracy')])
    assert n_epochs_run(learn) == 3  # 0.6 does not beat 0.6


def test_early_stopping_continues_while_improving(tmp_path):
    learn = scripted_learner(tmp_path, 'fake_loss', [4., 3., 2., 1.])
    learn.fit(4, 1e-2, callbacks=[EarlyStoppingCallback(learn, monitor='fake_loss')])
    assert n_epochs_run(learn) == 4


@pytest.mark.parametrize('name, values, epochs_without_delta, epochs_with_delta', [
    ('fake_loss', [1.0, 0.95, 0.92, 0.85], 4, 3),  # min: must go below best - 0.1
    ('score', [0.5, 0.55, 0.58, 0.65], 4, 3),      # max: must go above best + 0.1
])
def test_early_stopping_min_delta(tmp_path, name, values, epochs_without_delta, epochs_with_delta):
    for min_delta, expected in [(0., epochs_without_delta), (0.1, epochs_with_delta)]:
        learn = scripted_learner(tmp_path, name, values)
        learn.fit(4, 1e-2, callbacks=[EarlyStoppingCallback(learn, monitor=name, min_delta=min_delta, patience=1)])
        assert n_epochs_run(learn) == expected, (min_delta, expected)


def test_is_improvement_respects_min_delta_in_both_modes(tmp_path):
    learn = fake_learner(path=tmp_path)
    low, high = TrackerCallback(learn, monitor='valid_loss'), TrackerCallback(learn, monitor='accuracy')
    low.best, high.best = 1.0, 0.5
    assert low.is_improvement(0.95) and not low.is_improvement(0.95, min_delta=0.1)
    assert low.is_improvement(0.85, min_delta=0.1) and not low.is_improvement(1.0)
    assert high.is_improvement(0.55) and not high.is_improvement(0.55, min_delta=0.1)
    assert high.is_improvement(0.65, min_delta=0.1) and not high.is_improvement(float('nan'))


# --- SaveModelCallback -------------------------------------------------------------------------------------

def test_save_model_keeps_the_best_epoch_and_loads_it_back(tmp_path, capsys):
    learn = scripted_learner(tmp_path, 'fake_loss', [3., 1., 2.])
    snap = SnapshotWeights(learn)
    learn.fit(3, 1e-2, callbacks=[SaveModelCallback(learn, monitor='fake_loss'), snap])
    assert (tmp_path / 'models' / 'bestmodel.pth').is_file()
    assert not states_equal(snap.states[1], snap.states[2])  # training did change the weights after epoch 1
    assert states_equal(learn.model.state_dict(), snap.states[1])
    assert 'Better model found at epoch 1' in capsys.readouterr().out


def test_save_model_ignores_a_file_left_by_an_earlier_run(tmp_path):
    learn = scripted_learner(tmp_path, 'fake_loss', [float('nan')] * 2)  # never improves: nothing saved
    (tmp_path / 'models').mkdir()
    (tmp_path / 'models' / 'bestmodel.pth').write_bytes(b'not a model')
    snap = SnapshotWeights(learn)
    learn.fit(2, 1e-2, callbacks=[SaveModelCallback(learn, monitor='fake_loss'), snap])
    assert states_equal(learn.model.state_dict(), snap.states[-1])


def test_save_model_every_epoch_writes_one_file_per_epoch(tmp_path):
    learn = fake_learner(path=tmp_path, silent=True)
    snap = SnapshotWeights(learn)
    learn.fit(3, 1e-2, callbacks=[SaveModelCallback(learn, every='epoch', name='model'), snap])
    files = sorted(p.name for p in (tmp_path / 'models').glob('*.pth'))
    assert files == ['model_0.pth', 'model_1.pth', 'model_2.pth']
    assert states_equal(learn.model.state_dict(), snap.states[2])  # every='epoch' loads nothing back
    learn.load('model_1')
    assert states_equal(learn.model.state_dict(), snap.states[1])


def test_save_model_bad_every(tmp_path):
    with pytest.raises(ValueError, match="'improvement' or 'epoch'"):
        SaveModelCallback(fake_learner(path=tmp_path), every='batch')


# --- ReduceLROnPlateauCallback -----------------------------------------------------------------------------

def test_reduce_lr_on_plateau_after_patience(tmp_path, capsys):
    # best at epoch 0; epochs 1, 2 do not improve: with patience 1, the lr is halved after epoch 2
    learn = scripted_learner(tmp_path, 'fake_loss', [1., 1., 1., 1.])
    cb = ReduceLROnPlateauCallback(learn, monitor='fake_loss', patience=1, factor=0.5, min_lr=1e-5)
    learn.fit(4, 1e-2, callbacks=[cb])
    lrs = np.array(learn.recorder.lrs).reshape(4, 2)
    np.testing.assert_allclose(lrs[:3], 1e-2)
    np.testing.assert_allclose(lrs[3], 5e-3)
    assert 'Epoch 2: reducing lr' in capsys.readouterr().out


def test_reduce_lr_keeps_group_ratios_and_floors_at_min_lr(tmp_path):
    learn = scripted_learner(tmp_path, 'fake_loss', [1., 2.])  # two layer groups: lrs 1e-3 and 1e-2
    learn.fit(2, slice(1e-3, 1e-2), callbacks=[ReduceLROnPlateauCallback(learn, monitor='fake_loss', factor=0.5)])
    np.testing.assert_allclose(learn.opt.read_val('lr'), [1e-3, 5e-3])  # 1e-3 is already at min_lr=1e-3
    learn = scripted_learner(tmp_path, 'fake_loss', [1., 2.])
    learn.fit(2, slice(1e-3, 1e-2), callbacks=[ReduceLROnPlateauCallback(learn, monitor='fake_loss', factor=0.1,
                                                                         min_lr=1e-5)])
    np.testing.assert_allclose(learn.opt.read_val('lr'), [1e-4, 1e-3])


# --- TerminateOnNaNCallback --------------------------------------------------------------------------------

class NaNAfter:
    "Cross-entropy that returns NaN from the `k`-th training call on (counting from 0)."

    def __init__(self, k):
        self.k, self.n = k, 0

    def __call__(self, out, targ):
        loss = F.cross_entropy(out, targ)
        if torch.is_grad_enabled():
            self.n += 1
            if self.n > self.k:
                return loss * float('nan')
        return loss


@pytest.mark.parametrize('k, batches', [(3, [4]), (N_BATCHES + 2, [N_BATCHES, 3])])
def test_terminate_on_nan_stops_at_the_first_nan(tmp_path, capsys, k, batches):
    learn = fake_learner(path=tmp_path, loss_func=NaNAfter(k), silent=True)
    learn.fit(3, 1e-2, callbacks=[TerminateOnNaNCallback()])  # no exception
    assert learn.recorder.nb_batches == batches
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())  # the NaN batch did not step
    assert f'Epoch {len(batches) - 1}, batch {batches[-1] - 1}: the training loss is nan' in capsys.readouterr().out


def test_terminate_on_nan_lets_finite_training_run(tmp_path):
    learn = fake_learner(path=tmp_path, silent=True)
    learn.fit(2, 1e-2, callbacks=[TerminateOnNaNCallback()])
    assert learn.recorder.nb_batches == [N_BATCHES, N_BATCHES] and len(learn.recorder.val_losses) == 2


# --- TrackEpochCallback ------------------------------------------------------------------------------------

class EpochSpy(Callback):
    def __init__(self):
        self.epochs = []

    def on_epoch_begin(self, epoch, **kwargs):
        self.epochs.append(epoch)


def test_track_epoch_resumes_after_the_last_finished_epoch(tmp_path):
    learn = fake_learner(path=tmp_path, silent=True, callback_fns=[TrackEpochCallback])
    spy = EpochSpy()
    learn.fit(2, 1e-2, callbacks=[spy])
    assert (tmp_path / 'models' / 'epoch').read_text() == '1'
    learn.fit(1, 1e-2, callbacks=[spy])
    assert spy.epochs == [0, 1, 2]
    learn.track_epoch_callback.restart()
    assert not (tmp_path / 'models' / 'epoch').exists()
    learn.fit(1, 1e-2, callbacks=[spy])
    assert spy.epochs[-1] == 0


def test_track_epoch_offset(tmp_path):
    learn = fake_learner(path=tmp_path, silent=True)
    spy = EpochSpy()
    learn.fit(2, 1e-2, callbacks=[spy, TrackEpochCallback(learn, epoch_offset=5)])
    assert spy.epochs == [5, 6]
    assert (tmp_path / 'models' / 'epoch').read_text() == '6'
