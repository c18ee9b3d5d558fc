"""Helpers of fastlib.core and fastlib.torch_core."""
import io
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from fastlib.core import atomic_write, did_you_mean, even_mults, listify
from fastlib.torch_core import (Module, flatten_model, get_rng_states, requires_grad, set_rng_states, set_seed,
                                split_model, split_no_wd_params, to_detach, to_device, trainable_params)
from fastlib.testing import fake_data


def test_listify():
    assert listify(None) == [] and listify(3) == [3] and listify('ab') == ['ab']
    assert listify((1, 2)) == [1, 2] and listify(5, 3) == [5, 5, 5] and listify([1], [7, 8]) == [1, 1]
    with pytest.raises(ValueError, match='does not match the required length 3'):
        listify([1, 2], 3)


def test_even_mults_is_geometric():
    np.testing.assert_allclose(even_mults(1e-4, 1e-2, 3), [1e-4, 1e-3, 1e-2])


def test_did_you_mean():
    assert did_you_mean('acuracy', ['accuracy', 'error_rate']) == " Did you mean 'accuracy'?"
    assert did_you_mean('zzz', ['accuracy']) == ''


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    target = tmp_path / 'f.txt'
    target.write_text('old')
    with pytest.raises(RuntimeError):
        with atomic_write(target, 'w') as f:
            f.write('new, half')
            raise RuntimeError('crash')
    assert target.read_text() == 'old' and [p.name for p in tmp_path.iterdir()] == ['f.txt']
    with atomic_write(target, 'w') as f:
        f.write('new')
    assert target.read_text() == 'new'


def test_atomic_write_gives_normal_permissions(tmp_path):
    import os
    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / 'new.bin') as f:
            f.write(b'x')
        assert (tmp_path / 'new.bin').stat().st_mode & 0o777 == 0o644
        (tmp_path / 'new.bin').chmod(0o600)
        with atomic_write(tmp_path / 'new.bin') as f:
            f.write(b'y')
        assert (tmp_path / 'new.bin').stat().st_mode & 0o777 == 0o600  # a replaced file keeps its mode
    finally:
        os.umask(umask)


def test_module_needs_no_super_init():
    class Net(Module):
        def __init__(self, n):
            self.lin = nn.Linear(n, 2)

        def forward(self, x):
            return self.lin(x)

    assert Net(3)(torch.zeros(1, 3)).shape == (1, 2)
    assert len(list(Net(3).parameters())) == 2


def test_flatten_and_split_model():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.BatchNorm1d(3)), nn.Linear(3, 1))
    leaves = flatten_model(model)
    assert [type(l) for l in leaves] == [nn.Linear, nn.ReLU, nn.BatchNorm1d, nn.Linear]
    groups = split_model(model, [model[1]])
    assert [len(g) for g in groups] == [1, 3]
    assert groups[1][0] is model[1][0]
    with pytest.raises(ValueError, match='is not part of the model'):
        split_model(model, [nn.Linear(1, 1)])


def test_requires_grad_and_trainable_params():
    model = nn.Linear(2, 2)
    requires_grad(model, False)
    assert requires_grad(model) is False and trainable_params(model) == []


def test_no_wd_params_are_norms_and_biases():
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    (no_wd,) = split_no_wd_params([model])
    assert {id(p) for p in no_wd} == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}


def test_to_device_and_to_detach_keep_structure():
    b = {'a': [torch.ones(2, requires_grad=True), (torch.zeros(1),)], 'n': 3}
    moved = to_device(b, 'cpu')
    assert isinstance(moved['a'][1], tuple) and moved['n'] == 3
    detached = to_detach(b)
    assert not detached['a'][0].requires_grad


def test_rng_snapshot_round_trip():
    states = get_rng_states()
    a = (np.random.rand(), torch.rand(1))
    set_rng_states(states)
    b = (np.random.rand(), torch.rand(1))
    assert a[0] == b[0] and torch.equal(a[1], b[1])


def test_set_seed_reproduces_shuffles_with_workers():
    def order():
        set_seed(11, reproducible=True)
        data = fake_data(num_workers=2, batch_size=16, train_length=64)
        return [y.tolist() for _, y in data.train_dl]

    try:
        assert order() == order()
    finally:
        torch.use_deterministic_algorithms(False)


def test_np_address_torch_save_and_try_save(tmp_path):
    from fastlib.torch_core import np_address, torch_save, try_save
    a = np.arange(6)
    assert np_address(a[:3]) == np_address(a) != np_address(a.copy())
    torch_save({'w': torch.ones(2)}, tmp_path / 'legacy.pth')
    assert not zipfile.is_zipfile(tmp_path / 'legacy.pth')   # v1's default: the legacy format
    assert torch.equal(torch.load(tmp_path / 'legacy.pth', weights_only=True)['w'], torch.ones(2))
    try_save({'w': torch.zeros(3)}, tmp_path / 'state.pth')
    assert torch.equal(torch.load(tmp_path / 'state.pth', weights_only=True)['w'], torch.zeros(3))
    buf = io.BytesIO()
    try_save({'n': 1}, file=buf)
    buf.seek(0)
    assert torch.load(buf, weights_only=True) == {'n': 1}
    (tmp_path / 'a_file').write_text('not a folder')
    with pytest.raises(OSError, match=r"Cannot save to .*a_file.*learn.model_dir"):
        try_save({'n': 1}, tmp_path / 'a_file' / 'x.pth')
