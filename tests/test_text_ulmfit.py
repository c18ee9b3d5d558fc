"""The ULMFiT recipe on real data: nbs/lesson3_imdb.ipynb at full size (FASTLIB_ULMFIT_FULL=1), where a
classifier built on a pretrained and fine-tuned language model must beat one trained from scratch for the
same number of epochs, scored on 2,000 held-out IMDB reviews (imdb_sample's 200 are too few to tell them apart:
one review is half a point). About 15 minutes on 2 CPU cores."""
import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB = Path(__file__).resolve().parents[1] / 'nbs' / 'lesson3_imdb.ipynb'


@pytest.mark.slow
def test_ulmfit_pretrained_encoder_beats_scratch(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv('FASTLIB_ULMFIT_FULL', '1')
    nb = nbformat.read(NB, as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name='python3', resources={'metadata': {'path': str(tmp_path)}}).execute()
    res = json.loads((tmp_path / 'ulmfit_results.json').read_text())
    print(res)
    assert res['full'] is True
    assert res['settings']['n_heldout'] == 2000
    assert res['pretrained'] > res['scratch'], res
    assert res['pretrained'] > 0.7, res  # well above the 50% of always answering one class
