"""Metrics against hand-computed numbers, NumPy formulas and brute-force oracles."""
import math
import warnings

import numpy as np
import pytest
import torch

from fastlib.callback import CallbackHandler
from fastlib.metrics import (AUROC, RMSE, ConfusionMatrix, ExplainedVariance, ExpRMSPE, FBeta, KappaScore,
                             MatthewsCorreff, MultiLabelFbeta, Perplexity, Precision, R2Score, Recall, accuracy,
                             accuracy_thresh, auc_roc_score, dice, error_rate, exp_rmspe, explained_variance, fbeta,
                             foreground_acc, mae, mean_absolute_error, mean_squared_error,
                             mean_squared_logarithmic_error, mse, msle, r2_score, rmse, roc_curve,
                             root_mean_squared_error, top_k_accuracy)


# ---------------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------------

def run_epoch(cb, outputs, targets, splits=None):
    "Drive a metric callback over one validation epoch, fed in batches cut at `splits`; returns its value."
    if hasattr(cb, 'on_train_begin'):
        cb.on_train_begin()
    cb.on_epoch_begin()
    bounds = [0] + list(splits or []) + [len(targets)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        cb.on_batch_end(last_output=outputs[a:b], last_target=targets[a:b])
    res = cb.on_epoch_end(last_metrics=[0.123])
    assert res['last_metrics'][0] == 0.123           # the validation loss stays first
    assert len(res['last_metrics']) == 2             # exactly one value appended
    return res['last_metrics'][1]


def one_and_three_batches(make_cb, outputs, targets, splits=(3, 11)):
    "The metric's value on one batch and on three uneven batches, checked equal; returns the value."
    whole = run_epoch(make_cb(), outputs, targets)
    split = run_epoch(make_cb(), outputs, targets, splits)
    if isinstance(whole, list):
        np.testing.assert_allclose(split, whole, rtol=1e-6)
    else:
        assert split == pytest.approx(whole, rel=1e-6)
    return whole


def logits_from_cm(cm, seed=0):
    "Class scores and targets whose confusion matrix (rows = targets, cols = argmax of the scores) is `cm`."
    gen = torch.Generator().manual_seed(seed)
    n = len(cm)
    targs, preds = [], []
    for i in range(n):
        for j in range(n):
            targs += [i] * cm[i][j]
            preds += [j] * cm[i][j]
    targs, preds = torch.tensor(targs), torch.tensor(preds)
    out = torch.randn(len(targs), n, generator=gen) * 0.1 + 5 * torch.nn.functional.one_hot(preds, n)
    perm = torch.randperm(len(targs), generator=gen)
    return out[perm], targs[perm]


# A 3-class confusion matrix with unequal supports (rows: targets, columns: predictions).
CM3 = [[5, 1, 0],
       [2, 3, 1],
       [1, 2, 7]]
# Worked out by hand: n_pred (column sums) = [8, 6, 8], n_targ (row sums) = [6, 6, 10], total 22, trace 15.
PREC3 = [5 / 8, 3 / 6, 7 / 8]
REC3 = [5 / 6, 3 / 6, 7 / 10]
SUPPORT3 = [6, 6, 10]
CM2 = [[7, 3],
       [2, 8]]   # class 1: tp 8, fp 3, fn 2; class 0: tp 7, fp 2, fn 3


def fbeta_formula(p, r, beta):
    return (1 + beta ** 2) * p * r / (beta ** 2 * p + r) if p + r > 0 else 0.


# ---------------------------------------------------------------------------------------------------------------
# Classification functions
# ---------------------------------------------------------------------------------------------------------------

def test_accuracy_and_error_rate_on_known_batch():
    out = torch.tensor([[0.1, 0.9, 0.0],    # argmax 1
                        [2.0, 0.1, 0.3],    # argmax 0
                        [0.0, 0.2, 0.1],    # argmax 1
                        [0.3, 0.3, 0.9]])   # argmax 2
    targs = torch.tensor([1, 0, 2, 2])
    acc = accuracy(out, targs)
    assert acc.shape == () and acc.item() == pytest.approx(0.75)
    assert error_rate(out, targs).item() == pytest.approx(0.25)
    assert accuracy(out, targs.view(4, 1)).item() == pytest.approx(0.75)


def test_accuracy_explains_expected_shapes_for_regression_like_output():
    expected_msg = r"expects `input` of shape \(B, n_classes\).*got input \(4,\) and targs \(4,\)"
    with pytest.raises(ValueError, match=expected_msg):
        accuracy(torch.randn(4), torch.randn(4))
    with pytest.raises(ValueError, match="one target per row"):
        accuracy(torch.randn(4, 3), torch.tensor([0, 1]))


def test_top_k_accuracy():
    out = torch.tensor([[0.5, 0.3, 0.2, 0.0],    # ranking 0, 1, 2, 3
                        [0.1, 0.2, 0.3, 0.4],    # ranking 3, 2, 1, 0
                        [0.0, 0.9, 0.8, 0.1]])   # ranking 1, 2, 3, 0
    targs = torch.tensor([1, 3, 0])
    assert top_k_accuracy(out, targs, k=1).item() == pytest.approx(accuracy(out, targs).item())
    assert top_k_accuracy(out, targs, k=1).item() == pytest.approx(1 / 3)
    assert top_k_accuracy(out, targs, k=2).item() == pytest.approx(2 / 3)
    assert top_k_accuracy(out, targs, k=4).item() == pytest.approx(1.)
    with pytest.raises(ValueError, match="k=5 is more than the 4 classes"):
        top_k_accuracy(out, targs)


def test_accuracy_thresh_with_and_without_sigmoid():
    y_true = torch.tensor([[1., 0., 1.], [0., 1., 0.]])
    probs = torch.tensor([[0.9, 0.6, 0.4], [0.2, 0.7, 0.1]])   # > 0.5: [1,1,0], [0,1,0] -> 4 of 6 right
    assert accuracy_thresh(probs, y_true, sigmoid=False).item() == pytest.approx(4 / 6)
    assert accuracy_thresh(probs, y_true, thresh=0.3, sigmoid=False).item() == pytest.approx(5 / 6)
    logits = torch.logit(probs)
    assert accuracy_thresh(logits, y_true).item() == pytest.approx(4 / 6)
    # A (B,) target against (B, 1) predictions must not broadcast to (B, B).
    assert accuracy_thresh(torch.tensor([[0.9], [0.1]]), torch.tensor([1., 1.]), sigmoid=False).item() == 0.5


def test_fbeta_against_formula():
    y_pred = torch.tensor([[0.9, 0.8, 0.1, 0.2],
                           [0.7, 0.6, 0.9, 0.1]])
    y_true = torch.tensor([[1., 0., 1., 0.],
                           [1., 1., 0., 0.]])
    # Row 0 predicts {0, 1}: tp 1, precision 1/2, recall 1/2. Row 1 predicts {0, 1, 2}: tp 2, precision 2/3, recall 1.
    expected = (fbeta_formula(1 / 2, 1 / 2, 2) + fbeta_formula(2 / 3, 1., 2)) / 2
    assert expected == pytest.approx((0.5 + 10 / 11) / 2)
    assert fbeta(y_pred, y_true, thresh=0.5, sigmoid=False).item() == pytest.approx(expected, rel=1e-6)
    assert fbeta(torch.logit(y_pred), y_true, thresh=0.5).item() == pytest.approx(expected, rel=1e-6)
    f1 = (fbeta_formula(1 / 2, 1 / 2, 1) + fbeta_formula(2 / 3, 1., 1)) / 2
    assert fbeta(y_pred, y_true, thresh=0.5, beta=1, sigmoid=False).item() == pytest.approx(f1, rel=1e-6)


def test_dice_and_iou():
    pred_mask = torch.tensor([[[1, 1, 0], [0, 1, 0]]])            # (1, 2, 3): 3 pixels on
    targ = torch.tensor([[[[1, 0, 0], [0, 1, 1]]]])               # (1, 1, 2, 3): 3 pixels on, 2 shared
    logits = torch.stack([1 - pred_mask, pred_mask], dim=1).float()  # (1, 2, 2, 3)
    assert dice(logits, targ).item() == pytest.approx(2 * 2 / (3 + 3))
    assert dice(logits, targ, iou=True).item() == pytest.approx(2 / 4)
    empty = torch.zeros(1, 1, 2, 3, dtype=torch.long)
    empty_logits = torch.stack([torch.ones(1, 2, 3), torch.zeros(1, 2, 3)], dim=1)
    assert dice(empty_logits, empty).item() == 1.
    assert dice(empty_logits, empty, iou=True).item() == 1.


def test_foreground_acc_ignores_void_pixels():
    targ = torch.tensor([[[[0, 1], [2, 2]]]])                      # (1, 1, 2, 2); void code 0
    preds = torch.tensor([[[1, 1], [2, 0]]])                       # right on (0,1) and (1,0), wrong on (1,1)
    logits = torch.nn.functional.one_hot(preds, 3).permute(0, 3, 1, 2).float()
    assert foreground_acc(logits, targ, void_code=0).item() == pytest.approx(2 / 3)


# ---------------------------------------------------------------------------------------------------------------
# Regression functions and callbacks
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def reg_data():
    rng = np.random.default_rng(0)
    targ = rng.uniform(0.5, 3., size=17)
    pred = targ + rng.normal(0, 0.3, size=17)
    return pred, targ


def test_regression_functions_against_numpy(reg_data):
    pred, targ = reg_data
    p, t = torch.tensor(pred), torch.tensor(targ)
    assert mean_absolute_error(p, t).item() == pytest.approx(np.mean(np.abs(targ - pred)))
    assert mean_squared_error(p, t).item() == pytest.approx(np.mean((targ - pred) ** 2))
    assert root_mean_squared_error(p, t).item() == pytest.approx(np.sqrt(np.mean((targ - pred) ** 2)))
    msle_np = np.mean((np.log(1 + targ) - np.log(1 + pred)) ** 2)
    assert mean_squared_logarithmic_error(p, t).item() == pytest.approx(msle_np)
    pct = (np.exp(targ) - np.exp(pred)) / np.exp(targ)
    assert exp_rmspe(p, t).item() == pytest.approx(np.sqrt(np.mean(pct ** 2)))
    assert explained_variance(p, t).item() == pytest.approx(1 - np.var(targ - pred) / np.var(targ))
    r2 = 1 - np.sum((targ - pred) ** 2) / np.sum((targ - targ.mean()) ** 2)
    assert r2_score(p, t).item() == pytest.approx(r2)
    # (B, 1) predictions against (B,) targets are flattened, float32 works too.
    assert r2_score(p.float().view(-1, 1), t.float()).item() == pytest.approx(r2, rel=1e-5)
    assert (mse, mae, rmse, msle) == (mean_squared_error, mean_absolute_error, root_mean_squared_error,
                                      mean_squared_logarithmic_error)
    with pytest.raises(ValueError, match="same number of elements"):
        mse(p, t[:3])


def test_r2_score_perfect_and_mean_predictions():
    t = torch.tensor([1., 2., 3., 4.])
    assert r2_score(t, t).item() == 1.
    assert r2_score(torch.full_like(t, 2.5), t).item() == pytest.approx(0.)


@pytest.mark.parametrize('cls,func,name', [(R2Score, r2_score, 'r2_score'),
                                           (ExplainedVariance, explained_variance, 'explained_variance'),
                                           (RMSE, root_mean_squared_error, 'rmse'),
                                           (ExpRMSPE, exp_rmspe, 'exp_rmspe')])
def test_regression_callbacks_match_function_on_whole_set(reg_data, cls, func, name):
    pred, targ = reg_data
    p, t = torch.tensor(pred).view(-1, 1), torch.tensor(targ)
    value = one_and_three_batches(cls, p, t)
    assert isinstance(value, float)
    assert value == pytest.approx(func(p, t).item())
    assert cls().name == name


# ---------------------------------------------------------------------------------------------------------------
# Confusion-matrix metrics
# ---------------------------------------------------------------------------------------------------------------

def test_confusion_matrix_counts():
    out, targs = logits_from_cm(CM3)
    cb = ConfusionMatrix()
    cb.on_train_begin()
    cb.on_epoch_begin()
    for a, b in [(0, 4), (4, 13), (13, 22)]:
        cb.on_batch_end(last_output=out[a:b], last_target=targs[a:b])
    cb.on_epoch_end()
    assert cb.metric.tolist() == CM3
    assert cb.n_classes == 3


@pytest.mark.parametrize('cls,per_class', [(Precision, PREC3), (Recall, REC3)])
def test_precision_recall_multiclass_averages(cls, per_class):
    out, targs = logits_from_cm(CM3)
    micro = 15 / 22
    assert one_and_three_batches(lambda: cls(average='micro'), out, targs) == pytest.approx(micro)
    assert one_and_three_batches(lambda: cls(average='macro'), out, targs) == pytest.approx(sum(per_class) / 3)
    weighted = sum(v * s for v, s in zip(per_class, SUPPORT3)) / 22
    assert one_and_three_batches(lambda: cls(average='weighted'), out, targs) == pytest.approx(weighted)
    np.testing.assert_allclose(one_and_three_batches(lambda: cls(average=None), out, targs), per_class)


def test_precision_and_recall_hand_values():
    # Macro precision (5/8 + 1/2 + 7/8) / 3 = 2/3; weighted precision 15.5 / 22; weighted recall = accuracy.
    out, targs = logits_from_cm(CM3)
    assert run_epoch(Precision(average='macro'), out, targs) == pytest.approx(2 / 3)
    assert run_epoch(Precision(average='weighted'), out, targs) == pytest.approx(15.5 / 22)
    assert run_epoch(Recall(average='weighted'), out, targs) == pytest.approx(15 / 22)


def test_precision_recall_fbeta_binary():
    out, targs = logits_from_cm(CM2)
    assert one_and_three_batches(Precision, out, targs) == pytest.approx(8 / 11)
    assert one_and_three_batches(Recall, out, targs) == pytest.approx(8 / 10)
    assert one_and_three_batches(FBeta, out, targs) == pytest.approx(fbeta_formula(8 / 11, 8 / 10, 2))
    assert run_epoch(FBeta(beta=1), out, targs) == pytest.approx(2 * 8 / (2 * 8 + 3 + 2))
    assert run_epoch(Precision(pos_label=0), out, targs) == pytest.approx(7 / 9)
    assert run_epoch(Recall(pos_label=0), out, targs) == pytest.approx(7 / 10)


def test_fbeta_multiclass_averages():
    out, targs = logits_from_cm(CM3)
    f2 = [fbeta_formula(p, r, 2) for p, r in zip(PREC3, REC3)]
    # Per-class F1 by hand, 2tp / (2tp + fp + fn): 10/14, 6/12, 14/18.
    f1 = [10 / 14, 6 / 12, 14 / 18]
    assert run_epoch(FBeta(average='macro', beta=1), out, targs) == pytest.approx(sum(f1) / 3)
    assert one_and_three_batches(lambda: FBeta(average='macro'), out, targs) == pytest.approx(sum(f2) / 3)
    weighted = sum(f * s for f, s in zip(f2, SUPPORT3)) / 22
    assert one_and_three_batches(lambda: FBeta(average='weighted'), out, targs) == pytest.approx(weighted)
    assert one_and_three_batches(lambda: FBeta(average='micro'), out, targs) == pytest.approx(15 / 22)
    np.testing.assert_allclose(run_epoch(FBeta(average=None), out, targs), f2, rtol=1e-6)


def test_binary_average_on_multiclass_warns_and_uses_macro():
    out, targs = logits_from_cm(CM3)
    cb = Precision()
    with pytest.warns(UserWarning, match="using average='macro'"):
        value = run_epoch(cb, out, targs)
    assert value == pytest.approx(2 / 3)
    assert cb.average == 'macro'


def test_class_never_predicted_scores_zero():
    out, targs = logits_from_cm([[4, 0], [3, 0]])                 # class 1 never predicted: 0/0 precision
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert run_epoch(Precision(), out, targs) == 0.
        assert run_epoch(FBeta(), out, targs) == 0.


def test_bad_arguments_say_what_is_allowed():
    with pytest.raises(ValueError, match="average='macr' is not one of.*Did you mean 'macro'"):
        Precision(average='macr')
    with pytest.raises(ValueError, match="weights='quadratik'.*Did you mean 'quadratic'"):
        KappaScore(weights='quadratik')
    with pytest.raises(ValueError, match="average='mikro'.*Did you mean 'micro'"):
        MultiLabelFbeta(average='mikro')
    with pytest.raises(ValueError, match=r"shape \(B, n_classes\) with n_classes >= 2"):
        run_epoch(Precision(), torch.randn(6), torch.randint(0, 2, (6,)))


def test_kappa_score_unweighted_and_quadratic():
    out, targs = logits_from_cm(CM3)
    # Unweighted: p_o = 15/22, p_e = (6*8 + 6*6 + 10*8) / 22**2 = 164/484, kappa = (p_o - p_e) / (1 - p_e) = 166/320.
    assert one_and_three_batches(KappaScore, out, targs) == pytest.approx(166 / 320)
    # Quadratic: sum (i-j)^2 * observed = 10; sum (i-j)^2 * row_i * col_j / 22 = 704 / 22 = 32.
    assert one_and_three_batches(lambda: KappaScore(weights='quadratic'), out, targs) == pytest.approx(1 - 10 / 32)
    # Linear: sum |i-j| * observed = 1+0+2+1+2+2 = 8; sum |i-j| * row_i * col_j = 36+96+48+48+160+60 = 448.
    assert run_epoch(KappaScore(weights='linear'), out, targs) == pytest.approx(1 - 8 / (448 / 22))
    assert KappaScore().name == 'kappa_score'


def test_matthews_correlation():
    out, targs = logits_from_cm(CM2)
    tp, tn, fp, fn = 8, 7, 3, 2
    binary = (tp * tn - fp * fn) / math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert one_and_three_batches(MatthewsCorreff, out, targs) == pytest.approx(binary)
    out, targs = logits_from_cm(CM3)
    # Multi-class form: (trace*total - t.p) / sqrt((total^2 - p.p)(total^2 - t.t)) = 166 / sqrt(320 * 312).
    assert one_and_three_batches(MatthewsCorreff, out, targs) == pytest.approx(166 / math.sqrt(320 * 312))
    out, targs = logits_from_cm([[5, 0], [4, 0]])                 # one predicted class: undefined, reported 0
    assert run_epoch(MatthewsCorreff(), out, targs) == 0.


# ---------------------------------------------------------------------------------------------------------------
# Perplexity, ROC / AUC, multi-label F-beta
# ---------------------------------------------------------------------------------------------------------------

def test_perplexity_is_exp_of_mean_cross_entropy():
    gen = torch.Generator().manual_seed(1)
    out = torch.randn(14, 5, 7, generator=gen)                    # (B, T, vocab)
    targ = torch.randint(0, 7, (14, 5), generator=gen)
    logits = out.double().numpy().reshape(-1, 7)
    m = logits.max(axis=1, keepdims=True)
    log_z = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    nll = log_z - logits[np.arange(len(logits)), targ.numpy().reshape(-1)]
    value = one_and_three_batches(Perplexity, out, targ)
    assert value == pytest.approx(np.exp(nll.mean()), rel=1e-5)
    assert Perplexity().name == 'perplexity'


def mann_whitney_auc(scores, targs):
    "Fraction of (positive, negative) pairs ranked correctly, ties counting 1/2."
    pos = [s for s, t in zip(scores, targs) if t == 1]
    neg = [s for s, t in zip(scores, targs) if t != 1]
    wins = sum(1. if p > n else 0.5 if p == n else 0. for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def trapezoid(fpr, tpr):
    return float(((fpr[1:] - fpr[:-1]) * (tpr[1:] + tpr[:-1]) / 2).sum())


def test_roc_curve_and_auc_on_small_example():
    scores = torch.tensor([0.1, 0.4, 0.35, 0.8])
    targs = torch.tensor([0, 0, 1, 1])
    fpr, tpr = roc_curve(scores, targs)
    np.testing.assert_allclose(fpr.numpy(), [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr.numpy(), [0, 0.5, 0.5, 1, 1])
    auc = auc_roc_score(scores, targs)
    assert auc.shape == () and auc.item() == pytest.approx(0.75)


def test_auc_with_ties_matches_mann_whitney_and_trapezoid():
    gen = torch.Generator().manual_seed(2)
    scores = torch.randint(0, 6, (40,), generator=gen).float() / 5     # many ties
    targs = torch.randint(0, 2, (40,), generator=gen)
    oracle = mann_whitney_auc(scores.tolist(), targs.tolist())
    assert auc_roc_score(scores, targs).item() == pytest.approx(oracle)
    assert trapezoid(*roc_curve(scores, targs)) == pytest.approx(oracle)
    assert auc_roc_score(-scores, targs).item() == pytest.approx(1 - oracle)
    assert math.isnan(auc_roc_score(scores, torch.ones(40, dtype=torch.long)).item())
    with pytest.raises(ValueError, match=r"softmax\(-1\)\[:, 1\]"):
        auc_roc_score(torch.randn(40, 2), targs)


def test_auroc_callback():
    gen = torch.Generator().manual_seed(3)
    targs = torch.randint(0, 2, (30,), generator=gen)
    logits = torch.randn(30, 2, generator=gen) + torch.stack([1 - targs, targs], 1).float()
    p1 = torch.softmax(logits, 1)[:, 1]
    oracle = mann_whitney_auc(p1.tolist(), targs.tolist())
    assert one_and_three_batches(AUROC, logits, targs, splits=(4, 19)) == pytest.approx(oracle)
    # A single logit per item: any monotonic score gives the same AUC.
    single = (logits[:, 1] - logits[:, 0]).view(-1, 1)
    assert one_and_three_batches(AUROC, single, targs) == pytest.approx(oracle)
    assert AUROC().name == 'auroc'


def test_multilabel_fbeta_averages():
    gen = torch.Generator().manual_seed(4)
    targ = (torch.rand(20, 4, generator=gen) > 0.5).float()
    probs = (0.6 * targ + 0.5 * torch.rand(20, 4, generator=gen)).clamp(max=0.99)
    pred = (probs > 0.3).double().numpy()
    t = targ.double().numpy()
    tp, n_pred, n_targ = (pred * t).sum(0), pred.sum(0), t.sum(0)
    per_label = np.array([fbeta_formula(a / b, a / c, 2) for a, b, c in zip(tp, n_pred, n_targ)])
    micro = fbeta_formula(tp.sum() / n_pred.sum(), tp.sum() / n_targ.sum(), 2)
    kw = dict(sigmoid=False, thresh=0.3)
    assert one_and_three_batches(lambda: MultiLabelFbeta(**kw), probs, targ) == pytest.approx(micro)
    macro = per_label.mean()
    assert one_and_three_batches(lambda: MultiLabelFbeta(average='macro', **kw), probs, targ) == pytest.approx(macro)
    weighted = (per_label * n_targ).sum() / n_targ.sum()
    value = one_and_three_batches(lambda: MultiLabelFbeta(average='weighted', **kw), probs, targ)
    assert value == pytest.approx(weighted)
    np.testing.assert_allclose(run_epoch(MultiLabelFbeta(average='none', **kw), probs, targ), per_label, rtol=1e-9)
    assert run_epoch(MultiLabelFbeta(), torch.logit(probs), targ) == pytest.approx(micro)
    assert MultiLabelFbeta(average='macro').name == 'macro_fbeta'


# ---------------------------------------------------------------------------------------------------------------
# Device discipline and the callback contract
# ---------------------------------------------------------------------------------------------------------------

def test_function_metrics_never_read_back_to_the_host():
    "On the 'meta' device any .item(), .cpu() or data-dependent shape fails, so these run without a host sync."
    meta = torch.device('meta')
    cls_out, cls_targ = torch.randn(8, 5, device=meta), torch.randint(0, 5, (8,), device=meta)
    ml_out, ml_targ = torch.randn(8, 4, device=meta), torch.randn(8, 4, device=meta)
    seg_out, seg_targ = torch.randn(2, 2, 4, 4, device=meta), torch.randint(0, 2, (2, 1, 4, 4), device=meta)
    reg_p, reg_t = torch.randn(8, 1, device=meta), torch.randn(8, device=meta)
    results = [accuracy(cls_out, cls_targ), error_rate(cls_out, cls_targ), top_k_accuracy(cls_out, cls_targ, k=2),
               accuracy_thresh(ml_out, ml_targ), fbeta(ml_out, ml_targ), dice(seg_out, seg_targ),
               dice(seg_out, seg_targ, iou=True), foreground_acc(seg_out, seg_targ, void_code=0),
               auc_roc_score(reg_t, cls_targ)]
    results += [f(reg_p, reg_t) for f in (mae, mse, rmse, msle, exp_rmspe, explained_variance, r2_score)]
    for r in results:
        assert r.device.type == 'meta' and r.shape == ()


def _drive_handler(metrics, out, targs):
    "Run one validation epoch through a real CallbackHandler; returns the values after the validation loss."
    handler = CallbackHandler(metrics=metrics)
    handler.on_train_begin(1, None, metrics)
    handler.on_epoch_begin()
    for a, b in [(0, 5), (5, 16), (16, 22)]:
        handler.on_batch_begin(out[a:b], targs[a:b], train=False)
        handler.on_loss_begin(out[a:b])
        handler.on_batch_end(torch.tensor(0.))
    handler.on_epoch_end(val_loss=torch.tensor(0.5))
    return handler, handler.state_dict['last_metrics'][1:]


def test_callback_metrics_through_callback_handler():
    out, targs = logits_from_cm(CM3)
    metrics = [Precision(average='macro'), KappaScore(), MatthewsCorreff()]
    handler, values = _drive_handler(metrics, out, targs)
    assert values == pytest.approx([2 / 3, 166 / 320, 166 / math.sqrt(320 * 312)])
    assert [m.name for m in handler.metrics] == ['precision', 'kappa_score', 'matthews_correff']


def test_function_metric_through_callback_handler():
    out, targs = logits_from_cm(CM3)
    handler, values = _drive_handler([accuracy], out, targs)
    assert values == pytest.approx([15 / 22])


@pytest.mark.cuda
@pytest.mark.filterwarnings('ignore:Synchronization debug mode is a prototype')
def test_cuda_metrics_stay_on_device_without_syncs_and_match_cpu():
    "With CUDA's sync debug mode set to 'error', any host read inside a function metric or on_batch_end raises."
    dev = torch.device('cuda')
    gen = torch.Generator().manual_seed(5)
    cls_out, cls_targ = logits_from_cm(CM3)
    ml_out, ml_targ = torch.randn(22, 4, generator=gen), (torch.rand(22, 4, generator=gen) > 0.5).float()
    seg_out, seg_targ = torch.randn(2, 2, 4, 4, generator=gen), torch.randint(0, 2, (2, 1, 4, 4), generator=gen)
    reg_p, reg_t = torch.rand(22, 1, generator=gen), torch.rand(22, generator=gen) + 0.5
    lm_out, lm_targ = torch.randn(22, 3, 6, generator=gen), torch.randint(0, 6, (22, 3), generator=gen)
    bin_out, bin_targ = torch.randn(22, 2, generator=gen), torch.randint(0, 2, (22,), generator=gen)

    data = dict(cls=(cls_out, cls_targ), ml=(ml_out, ml_targ), seg=(seg_out, seg_targ), reg=(reg_p, reg_t),
                bin=(bin_out[:, 1].contiguous(), bin_targ))

    def functions(d):
        "Every function metric on the tensors of `d`."
        return [accuracy(*d['cls']), top_k_accuracy(*d['cls'], k=2), accuracy_thresh(*d['ml']), fbeta(*d['ml']),
                dice(*d['seg']), dice(*d['seg'], iou=True), foreground_acc(*d['seg'], void_code=0),
                auc_roc_score(*d['bin'])] + \
               [f(*d['reg']) for f in (mae, mse, rmse, msle, exp_rmspe, explained_variance, r2_score)]

    cases = [(Precision(average='macro'), cls_out, cls_targ), (FBeta(average='weighted'), cls_out, cls_targ),
             (KappaScore(weights='quadratic'), cls_out, cls_targ), (MatthewsCorreff(), cls_out, cls_targ),
             (R2Score(), reg_p, reg_t), (RMSE(), reg_p, reg_t), (Perplexity(), lm_out, lm_targ),
             (AUROC(), bin_out, bin_targ), (MultiLabelFbeta(average='macro'), ml_out, ml_targ)]
    cpu_values = [run_epoch(cb, out, targ, splits=(3, 11)) for cb, out, targ in cases]

    # Copies to the device happen before the sync check is switched on (a pageable copy synchronizes).
    data_dev = {k: tuple(t.to(dev) for t in v) for k, v in data.items()}
    cases_dev = [(cb, out.to(dev), targ.to(dev)) for cb, out, targ in cases]
    gpu_values = []
    torch.cuda.set_sync_debug_mode('error')
    try:
        gpu_results = functions(data_dev)
        for cb, out, targ in cases_dev:
            cb.on_train_begin()
            cb.on_epoch_begin()
            for a, b in [(0, 3), (3, 11), (11, 22)]:
                cb.on_batch_end(last_output=out[a:b], last_target=targ[a:b])
            torch.cuda.set_sync_debug_mode('default')   # on_epoch_end reads the value back once, by design
            gpu_values.append(cb.on_epoch_end(last_metrics=[])['last_metrics'][0])
            torch.cuda.set_sync_debug_mode('error')
    finally:
        torch.cuda.set_sync_debug_mode('default')
    for r in gpu_results:
        assert r.device.type == 'cuda' and r.shape == ()
    np.testing.assert_allclose([r.item() for r in gpu_results], [r.item() for r in functions(data)], rtol=1e-5)
    np.testing.assert_allclose(gpu_values, cpu_values, rtol=1e-5)
