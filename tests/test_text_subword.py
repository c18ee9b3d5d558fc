"""SPProcessor: SentencePiece subword tokenization for language-model and classifier data (fastai v1's API)."""
import random
import sys

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip('sentencepiece', reason='SPProcessor needs the optional sentencepiece package '
                    '(pip install -e ".[test]" installs it)')

from fastlib.text import (AWD_LSTM, SPProcessor, TextList, awd_lstm_clas_config, awd_lstm_lm_config,  # noqa: E402
                          language_model_learner, load_data, text_classifier_learner)

WORDS = ('the movie was great bad awful wonderful acting plot story film actor boring amazing terrible i loved '
         'hated it really').split()


@pytest.fixture
def df():
    rng = random.Random(0)
    texts = [' '.join(rng.choice(WORDS) for _ in range(rng.randint(5, 20))).capitalize() + '.' for _ in range(200)]
    return pd.DataFrame({'text': texts, 'label': [('pos', 'neg')[i % 2] for i in range(len(texts))]})


def _lm_data(df, path, **kw):
    return (TextList.from_df(df, path, cols='text', processor=SPProcessor(vocab_sz=60, **kw))
            .split_by_rand_pct(0.2, seed=1).label_for_lm().databunch(bs=8, bptt=10))


def test_lm_data_holds_piece_ids_with_the_special_tokens_first(df, tmp_path):
    data = _lm_data(df, tmp_path)
    itos = data.vocab.itos
    assert itos[:9] == ['\u2581' + t for t in ('xxunk', 'xxpad', 'xxbos', 'xxeos', 'xxfld', 'xxmaj', 'xxup', 'xxrep',
                                               'xxwrep')]
    proc = data.train_ds.x.processor[0]
    ids = data.train_ds.x.items[0]
    text = proc.decode(ids)
    assert text.startswith('xxbos xxmaj ') and text.lower() == text   # case marked by the rules, pieces learnt lower
    original = text[len('xxbos xxmaj '):]
    assert original.capitalize() in set(df.text)
    assert ids.dtype == np.int64 and ids.max() < len(itos)
    assert sorted(p.name for p in (tmp_path / 'tmp').iterdir()) == ['spm.model', 'spm.vocab']
    x, y = data.one_batch()
    assert x.shape == (8, 10) and torch.equal(x[:, 1:], y[:, :-1])


def test_load_gives_the_classifier_the_same_pieces(df, tmp_path):
    lm = _lm_data(df, tmp_path)
    clas = (TextList.from_df(df, tmp_path, cols='text', processor=SPProcessor.load(tmp_path))
            .split_by_rand_pct(0.2, seed=1).label_from_df('label').databunch(bs=8))
    assert clas.vocab.itos == lm.vocab.itos
    text = df.text[0]
    assert np.array_equal(clas.train_ds.x.processor[0].process_one(text), lm.train_ds.x.processor[0].process_one(text))
    learn = text_classifier_learner(clas, AWD_LSTM, config=dict(awd_lstm_clas_config, emb_sz=8, n_hid=16, n_layers=1),
                                    pretrained=False, bptt=8)
    learn.fit(1, 1e-2)
    pred_class, _, probs = learn.predict('A great movie.')
    assert str(pred_class) in ('pos', 'neg') and probs.shape == (2,)


def test_saved_data_and_exported_learner_keep_the_model(df, tmp_path):
    data = _lm_data(df, tmp_path)
    data.save('lm.pkl')
    back = load_data(tmp_path, 'lm.pkl', bs=8)
    proc, proc_back = data.train_ds.x.processor[0], back.train_ds.x.processor[0]
    assert proc_back.model_proto == proc.model_proto and back.vocab.itos == data.vocab.itos
    assert np.array_equal(proc_back.process_one('An amazing film.'), proc.process_one('An amazing film.'))
    learn = language_model_learner(data, AWD_LSTM, config=dict(awd_lstm_lm_config, emb_sz=8, n_hid=16, n_layers=1),
                                   pretrained=False)
    learn.export()
    from fastlib.basic_train import load_learner
    loaded = load_learner(tmp_path)
    assert loaded.data.vocab.itos == data.vocab.itos
    assert isinstance(loaded.predict('The movie', n_words=3), str)


def test_bad_input(df, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"model_type is one of SentencePiece's 'unigram', 'bpe'"):
        SPProcessor(model_type='wordpiece')
    with pytest.raises(FileNotFoundError, match=r"No SentencePiece model at .*spm.model: train one first"):
        SPProcessor.load(tmp_path)
    with pytest.raises(ValueError, match=r"This SPProcessor has no model yet"):
        SPProcessor().process_one('hello')
    bad = df.copy()
    bad.loc[3, 'text'] = '   '
    with pytest.raises(ValueError, match=r"1 of the texts are empty or blank \(positions \[\d+\]\)"):
        _lm_data(bad, tmp_path)
    monkeypatch.setitem(sys.modules, 'sentencepiece', None)
    with pytest.raises(ImportError, match=r"SPProcessor needs the sentencepiece package: pip install sentencepiece"):
        _lm_data(df, tmp_path / 'other')
