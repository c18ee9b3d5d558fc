"""The data block API: ItemList -> split_by_* -> label_from_* -> transform -> add_test -> databunch."""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from fastlib.core import listify
from fastlib.basic_data import DataBunch, DatasetType, load_data
from fastlib.basic_train import Learner, load_learner
from fastlib.data_block import (Category, CategoryList, EmptyLabel, EmptyLabelList, FloatItem, FloatList, ItemBase,
                                ItemList, ItemLists, LabelList, LabelLists, MixedItemList, MultiCategory,
                                MultiCategoryList, get_files)
from fastlib.metrics import accuracy


@pytest.fixture
def folder(tmp_path):
    "train/{a,b}/*.txt, valid/{a,b}/*.txt, test/*.txt, plus a hidden file and a .csv to be skipped."
    for split, n in (('train', 4), ('valid', 2)):
        for cls in ('a', 'b'):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                (d / f'{cls}_{i}.txt').write_text(f'{cls}{i}')
    (tmp_path / 'test').mkdir()
    for i in range(3):
        (tmp_path / 'test' / f't{i}.txt').write_text('t')
    (tmp_path / 'train' / 'a' / '.hidden.txt').write_text('x')
    (tmp_path / 'notes.csv').write_text('x')
    return tmp_path


def vectors(n=60, seed=0):
    "n random 3-vectors labelled by the sign of their first coordinate."
    x = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
    return x, np.where(x[:, 0] > 0, 'pos', 'neg')


def test_get_files_filters_extensions_folders_and_hidden_files(folder):
    txt = get_files(folder, extensions=['.txt'], recurse=True, presort=True)
    assert len(txt) == 4 * 2 + 2 * 2 + 3 and all(f.suffix == '.txt' for f in txt)
    assert not any(f.name.startswith('.') for f in txt) and txt == sorted(txt)
    assert [f.name for f in get_files(folder)] == ['notes.csv']
    only_valid = get_files(folder, extensions='txt', recurse=True, include=['valid'])
    assert len(only_valid) == 4 and all(f.parts[-3] == 'valid' for f in only_valid)
    assert len(get_files(folder, ['.TXT'], recurse=True, exclude=['train', 'test'])) == 4
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        get_files(folder / 'nope')


def test_folder_chain_splits_labels_and_learns_classes_on_train(folder):
    ll = ItemList.from_folder(folder, extensions=['.txt']).split_by_folder().label_from_folder()
    assert isinstance(ll, LabelLists) and len(ll.train) == 8 and len(ll.valid) == 4
    assert ll.train.y.classes == ['a', 'b'] and ll.valid.y.classes == ['a', 'b']
    x, y = ll.valid[0]
    assert isinstance(y, Category) and y.obj == x.parent.name and y.data == ['a', 'b'].index(y.obj)
    ll.add_test_folder('test')
    assert len(ll.test) == 3 and isinstance(ll.test[0][1], EmptyLabel)


def test_validation_label_unseen_in_training_is_an_error_naming_it(folder):
    (folder / 'valid' / 'c').mkdir()
    (folder / 'valid' / 'c' / 'c_0.txt').write_text('c')
    with pytest.raises(ValueError, match=r"In the validation set: 1 labels are not among .* 'c' \(1 item\)"):
        ItemList.from_folder(folder, extensions=['.txt']).split_by_folder().label_from_folder()


def test_split_by_folder_with_wrong_name_lists_the_folders_found(folder):
    with pytest.raises(ValueError, match=r"No items in a folder 'training'.*\['test', 'train', 'valid'\]"):
        ItemList.from_folder(folder, extensions=['.txt']).split_by_folder(train='training')


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"No files with a suffix in \['.png'\] found in"):
        ItemList.from_folder(tmp_path, extensions=['.png'])


def test_random_split_is_repeatable_with_a_seed_and_disjoint():
    il = ItemList(range(100))
    a, b = il.split_by_rand_pct(0.2, seed=42), il.split_by_rand_pct(0.2, seed=42)
    assert len(a.valid) == 20 and list(a.valid.items) == list(b.valid.items)
    assert set(a.train.items) | set(a.valid.items) == set(range(100)) and not set(a.train.items) & set(a.valid.items)
    assert len(il.split_by_rand_pct(0.).valid) == 0
    with pytest.raises(ValueError, match=r'valid_pct must be in \[0, 1\)'):
        il.split_by_rand_pct(1.5)
    sub = il.split_subsets(0.5, 0.1, seed=0)
    assert (len(sub.train), len(sub.valid)) == (50, 10) and not set(sub.train.items) & set(sub.valid.items)


def test_split_by_idx_rejects_out_of_range_indices():
    with pytest.raises(IndexError, match=r'outside 0..9'):
        ItemList(range(10)).split_by_idx([3, 12])


def test_split_from_df_reads_booleans_and_rejects_other_values():
    df = pd.DataFrame({'x': range(6), 'y': list('ababab'), 'is_valid': ['True', 'False'] * 3})
    sd = ItemList.from_df(df, cols='x').split_from_df('is_valid')
    assert list(sd.valid.items) == [0, 2, 4]
    df['is_valid'] = ['yes', 'no'] * 3
    with pytest.raises(ValueError, match=r"split column 'is_valid' must hold booleans.*'yes'"):
        ItemList.from_df(df, cols='x').split_from_df('is_valid')


def test_from_df_errors_name_the_problem():
    df = pd.DataFrame({'name': ['a', 'b', None], 'label': [1, 2, 3]})
    with pytest.raises(KeyError, match=r"No column 'nmae'.*Did you mean 'name'"):
        ItemList.from_df(df, cols='nmae')
    with pytest.raises(ValueError, match=r"missing values \(NaN\), e.g. at rows \[2\]"):
        ItemList.from_df(df, cols='name')
    with pytest.raises(ValueError, match='DataFrame is empty'):
        ItemList.from_df(df.iloc[:0], cols='name')


def test_label_from_df_with_nan_target_is_an_error():
    df = pd.DataFrame({'x': range(4), 'y': [1.0, np.nan, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"hold missing values \(NaN\) in 1 rows, e.g. at rows \[1\]"):
        ItemList.from_df(df, cols='x').split_none().label_from_df('y')


def test_label_from_re_extracts_and_reports_a_non_matching_name(tmp_path):
    names = ['cat_1.jpg', 'dog_2.jpg', 'cat_3.jpg']
    ll = ItemList([tmp_path / n for n in names], path=tmp_path).split_none().label_from_re(r'^([a-z]+)_\d+')
    assert [ll.train.y[i].obj for i in range(3)] == ['cat', 'dog', 'cat'] and ll.train.y.classes == ['cat', 'dog']
    with pytest.raises(ValueError, match=r"pattern '\^\(\[0-9\]\+\)' does not match 'cat_1.jpg'"):
        ItemList([tmp_path / n for n in names]).split_none().label_from_re(r'^([0-9]+)')


def test_multi_label_with_label_delim_gives_one_hot_targets_and_thresholded_predictions():
    df = pd.DataFrame({'x': range(4), 'tags': ['sun cloud', 'rain', 'cloud rain', 'sun']})
    ll = ItemList.from_df(df, cols='x').split_by_idx([3]).label_from_df('tags', label_delim=' ')
    y = ll.train.y
    assert isinstance(y, MultiCategoryList) and y.classes == ['cloud', 'rain', 'sun']
    item = y[0]
    assert isinstance(item, MultiCategory) and item.data.tolist() == [1., 0., 1.] and item.obj == ['sun', 'cloud']
    assert y.analyze_pred(torch.tensor([0.7, 0.2, 0.5])).tolist() == [1., 0., 1.]
    assert y.reconstruct(torch.tensor([0., 1., 1.])).obj == ['rain', 'sun']
    assert ll.valid.y[0].data.tolist() == [0., 0., 1.]


def test_label_from_several_columns_is_one_hot_multi_label():
    df = pd.DataFrame({'x': range(3), 'red': [1, 0, 1], 'blue': [0, 1, 1]})
    ll = ItemList.from_df(df, cols='x').split_none().label_from_df(['red', 'blue'])
    assert ll.train.y.classes == ['red', 'blue'] and ll.train.y[2].data.tolist() == [1., 1.]
    assert ll.train.y[1].obj == ['blue']


def test_float_labels_give_a_regression_list_with_log_option():
    df = pd.DataFrame({'x': range(4), 'price': [1., 10., 100., 1000.], 'w': [1., 2., 3., 4.]})
    ll = ItemList.from_df(df, cols='x').split_by_idx([0]).label_from_df('price', label_cls=FloatList, log=True)
    assert isinstance(ll.train.y, FloatList) and ll.train.y.c == 1
    np.testing.assert_allclose(ll.train.y.items, np.log([10., 100., 1000.]), rtol=1e-6)
    np.testing.assert_allclose(ll.valid.y.items, [0.], atol=1e-7)  # the validation targets are logged too
    two = ItemList.from_df(df, cols='x').split_none().label_from_df(['price', 'w'])
    assert isinstance(two.train.y, FloatList) and two.train.y.c == 2 and isinstance(two.train.y[0], FloatItem)
    with pytest.raises(ValueError, match=r"must be numbers; found \['cheap'\]"):
        FloatList(['1.5', 'cheap'])


def test_labelled_data_trains_predicts_and_adds_a_test_set(tmp_path):
    x, lab = vectors()
    data = (FloatList(list(x), path=tmp_path).split_by_idx(range(0, 60, 4))
            .label_from_func(lambda v: 'pos' if v[0] > 0 else 'neg').databunch(bs=8, num_workers=0))
    assert isinstance(data, DataBunch) and data.c == 2 and data.classes == ['neg', 'pos']
    learn = Learner(data, torch.nn.Linear(3, 2), metrics=accuracy)
    learn.fit(4, 1e-1)
    assert learn.recorder.metrics[-1][0] >= 0.8
    cat, idx, probs = learn.predict(np.array([2., 0., 0.], dtype=np.float32))
    assert isinstance(cat, Category) and cat.obj == 'pos' and int(idx) == 1 and probs[1] > 0.5
    data.add_test(list(x[:5]))
    preds, _ = learn.get_preds(DatasetType.Test)
    assert preds.shape == (5, 2)


def test_export_then_load_learner_in_a_fresh_process_predicts_the_same(tmp_path):
    x, _ = vectors()
    data = (FloatList(list(x), path=tmp_path).split_by_idx(range(0, 60, 4))
            .label_from_func(lambda v: 'pos' if v[0] > 0 else 'neg').databunch(bs=8, num_workers=0))
    learn = Learner(data, torch.nn.Linear(3, 2))
    learn.fit(1, 1e-2)
    item = np.array([0.3, -1., 2.], dtype=np.float32)
    _, idx, probs = learn.predict(item)
    learn.export()
    code = textwrap.dedent(f"""
        import numpy as np
        from fastlib.basic_train import load_learner
        learn = load_learner({str(tmp_path)!r})
        cat, idx, probs = learn.predict(np.array([0.3, -1., 2.], dtype=np.float32))
        print(cat.obj, int(idx), ' '.join(f'{{p:.6f}}' for p in probs.tolist()), learn.data.classes)
    """)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == ['neg', 'pos'][int(idx)] and int(out[1]) == int(idx)
    np.testing.assert_allclose([float(p) for p in out[2:4]], probs.tolist(), atol=1e-5)
    loaded = load_learner(tmp_path, test=list(x[:3]))
    assert loaded.get_preds(DatasetType.Test)[0].shape == (3, 2)


def test_save_and_load_data_keep_the_class_and_the_labels(tmp_path):
    x, _ = vectors(20)
    data = (FloatList(list(x), path=tmp_path).split_by_idx([0, 1, 2, 3])
            .label_from_func(lambda v: 'pos' if v[0] > 0 else 'neg').databunch(bs=4, num_workers=0))
    data.save()
    back = load_data(tmp_path, bs=4, num_workers=0)
    assert type(back) is DataBunch and back.classes == data.classes and len(back.valid_ds) == 4
    assert back.train_ds[0][1] == data.train_ds[0][1]


def test_set_item_yields_just_that_item_then_restores_the_dataset():
    x, _ = vectors(10)
    ll = FloatList(list(x)).split_none().label_from_func(lambda v: 'pos' if v[0] > 0 else 'neg')
    ds = ll.train
    with ds.set_item(np.ones(3, dtype=np.float32)):
        assert len(ds) == 1
        xi, yi = ds[0]
        assert np.array_equal(xi, np.ones(3)) and isinstance(yi, EmptyLabel)
    assert len(ds) == 10


class _Shift:
    "A transform for the tests: adds `by` to a vector item (and records the arguments it got)."
    use_on_y = True

    def __init__(self, by):
        self.by, self.calls = by, []


class VecItem(ItemBase):
    def __init__(self, v):
        self.obj = v
        self.data = torch.as_tensor(np.asarray(v, dtype=np.float32))

    def apply_tfms(self, tfms, do_resolve=True, **kwargs):
        res = self.obj
        for t in listify(tfms):
            t.calls.append(dict(kwargs, do_resolve=do_resolve))
            res = res + t.by
        return VecItem(res)


class VecList(ItemList):
    def get(self, i):
        return VecItem(self.items[i])


def test_transform_applies_train_and_valid_tfms_and_tfm_y_reuses_them():
    x, _ = vectors(8)
    t_train, t_valid = _Shift(10.), _Shift(0.)
    ll = VecList(list(x)).split_by_idx([0, 1]).label_from_lists(VecList(list(x[2:])).items, VecList(list(x[:2])).items,
                                                                 label_cls=VecList)
    ll.transform((t_train, t_valid), size=5, tfm_y=True)
    xt, yt = ll.train[0]
    np.testing.assert_allclose(xt.obj, x[2] + 10.)
    np.testing.assert_allclose(yt.obj, x[2] + 10.)
    assert t_train.calls[-1] == {'size': 5, 'do_resolve': False}  # y gets x's random parameters, not new ones
    np.testing.assert_allclose(ll.valid[0][0].obj, x[0])


def test_a_broken_transform_fails_when_it_is_set_naming_the_item():
    class Broken:
        pass

    class BadItem(VecItem):
        def apply_tfms(self, tfms, **kwargs):
            raise ValueError('wrong size')

    class BadList(ItemList):
        def get(self, i):
            return BadItem(self.items[i])

    ll = BadList([np.zeros(2), np.ones(2)]).split_none().label_const(0)
    with pytest.raises(ValueError, match=r'transforms cannot be applied to item 0 .*wrong size'):
        ll.transform(([Broken()], None))


def test_items_without_transforms_reject_them():
    with pytest.raises(TypeError, match='Category items take no transforms'):
        Category(0, 'a').apply_tfms([lambda x: x])


def test_unlabelled_data_cannot_be_transformed_or_bunched():
    split = ItemList(range(4)).split_none()
    assert isinstance(split, ItemLists)
    with pytest.raises(RuntimeError, match='Label the data before transforming'):
        split.transform((None, None))
    with pytest.raises(RuntimeError, match='Label the data before making a DataBunch'):
        split.databunch()
    with pytest.raises(RuntimeError, match='Split the data before labelling'):
        ItemList(range(4)).label_const(0)


def test_filters_and_partial_data(folder):
    il = ItemList.from_folder(folder, extensions=['.txt'])
    assert len(il.new(il.items).filter_by_folder(include=['test'])) == 3
    assert len(il.new(il.items).filter_by_folder(exclude=['test'])) == 12
    assert len(il.new(il.items).filter_by_func(lambda o: o.name.startswith('a_'))) == 6
    assert len(il.use_partial_data(0.5, seed=1)) == 7 and set(il.use_partial_data(0.5, seed=1).items) <= set(il.items)
    ll = il.split_by_folder().label_from_folder().filter_by_func(lambda x, y: y == 'b')
    assert len(ll.train) == 4 and all(ll.train[i][1].obj == 'a' for i in range(4))


def test_label_lists_add_test_with_a_label_processes_it_like_validation():
    x, _ = vectors(12)
    ll = FloatList(list(x)).split_by_idx([0, 1]).label_from_func(lambda v: 'pos' if v[0] > 0 else 'neg')
    ll.add_test(list(x[:4]), label='pos')
    assert [ll.test[i][1].obj for i in range(4)] == ['pos'] * 4 and ll.test.y.classes == ll.train.y.classes
    ll.add_test(list(x[:2]))
    assert isinstance(ll.test.y, EmptyLabelList)


def test_to_csv_writes_the_items_and_labels(tmp_path):
    ll = ItemList(['u', 'v', 'w'], path=tmp_path).split_none().label_from_lists(['a', 'b', 'a'], [])
    ll.train.to_csv('labels.csv')
    df = pd.read_csv(tmp_path / 'labels.csv')
    assert df.x.tolist() == ['u', 'v', 'w'] and df.y.tolist() == ['a', 'b', 'a']


def test_mixed_item_list_combines_the_items_of_several_lists():
    x, _ = vectors(6)
    mixed = MixedItemList([FloatList(list(x)), CategoryList(['a', 'b'] * 3)])
    ll = mixed.split_by_idx([0]).label_from_lists(list(range(5)), [0], label_cls=FloatList)
    first = ll.train[0][0]
    assert np.allclose(first.data[0].numpy(), x[1]) and first.obj[1].obj == 'b'
    assert isinstance(ll.train.x, MixedItemList) and len(ll.train.x) == 5


def test_steps_out_of_order_say_what_comes_first():
    items = ItemList(list(range(6)))
    with pytest.raises(RuntimeError, match=r'Split and label the items before making a DataBunch'):
        items.databunch()
    with pytest.raises(RuntimeError, match=r'Split and label the items before transforming'):
        items.transform()
    split = items.split_by_idx([0, 1])
    with pytest.raises(RuntimeError, match=r'Label the data before making a DataBunch'):
        split.databunch()
    with pytest.raises(RuntimeError, match=r'Label the data before transforming its targets'):
        split.transform_y()
    with pytest.raises(RuntimeError, match=r'A LabelList is one dataset: call `.databunch\(\)` on the LabelLists'):
        split.label_const(0).train.databunch()


def test_label_lists_load_empty_from_an_export(tmp_path):
    df = pd.DataFrame({'x': [1., 2., 3., 4., 5., 6.], 'y': list('ababab')})
    lls = ItemList.from_df(df, path=tmp_path, cols='x').split_by_idx([0, 1]).label_from_df(cols='y')
    lls.valid.export('ds.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('error')   # empty on purpose: no warning about the split
        empty = LabelLists.load_empty(tmp_path, 'ds.pkl')
    assert len(empty.train) == len(empty.valid) == 0
    assert empty.train.y.classes == empty.valid.y.classes == ['a', 'b']
    assert empty.train is not empty.valid and empty.train.y is not empty.valid.y
    torch.save({'model': 1}, tmp_path / 'other.pkl')
    with pytest.raises(ValueError, match=r'holds no data block dataset'):
        LabelLists.load_empty(tmp_path, 'other.pkl')
