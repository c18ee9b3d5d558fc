"""UCI Adult, trained on adult.data and validated on adult.test: the accuracy fastai's tabular model should reach."""
import tarfile

import pandas as pd
import pytest
import torch

from fastlib.metrics import accuracy
from fastlib.progress import no_progress
from fastlib.tabular import Categorify, FillMissing, Normalize, TabularList, tabular_learner

COLS = ('age workclass fnlwgt education education-num marital-status occupation relationship race sex capital-gain '
        'capital-loss hours-per-week native-country income').split()
CAT = ['workclass', 'education', 'marital-status', 'occupation', 'relationship', 'race', 'sex', 'native-country']
CONT = ['age', 'fnlwgt', 'education-num', 'capital-gain', 'capital-loss', 'hours-per-week']


def read_adult(folder):
    "adult.data and adult.test with UCI's quirks handled (no header, ', ' separators, '?', the test file's extra line and full stops)."
    with tarfile.open(folder / 'adult_uci.tgz') as t:
        def read(name, **kw):
            return pd.read_csv(t.extractfile(f'adult_uci/{name}'), names=COLS, skipinitialspace=True, na_values='?', **kw)
        train, test = read('adult.data'), read('adult.test', skiprows=1)
    test['income'] = test.income.str.rstrip('.')
    return train, test


@pytest.mark.slow
def test_adult_three_one_cycle_epochs_reach_0_845(shared_data):
    train, test = read_adult(shared_data)
    assert (len(train), len(test)) == (32561, 16281)
    df = pd.concat([train, test], ignore_index=True)
    torch.manual_seed(0)
    data = (TabularList.from_df(df, cat_names=CAT, cont_names=CONT, procs=[FillMissing, Categorify, Normalize])
            .split_by_idx(range(len(train), len(df))).label_from_df(cols='income')
            .databunch(bs=64, device='cpu', num_workers=0))
    assert data.train_ds.y.classes == ['<=50K', '>50K'] and len(data.valid_ds) == 16281
    learn = tabular_learner(data, layers=[200, 100], metrics=accuracy)
    with no_progress():
        learn.fit_one_cycle(3, 1e-2)
    acc = float(learn.validate()[1])
    print(f'UCI Adult, accuracy on adult.test: {acc:.4f}')
    assert acc >= 0.845
