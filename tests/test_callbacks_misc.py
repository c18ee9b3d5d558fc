"""Tests of CSVLogger, GeneralScheduler/TrainingPhase, StopAfterNBatches and LossMetrics."""
import csv
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastlib.callback import Callback, annealing_cos, annealing_exp
from fastlib.callbacks.csv_logger import CSVLogger
from fastlib.callbacks.general_sched import GeneralScheduler, TrainingPhase
from fastlib.callbacks.loss_metrics import LossMetrics
from fastlib.callbacks.misc import StopAfterNBatches
from fastlib.testing import fake_learner

N_BATCHES = 8  # fake_learner: 256 training items in batches of 32


def read_rows(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def table_rows(learn):
    "The epoch table's numbers as the recorder holds them, formatted as printed (without the time)."
    rec = learn.recorder
    ends = np.cumsum(rec.nb_batches) - 1
    rows = []
    for epoch, end in enumerate(ends):
        stats = [rec.losses[end], rec.val_losses[epoch]] + list(rec.metrics[epoch] if rec.metrics else [])
        rows.append([str(epoch)] + [f'{s:.6f}' for s in stats])
    return rows


# --- CSVLogger ---------------------------------------------------------------------------------------------

def test_csv_logger_writes_header_and_one_row_per_epoch(tmp_path):
    learn = fake_learner(path=tmp_path, metrics=['accuracy'], callback_fns=[CSVLogger], silent=True)
    learn.fit(2, 1e-2)
    rows = read_rows(tmp_path / 'history.csv')
    assert rows[0] == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time'] == learn.recorder.names
    assert len(rows) == 3
    assert [r[:-1] for r in rows[1:]] == table_rows(learn)
    assert all(len(r[-1]) == 5 and r[-1][2] == ':' for r in rows[1:])  # time as mm:ss

    df = learn.csv_logger.read_logged_file()
    assert list(df.columns) == learn.recorder.names and len(df) == 2
    np.testing.assert_allclose(df['valid_loss'], learn.recorder.val_losses, atol=1e-6)


def test_csv_logger_append_adds_rows_without_a_second_header(tmp_path):
    learn = fake_learner(path=tmp_path, callback_fns=[functools.partial(CSVLogger, filename='log')], silent=True)
    learn.fit(2, 1e-2)
    first = table_rows(learn)
    learn.callback_fns[-1] = functools.partial(CSVLogger, filename='log', append=True)
    learn.fit(1, 1e-2)
    rows = read_rows(tmp_path / 'log.csv')
    assert rows[0] == ['epoch', 'train_loss', 'valid_loss', 'time']
    assert [r[:-1] for r in rows[1:]] == first + table_rows(learn)
    assert len(learn.csv_logger.read_logged_file()) == 3

    learn.callback_fns[-1] = functools.partial(CSVLogger, filename='log')  # append=False starts over
    learn.fit(1, 1e-2)
    assert len(read_rows(tmp_path / 'log.csv')) == 2


def test_csv_logger_append_to_a_file_with_other_columns_fails_early(tmp_path):
    fake_learner(path=tmp_path, callback_fns=[CSVLogger], silent=True).fit(1, 1e-2)
    learn = fake_learner(path=tmp_path, metrics=['accuracy'], silent=True)
    with pytest.raises(ValueError, match="has the columns .* Log to another file"):
        learn.fit(1, 1e-2, callbacks=[CSVLogger(learn, append=True)])
    assert len(read_rows(tmp_path / 'history.csv')) == 2  # left as it was


class CrashAtEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, epoch, **kwargs):
        if epoch == self.epoch:
            raise RuntimeError('simulated crash')


def test_csv_logger_keeps_the_rows_written_before_a_crash(tmp_path):
    learn = fake_learner(path=tmp_path, callback_fns=[CSVLogger], silent=True)
    with pytest.raises(RuntimeError, match='simulated crash'):
        learn.fit(3, 1e-2, callbacks=[CrashAtEpoch(2)])
    rows = read_rows(tmp_path / 'history.csv')
    assert [r[0] for r in rows] == ['epoch', '0', '1']


def test_csv_logger_marks_skipped_validation_as_na(tmp_path):
    learn = fake_learner(path=tmp_path, metrics=['accuracy'], callback_fns=[CSVLogger], silent=True)
    learn.fit(1, 1e-2, callbacks=[StopAfterNBatches(3)])
    rows = read_rows(tmp_path / 'history.csv')
    assert rows[1][2:4] == ['#na#', '#na#']
    df = learn.csv_logger.read_logged_file()
    assert df['valid_loss'].isna().all() and df['train_loss'].notna().all()


# --- GeneralScheduler --------------------------------------------------------------------------------------

def test_general_scheduler_follows_the_annealing_formulas(tmp_path):
    learn = fake_learner(path=tmp_path, silent=True)
    phases = [TrainingPhase(5).schedule_hp('lr', (1e-3, 1e-2), anneal=annealing_cos).schedule_hp('mom', (0.95, 0.85)),
              TrainingPhase(7).schedule_hp('lr', (1e-2, 1e-4), anneal=annealing_exp).schedule_hp('eps', 1e-6)]
    learn.fit(2, 1e-2, callbacks=[GeneralScheduler(learn, phases)])
    rec = learn.recorder
    # batch i of a phase of length n trains with anneal(start, end, i/n); mom's default anneal is linear
    expected_lrs = ([annealing_cos(1e-3, 1e-2, i / 5) for i in range(5)]
                    + [annealing_exp(1e-2, 1e-4, i / 7) for i in range(7)])
    expected_moms = [0.95 - 0.1 * i / 5 for i in range(5)] + [0.95 - 0.1 * 4 / 5] * 7  # phase 2 leaves mom alone
    np.testing.assert_allclose(rec.lrs, expected_lrs, rtol=1e-12)
    np.testing.assert_allclose(rec.moms, expected_moms, rtol=1e-12)
    assert rec.nb_batches == [N_BATCHES, 12 - N_BATCHES]  # training stops when the last phase ends
    assert all(pg['eps'] == 1e-6 for pg in learn.opt.param_groups)  # other optimizer keys go through set_stat
    assert all(pg['betas'][0] == pytest.approx(0.87) for pg in learn.opt.param_groups)


def test_general_scheduler_resumes_at_start_epoch(tmp_path):
    learn = fake_learner(path=tmp_path, silent=True)
    phases = [TrainingPhase(5).schedule_hp('lr', (1e-3, 1e-2)), TrainingPhase(7).schedule_hp('lr', (1e-2, 1e-4))]
    learn.fit(2, 1e-2, callbacks=[GeneralScheduler(learn, phases, start_epoch=1)])
    # epoch 1 starts at iteration 8: batch 3 of the second phase; 4 batches are left
    expected = [1e-2 + (1e-4 - 1e-2) * i / 7 for i in range(3, 7)]
    np.testing.assert_allclose(learn.recorder.lrs, expected, rtol=1e-12)


def test_training_phase_validates_its_length():
    assert TrainingPhase(3).schedule_hp('lr', 0.1).scheds['lr'].start == 0.1
    with pytest.raises(ValueError, match='at least 1'):
        TrainingPhase(0)


# --- StopAfterNBatches -------------------------------------------------------------------------------------

def test_stop_after_n_batches(tmp_path):
    learn = fake_learner(path=tmp_path, silent=True)
    learn.fit(3, 1e-2, callbacks=[StopAfterNBatches(n_batches=3)])
    assert learn.recorder.nb_batches == [3]
    assert learn.recorder.val_losses == []  # validation skipped
    learn.fit(2, 1e-2, callbacks=[StopAfterNBatches(n_batches=N_BATCHES + 2)])  # counts across epochs
    assert learn.recorder.nb_batches == [N_BATCHES, 2]


# --- LossMetrics -------------------------------------------------------------------------------------------

class TwoPartLoss:
    "Cross-entropy plus an L2 penalty on the outputs, exposing both parts as fastai v1 loss metrics."
    metric_names = ['ce', 'l2']

    def __call__(self, out, targ):
        ce = F.cross_entropy(out, targ)
        l2 = 0.01 * out.pow(2).mean()
        self.metrics = {'ce': ce, 'l2': l2}
        return ce + l2


def test_loss_metrics_adds_one_column_per_part(tmp_path):
    learn = fake_learner(path=tmp_path, loss_func=TwoPartLoss(), metrics=['accuracy'], silent=True,
                         callback_fns=[LossMetrics, CSVLogger])
    learn.fit(2, 1e-2)
    rec = learn.recorder
    assert rec.names == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'ce', 'l2', 'time']
    # oracle: the parts averaged over the validation set, weighted by batch size
    learn.model.eval()
    sums, n = torch.zeros(2), 0
    with torch.no_grad():
        for xb, yb in learn.data.valid_dl:
            out = learn.model(xb)
            sums += torch.stack([F.cross_entropy(out, yb), 0.01 * out.pow(2).mean()]) * len(yb)
            n += len(yb)
    np.testing.assert_allclose(rec.metrics[-1][1:], (sums / n).tolist(), rtol=1e-5)
    assert rec.val_losses[-1] == pytest.approx(sum(rec.metrics[-1][1:]), rel=1e-5)
    assert read_rows(tmp_path / 'history.csv')[0] == rec.names


def test_loss_metrics_needs_named_parts(tmp_path):
    learn = fake_learner(path=tmp_path, silent=True, callback_fns=[LossMetrics])
    with pytest.raises(ValueError, match='metric_names'):
        learn.fit(1, 1e-2)
