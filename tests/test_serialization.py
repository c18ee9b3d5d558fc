"""export/load_learner and safe loading: nothing in a file runs unless the caller trusts it."""
import os
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from fastlib.basic_train import Learner, load_learner
from fastlib.layers import PixelShuffle_ICNR, simple_cnn
from fastlib.metrics import accuracy
from fastlib.serialization import UnsafeFileError, atomic_save, safe_load
from fastlib.testing import fake_data, fake_learner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_export_then_load_learner_predicts_the_same(tmp_path):
    learn = fake_learner(path=tmp_path, metrics=[accuracy])
    learn.fit(2, 1e-2)
    learn.export()
    loaded = load_learner(tmp_path)
    x = learn.data.valid_ds.x[5]
    label, idx, probs = learn.predict(x)
    label2, idx2, probs2 = loaded.predict(x)
    assert label == label2 and idx == idx2
    torch.testing.assert_close(probs, probs2)
    assert loaded.data.classes == learn.data.classes
    assert loaded.metrics == [accuracy]
    assert not loaded.model.training


def test_export_loads_in_a_fresh_cpu_only_process(tmp_path):
    learn = fake_learner(path=tmp_path)
    learn.fit(1, 1e-2)
    learn.export('model.pkl')
    x = learn.data.valid_ds.x[:1]
    torch.save(x, tmp_path / 'x.pt')
    expected = learn.predict(x[0])[2]
    script = textwrap.dedent(f"""
        import torch
        from fastlib.basic_train import load_learner
        assert not torch.cuda.is_available()
        learn = load_learner({str(tmp_path)!r}, 'model.pkl')
        x = torch.load({str(tmp_path / 'x.pt')!r})
        torch.save(learn.predict(x[0])[2], {str(tmp_path / 'out.pt')!r})
    """)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', PYTHONPATH=ROOT)
    subprocess.run([sys.executable, '-c', script], check=True, env=env, timeout=120)
    torch.testing.assert_close(torch.load(tmp_path / 'out.pt'), expected)


def test_export_is_atomic(tmp_path, monkeypatch):
    learn = fake_learner(path=tmp_path)
    target = learn.export()
    good = target.read_bytes()
    real_save = torch.save
    calls = []

    def failing_second_save(obj, f, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the body is written in memory first; the second save writes the file
            f.write(b'partial')
            raise OSError('disk full')
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, 'save', failing_second_save)
    with pytest.raises(OSError, match='disk full'):
        learn.export()
    assert target.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ['export.pkl']


class MyNet(nn.Module):
    "A model class fastlib does not know."

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)

    def forward(self, x):
        return self.lin(x)


def test_user_model_class_needs_an_opt_in(tmp_path):
    learn = Learner(fake_data(), MyNet(), path=tmp_path)
    learn.export()
    with pytest.raises(UnsafeFileError, match=r'contains .*MyNet.*trusted=True.*safe_globals=\[MyNet\]'):
        load_learner(tmp_path)
    assert isinstance(load_learner(tmp_path, safe_globals=[MyNet]).model, MyNet)
    assert isinstance(load_learner(tmp_path, trusted=True).model, MyNet)


class _Evil:
    "Unpickling this runs `touch marker`."

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_crafted_file_runs_no_code(tmp_path):
    marker = tmp_path / 'marker'
    learn = fake_learner(path=tmp_path)
    learn.export()
    # Replace the model inside an otherwise valid export with an object whose unpickling runs a command.
    outer = torch.load(tmp_path / 'export.pkl', weights_only=False)
    import io
    body = torch.load(io.BytesIO(outer['body']), weights_only=False)
    body['model'] = _Evil(marker)
    buf = io.BytesIO()
    torch.save(body, buf)
    outer['body'] = buf.getvalue()
    torch.save(outer, tmp_path / 'export.pkl')
    with pytest.raises(UnsafeFileError, match='system'):
        load_learner(tmp_path)
    assert not marker.exists()
    # A model file for learn.load is checked the same way.
    (tmp_path / 'models').mkdir(exist_ok=True)
    torch.save({'model': _Evil(marker)}, tmp_path / 'models' / 'evil.pth')
    with pytest.raises(UnsafeFileError):
        learn.load('evil')
    assert not marker.exists()


def test_truncated_and_garbage_files_give_clear_errors(tmp_path):
    learn = fake_learner(path=tmp_path)
    data = learn.export().read_bytes()
    (tmp_path / 'export.pkl').write_bytes(data[:len(data) // 2])
    with pytest.raises(ValueError, match=r'export.pkl is not a readable fastlib/torch exported learner \(truncated'):
        load_learner(tmp_path)
    (tmp_path / 'junk.pkl').write_bytes(b'not a model at all')
    with pytest.raises(ValueError, match='truncated or corrupted'):
        load_learner(tmp_path, 'junk.pkl')
    with pytest.raises(FileNotFoundError, match='No exported learner at'):
        load_learner(tmp_path, 'missing.pkl')
    torch.save({'something': 1}, tmp_path / 'other.pkl')
    with pytest.raises(ValueError, match='was not written by Learner.export'):
        load_learner(tmp_path, 'other.pkl')


def test_export_model_with_weight_norm(tmp_path):
    "torch cannot pickle parametrized modules; export folds the parametrization into a plain weight."
    model = nn.Sequential(nn.Linear(8, 12), nn.Unflatten(1, (12, 1, 1)), PixelShuffle_ICNR(12, 3),
                          nn.Flatten(), nn.Linear(12, 3))
    learn = Learner(fake_data(), model, path=tmp_path)
    learn.export()
    loaded = load_learner(tmp_path)
    x = learn.data.valid_ds.x[:4]
    learn.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), learn.model(x))
    assert any(type(m).__name__ == 'ParametrizationList' for m in learn.model.modules())  # original untouched


def test_safe_load_reads_plain_files(tmp_path):
    path = atomic_save({'a': torch.arange(3), 'b': [1, 'x'], 'm': simple_cnn((3, 4, 2))}, tmp_path / 'f.pt')
    loaded = safe_load(path)
    assert torch.equal(loaded['a'], torch.arange(3)) and loaded['b'] == [1, 'x']
