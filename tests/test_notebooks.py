"""The notebooks in nbs/ run from top to bottom, and are kept without outputs."""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NBS = sorted((Path(__file__).resolve().parents[1] / 'nbs').glob('*.ipynb'))


@pytest.mark.parametrize('path', NBS, ids=[p.name for p in NBS])
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name='python3', resources={'metadata': {'path': str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) if o.output_type == 'error']
    assert not errors


@pytest.mark.parametrize('path', NBS, ids=[p.name for p in NBS])
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == 'code':
            assert cell.outputs == [] and cell.execution_count is None, f'{path.name}: strip the outputs'
