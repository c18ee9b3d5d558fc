"""The catalogue of bad input across fastlib: the core Learner and DataBunch, the data block API, vision, text,
tabular and collab. Each case in CASES builds one piece of bad input from tiny synthetic data and asserts the error
type and a message that says what to do, or a documented recovery (a warning naming the problem).

The domain test files (test_vision_data.py, test_text_data.py, test_tabular.py, test_collab.py,
test_data_block.py, test_basic_data.py) check some of the same behaviours next to their features; this file is
the one place to read what a user sees for each kind of mistake.
"""
import os
import stat
from types import SimpleNamespace

import numpy as np
import pandas as pd
import PIL.Image
import pytest
import torch
from torch import nn

from fastlib.basic_data import DataBunch, DatasetType
from fastlib.basic_train import Learner
from fastlib.collab import CollabDataBunch, collab_learner
from fastlib.data_block import ItemList
from fastlib.tabular import Categorify, FillMissing, Normalize, TabularDataBunch, TabularList, tabular_learner
from fastlib.testing import FakeDataset, fake_data, fake_datasets, fake_learner
from fastlib.text import (AWD_LSTM, TextClasDataBunch, TextLMDataBunch, Vocab, awd_lstm_clas_config,
                          awd_lstm_lm_config, language_model_learner, text_classifier_learner)
from fastlib.text.testing import fake_review_df
from fastlib.vision import (ImageDataBunch, ImageList, SegmentationItemList, models, open_image, unet_learner)
from fastlib.vision.learner import cnn_learner

CPU = dict(device=torch.device('cpu'), num_workers=0)


# --- Tiny data, written once for the module --------------------------------------------------------------------

def _png(path, value, shape=(8, 8, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(np.full(shape, value, dtype=np.uint8)).save(path)
    return path


@pytest.fixture(scope='module')
def d(tmp_path_factory):
    "Paths of tiny data sets on disk: image folders, segmentation masks, text files, an empty folder."
    root = tmp_path_factory.mktemp('bad_input')
    img = root / 'img'   # img/{train,valid}/{a,b}/*.png, plus labels.csv
    for split in ('train', 'valid'):
        for k, c in enumerate('ab'):
            for i in range(2):
                _png(img / split / c / f'{c}{i}.png', 60 + 120 * k)
    pd.DataFrame({'name': ['train/a/a0.png', 'train/b/b0.png'], 'label': ['a', 'b']}).to_csv(img / 'labels.csv',
                                                                                             index=False)
    unknown = root / 'img_unknown'   # a validation class 'c' that training never saw
    for split, classes in (('train', 'ab'), ('valid', 'abc')):
        for c in classes:
            _png(unknown / split / c / f'{c}0.png', 100)
    seg = root / 'seg'   # masks hold the codes 0..3
    for i in range(3):
        _png(seg / 'images' / f'{i}.png', 0)
        _png(seg / 'labels' / f'{i}_P.png', i + 1, shape=(8, 8))
    txt = root / 'txt'   # txt/{train,valid}/{pos,neg}/*.txt, one file in latin-1
    for split in ('train', 'valid'):
        for label, word in (('pos', 'great'), ('neg', 'awful')):
            (txt / split / label).mkdir(parents=True)
            for i in range(2):
                (txt / split / label / f'{i}.txt').write_text(f'A {word} film number {i}.', encoding='utf-8')
    (txt / 'train' / 'pos' / 'latin1.txt').write_bytes(b'Un caf\xe9 tr\xe8s bon.')
    (root / 'empty').mkdir()
    (root / 'a_file').write_text('not a folder')
    return SimpleNamespace(root=root, img=img, unknown=unknown, seg=seg, txt=txt, empty=root / 'empty',
                           a_file=root / 'a_file')


# --- Builders the cases share -----------------------------------------------------------------------------------

def _learner(**kwargs):
    return Learner(fake_data(), nn.Linear(8, 3), **kwargs)


def _model_on_meta():
    learn = fake_learner()
    learn.model.to('meta')
    return learn


def _load_other_architecture(d):
    fake_learner(path=d.root, hidden=16).save('other')
    return fake_learner(path=d.root, hidden=32).load('other')


def _drop_every_batch():
    learn = fake_learner(train_length=10, batch_size=32)
    learn.data.train_dl = learn.data.train_dl.new(drop_last=True)   # 10 items < bs 32: no batch at all
    learn.fit(1)


def _empty_train():
    train, valid = fake_datasets(train_length=16, valid_length=16)
    DataBunch.create(FakeDataset(train.x[:0], train.y[:0], train.classes), valid, num_workers=0)


def _empty_valid():
    train, valid = fake_datasets(train_length=16, valid_length=16)
    DataBunch.create(train, FakeDataset(valid.x[:0], valid.y[:0], valid.classes), num_workers=0, bs=8)


def _shapes_differ():
    train, _ = fake_datasets(n_in=8)
    _, valid = fake_datasets(n_in=5)
    DataBunch.create(train, valid, num_workers=0)


class _Ragged(torch.utils.data.Dataset):
    "Items of lengths 1, 2, 3, 4: they cannot be stacked into one batch."

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.zeros(i + 1), 0


def _nan_target_in_plain_tensors():
    train, valid = fake_datasets(n_classes=None)
    train.y[3] = float('nan')
    data = DataBunch.create(train, valid, num_workers=0, bs=16)
    fake_learner(n_classes=None, data=data).fit(1, 1e-3)


def _vectors_df():
    return pd.DataFrame({'name': ['a', 'b', 'c', 'd'], 'x': range(4), 'y': [1.0, np.nan, 2.0, 3.0]})


def _images(d, **kwargs):
    return ImageDataBunch.from_folder(d.img, **{'size': 8, 'bs': 2, **CPU, **kwargs})


def _segmentation(d, classes):
    src = (SegmentationItemList.from_folder(d.seg / 'images').split_by_idx([0])
           .label_from_func(lambda o: d.seg / 'labels' / f'{o.stem}_P.png', classes=classes))
    return src.transform(size=8, tfm_y=True).databunch(bs=2, **CPU)


def _image_learner(d):
    "A plain Learner on the image data (no pretrained body to build): `predict` processes raw items as a cnn would."
    return Learner(_images(d), nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)))


def _reviews():
    df = fake_review_df(60, seed=1)
    return df[~df.is_valid], df[df.is_valid]


def _text_clas(d, train=None, valid=None, **kwargs):
    tr, va = _reviews()
    return TextClasDataBunch.from_df(d.root, tr if train is None else train, va if valid is None else valid,
                                     **{'min_freq': 1, 'bs': 8, **kwargs}, device=CPU['device'])


def _with(df, row, col, value):
    df = df.copy()
    df.iloc[row, df.columns.get_loc(col)] = value
    return df


def _encoder_on_another_vocabulary(d):
    "Save a language model's encoder, then load it into a classifier whose data built its own vocabulary."
    lm_cfg = dict(awd_lstm_lm_config, emb_sz=8, n_hid=16, n_layers=1)
    clas_cfg = dict(awd_lstm_clas_config, emb_sz=8, n_hid=16, n_layers=1)
    tr, va = _reviews()
    data_lm = TextLMDataBunch.from_df(d.root, tr, va, bs=4, bptt=8, min_freq=1, device=CPU['device'])
    language_model_learner(data_lm, AWD_LSTM, config=lm_cfg, pretrained=False).save_encoder('enc_bad_input')
    other = fake_review_df(40, seed=9).assign(text=lambda df: df.text + ' unseenword')
    data_clas = TextClasDataBunch.from_df(d.root, other[~other.is_valid], other[other.is_valid], min_freq=1, bs=8,
                                          device=CPU['device'])   # no vocab=data_lm.vocab: the mistake
    clas = text_classifier_learner(data_clas, AWD_LSTM, config=clas_cfg, pretrained=False, bptt=8)
    clas.load_encoder('enc_bad_input')


CAT, CONT = ['color'], ['x']


def _table(n=40):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({'color': rng.choice(['red', 'blue'], n), 'x': rng.normal(size=n)})
    df['label'] = np.where(df.x > 0, 'yes', 'no')
    return df


def _tabular(df, dep_var='label', **kwargs):
    return TabularDataBunch.from_df('.', df, dep_var, valid_idx=list(range(30, len(df))),
                                    procs=[FillMissing, Categorify, Normalize], cat_names=CAT, cont_names=CONT,
                                    **{'bs': 8, **CPU, **kwargs})


def _ratings(n=60):
    rng = np.random.default_rng(0)
    return pd.DataFrame({'userId': rng.integers(0, 6, n), 'movieId': rng.integers(0, 8, n),
                         'rating': rng.integers(1, 6, n).astype(float)})


def _collab(df, **kwargs):
    return CollabDataBunch.from_df(df, seed=0, bs=8, **CPU, **kwargs)


# --- The catalogue: (id, make(d), error or warning type, regex the message must match) --------------------------

CASES = [
    # The core Learner
    ('model not a module', lambda d: Learner(fake_data(), lambda x: x), TypeError,
     r'Learner needs a torch nn.Module as model, not function'),
    ('loss_func given by name', lambda d: _learner(loss_func='mse'), TypeError,
     r"loss_func must be callable \(e.g\. .*CrossEntropyFlat\(\).*not the str 'mse'"),
    ('opt_func given by name', lambda d: _learner(opt_func='adam'), TypeError,
     r"opt_func must be callable \(e.g\. opt_func=AdamW or torch.optim.SGD.*not the str 'adam'"),
    ('metric neither function nor name', lambda d: _learner(metrics=[3]), TypeError,
     r"A metric is a function f\(output, target\), a metric callback or a name such as 'accuracy', not the int 3"),
    ('metric name typo', lambda d: _learner(metrics=['acuracy']), ValueError,
     r"Unknown metric 'acuracy'. Did you mean 'accuracy'"),
    ('negative epochs', lambda d: fake_learner().fit(-1), ValueError, r'epochs must be a whole number >= 0, not -1'),
    ('fractional epochs', lambda d: fake_learner().fit(1.5), ValueError,
     r'epochs must be a whole number >= 0, not 1.5'),
    ('NaN learning rate', lambda d: fake_learner().fit(1, float('nan')), ValueError,
     r'The learning rate must be finite and >= 0, not \[nan'),
    ('negative learning rate', lambda d: fake_learner().fit(1, -1e-3), ValueError,
     r'The learning rate must be finite and >= 0'),
    ('infinite learning rate in a slice', lambda d: fake_learner().fit(1, [1e-3, np.inf]), ValueError,
     r'The learning rate must be finite and >= 0, not \[0.001, inf\]'),
    ('freeze_to past the last group', lambda d: fake_learner().freeze_to(5), ValueError,
     r'freeze_to\(5\) would freeze every layer group: this learner has \d+ \(valid: -\d+ to \d+'),
    ('model without a saved file', lambda d: fake_learner().load('never_saved'), FileNotFoundError,
     r'No saved model at .*never_saved.pth.*learn.save\(name\)'),
    ('model output and classes differ', lambda d: Learner(fake_data(n_classes=3), nn.Linear(8, 10)).fit(1),
     ValueError, r'outputs 10 values per item but the data has 3 classes'),
    ('raw item to a learner of plain tensors', lambda d: fake_learner().predict('hello'), TypeError,
     r"plain datasets, so predict takes the model's input for one sample .* not a str"),
    ('zero-length epochs: drop_last drops the only batch', lambda d: _drop_every_batch(), ValueError,
     r'This loader gives no batch: its 10 items are fewer than the batch size 32 and drop_last=True.*'
     r'Lower the batch size .* or pass drop_last=False'),
    ('NaN target in plain tensors', lambda d: _nan_target_in_plain_tensors(), UserWarning,
     r'The training loss became nan.*look for NaN or inf in the data'),
    ('model_dir is a file, not a folder',
     lambda d: fake_learner(path=d.root, model_dir=d.a_file.name).save('m'), PermissionError,
     r"Cannot write to .*a_file.*Set learn.model_dir to a writable folder"),
    ('export into a path that is a file', lambda d: fake_learner(path=d.a_file).export(), PermissionError,
     r"Cannot write to .*a_file.*Set learn.path to a writable folder, e.g. learn.path = Path\('/tmp/fastlib'\)"),
    ('data that is not a DataBunch', lambda d: Learner([1, 2], nn.Linear(8, 3)), TypeError,
     r'Learner needs a DataBunch as data, not list: build one with DataBunch.create\(train_ds, valid_ds'),
    ('model moved to another device', lambda d: _model_on_meta().fit(1), RuntimeError,
     r'The model is on meta but the data on cpu: move it with learn.model.to\(learn.data.device\)'),
    ('model input size and data differ', lambda d: Learner(fake_data(n_in=8), nn.Linear(5, 3)).fit(1), ValueError,
     r'The model cannot take the data.s input \(one item: shape \[\(1, 8\)\]\).*Make its first layer fit the data'),
    ('weights of another architecture', lambda d: _load_other_architecture(d), RuntimeError,
     r'other.pth does not fit this model: it was saved from a model with other layers or sizes.*size mismatch'),
    ('lr_find with no batches to sweep', lambda d: fake_learner().lr_find(num_it=0), ValueError,
     r'lr_find needs num_it >= 2 batches to sweep the learning rate \(default 100\), not 0'),
    ('lr_find sweeping downwards', lambda d: fake_learner().lr_find(start_lr=1, end_lr=1e-3), ValueError,
     r'lr_find sweeps from start_lr up to end_lr: both > 0 and start_lr < end_lr'),

    # DataBunch
    ('empty training set', lambda d: _empty_train(), ValueError, r'training set is empty \(0 items\)'),
    ('empty validation set', lambda d: _empty_valid(), UserWarning, r'validation set is empty'),
    ('train and valid inputs of different shapes', lambda d: _shapes_differ(), ValueError,
     r'shaped \(8,\) in training and \(5,\) in validation'),
    ('items that cannot be batched', lambda d: DataBunch.create(_Ragged(), _Ragged(), bs=4, num_workers=0),
     RuntimeError, r'cannot be put in one batch.*resize transform.*collate_fn that pads'),
    ('test set asked for but never added', lambda d: fake_data().dl(DatasetType.Test), ValueError,
     r'no Test set.*add_test'),

    # The data block API
    ('from_df given a list', lambda d: ItemList.from_df([[1, 2]], cols=0), TypeError,
     r'ItemList.from_df takes a pandas DataFrame, not list'),
    ('from_df of an empty DataFrame', lambda d: ItemList.from_df(_vectors_df().iloc[:0], cols='name'), ValueError,
     r'The DataFrame is empty \(0 rows\)'),
    ('column name typo', lambda d: ItemList.from_df(_vectors_df(), cols='nmae'), KeyError,
     r"No column 'nmae'.*Did you mean 'name'"),
    ('NaN target', lambda d: ItemList.from_df(_vectors_df(), cols='x').split_none().label_from_df('y'), ValueError,
     r'hold missing values \(NaN\) in 1 rows, e.g. at rows \[1\]\. Drop or fill those rows'),
    ('infinite regression target',
     lambda d: ItemList(range(4)).split_none().label_from_lists([1., np.inf, 2., 3.], []), ValueError,
     r'1 regression target\(s\) are infinite or NaN, e.g. at positions \[1\]: \[inf\]\. Drop or fix those rows'),
    ('fewer labels than items', lambda d: ItemList(range(10)).split_by_idx([0, 1]).label_from_lists([1] * 3, [2] * 2),
     ValueError, r'There are 8 items but 3 labels: give one label per item'),
    ('split index out of range', lambda d: ItemList(range(10)).split_by_idx([3, 12]), IndexError,
     r'outside 0..9'),
    ('valid_pct of 1 or more', lambda d: ItemList(range(10)).split_by_rand_pct(1.5), ValueError,
     r'valid_pct must be in \[0, 1\)'),
    ('label before split', lambda d: ItemList(range(4)).label_from_func(str), RuntimeError,
     r'Split the data before labelling it \(use `split_none\(\)`'),
    ('split folder name typo', lambda d: ImageList.from_folder(d.img).split_by_folder(train='training'),
     ValueError, r"No items in a folder 'training'.*\['train', 'valid'\]"),
    ('CSV file that does not exist', lambda d: ImageList.from_csv(d.img, 'label.csv'), FileNotFoundError,
     r"No CSV file at .*label.csv\. Did you mean 'labels.csv'\?"),

    # Vision
    ('empty image folder', lambda d: ImageDataBunch.from_folder(d.empty, size=8, **CPU), FileNotFoundError,
     r"No files with a suffix in \[.*'.png'.*\] found in .*empty.*Check the path"),
    ('image path that does not exist', lambda d: open_image(d.img / 'nothere.png'), FileNotFoundError,
     r'No image file at .*nothere.png'),
    ('CSV naming a missing image',
     lambda d: ImageList.from_df(pd.DataFrame({'name': ['train/a/a0.png', 'train/a/gone.png']}), d.img),
     FileNotFoundError, r'gone.png'),
    ('unknown label in validation (vision)', lambda d: ImageDataBunch.from_folder(d.unknown, size=8, **CPU),
     ValueError, r"In the validation set: 1 labels are not among the classes learnt from the training set.*'c' "
                 r"\(1 item\)\. Fix those labels, pass `classes=`"),
    ('size given as a word', lambda d: _images(d, size='big'), ValueError,
     r"size must be a positive int or a \(height, width\) pair of them, e.g. size=224.*not 'big'"),
    ('negative size', lambda d: _images(d, size=-3), ValueError, r'size must be a positive int.*not -3'),
    ('normalize stats for 2 channels on RGB images', lambda d: _images(d).normalize(([.5, .5], [.2, .2])),
     ValueError, r'The stats hold 2 mean\(s\) and 2 std\(s\), but the images have 3 channel\(s\)'),
    ('normalize stats by name', lambda d: _images(d).normalize('imagenet'), TypeError,
     r'normalize takes stats = \(mean, std\).*e.g. imagenet_stats'),
    ('normalize stats with a zero std', lambda d: _images(d).normalize(([.5] * 3, [.2, 0., .2])), ValueError,
     r'The stds of the stats must be > 0'),
    ('normalize twice', lambda d: _images(d).normalize().normalize(), ValueError, r'normalize once'),
    ('mask codes beyond classes', lambda d: _segmentation(d, ['void', 'thing']), ValueError,
     r'The mask .*_P\.png holds the code \d, but there are only 2 classes \(codes 0..1\)\. Pass the full `classes`'),
    ('segmentation labelled without classes', lambda d: unet_learner(_segmentation(d, None), models.resnet18,
                                                                     pretrained=False), ValueError,
     r'unet_learner: the data has no classes .*label_from_func\(get_mask, classes=codes\)'),
    ('architecture given by name', lambda d: cnn_learner(_images(d), 'resnet18', pretrained=False), TypeError,
     r"The architecture must be a function that builds the model, e.g. models.resnet18, not the str 'resnet18'"),
    ('predict on a tensor of pixels', lambda d: _image_learner(d).predict(torch.zeros(3, 8, 8)), TypeError,
     r'predict takes an Image \(e.g. open_image\(path\)\) or the path of an image file, not a Tensor'),
    ('predict on a missing image file', lambda d: _image_learner(d).predict(d.img / 'gone.png'), FileNotFoundError,
     r'No image file at .*gone.png'),

    # Text
    ('label column typo (text)', lambda d: _text_clas(d, label_cols='labl', text_cols='text'), KeyError,
     r"No column 'labl'.*Did you mean 'label'"),
    ('empty text', lambda d: _text_clas(d, train=_with(_reviews()[0], 3, 'text', '   ')), ValueError,
     r'1 of the texts are empty or blank \(positions \[3\]\)'),
    ('missing text (NaN)', lambda d: _text_clas(d, train=_with(_reviews()[0], 2, 'text', None)), ValueError,
     r'missing values \(NaN\).*Drop or fill those rows'),
    ('no training texts', lambda d: TextClasDataBunch.from_tokens(d.root, [], [], [['a']], ['x'], **CPU),
     ValueError, r'There are no training texts'),
    ('empty text DataFrame', lambda d: _text_clas(d, train=_reviews()[0].iloc[:0]), ValueError,
     r'The DataFrame is empty \(0 rows\)'),
    ('unknown label in validation (text)', lambda d: _text_clas(d, valid=_with(_reviews()[1], 0, 'label', 'meh')),
     ValueError, r"In the validation set: 1 labels are not among the classes.*'meh' \(1 item\)"),
    ('non-UTF-8 bytes in a text file', lambda d: TextClasDataBunch.from_folder(d.txt, bs=4, min_freq=1,
                                                                               device=CPU['device']),
     UnicodeDecodeError, r"latin1.txt is not valid utf-8.*OpenFileProcessor\(enc='latin-1'\)"),
    ('vocabulary of the encoder and the classifier data differ', _encoder_on_another_vocabulary, ValueError,
     r'was trained with a different vocabulary.*TextClasDataBunch.from_df\(..., vocab=data_lm.vocab\)'),
    ('vocab given as a list of tokens', lambda d: _text_clas(d, vocab=['xxunk', 'xxpad']), TypeError,
     r'vocab must be a Vocab \(e.g. data_lm.vocab, or Vocab\(itos\) for a list of tokens\), not a list'),
    ('ids outside the vocabulary',
     lambda d: TextLMDataBunch.from_ids(d.root, Vocab(['xxunk', 'xxpad', 'a']), [[0, 2, 7]] * 8, [[0, 2]] * 4,
                                        bs=2, bptt=2, **CPU), ValueError,
     r'8 of the texts hold ids outside the vocabulary \(0..2\), e.g. text 0 holds 7\. Pass the Vocab'),
    ('bptt of zero', lambda d: TextLMDataBunch.from_df(d.root, *_reviews(), bs=4, bptt=0, min_freq=1,
                                                       device=CPU['device']), ValueError,
     r'bptt is the number of tokens in each row of a batch: a positive int \(e.g. bptt=70\), not 0'),
    ('max_vocab too small', lambda d: _text_clas(d, max_vocab=0), ValueError,
     r'max_vocab=0 leaves no room for words.*Use e.g. max_vocab=60000'),
    ('min_freq above every word count', lambda d: _text_clas(d, min_freq=10 ** 6), UserWarning,
     r'No word of the texts occurs min_freq=1000000 times.*Lower min_freq'),
    ('language model with bs larger than the texts',
     lambda d: TextLMDataBunch.from_df(d.root, _reviews()[0][:1], _reviews()[1], bs=500, bptt=70,
                                       device=CPU['device']), ValueError,
     r'too few for even one batch of 500 streams.*Use a smaller bs'),

    # Tabular
    ('tabular input not a DataFrame', lambda d: TabularList.from_df(_table().to_numpy(), cat_names=CAT), TypeError,
     r'TabularList.from_df takes a pandas DataFrame, not ndarray'),
    ('empty DataFrame (tabular)', lambda d: TabularList.from_df(_table().iloc[:0], cat_names=CAT, cont_names=CONT),
     ValueError, r'The DataFrame is empty \(0 rows\)'),
    ('inf in a continuous column', lambda d: _tabular(_with(_table(), 3, 'x', np.inf)), ValueError,
     r"The continuous column 'x' holds infinite values \(1 in all, e.g. at rows \[3\]\)\. Make them missing"),
    ('-inf in a validation row', lambda d: _tabular(_with(_table(), 35, 'x', -np.inf)), ValueError,
     r"The continuous column 'x' holds infinite values .*rows \[35\]"),
    ('strings in a continuous column', lambda d: _tabular(_with(_table().astype({'x': object}), 4, 'x', 'n/a')),
     ValueError, r"The continuous column 'x' holds values that are not numbers \('n/a'.*pd.to_numeric"),
    ('cat_names typo', lambda d: TabularList.from_df(_table(), cat_names=['colour'], cont_names=CONT), ValueError,
     r"(?s)Categorical column\(s\) \(cat_names\) \['colour'\] not in the DataFrame's columns.*Did you mean 'color'"),
    ('label column typo (tabular)', lambda d: _tabular(_table(), dep_var='lable'), ValueError,
     r"(?s)Target column \(dep_var\) \['lable'\].*Did you mean 'label'\?"),
    ('NaN target (tabular)', lambda d: _tabular(_with(_table(), 5, 'label', np.nan)), ValueError,
     r"label column\(s\) \['label'\] hold missing values \(NaN\) in 1 rows"),
    ('unknown label in validation (tabular)', lambda d: _tabular(_with(_table(), 33, 'label', 'maybe')), ValueError,
     r"In the validation set: 1 labels are not among the classes.*'maybe' \(1 item, did you mean 'yes'\?\)\. Fix"),
    ('predict on a row missing a column',
     lambda d: tabular_learner(_tabular(_table()), layers=[4]).predict({'color': 'red'}), ValueError,
     r"Continuous column\(s\) \(cont_names\) \['x'\] not in the row to predict"),
    ('predict on an unseen category',
     lambda d: tabular_learner(_tabular(_table()), layers=[4]).predict({'color': 'purple', 'x': 0.}), UserWarning,
     r"value\(s\) of the column 'color' were not seen in training \(e\.g\. 'purple'\)"),

    # Collab
    ('ratings not a DataFrame', lambda d: _collab(_ratings().to_numpy()), TypeError,
     r'CollabDataBunch.from_df takes a pandas DataFrame of ratings, not ndarray'),
    ('empty ratings', lambda d: _collab(_ratings().iloc[:0]), ValueError, r'The ratings DataFrame is empty'),
    ('NaN rating', lambda d: _collab(_with(_ratings(), 3, 'rating', np.nan)), ValueError,
     r"The label column\(s\) \['rating'\] hold missing values \(NaN\) in 1 rows.*Drop or fill those rows"),
    ('infinite rating', lambda d: _collab(_with(_ratings(), 3, 'rating', np.inf)), ValueError,
     r"The label column\(s\) \['rating'\] hold infinite values in 1 rows, e.g. at rows \[3\]\. Drop or fix those rows"),
    ('user column typo', lambda d: _collab(_ratings(), user_name='user'), ValueError,
     r"(?s)\['user'\] not in the DataFrame's columns.*Did you mean 'userId'\?"),
    ('collab_learner without n_factors', lambda d: collab_learner(_collab(_ratings())), ValueError,
     r'collab_learner needs n_factors'),
    ('unknown user id', lambda d: collab_learner(_collab(_ratings()), n_factors=2).get_idx([99], is_item=False),
     ValueError, r"1 value\(s\) of 'userId' were not in the training data: \[99\]\. The known ones are "
                 r"learn.data.train_ds.x.classes\['userId'\]"),
]


@pytest.mark.parametrize('make, error, message', [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_a_clear_error(make, error, message, d):
    if issubclass(error, Warning):   # a documented recovery: it goes on, and the warning names the problem
        with pytest.warns(error, match=message):
            make(d)
    else:
        with pytest.raises(error, match=message):
            make(d)


def test_the_catalogue_covers_every_domain():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


# --- Cases that are not one call raising -----------------------------------------------------------------------

def test_fit_zero_epochs_is_a_no_op():
    learn = fake_learner()
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit(0)
    assert all((a == b).all() for a, b in zip(before, learn.model.parameters()))


def test_a_loss_that_becomes_nan_is_reported_once_with_what_to_do():
    class NanAfter(nn.Module):
        "Mean squared error, NaN from the 3rd call on."
        def __init__(self):
            super().__init__()
            self.calls = 0

        def forward(self, out, y):
            self.calls += 1
            loss = ((out - out.detach()) ** 2).mean() + out.new_tensor(float(y.float().mean()))
            return loss * float('nan') if self.calls >= 3 else loss
    learn = fake_learner()
    learn.loss_func = NanAfter()
    with pytest.warns(UserWarning, match=r'The training loss became nan \(first at iteration 2 of this fit\).*'
                                         r'Lower the learning rate.*TerminateOnNaN') as rec:
        learn.fit(2, 1e-3)
    assert sum('training loss became' in str(w.message) for w in rec) == 1   # once, not at every epoch


def test_bs_larger_than_the_data_set_gives_one_batch_of_everything(d):
    "A batch size above the number of items is not an error: the training loader keeps its one, smaller batch."
    images = _images(d, bs=100)
    assert len(images.train_dl) == 1 and images.one_batch()[0].shape[0] == len(images.train_ds) == 4
    table = _tabular(_table(), bs=1000)
    assert len(table.train_dl) == 1 and table.one_batch()[1].shape[0] == 30
    texts = _text_clas(d, bs=1000)
    assert len(texts.train_dl) == 1 and texts.one_batch()[0].shape[0] == len(texts.train_ds)
    learn = fake_learner(train_length=10, batch_size=64)
    learn.fit(1)   # and it trains
    assert len(learn.recorder.losses) == 1


def test_read_only_model_dir_on_save_and_export(tmp_path):
    folder = tmp_path / 'readonly'
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip('chmod 0o500 leaves the folder writable here (running as root): nothing to check')
        learn = fake_learner(path=folder, model_dir='.')
        with pytest.raises(PermissionError, match=r'Cannot write to .*readonly.*Set learn.model_dir to a writable'):
            learn.save('m')
        with pytest.raises(PermissionError, match=r'Cannot write to .*readonly.*Set learn.path to a writable'):
            learn.export()
        assert not any(folder.iterdir())   # no half-written file left behind
    finally:
        folder.chmod(stat.S_IRWXU)
