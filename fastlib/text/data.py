"""Text data: TextList and its processors (tokenize, numericalize), the language-model and classifier loaders,
and the DataBunch factories `TextLMDataBunch` / `TextClasDataBunch` `.from_df/from_csv/from_folder/...`.

Language-model batches: each epoch the token ids of all texts (in a new random order for training) are
concatenated into one tensor, cut into `bs` contiguous streams (a (bs, n) matrix), and batch i is the slice
`[:, i*bptt:(i+1)*bptt]` with the same slice shifted by one token as target: views of one tensor, no loop
over tokens or rows in Python.

Classification batches: texts of similar length go together (`SortishSampler` in training, `SortSampler`
for validation) and are padded with `pad_idx` to the longest one, at the start by default (`pad_first`), so
that the last hidden state of the encoder is the text's own end.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from ..basic_data import DataBunch, DatasetType
from ..callback import Callback
from ..core import PathOrStr, ifnone, is_listy
from ..data_block import (EmptyLabelList, ItemBase, ItemList, ItemLists, LabelList, LabelLists, PreProcessor,
                          csv_file)
from ..layers import CrossEntropyFlat
from ..serialization import register_safe_globals
from ..torch_core import data_collate, to_data
from .transform import (BOS, EOS, FLD, Tokenizer, Vocab, deal_caps, fix_html, replace_all_caps,
                        replace_rep, replace_wrep, rm_useless_spaces, spec_add_spaces, RegexTokenizer, BaseTokenizer)

__all__ = ['Text', 'TextList', 'LMTextList', 'LMLabelList', 'TextItemLists', 'TokenizeProcessor',
           'NumericalizeProcessor', 'OpenFileProcessor', 'LanguageModelPreLoader', 'SortSampler', 'SortishSampler',
           'pad_collate', 'TextDataBunch', 'TextLMDataBunch', 'TextClasDataBunch', 'open_text', 'text_extensions']

text_extensions = {'.txt'}

# The tokenizer's rules and classes are stored by reference in saved data and exported learners.
register_safe_globals(fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces, replace_all_caps,
                      deal_caps, RegexTokenizer, BaseTokenizer)


def open_text(fn: PathOrStr, enc: str = 'utf-8') -> str:
    "The text of the file `fn`, decoded with `enc` (a clear error names the file when the bytes do not decode)."
    data = Path(fn).read_bytes()
    try:
        return data.decode(enc)
    except UnicodeDecodeError as e:
        raise UnicodeDecodeError(e.encoding, e.object, e.start, e.end,
                                 f"{e.reason}: {fn} is not valid {enc} (byte {data[e.start:e.start + 1]!r} at "
                                 f"position {e.start}). Re-encode the file as UTF-8, or read the folder with "
                                 f"processor=[OpenFileProcessor(enc='latin-1'), TokenizeProcessor(), "
                                 f"NumericalizeProcessor()]") from None


class Text(ItemBase):
    "A text as token ids `ids` (what the model sees) and as a string `text` (what a person reads)."

    def __init__(self, ids: Any, text: str):
        self.data, self.text = ids, text

    def __str__(self) -> str:
        return str(self.text)

    def show(self, ax: Any = None, **kwargs: Any) -> None:
        print(self.text)


# --- Processors ------------------------------------------------------------------------------------------

def _join_texts(texts: np.ndarray, mark_fields: bool, include_bos: bool, include_eos: bool) -> list[str]:
    "One string per item: several text columns joined (with `xxfld i` marks when `mark_fields`), BOS/EOS added."
    if texts.ndim == 1:
        cols = [texts]
    else:
        cols = [texts[:, i] for i in range(texts.shape[1])]
    res = None
    for i, col in enumerate(cols):
        col = [_as_text(o) for o in col]
        part = [f'{FLD} {i + 1} {o}' for o in col] if mark_fields else col
        res = part if res is None else [f'{a} {b}' for a, b in zip(res, part)]
    return _add_bos_eos(res, include_bos, include_eos)


def _add_bos_eos(texts: list[str], include_bos: bool, include_eos: bool) -> list[str]:
    if include_bos:
        texts = [f'{BOS} {t}' for t in texts]
    if include_eos:
        texts = [f'{t} {EOS}' for t in texts]
    return texts


def _as_text(o: Any) -> str:
    if isinstance(o, str):
        return o
    if o is None or (isinstance(o, float) and np.isnan(o)):
        raise TypeError("A text is missing (None or NaN). Drop or fill the rows without text first, e.g. "
                        "df = df.dropna(subset=[text_col]).")
    return str(o)


def _check_not_empty(texts: Sequence[str], what: str = 'texts') -> None:
    "Refuse empty (or blank) texts, naming the first few positions."
    empty = [i for i, t in enumerate(texts) if not t.strip()]
    if empty:
        raise ValueError(f"{len(empty)} of the {what} are empty or blank (positions {empty[:5]}). A model cannot "
                         f"learn from or predict on an empty text: drop them first, e.g. "
                         f"df = df[df[text_col].str.strip() != ''].")


class TokenizeProcessor(PreProcessor):
    "Tokenize the texts with `tokenizer` (`chunksize` texts at a time), marking fields and adding BOS/EOS tokens."

    def __init__(self, ds: ItemList | None = None, tokenizer: Tokenizer | None = None, chunksize: int = 10000,
                 mark_fields: bool = False, include_bos: bool = True, include_eos: bool = False):
        super().__init__(ds)
        self.tokenizer, self.chunksize, self.mark_fields = ifnone(tokenizer, Tokenizer()), chunksize, mark_fields
        self.include_bos, self.include_eos = include_bos, include_eos

    def process_one(self, item: Any) -> list[str]:
        "The tokens of the text `item`."
        if isinstance(item, Path):
            item = open_text(item)
        texts = _join_texts(np.asarray([item], dtype=object) if isinstance(item, str) else np.asarray([item]),
                            self.mark_fields, False, False)
        _check_not_empty(texts, 'texts given')
        return self.tokenizer._process_all_1(_add_bos_eos(texts, self.include_bos, self.include_eos))[0]

    def process(self, ds: ItemList) -> None:
        "Replace the texts of `ds` by their tokens."
        raw = _join_texts(np.asarray(ds.items), self.mark_fields, False, False)
        _check_not_empty(raw)
        texts = _add_bos_eos(raw, self.include_bos, self.include_eos)
        tokens = []
        for i in range(0, len(texts), self.chunksize):
            tokens += self.tokenizer.process_all(texts[i:i + self.chunksize])
        ds.items = _object_array(tokens)


class NumericalizeProcessor(PreProcessor):
    "Turn tokens into ids with `vocab` (built from the training tokens when None: `max_vocab`, `min_freq`)."

    def __init__(self, ds: ItemList | None = None, vocab: Vocab | None = None, max_vocab: int = 60000,
                 min_freq: int = 3):
        super().__init__(ds)
        self.vocab = ifnone(vocab, getattr(ds, 'vocab', None))
        self.max_vocab, self.min_freq = max_vocab, min_freq

    def process_one(self, item: Sequence[str]) -> np.ndarray:
        "The ids of the tokens `item`."
        return np.array(self.vocab.numericalize(item), dtype=np.int64)

    def process(self, ds: ItemList) -> None:
        "Replace the tokens of `ds` by their ids (building the vocabulary first when there is none)."
        if self.vocab is None:
            self.vocab = Vocab.create(ds.items, self.max_vocab, self.min_freq)
        ds.vocab = self.vocab
        numericalize = self.vocab.numericalize
        ds.items = _object_array([np.array(numericalize(t), dtype=np.int64) for t in ds.items])


class OpenFileProcessor(PreProcessor):
    "Read the text of each file name (with encoding `enc`)."

    def __init__(self, ds: ItemList | None = None, enc: str = 'utf-8'):
        super().__init__(ds)
        self.enc = enc

    def process_one(self, item: Any) -> Any:
        "The text of the file `item` (other items unchanged)."
        return open_text(item, self.enc) if isinstance(item, Path) else item

    def process(self, ds: ItemList) -> None:
        ds.items = _object_array([self.process_one(o) for o in ds.items])


def _object_array(items: Sequence) -> np.ndarray:
    "A 1-d object array of `items` (numpy would make a 2-d array of lists of equal lengths)."
    res = np.empty(len(items), dtype=object)
    for i, o in enumerate(items):
        res[i] = o
    return res


def _get_processor(tokenizer: Tokenizer | None = None, vocab: Vocab | None = None, chunksize: int = 10000,
                   max_vocab: int = 60000, min_freq: int = 2, mark_fields: bool = False, include_bos: bool = True,
                   include_eos: bool = False) -> list[PreProcessor]:
    return [TokenizeProcessor(tokenizer=tokenizer, chunksize=chunksize, mark_fields=mark_fields,
                              include_bos=include_bos, include_eos=include_eos),
            NumericalizeProcessor(vocab=vocab, max_vocab=max_vocab, min_freq=min_freq)]


# --- Item lists ------------------------------------------------------------------------------------------

class TextItemLists(ItemLists):
    "The split of a TextList: adds `label_for_lm` to the usual labelling methods."

    def label_for_lm(self, **kwargs: Any) -> LabelLists:
        "Label for language modelling: the target is the text itself, shifted by one token."
        return self._label('label_for_lm', **kwargs)


class TextList(ItemList):
    "Texts (strings, or file names with `from_folder`), tokenized and numericalized when labelled."
    _processor = [TokenizeProcessor, NumericalizeProcessor]
    _is_lm = False

    def __init__(self, items: Any, vocab: Vocab | None = None, pad_idx: int = 1, sep: str = ' ', **kwargs: Any):
        if vocab is not None and not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be a Vocab (e.g. data_lm.vocab, or Vocab(itos) for a list of tokens), not a "
                            f"{type(vocab).__name__}.")
        super().__init__(items, **kwargs)
        self.vocab, self.pad_idx, self.sep = vocab, pad_idx, sep
        self.copy_new += ['vocab', 'pad_idx', 'sep']

    @property
    def _split(self) -> type:
        return TextItemLists

    def get(self, i: int) -> Any:
        "The i-th text: a Text once numericalized, else the raw item."
        o = self.items[i]
        if self.vocab is None or not isinstance(o, np.ndarray):
            return o
        return Text(o, self.vocab.textify(o, self.sep))

    def label_for_lm(self, **kwargs: Any) -> LabelList:
        "Label for language modelling (targets are the texts themselves, shifted by one token)."
        self.__class__ = LMTextList
        kwargs.pop('label_cls', None)
        return self.label_const(0, label_cls=LMLabelList, **kwargs)

    def reconstruct(self, t: Tensor, x: Any = None) -> Text:
        "The Text of the ids `t`, without the padding around it."
        t = torch.as_tensor(t)
        keep = (t != self.pad_idx).nonzero()
        if len(keep) == 0:
            return Text(t[:0], '')
        t = t[int(keep.min()):int(keep.max()) + 1]
        return Text(t, self.vocab.textify(t, self.sep))

    @classmethod
    def from_folder(cls, path: PathOrStr = '.', extensions: Collection[str] = text_extensions,
                    vocab: Vocab | None = None, processor: Any = None, **kwargs: Any) -> TextList:
        "The text files of `path` (recursively): read, tokenized and numericalized (with `vocab` when given)."
        processor = ifnone(processor, [OpenFileProcessor(), TokenizeProcessor(), NumericalizeProcessor(vocab=vocab)])
        return super().from_folder(path=path, extensions=extensions, processor=processor, vocab=vocab, **kwargs)

    def show_xys(self, xs: Sequence, ys: Sequence, max_len: int | None = 70) -> pd.DataFrame:
        "A table of the texts `xs` (first `max_len` tokens) and their targets `ys`."
        return pd.DataFrame({'text': [_truncate(x, max_len, self.sep) for x in xs], 'target': [str(y) for y in ys]})

    def show_xyzs(self, xs: Sequence, ys: Sequence, zs: Sequence, max_len: int | None = 70) -> pd.DataFrame:
        "A table of the texts `xs` (first `max_len` tokens), their targets `ys` and the predictions `zs`."
        return pd.DataFrame({'text': [_truncate(x, max_len, self.sep) for x in xs], 'target': [str(y) for y in ys],
                             'prediction': [str(z) for z in zs]})


def _truncate(x: Any, max_len: int | None, sep: str) -> str:
    toks = str(x).split(sep)
    return sep.join(toks if max_len is None else toks[:max_len])


class LMTextList(TextList):
    "A TextList labelled for language modelling (makes a TextLMDataBunch)."
    _is_lm = True


class LMLabelList(EmptyLabelList):
    "The (empty) labels of a language model's texts: the loss is cross-entropy on the next token."

    def __init__(self, items: Any, **kwargs: Any):
        super().__init__(items, **kwargs)
        self.loss_func = CrossEntropyFlat()


# --- Language-model loading ------------------------------------------------------------------------------

@register_safe_globals
class LanguageModelPreLoader(Callback):
    """The batches of a language model from the labelled texts `dataset`: `bs` contiguous streams of tokens,
    `bptt` tokens per batch; a new random order of the texts each epoch when `shuffle`; `backwards` reads the
    streams from the end. Indexing gives whole batches `(x, y)` of shape (bs, bptt) (use `batch_size=None`).
    """

    def __init__(self, dataset: LabelList, lengths: Sequence[int] | None = None, bs: int = 32, bptt: int = 70,
                 backwards: bool = False, shuffle: bool = False):
        if isinstance(bptt, bool) or not isinstance(bptt, (int, np.integer)) or bptt < 1:
            raise ValueError(f"bptt is the number of tokens in each row of a batch: a positive int (e.g. bptt=70), "
                             f"not {bptt!r}.")
        self.dataset, self.bs, self.bptt, self.shuffle, self.backwards = dataset, bs, bptt, shuffle, backwards
        self.lengths = np.array([len(o) for o in dataset.x.items] if lengths is None else lengths, dtype=np.int64)
        self.n_tokens = int(self.lengths.sum())
        self.stream: Tensor | None = None
        self.seed: int | None = None

    def __getstate__(self) -> dict:
        return {k: (None if k == 'stream' else v) for k, v in self.__dict__.items()}

    @property
    def x(self) -> ItemList:
        return self.dataset.x

    @property
    def y(self) -> ItemList:
        return self.dataset.y

    @property
    def vocab(self) -> Vocab:
        return self.dataset.x.vocab

    @property
    def n_cols(self) -> int:
        "Tokens per stream."
        return self.n_tokens // self.bs

    def __len__(self) -> int:
        # Each batch needs one token more than its length (the target of the last one).
        return max(0, -(-(self.n_cols - 1) // self.bptt))

    def allocate_buffers(self) -> None:
        "Build the (bs, n_cols) matrix of token streams, in a new random order of the texts when shuffling."
        items = self.dataset.x.items
        order = np.random.permutation(len(items)) if self.shuffle else np.arange(len(items))
        ids = np.concatenate([items[i] for i in order]) if len(items) else np.zeros(0, dtype=np.int64)
        if self.backwards:
            ids = ids[::-1]
        n = self.n_cols * self.bs
        self.stream = torch.from_numpy(np.ascontiguousarray(ids[:n], dtype=np.int64)).view(self.bs, self.n_cols)

    def on_epoch_begin(self, **kwargs: Any) -> None:
        "Reshuffle the texts for the new epoch."
        self.allocate_buffers()

    def on_epoch_end(self, **kwargs: Any) -> None:
        pass

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if i < 0 or i >= len(self):
            raise IndexError(f"batch {i} out of range ({len(self)} batches)")
        if self.stream is None or (i == 0 and self.shuffle):
            self.allocate_buffers()  # a new epoch starts at batch 0, whoever reads it
        start = i * self.bptt
        end = min(start + self.bptt, self.n_cols - 1)
        return self.stream[:, start:end], self.stream[:, start + 1:end + 1]

    def empty_copy(self) -> LabelList:
        "The labelled dataset with no items (what `export` keeps)."
        return self.dataset.empty_copy()

    def __repr__(self) -> str:
        return (f'LanguageModelPreLoader({len(self.dataset)} texts, {self.n_tokens} tokens, bs={self.bs}, '
                f'bptt={self.bptt}, {len(self)} batches)')


def _lm_collate(b: Any) -> Any:
    "The loader of a LanguageModelPreLoader gets whole batches: nothing to collate."
    return b


# --- Classification loading -----------------------------------------------------------------------------

class SortSampler(Sampler):
    "The indices of `data_source` by decreasing `key(i)` (validation: batches of similar lengths, little padding)."

    def __init__(self, data_source: Sequence, key: Callable[[int], int]):
        self.data_source, self.key = data_source, key

    def __len__(self) -> int:
        return len(self.data_source)

    def __iter__(self) -> Iterator[int]:
        keys = np.array([self.key(i) for i in range(len(self.data_source))])
        return iter(np.argsort(-keys, kind='stable').tolist())


class SortishSampler(Sampler):
    """Random indices of `data_source`, roughly sorted by `key(i)` inside chunks of 50 batches of `bs`: batches of
    similar lengths, in random order, with the longest batch first (a memory error shows up at once)."""

    def __init__(self, data_source: Sequence, key: Callable[[int], int], bs: int):
        self.data_source, self.key, self.bs = data_source, key, bs

    def __len__(self) -> int:
        return len(self.data_source)

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        keys = np.array([self.key(i) for i in range(n)])
        idxs = np.random.permutation(n)
        sz = self.bs * 50
        chunks = [idxs[i:i + sz] for i in range(0, n, sz)]
        idxs = np.concatenate([c[np.argsort(-keys[c], kind='stable')] for c in chunks]) if n else idxs
        batches = [idxs[i:i + self.bs] for i in range(0, n, self.bs)]
        if not batches:
            return iter([])
        longest = int(np.argmax([keys[b[0]] for b in batches]))
        batches[0], batches[longest] = batches[longest], batches[0]
        rest = [batches[i] for i in np.random.permutation(len(batches) - 1) + 1] if len(batches) > 1 else []
        return iter(np.concatenate([batches[0]] + rest).tolist())


def pad_collate(samples: Sequence[tuple[Any, Any]], pad_idx: int = 1, pad_first: bool = True,
                backwards: bool = False) -> tuple[Tensor, Any]:
    "A batch of texts padded with `pad_idx` to the longest (at the start when `pad_first`), reversed if `backwards`."
    xs = [np.asarray(to_data(s[0])) for s in samples]
    max_len = max(len(x) for x in xs)
    res = torch.full((len(xs), max_len), pad_idx, dtype=torch.long)
    for i, x in enumerate(xs):
        x = torch.as_tensor(x, dtype=torch.long)
        if pad_first:
            res[i, max_len - len(x):] = x
        else:
            res[i, :len(x)] = x
    if backwards:
        res = res.flip(1)
    ys = data_collate([s[1] for s in samples])
    return res, ys


register_safe_globals(pad_collate)


# --- DataBunches -----------------------------------------------------------------------------------------

class TextDataBunch(DataBunch):
    "A DataBunch of texts; the factories `from_df`, `from_csv`, `from_folder`, `from_tokens`, `from_ids`."

    @property
    def vocab(self) -> Vocab:
        "The vocabulary of the texts."
        ds = self.train_ds if len(self.train_ds) or not hasattr(self.valid_ds, 'x') else self.valid_ds
        return ds.x.vocab

    @classmethod
    def _label(cls, src: TextItemLists, label_cols: Any = 0, classes: Sequence | None = None,
               label_delim: str | None = None, lbls: tuple | None = None) -> LabelLists:
        if issubclass(cls, TextLMDataBunch):
            return src.label_for_lm()
        if lbls is not None:
            return src.label_from_lists(*lbls, classes=classes)
        kwargs = {'classes': classes}
        if label_delim is not None:
            kwargs['label_delim'] = label_delim
        return src.label_from_df(cols=label_cols, **kwargs)

    @classmethod
    def from_ids(cls, path: PathOrStr, vocab: Vocab, train_ids: Sequence, valid_ids: Sequence,
                 test_ids: Sequence | None = None, train_lbls: Sequence | None = None,
                 valid_lbls: Sequence | None = None, classes: Sequence | None = None, processor: Any = None,
                 **kwargs: Any) -> TextDataBunch:
        "A DataBunch of texts already numericalized with `vocab` (and their labels, for a classifier)."
        def _list(ids):
            ids = [np.asarray(o, dtype=np.int64) for o in ids]
            outside = [(i, o[(o < 0) | (o >= len(vocab.itos))]) for i, o in enumerate(ids)]
            outside = [(i, o) for i, o in outside if len(o)]
            if outside:   # else the embedding fails with an index error on the device, far from here
                i, o = outside[0]
                raise ValueError(f"{len(outside)} of the texts hold ids outside the vocabulary (0..{len(vocab.itos) - 1}"
                                 f"), e.g. text {i} holds {int(o[0])}. Pass the Vocab the ids were made with.")
            return TextList(_object_array(ids), vocab=vocab, path=path,
                            processor=ifnone(processor, []))
        return cls._from_lists(path, _list, train_ids, valid_ids, test_ids, train_lbls, valid_lbls, classes, **kwargs)

    @classmethod
    def load(cls, path: PathOrStr, cache_name: PathOrStr = 'tmp', processor: Any = None, **kwargs: Any) -> Any:
        "Not supported: fastai v1's old cache format. Save with `data.save(file)` and reload with `load_data`."
        raise NotImplementedError("TextDataBunch.load read fastai v1's old cache folders. Use data.save('name.pkl') "
                                  "and load_data(path, 'name.pkl') instead.")

    @classmethod
    def from_tokens(cls, path: PathOrStr, trn_tok: Sequence[Sequence[str]], trn_lbls: Sequence | None,
                    val_tok: Sequence[Sequence[str]], val_lbls: Sequence | None, vocab: Vocab | None = None,
                    tst_tok: Sequence | None = None, classes: Sequence | None = None, max_vocab: int = 60000,
                    min_freq: int = 3, **kwargs: Any) -> TextDataBunch:
        "A DataBunch of texts already tokenized (lists of tokens) and their labels (a vocabulary is built if None)."
        processor = NumericalizeProcessor(vocab=vocab, max_vocab=max_vocab, min_freq=min_freq)

        def _list(toks):
            return TextList(_object_array([list(t) for t in toks]), vocab=vocab, path=path, processor=[processor])
        return cls._from_lists(path, _list, trn_tok, val_tok, tst_tok, trn_lbls, val_lbls, classes, **kwargs)

    @classmethod
    def _from_lists(cls, path: PathOrStr, make_list: Callable, train: Sequence, valid: Sequence,
                    test: Sequence | None, train_lbls: Sequence | None, valid_lbls: Sequence | None,
                    classes: Sequence | None, **kwargs: Any) -> TextDataBunch:
        "The DataBunch of the TextLists `make_list` builds from `train`, `valid` (and `test`), labelled when given."
        if len(train) == 0:
            raise ValueError("There are no training texts (the training list is empty): pass at least one text.")
        src = TextItemLists(path, make_list(train), make_list(valid))
        lbls = None if train_lbls is None else (train_lbls, valid_lbls)
        src = cls._label(src, classes=classes, lbls=lbls)
        if test is not None:
            src.add_test(make_list(test))
        return src.databunch(**kwargs)

    @classmethod
    def from_df(cls, path: PathOrStr, train_df: pd.DataFrame, valid_df: pd.DataFrame,
                test_df: pd.DataFrame | None = None, tokenizer: Tokenizer | None = None, vocab: Vocab | None = None,
                classes: Sequence | None = None, text_cols: Any = 1, label_cols: Any = 0,
                label_delim: str | None = None, chunksize: int = 10000, max_vocab: int = 60000, min_freq: int = 2,
                mark_fields: bool = False, include_bos: bool = True, include_eos: bool = False,
                **kwargs: Any) -> TextDataBunch:
        "A DataBunch of the texts in columns `text_cols` of the DataFrames (labels in `label_cols`)."
        processor = _get_processor(tokenizer=tokenizer, vocab=vocab, chunksize=chunksize, max_vocab=max_vocab,
                                   min_freq=min_freq, mark_fields=mark_fields, include_bos=include_bos,
                                   include_eos=include_eos)
        if classes is None and is_listy(label_cols) and len(label_cols) > 1:
            classes = label_cols
        src = TextItemLists(path, TextList.from_df(train_df, path, cols=text_cols, processor=processor, vocab=vocab),
                            TextList.from_df(valid_df, path, cols=text_cols, processor=processor, vocab=vocab))
        src = cls._label(src, label_cols=label_cols, classes=classes, label_delim=label_delim)
        if test_df is not None:
            src.add_test(TextList.from_df(test_df, path, cols=text_cols))
        return src.databunch(**kwargs)

    @classmethod
    def from_csv(cls, path: PathOrStr, csv_name: str, valid_pct: float = 0.2, test: str | None = None,
                 tokenizer: Tokenizer | None = None, vocab: Vocab | None = None, classes: Sequence | None = None,
                 delimiter: str | None = None, header: Any = 'infer', text_cols: Any = 1, label_cols: Any = 0,
                 label_delim: str | None = None, chunksize: int = 10000, max_vocab: int = 60000, min_freq: int = 2,
                 mark_fields: bool = False, include_bos: bool = True, include_eos: bool = False,
                 **kwargs: Any) -> TextDataBunch:
        "A DataBunch from the CSV file `path/csv_name`: a random `valid_pct` of the rows validate."
        df = _read_csv(Path(path) / csv_name, header=header, delimiter=delimiter)
        df = df.iloc[np.random.permutation(len(df))]
        cut = int(valid_pct * len(df)) + 1
        train_df, valid_df = df[cut:], df[:cut]
        test_df = None if test is None else _read_csv(Path(path) / test, header=header, delimiter=delimiter)
        return cls.from_df(path, train_df, valid_df, test_df, tokenizer=tokenizer, vocab=vocab, classes=classes,
                           text_cols=text_cols, label_cols=label_cols, label_delim=label_delim, chunksize=chunksize,
                           max_vocab=max_vocab, min_freq=min_freq, mark_fields=mark_fields,
                           include_bos=include_bos, include_eos=include_eos, **kwargs)

    @classmethod
    def from_folder(cls, path: PathOrStr, train: str = 'train', valid: str = 'valid', test: str | None = None,
                    classes: Sequence | None = None, tokenizer: Tokenizer | None = None, vocab: Vocab | None = None,
                    chunksize: int = 10000, max_vocab: int = 60000, min_freq: int = 2, mark_fields: bool = False,
                    include_bos: bool = True, include_eos: bool = False, **kwargs: Any) -> TextDataBunch:
        "A DataBunch of the text files in `path/train` and `path/valid` (labelled by their folder for a classifier)."
        processor = [OpenFileProcessor()] + _get_processor(tokenizer=tokenizer, vocab=vocab, chunksize=chunksize,
                                                           max_vocab=max_vocab, min_freq=min_freq,
                                                           mark_fields=mark_fields, include_bos=include_bos,
                                                           include_eos=include_eos)
        src = TextList.from_folder(path, processor=processor, vocab=vocab).split_by_folder(train=train, valid=valid)
        if issubclass(cls, TextLMDataBunch):
            src = src.label_for_lm()
        else:
            src = src.label_from_folder(classes=classes)
        if test is not None:
            src.add_test_folder(test)
        return src.databunch(**kwargs)


class TextLMDataBunch(TextDataBunch):
    "The DataBunch of a language model: batches of `bs` contiguous token streams, `bptt` tokens long."

    @classmethod
    def create(cls, train_ds: Dataset, valid_ds: Dataset, test_ds: Dataset | None = None, path: PathOrStr = '.',
               no_check: bool = False, bs: int = 64, val_bs: int | None = None, num_workers: int = 0,
               device: torch.device | None = None, collate_fn: Callable = data_collate,
               dl_tfms: Collection[Callable] | None = None, bptt: int = 70, backwards: bool = False,
               **dl_kwargs: Any) -> TextLMDataBunch:
        """Language-model loaders over the labelled texts; batches are slices of one tensor, so they are read in
        this process (`num_workers` is ignored: workers would only add start-up and copying costs)."""
        val_bs = ifnone(val_bs, bs)
        loaders = []
        for i, ds in enumerate((train_ds, valid_ds, test_ds)):
            if ds is None:
                loaders.append(None)
                continue
            ds = ds.dataset if isinstance(ds, LanguageModelPreLoader) else ds  # (from `load_data`)
            pre = LanguageModelPreLoader(ds, bs=bs if i == 0 else val_bs, bptt=bptt, backwards=backwards,
                                         shuffle=(i == 0))
            loaders.append(DataLoader(pre, batch_size=None, shuffle=False, num_workers=0))
        return cls(loaders[0], loaders[1], test_dl=loaders[2], path=path, device=device, dl_tfms=dl_tfms,
                   collate_fn=_lm_collate, no_check=no_check)

    @property
    def bptt(self) -> int:
        return self.train_ds.bptt

    def sanity_check(self) -> None:
        "Check that the training texts hold enough tokens for at least one batch."
        ds = self.train_ds
        if len(ds) == 0:
            raise ValueError(f"The training texts hold {ds.n_tokens} tokens: too few for even one batch of {ds.bs} "
                             f"streams (each needs at least 2 tokens). Use a smaller bs or more text.")
        if len(self.valid_ds.dataset) and len(self.valid_ds) == 0:
            raise ValueError(f"The validation texts hold {self.valid_ds.n_tokens} tokens: too few for one batch of "
                             f"{self.valid_ds.bs} streams. Pass a smaller val_bs, or validate on more text.")

    def show_batch(self, rows: int = 5, ds_type: DatasetType = DatasetType.Train, reverse: bool = False,
                   max_len: int | None = None, **kwargs: Any) -> pd.DataFrame:
        "The first `rows` streams of a batch as text (idx 0 is the first stream)."
        x, _ = self.one_batch(ds_type)
        vocab = self.vocab
        rows = min(rows, len(x))
        texts = [vocab.textify(x[i][:max_len] if max_len else x[i]) for i in range(rows)]
        return pd.DataFrame({'idx': list(range(rows)), 'text': texts})

    @classmethod
    def from_empty(cls, path: PathOrStr, ds: Dataset, extra: dict, **kwargs: Any) -> TextLMDataBunch:
        "An empty language-model DataBunch for an exported learner (prediction processes texts itself)."
        for lst in (ds.x, ds.y):
            lst.path = Path(path)
        loaders = [DataLoader(ds, 1, shuffle=False, num_workers=0) for _ in range(2)]
        return cls(*loaders, path=path, no_check=True, collate_fn=data_collate,
                   **{k: v for k, v in kwargs.items() if k in ('device', 'dl_tfms')})

    @property
    def vocab(self) -> Vocab:
        "The vocabulary of the texts."
        ds = self.train_ds
        return ds.vocab if isinstance(ds, LanguageModelPreLoader) else ds.x.vocab


class TextClasDataBunch(TextDataBunch):
    "The DataBunch of a text classifier: batches of texts of similar lengths, padded with `pad_idx`."

    @classmethod
    def create(cls, train_ds: Dataset, valid_ds: Dataset, test_ds: Dataset | None = None, path: PathOrStr = '.',
               bs: int = 32, val_bs: int | None = None, pad_idx: int = 1, pad_first: bool = True,
               device: torch.device | None = None, no_check: bool = False, backwards: bool = False,
               dl_tfms: Collection[Callable] | None = None, **dl_kwargs: Any) -> TextClasDataBunch:
        """Classifier loaders: `SortishSampler` for training, `SortSampler` for validation and test, `pad_collate`.

        Items are arrays in memory, so batches are built in this process (`num_workers` is ignored).
        """
        val_bs = ifnone(val_bs, bs)
        for k in ('num_workers', 'collate_fn'):
            dl_kwargs.pop(k, None)
        collate_fn = functools.partial(pad_collate, pad_idx=pad_idx, pad_first=pad_first, backwards=backwards)
        train_lengths = _lengths(train_ds)
        train_sampler = SortishSampler(train_ds.x, key=train_lengths.__getitem__, bs=bs)
        train_dl = DataLoader(train_ds, batch_size=bs, sampler=train_sampler, drop_last=len(train_ds) > bs,
                              num_workers=0, **dl_kwargs)
        others = []
        for ds in (valid_ds, test_ds):
            if ds is None:
                others.append(None)
                continue
            sampler = SortSampler(ds.x, key=_lengths(ds).__getitem__)
            others.append(DataLoader(ds, batch_size=val_bs, sampler=sampler, num_workers=0, **dl_kwargs))
        return cls(train_dl, others[0], test_dl=others[1], path=path, device=device, dl_tfms=dl_tfms,
                   collate_fn=collate_fn, no_check=no_check)

    def sanity_check(self) -> None:
        "Check that a batch of training and of validation texts can be built and that both sets share classes."
        for name, dl in (('training', self.train_dl), ('validation', self.valid_dl)):
            ds = dl.dataset
            if len(ds) == 0:
                continue
            items = [ds[i] for i in range(min(len(ds), dl.batch_size or 1))]
            try:
                self.collate_fn(items)
            except Exception as e:
                raise RuntimeError(f"The first texts of the {name} set cannot be put in one batch "
                                   f"({type(e).__name__}: {e}).") from e
        tc, vc = getattr(self.train_ds.y, 'classes', None), getattr(self.valid_ds.y, 'classes', None)
        if tc is not None and vc is not None and list(tc) != list(vc):
            raise ValueError(f"The training and validation sets have different classes: {list(tc)[:10]} vs "
                             f"{list(vc)[:10]}.")

    @classmethod
    def from_empty(cls, path: PathOrStr, ds: Dataset, extra: dict, **kwargs: Any) -> TextClasDataBunch:
        "An empty classifier DataBunch for an exported learner: `predict` pads like the original."
        for lst in (ds.x, ds.y):
            lst.path = Path(path)
        kwargs.setdefault('collate_fn', pad_collate)
        return cls._from_empty_ds(path, ds, **kwargs)


def _read_csv(fn: Path, header: Any, delimiter: str | None) -> pd.DataFrame:
    "pd.read_csv (`delimiter=None` means a comma: pandas would otherwise guess it with its slow engine)."
    return pd.read_csv(csv_file(fn), header=header, delimiter=ifnone(delimiter, ','))


def _lengths(ds: LabelList) -> np.ndarray:
    return np.array([len(o) for o in ds.x.items], dtype=np.int64)


TextList._bunch = TextClasDataBunch
LMTextList._bunch = TextLMDataBunch
