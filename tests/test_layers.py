"""Tests for fastlib.layers: shapes, initialisations and losses checked against torch or the formula."""
import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from fastlib.layers import (AdaptiveConcatPool2d, BatchNorm1dFlat, BCEFlat, BCEWithLogitsFlat, CrossEntropyFlat,
                            Debugger, Flatten, FlattenedLoss, LabelSmoothingCrossEntropy, Lambda, MergeLayer,
                            MSELossFlat, NoopLoss, NormType, PartialLayer, PixelShuffle_ICNR, PooledSelfAttention2d,
                            PoolFlatten, ResizeBatch, SelfAttention, SequentialEx, SigmoidRange, View,
                            WassersteinLoss, batchnorm_2d, bn_drop_lin, conv2d, conv2d_trans, conv_layer, embedding,
                            icnr, relu, res_block, sigmoid_range, simple_cnn, trunc_normal_)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ----- shape layers ---------------------------------------------------------------------------------------------

def test_flatten_view_resize():
    x = torch.randn(2, 3, 4)
    assert Flatten()(x).shape == (2, 12)
    assert Flatten(full=True)(x).shape == (24,)
    assert Flatten()(x.transpose(1, 2)).shape == (2, 12)   # non-contiguous input
    assert View(6, 4)(x).shape == (6, 4)
    assert ResizeBatch(4, 3)(x).shape == (2, 4, 3)
    assert torch.equal(ResizeBatch(12)(x), x.view(2, 12))


def test_lambda_and_partial_layer():
    x = torch.randn(3, 4)
    assert torch.equal(Lambda(torch.tanh)(x), torch.tanh(x))
    layer = PartialLayer(F.leaky_relu, negative_slope=0.3)
    assert torch.allclose(layer(x), F.leaky_relu(x, 0.3))
    assert 'negative_slope=0.3' in repr(layer)


def test_pool_flatten_and_adaptive_concat_pool():
    x = torch.randn(2, 3, 5, 7)
    assert torch.allclose(PoolFlatten()(x), x.mean(dim=(2, 3)))
    out = AdaptiveConcatPool2d()(x)
    assert out.shape == (2, 6, 1, 1)
    expected = torch.cat([F.adaptive_max_pool2d(x, 1), F.adaptive_avg_pool2d(x, 1)], dim=1)  # max first
    assert torch.allclose(out, expected)
    assert AdaptiveConcatPool2d(2)(x).shape == (2, 6, 2, 2)


def test_sigmoid_range_bounds():
    x = torch.tensor([-1e4, -1., 0., 1., 1e4])
    y = SigmoidRange(-2., 5.)(x)
    assert torch.allclose(y, torch.sigmoid(x) * 7 - 2)
    assert y.min() >= -2 and y.max() <= 5
    assert y[2] == pytest.approx(1.5)   # the midpoint at 0
    assert torch.equal(sigmoid_range(x, 0, 1), torch.sigmoid(x))


def test_debugger_calls_breakpoint(monkeypatch):
    calls = []
    monkeypatch.setattr('sys.breakpointhook', lambda *a, **k: calls.append(1))
    x = torch.randn(2, 3)
    assert Debugger()(x) is x
    assert calls == [1]


# ----- norms and linear blocks ----------------------------------------------------------------------------------

def test_batchnorm_2d_init():
    bn = batchnorm_2d(4)
    assert isinstance(bn, nn.BatchNorm2d)
    assert torch.all(bn.weight == 1) and torch.allclose(bn.bias, torch.full((4,), 1e-3))
    assert torch.all(batchnorm_2d(4, norm_type=NormType.BatchZero).weight == 0)


def test_bn_drop_lin_layers():
    layers = bn_drop_lin(10, 5, bn=True, p=0.2, actn=nn.ReLU())
    assert [type(l) for l in layers] == [nn.BatchNorm1d, nn.Dropout, nn.Linear, nn.ReLU]
    assert layers[1].p == 0.2
    assert (layers[2].in_features, layers[2].out_features) == (10, 5)
    assert [type(l) for l in bn_drop_lin(10, 5, bn=False)] == [nn.Linear]


def test_batchnorm1d_flat_matches_batchnorm_on_flattened():
    bn = BatchNorm1dFlat(4)
    ref = nn.BatchNorm1d(4)
    x = torch.randn(3, 5, 4)
    assert torch.allclose(bn(x), ref(x.view(-1, 4)).view(3, 5, 4), atol=1e-6)
    assert torch.allclose(bn.running_mean, ref.running_mean)
    assert bn(torch.randn(6, 4)).shape == (6, 4)


# ----- convolutions ---------------------------------------------------------------------------------------------

def test_conv2d_and_trans_shapes():
    x = torch.randn(2, 3, 8, 8)
    c = conv2d(3, 5)
    assert c(x).shape == (2, 5, 8, 8) and c.bias is None
    assert conv2d(3, 5, ks=3, stride=2)(x).shape == (2, 5, 4, 4)
    assert conv2d_trans(3, 5)(x).shape == (2, 5, 16, 16)


def test_relu_kinds():
    assert type(relu()) is nn.ReLU
    leaky = relu(inplace=True, leaky=0.1)
    assert isinstance(leaky, nn.LeakyReLU) and leaky.negative_slope == 0.1 and leaky.inplace


def test_conv_layer_shapes_and_layers():
    x = torch.randn(2, 3, 8, 8)
    layer = conv_layer(3, 6)
    assert [type(l) for l in layer] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]
    assert layer[0].bias is None                          # bias defaults to "no batch norm"
    assert layer(x).shape == (2, 6, 8, 8)
    assert conv_layer(3, 6, stride=2)(x).shape == (2, 6, 4, 4)
    assert conv_layer(3, 6, ks=2, stride=2, transpose=True)(x).shape == (2, 6, 16, 16)
    one_d = conv_layer(3, 6, is_1d=True)
    assert [type(l) for l in one_d] == [nn.Conv1d, nn.ReLU, nn.BatchNorm1d]
    assert one_d(torch.randn(2, 3, 10)).shape == (2, 6, 10)
    no_norm = conv_layer(3, 6, norm_type=None, use_activ=False)
    assert len(no_norm) == 1 and no_norm[0].bias is not None
    assert isinstance(conv_layer(3, 6, leaky=0.2)[1], nn.LeakyReLU)
    with_attention = conv_layer(3, 16, self_attention=True)
    assert isinstance(with_attention[-1], SelfAttention)
    assert with_attention(x).shape == (2, 16, 8, 8)


def test_conv_layer_batch_zero_inits_bn_weight():
    bn = conv_layer(3, 6, norm_type=NormType.BatchZero)[-1]
    assert isinstance(bn, nn.BatchNorm2d)
    assert torch.all(bn.weight == 0)
    assert torch.all(conv_layer(3, 6)[-1].weight == 1)


def test_conv_layer_weight_and_spectral_norm():
    wn = conv_layer(3, 6, norm_type=NormType.Weight)
    assert len(wn) == 2 and parametrize.is_parametrized(wn[0], 'weight') and wn[0].bias is not None
    g = wn[0].parametrizations.weight.original0
    assert g.shape == (6, 1, 1, 1)                       # one scale per output channel
    sn = conv_layer(3, 6, norm_type=NormType.Spectral)
    assert parametrize.is_parametrized(sn[0], 'weight')
    sn.eval()
    sigma = torch.linalg.matrix_norm(sn[0].weight.detach().view(6, -1), ord=2)
    assert sigma == pytest.approx(1.0, rel=0.05)
    wn_trans = conv_layer(3, 6, ks=2, stride=2, transpose=True, norm_type=NormType.Weight)
    assert wn_trans[0].parametrizations.weight.original0.shape == (1, 6, 1, 1)


# ----- attention --------------------------------------------------------------------------------------------

def test_self_attention_is_identity_at_init():
    att = SelfAttention(16)
    x = torch.randn(2, 16, 5, 6)
    assert att.gamma.item() == 0
    assert torch.equal(att(x), x)
    with torch.no_grad():
        att.gamma.fill_(1.)
    assert not torch.allclose(att(x), x)


def test_self_attention_matches_formula():
    att = SelfAttention(8).eval()
    with torch.no_grad():
        att.gamma.fill_(0.5)
    x = torch.randn(2, 8, 3, 3)
    flat = x.view(2, 8, 9)
    f, g, h = att.query(flat), att.key(flat), att.value(flat)
    weights = torch.softmax(torch.einsum('bci,bcj->bij', f, g), dim=1)   # over input positions i
    expected = 0.5 * torch.einsum('bci,bij->bcj', h, weights) + flat
    assert torch.allclose(att(x), expected.view_as(x), atol=1e-5)


def test_pooled_self_attention_identity_and_shape():
    att = PooledSelfAttention2d(16)
    x = torch.randn(2, 16, 6, 8)
    assert torch.equal(att(x), x)
    with torch.no_grad():
        att.gamma.fill_(1.)
    y = att(x)
    assert y.shape == x.shape and not torch.allclose(y, x)


# ----- residual blocks ------------------------------------------------------------------------------------------

class _AddOrig(nn.Module):
    def forward(self, x):
        return x * 10 + x.orig


def test_sequential_ex_passes_orig():
    x = torch.randn(2, 3)
    block = SequentialEx(nn.Identity(), _AddOrig(), _AddOrig())
    # Every layer sees the block's input: ((x*10 + x)*10 + x) = 111 x.
    assert torch.allclose(block(x), 111 * x)
    assert getattr(x, 'orig', None) is None            # the reference is dropped after use
    block.append(nn.Identity())
    block.insert(0, nn.Identity())
    block.extend([nn.Identity()])
    assert len(block) == 6 and isinstance(block[1], nn.Identity)


def test_merge_layer():
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(SequentialEx(nn.ReLU(), MergeLayer())(x), F.relu(x) + x)
    assert torch.equal(SequentialEx(nn.ReLU(), MergeLayer(dense=True))(x), torch.cat([F.relu(x), x], dim=1))


def test_res_block_keeps_shape_and_adds_input():
    x = torch.randn(2, 8, 5, 5)
    block = res_block(8)
    # The second norm starts with weight 0, so the block gives input + the BN's 1e-3 shift.
    assert torch.all(block[1][-1].weight == 0)
    out = block(x)
    assert out.shape == x.shape
    assert torch.allclose(out, x + 1e-3, atol=1e-6)
    assert block[0][0].out_channels == 8
    assert res_block(8, bottle=True)[0][0].out_channels == 4
    dense = res_block(8, dense=True)
    assert torch.all(dense[1][-1].weight == 1)           # dense blocks keep a normal BN
    assert dense(x).shape == (2, 16, 5, 5)


# ----- upsampling -----------------------------------------------------------------------------------------------

def test_icnr_gives_nearest_neighbour_pattern():
    w = torch.empty(12, 5, 3, 3)
    icnr(w, scale=2)
    assert torch.equal(w[0], w[3]) and not torch.equal(w[0], w[4])
    conv = nn.Conv2d(5, 12, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(w)
    y = F.pixel_shuffle(conv(torch.randn(2, 5, 4, 4)), 2)        # (2, 3, 8, 8)
    for i in range(2):
        for j in range(2):
            assert torch.equal(y[:, :, i::2, j::2], y[:, :, 0::2, 0::2])
    with pytest.raises(ValueError, match='multiple of scale'):
        icnr(torch.empty(6, 5, 1, 1), scale=2)


@pytest.mark.parametrize('norm_type', [NormType.Weight, NormType.Spectral, None])
def test_pixel_shuffle_icnr_blocks_are_constant(norm_type):
    layer = PixelShuffle_ICNR(4, 3, norm_type=norm_type).eval()
    y = layer(torch.randn(2, 4, 5, 5))
    assert y.shape == (2, 3, 10, 10)
    blocks = y.view(2, 3, 5, 2, 5, 2)
    assert torch.allclose(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks), atol=1e-6)


def test_pixel_shuffle_icnr_blur_keeps_size():
    layer = PixelShuffle_ICNR(4, scale=2, blur=True, leaky=0.1)
    assert isinstance(layer.relu, nn.LeakyReLU)
    assert layer(torch.randn(2, 4, 5, 5)).shape == (2, 4, 10, 10)


# ----- losses ---------------------------------------------------------------------------------------------------

def test_cross_entropy_flat_matches_torch():
    out, targ = torch.randn(6, 4), torch.randint(0, 4, (6,))
    assert torch.allclose(CrossEntropyFlat()(out, targ), F.cross_entropy(out, targ))
    seg_out, seg_targ = torch.randn(2, 5, 3, 4), torch.randint(0, 5, (2, 3, 4))
    assert torch.allclose(CrossEntropyFlat(axis=1)(seg_out, seg_targ), F.cross_entropy(seg_out, seg_targ))
    vol_out, vol_targ = torch.randn(2, 3, 2, 3, 4), torch.randint(0, 3, (2, 2, 3, 4))   # 3D: order of axes kept
    assert torch.allclose(CrossEntropyFlat(axis=1)(vol_out, vol_targ), F.cross_entropy(vol_out, vol_targ))
    seq_out, seq_targ = torch.randn(2, 7, 5), torch.randint(0, 5, (2, 7))               # (B, T, C) text
    assert torch.allclose(CrossEntropyFlat()(seq_out, seq_targ), F.cross_entropy(seq_out.view(-1, 5),
                                                                                  seq_targ.view(-1)))


def test_cross_entropy_flat_weight_and_reduction():
    out, targ = torch.randn(6, 3), torch.randint(0, 3, (6,))
    w = torch.tensor([1., 2., 0.5])
    loss = CrossEntropyFlat(weight=w)
    assert torch.equal(loss.weight, w)
    assert torch.allclose(loss(out, targ), F.cross_entropy(out, targ, weight=w))
    loss.weight = None
    loss.reduction = 'none'
    assert loss.reduction == 'none' and loss.func.reduction == 'none'
    assert torch.allclose(loss(out, targ), F.cross_entropy(out, targ, reduction='none'))


def test_cross_entropy_flat_soft_targets():
    out = torch.randn(2, 3, 4, 4)
    probs = torch.softmax(torch.randn(2, 3, 4, 4), dim=1)
    assert torch.allclose(CrossEntropyFlat(axis=1)(out, probs), F.cross_entropy(out, probs))


def test_mse_and_bce_flat_match_torch():
    out, targ = torch.randn(5, 1), torch.randint(0, 10, (5,))
    assert torch.allclose(MSELossFlat()(out, targ), F.mse_loss(out.view(-1), targ.float()))
    logits, labels = torch.randn(4, 3), torch.randint(0, 2, (4, 3))
    assert torch.allclose(BCEWithLogitsFlat()(logits, labels),
                          F.binary_cross_entropy_with_logits(logits, labels.float()))
    probs = torch.sigmoid(logits)
    assert torch.allclose(BCEFlat()(probs, labels), F.binary_cross_entropy(probs, labels.float()))
    seg = torch.randn(2, 3, 4, 4)
    seg_targ = torch.randint(0, 2, (2, 3, 4, 4))
    assert torch.allclose(BCEWithLogitsFlat(axis=1)(seg, seg_targ),
                          F.binary_cross_entropy_with_logits(seg, seg_targ.float()))


def test_flattened_loss_pickles():
    loss = CrossEntropyFlat(axis=1, weight=torch.tensor([1., 3.]))
    loss.reduction = 'sum'
    restored = pickle.loads(pickle.dumps(loss))
    assert isinstance(restored, FlattenedLoss) and restored.axis == 1 and restored.reduction == 'sum'
    out, targ = torch.randn(2, 2, 3, 3), torch.randint(0, 2, (2, 3, 3))
    assert torch.allclose(restored(out, targ), loss(out, targ))
    assert pickle.loads(pickle.dumps(MSELossFlat())).floatify
    assert repr(loss).startswith('FlattenedLoss of CrossEntropyLoss')


def test_flattened_loss_size_mismatch_errors():
    with pytest.raises(ValueError) as err:
        MSELossFlat()(torch.randn(4, 2), torch.randn(4))
    msg = str(err.value)
    assert '(4, 2)' in msg and '(4,)' in msg and '8 output values for 4 targets' in msg
    # One sample: torch would broadcast (2,) against (1,) with only a warning.
    with pytest.raises(ValueError, match=r'\(1, 2\).*\(1,\)'):
        MSELossFlat()(torch.randn(1, 2), torch.randn(1))
    with pytest.raises(ValueError, match=r'output of shape \(4, 3\) does not match target of shape \(5,\)'):
        CrossEntropyFlat()(torch.randn(4, 3), torch.randint(0, 3, (5,)))
    with pytest.raises(ValueError, match='BCEWithLogitsLoss'):
        BCEWithLogitsFlat()(torch.randn(4, 3), torch.randint(0, 2, (4, 2)))


def test_label_smoothing_matches_formula_and_torch():
    eps = 0.1
    out, targ = torch.randn(8, 5), torch.randint(0, 5, (8,))
    loss = LabelSmoothingCrossEntropy(eps)(out, targ)
    log_p = F.log_softmax(out, dim=-1)
    formula = (1 - eps) * F.nll_loss(log_p, targ) + eps * (-log_p).mean(dim=-1).mean()
    assert torch.allclose(loss, formula)
    assert torch.allclose(loss, F.cross_entropy(out, targ, label_smoothing=eps))
    per_item = LabelSmoothingCrossEntropy(0.2, reduction='none')(out, targ)
    assert torch.allclose(per_item, F.cross_entropy(out, targ, label_smoothing=0.2, reduction='none'))
    total = LabelSmoothingCrossEntropy(reduction='sum')(out, targ)
    assert torch.allclose(total, F.cross_entropy(out, targ, label_smoothing=0.1, reduction='sum'))
    seg_out, seg_targ = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 4, 4))
    assert torch.allclose(LabelSmoothingCrossEntropy()(seg_out, seg_targ),
                          F.cross_entropy(seg_out, seg_targ, label_smoothing=0.1))
    with pytest.raises(ValueError, match=r'output of shape \(8, 5\) does not match target of shape \(7,\)'):
        LabelSmoothingCrossEntropy()(out, targ[:7])


def test_noop_and_wasserstein_losses():
    x, y = torch.randn(4, 3), torch.randn(5)
    assert torch.allclose(NoopLoss()(x, y), x.mean())
    assert torch.allclose(WassersteinLoss()(x, y), x.mean() - y.mean())


# ----- models and init ------------------------------------------------------------------------------------------

def test_simple_cnn():
    model = simple_cnn((3, 8, 16, 10))
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    with_bn = simple_cnn((3, 8, 16, 10), kernel_szs=(5, 3, 3), strides=(1, 2, 2), bn=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in with_bn.modules()) == 2   # none after the last conv
    assert with_bn[0][0].kernel_size == (5, 5) and with_bn[0][0].stride == (1, 1)


def test_trunc_normal_and_embedding():
    x = trunc_normal_(torch.empty(10000), mean=1., std=0.5)
    assert x.min() >= 0. and x.max() <= 2.
    assert x.mean().item() == pytest.approx(1., abs=0.02)
    emb = embedding(1000, 20)
    assert isinstance(emb, nn.Embedding) and emb.weight.shape == (1000, 20)
    assert emb.weight.abs().max() <= 0.02
    assert emb.weight.std().item() == pytest.approx(0.01 * 0.88, rel=0.05)  # std of a normal cut at +-2 std


def test_normed_layers_round_trip_through_state_dict():
    # Parametrized (weight/spectral norm) modules cannot be pickled whole; their state_dict round-trips.
    src = nn.Sequential(PixelShuffle_ICNR(4, 2), conv_layer(2, 16, norm_type=NormType.Spectral, self_attention=True))
    dst = nn.Sequential(PixelShuffle_ICNR(4, 2), conv_layer(2, 16, norm_type=NormType.Spectral, self_attention=True))
    dst.load_state_dict(src.state_dict())
    src.eval()
    dst.eval()
    x = torch.randn(2, 4, 3, 3)
    assert torch.equal(src(x), dst(x))
