"""Tokenizer rules, the fast default pipeline against the rules applied one by one, and Vocab."""
import gzip
import pickle

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastlib.text.transform import (BOS, PAD, TK_MAJ, TK_REP, TK_UP, TK_WREP, UNK, BaseTokenizer, RegexTokenizer,
                                    SpacyTokenizer, Tokenizer, Vocab, deal_caps, default_post_rules,
                                    default_pre_rules, fix_html, replace_all_caps, replace_rep, replace_wrep,
                                    rm_useless_spaces, spec_add_spaces, text_spec_tok)


def rule_by_rule(texts, tok=None):
    "The oracle: fastai v1's definition, each rule applied in turn to one text."
    tok = tok or RegexTokenizer()
    res = []
    for t in texts:
        for rule in default_pre_rules:
            t = rule(t)
        toks = tok.tokenizer(t)
        for rule in default_post_rules:
            toks = rule(toks)
        res.append(toks)
    return res


EDGE_CASES = [
    "HELLO World 'S 1ST A1 I a McDonald Ab1 x_Y ABc DON'T don't can't N'T ... -- ---- !!!! very very very.",
    "w\nw\nw (ha ha ha) É É Émile CAFÉ café", "", "   ", "A", "AB", "Ab", "aB", "#hash/slash", "x<br /><br />y",
    "&amp; &quot;quoted&quot; &lt;tag&gt; #39; nbsp; @-@ word @.@ 5", "The the the THE", "zzzzzz ZZZZ 1111 2.50",
    "go go go! 1.5 5 5.3 isn isn isn't 's s s (so so so) no\nno\nno",
    # non-ASCII characters without case take the fused path, those with case the plain one
    "\u4e2dA \u4e2dAB \u2014Hello \u2019S \u201cWOW\u201d A\u2019B \u00bdA 3\u00bd",
    "na\u00efve NA\u00cfVE Na\u00efve Stra\u00dfe STRASSE \u210bello \u01c5x",
]


def test_pre_rules_against_hand_computed_results():
    assert fix_html('a<br />b &amp; c #39;s') == "a\nb & c 's"
    assert fix_html('x @-@ y @.@ z @,@ w') == 'x-y.z,w'
    assert replace_rep('coooool') == f'c {TK_REP} 5 o l'
    assert replace_rep('cool') == 'cool'  # fewer than 4: unchanged
    assert replace_wrep('this is very very very good').split() == ['this', 'is', TK_WREP, '3', 'very', 'good']
    assert replace_wrep('very very good') == 'very very good'  # 2 copies: unchanged
    assert replace_wrep('the theory the') == 'the theory the'
    assert spec_add_spaces('a/b#c\nd') == 'a / b # c \n d'
    assert rm_useless_spaces('a   b  c d') == 'a b c d'


def test_post_rules_against_hand_computed_results():
    assert replace_all_caps(['HELLO', 'I', 'Ab', 'A1']) == [TK_UP, 'hello', 'I', 'Ab', TK_UP, 'a1']
    assert deal_caps(['Hello', 'I', 'McDonald', 'ok', '']) == [TK_MAJ, 'hello', 'i', 'mcdonald', 'ok']


def test_default_tokenizer_on_a_sentence():
    tok = Tokenizer(n_cpus=1)
    res = tok.process_all(["I DON'T like it!!!! It's a/b <br />Great."])[0]
    assert res == ['i', TK_UP, 'do', TK_UP, "n't", 'like', 'it', TK_REP, '4', '!', TK_MAJ, 'it', "'s", 'a', '/', 'b',
                   '\n', TK_MAJ, 'great', '.']


def test_fast_pipeline_equals_rules_one_by_one_on_edge_cases():
    tok = Tokenizer(n_cpus=1)
    assert tok.process_all(EDGE_CASES) == rule_by_rule(EDGE_CASES)
    # process_text (one text) takes the plain path: same answer
    assert [tok.process_text(t, RegexTokenizer()) for t in EDGE_CASES] == rule_by_rule(EDGE_CASES)


def test_fast_pipeline_equals_rules_one_by_one_on_real_reviews(shared_data):
    texts = pd.read_csv(shared_data / 'imdb_full.csv.gz', nrows=600)['text'].tolist()
    fast = Tokenizer(n_cpus=1).process_all(texts)
    assert fast == rule_by_rule(texts)
    assert sum(len(t) for t in fast) > 100_000


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="aAbZz'_9.-!\n \u00e9\u00c9\u4e2d\u2019\u00bd\u01c5", max_size=12), max_size=4))
def test_fast_pipeline_equals_rules_one_by_one_on_generated_texts(texts):
    assert Tokenizer(n_cpus=1).process_all(texts) == rule_by_rule(texts)


def test_parallel_equals_serial():
    texts = [f'Text number {i} SAYS hello!!!! {"so " * (i % 5)}good' for i in range(2500)]
    assert Tokenizer(n_cpus=2).process_all(texts) == Tokenizer(n_cpus=1).process_all(texts)


def test_custom_rules_and_base_tokenizer():
    tok = Tokenizer(tok_func=BaseTokenizer, pre_rules=[], post_rules=[], n_cpus=1)
    assert tok.process_all(['Hello  World']) == [['Hello', '', 'World']]
    tok = Tokenizer(post_rules=[deal_caps], n_cpus=1)  # no xxup: all-caps words are just lowered
    assert tok.process_all(['HELLO There']) == [['hello', TK_MAJ, 'there']]
    assert 'replace_rep' in repr(Tokenizer())


def test_non_text_inputs_give_clear_errors():
    with pytest.raises(TypeError, match='missing \\(NaN\\) value instead of a text'):
        Tokenizer(n_cpus=1).process_all(['ok', float('nan')])
    with pytest.raises(ValueError, match='would be split by RegexTokenizer'):
        RegexTokenizer().add_special_cases(['xx-bad'])


def test_spacy_is_optional():
    try:
        import spacy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match='pip install spacy'):
            SpacyTokenizer('en')
    else:
        assert SpacyTokenizer('en').tokenizer('a b') == ['a', 'b']


def test_vocab_create_numericalize_textify():
    tokens = [['a', 'b', 'a', 'c'], ['a', 'b', 'd', BOS]]
    vocab = Vocab.create(tokens, max_vocab=60000, min_freq=2)
    assert vocab.itos[:len(text_spec_tok)] == text_spec_tok  # special tokens first: xxunk 0, xxpad 1
    assert vocab.itos[len(text_spec_tok):len(text_spec_tok) + 2] == ['a', 'b']  # by frequency, c and d (1x) dropped
    assert len(vocab.itos) % 8 == 0
    assert vocab.numericalize(['a', 'zzz', PAD]) == [vocab.stoi['a'], 0, 1]
    assert vocab.stoi['never-seen'] == 0 and vocab.itos[0] == UNK
    assert vocab.textify([vocab.stoi['b'], vocab.stoi['a']]) == 'b a'
    assert vocab.textify([9, 10], sep=None) == ['a', 'b']
    small = Vocab.create([['a'] * 5 + ['b'] * 4 + ['c'] * 3], max_vocab=10, min_freq=1)
    assert 'a' in small.itos and 'c' not in small.itos  # 9 special + a: the 10 most frequent


def test_vocab_save_load(tmp_path):
    vocab = Vocab.create([['x', 'y', 'x', 'y']], min_freq=1)
    vocab.save(tmp_path / 'itos.pkl')
    assert Vocab.load(tmp_path / 'itos.pkl').itos == vocab.itos
    assert [p.name for p in tmp_path.iterdir()] == ['itos.pkl']  # no temporary file left behind
    with open(tmp_path / 'v1.pkl', 'wb') as f:  # fastai v1 wrote a plain pickle of the list
        pickle.dump(['xxunk', 'xxpad', 'hello'], f)
    assert Vocab.load(tmp_path / 'v1.pkl').itos == ['xxunk', 'xxpad', 'hello']
    with open(tmp_path / 'evil.pkl', 'wb') as f:  # a pickle that would call a function refuses to load
        pickle.dump(gzip.open, f)
    with pytest.raises(pickle.UnpicklingError, match='only plain data'):
        Vocab.load(tmp_path / 'evil.pkl')
