"""AWD-LSTM (Merity et al., 2017): an LSTM language model regularised by several kinds of dropout.

Weight dropout on the hidden-to-hidden matrices (DropConnect), dropout of whole words in the embedding,
and "variational" dropout masks shared over the time steps of a sequence (`RNNDropout`). The model keeps its
hidden state between calls (`reset()` clears it), so consecutive batches of a language-model loader continue
the same text streams.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ...torch_core import Module, one_param, to_detach

__all__ = ['dropout_mask', 'RNNDropout', 'WeightDropout', 'EmbeddingDropout', 'AWD_LSTM', 'LinearDecoder',
           'SequentialRNN', 'awd_lstm_lm_split', 'awd_lstm_clas_split', 'awd_lstm_lm_config',
           'awd_lstm_clas_config']

# fastai v1's hyper-parameters for the WT103 model (emb_sz 400, n_hid 1152, 3 layers) and its dropouts.
awd_lstm_lm_config = dict(emb_sz=400, n_hid=1152, n_layers=3, pad_token=1, qrnn=False, bidir=False, output_p=0.1,
                          hidden_p=0.15, input_p=0.25, embed_p=0.02, weight_p=0.2, tie_weights=True, out_bias=True)
awd_lstm_clas_config = dict(emb_sz=400, n_hid=1152, n_layers=3, pad_token=1, qrnn=False, bidir=False, output_p=0.4,
                            hidden_p=0.3, input_p=0.4, embed_p=0.05, weight_p=0.5)


def dropout_mask(x: Tensor, sz: Sequence[int], p: float) -> Tensor:
    "A dropout mask of shape `sz` like `x`: zeros with probability `p`, else 1/(1-`p`)."
    return x.new_empty(*sz).bernoulli_(1 - p).div_(1 - p)


class RNNDropout(Module):
    "Dropout of probability `p` with one mask per sequence, the same at every time step (input (B, T, C))."

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.:
            return x
        return x * dropout_mask(x.detach(), (x.size(0), 1, *x.shape[2:]), self.p)


class WeightDropout(Module):
    """Wrap the recurrent `module` (an nn.LSTM) and apply dropout of probability `weight_p` to its weights
    `layer_names` at each forward pass in training (DropConnect on the hidden-to-hidden matrix by default).

    The trainable weights live here as `<name>_raw`; the wrapped module gets a dropped-out copy per call.
    """

    def __init__(self, module: nn.Module, weight_p: float, layer_names: Sequence[str] = ('weight_hh_l0',)):
        super().__init__()
        self.module, self.weight_p, self.layer_names = module, weight_p, list(layer_names)
        for name in self.layer_names:
            w = getattr(self.module, name)
            del self.module._parameters[name]
            self.register_parameter(f'{name}_raw', nn.Parameter(w.detach().clone()))
            setattr(self.module, name, w.detach().clone())  # nn.LSTM's __setattr__ updates its flat weight list

    def _set_weights(self) -> None:
        for name in self.layer_names:
            raw = getattr(self, f'{name}_raw')
            # Never hand the module the Parameter itself: nn.Module would register it a second time.
            w = F.dropout(raw, p=self.weight_p, training=True) if self.training and self.weight_p else raw * 1.
            setattr(self.module, name, w)

    def forward(self, *args: Any) -> Any:
        self._set_weights()
        with warnings.catch_warnings():
            # cuDNN warns that the weights are not one contiguous chunk: they cannot be, they change every call.
            warnings.simplefilter('ignore', category=UserWarning)
            return self.module(*args)

    def reset(self) -> None:
        "Give the wrapped module the raw (not dropped-out) weights."
        for name in self.layer_names:
            setattr(self.module, name, getattr(self, f'{name}_raw').detach().clone())
        if hasattr(self.module, 'reset'):
            self.module.reset()


class EmbeddingDropout(Module):
    "Look-ups in the embedding `emb` with whole words (rows) dropped with probability `embed_p` in training."

    def __init__(self, emb: nn.Embedding, embed_p: float):
        super().__init__()
        self.emb, self.embed_p = emb, embed_p

    def forward(self, words: Tensor, scale: float | None = None) -> Tensor:
        w = self.emb.weight
        if self.training and self.embed_p != 0:
            w = w * dropout_mask(w.detach(), (w.size(0), 1), self.embed_p)
        if scale:
            w = w * scale
        pad = self.emb.padding_idx if self.emb.padding_idx is not None else -1
        return F.embedding(words, w, pad, self.emb.max_norm, self.emb.norm_type, self.emb.scale_grad_by_freq,
                           self.emb.sparse)


class AWD_LSTM(Module):
    """The AWD-LSTM encoder: embedding (`vocab_sz` x `emb_sz`), `n_layers` LSTMs of `n_hid` units (the last
    one back to `emb_sz`, so a decoder can tie its weights to the embedding), and the dropouts.

    forward returns `(raw_outputs, outputs)`: each layer's output before and after its hidden dropout,
    (B, T, n_hid) (last layer: emb_sz). The hidden state carries over to the next call with the same batch size.
    """
    initrange = 0.1

    def __init__(self, vocab_sz: int, emb_sz: int, n_hid: int, n_layers: int, pad_token: int = 1,
                 hidden_p: float = 0.2, input_p: float = 0.6, embed_p: float = 0.1, weight_p: float = 0.5,
                 qrnn: bool = False, bidir: bool = False):
        super().__init__()
        if qrnn:
            raise NotImplementedError("QRNN layers are not available in fastlib; use qrnn=False (LSTM layers).")
        self.bs, self.qrnn, self.emb_sz, self.n_hid, self.n_layers = 1, qrnn, emb_sz, n_hid, n_layers
        self.n_dir = 2 if bidir else 1
        self.encoder = nn.Embedding(vocab_sz, emb_sz, padding_idx=pad_token)
        self.encoder_dp = EmbeddingDropout(self.encoder, embed_p)
        rnns = []
        for layer in range(n_layers):
            n_in = emb_sz if layer == 0 else n_hid
            n_out = (n_hid if layer != n_layers - 1 else emb_sz) // self.n_dir
            rnns.append(WeightDropout(nn.LSTM(n_in, n_out, 1, batch_first=True, bidirectional=bidir), weight_p))
        self.rnns = nn.ModuleList(rnns)
        self.encoder.weight.data.uniform_(-self.initrange, self.initrange)
        self.input_dp = RNNDropout(input_p)
        self.hidden_dps = nn.ModuleList([RNNDropout(hidden_p) for _ in range(n_layers)])
        self.hidden: list[tuple[Tensor, Tensor]] | None = None

    def forward(self, input: Tensor, from_embeddings: bool = False) -> tuple[list[Tensor], list[Tensor]]:
        "`input`: token ids (B, T), or embeddings (B, T, emb_sz) when `from_embeddings`."
        bs = input.size(0)
        if bs != self.bs or self.hidden is None:
            self.bs = bs
            self.reset()
        x = input if from_embeddings else self.encoder_dp(input)
        x = self.input_dp(x)
        new_hidden, raw_outputs, outputs = [], [], []
        for layer, (rnn, hid_dp) in enumerate(zip(self.rnns, self.hidden_dps)):
            x, h = rnn(x, self.hidden[layer])
            new_hidden.append(h)
            raw_outputs.append(x)
            if layer != self.n_layers - 1:
                x = hid_dp(x)
            outputs.append(x)
        # Truncated back-propagation through time: the next batch starts from these states, without their history.
        self.hidden = to_detach(new_hidden, cpu=False)
        return raw_outputs, outputs

    def _one_hidden(self, layer: int) -> Tensor:
        nh = (self.n_hid if layer != self.n_layers - 1 else self.emb_sz) // self.n_dir
        return one_param(self).new_zeros(self.n_dir, self.bs, nh)

    def select_hidden(self, idxs: Tensor) -> None:
        "Keep the hidden state of the batch rows `idxs` only (beam search)."
        self.hidden = [(h[:, idxs], c[:, idxs]) for h, c in self.hidden]
        self.bs = len(idxs)

    def reset(self) -> None:
        "Clear the hidden state (zeros for the current batch size)."
        self.hidden = [(self._one_hidden(layer), self._one_hidden(layer)) for layer in range(self.n_layers)]


class LinearDecoder(Module):
    "The language-model head: dropout `output_p`, then a linear layer from `n_hid` to the `n_out` words."
    initrange = 0.1

    def __init__(self, n_out: int, n_hid: int, output_p: float, tie_encoder: nn.Module | None = None,
                 bias: bool = True):
        super().__init__()
        self.decoder = nn.Linear(n_hid, n_out, bias=bias)
        self.decoder.weight.data.uniform_(-self.initrange, self.initrange)
        self.output_dp = RNNDropout(output_p)
        if bias:
            self.decoder.bias.data.zero_()
        if tie_encoder is not None:
            self.decoder.weight = tie_encoder.weight

    def forward(self, input: tuple[list[Tensor], list[Tensor]]) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        "`(decoded (B, T, n_out), raw_outputs, outputs)` from the encoder's `(raw_outputs, outputs)`."
        raw_outputs, outputs = input
        output = self.output_dp(outputs[-1])
        return self.decoder(output), raw_outputs, outputs


class SequentialRNN(nn.Sequential):
    "An nn.Sequential whose `reset` resets the modules that have one (the encoder's hidden state)."

    def reset(self) -> None:
        "Reset the hidden state of the children."
        for c in self.children():
            if hasattr(c, 'reset'):
                c.reset()


def awd_lstm_lm_split(model: nn.Module) -> list[nn.Module]:
    "Layer groups of an AWD-LSTM language model: one per LSTM (with its dropout), then embedding + decoder."
    enc = model[0]
    groups = [nn.Sequential(rnn, dp) for rnn, dp in zip(enc.rnns, enc.hidden_dps)]
    return groups + [nn.Sequential(enc.encoder, enc.encoder_dp, model[1])]


def awd_lstm_clas_split(model: nn.Module) -> list[nn.Module]:
    "Layer groups of an AWD-LSTM classifier: embedding, one per LSTM, then the classifier head."
    enc = model[0].module
    groups = [nn.Sequential(enc.encoder, enc.encoder_dp)]
    groups += [nn.Sequential(rnn, dp) for rnn, dp in zip(enc.rnns, enc.hidden_dps)]
    return groups + [nn.Sequential(model[1])]
