"""Learners for text: language models (`language_model_learner`) and classifiers (`text_classifier_learner`),
the ULMFiT pieces (encoder transfer, pretrained weights with vocabulary remapping) and text generation.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..basic_data import DataBunch, DatasetType
from ..basic_train import Learner
from ..callbacks.rnn import RNNTrainer
from ..callbacks.training import GradientClipping
from ..core import PathOrStr, did_you_mean, ifnone
from ..datasets import Config
from ..layers import bn_drop_lin
from ..serialization import atomic_save, safe_load
from ..torch_core import Module, get_model
from .models.awd_lstm import (AWD_LSTM, LinearDecoder, SequentialRNN, awd_lstm_clas_config, awd_lstm_clas_split,
                              awd_lstm_lm_config, awd_lstm_lm_split)
from .transform import TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK, Vocab

__all__ = ['RNNLearner', 'LanguageLearner', 'convert_weights', 'decode_spec_tokens', 'get_language_model',
           'language_model_learner', 'PoolingLinearClassifier', 'MultiBatchEncoder', 'get_text_classifier',
           'text_classifier_learner', 'pretrained_model_files']

# What each architecture needs: its hidden size parameter, default configs, layer-group splits, and the folder
# of the model cache (fastlib's Config model path) where its pretrained WT103 weights are looked for.
_model_meta = {AWD_LSTM: {'hid_name': 'emb_sz', 'config_lm': awd_lstm_lm_config, 'split_lm': awd_lstm_lm_split,
                          'config_clas': awd_lstm_clas_config, 'split_clas': awd_lstm_clas_split,
                          'pretrained_folder': 'wt103-fwd', 'pretrained_files': ('lstm_fwd.pth', 'itos_wt103.pkl')}}


def _meta(arch: Callable) -> dict:
    if arch not in _model_meta:
        names = [a.__name__ for a in _model_meta]
        raise ValueError(f"Unknown text architecture {getattr(arch, '__name__', arch)!r}; fastlib knows {names}.")
    return _model_meta[arch]


# --- Pretrained weights ------------------------------------------------------------------------------------

def convert_weights(wgts: dict, stoi_wgts: dict, itos_new: Sequence[str]) -> dict:
    """The language-model weights `wgts` (trained with the vocabulary `stoi_wgts`) for the vocabulary `itos_new`:
    each word keeps its embedding and decoder bias row; words the old vocabulary lacks get the mean row."""
    enc = wgts['0.encoder.weight']
    idx = torch.tensor([stoi_wgts.get(w, -1) for w in itos_new], dtype=torch.long)
    known = idx >= 0
    new_w = enc.new_empty(len(itos_new), enc.size(1))
    new_w[known] = enc[idx[known]]
    new_w[~known] = enc.mean(0)
    wgts = dict(wgts)
    wgts['0.encoder.weight'] = new_w
    if '0.encoder_dp.emb.weight' in wgts:
        wgts['0.encoder_dp.emb.weight'] = new_w.clone()
    wgts['1.decoder.weight'] = new_w.clone()
    if '1.decoder.bias' in wgts:
        bias = wgts['1.decoder.bias']
        new_b = bias.new_empty(len(itos_new))
        new_b[known] = bias[idx[known]]
        new_b[~known] = bias.mean()
        wgts['1.decoder.bias'] = new_b
    return wgts


def pretrained_model_files(arch: Callable = AWD_LSTM) -> tuple[Path, Path]:
    "The weights and vocabulary files of `arch`'s pretrained model in the model cache (an error says what to put where)."
    meta = _meta(arch)
    folder = Config.model_path() / meta['pretrained_folder']
    weights, itos = (sorted(folder.glob(f'*.{ext}')) if folder.is_dir() else [] for ext in ('pth', 'pkl'))
    if not weights or not itos:
        w_name, i_name = meta['pretrained_files']
        raise FileNotFoundError(
            f"pretrained=True needs the WikiText-103 {arch.__name__} weights, which fastlib cannot download here. "
            f"Put the weights ({w_name}) and the vocabulary ({i_name}) in {folder}/ (the model cache, set by "
            f"Config's model_path), or pass pretrained=False, or start from a language model of your own with "
            f"pretrained_fnames=(weights, vocab) (files in learn.path/learn.model_dir, see learn.save and "
            f"data.vocab.save).")
    return weights[0], itos[0]


def _load_itos(fname: Path) -> list[str]:
    return Vocab.load(fname).itos


# --- Learners ----------------------------------------------------------------------------------------------

class RNNLearner(Learner):
    "A Learner for AWD-LSTM models: RNNTrainer (AR `alpha`, TAR `beta`), gradient clipping `clip`, layer groups."

    def __init__(self, data: DataBunch, model: nn.Module, split_func: Callable | None = None,
                 clip: float | None = None, alpha: float = 2., beta: float = 1., metrics: Collection | None = None,
                 **learn_kwargs: Any):
        super().__init__(data, model, metrics=metrics, **learn_kwargs)
        self.callbacks.append(RNNTrainer(self, alpha=alpha, beta=beta))
        if clip:
            self.callback_fns.append(functools.partial(GradientClipping, clip=clip))
        if split_func is not None:
            # AWD-LSTM split functions return the layer groups themselves (fastai v1's convention).
            self.layer_groups = list(split_func(get_model(self.model)))
            self.opt = None

    def _encoder(self) -> nn.Module:
        encoder = get_model(self.model)[0]
        return encoder.module if hasattr(encoder, 'module') else encoder

    def save_encoder(self, name: str) -> None:
        "Save the encoder (with the vocabulary it was trained with) to `path/model_dir/name.pth`."
        target = self._model_file(name)
        atomic_save({'encoder': self._encoder().state_dict(), 'itos': list(self.data.vocab.itos)}, target)

    def load_encoder(self, name: str, device: torch.device | None = None) -> RNNLearner:
        "Load the encoder saved as `name` by `save_encoder`; its vocabulary must be this data's."
        source = self._model_file(name)
        if not source.is_file():
            saved = sorted(p.stem for p in source.parent.glob('*.pth')) if source.parent.is_dir() else []
            raise FileNotFoundError(f"No saved encoder at {source}.{did_you_mean(source.stem, saved)}")
        state = safe_load(source, map_location=ifnone(device, self.data.device), what='saved encoder')
        wgts = state['encoder'] if isinstance(state, dict) and 'encoder' in state else state
        itos = state.get('itos') if isinstance(state, dict) else None
        if itos is not None and list(itos) != list(self.data.vocab.itos):
            new = len(set(self.data.vocab.itos) - set(itos))
            raise ValueError(
                f"The encoder {source.name} was trained with a different vocabulary ({len(itos)} tokens) than this "
                f"data's ({len(self.data.vocab.itos)} tokens, {new} of them unknown to the encoder): token ids "
                f"would mean different words. Build the classifier data with the language model's vocabulary: "
                f"TextClasDataBunch.from_df(..., vocab=data_lm.vocab) (or TextList.from_df(..., vocab=data_lm.vocab)).")
        try:
            self._encoder().load_state_dict(wgts)
        except RuntimeError as e:
            raise RuntimeError(f"The encoder {source.name} does not fit this model (different sizes or "
                               f"architecture config?): {e}") from e
        self.freeze()
        return self

    def load_pretrained(self, wgts_fname: PathOrStr, itos_fname: PathOrStr, strict: bool = True) -> RNNLearner:
        "Load language-model weights `wgts_fname` trained with the vocabulary `itos_fname`, remapped to this data's."
        old_itos = _load_itos(Path(itos_fname))
        old_stoi = {w: i for i, w in enumerate(old_itos)}
        wgts = safe_load(Path(wgts_fname), what='pretrained weights')
        if isinstance(wgts, dict) and 'model' in wgts:
            wgts = wgts['model']
        if '0.encoder.weight' not in wgts:
            raise ValueError(f"{wgts_fname} does not hold AWD-LSTM language-model weights (no '0.encoder.weight').")
        if wgts['0.encoder.weight'].size(0) != len(old_itos):
            raise ValueError(f"The weights {Path(wgts_fname).name} have {wgts['0.encoder.weight'].size(0)} "
                             f"embedding rows but the vocabulary {Path(itos_fname).name} has {len(old_itos)} tokens: "
                             f"they do not belong together.")
        wgts = convert_weights(wgts, old_stoi, self.data.vocab.itos)
        try:
            get_model(self.model).load_state_dict(wgts, strict=strict)
        except RuntimeError as e:
            raise RuntimeError(f"The pretrained weights {Path(wgts_fname).name} do not fit this model: build it with "
                               f"the config they were trained with (config=...): {e}") from e
        return self

    def get_preds(self, ds_type: DatasetType = DatasetType.Valid, activ: Callable | None = None,
                  with_loss: bool = False, n_batch: int | None = None, pbar: Any = None,
                  ordered: bool = True) -> list[Tensor]:
        "Predictions and targets on `ds_type`; with `ordered`, in the dataset's order (the sampler sorts by length)."
        self.model.reset()
        preds = super().get_preds(ds_type=ds_type, activ=activ, with_loss=with_loss, n_batch=n_batch, pbar=pbar)
        sampler = getattr(self.dl(ds_type).dl, 'sampler', None)
        if ordered and hasattr(sampler, 'key') and n_batch is None:
            order = torch.tensor(list(iter(sampler)), dtype=torch.long)
            inverse = torch.empty_like(order)
            inverse[order] = torch.arange(len(order))
            preds = [p[inverse] for p in preds]
        return preds


def decode_spec_tokens(tokens: Sequence[str]) -> list[str]:
    "The `tokens` with the case marks (xxup, xxmaj) and repetition marks (xxrep, xxwrep) applied and removed."
    res, rule, arg = [], None, None
    for t in tokens:
        if t in (TK_MAJ, TK_UP, TK_REP, TK_WREP):
            rule = t
        elif rule == TK_REP or rule == TK_WREP:
            if arg is None:
                arg = int(t) if t.isdigit() else 1
                continue
            res.append((t * arg) if rule == TK_REP else ' '.join([t] * arg))
            rule, arg = None, None
        elif rule == TK_MAJ:
            res.append(t[:1].upper() + t[1:])
            rule = None
        elif rule == TK_UP:
            res.append(t.upper())
            rule = None
        else:
            res.append(t)
    return res


class LanguageLearner(RNNLearner):
    "An RNNLearner for a language model: text generation with `predict` and `beam_search`."

    def _ids(self, text: str) -> Tensor:
        "The ids of `text` processed as the training texts were, as a batch of one (1, T)."
        x = self.data.train_ds.x if len(self.data.train_ds) else self.data.valid_ds.x
        ids = x.process_one(text)
        return torch.as_tensor(np.asarray(ids), dtype=torch.long, device=self.data.device)[None]

    def _next_probs(self, out: Tensor, no_unk: bool, temperature: float, min_p: float | None) -> Tensor:
        probs = F.softmax(out.float(), dim=-1)
        if temperature != 1.:
            probs = probs.pow(1 / temperature)
        if no_unk:
            probs[..., self.data.vocab.stoi[UNK]] = 0.
        if min_p is not None:
            if (probs >= min_p).sum() == 0:
                raise ValueError(f"No word has a probability of at least min_p={min_p}; lower it.")
            probs[probs < min_p] = 0.
        return probs

    def predict(self, text: str, n_words: int = 1, no_unk: bool = True, temperature: float = 1.,
                min_p: float | None = None, sep: str = ' ', decoder: Callable = decode_spec_tokens) -> str:
        "`text` followed by `n_words` words sampled from the model (softmax `temperature`; `no_unk` never picks xxunk)."
        model = get_model(self.model).eval()
        model.reset()
        xb = self._ids(text)
        new_idx = []
        with torch.no_grad():
            for _ in range(n_words):
                out = model(xb)[0][0, -1]  # scores of the next word, (vocab,)
                idx = int(torch.multinomial(self._next_probs(out, no_unk, temperature, min_p), 1))
                new_idx.append(idx)
                xb = xb.new_tensor([[idx]])  # the hidden state carries the context: feed only the new word
        return text + sep + sep.join(decoder(self.data.vocab.textify(new_idx, sep=None)))

    def beam_search(self, text: str, n_words: int, no_unk: bool = True, top_k: int = 10, beam_sz: int = 1000,
                    temperature: float = 1., sep: str = ' ', decoder: Callable = decode_spec_tokens) -> str:
        "`text` followed by `n_words` words from a beam search (`beam_sz` beams, `top_k` continuations each)."
        model = get_model(self.model).eval()
        model.reset()
        xb = self._ids(text)
        nodes = None
        scores = xb.new_zeros(1, dtype=torch.float)
        unk = self.data.vocab.stoi[UNK]
        with torch.no_grad():
            out = model(xb)[0][:, -1]  # (1, vocab)
            for k in range(n_words):
                logp = F.log_softmax(out.float(), dim=-1)
                if no_unk:
                    logp[:, unk] = -float('inf')
                values, indices = logp.topk(top_k, dim=-1)  # (n_beams, top_k)
                cand = (scores[:, None] - values).view(-1)  # accumulated negative log-likelihoods
                beam_idx = torch.arange(logp.size(0), device=xb.device)[:, None].expand(-1, top_k).reshape(-1)
                keep = cand.argsort()[:beam_sz]
                scores, beam_idx, new_tok = cand[keep], beam_idx[keep], indices.reshape(-1)[keep]
                nodes = new_tok[:, None] if nodes is None else torch.cat([nodes[beam_idx], new_tok[:, None]], 1)
                if k == n_words - 1:
                    break
                get_model(self.model)[0].select_hidden(beam_idx)
                out = model(new_tok[:, None])[0][:, -1]
        probs = F.softmax(-scores * temperature, dim=0) if temperature != 0 else None
        best = int(torch.multinomial(probs, 1)) if probs is not None else 0
        words = self.data.vocab.textify(nodes[best].tolist(), sep=None)
        return text + sep + sep.join(decoder(words))

    def show_results(self, ds_type: DatasetType = DatasetType.Valid, rows: int = 5, max_len: int = 20) -> Any:
        "A table of `rows` streams of a batch: the text, the true next words and the predicted ones."
        import pandas as pd
        xb, yb = self.data.one_batch(ds_type, detach=False)
        model = get_model(self.model).eval()
        model.reset()
        with torch.no_grad():
            preds = model(xb)[0].argmax(-1)
        vocab = self.data.vocab
        rows = min(rows, len(xb))
        return pd.DataFrame({'text': [vocab.textify(xb[i][:max_len].cpu()) for i in range(rows)],
                             'target': [vocab.textify(yb[i][:max_len].cpu()) for i in range(rows)],
                             'pred': [vocab.textify(preds[i][:max_len].cpu()) for i in range(rows)]})


def _scaled_config(config: dict, drop_mult: float) -> dict:
    config = dict(config)
    for k in config:
        if k.endswith('_p'):
            config[k] = config[k] * drop_mult
    return config


def get_language_model(arch: Callable, vocab_sz: int, config: dict | None = None, drop_mult: float = 1.) -> nn.Module:
    "An `arch` language model over `vocab_sz` words with `config` (default fastai's), dropouts times `drop_mult`."
    meta = _meta(arch)
    config = _scaled_config(ifnone(config, meta['config_lm']), drop_mult)
    tie_weights, output_p, out_bias = config.pop('tie_weights', True), config.pop('output_p'), config.pop('out_bias', True)
    encoder = arch(vocab_sz, **config)
    decoder = LinearDecoder(vocab_sz, config[meta['hid_name']], output_p, tie_encoder=encoder.encoder if tie_weights
                            else None, bias=out_bias)
    return SequentialRNN(encoder, decoder)


def language_model_learner(data: DataBunch, arch: Callable, config: dict | None = None, drop_mult: float = 1.,
                           pretrained: bool = True, pretrained_fnames: tuple[str, str] | None = None,
                           **learn_kwargs: Any) -> LanguageLearner:
    """A LanguageLearner for `data` with an `arch` model (`config`, dropouts times `drop_mult`).

    `pretrained_fnames=(weights, itos)`: start from that language model (names in `learn.path/learn.model_dir`,
    without or with suffix, or full paths), its vocabulary remapped to this data's. Else with `pretrained`, the
    WT103 weights from the model cache (see `pretrained_model_files`). Pretrained learners start frozen.
    """
    meta = _meta(arch)
    model = get_language_model(arch, len(data.vocab.itos), config=config, drop_mult=drop_mult)
    learn = LanguageLearner(data, model, split_func=meta['split_lm'], **learn_kwargs)
    if pretrained_fnames is not None:
        fnames = [_model_dir_file(learn, fn, ext) for fn, ext in zip(pretrained_fnames, ('pth', 'pkl'))]
    elif pretrained:
        if config is not None and config != meta['config_lm']:
            raise ValueError("pretrained=True loads the WT103 weights, which need the default config "
                             "(awd_lstm_lm_config); pass pretrained=False to train this config from scratch.")
        fnames = list(pretrained_model_files(arch))
    else:
        return learn
    learn.load_pretrained(*fnames)
    learn.freeze()
    return learn


def _model_dir_file(learn: Learner, fn: PathOrStr, ext: str) -> Path:
    "`fn` as a file: itself when it exists, else in `learn.path/learn.model_dir` (adding `.ext` when it has none)."
    p = Path(fn)
    if p.is_file():
        return p
    folder = learn.path / learn.model_dir
    for cand in (folder / p, folder / f'{p}.{ext}'):
        if cand.is_file():
            return cand
    saved = sorted(o.name for o in folder.glob('*')) if folder.is_dir() else []
    raise FileNotFoundError(f"No file {fn!r} (nor {folder / f'{p}.{ext}'}).{did_you_mean(p.name, saved)}")


# --- Classifier --------------------------------------------------------------------------------------------

def _masked_concat_pool(output: Tensor, mask: Tensor) -> Tensor:
    "[last, max, mean] over the time steps of `output` (B, T, C) that are not padding (`mask` (B, T) True = pad)."
    lengths = (~mask).sum(1, keepdim=True).clamp(min=1).to(output.dtype)
    avg_pool = output.masked_fill(mask[:, :, None], 0).sum(1) / lengths
    max_pool = output.masked_fill(mask[:, :, None], float('-inf')).max(1)[0]
    return torch.cat([output[:, -1], max_pool, avg_pool], 1)


class PoolingLinearClassifier(Module):
    "The classifier head: concat pooling of the encoder's last layer, then blocks (batch norm, dropout `drops`, linear) of sizes `layers`."

    def __init__(self, layers: Sequence[int], drops: Sequence[float]):
        mod_layers = []
        activs = [nn.ReLU(inplace=True)] * (len(layers) - 2) + [None]
        for n_in, n_out, p, actn in zip(layers[:-1], layers[1:], drops, activs):
            mod_layers += bn_drop_lin(n_in, n_out, p=p, actn=actn)
        self.layers = nn.Sequential(*mod_layers)

    def forward(self, input: tuple[list[Tensor], list[Tensor], Tensor]) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        raw_outputs, outputs, mask = input
        x = _masked_concat_pool(outputs[-1], mask)  # (B, 3 * emb_sz)
        return self.layers(x), raw_outputs, outputs


class MultiBatchEncoder(Module):
    """Run the encoder `module` over a long text `bptt` tokens at a time, carrying the hidden state.

    Truncation: only the outputs of the last `max_len` tokens (rounded up to whole `bptt` chunks) are returned
    for pooling, and gradients flow through those only; the earlier tokens just set the hidden state. Texts
    are padded at the start (`pad_first`), so the last tokens are the text's end.
    """

    def __init__(self, bptt: int, max_len: int, module: nn.Module, pad_idx: int = 1):
        self.max_len, self.bptt, self.module, self.pad_idx = max_len, bptt, module, pad_idx

    def concat(self, arrs: list[list[Tensor]]) -> list[Tensor]:
        "Concatenate the per-chunk outputs of each layer along time."
        return [torch.cat([chunk[layer] for chunk in arrs], dim=1) for layer in range(len(arrs[0]))]

    def reset(self) -> None:
        if hasattr(self.module, 'reset'):
            self.module.reset()

    def forward(self, input: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        bs, sl = input.size()
        self.reset()
        raw_outputs, outputs, masks = [], [], []
        for i in range(0, sl, self.bptt):
            chunk = input[:, i:min(i + self.bptt, sl)]
            r, o = self.module(chunk)
            if i > (sl - self.max_len):
                masks.append(chunk == self.pad_idx)
                raw_outputs.append(r)
                outputs.append(o)
        return self.concat(raw_outputs), self.concat(outputs), torch.cat(masks, dim=1)


def get_text_classifier(arch: Callable, vocab_sz: int, n_class: int, bptt: int = 70, max_len: int = 20 * 70,
                        config: dict | None = None, drop_mult: float = 1., lin_ftrs: Sequence[int] | None = None,
                        ps: Sequence[float] | None = None, pad_idx: int = 1) -> nn.Module:
    "An `arch` classifier of texts into `n_class` classes: a MultiBatchEncoder and a PoolingLinearClassifier head."
    meta = _meta(arch)
    config = _scaled_config(ifnone(config, meta['config_clas']), drop_mult)
    lin_ftrs = [50] if lin_ftrs is None else list(lin_ftrs)
    ps = [0.1] * len(lin_ftrs) if ps is None else list(ps)
    layers = [config[meta['hid_name']] * 3] + lin_ftrs + [n_class]
    ps = [config.pop('output_p')] + ps
    encoder = MultiBatchEncoder(bptt, max_len, arch(vocab_sz, **config), pad_idx=pad_idx)
    return SequentialRNN(encoder, PoolingLinearClassifier(layers, ps))


def text_classifier_learner(data: DataBunch, arch: Callable, bptt: int = 70, max_len: int = 70 * 20,
                            config: dict | None = None, pretrained: bool = True, drop_mult: float = 1.,
                            lin_ftrs: Sequence[int] | None = None, ps: Sequence[float] | None = None,
                            **learn_kwargs: Any) -> RNNLearner:
    """An RNNLearner classifying the texts of `data` with an `arch` encoder (see `get_text_classifier`).

    With `pretrained`, the encoder starts from the WT103 weights in the model cache. The usual ULMFiT recipe
    passes `pretrained=False` here and loads a fine-tuned encoder with `learn.load_encoder(name)`.
    """
    meta = _meta(arch)
    model = get_text_classifier(arch, len(data.vocab.itos), data.c, bptt=bptt, max_len=max_len, config=config,
                                drop_mult=drop_mult, lin_ftrs=lin_ftrs, ps=ps)
    learn = RNNLearner(data, model, split_func=meta['split_clas'], **learn_kwargs)
    if pretrained:
        if config is not None and config != meta['config_clas']:
            raise ValueError("pretrained=True loads the WT103 weights, which need the default config; pass "
                             "pretrained=False (and load_encoder a fine-tuned encoder of this config).")
        wgts_fname, itos_fname = pretrained_model_files(arch)
        old_itos = _load_itos(itos_fname)
        wgts = convert_weights(safe_load(wgts_fname, what='pretrained weights'), {w: i for i, w in enumerate(old_itos)},
                               data.vocab.itos)
        enc_wgts = {k[2:]: v for k, v in wgts.items() if k.startswith('0.')}
        learn._encoder().load_state_dict(enc_wgts)
    learn.freeze()
    return learn

