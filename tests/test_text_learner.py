"""Text learners: pretrained weights with vocabulary remapping, encoder transfer, RNNTrainer, generation,
gradual unfreezing, interpretation and export."""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from fastlib.core import Path
from fastlib.datasets import Config
from fastlib.metrics import Perplexity, accuracy
from fastlib.text import (AWD_LSTM, RNNTrainer, TextClasDataBunch, TextClassificationInterpretation, TextLMDataBunch,
                          awd_lstm_clas_config, awd_lstm_lm_config, convert_weights, decode_spec_tokens,
                          language_model_learner, text_classifier_learner)
from fastlib.text.testing import fake_review_df

CPU = dict(device=torch.device('cpu'))
LM_CFG = dict(awd_lstm_lm_config, emb_sz=8, n_hid=16, n_layers=2)
CLAS_CFG = dict(awd_lstm_clas_config, emb_sz=8, n_hid=16, n_layers=2)


@pytest.fixture(scope='module')
def df():
    return fake_review_df(80, seed=2)


def lm_data(df, path, **kw):
    train, valid = df[~df.is_valid], df[df.is_valid]
    return TextLMDataBunch.from_df(path, train, valid, bs=4, bptt=8, min_freq=1, **CPU, **kw)


def lm_learner(data, **kw):
    torch.manual_seed(0)
    return language_model_learner(data, AWD_LSTM, config=LM_CFG, pretrained=False, **kw)


def clas_learner(df, path, vocab, **kw):
    train, valid = df[~df.is_valid], df[df.is_valid]
    data = TextClasDataBunch.from_df(path, train, valid, vocab=vocab, bs=8, **CPU)
    torch.manual_seed(0)
    return text_classifier_learner(data, AWD_LSTM, config=CLAS_CFG, pretrained=False, bptt=8, **kw)


def test_convert_weights_keeps_known_rows_and_gives_new_words_the_mean():
    enc = torch.arange(12.).view(4, 3)
    wgts = {'0.encoder.weight': enc, '0.encoder_dp.emb.weight': enc.clone(), '1.decoder.weight': enc.clone(),
            '1.decoder.bias': torch.tensor([1., 2., 3., 6.])}
    new = convert_weights(wgts, {'a': 0, 'b': 1, 'c': 2, 'd': 3}, ['c', 'new', 'a'])
    expected = torch.stack([enc[2], enc.mean(0), enc[0]])
    for k in ('0.encoder.weight', '0.encoder_dp.emb.weight', '1.decoder.weight'):
        assert torch.equal(new[k], expected)
    assert torch.equal(new['1.decoder.bias'], torch.tensor([3., 3., 1.]))


def test_pretrained_fnames_remaps_a_users_language_model(df, tmp_path):
    data_a = lm_data(df, tmp_path)
    learn_a = lm_learner(data_a)
    learn_a.save('my_lm')
    data_a.vocab.save(tmp_path / 'models' / 'my_itos.pkl')
    # A second corpus: some words shared, some new, in another order.
    df_b = fake_review_df(60, seed=7)
    df_b.loc[0, 'text'] = 'zebra ' + df_b.loc[0, 'text']
    data_b = lm_data(df_b, tmp_path)
    learn_b = lm_learner(data_b, pretrained_fnames=('my_lm', 'my_itos'))
    old_w = learn_a.model[0].encoder.weight.detach()
    new_w = learn_b.model[0].encoder.weight.detach()
    old_stoi = data_a.vocab.stoi
    for i, w in enumerate(data_b.vocab.itos[:40]):
        row = old_w[old_stoi[w]] if w in data_a.vocab.itos else old_w.mean(0)
        assert torch.allclose(new_w[i], row), w
    assert 'zebra' not in data_a.vocab.itos and 'zebra' in data_b.vocab.itos
    assert torch.equal(learn_b.model[1].decoder.weight, learn_b.model[0].encoder.weight)
    rnn_a, rnn_b = learn_a.model[0].rnns[1].weight_hh_l0_raw, learn_b.model[0].rnns[1].weight_hh_l0_raw
    assert torch.equal(rnn_a, rnn_b)
    assert not any(p.requires_grad for p in learn_b.layer_groups[0].parameters())  # starts frozen


def test_pretrained_true_without_weights_fails_with_what_to_put_where(df, tmp_path):
    data = lm_data(df, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"lstm_fwd\.pth.*itos_wt103\.pkl.*wt103-fwd"):
        language_model_learner(data, AWD_LSTM)
    assert str(Config.model_path()) in _message(lambda: language_model_learner(data, AWD_LSTM))
    with pytest.raises(ValueError, match='default config'):
        language_model_learner(data, AWD_LSTM, config=LM_CFG, pretrained=True)


def _message(f):
    try:
        f()
    except Exception as e:
        return str(e)
    return ''


def test_encoder_transfer_and_vocab_mismatch(df, tmp_path):
    data = lm_data(df, tmp_path)
    learn = lm_learner(data)
    learn.save_encoder('enc')
    clas = clas_learner(df, tmp_path, data.vocab)
    clas.load_encoder('enc')
    assert torch.equal(clas.model[0].module.encoder.weight, learn.model[0].encoder.weight)
    other = clas_learner(fake_review_df(60, seed=9).assign(text=lambda d: d.text + ' unseenword'), tmp_path, None)
    with pytest.raises(ValueError, match='different vocabulary.*vocab=data_lm.vocab'):
        other.load_encoder('enc')
    with pytest.raises(FileNotFoundError, match="Did you mean 'enc'"):
        clas.load_encoder('enk')


def test_loaded_encoder_computes_what_the_language_model_computed(df, tmp_path):
    "Outputs, not state dicts: weight dropout keeps a copy of the LSTM weights that must not go stale (issue 4)."
    data = lm_data(df, tmp_path)
    learn = lm_learner(data)
    learn.fit(1, 1e-2)  # the raw LSTM weights move away from the ones the classifier starts with
    learn.save_encoder('enc')
    clas = clas_learner(df, tmp_path, data.vocab)
    x = torch.randint(2, len(data.vocab.itos), (3, 20))  # no padding; 20 tokens = 3 chunks of bptt 8
    clas.model.train()
    clas.model(x)  # a training forward leaves dropped-out copies of the old weights in the LSTMs
    clas.load_encoder('enc')
    lm = learn.model.eval()
    lm.reset()
    lm_logits, _, lm_outputs = lm(x)
    raw, outputs, mask = clas.model.eval()[0](x)
    assert not mask.any()
    for a, b in zip(outputs, lm_outputs):
        assert torch.allclose(a, b, atol=1e-6)
    # The LM's own decoder reads the classifier's encoder as well as its own: same next-word scores.
    assert torch.allclose(lm[1]((raw, outputs))[0], lm_logits, atol=1e-5)

def test_rnn_trainer_adds_ar_and_tar(df, tmp_path):
    learn = lm_learner(lm_data(df, tmp_path))
    cb = RNNTrainer(learn, alpha=2., beta=3.)
    raw, out = torch.randn(2, 5, 4), torch.randn(2, 5, 4)
    decoded = torch.randn(2, 5, 10)
    assert cb.on_loss_begin((decoded, [raw], [out]))['last_output'] is decoded
    loss = cb.on_backward_begin(torch.tensor(1.), None)['last_loss']
    expected = 1 + 2 * out.pow(2).mean() + 3 * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
    assert torch.allclose(loss, expected)
    assert any(isinstance(c, RNNTrainer) for c in learn.callbacks)


def test_lm_fit_perplexity_and_generation(df, tmp_path):
    data = lm_data(df, tmp_path)
    learn = lm_learner(data, metrics=[accuracy, Perplexity()])
    learn.fit(1, 1e-2)
    ppl = learn.recorder.metrics[-1][1]
    model = learn.model.eval()
    model.reset()
    total, n = 0., 0
    with torch.no_grad():  # the oracle: exp of the cross-entropy averaged over every validation token
        for xb, yb in data.valid_dl:
            out = model(xb)[0]
            total += torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), yb.reshape(-1),
                                                       reduction='sum').item()
            n += yb.numel()
    assert ppl == pytest.approx(np.exp(total / n), rel=1e-4)
    text = learn.predict('the movie was', n_words=6)
    assert text.startswith('the movie was ') and len(text.split()) >= 3 + 6 - 1
    # make xxunk by far the likeliest word: no_unk must still never pick it
    with torch.no_grad():
        learn.model[1].decoder.bias[data.vocab.stoi['xxunk']] = 50.
    words = learn.predict('the', n_words=20, no_unk=True).split()[1:]
    assert 'xxunk' not in words and len(words) >= 15
    assert learn.predict('the', n_words=5, no_unk=False, decoder=lambda t: t).split()[1:] == ['xxunk'] * 5
    beam = learn.beam_search('the movie', n_words=4, beam_sz=8, top_k=3)
    assert beam.startswith('the movie ') and 'xxunk' not in beam
    table = learn.show_results(rows=2)
    assert list(table.columns) == ['text', 'target', 'pred']


def test_decode_spec_tokens():
    assert decode_spec_tokens(['xxmaj', 'hello', 'xxup', 'big', 'xxrep', '3', '!', 'xxwrep', '2', 'no']) == \
        ['Hello', 'BIG', '!!!', 'no no']


def test_gradual_unfreezing_and_classifier_fit(df, tmp_path):
    clas = clas_learner(df, tmp_path, None, metrics=[accuracy])
    assert len(clas.layer_groups) == 4  # embedding, 2 LSTMs, head

    def trainable():
        return [any(p.requires_grad for p in g.parameters()) for g in clas.layer_groups]

    assert trainable() == [False, False, False, True]  # the classifier learner starts frozen
    clas.freeze_to(-2)
    assert trainable() == [False, False, True, True]
    clas.unfreeze()
    assert trainable() == [True] * 4
    clas.fit(1, 1e-2)
    preds, targets = clas.get_preds()  # in the dataset's order, despite the length-sorting sampler
    assert torch.equal(targets, torch.as_tensor(clas.data.valid_ds.y.items))
    assert preds.shape == (len(clas.data.valid_ds), 2) and torch.allclose(preds.sum(1), torch.ones(len(preds)))


def test_interpretation(df, tmp_path):
    clas = clas_learner(df, tmp_path, None)
    interp = TextClassificationInterpretation.from_learner(clas)
    tokens, attn = interp.intrinsic_attention('the movie was great')
    assert tokens.text.split() == ['xxbos', 'the', 'movie', 'was', 'great'] and attn.shape == (5,)
    assert attn.max() == pytest.approx(1.) and (attn >= 0).all()
    html = interp.html_intrinsic_attention('the movie was great')
    assert html.count('<span') == 5 and 'great</span>' in html
    top = interp.show_top_losses(3)
    assert len(top) == 3 and top.Loss.is_monotonic_decreasing


def test_export_and_predict_in_a_fresh_process(df, tmp_path):
    clas = clas_learner(df, tmp_path, None)
    clas.fit(1, 1e-2)
    expected = clas.predict('a great great film')
    clas.export()
    code = textwrap.dedent(f"""
        import torch
        from fastlib.text import load_learner
        learn = load_learner({str(tmp_path)!r})
        cat, idx, probs = learn.predict('a great great film')
        print(cat, int(idx), ' '.join(f'{{p:.6f}}' for p in probs.tolist()))
    """)
    res = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert res.returncode == 0, res.stderr[-2000:]
    label, idx, *probs = res.stdout.split()
    assert label == str(expected[0]) and int(idx) == int(expected[1])
    assert np.allclose([float(p) for p in probs], expected[2].tolist(), atol=1e-5)
