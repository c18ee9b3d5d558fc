"""Full-state checkpoints: a run killed with SIGKILL mid-epoch, resumed, ends with the weights of an uninterrupted
run, bit for bit on a CPU (tests/resume_scripts/train.py draws random numbers for shuffling, augmentation and
dropout); and the errors a resume can meet."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastlib.callbacks import CSVLogger, EarlyStoppingCallback, SaveModelCallback
from fastlib.serialization import safe_load
from fastlib.testing import fake_learner
from fastlib.torch_core import set_seed

SCRIPT = Path(__file__).parent / 'resume_scripts' / 'train.py'
ROOT = Path(__file__).resolve().parents[1]


def _run(out: Path, mode: str, workers: int = 0) -> subprocess.CompletedProcess:
    env = {**os.environ, 'OMP_NUM_THREADS': '1',
           'PYTHONPATH': str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', '')}
    return subprocess.run([sys.executable, str(SCRIPT), str(out), mode, str(workers)], capture_output=True,
                          text=True, timeout=300, env=env)


def _same_weights(a: Path, b: Path) -> bool:
    sa, sb = torch.load(a), torch.load(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope='module')
def clean_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('clean')
    proc = _run(out, 'clean')
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope='module')
def crashed_run(tmp_path_factory):
    "A run killed by SIGKILL after batch 7 of epoch 2 (12 batches per epoch)."
    out = tmp_path_factory.mktemp('crash')
    proc = _run(out, 'crash')
    assert proc.returncode == -9, (proc.returncode, proc.stderr[-3000:])   # killed, no clean-up ran
    return out


def _resume(crashed: Path, tmp_path: Path, mode: str, workers: int = 0) -> Path:
    "A copy of the crashed run's folder, resumed in a new process with `mode`."
    out = tmp_path / 'resumed'
    subprocess.run(['cp', '-r', str(crashed), str(out)], check=True)
    proc = _run(out, mode, workers)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_killed_run_resumed_from_batch_checkpoint_ends_bitwise_equal(clean_run, crashed_run, tmp_path):
    out = _resume(crashed_run, tmp_path, 'resume_last')
    assert _same_weights(clean_run / 'clean.pt', out / 'resume_last.pt')
    clean, resumed = (json.loads((d / f'{m}.json').read_text()) for d, m in ((clean_run, 'clean'), (out, 'resume_last')))
    assert resumed == clean   # the recorder's whole history: losses, lrs, validation, batches per epoch
    assert (out / 'history.csv').read_bytes() == (clean_run / 'history.csv').read_bytes()
    assert not [p for p in (out / 'models').iterdir() if p.name.startswith('.')]   # no temporary files left


def test_killed_run_resumed_with_start_epoch_ends_bitwise_equal(clean_run, crashed_run, tmp_path):
    out = _resume(crashed_run, tmp_path, 'start_epoch')   # fastai v1's way: loads ck_1, jumps the schedule
    assert _same_weights(clean_run / 'clean.pt', out / 'start_epoch.pt')
    clean, resumed = (json.loads((d / f'{m}.json').read_text()) for d, m in ((clean_run, 'clean'), (out, 'start_epoch')))
    assert resumed == clean


@pytest.mark.slow
def test_resume_with_dataloader_workers_is_bitwise_equal(tmp_path):
    "Workers started each epoch take their seeds from the main process's generator, which the checkpoint holds."
    clean, crash = tmp_path / 'clean', tmp_path / 'crash'
    clean.mkdir(), crash.mkdir()
    assert _run(clean, 'clean', workers=1).returncode == 0
    assert _run(crash, 'crash', workers=1).returncode == -9
    assert _run(crash, 'resume_last', workers=1).returncode == 0
    assert _same_weights(clean / 'clean.pt', crash / 'resume_last.pt')


def test_checkpoint_holds_the_whole_state_and_loads_without_trust(clean_run):
    state = safe_load(clean_run / 'models' / 'ck_last.pth')   # no trusted=True: plain data only
    assert set(state) == {'model', 'opt', 'train_state'}
    ts = state['train_state']
    assert (ts['epoch'], ts['num_batch'], ts['iteration'], ts['n_epochs'], ts['n_batches']) == (4, 0, 48, 4, 12)
    assert set(ts['rng']) >= {'python', 'numpy', 'torch'}
    cbs = ts['callbacks']
    assert len(cbs['Recorder']['_losses']) == 48 and cbs['Recorder']['nb_batches'] == [12] * 4
    assert cbs['OneCycleScheduler'] == {'n_steps': 48}
    assert cbs['CSVLogger']['rows'].count(b'\r\n') == 5   # header + 4 epochs


@pytest.mark.parametrize('fit', ['one_cycle', 'fc', 'plain'])
def test_resume_from_an_epoch_checkpoint_in_process(tmp_path, fit):
    "Each schedule (and none) resumes: a learner built afresh, resumed from epoch 0's file, ends as the full run."
    def run(resume=None):
        set_seed(1)
        learn = fake_learner(path=tmp_path)
        learn.model[1].register_forward_hook(lambda m, i, o: torch.nn.functional.dropout(o, 0.2, m.training))
        cbs = [SaveModelCallback(learn, every='epoch', name='ep'),
               EarlyStoppingCallback(learn, monitor='accuracy', patience=5)]
        learn.metrics = ['accuracy']
        if fit == 'one_cycle':
            learn.fit_one_cycle(3, 1e-2, callbacks=cbs, resume=resume)
        elif fit == 'fc':
            learn.fit_fc(3, 1e-2, callbacks=cbs, resume=resume)
        else:
            learn.fit(3, 1e-2, callbacks=cbs, resume=resume)
        return learn, cbs[1]

    full, stop_full = run()
    resumed, stop_resumed = run(resume='ep_0')
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    assert resumed.recorder.losses == full.recorder.losses and resumed.recorder.lrs == full.recorder.lrs
    assert (stop_resumed.best, stop_resumed.wait) == (stop_full.best, stop_full.wait)


def test_resume_errors_say_what_to_do(tmp_path):
    learn = fake_learner(path=tmp_path)
    learn.fit(2, 1e-2, callbacks=[SaveModelCallback(learn, every='epoch', name='ep')])
    learn.save('weights_only')
    with pytest.raises(ValueError, match=r"weights_only.pth holds a model but not the state of a run.*"
                                         r"SaveModelCallback\(every='epoch'\).*learn.load\(\)"):
        learn.fit(2, resume='weights_only')
    with pytest.raises(ValueError, match=r"ep_0.pth was saved in a run of 2 epochs; resume it with the same call "
                                         r"\(epochs=2\), not 5"):
        learn.fit(5, resume='ep_0')
    learn.data.train_dl = learn.data.train_dl.new(batch_size=64)
    with pytest.raises(ValueError, match=r"saved with 8 training batches per epoch, but the data now gives 4"):
        learn.fit(2, resume='ep_0')
    with pytest.raises(FileNotFoundError, match=r"No saved model at .*ep_9.pth.*Did you mean"):
        learn.fit(2, resume='ep_9')
    with pytest.raises(ValueError, match=r"every_batches must be a whole number >= 1 \(or None\), not 0"):
        SaveModelCallback(learn, every_batches=0)


def test_truncated_checkpoint_names_the_file(tmp_path):
    learn = fake_learner(path=tmp_path)
    learn.fit(1, 1e-2, callbacks=[SaveModelCallback(learn, every='epoch', name='ep')])
    f = tmp_path / 'models' / 'ep_0.pth'
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"ep_0.pth is not a readable fastlib/torch saved model \(truncated or "
                                         r"corrupted\?\)"):
        learn.fit(1, resume='ep_0')


def test_batch_checkpoints_every_n_batches(tmp_path):
    learn = fake_learner(path=tmp_path)   # 8 batches per epoch
    saves = []
    original = learn.save
    learn.save = lambda file=None, **kw: saves.append((file, kw.get('train_state', {}).get('num_batch'))) or \
        original(file, **kw)
    learn.fit(1, 1e-2, callbacks=[SaveModelCallback(learn, every_batches=3, name='b')])
    assert [s for s in saves if s[0] == 'b_last'] == [('b_last', 3), ('b_last', 6), ('b_last', 0)]
    assert ('b', None) in saves   # every='improvement' still saves the best model


def test_csv_history_of_a_resumed_run_drops_rows_after_the_checkpoint(tmp_path):
    def run(resume=None):
        set_seed(0)
        learn = fake_learner(path=tmp_path, add_time=False)
        learn.fit(3, 1e-2, callbacks=[SaveModelCallback(learn, every='epoch', name='ep'), CSVLogger(learn)],
                  resume=resume)
    run()
    full = (tmp_path / 'history.csv').read_bytes()
    run(resume='ep_0')   # rows 1 and 2 are written again, not duplicated
    assert (tmp_path / 'history.csv').read_bytes() == full and full.count(b'\r\n') == 4
