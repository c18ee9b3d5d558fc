"""Exported tabular and collab learners predict the same in a fresh Python process (one subprocess for both)."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fastlib.collab import collab_learner
from fastlib.tabular import tabular_learner

sys.path.insert(0, str(Path(__file__).parent))
import test_collab  # noqa: E402  (the toy data of the collab and tabular tests)
import test_tabular  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

LOADER = textwrap.dedent('''
    import json, sys, warnings
    import pandas as pd
    from fastlib.basic_train import load_learner
    tab_dir, collab_dir, row_file = sys.argv[1:]
    rows = json.load(open(row_file))
    res = {}
    tab = load_learner(tab_dir)
    cls, idx, probs = tab.predict(pd.Series(rows['tabular']))
    res['tabular'] = [str(cls), int(idx), probs.tolist()]
    collab = load_learner(collab_dir)
    res['collab'] = float(collab.predict(tuple(rows['collab']))[1])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        res['collab_unknown'] = float(collab.predict(('nobody', rows['collab'][1]))[1])
    res['warned'] = any("not seen in training" in str(o.message) for o in w)
    res['bias'] = collab.bias([rows['collab'][1]]).tolist()
    res['learner_class'] = type(collab).__name__
    print(json.dumps(res))
''')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    "A trained tabular and collab learner, exported; the fresh process's predictions on one row of each."
    tmp = tmp_path_factory.mktemp('export')
    torch.manual_seed(0)
    tab_data = test_tabular.toy_data()
    tab = tabular_learner(tab_data, layers=[8], path=tmp / 'tab')
    tab.fit(1, 1e-2)
    collab = collab_learner(test_collab.toy_data(), n_factors=3, y_range=(0.5, 5.5), path=tmp / 'collab')
    collab.fit(1, 1e-2)
    tab_row = test_tabular.toy_df().iloc[207]
    x = collab.data.train_ds.x
    pair = (x.classes['userId'][4], int(x.classes['movieId'][2]))
    tab.export()
    collab.export()
    rows = tmp / 'rows.json'
    rows.write_text(json.dumps({'tabular': {k: (None if v != v else v) for k, v in tab_row.items()},
                                'collab': list(pair)}))
    out = subprocess.run([sys.executable, '-c', LOADER, str(tmp / 'tab'), str(tmp / 'collab'), str(rows)],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return tab, collab, tab_row, pair, json.loads(out.stdout.strip().splitlines()[-1])


def test_tabular_prediction_is_the_same_in_a_fresh_process(exported):
    tab, _, row, _, res = exported
    cls, idx, probs = tab.predict(row)
    assert res['tabular'][:2] == [str(cls), int(idx)]
    assert torch.allclose(torch.tensor(res['tabular'][2]), probs, atol=1e-6)


def test_collab_prediction_is_the_same_in_a_fresh_process(exported):
    _, collab, _, pair, res = exported
    assert res['learner_class'] == 'CollabLearner'
    assert res['collab'] == pytest.approx(float(collab.predict(pair)[1]), abs=1e-6)
    assert res['bias'] == pytest.approx(collab.bias([pair[1]]).tolist(), abs=1e-6)
    na_user = collab.model.eval()(torch.tensor([0]), collab.get_idx([pair[1]]).cpu()).detach()
    assert res['warned'] and res['collab_unknown'] == pytest.approx(float(na_user), abs=1e-6)
