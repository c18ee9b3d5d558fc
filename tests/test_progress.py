"""Progress display: plain lines in logs, a bar in a terminal, off on request; the epoch table either way."""
import pytest

from fastlib.progress import no_progress, progress_mode
from fastlib.testing import fake_learner
from fastlib.torch_core import defaults


@pytest.fixture
def restore_progress():
    old = defaults.progress
    yield
    defaults.progress = old


def test_plain_lines_when_stdout_is_not_a_terminal(capsys):
    assert progress_mode() == 'plain'  # pytest captures stdout: not a terminal
    learn = fake_learner(metrics=['accuracy'])
    learn.fit(3, 1e-3)
    out = capsys.readouterr().out
    assert '\r' not in out  # no carriage-return flood in a log
    lines = out.strip().splitlines()
    assert lines[0].split() == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time']
    assert [line.split()[0] for line in lines[1:]] == ['0', '1', '2']
    assert float(lines[-1].split()[2]) == pytest.approx(learn.recorder.val_losses[-1], abs=1e-6)


def test_console_mode_draws_a_bar(capsys, restore_progress):
    defaults.progress = 'console'
    fake_learner().fit(1, 1e-3)
    out = capsys.readouterr().out
    assert '\r' in out and 'Epoch 1/1' in out


def test_progress_false_and_no_progress_turn_bars_off(capsys, restore_progress):
    defaults.progress = 'console'
    learn = fake_learner()
    learn.fit(1, 1e-3, progress=False)
    out = capsys.readouterr().out
    assert '\r' not in out and out.splitlines()[0].split()[0] == 'epoch'  # the table still prints
    with no_progress():
        assert progress_mode() is False
        learn.fit(1, 1e-3)
    assert '\r' not in capsys.readouterr().out
    assert defaults.progress == 'console'  # restored after the block


def test_silent_learner_prints_nothing(capsys):
    fake_learner(silent=True).fit(2, 1e-3)
    assert capsys.readouterr().out == ''


def test_unknown_mode_error(restore_progress):
    defaults.progress = 'fancy'
    with pytest.raises(ValueError, match="defaults.progress must be 'auto', False or one of"):
        progress_mode()
