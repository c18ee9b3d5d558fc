"""Text data: processors, language-model streams, classifier padding and sampling, the factories, bad input."""
import numpy as np
import pytest
import torch

from fastlib.basic_data import load_data
from fastlib.text import (LanguageModelPreLoader, NumericalizeProcessor, SortishSampler, SortSampler, Text,
                          TextClasDataBunch, TextList, TextLMDataBunch, Tokenizer, TokenizeProcessor,
                          Vocab, pad_collate)
from fastlib.data_block import Category
from fastlib.text.testing import fake_review_df

CPU = dict(device=torch.device('cpu'))


@pytest.fixture(scope='module')
def df():
    return fake_review_df(120, seed=1)


def split(df):
    return df[~df.is_valid], df[df.is_valid]


def test_lm_batches_are_slices_of_the_concatenated_texts(df, tmp_path):
    train_df, valid_df = split(df)
    data = TextLMDataBunch.from_df(tmp_path, train_df, valid_df, bs=4, bptt=7, min_freq=1, **CPU)
    pre = data.valid_ds
    assert isinstance(pre, LanguageModelPreLoader)
    ids = np.concatenate(list(pre.dataset.x.items))  # validation: texts in order, no shuffling
    n_cols = len(ids) // 4
    expected = torch.as_tensor(ids[:4 * n_cols]).view(4, n_cols)
    assert len(pre) == -(-(n_cols - 1) // 7)
    xs, ys = zip(*[pre[i] for i in range(len(pre))])
    assert torch.equal(torch.cat(xs, 1), expected[:, :-1])
    assert torch.equal(torch.cat(ys, 1), expected[:, 1:])
    assert all(x.shape == (4, 7) for x in xs[:-1]) and xs[-1].shape[1] <= 7
    # every text starts with xxbos, and the vocabulary is the training one
    assert all(o[0] == data.vocab.stoi['xxbos'] for o in pre.dataset.x.items)
    x, y = data.one_batch()
    assert x.shape == (4, 7) and torch.equal(x[:, 1:], y[:, :-1])


def test_lm_training_streams_are_a_new_permutation_of_whole_texts_each_epoch(df, tmp_path):
    train_df, valid_df = split(df)
    data = TextLMDataBunch.from_df(tmp_path, train_df, valid_df, bs=3, bptt=5, min_freq=1, **CPU)
    pre = data.train_ds
    items = pre.dataset.x.items
    np.random.seed(0)
    pre.allocate_buffers()
    first = pre.stream.clone()
    np.random.seed(0)
    order = np.random.permutation(len(items))
    ids = np.concatenate([items[i] for i in order])
    assert torch.equal(first.view(-1), torch.as_tensor(ids[:first.numel()]))
    pre.on_epoch_begin()
    assert not torch.equal(first, pre.stream)  # reshuffled
    assert sorted(first.view(-1).tolist()) != [] and pre.stream.shape == first.shape


def test_lm_backwards_reverses_the_stream(df, tmp_path):
    train_df, valid_df = split(df)
    data = TextLMDataBunch.from_df(tmp_path, train_df, valid_df, bs=2, bptt=5, min_freq=1, backwards=True, **CPU)
    ids = np.concatenate(list(data.valid_ds.dataset.x.items))[::-1]
    x, _ = data.valid_ds[0]
    assert x[0].tolist() == ids[:5].tolist()


def test_pad_collate_and_samplers():
    samples = [(Text(np.array([5, 6, 7]), ''), Category(0, 'a')), (Text(np.array([8]), ''), Category(1, 'b'))]
    x, y = pad_collate(samples, pad_idx=1, pad_first=True)
    assert x.tolist() == [[5, 6, 7], [1, 1, 8]] and y.tolist() == [0, 1]
    x, _ = pad_collate(samples, pad_idx=0, pad_first=False)
    assert x.tolist() == [[5, 6, 7], [8, 0, 0]]
    x, _ = pad_collate(samples, pad_first=True, backwards=True)
    assert x.tolist() == [[7, 6, 5], [8, 1, 1]]
    lengths = np.array([3, 50, 7, 1, 20, 9, 4, 2, 30, 5])
    assert list(SortSampler(range(10), key=lengths.__getitem__)) == list(np.argsort(-lengths, kind='stable'))
    np.random.seed(0)
    idxs = list(SortishSampler(range(10), key=lengths.__getitem__, bs=3))
    assert sorted(idxs) == list(range(10))
    assert 1 in idxs[:3]  # the batch with the longest text comes first


def test_classifier_databunch_from_df(df, tmp_path):
    train_df, valid_df = split(df)
    data = TextClasDataBunch.from_df(tmp_path, train_df, valid_df, bs=8, min_freq=1, **CPU)
    assert data.classes == ['negative', 'positive'] and data.c == 2
    x, y = data.one_batch()
    lengths = [len(o) for o in data.train_ds.x.items]
    assert x.shape[0] == 8 and x.shape[1] <= max(lengths)
    assert ((x == 1).long().diff(dim=1) <= 0).all()  # padding only at the start of each row
    xv, _ = data.one_batch(ds_type=2)
    assert xv.shape[1] == max(len(o) for o in data.valid_ds.x.items)  # validation: longest first
    table = data.show_batch(rows=3)
    assert list(table.columns) == ['text', 'target'] and table.text[0].startswith('xxbos')
    text = data.train_ds.x[0]
    assert isinstance(text, Text) and text.text.split()[0] == 'xxbos'
    assert data.train_ds.x.reconstruct(torch.tensor([1, 1, 5, 6])).data.tolist() == [5, 6]


def test_shared_vocab_and_data_block_chain(df, tmp_path):
    train_df, valid_df = split(df)
    data_lm = TextLMDataBunch.from_df(tmp_path, train_df, valid_df, bs=4, bptt=5, min_freq=1, **CPU)
    data_clas = TextClasDataBunch.from_df(tmp_path, train_df, valid_df, vocab=data_lm.vocab, bs=8, **CPU)
    assert data_clas.vocab.itos == data_lm.vocab.itos
    src = (TextList.from_df(df, tmp_path, cols='text', vocab=data_lm.vocab).split_from_df('is_valid')
           .label_from_df('label'))
    assert src.train.x.vocab.itos == data_lm.vocab.itos
    data = src.databunch(bs=8, **CPU)
    assert isinstance(data, TextClasDataBunch)
    lm = TextList.from_df(df, tmp_path, cols='text').split_by_rand_pct(0.2, seed=0).label_for_lm().databunch(
        bs=4, bptt=5, **CPU)
    assert isinstance(lm, TextLMDataBunch) and lm.train_ds.x.__class__.__name__ == 'LMTextList'


def test_from_csv_tokens_ids(df, tmp_path):
    df[['label', 'text']].to_csv(tmp_path / 'texts.csv', index=False)
    np.random.seed(0)
    data = TextClasDataBunch.from_csv(tmp_path, 'texts.csv', valid_pct=0.25, bs=8, min_freq=1, **CPU)
    assert len(data.train_ds) + len(data.valid_ds) == len(df) and len(data.valid_ds) == int(0.25 * len(df)) + 1
    toks = Tokenizer(n_cpus=1).process_all(df.text.tolist())
    data = TextClasDataBunch.from_tokens(tmp_path, toks[:80], df.label[:80], toks[80:], df.label[80:], bs=8,
                                         min_freq=1, **CPU)
    assert data.vocab.itos[9] == max(set(sum(toks[:80], [])), key=sum(toks[:80], []).count)
    vocab = data.vocab
    ids = [vocab.numericalize(t) for t in toks]
    data = TextLMDataBunch.from_ids(tmp_path, vocab, ids[:80], ids[80:], bs=4, bptt=5, **CPU)
    assert torch.equal(data.valid_ds[0][0][0], torch.tensor(ids[80][:5]))
    data = TextClasDataBunch.from_ids(tmp_path, vocab, ids[:80], ids[80:], train_lbls=df.label[:80].tolist(),
                                      valid_lbls=df.label[80:].tolist(), bs=8, **CPU)
    assert data.c == 2 and data.valid_ds.x.items[0].tolist() == ids[80]


def test_from_folder_and_non_utf8_files(tmp_path):
    for split_name in ('train', 'valid'):
        for label, word in (('pos', 'great'), ('neg', 'awful')):
            folder = tmp_path / split_name / label
            folder.mkdir(parents=True)
            for i in range(4):
                (folder / f'{i}.txt').write_text(f'A {word} film number {i}.', encoding='utf-8')
    data = TextClasDataBunch.from_folder(tmp_path, bs=4, min_freq=1, **CPU)
    assert data.classes == ['neg', 'pos'] and len(data.train_ds) == 8 and len(data.valid_ds) == 8
    assert 'great' in data.vocab.itos
    (tmp_path / 'train' / 'pos' / 'bad.txt').write_bytes(b'caf\xe9 latin-1 bytes')
    with pytest.raises(UnicodeDecodeError, match="bad.txt is not valid utf-8.*OpenFileProcessor\\(enc='latin-1'\\)"):
        TextClasDataBunch.from_folder(tmp_path, bs=4, min_freq=1, **CPU)


def test_bad_input_messages(df, tmp_path):
    train_df, valid_df = split(df)
    with pytest.raises(KeyError, match="No column 'labl'.*Did you mean 'label'"):
        TextClasDataBunch.from_df(tmp_path, train_df, valid_df, label_cols='labl', text_cols='text', **CPU)
    empty = train_df.copy()
    empty.iloc[3, 1] = '   '
    with pytest.raises(ValueError, match='1 of the texts are empty or blank \\(positions \\[3\\]\\)'):
        TextClasDataBunch.from_df(tmp_path, empty, valid_df, **CPU)
    missing = train_df.copy()
    missing.iloc[2, 1] = None
    with pytest.raises(ValueError, match='missing values'):
        TextClasDataBunch.from_df(tmp_path, missing, valid_df, **CPU)
    with pytest.raises(ValueError, match='too few for even one batch'):
        TextLMDataBunch.from_df(tmp_path, train_df[:1], valid_df, bs=500, bptt=70, **CPU)
    proc = TokenizeProcessor(tokenizer=Tokenizer(n_cpus=1))
    with pytest.raises(ValueError, match='empty or blank'):
        proc.process_one('')


def test_save_and_load_data(df, tmp_path):
    train_df, valid_df = split(df)
    data = TextClasDataBunch.from_df(tmp_path, train_df, valid_df, bs=8, min_freq=1, **CPU)
    data.save('clas.pkl')
    loaded = load_data(tmp_path, 'clas.pkl', bs=8, **CPU)
    assert isinstance(loaded, TextClasDataBunch) and loaded.vocab.itos == data.vocab.itos
    assert [o.tolist() for o in loaded.valid_ds.x.items] == [o.tolist() for o in data.valid_ds.x.items]
    lm = TextLMDataBunch.from_df(tmp_path, train_df, valid_df, bs=4, bptt=5, min_freq=1, **CPU)
    lm.save('lm.pkl')
    loaded = load_data(tmp_path, 'lm.pkl', bs=4, bptt=5, **CPU)
    assert isinstance(loaded, TextLMDataBunch) and torch.equal(loaded.valid_ds[0][0], lm.valid_ds[0][0])


def test_numericalize_processor_uses_given_vocab():
    vocab = Vocab(['xxunk', 'xxpad', 'a', 'b'])
    proc = NumericalizeProcessor(vocab=vocab)
    assert proc.process_one(['a', 'z', 'b']).tolist() == [2, 0, 3]
