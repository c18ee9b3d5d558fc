"""Text to tokens to ids: fastai v1's tokenization rules, a fast regex tokenizer, `Tokenizer` and `Vocab`.

Speed: the default pipeline does its work in C-level calls (`str.replace`, precompiled `re` patterns,
`re.findall`, `str.lower`, `str.split`) over whole texts rather than loops over characters or tokens in
Python. The default post rules (`replace_all_caps`, `deal_caps`) are applied by one fused pass over the
space-joined tokens when the text's cased letters are all ASCII; it gives exactly what applying the rules to the
token list gives (tests/test_text_transform.py checks that on real reviews and on generated texts), and texts
with non-ASCII cased letters (é, É, ß) take the plain path.
"""
from __future__ import annotations

import collections
import html
import re
import warnings
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ..core import PathOrStr, ifnone, num_cpus
from ..serialization import atomic_save, register_safe_globals, safe_load

__all__ = ['BaseTokenizer', 'RegexTokenizer', 'SpacyTokenizer', 'Tokenizer', 'Vocab', 'fix_html', 'replace_rep',
           'replace_wrep', 'spec_add_spaces', 'rm_useless_spaces', 'replace_all_caps', 'deal_caps',
           'default_pre_rules', 'default_post_rules', 'default_spec_tok', 'text_spec_tok',
           'UNK', 'PAD', 'BOS', 'EOS', 'FLD', 'TK_MAJ', 'TK_UP', 'TK_REP', 'TK_WREP']

UNK, PAD, BOS, EOS, FLD = 'xxunk', 'xxpad', 'xxbos', 'xxeos', 'xxfld'
TK_MAJ, TK_UP, TK_REP, TK_WREP = 'xxmaj', 'xxup', 'xxrep', 'xxwrep'
# Their order fixes their ids in every vocabulary: UNK is 0 and PAD is 1 (fastai v1's `pad_idx=1`).
text_spec_tok = [UNK, PAD, BOS, EOS, FLD, TK_MAJ, TK_UP, TK_REP, TK_WREP]
default_spec_tok = text_spec_tok


# --- Rules applied to the raw text (pre rules) -------------------------------------------------------------

# fastai v1's list of HTML/wiki debris found in IMDB and WikiText, and what each becomes.
_HTML_FIXES = (('#39;', "'"), ('amp;', '&'), ('#146;', "'"), ('nbsp;', ' '), ('#36;', '$'), ('\\n', '\n'),
               ('quot;', "'"), ('<br />', '\n'), ('\\"', '"'), ('<unk>', UNK), (' @.@ ', '.'), (' @-@ ', '-'),
               (' @,@ ', ','), ('\\', ' \\ '))
_re_multi_space = re.compile(r'  +')


def fix_html(x: str) -> str:
    "Replace the HTML and wiki debris of the text `x` (`<br />`, `&quot;`, ` @-@ `, ...) by what it stands for."
    if '&' in x:  # real entities first (fastai v1 did it last, which turned '&amp;' into '&&')
        x = html.unescape(x)
    for old, new in _HTML_FIXES:
        if old in x:
            x = x.replace(old, new)
    return _re_multi_space.sub(' ', x)


_re_rep = re.compile(r'(\S)(\1{3,})')


def _sub_rep(m: re.Match) -> str:
    c, cc = m.groups()
    return f' {TK_REP} {len(cc) + 1} {c} '


def replace_rep(t: str) -> str:
    "Replace a character repeated 4 times or more in `t` by `xxrep n c` (`cccc` -> ` xxrep 4 c `)."
    return _re_rep.sub(_sub_rep, t)


# A word followed by at least two more copies of itself (three or more in a row).
_re_wrep = re.compile(r'(?<!\w)(\w++)((?:\s+\1(?!\w))+)')


# A necessary condition for `_re_wrep` that `re` checks about twice as fast: with 3 copies or more, the second
# copy is a whole word after whitespace, followed by whitespace and the third copy.
_re_wrep_candidate = re.compile(r'\s(\w++)\s+\1(?!\w)')


def _sub_wrep(m: re.Match) -> str:
    word, copies = m.groups()
    n = len(copies.split()) + 1
    return f' {TK_WREP} {n} {word} ' if n >= 3 else m.group(0)


def replace_wrep(t: str) -> str:
    "Replace a word repeated 3 times or more in `t` by `xxwrep n w` (`w w w w` -> ` xxwrep 4 w `)."
    return _re_wrep.sub(_sub_wrep, t)


_re_spec = re.compile(r'([/#\n])')


def spec_add_spaces(t: str) -> str:
    "Put spaces around `/`, `#` and newlines in `t` so that they become tokens of their own."
    return _re_spec.sub(r' \1 ', t)


_re_spaces = re.compile(' {2,}')


def rm_useless_spaces(t: str) -> str:
    "Collapse runs of spaces in `t` into one."
    return _re_spaces.sub(' ', t)


# --- Rules applied to the token list (post rules) ----------------------------------------------------------

def replace_all_caps(x: Collection[str]) -> list[str]:
    "Put `xxup` before each all-caps token of `x` longer than one character and lower it (`HELLO` -> xxup hello)."
    res = []
    for t in x:
        if t.isupper() and len(t) > 1:
            res.append(TK_UP)
            res.append(t.lower())
        else:
            res.append(t)
    return res


def deal_caps(x: Collection[str]) -> list[str]:
    "Put `xxmaj` before each capitalized token of `x` (`Hello` -> xxmaj hello) and lower every token."
    res = []
    for t in x:
        if t == '':
            continue
        if t[0].isupper() and len(t) > 1 and t[1:].islower():
            res.append(TK_MAJ)
        res.append(t.lower())
    return res


default_pre_rules = [fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces]
default_post_rules = [replace_all_caps, deal_caps]

# The fused form of [replace_all_caps, deal_caps] on ASCII tokens joined by spaces, with a space in front (tokens
# hold no spaces). Each pattern matches the space before a token and looks ahead at the token, so the
# substitution inserts a literal marker: `re` does that in C, where a `\g<0>` template costs a Python call per
# match. The leading literal space also lets `re` skip quickly to candidate positions.
# All caps (`t.isupper() and len(t) > 1`): an uppercase letter, no lowercase one, two characters or more.
_re_all_caps = re.compile(r" (?=[A-Z][^ a-z]+(?![^ ])|[^ a-zA-Z][^ a-z]*[A-Z][^ a-z]*(?![^ ]))")
# Capitalized (`t[0].isupper() and t[1:].islower()`): uppercase first, then a lowercase letter and no uppercase.
_re_capitalized = re.compile(r' (?=[A-Z][^ A-Z]*[a-z][^ A-Z]*(?![^ ]))')


_re_non_ascii = re.compile(r'[^\x00-\x7f]')


def _fusable(t: str) -> bool:
    """Whether the fused case rules are exact on the text `t`: its letters with a case are all ASCII (non-ASCII
    characters without case, such as curly quotes, dashes or CJK, count as 'neither upper nor lower' in both)."""
    if t.isascii():
        return True
    return not any(c.isupper() or c.islower() or c.istitle() for c in set(_re_non_ascii.findall(t)))


def _fused_caps_joined(tokens: list[str]) -> str:
    "[replace_all_caps, deal_caps] applied to ASCII `tokens`, as the result's tokens joined by spaces."
    s = ' ' + ' '.join(tokens)
    s = _re_all_caps.sub(f' {TK_UP} ', s)
    s = _re_capitalized.sub(f' {TK_MAJ} ', s)
    return s[1:].lower()


def _fused_caps(tokens: list[str]) -> list[str]:
    "[replace_all_caps, deal_caps] applied to ASCII `tokens` in a few C-level passes."
    return _fused_caps_joined(tokens).split(' ') if tokens else []


def _rep_candidates(texts: list[str]) -> list[int]:
    "Indices of the `texts` holding a character 4 times in a row (the only ones `replace_rep` can change)."
    if not texts:
        return []
    import numpy as np
    codes = np.frombuffer('\x00'.join(texts).encode('utf-32-le'), dtype=np.uint32)  # one code point per entry
    same = codes[1:] == codes[:-1]
    run4 = np.flatnonzero(same[:-2] & same[1:-1] & same[2:])  # start of 4 equal code points
    if len(run4) == 0:
        return []
    starts = np.cumsum([0] + [len(t) + 1 for t in texts[:-1]])
    return np.unique(np.searchsorted(starts, run4, side='right') - 1).tolist()


# --- Base tokenizers -------------------------------------------------------------------------------------

@register_safe_globals
class BaseTokenizer:
    "The simplest tokenizer: splits on spaces; subclasses give a real `tokenizer` for language `lang`."

    def __init__(self, lang: str):
        self.lang = lang

    def tokenizer(self, t: str) -> list[str]:
        "The tokens of the text `t`."
        return t.split(' ')

    def add_special_cases(self, toks: Collection[str]) -> None:
        "Make sure each of `toks` stays one token (nothing to do for a space splitter)."


# Tokens, in order of preference at each position: n't ("do|n't", "ca|n't"), the clitics 's 're 've 'll 'd 'm,
# numbers with inner separators (3.5, 1,000), words (letters, digits, underscore), runs of dots or dashes,
# a newline, any other symbol.
# n't is first cut off its word by `_re_nt` (a pattern with a literal start, which `re` searches fast).
_TOKEN_PATTERN = r"(?i:n't)\b|'(?i:s|re|ve|ll|d|m)\b|\d+(?:[.,:]\d+)+|\w+|\.{2,}|-{2,}|\n|[^\w\s]"
_re_nt = re.compile(r"(?i)n't\b")


@register_safe_globals
class RegexTokenizer(BaseTokenizer):
    """fastlib's default tokenizer: one precompiled regular expression (`re.findall`), about spaCy's English
    rules for words, contractions (`don't` -> `do n't`), numbers and punctuation, tens of times faster."""

    pattern = re.compile(_TOKEN_PATTERN)

    def __init__(self, lang: str = 'en'):
        super().__init__(lang)

    def tokenizer(self, t: str) -> list[str]:
        "The tokens of the text `t`."
        return self.pattern.findall(_re_nt.sub(r' \g<0>', t))

    def add_special_cases(self, toks: Collection[str]) -> None:
        "Check that each of `toks` stays one token (the special tokens are plain words, so they do)."
        for tok in toks:
            if self.tokenizer(tok) != [tok]:
                raise ValueError(f"The special token {tok!r} would be split by RegexTokenizer; use letters, digits "
                                 f"and underscores only.")


class SpacyTokenizer(BaseTokenizer):
    "A spaCy tokenizer for language `lang` (needs `pip install spacy`; fastlib does not depend on it)."

    def __init__(self, lang: str = 'en'):
        super().__init__(lang)
        try:
            import spacy
        except ImportError as e:
            raise ImportError("SpacyTokenizer needs spaCy: `pip install spacy`, or use fastlib's default "
                              "RegexTokenizer (Tokenizer() with no tok_func), which needs nothing.") from e
        self.tok = spacy.blank(lang).tokenizer

    def tokenizer(self, t: str) -> list[str]:
        "The tokens of the text `t`."
        return [w.text for w in self.tok(t)]

    def add_special_cases(self, toks: Collection[str]) -> None:
        "Make spaCy keep each of `toks` as one token."
        from spacy.symbols import ORTH
        for w in toks:
            self.tok.add_special_case(w, [{ORTH: w}])


# --- Tokenizer -------------------------------------------------------------------------------------------

@register_safe_globals
class Tokenizer:
    """Turn texts into lists of tokens: `pre_rules` on the text, then `tok_func(lang)`, then `post_rules`.

    `n_cpus` processes share `process_all` (default: all of this machine's cores). Defaults are fastai v1's
    rules and special tokens, with the fast `RegexTokenizer` in place of spaCy.
    """

    def __init__(self, tok_func: Callable = RegexTokenizer, lang: str = 'en',
                 pre_rules: Sequence[Callable] | None = None, post_rules: Sequence[Callable] | None = None,
                 special_cases: Collection[str] | None = None, n_cpus: int | None = None):
        self.tok_func, self.lang = tok_func, lang
        self.pre_rules = list(ifnone(pre_rules, default_pre_rules))
        self.post_rules = list(ifnone(post_rules, default_post_rules))
        self.special_cases = list(ifnone(special_cases, text_spec_tok))
        self.n_cpus = ifnone(n_cpus, num_cpus())

    def __repr__(self) -> str:
        res = f'Tokenizer {getattr(self.tok_func, "__name__", self.tok_func)} in {self.lang} with the following rules:\n'
        for rule in self.pre_rules:
            res += f' - {getattr(rule, "__name__", rule)}\n'
        for rule in self.post_rules:
            res += f' - {getattr(rule, "__name__", rule)}\n'
        return res

    def _fused(self) -> bool:
        "Whether the post rules are fastai's defaults, which `_fused_caps` applies in one go."
        return list(self.post_rules) == [replace_all_caps, deal_caps]

    def _all_defaults(self, tok: BaseTokenizer) -> bool:
        "Whether this is the default pipeline, which `_process_defaults` runs faster."
        return (type(tok) is RegexTokenizer and self._fused()
                and list(self.pre_rules) == [fix_html, replace_rep, replace_wrep, spec_add_spaces, rm_useless_spaces])

    def process_text(self, t: str, tok: BaseTokenizer) -> list[str]:
        "The tokens of the text `t` with `tok` and the rules."
        for rule in self.pre_rules:
            t = rule(t)
        toks = tok.tokenizer(t)
        if self._fused() and _fusable(t):
            return _fused_caps(toks)
        for rule in self.post_rules:
            toks = rule(toks)
        return toks

    def _process_all_1(self, texts: Sequence[str]) -> list[list[str]]:
        "Tokenize `texts` in this process."
        return _split_joined(self._process_all_joined(texts))

    def _process_all_joined(self, texts: Sequence[str]) -> list[str] | list[list[str]]:
        """Tokenize `texts` in this process: for the default pipeline, each text's tokens joined by spaces (they
        hold none; one string per text is far cheaper to send back from a worker process than a list of
        tokens), else the lists of tokens."""
        tok = self.tok_func(self.lang)
        if self.special_cases:
            tok.add_special_cases(self.special_cases)
        if self._all_defaults(tok):
            return _process_defaults(texts, tok)
        fused = self._fused()
        pre_rules, post_rules = self.pre_rules, self.post_rules
        res = []
        for t in texts:
            _check_text(t)
            for rule in pre_rules:
                t = rule(t)
            toks = tok.tokenizer(t)
            if fused and _fusable(t):
                toks = _fused_caps(toks)
            else:
                for rule in post_rules:
                    toks = rule(toks)
            res.append(toks)
        return res

    def process_all(self, texts: Sequence[str]) -> list[list[str]]:
        "The tokens of each of `texts`, computed by `n_cpus` processes when the texts are many."
        texts = list(texts)
        n = min(self.n_cpus, max(1, len(texts) // 1000))  # a process pool pays off from a few thousand texts
        if n <= 1:
            return self._process_all_1(texts)
        size = (len(texts) + n - 1) // n
        parts = [texts[i:i + size] for i in range(0, len(texts), size)]
        # n - 1 worker processes take the later parts while this process does the first one.
        with ProcessPoolExecutor(len(parts) - 1, mp_context=_mp_context()) as ex:
            futures = [ex.submit(self._process_all_joined, part) for part in parts[1:]]
            res = self._process_all_1(parts[0])
            for f in futures:
                res += _split_joined(f.result())
        return res


def _split_joined(res: list[str] | list[list[str]]) -> list[list[str]]:
    "The lists of tokens of `res`, a result of `Tokenizer._process_all_joined`."
    return [t.split(' ') if t else [] for t in res] if res and isinstance(res[0], str) else res


def _process_defaults(texts: list[str], tok: RegexTokenizer) -> list[str]:
    """The default rules and RegexTokenizer on `texts`, with the same result as applying them one by one, as
    each text's tokens joined by spaces.

    Faster because `replace_rep` runs only on the texts that can contain a repetition (found for the whole
    batch at once by numpy), `replace_wrep` only on those `_re_wrep_candidate` finds, `spec_add_spaces` and
    `rm_useless_spaces` are skipped (RegexTokenizer already makes `/`, `#` and newlines tokens of their own and
    ignores spaces), and the case rules are fused.
    """
    for t in texts:
        _check_text(t)
    texts = [fix_html(t) for t in texts]
    for i in _rep_candidates(texts):
        texts[i] = replace_rep(texts[i])
    res = []
    for t in texts:
        if _re_wrep_candidate.search(t):
            t = replace_wrep(t)
        toks = tok.tokenizer(t)
        if not toks:
            res.append('')
        elif _fusable(t):
            res.append(_fused_caps_joined(toks))
        else:
            res.append(' '.join(deal_caps(replace_all_caps(toks))))
    return res


def _mp_context() -> Any:
    "fork where it exists (no re-import of torch in every worker), else the platform's default."
    import multiprocessing as mp
    return mp.get_context('fork') if 'fork' in mp.get_all_start_methods() else None


def _check_text(t: Any) -> None:
    if not isinstance(t, str):
        kind = 'missing (NaN)' if isinstance(t, float) else type(t).__name__
        raise TypeError(f"Tokenizer got a {kind} value instead of a text: {t!r:.60}. Texts must be str; fill or drop "
                        f"missing texts first (e.g. df = df.dropna(subset=[text_col])).")


# --- Vocab -----------------------------------------------------------------------------------------------

@register_safe_globals
class Vocab:
    "The mapping between tokens and ids: `itos` (id -> token) and `stoi` (token -> id, unknown tokens -> 0)."

    def __init__(self, itos: Sequence[str]):
        self.itos = list(itos)
        self._build_stoi()

    def _build_stoi(self) -> None:
        self.stoi = collections.defaultdict(int, {w: i for i, w in enumerate(self.itos)})

    def __getstate__(self) -> dict:
        return {'itos': self.itos}  # stoi is rebuilt: files hold plain data only

    def __setstate__(self, state: dict) -> None:
        self.itos = list(state['itos'])
        self._build_stoi()

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f'Vocab({len(self.itos)} tokens: {self.itos[:10]}...)'

    def numericalize(self, t: Collection[str]) -> list[int]:
        "The ids of the tokens `t` (0, the id of xxunk, for tokens not in the vocabulary)."
        get = self.stoi.get
        return [get(w, 0) for w in t]

    def textify(self, nums: Iterable[int], sep: str | None = ' ') -> str | list[str]:
        "The tokens of the ids `nums`, joined by `sep` (a list when `sep` is None)."
        itos = self.itos
        toks = [itos[int(i)] for i in nums]
        return sep.join(toks) if sep is not None else toks

    def save(self, path: PathOrStr) -> None:
        "Write `itos` to `path` (atomically)."
        atomic_save(list(self.itos), path)

    @classmethod
    def create(cls, tokens: Iterable[Collection[str]], max_vocab: int = 60000, min_freq: int = 2) -> Vocab:
        "A vocabulary of the `max_vocab` most common of `tokens` (lists of tokens) seen at least `min_freq` times."
        if max_vocab <= len(text_spec_tok):
            raise ValueError(f"max_vocab={max_vocab} leaves no room for words: the vocabulary starts with the "
                             f"{len(text_spec_tok)} special tokens ({', '.join(text_spec_tok)}). Use e.g. "
                             f"max_vocab=60000.")
        freq = collections.Counter()
        for toks in tokens:
            freq.update(toks)
        itos = [w for w, c in freq.most_common(max_vocab) if c >= min_freq]
        if freq and not set(itos) - set(text_spec_tok):
            warnings.warn(f"No word of the texts occurs min_freq={min_freq} times, so the vocabulary holds only the "
                          f"special tokens and every word becomes {UNK}. Lower min_freq (e.g. min_freq=1).")
        for w in reversed(text_spec_tok):  # the special tokens first, in their fixed order
            if w in itos:
                itos.remove(w)
            itos.insert(0, w)
        itos = itos[:max_vocab]
        # fastai v1 pads the vocabulary to a multiple of 8 (faster matrix products on GPUs).
        if len(itos) % 8 != 0:
            itos += ['xxfake'] * (8 - len(itos) % 8)
        return cls(itos)

    @classmethod
    def load(cls, path: PathOrStr) -> Vocab:
        "The vocabulary saved at `path` by `save` (or a pickled list of tokens written by fastai v1)."
        path = Path(path)
        with open(path, 'rb') as f:
            head = f.read(2)
        if head == b'PK':  # a torch.save archive (Vocab.save)
            itos = safe_load(path, what='vocabulary')
        else:
            # fastai v1's itos files are plain pickles of a list of str: read them with an unpickler that
            # refuses any class, so no code from the file can run.
            itos = _plain_unpickle(path)
        if not isinstance(itos, list) or not all(isinstance(w, str) for w in itos):
            raise ValueError(f"{path} does not hold a list of tokens (a Vocab's itos).")
        return cls(itos)


def _plain_unpickle(path: Path) -> Any:
    "Unpickle a file of plain data (lists, strings, numbers) only."
    import pickle

    class _Plain(pickle.Unpickler):
        def find_class(self, module, name):
            raise pickle.UnpicklingError(f"{path} holds the object {module}.{name}; only plain data is accepted.")

    with open(path, 'rb') as f:
        return _Plain(f).load()
