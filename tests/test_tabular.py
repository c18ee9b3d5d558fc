"""fastlib.tabular: procs, date helpers, embedding sizes, TabularModel, TabularList / TabularDataBunch, learner."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from fastlib.basic_data import DatasetType
from fastlib.data_block import Category, CategoryList, FloatList
from fastlib.layers import SigmoidRange
from fastlib.metrics import accuracy
from fastlib.tabular import (Categorify, FillMissing, FillStrategy, Normalize, TabularDataBunch, TabularDataLoader,
                             TabularLine, TabularList, TabularModel, add_cyclic_datepart, add_datepart,
                             add_elapsed_times, cont_cat_split, def_emb_sz, emb_sz_rule, tabular_learner)
from fastlib.torch_core import data_collate

CAT, CONT = ['color', 'size'], ['x', 'z']


def toy_df(n: int = 240, seed: int = 0) -> pd.DataFrame:
    "Two categorical and two continuous columns with some missing values; the label depends on color and x."
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({'color': rng.choice(['red', 'green', 'blue'], n), 'size': rng.choice(['S', 'M', 'L', 'XL'], n),
                       'x': rng.normal(5, 2, n), 'z': rng.integers(0, 100, n).astype(float)})
    df['label'] = np.where((df.color == 'red') | (df.x > 6), 'yes', 'no')
    df['amount'] = np.exp(rng.normal(1, 0.3, n)) + (df.x > 5)
    df.loc[[3, 10, 20], 'x'] = np.nan
    df.loc[[5], 'color'] = np.nan
    return df


def toy_data(df=None, bs=32, **kwargs) -> TabularDataBunch:
    df = toy_df() if df is None else df
    return TabularDataBunch.from_df('.', df, 'label', valid_idx=list(range(200, len(df))),
                                    procs=[FillMissing, Categorify, Normalize], cat_names=CAT, cont_names=CONT,
                                    bs=bs, device='cpu', num_workers=0, **kwargs)


def run_procs(train, valid, procs=(FillMissing, Categorify, Normalize), cat=CAT, cont=CONT):
    "Fit `procs` on a copy of `train` and apply them to a copy of `valid`, as TabularProcessor chains them."
    train, valid = train.copy(), valid.copy()
    fitted, cat, cont = [], list(cat), list(cont)
    for p in procs:
        proc = p(cat, cont)
        proc(train)
        cat, cont = proc.cat_names, proc.cont_names
        fitted.append(proc)
    for proc in fitted:
        proc(valid, test=True)
    return fitted, train, valid


# --- Procs -----------------------------------------------------------------------------------------------------

def test_fill_missing_median_uses_training_median_everywhere():
    train = pd.DataFrame({'a': [1., np.nan, 3., 10.], 'b': [1., 2., 3., 4.]})
    valid = pd.DataFrame({'a': [np.nan, 5.], 'b': [1., 1.]})
    (proc,), train_out, valid_out = run_procs(train, valid, [FillMissing], cat=[], cont=['a', 'b'])
    assert proc.na_dict == {'a': 3.0}  # median of 1, 3, 10
    assert train_out.a.tolist() == [1., 3., 3., 10.] and valid_out.a.tolist() == [3., 5.]
    assert train_out.a_na.tolist() == [False, True, False, False] and valid_out.a_na.tolist() == [True, False]
    assert proc.cat_names == ['a_na'] and 'b_na' not in train_out


@pytest.mark.parametrize('strategy, expected', [(FillStrategy.COMMON, 2.), (FillStrategy.CONSTANT, -1.)])
def test_fill_missing_strategies(strategy, expected):
    train = pd.DataFrame({'a': [2., 2., np.nan, 7., 9.]})
    proc = FillMissing([], ['a'], fill_strategy=strategy, add_col=False, fill_val=-1.)
    proc(train)
    assert train.a.tolist() == [2., 2., expected, 7., 9.]
    assert proc.cat_names == [] and 'a_na' not in train


def test_fill_missing_warns_for_a_column_with_no_missing_training_values():
    train, valid = pd.DataFrame({'a': [1., 2., 4.]}), pd.DataFrame({'a': [np.nan]})
    with pytest.warns(UserWarning, match=r"'a' has 1 missing value\(s\) but had none in the training set.*median 2\.0"):
        run_procs(train, valid, [FillMissing], cat=[], cont=['a'])


def test_categorify_orders_training_categories_and_keeps_code_0_for_missing():
    train = pd.DataFrame({'c': ['b', 'a', None, 'c', 'a']})
    valid = pd.DataFrame({'c': ['c', None, 'a']})
    (proc,), train_out, valid_out = run_procs(train, valid, [Categorify], cat=['c'], cont=[])
    assert proc.categories == {'c': ['a', 'b', 'c']} and proc.classes == {'c': ['#na#', 'a', 'b', 'c']}
    assert (train_out.c.cat.codes + 1).tolist() == [2, 1, 0, 3, 1]
    assert (valid_out.c.cat.codes + 1).tolist() == [3, 0, 1]
    assert train_out.c.cat.ordered


def test_categorify_warns_about_values_unseen_in_training():
    with pytest.warns(UserWarning, match=r"Categorify: 2 value\(s\) of the column 'c' were not seen in training "
                                         r"\(e\.g\. 'z'\); they are treated as missing \('#na#', code 0\)"):
        _, _, valid_out = run_procs(pd.DataFrame({'c': ['a', 'b']}), pd.DataFrame({'c': ['z', 'a', 'z']}),
                                    [Categorify], cat=['c'], cont=[])
    assert (valid_out.c.cat.codes + 1).tolist() == [0, 1, 0]


def test_normalize_uses_training_statistics():
    train = pd.DataFrame({'a': [1., 2., 3., 6.]})
    valid = pd.DataFrame({'a': [0., 10.]})
    (proc,), train_out, valid_out = run_procs(train, valid, [Normalize], cat=[], cont=['a'])
    mean, std = 3., float(np.std([1., 2., 3., 6.], ddof=1))
    assert proc.means['a'] == pytest.approx(mean) and proc.stds['a'] == pytest.approx(std)
    np.testing.assert_allclose(valid_out.a, (np.array([0., 10.]) - mean) / (std + 1e-7), rtol=1e-6)
    assert train_out.a.mean() == pytest.approx(0, abs=1e-9)


def _is_plain(o):
    if isinstance(o, (str, int, float, bool, type(None))):
        return True
    if isinstance(o, (list, tuple)):
        return all(_is_plain(v) for v in o)
    if isinstance(o, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in o.items())
    return False


def test_fitted_proc_state_is_plain_data():
    procs, _, _ = run_procs(toy_df(), toy_df(seed=1))
    for proc in procs:
        state = proc.__getstate__()
        assert _is_plain(state), (type(proc).__name__, state)
    copy = FillMissing.__new__(FillMissing)
    copy.__setstate__(procs[0].__getstate__())
    assert copy.fill_strategy is FillStrategy.MEDIAN and copy.na_dict == procs[0].na_dict


def test_procs_given_as_partials_or_fitted_instances():
    from functools import partial
    df = toy_df()
    fill = partial(FillMissing, fill_strategy=FillStrategy.CONSTANT, fill_val=-9., add_col=False)
    data = TabularDataBunch.from_df('.', df, 'label', valid_idx=range(200, 240), procs=[fill, Categorify],
                                    cat_names=CAT, cont_names=CONT, device='cpu', num_workers=0)
    x = data.train_ds.x
    assert x.cat_names == CAT and x.conts[3, 0] == -9.  # row 3 had a missing x; no Normalize
    fitted = x.processor[0].procs
    again = TabularDataBunch.from_df('.', df, 'label', valid_idx=range(200, 240), procs=fitted, cat_names=CAT,
                                     cont_names=CONT, device='cpu', num_workers=0)
    np.testing.assert_array_equal(again.train_ds.x.codes, x.codes)


def test_default_cont_names_and_dataframe_test_set():
    df = toy_df().drop(columns='amount')
    data = TabularDataBunch.from_df('.', df, 'label', valid_idx=range(200, 240), procs=[FillMissing, Categorify],
                                    cat_names=CAT, device='cpu', num_workers=0)
    assert data.cont_names == ['x', 'z']
    data.add_test(df.iloc[200:210].drop(columns='label'))
    assert isinstance(data.test_dl.dl, TabularDataLoader)
    xb, _ = next(iter(data.test_dl))
    valid_xb, _ = next(iter(data.valid_dl))
    assert torch.equal(xb[0], valid_xb[0][:10]) and torch.equal(xb[1], valid_xb[1][:10])


# --- Dates and column helpers ----------------------------------------------------------------------------------

def test_add_datepart_features():
    df = pd.DataFrame({'saledate': ['2020-02-29 00:00:00', '2021-12-31 13:45:10']})
    add_datepart(df, 'saledate', time=True)
    assert 'saledate' not in df
    row0, row1 = df.iloc[0], df.iloc[1]
    assert (row0.saleYear, row0.saleMonth, row0.saleWeek, row0.saleDay) == (2020, 2, 9, 29)
    assert (row0.saleDayofweek, row0.saleDayofyear) == (5, 60)  # a Saturday, day 31 + 29
    assert row0.saleIs_month_end and not row0.saleIs_month_start and not row0.saleIs_year_end
    assert row1.saleIs_year_end and row1.saleIs_quarter_end and (row1.saleHour, row1.saleMinute, row1.saleSecond) == (13, 45, 10)
    assert row0.saleElapsed == 1582934400  # seconds from 1970-01-01 to 2020-02-29
    assert row1.saleElapsed == 1640958310


def test_add_datepart_prefix_and_keep():
    df = pd.DataFrame({'when': pd.to_datetime(['2000-01-01'])})
    add_datepart(df, 'when', prefix='w_', drop=False)
    assert 'when' in df and df.w_Year.iloc[0] == 2000 and df.w_Is_year_start.iloc[0]


def test_add_cyclic_datepart():
    df = pd.DataFrame({'Date': ['2024-01-01', '2024-07-01']})  # a Monday in January; July 1 is day 183 of 366
    add_cyclic_datepart(df, 'Date', add_linear=True)
    assert df.weekday_cos.iloc[0] == pytest.approx(1) and df.weekday_sin.iloc[0] == pytest.approx(0, abs=1e-12)
    assert df.month_year_lin.iloc[1] == pytest.approx(6 / 12)
    assert df.day_year_cos.iloc[1] == pytest.approx(math.cos(2 * math.pi * 182 / 366))
    assert df.day_month_sin.iloc[0] == pytest.approx(0, abs=1e-12)
    assert 'Date' not in df


def test_add_elapsed_times():
    df = pd.DataFrame({'store': [1, 1, 1, 1, 2, 2],
                       'date': pd.to_datetime(['2020-01-01', '2020-01-03', '2020-01-06', '2020-01-10',
                                               '2020-01-01', '2020-01-02']),
                       'holiday': [False, True, False, True, False, False]})
    res = add_elapsed_times(df, ['holiday'], 'date', 'store')
    assert res.Afterholiday.tolist() == [0, 0, 3, 0, 0, 0]     # days since the last holiday of the store
    assert res.Beforeholiday.tolist() == [-2, 0, -4, 0, 0, 0]  # days until the next one (negative)
    assert res.holiday_bw.tolist() == [0, 1, 1, 2, 0, 0]       # holidays in the 7 rows up to this one
    assert res.holiday_fw.tolist() == [2, 2, 1, 1, 0, 0]       # ... from this one on


def test_cont_cat_split():
    df = pd.DataFrame({'f': [0.5, 1.5, 2.5], 'few': [1, 2, 1], 'many': [1, 2, 3], 's': ['a', 'b', 'c'],
                       'y': [1., 0., 1.]})
    assert cont_cat_split(df, max_card=2, dep_var='y') == (['f', 'many'], ['few', 's'])


# --- Embedding sizes and the model ----------------------------------------------------------------------------

@pytest.mark.parametrize('n_cat', [2, 3, 10, 100, 5000, 10 ** 7])
def test_emb_sz_rule(n_cat):
    assert emb_sz_rule(n_cat) == min(600, round(1.6 * n_cat ** 0.56))


def test_def_emb_sz_with_override():
    classes = {'a': ['#na#', 'x', 'y'], 'b': ['#na#'] + [str(i) for i in range(99)]}
    assert def_emb_sz(classes, 'a') == (3, round(1.6 * 3 ** 0.56))
    assert def_emb_sz(classes, 'b', {'b': 7}) == (100, 7)


def test_tabular_model_structure_and_forward_oracle():
    torch.manual_seed(0)
    m = TabularModel([(4, 3), (5, 2)], n_cont=2, out_sz=3, layers=[8, 6], ps=[0.1, 0.2], emb_drop=0.3)
    linears = [l for l in m.layers if isinstance(l, nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(7, 8), (8, 6), (6, 3)]
    assert [d.p for d in m.layers if isinstance(d, nn.Dropout)] == [0.1, 0.2] and m.emb_drop.p == 0.3
    assert sum(isinstance(l, nn.BatchNorm1d) for l in m.layers) == 2  # none before the first linear
    m.eval()
    x_cat, x_cont = torch.tensor([[1, 4], [0, 2]]), torch.randn(2, 2)
    # Oracle: the same computation written out with the model's parameters.
    emb = torch.cat([m.embeds[0].weight[x_cat[:, 0]], m.embeds[1].weight[x_cat[:, 1]]], 1)
    bn = m.bn_cont
    cont = (x_cont - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    h = torch.cat([emb, cont], 1)
    for layer in m.layers:
        h = layer(h)
    assert torch.allclose(m(x_cat, x_cont), h)
    assert m(x_cat, x_cont).shape == (2, 3)


def test_tabular_model_y_range_and_no_inputs_of_one_kind():
    m = TabularModel([], n_cont=3, out_sz=1, layers=[4], y_range=(1., 2.), use_bn=False, bn_final=True)
    assert isinstance(m.layers[-1], SigmoidRange) and isinstance(m.layers[-2], nn.BatchNorm1d)
    out = m(torch.zeros(5, 0, dtype=torch.long), torch.randn(5, 3) * 100)
    assert ((out > 1) & (out < 2)).all()
    only_cats = TabularModel([(3, 2)], n_cont=0, out_sz=2, layers=[])
    assert only_cats(torch.tensor([[0], [2]]), None).shape == (2, 2)


# --- TabularList and TabularDataBunch -------------------------------------------------------------------------

def test_tabular_list_arrays_match_the_procs_applied_by_hand():
    df = toy_df()
    data = toy_data(df)
    train, valid = df.iloc[:200], df.iloc[200:]
    procs, train_out, valid_out = run_procs(train, valid)
    x = data.train_ds.x
    assert x.cat_names == ['color', 'size', 'x_na'] and x.cont_names == CONT
    assert x.classes == procs[1].classes and x.classes['x_na'] == ['#na#', False, True]
    for lst, out in ((x, train_out), (data.valid_ds.x, valid_out)):
        codes = np.stack([out[c].cat.codes.to_numpy() + 1 for c in lst.cat_names], 1)
        np.testing.assert_array_equal(lst.codes, codes)
        np.testing.assert_allclose(lst.conts, out[CONT].to_numpy(np.float32), rtol=1e-6)
    assert x.codes.dtype == np.int64 and x.conts.dtype == np.float32
    assert data.valid_ds.y.classes == ['no', 'yes'] and isinstance(data.train_ds.y, CategoryList)


def test_batches_gathered_from_tensors_equal_per_row_collation():
    data = toy_data(bs=16)
    assert isinstance(data.train_dl.dl, TabularDataLoader)
    ds = data.valid_ds
    xb, yb = next(iter(data.valid_dl))
    per_row = data_collate([ds[i] for i in range(16)])
    assert torch.equal(xb[0], per_row[0][0]) and torch.equal(xb[1], per_row[0][1]) and torch.equal(yb, per_row[1])
    assert xb[0].dtype == torch.int64 and xb[1].dtype == torch.float32


def test_training_loader_shuffles_every_row_once_and_drops_the_last_partial_batch():
    data = toy_data(bs=32)
    x_tensors = data.train_dl.dl.tensors()
    seen = []
    for xb, yb in data.train_dl:
        assert len(yb) == 32
        # Rows are identified by matching the gathered continuous values back to the full tensor.
        seen += [int((x_tensors[1] == r).all(1).nonzero()[0]) for r in xb[1]]
    assert len(data.train_dl) == 200 // 32 == len(seen) // 32
    assert len(set(seen)) == len(seen) and seen != sorted(seen)
    valid_sizes = [len(yb) for _, yb in data.valid_dl]
    assert valid_sizes == [32, 8]


def test_changing_the_batch_size_keeps_the_gathering_loaders():
    data = toy_data(bs=32)
    data.batch_size = 50
    assert isinstance(data.train_dl.dl, TabularDataLoader) and isinstance(data.valid_dl.dl, TabularDataLoader)
    assert [len(yb) for _, yb in data.train_dl] == [50, 50, 50, 50]
    assert [len(yb) for _, yb in data.valid_dl] == [40]
    fix = data.train_dl.new(shuffle=False, drop_last=False)   # what fix_dl and the core's copies go through
    assert isinstance(fix.dl, TabularDataLoader) and fix.dl._tensors is data.train_dl.dl._tensors
    assert sum(len(yb) for _, yb in fix) == len(data.train_ds)


def test_tabular_line_and_show_batch_give_original_values():
    df = toy_df()
    data = toy_data(df, bs=8)
    line = data.train_ds.x[0]
    assert isinstance(line, TabularLine) and line.values()['color'] == df.color[0]
    table = data.show_batch(rows=3, ds_type=DatasetType.Valid)
    assert list(table.columns) == ['color', 'size', 'x_na', 'x', 'z', 'target']
    np.testing.assert_allclose(table.z.to_numpy(), df.z[200:203].to_numpy(), rtol=1e-5)
    assert table.target.tolist() == df.label[200:203].tolist()


def test_regression_with_log_targets_and_test_set():
    df = toy_df()
    data = (TabularList.from_df(df.iloc[:200], cat_names=CAT, cont_names=CONT, procs=[FillMissing, Categorify, Normalize])
            .split_by_idx(range(150, 200)).label_from_df(cols='amount', label_cls=FloatList, log=True)
            .add_test(TabularList.from_df(df.iloc[200:], cat_names=CAT, cont_names=CONT))
            .databunch(bs=32, device='cpu', num_workers=0))
    assert isinstance(data.train_ds.y, FloatList) and data.c == 1
    np.testing.assert_allclose(data.train_ds.y.items, np.log(df.amount[:150].to_numpy()), rtol=1e-6)
    learn = tabular_learner(data, layers=[8], y_range=(0., 2.))
    preds, _ = learn.get_preds(DatasetType.Test)
    assert preds.shape == (40, 1) and ((preds > 0) & (preds < 2)).all()


def test_tabular_learner_learns_and_predicts_a_row():
    torch.manual_seed(0)
    df = toy_df(n=600)
    data = TabularDataBunch.from_df('.', df, 'label', valid_idx=list(range(500, 600)), procs=[FillMissing, Categorify, Normalize],
                                    cat_names=CAT, cont_names=CONT, bs=32, device='cpu', num_workers=0,
                                    test_df=df.iloc[500:].drop(columns='label'))
    learn = tabular_learner(data, layers=[32, 16], metrics=accuracy, emb_szs={'color': 4})
    assert learn.model.embeds[0].embedding_dim == 4
    learn.fit_one_cycle(4, 1e-2)
    assert float(learn.validate()[1]) > 0.85  # the label is a simple rule of color and x
    pred_class, pred_idx, probs = learn.predict(df.iloc[510])
    assert isinstance(pred_class, Category) and str(pred_class) in ('yes', 'no')
    assert int(pred_idx) == int(probs.argmax()) and float(probs.sum()) == pytest.approx(1, abs=1e-5)
    valid_probs, _ = learn.get_preds(DatasetType.Valid)
    test_probs, _ = learn.get_preds(DatasetType.Test)
    assert torch.allclose(probs, valid_probs[10], atol=1e-5)
    assert torch.allclose(test_probs, valid_probs, atol=1e-5)  # test rows = valid rows, processed alike


def test_predict_accepts_a_dict_and_warns_for_an_unseen_category():
    data = toy_data()
    learn = tabular_learner(data, layers=[8])
    row = {'color': 'red', 'size': 'M', 'x': 1.0, 'z': 3.0}
    res = learn.predict(row)
    with pytest.warns(UserWarning, match=r"value\(s\) of the column 'color' were not seen in training \(e\.g\. 'purple'\)"):
        unseen = learn.predict({**row, 'color': 'purple'})
    missing = learn.predict({**row, 'color': None})
    assert torch.allclose(unseen[2], missing[2])  # an unseen category is the '#na#' category
    assert not torch.allclose(unseen[2], res[2])


# --- Bad input -------------------------------------------------------------------------------------------------

def test_unknown_cat_name_is_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"(?s)Categorical column\(s\) \(cat_names\) \['colour'\] not in the DataFrame's "
                                         r"columns.*'colour': Did you mean 'color'\?"):
        TabularList.from_df(toy_df(), cat_names=['colour', 'size'], cont_names=CONT)


def test_unknown_cont_name_is_named_with_a_suggestion():
    with pytest.raises(ValueError, match=r"(?s)Continuous column\(s\) \(cont_names\) \['zz'\].*Did you mean 'z'\?"):
        TabularList.from_df(toy_df(), cat_names=CAT, cont_names=['x', 'zz'])


def test_unknown_dep_var_is_named():
    with pytest.raises(ValueError, match=r"(?s)Target column \(dep_var\) \['lable'\].*Did you mean 'label'\?"):
        TabularDataBunch.from_df('.', toy_df(), 'lable', valid_idx=[0], cat_names=CAT, cont_names=CONT)


def test_nan_target_is_an_error():
    df = toy_df()
    df.loc[[2, 7], 'label'] = np.nan
    with pytest.raises(ValueError, match=r"label column\(s\) \['label'\] hold missing values \(NaN\) in 2 rows"):
        toy_data(df)


def test_continuous_column_holding_strings_is_an_error():
    df = toy_df()
    df['z'] = df.z.astype(object)
    df.loc[4, 'z'] = 'n/a'
    with pytest.raises(ValueError, match=r"The continuous column 'z' holds values that are not numbers \('n/a', 1 in "
                                         r"all\).*pd.to_numeric.*or list the column in cat_names"):
        toy_data(df)


def test_numbers_stored_as_strings_are_accepted_as_continuous():
    df = toy_df()
    df['z'] = df.z.astype(str)
    data = toy_data(df)
    np.testing.assert_allclose(data.train_ds.x.conts, toy_data().train_ds.x.conts, rtol=1e-6)


def test_empty_dataframe_is_an_error():
    with pytest.raises(ValueError, match=r"The DataFrame is empty \(0 rows\)"):
        TabularList.from_df(toy_df().iloc[:0], cat_names=CAT, cont_names=CONT)


def test_a_column_in_both_roles_is_an_error():
    with pytest.raises(ValueError, match=r"\['x'\] are in both cat_names and cont_names"):
        TabularList.from_df(toy_df(), cat_names=['x'], cont_names=['x'])


def test_predict_row_missing_a_column_is_named():
    learn = tabular_learner(toy_data(), layers=[8])
    with pytest.raises(ValueError, match=r"Continuous column\(s\) \(cont_names\) \['z'\] not in the row to predict"):
        learn.predict({'color': 'red', 'size': 'M', 'x': 1.0})


def test_categorical_columns_need_categorify():
    with pytest.raises(ValueError, match=r"The categorical column 'color' was not made categorical: add Categorify"):
        TabularDataBunch.from_df('.', toy_df(), 'label', valid_idx=range(200, 240), procs=[FillMissing],
                                 cat_names=CAT, cont_names=CONT, device='cpu', num_workers=0)


def test_missing_continuous_values_need_fill_missing():
    with pytest.raises(ValueError, match=r"The continuous column\(s\) \['x'\] still hold missing values after the "
                                         r"procs: add FillMissing"):
        TabularDataBunch.from_df('.', toy_df(), 'label', valid_idx=range(200, 240), procs=[Categorify, Normalize],
                                 cat_names=CAT, cont_names=CONT, device='cpu', num_workers=0)


def test_export_and_load_in_process(tmp_path):
    from fastlib.basic_train import load_learner
    data = toy_data()
    data.path = tmp_path
    learn = tabular_learner(data, layers=[8], path=tmp_path)
    learn.fit(1, 1e-2)
    row = toy_df().iloc[205]
    expected = learn.predict(row)
    learn.export()
    loaded = load_learner(tmp_path)
    got = loaded.predict(row)
    assert str(got[0]) == str(expected[0]) and torch.allclose(got[2], expected[2], atol=1e-6)
    with_test = load_learner(tmp_path, test=toy_df().iloc[200:].drop(columns='label'))
    test_preds, _ = with_test.get_preds(DatasetType.Test)
    valid_preds, _ = learn.get_preds(DatasetType.Valid)
    assert torch.allclose(test_preds, valid_preds, atol=1e-6)


def test_from_df_with_classes_and_lr_find():
    data = toy_data(classes=['no', 'yes', 'maybe'])
    assert data.classes == ['no', 'yes', 'maybe'] and data.c == 3
    learn = tabular_learner(data, layers=[8])
    assert learn.model.layers[-1].out_features == 3
    learn.lr_find(num_it=10)
    assert len(learn.recorder.lrs) > 0


def test_show_results_and_predict_return_x_handle_list_inputs():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({'a': rng.choice(['x', 'y'], 60), 'b': rng.normal(size=60), 't': rng.choice(['p', 'q'], 60)})
    data = TabularDataBunch.from_df('.', df, 't', valid_idx=list(range(20)), procs=[Categorify, Normalize],
                                    cat_names=['a'], cont_names=['b'], bs=16)
    learn = tabular_learner(data, layers=[4])
    table = learn.show_results(rows=3)
    assert list(table.columns) == ['a', 'b', 'target', 'prediction'] and len(table) == 3
    x, y, _, _ = learn.predict(df.iloc[0], return_x=True)
    assert str(x).startswith(f'a {df.a[0]};')
