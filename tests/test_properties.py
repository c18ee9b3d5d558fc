"""Property-based tests (hypothesis): the tabular procs and the data block chain on generated data.

Each property is checked against an oracle computed here with pandas / numpy on the same generated data.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from fastlib.data_block import CategoryList, ItemBase, ItemList
from fastlib.tabular import Categorify, FillMissing, FillStrategy, Normalize

SETTINGS = dict(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A continuous column: finite floats or missing values; a categorical column: a few short strings or missing.
cont_values = st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
cat_values = st.one_of(st.none(), st.sampled_from(['a', 'b', 'c', 'dd', 'e e', '0']))


@st.composite
def frames(draw):
    "A training and a validation DataFrame with one continuous and one categorical column."
    n_train = draw(st.integers(2, 30))
    n_valid = draw(st.integers(1, 15))
    rows = st.tuples(cont_values, cat_values)
    train = draw(st.lists(rows, min_size=n_train, max_size=n_train))
    valid = draw(st.lists(rows, min_size=n_valid, max_size=n_valid))

    def df(rows):
        return pd.DataFrame({'x': [np.nan if r[0] is None else r[0] for r in rows],
                             'c': pd.Series([r[1] for r in rows], dtype=object)})
    return df(train), df(valid)


@settings(**SETTINGS)
@given(frames(), st.sampled_from([FillStrategy.MEDIAN, FillStrategy.COMMON, FillStrategy.CONSTANT]))
def test_fill_missing_fits_on_train_and_fills_everything(dfs, strategy):
    train, valid = dfs
    assume(train.x.notna().any())
    want = {FillStrategy.MEDIAN: train.x.median(), FillStrategy.COMMON: train.x.dropna().value_counts().idxmax(),
            FillStrategy.CONSTANT: 7.}[strategy]
    had_na = train.x.isna().any()
    tr, va = train.copy(), valid.copy()
    proc = FillMissing(['c'], ['x'], fill_strategy=strategy, fill_val=7.)
    proc(tr)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # valid may have missing values where train had none: warned, filled
        proc(va, test=True)
    for before, after in ((train, tr), (valid, va)):
        assert after.x.notna().all()
        kept = before.x.notna()
        np.testing.assert_array_equal(after.x[kept], before.x[kept])          # present values untouched
        fill = want if had_na else train.x.median()                            # no _na column: the median
        np.testing.assert_allclose(after.x[~kept], fill)
        if had_na:
            np.testing.assert_array_equal(after['x_na'], before.x.isna())
    assert ('x_na' in proc.cat_names) == bool(had_na)


@settings(**SETTINGS)
@given(frames())
def test_categorify_codes_come_from_train_only(dfs):
    train, valid = dfs
    tr, va = train.copy(), valid.copy()
    proc = Categorify(['c'], ['x'])
    proc(tr)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')   # unseen values are warned about
        proc(va, test=True)
    cats = sorted(train.c.dropna().unique())
    assert proc.classes['c'] == ['#na#'] + cats
    for before, after in ((train, tr), (valid, va)):
        codes = after.c.cat.codes.to_numpy() + 1                   # 0 = '#na#', as the model sees them
        want = [cats.index(v) + 1 if v in cats else 0 for v in before.c]
        np.testing.assert_array_equal(codes, want)


@settings(**SETTINGS)
@given(frames())
def test_normalize_uses_train_statistics(dfs):
    train, valid = dfs
    train, valid = train.fillna({'x': 0.}), valid.fillna({'x': 0.})
    tr, va = train.copy(), valid.copy()
    proc = Normalize(['c'], ['x'])
    proc(tr)
    proc(va, test=True)
    mean, std = train.x.mean(), train.x.std()
    for before, after in ((train, tr), (valid, va)):
        np.testing.assert_allclose(after.x, (before.x - mean) / (1e-7 + std), rtol=1e-6, atol=1e-6)


@settings(**SETTINGS)
@given(st.integers(2, 200), st.floats(0.05, 0.9), st.integers(0, 2 ** 16))
def test_random_split_partitions_the_items(n, pct, seed):
    items = ItemList(np.arange(n))
    split = items.split_by_rand_pct(pct, seed=seed)
    train, valid = split.train.items.tolist(), split.valid.items.tolist()
    assert sorted(train + valid) == list(range(n))                 # every item once, in one of the two
    assert len(valid) == int(pct * n)
    again = items.split_by_rand_pct(pct, seed=seed)
    assert again.valid.items.tolist() == valid                     # the seed fixes the split


@settings(**SETTINGS)
@given(st.lists(st.sampled_from(['cat', 'dog', 'emu', 'fox']), min_size=4, max_size=40), st.data())
def test_labels_round_trip_through_the_chain(labels, data):
    n = len(labels)
    valid_idx = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n // 2, unique=True))
    train_labels = {labels[i] for i in range(n) if i not in valid_idx}
    assume(train_labels and all(labels[i] in train_labels for i in valid_idx))   # else: an error, tested elsewhere
    lls = ItemList(np.arange(n)).split_by_idx(valid_idx).label_from_func(lambda i: labels[i])
    assert isinstance(lls.train.y, CategoryList)
    assert lls.train.y.classes == lls.valid.y.classes == sorted(train_labels)
    for ds in (lls.train, lls.valid):
        for k in range(len(ds)):
            x, y = ds[k]
            assert str(y) == labels[int(x.data if isinstance(x, ItemBase) else x)]


@pytest.mark.parametrize('strategy', list(FillStrategy))
def test_fill_missing_all_missing_in_train_is_an_error_unless_constant(strategy):
    train = pd.DataFrame({'x': [np.nan, np.nan], 'c': ['a', 'b']})
    proc = FillMissing(['c'], ['x'], fill_strategy=strategy, fill_val=3.)
    if strategy == FillStrategy.CONSTANT:
        proc(train)
        assert train.x.tolist() == [3., 3.]
    else:
        with pytest.raises(ValueError, match="has no values in the training set"):
            proc(train)
