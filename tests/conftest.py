"""Shared fixtures and markers for fastlib's tests."""
import os
from pathlib import Path

import matplotlib
import pytest

import torch

matplotlib.use('Agg')  # tests draw plots with no screen
# The test models are tiny: one thread avoids the cost of spreading each small op over cores (and of
# oversubscribing them when the machine is busy), which makes the suite several times faster.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get('FASTLIB_SHARED_DATA', ROOT.parent / 'shared' / 'data'))


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: takes more than a few seconds; deselect with -m "not slow"')
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU; skipped without one')


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason='needs a CUDA GPU (none on this machine)')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture
def shared_data() -> Path:
    "The folder of real data sets (../shared/data); tests that need it skip where it is absent."
    if not SHARED_DATA.is_dir():
        pytest.skip(f'real data sets not found at {SHARED_DATA} (set FASTLIB_SHARED_DATA to their folder)')
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    "Keep every test's downloads, data and models out of the user's ~/.fastlib."
    home = tmp_path_factory.mktemp('fastlib_home')
    monkeypatch.setenv('FASTLIB_HOME', str(home))
    if SHARED_DATA.is_dir():
        monkeypatch.setenv('FASTLIB_ARCHIVE', str(SHARED_DATA))
    else:
        monkeypatch.delenv('FASTLIB_ARCHIVE', raising=False)
