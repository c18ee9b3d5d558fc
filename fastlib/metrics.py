"""Metrics: plain functions `metric(output, target) -> 0-d tensor` and callbacks that accumulate over an epoch.

Function metrics stay on the output's device (no `.item()`, no `.cpu()`, no data-dependent shapes), so the
validation loop never waits on the GPU; `AverageMetric` averages them over the validation set. Callback metrics
accumulate per batch on the device and read their value back once, in `on_epoch_end`.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .callback import Callback
from .core import did_you_mean
from .torch_core import add_metrics, flatten_check

__all__ = ['fbeta', 'accuracy', 'accuracy_thresh', 'top_k_accuracy', 'foreground_acc', 'error_rate', 'dice',
           'exp_rmspe', 'mean_absolute_error', 'mean_squared_error', 'root_mean_squared_error',
           'mean_squared_logarithmic_error', 'explained_variance', 'r2_score', 'mse', 'mae', 'rmse', 'msle',
           'RegMetrics', 'R2Score', 'ExplainedVariance', 'RMSE', 'ExpRMSPE', 'ConfusionMatrix', 'CMScores',
           'Recall', 'Precision', 'FBeta', 'KappaScore', 'MatthewsCorreff', 'Perplexity', 'auc_roc_score',
           'roc_curve', 'AUROC', 'MultiLabelFbeta']


def _float(t: Tensor) -> Tensor:
    "`t` as a floating-point tensor; half precision goes up to float32 so that sums of squares do not overflow."
    if t.dtype in (torch.float16, torch.bfloat16) or not torch.is_floating_point(t):
        return t.float()
    return t


def _check_class_scores(fn_name: str, input: Tensor, targs: Tensor) -> None:
    "Fail with a readable message unless `input` holds one score per class (last dim) for each target."
    if input.dim() < 2:
        raise ValueError(f"{fn_name} expects `input` of shape (B, n_classes), one score per class, and `targs` of "
                         f"shape (B,) holding class indices; got input {tuple(input.shape)} and targs "
                         f"{tuple(targs.shape)}. A model with a single output (regression, or a binary model with "
                         f"one logit) needs accuracy_thresh or a regression metric instead.")
    if input.shape[:-1].numel() != targs.numel():
        raise ValueError(f"{fn_name} expects one target per row of `input`: input {tuple(input.shape)} "
                         f"(..., n_classes) gives {input.shape[:-1].numel()} predictions but targs "
                         f"{tuple(targs.shape)} holds {targs.numel()} values. Class scores go in the last dimension.")


# ----------------------------------------------------------------------------------------------------------------
# Classification functions
# ----------------------------------------------------------------------------------------------------------------

def accuracy(input: Tensor, targs: Tensor) -> Tensor:
    "The fraction of rows of `input` (B, n_classes) whose argmax equals the class index in `targs` (B,)."
    _check_class_scores('accuracy', input, targs)
    n = targs.shape[0]
    preds = input.argmax(dim=-1).view(n, -1)
    return (preds == targs.view(n, -1)).float().mean()


def error_rate(input: Tensor, targs: Tensor) -> Tensor:
    "1 - `accuracy(input, targs)`."
    return 1 - accuracy(input, targs)


def accuracy_thresh(y_pred: Tensor, y_true: Tensor, thresh: float = 0.5, sigmoid: bool = True) -> Tensor:
    "Multi-label accuracy: how often `y_pred` > `thresh` (after a sigmoid when `sigmoid`) agrees with `y_true`."
    if y_pred.numel() != y_true.numel():
        raise ValueError(f"accuracy_thresh expects `y_pred` and `y_true` of the same shape (B, n_labels); got "
                         f"{tuple(y_pred.shape)} and {tuple(y_true.shape)}.")
    if sigmoid:
        y_pred = y_pred.sigmoid()
    # Reshape so that a (B,) against (B, 1) pair never broadcasts into (B, B).
    return ((y_pred > thresh) == y_true.reshape(y_pred.shape).bool()).float().mean()


def top_k_accuracy(input: Tensor, targs: Tensor, k: int = 5) -> Tensor:
    "The fraction of targets in `targs` (B,) found among the `k` highest scores of `input` (B, n_classes)."
    _check_class_scores('top_k_accuracy', input, targs)
    if k > input.shape[-1]:
        raise ValueError(f"top_k_accuracy: k={k} is more than the {input.shape[-1]} classes of `input`.")
    top = input.topk(k=k, dim=-1).indices                     # (B, k)
    hits = top == targs.view(*top.shape[:-1], 1)               # (B, k)
    return hits.any(dim=-1).float().mean()


def foreground_acc(input: Tensor, target: Tensor, void_code: int) -> Tensor:
    "Segmentation accuracy of `input` (B, C, H, W) against `target` (B, 1, H, W), leaving out `void_code` pixels."
    target = target.squeeze(1)                                 # (B, H, W)
    keep = target != void_code
    correct = (input.argmax(dim=1) == target) & keep
    # A masked sum rather than boolean indexing: no data-dependent shape, so no host sync. 0/0 gives nan.
    return correct.sum().float() / keep.sum().float()


def fbeta(y_pred: Tensor, y_true: Tensor, thresh: float = 0.2, beta: float = 2, eps: float = 1e-9,
          sigmoid: bool = True) -> Tensor:
    "Multi-label F-beta of `y_pred` (B, n_labels) > `thresh` against `y_true`, computed per sample then averaged."
    if y_pred.dim() != 2 or y_pred.shape != y_true.shape:
        raise ValueError(f"fbeta expects `y_pred` and `y_true` of the same shape (B, n_labels); got "
                         f"{tuple(y_pred.shape)} and {tuple(y_true.shape)}.")
    beta2 = beta ** 2
    if sigmoid:
        y_pred = y_pred.sigmoid()
    y_pred = (y_pred > thresh).float()
    y_true = y_true.float()
    tp = (y_pred * y_true).sum(dim=1)                          # (B,)
    prec = tp / (y_pred.sum(dim=1) + eps)
    rec = tp / (y_true.sum(dim=1) + eps)
    res = (1 + beta2) * prec * rec / (prec * beta2 + rec + eps)
    return res.mean()


def dice(input: Tensor, targs: Tensor, iou: bool = False, eps: float = 1e-8) -> Tensor:
    "Dice coefficient (or IoU when `iou`) of the binary segmentation `input` (B, 2, H, W) against `targs` (B, 1, H, W)."
    n = targs.shape[0]
    preds = input.argmax(dim=1).view(n, -1)
    targs = targs.view(n, -1)
    if preds.shape != targs.shape:
        raise ValueError(f"dice expects `input` (B, n_classes, ...) with class scores in dim 1 and `targs` with "
                         f"one class index per pixel; got input {tuple(input.shape)} and targs {tuple(targs.shape)}.")
    intersect = (preds * targs).sum().float()
    union = (preds + targs).sum().float()
    res = intersect / (union - intersect + eps) if iou else 2. * intersect / union
    # Both masks empty: a perfect match. torch.where keeps this on the device (no `if union > 0`).
    return torch.where(union > 0, res, torch.ones_like(res))


# ----------------------------------------------------------------------------------------------------------------
# Regression functions (inputs are flattened: any shapes with the same number of elements)
# ----------------------------------------------------------------------------------------------------------------

def mean_absolute_error(pred: Tensor, targ: Tensor) -> Tensor:
    "Mean of |`targ` - `pred`|."
    pred, targ = flatten_check(pred, targ)
    return (_float(targ) - _float(pred)).abs().mean()


def mean_squared_error(pred: Tensor, targ: Tensor) -> Tensor:
    "Mean of (`targ` - `pred`)**2."
    pred, targ = flatten_check(pred, targ)
    return ((_float(targ) - _float(pred)) ** 2).mean()


def root_mean_squared_error(pred: Tensor, targ: Tensor) -> Tensor:
    "Square root of `mean_squared_error(pred, targ)`."
    return mean_squared_error(pred, targ).sqrt()


def mean_squared_logarithmic_error(pred: Tensor, targ: Tensor) -> Tensor:
    "Mean of (log(1 + `targ`) - log(1 + `pred`))**2."
    pred, targ = flatten_check(pred, targ)
    return ((torch.log1p(_float(targ)) - torch.log1p(_float(pred))) ** 2).mean()


def exp_rmspe(pred: Tensor, targ: Tensor) -> Tensor:
    "Root mean squared percentage error of exp(`pred`) against exp(`targ`) (for models trained on log targets)."
    pred, targ = flatten_check(pred, targ)
    pred, targ = torch.exp(_float(pred)), torch.exp(_float(targ))
    pct_var = (targ - pred) / targ
    return (pct_var ** 2).mean().sqrt()


def explained_variance(pred: Tensor, targ: Tensor) -> Tensor:
    "1 - Var(`targ` - `pred`) / Var(`targ`)."
    pred, targ = flatten_check(pred, targ)
    pred, targ = _float(pred), _float(targ)
    return 1 - torch.var(targ - pred) / torch.var(targ)


def r2_score(pred: Tensor, targ: Tensor) -> Tensor:
    "Coefficient of determination: 1 - sum((`targ` - `pred`)**2) / sum((`targ` - mean(`targ`))**2)."
    pred, targ = flatten_check(pred, targ)
    pred, targ = _float(pred), _float(targ)
    residual = ((targ - pred) ** 2).sum()
    total = ((targ - targ.mean()) ** 2).sum()
    return 1 - residual / total


mae = mean_absolute_error
mse = mean_squared_error
rmse = root_mean_squared_error
msle = mean_squared_logarithmic_error


# ----------------------------------------------------------------------------------------------------------------
# Regression callbacks: keep every prediction of the epoch, then apply the function once
# ----------------------------------------------------------------------------------------------------------------

class RegMetrics(Callback):
    "Base class for regression metrics computed on all the validation predictions at once (kept on the device)."
    name = 'reg_metrics'

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self._preds: list[Tensor] = []
        self._targs: list[Tensor] = []

    def on_batch_end(self, last_output: Tensor, last_target: Tensor, **kwargs: Any) -> None:
        preds, targs = flatten_check(last_output, last_target)
        self._preds.append(preds.detach())
        self._targs.append(targs.detach())

    def _epoch_value(self, func) -> float:
        "`func(preds, targs)` over the whole epoch, read back as a Python float."
        if not self._preds:
            return float('nan')
        self.preds, self.targs = torch.cat(self._preds), torch.cat(self._targs)
        return float(func(self.preds, self.targs))


class R2Score(RegMetrics):
    "The r2 score (`r2_score`) over the whole validation set."
    name = 'r2_score'

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        return add_metrics(last_metrics, self._epoch_value(r2_score))


class ExplainedVariance(RegMetrics):
    "The explained variance (`explained_variance`) over the whole validation set."
    name = 'explained_variance'

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        return add_metrics(last_metrics, self._epoch_value(explained_variance))


class RMSE(RegMetrics):
    "The root mean squared error over the whole validation set (not an average of per-batch roots)."
    name = 'rmse'

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        return add_metrics(last_metrics, self._epoch_value(root_mean_squared_error))


class ExpRMSPE(RegMetrics):
    "The root mean squared percentage error of exp(predictions) (`exp_rmspe`) over the whole validation set."
    name = 'exp_rmspe'

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        return add_metrics(last_metrics, self._epoch_value(exp_rmspe))


# ----------------------------------------------------------------------------------------------------------------
# Confusion-matrix metrics (single-label classification, class scores in the last dimension)
# ----------------------------------------------------------------------------------------------------------------

class ConfusionMatrix(Callback):
    """Count the confusion matrix `cm` over the validation set: `cm[i, j]` = number of items of class i predicted j.

    The counts stay on the device as int64; `on_epoch_end` leaves a CPU copy in `metric`. The number of classes is
    read from the last dimension of the model's output.
    """
    name = 'confusion_matrix'

    def __init__(self):
        self.n_classes = 0
        self.cm: Tensor | None = None

    def on_train_begin(self, **kwargs: Any) -> None:
        self.n_classes = 0

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self.cm = None

    def on_batch_end(self, last_output: Tensor, last_target: Tensor, **kwargs: Any) -> None:
        if last_output.dim() < 2 or last_output.shape[-1] < 2:
            raise ValueError(f"{type(self).__name__} expects the model's output of shape (B, n_classes) with "
                             f"n_classes >= 2 (one score per class); got {tuple(last_output.shape)}. For a "
                             f"single-logit binary model, output two scores or use accuracy_thresh.")
        _check_class_scores(type(self).__name__, last_output, last_target)
        n_classes = last_output.shape[-1]
        if self.n_classes == 0:
            self.n_classes = n_classes
        elif n_classes != self.n_classes:
            raise ValueError(f"{type(self).__name__}: the output has {n_classes} classes, but earlier batches had "
                             f"{self.n_classes}.")
        preds = last_output.argmax(dim=-1).view(-1)
        targs = last_target.view(-1).long()
        # Count the flat index targ * C + pred into C*C bins. Not torch.bincount: on CUDA it reads the max back to
        # size its output (a host sync). Accumulating index_put_ is exact in int64 and has a deterministic kernel.
        flat = targs * n_classes + preds
        counts = torch.zeros(n_classes ** 2, dtype=torch.long, device=flat.device)
        counts.index_put_((flat,), torch.ones_like(flat), accumulate=True)
        counts = counts.view(n_classes, n_classes)              # (C, C): rows = targets, columns = predictions
        self.cm = counts if self.cm is None else self.cm + counts

    def on_epoch_end(self, **kwargs: Any) -> None:
        self.metric = None if self.cm is None else self.cm.cpu()

    def _cm_cpu(self) -> Tensor:
        "The epoch's confusion matrix read back to the CPU in float64 (only ever called in on_epoch_end)."
        if self.cm is None:
            raise ValueError(f"{type(self).__name__} saw no validation batch this epoch, so it has nothing to score.")
        return self.cm.cpu().double()


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    "`num / den`, with 0 where `den` is 0 (a class never predicted has precision 0, as in scikit-learn)."
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))


_AVERAGES = ('binary', 'micro', 'macro', 'weighted', None)


class CMScores(ConfusionMatrix):
    """Base class for precision/recall scores from the confusion matrix.

    `average`: 'binary' (the score of class `pos_label`, two classes only), 'micro' (from the global counts; equals
    accuracy for single-label data), 'macro' (plain mean over classes), 'weighted' (mean weighted by each class's
    number of targets) or None (one score per class). A class with no prediction (or no target) scores 0.
    """

    def __init__(self, average: str | None = 'binary', pos_label: int = 1, eps: float = 1e-9):
        super().__init__()
        if average not in _AVERAGES:
            raise ValueError(f"average={average!r} is not one of {_AVERAGES}.{did_you_mean(average, _AVERAGES[:-1])}")
        self.average, self.pos_label, self.eps = average, pos_label, eps

    def _counts(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        "From the CPU confusion matrix: true positives, predicted counts, target counts (each (C,)) and the total."
        cm = self._cm_cpu()
        return torch.diag(cm), cm.sum(dim=0), cm.sum(dim=1), cm.sum()

    def _precision(self) -> Tensor:
        "Precision of each class (C,)."
        tp, n_pred, _, _ = self._counts()
        return _safe_div(tp, n_pred)

    def _recall(self) -> Tensor:
        "Recall of each class (C,)."
        tp, _, n_targ, _ = self._counts()
        return _safe_div(tp, n_targ)

    def _weights(self, avg: str) -> Tensor:
        "Weights (C,) that average per-class scores for `avg` ('binary', 'macro' or 'weighted')."
        n = self.n_classes
        if avg == 'binary' and n != 2:
            warnings.warn(f"{type(self).__name__}: average='binary' needs 2 classes but there are {n}; using "
                          f"average='macro' instead.")
            self.average = avg = 'macro'
        if avg == 'binary':
            if self.pos_label not in (0, 1):
                warnings.warn(f"{type(self).__name__}: pos_label={self.pos_label} is not 0 or 1; using 1.")
                self.pos_label = 1
            return F.one_hot(torch.tensor(self.pos_label), 2).double()
        if avg == 'macro':
            return torch.full((n,), 1. / n, dtype=torch.float64)
        if avg == 'weighted':
            _, _, n_targ, total = self._counts()
            return n_targ / total
        raise ValueError(f"No class weights for average={avg!r}.")

    def _average(self, per_class: Tensor, micro: Tensor) -> float | list[float]:
        "Reduce `per_class` scores according to `self.average` (`micro` is the score from the global counts)."
        if self.average is None:
            return per_class.tolist()
        if self.average == 'micro':
            return float(micro)
        return float((per_class * self._weights(self.average)).sum())

    def _micro(self) -> Tensor:
        "Micro precision = micro recall = trace / total for single-label data."
        tp, _, _, total = self._counts()
        return tp.sum() / total


def _add_score(last_metrics: list, value: float | list[float]) -> dict:
    "Append one metric value; a per-class list (average=None) stays one entry of `last_metrics`."
    return add_metrics(last_metrics, [value] if isinstance(value, list) else value)


class Recall(CMScores):
    "Recall, tp / (tp + fn), over the validation set (see `CMScores` for `average` and `pos_label`)."
    name = 'recall'

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        return _add_score(last_metrics, self._average(self._recall(), self._micro()))


class Precision(CMScores):
    "Precision, tp / (tp + fp), over the validation set (see `CMScores` for `average` and `pos_label`)."
    name = 'precision'

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        return _add_score(last_metrics, self._average(self._precision(), self._micro()))


class FBeta(CMScores):
    "F-beta, (1 + beta²)·P·R / (beta²·P + R), over the validation set (see `CMScores` for `average`)."
    name = 'f_beta'

    def __init__(self, average: str | None = 'binary', pos_label: int = 1, eps: float = 1e-9, beta: float = 2):
        super().__init__(average=average, pos_label=pos_label, eps=eps)
        self.beta = beta

    def _fbeta(self, prec: Tensor, rec: Tensor) -> Tensor:
        "F-beta from precision and recall (0 where both are 0)."
        beta2 = self.beta ** 2
        return (1 + beta2) * prec * rec / (beta2 * prec + rec + self.eps)

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        per_class = self._fbeta(self._precision(), self._recall())
        micro = self._micro()
        return _add_score(last_metrics, self._average(per_class, self._fbeta(micro, micro)))


_KAPPA_WEIGHTS = (None, 'linear', 'quadratic')


class KappaScore(ConfusionMatrix):
    """Cohen's kappa between predictions and targets; `weights` None, 'linear' or 'quadratic' (for ordinal classes).

    kappa = 1 - sum(w * cm) / sum(w * expected), with expected[i, j] = n_targ[i] * n_pred[j] / total and
    w[i, j] = (i != j), |i - j| or (i - j)**2.
    """
    name = 'kappa_score'

    def __init__(self, weights: str | None = None):
        super().__init__()
        if weights not in _KAPPA_WEIGHTS:
            raise ValueError(f"weights={weights!r} is not one of {_KAPPA_WEIGHTS}."
                             f"{did_you_mean(weights, _KAPPA_WEIGHTS[1:])}")
        self.weights = weights

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        cm = self._cm_cpu()
        n = cm.shape[0]
        expected = torch.outer(cm.sum(dim=1), cm.sum(dim=0)) / cm.sum()
        idx = torch.arange(n, dtype=torch.float64)
        dist = idx[:, None] - idx[None, :]                     # (C, C): i - j
        if self.weights is None:
            w = (dist != 0).double()
        elif self.weights == 'linear':
            w = dist.abs()
        else:
            w = dist ** 2
        kappa = 1 - (w * cm).sum() / (w * expected).sum()
        return add_metrics(last_metrics, float(kappa))


class MatthewsCorreff(ConfusionMatrix):
    "Matthews correlation coefficient (multi-class form of Gorodkin, 2004); 0 when it is undefined (one class only)."
    name = 'matthews_correff'

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        cm = self._cm_cpu()
        n_targ, n_pred = cm.sum(dim=1), cm.sum(dim=0)
        n_correct, total = torch.trace(cm), cm.sum()
        cov_tp = n_correct * total - n_targ @ n_pred
        cov_pp = total ** 2 - n_pred @ n_pred
        cov_tt = total ** 2 - n_targ @ n_targ
        den = (cov_tt * cov_pp).sqrt()
        return add_metrics(last_metrics, float(cov_tp / den) if den > 0 else 0.)


# ----------------------------------------------------------------------------------------------------------------
# Language models
# ----------------------------------------------------------------------------------------------------------------

class Perplexity(Callback):
    "exp(mean cross-entropy per token) over the validation set; output (B, T, vocab) or (B, vocab), target (B, T)/(B,)."
    name = 'perplexity'

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self.loss: Tensor | float = 0.
        self.len = 0

    def on_batch_end(self, last_output: Tensor, last_target: Tensor, **kwargs: Any) -> None:
        vocab = last_output.shape[-1]
        if last_output.shape[:-1].numel() != last_target.numel():
            raise ValueError(f"Perplexity expects one target token per row of the output: output "
                             f"{tuple(last_output.shape)} (..., vocab) against target {tuple(last_target.shape)}.")
        # Summed (not averaged) so that batches of any size weigh by their number of tokens.
        loss = F.cross_entropy(_float(last_output).reshape(-1, vocab), last_target.reshape(-1).long(),
                               reduction='sum')
        self.loss = self.loss + loss.detach()
        self.len += last_target.numel()

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        if self.len == 0:
            return add_metrics(last_metrics, float('nan'))
        return add_metrics(last_metrics, float(torch.exp(self.loss / self.len)))


# ----------------------------------------------------------------------------------------------------------------
# ROC curve and its area (binary classification)
# ----------------------------------------------------------------------------------------------------------------

def _scores_1d(fn_name: str, input: Tensor, targ: Tensor) -> tuple[Tensor, Tensor]:
    "`input` as 1-d scores and `targ` as a boolean 'is positive (== 1)' vector, checking their shapes."
    if input.dim() == 2 and input.shape[1] == 1:
        input = input.view(-1)
    if input.dim() != 1 or input.numel() != targ.numel():
        raise ValueError(f"{fn_name} expects `input` of shape (N,) holding the score of the positive class and "
                         f"`targ` of shape (N,) with 1 for positives; got {tuple(input.shape)} and "
                         f"{tuple(targ.shape)}. From (N, 2) logits, pass `logits.softmax(-1)[:, 1]`.")
    return input, targ.reshape(-1) == 1


def _exact_float(device: torch.device) -> torch.dtype:
    "float64 where the device has it (Apple's MPS does not), for ratios of large counts."
    return torch.float32 if device.type == 'mps' else torch.float64


def roc_curve(input: Tensor, targ: Tensor) -> tuple[Tensor, Tensor]:
    "False- and true-positive rates (fpr, tpr) of scores `input` (N,) against `targ` (N,), a point per distinct score."
    scores, pos = _scores_1d('roc_curve', input, targ)
    order = scores.argsort(descending=True)
    scores, pos = scores[order], pos[order]
    # The last index of each run of equal scores is a threshold; the final index is always one.
    is_last = torch.ones_like(pos)
    is_last[:-1] = scores[1:] != scores[:-1]
    thresh_idx = is_last.nonzero().view(-1)                    # data-dependent length: reads back to the host
    tps = pos.long().cumsum(0)[thresh_idx]
    fps = thresh_idx + 1 - tps
    zero = tps.new_zeros(1)
    tps, fps = torch.cat([zero, tps]), torch.cat([zero, fps])  # start the curve at (0, 0)
    dtype = _exact_float(scores.device)
    return fps.to(dtype) / fps[-1], tps.to(dtype) / tps[-1]


def auc_roc_score(input: Tensor, targ: Tensor) -> Tensor:
    """Area under the ROC curve of the scores `input` (N,) against `targ` (N,) (1 = positive); binary only.

    Equal to the trapezoid rule over `roc_curve`, computed as the Mann-Whitney statistic: the fraction of
    (positive, negative) pairs where the positive scores higher, ties counting one half. Exact integer counts on
    the device and no data-dependent shapes, so no host sync. nan when one of the two classes is absent.
    """
    scores, pos = _scores_1d('auc_roc_score', input, targ)
    n = scores.numel()
    order = scores.argsort()                                   # ascending
    scores, pos = scores[order], pos[order].long()
    neg = 1 - pos
    pos_idx = torch.arange(n, device=scores.device)
    # For each item, the first and last positions of its run of tied scores.
    is_first = torch.ones(n, dtype=torch.bool, device=scores.device)
    is_first[1:] = scores[1:] != scores[:-1]
    is_last = torch.ones_like(is_first)
    is_last[:-1] = is_first[1:]
    first = torch.cummax(torch.where(is_first, pos_idx, 0), dim=0).values
    last = torch.cummin(torch.where(is_last, pos_idx, n - 1).flip(0), dim=0).values.flip(0)
    neg_incl = neg.cumsum(0)                                   # negatives at positions <= i
    neg_below = neg_incl[first] - neg[first]                   # negatives scored strictly lower
    neg_tied = neg_incl[last] - neg_below                      # negatives with the same score
    twice_wins = (pos * (2 * neg_below + neg_tied)).sum()      # 2 x (wins + ties/2), exact in int64
    n_pos = pos.sum()
    n_neg = n - n_pos
    dtype = _exact_float(scores.device)
    return twice_wins.to(dtype) / (2 * n_pos * n_neg).to(dtype)


class AUROC(Callback):
    "Area under the ROC curve over the validation set, for binary classification (output (B, 2), (B, 1) or (B,))."
    name = 'auroc'

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self._preds: list[Tensor] = []
        self._targs: list[Tensor] = []

    def on_batch_end(self, last_output: Tensor, last_target: Tensor, **kwargs: Any) -> None:
        if last_output.dim() == 2 and last_output.shape[1] == 2:
            scores = F.softmax(_float(last_output), dim=1)[:, 1]     # probability of class 1
        elif last_output.dim() == 1 or (last_output.dim() == 2 and last_output.shape[1] == 1):
            scores = last_output.view(-1)                            # any monotonic score will do: AUC ranks
        else:
            raise ValueError(f"AUROC is for binary classification: it expects an output of shape (B, 2), (B, 1) or "
                             f"(B,); got {tuple(last_output.shape)}.")
        self._preds.append(scores.detach())
        self._targs.append(last_target.detach().view(-1))

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        if not self._preds:
            return add_metrics(last_metrics, float('nan'))
        self.preds, self.targs = torch.cat(self._preds), torch.cat(self._targs)
        return add_metrics(last_metrics, float(auc_roc_score(self.preds, self.targs)))


# ----------------------------------------------------------------------------------------------------------------
# Multi-label F-beta over the whole validation set
# ----------------------------------------------------------------------------------------------------------------

_ML_AVERAGES = ('micro', 'macro', 'weighted', 'none')


class MultiLabelFbeta(Callback):
    """F-beta for multi-label targets (B, n_labels), from counts over the whole validation set.

    A label is predicted when its score (after a sigmoid when `sigmoid`) is above `thresh`. `average`: 'micro'
    (global counts), 'macro' (mean over labels), 'weighted' (weighted by each label's number of targets) or 'none'
    (one score per label, appended as one list).
    """

    def __init__(self, beta: float = 2, eps: float = 1e-15, thresh: float = 0.3, sigmoid: bool = True,
                 average: str = 'micro'):
        if average not in _ML_AVERAGES:
            raise ValueError(f"average={average!r} is not one of {_ML_AVERAGES}.{did_you_mean(average, _ML_AVERAGES)}")
        self.beta, self.eps, self.thresh, self.sigmoid, self.average = beta, eps, thresh, sigmoid, average
        self.beta2 = beta ** 2
        self.name = 'fbeta' if average == 'none' else f'{average}_fbeta'

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self.tp: Tensor | None = None
        self.total_pred: Tensor | None = None
        self.total_targ: Tensor | None = None

    def on_batch_end(self, last_output: Tensor, last_target: Tensor, **kwargs: Any) -> None:
        if last_output.shape != last_target.shape or last_output.dim() != 2:
            raise ValueError(f"MultiLabelFbeta expects output and target of the same shape (B, n_labels); got "
                             f"{tuple(last_output.shape)} and {tuple(last_target.shape)}.")
        scores = last_output.sigmoid() if self.sigmoid else last_output
        pred = (scores > self.thresh).long()
        targ = last_target.bool().long()
        tp, n_pred, n_targ = (pred * targ).sum(0), pred.sum(0), targ.sum(0)   # (n_labels,) each
        if self.tp is None:
            self.tp, self.total_pred, self.total_targ = tp, n_pred, n_targ
        else:
            self.tp, self.total_pred, self.total_targ = self.tp + tp, self.total_pred + n_pred, self.total_targ + n_targ

    def fbeta_score(self, precision: Tensor, recall: Tensor) -> Tensor:
        "F-beta from `precision` and `recall` (with `eps` in the denominator)."
        return (1 + self.beta2) * precision * recall / (self.beta2 * precision + recall + self.eps)

    def on_epoch_end(self, last_metrics: list, **kwargs: Any) -> dict:
        if self.tp is None:
            return add_metrics(last_metrics, float('nan'))
        # The epoch's one host read: three (n_labels,) count vectors, then float64 on the CPU.
        tp, n_pred, n_targ = (t.cpu().double() for t in (self.tp, self.total_pred, self.total_targ))
        n_pred, n_targ = n_pred + self.eps, n_targ + self.eps
        if self.average == 'micro':
            res = self.fbeta_score(tp.sum() / n_pred.sum(), tp.sum() / n_targ.sum())
        else:
            per_label = self.fbeta_score(tp / n_pred, tp / n_targ)
            if self.average == 'macro':
                res = per_label.mean()
            elif self.average == 'weighted':
                res = (per_label * n_targ).sum() / n_targ.sum()
            else:
                return add_metrics(last_metrics, [per_label.tolist()])
        return add_metrics(last_metrics, float(res))
