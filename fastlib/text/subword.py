"""Subword tokenization with SentencePiece: `SPProcessor` trains a model on the training texts and turns every text
into the ids of its pieces (fastai v1's SPProcessor). Needs the optional `sentencepiece` package.

The texts first go through the same rules as the word tokenizer (`pre_rules` on the string, `post_rules` on its
space-separated words, so case is marked with `xxmaj`/`xxup` and the pieces are learnt on lower case). The special
tokens (xxunk, xxpad, xxbos, ...) are pieces of their own with the ids 0 to 8, in `text_spec_tok`'s order, so the
models' padding index (1) is the same as with the word tokenizer.
"""
from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..core import PathOrStr, atomic_write, ifnone
from ..data_block import ItemList, PreProcessor
from .data import _add_bos_eos, _check_not_empty, _join_texts, _object_array, open_text
from .transform import Vocab, default_post_rules, default_pre_rules, text_spec_tok

__all__ = ['SPProcessor']

# Languages whose text is covered in full by SentencePiece's character coverage (the others: 99.98%).
full_char_coverage_langs = {'bg', 'cs', 'da', 'de', 'el', 'en', 'es', 'et', 'fi', 'fr', 'ga', 'hr', 'hu', 'it',
                            'lt', 'lv', 'mt', 'nl', 'pl', 'pt', 'ro', 'sk', 'sl', 'sv'}
_WORD_START = '\u2581'   # how SentencePiece marks a piece that starts a word


def _sentencepiece() -> Any:
    try:
        import sentencepiece
    except ImportError:
        raise ImportError("SPProcessor needs the sentencepiece package: pip install sentencepiece "
                          "(or use the default word tokenizer: leave processor unset).") from None
    return sentencepiece


class SPProcessor(PreProcessor):
    """Tokenize with SentencePiece and numericalize in one step; the vocabulary is the model's pieces.

    Trained on the training texts unless `sp_model` (a `.model` file) is given, with `vocab_sz` pieces (default:
    a quarter of the distinct words, a multiple of 8, at most `max_vocab_sz`) of `model_type` ('unigram' or 'bpe').
    The model is kept in the processor (exported with the data or the learner) and written to
    `path/tmp_dir/spm.model` and `spm.vocab`, where `SPProcessor.load` finds it (e.g. for the classifier's data).
    `n_cpus` threads encode the texts (default: all).
    """

    def __init__(self, ds: ItemList | None = None, pre_rules: Sequence[Callable] | None = None,
                 post_rules: Sequence[Callable] | None = None, vocab_sz: int | None = None,
                 max_vocab_sz: int = 30000, model_type: str = 'unigram', max_sentence_len: int = 20480,
                 lang: str = 'en', char_coverage: float | None = None, tmp_dir: PathOrStr = 'tmp',
                 mark_fields: bool = False, include_bos: bool = True, include_eos: bool = False,
                 sp_model: PathOrStr | None = None, sp_vocab: PathOrStr | None = None, n_cpus: int | None = None,
                 enc: str = 'utf8'):
        super().__init__(ds)
        if model_type not in ('unigram', 'bpe', 'char', 'word'):
            raise ValueError(f"model_type is one of SentencePiece's 'unigram', 'bpe', 'char', 'word', not "
                             f"{model_type!r}.")
        self.pre_rules = list(ifnone(pre_rules, default_pre_rules))
        self.post_rules = list(ifnone(post_rules, default_post_rules))
        self.vocab_sz, self.max_vocab_sz, self.model_type = vocab_sz, max_vocab_sz, model_type
        self.max_sentence_len, self.lang = max_sentence_len, lang
        self.char_coverage = ifnone(char_coverage, 0.99999 if lang in full_char_coverage_langs else 0.9998)
        self.tmp_dir, self.mark_fields, self.include_bos, self.include_eos = tmp_dir, mark_fields, include_bos, include_eos
        self.n_cpus, self.enc = ifnone(n_cpus, os.cpu_count() or 1), enc
        self.model_proto: bytes | None = None
        self.vocab: Vocab | None = None
        self._sp: Any = None
        if sp_model is not None:
            self._set_model(Path(sp_model).read_bytes())
        elif sp_vocab is not None:
            raise ValueError("sp_vocab needs its sp_model: pass both files SentencePiece wrote (name.model and "
                             "name.vocab), or neither to train a model on the training texts.")

    @classmethod
    def load(cls, path: PathOrStr, tmp_dir: PathOrStr = 'tmp', name: str = 'spm', **kwargs: Any) -> SPProcessor:
        "The processor of the model an earlier SPProcessor wrote to `path/tmp_dir/name.model`."
        model = Path(path) / tmp_dir / f'{name}.model'
        if not model.is_file():
            raise FileNotFoundError(f"No SentencePiece model at {model}: train one first (label a TextList made with "
                                    f"processor=SPProcessor()), or give the folder it was written to.")
        return cls(sp_model=model, tmp_dir=tmp_dir, **kwargs)

    def __getstate__(self) -> dict:
        return {k: v for k, v in super().__getstate__().items() if k != '_sp'}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._sp = None

    @property
    def sp(self) -> Any:
        "The SentencePiece model (rebuilt from `model_proto` after loading)."
        if self._sp is None:
            if self.model_proto is None:
                raise ValueError("This SPProcessor has no model yet: it is trained on the training texts when a "
                                 "TextList made with it is labelled, or loaded with SPProcessor.load(path).")
            self._sp = _sentencepiece().SentencePieceProcessor(model_proto=self.model_proto)
        return self._sp

    def _set_model(self, proto: bytes) -> None:
        self.model_proto, self._sp = proto, None
        self.vocab = Vocab([self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())])

    # --- the texts
    def _prepare(self, texts: Sequence[str]) -> list[str]:
        "The texts after the rules, as SentencePiece reads them."
        res = []
        for t in texts:
            for rule in self.pre_rules:
                t = rule(t)
            words = t.split()
            for rule in self.post_rules:
                words = rule(words)
            res.append(' '.join(words))
        return res

    def _texts(self, items: np.ndarray) -> list[str]:
        items = np.asarray([open_text(o, self.enc) if isinstance(o, Path) else o for o in items] if items.ndim == 1
                           else items, dtype=object)
        texts = _join_texts(items, self.mark_fields, False, False)
        _check_not_empty(texts)
        return self._prepare(_add_bos_eos(texts, self.include_bos, self.include_eos))

    def _train(self, texts: list[str], path: Path) -> None:
        "Train the model on `texts` and write it (and its vocabulary) to `path/tmp_dir`."
        spm = _sentencepiece()
        vocab_sz = self.vocab_sz or _default_vocab_sz(texts, self.max_vocab_sz)
        model = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_sz, model_type=self.model_type,
                character_coverage=self.char_coverage, max_sentence_length=self.max_sentence_len,
                user_defined_symbols=[_WORD_START + s for s in text_spec_tok], unk_id=len(text_spec_tok),
                pad_id=-1, bos_id=-1, eos_id=-1, hard_vocab_limit=False, num_threads=self.n_cpus,
                minloglevel=2)
        except RuntimeError as e:
            raise ValueError(f"SentencePiece could not train on these {len(texts)} texts with vocab_sz={vocab_sz} "
                             f"({e}). Pass a smaller vocab_sz, or give it more text.") from e
        self._set_model(model.getvalue())
        out = path / self.tmp_dir
        with atomic_write(out / 'spm.model') as f:
            f.write(self.model_proto)
        with atomic_write(out / 'spm.vocab', 'w') as f:
            f.write(''.join(f'{self.sp.id_to_piece(i)}\t{self.sp.get_score(i)}\n'
                            for i in range(self.sp.get_piece_size())))

    def _encode(self, texts: list[str]) -> list[np.ndarray]:
        ids = self.sp.encode(texts, out_type=int, num_threads=self.n_cpus)
        return [np.array(o, dtype=np.int64) for o in ids]

    def process_one(self, item: Any) -> np.ndarray:
        "The ids of the pieces of the text `item`."
        return self._encode(self._texts(np.asarray([item], dtype=object)))[0]

    def process(self, ds: ItemList) -> None:
        "Replace the texts of `ds` by the ids of their pieces (training the model on them first when there is none)."
        texts = self._texts(np.asarray(ds.items, dtype=object))
        if self.model_proto is None:
            self._train(texts, Path(ds.path))
        ds.vocab = self.vocab
        ds.items = _object_array(self._encode(texts))

    def decode(self, ids: Sequence[int]) -> str:
        "The text of the ids `ids` (pieces joined, word starts made spaces)."
        return self.sp.decode([int(i) for i in ids])


def _default_vocab_sz(texts: Sequence[str], max_vocab_sz: int) -> int:
    "A quarter of the distinct words, rounded up to a multiple of 8, at most `max_vocab_sz` and above the specials."
    n_words = len(Counter(w for t in texts for w in t.split()))
    res = -(-(n_words // 4) // 8) * 8
    return max(min(res, max_vocab_sz), len(text_spec_tok) + 8)
