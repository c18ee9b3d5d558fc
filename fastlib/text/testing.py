"""Tiny synthetic text data for tests and examples: reviews whose label a model can learn in seconds."""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ['fake_reviews', 'fake_review_df']

_POS = ['great', 'wonderful', 'brilliant', 'loved', 'superb']
_NEG = ['awful', 'boring', 'terrible', 'hated', 'dull']
_FILL = ['the', 'movie', 'was', 'a', 'film', 'and', 'plot', 'actors', 'story', 'it', 'this', 'of', 'I', 'The',
         'really', 'scenes', 'music', 'ending', 'very', '.', ',', 'Movie', 'STORY']


def fake_reviews(n: int = 200, seed: int = 0, min_len: int = 5, max_len: int = 40) -> tuple[list[str], list[str]]:
    "`n` random reviews (`min_len` to `max_len` words) and their labels: 'positive' ones hold words of praise."
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        pos = bool(rng.random() < 0.5)
        words = list(rng.choice(_FILL, size=int(rng.integers(min_len, max_len + 1))))
        for _ in range(int(rng.integers(1, 4))):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(_POS if pos else _NEG)))
        texts.append(' '.join(words))
        labels.append('positive' if pos else 'negative')
    return texts, labels


def fake_review_df(n: int = 200, seed: int = 0, valid_pct: float = 0.25, **kwargs) -> pd.DataFrame:
    "A DataFrame of `fake_reviews` with columns label, text, is_valid (like fastai's imdb_sample)."
    texts, labels = fake_reviews(n, seed, **kwargs)
    is_valid = np.arange(n) >= int(n * (1 - valid_pct))
    return pd.DataFrame({'label': labels, 'text': texts, 'is_valid': is_valid})
