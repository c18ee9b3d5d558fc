"""AWD-LSTM pieces against plain torch: dropouts, stateful encoder, tied decoder, multi-batch encoder, pooling."""
import torch
from torch import nn

from fastlib.text import (AWD_LSTM, EmbeddingDropout, LinearDecoder, MultiBatchEncoder, PoolingLinearClassifier,
                          RNNDropout, SequentialRNN, WeightDropout, dropout_mask, get_language_model,
                          get_text_classifier)
from fastlib.text.models import awd_lstm_clas_split, awd_lstm_lm_split


def small_cfg(**kw):
    return dict(emb_sz=8, n_hid=12, n_layers=2, pad_token=1, hidden_p=0.2, input_p=0.3, embed_p=0.1, weight_p=0.4, **kw)


def test_dropout_mask_and_rnn_dropout():
    torch.manual_seed(0)
    m = dropout_mask(torch.zeros(1), (1000, 3), 0.25)
    assert torch.allclose(m.unique(), torch.tensor([0., 1 / 0.75]))
    assert abs((m == 0).float().mean().item() - 0.25) < 0.05
    dp = RNNDropout(0.5)
    x = torch.ones(4, 6, 5)
    y = dp(x)
    assert torch.equal(y, y[:, :1].expand_as(y))  # one mask per sequence, the same at every time step
    assert torch.equal(dp.eval()(x), x)


def test_weight_dropout_matches_an_lstm_with_the_dropped_weights():
    torch.manual_seed(0)
    lstm = nn.LSTM(3, 4, batch_first=True)
    ref = nn.LSTM(3, 4, batch_first=True)
    ref.load_state_dict(lstm.state_dict())
    wd = WeightDropout(lstm, 0.5)
    x = torch.randn(2, 5, 3)
    wd.eval()
    assert torch.allclose(wd(x)[0], ref(x)[0], atol=1e-6)
    wd.train()
    out = wd(x)[0]
    used = wd.module.weight_hh_l0
    raw = wd.weight_hh_l0_raw
    assert torch.allclose(used[used != 0], raw[used != 0] * 2)  # kept weights scaled by 1/(1-p)
    assert (used == 0).any()
    with torch.no_grad():
        ref.weight_hh_l0.copy_(used)
    assert torch.allclose(out, ref(x)[0], atol=1e-6)
    out.sum().backward()
    assert raw.grad is not None and 'module.weight_hh_l0' not in wd.state_dict()


def test_embedding_dropout_drops_whole_words():
    torch.manual_seed(0)
    emb = nn.Embedding(50, 6, padding_idx=1)
    dp = EmbeddingDropout(emb, 0.5)
    words = torch.arange(50)[None]
    out = dp(words)[0]
    full = emb(words)[0]
    dropped = (out == 0).all(1)
    assert dropped.any() and (~dropped).any()
    assert torch.allclose(out[~dropped], full[~dropped] * 2)
    assert torch.equal(dp.eval()(words), emb(words))
    assert torch.allclose(dp.eval()(words, scale=3.), emb(words) * 3)


def test_awd_lstm_keeps_its_hidden_state_between_calls():
    torch.manual_seed(0)
    enc = AWD_LSTM(30, **small_cfg()).eval()
    x = torch.randint(0, 30, (3, 10))
    enc.reset()
    whole = enc(x)[1][-1]
    enc.reset()
    first, second = enc(x[:, :4])[1][-1], enc(x[:, 4:])[1][-1]
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-6)
    raw, out = enc(x)
    assert [o.shape for o in raw] == [(3, 10, 12), (3, 10, 8)]
    enc(torch.randint(0, 30, (5, 2)))  # a new batch size resets the state
    assert enc.hidden[0][0].shape == (1, 5, 12)
    enc.reset()
    assert all((h == 0).all() for pair in enc.hidden for h in pair)


def test_language_model_ties_weights_and_splits():
    model = get_language_model(AWD_LSTM, 40, config=dict(small_cfg(), output_p=0.1, tie_weights=True, out_bias=True),
                               drop_mult=0.5)
    assert model[1].decoder.weight is model[0].encoder.weight
    assert model[0].input_dp.p == 0.15  # dropouts scaled by drop_mult
    out, raw, outs = model(torch.randint(0, 40, (2, 6)))
    assert out.shape == (2, 6, 40)
    groups = awd_lstm_lm_split(model)
    assert len(groups) == 3
    ids = [{id(p) for p in g.parameters()} for g in groups]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2])
    assert sum(len(i) for i in ids) == len({id(p) for p in model.parameters()})


def test_multi_batch_encoder_matches_one_pass_and_truncates_to_max_len():
    torch.manual_seed(0)
    enc = AWD_LSTM(30, **small_cfg()).eval()
    mbe = MultiBatchEncoder(bptt=4, max_len=8, module=enc, pad_idx=1).eval()
    x = torch.randint(2, 30, (2, 14))
    x[1, :3] = 1  # padding at the start
    raw, out, mask = mbe(x)
    enc.reset()
    full = enc(x)[1][-1]
    # chunks start at 0, 4, 8, 12; only those starting after 14 - 8 = 6 are kept: tokens 8..13
    assert out[-1].shape == (2, 6, 8) and torch.allclose(out[-1], full[:, 8:], atol=1e-6)
    assert torch.equal(mask, x[:, 8:] == 1)


def test_pooling_classifier_pools_over_non_padding():
    head = PoolingLinearClassifier([3 * 4, 5, 2], [0., 0.]).eval()
    out = torch.randn(2, 5, 4)
    mask = torch.tensor([[True, True, False, False, False], [False] * 5])
    x = torch.cat([out[:, -1], torch.stack([out[0, 2:].max(0)[0], out[1].max(0)[0]]),
                   torch.stack([out[0, 2:].mean(0), out[1].mean(0)])], 1)
    expected = head.layers(x)
    assert torch.allclose(head(([out], [out], mask))[0], expected, atol=1e-6)


def test_text_classifier_shape_and_split():
    model = get_text_classifier(AWD_LSTM, 40, 3, bptt=5, max_len=20, config=dict(small_cfg(), output_p=0.2),
                                lin_ftrs=[7])
    out = model(torch.randint(0, 40, (4, 23)))[0]
    assert out.shape == (4, 3)
    assert len(awd_lstm_clas_split(model)) == 4  # embedding, 2 LSTMs, head
    assert isinstance(model, SequentialRNN) and isinstance(model[0], MultiBatchEncoder)
    assert isinstance(LinearDecoder(5, 4, 0.1, bias=False).decoder, nn.Linear)
