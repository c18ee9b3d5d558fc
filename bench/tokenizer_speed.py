"""Tokenization speed: tokens per second of fastlib's default Tokenizer on real IMDB reviews.

Usage: python bench/tokenizer_speed.py [--repeats 3] [--sizes 5000 50000] [--data ../shared/data/imdb_full.csv.gz]

Reports, for each size, single-process and parallel (`n_cpus` processes) throughput in wall-clock time, and
the single process's throughput per CPU-second (`time.process_time`, which other jobs on a shared machine do
not inflate): the median and the best of `--repeats` runs, with the spread. The baseline printed first is
the floor any Python tokenizer pays: `str.split()` on the same texts.
"""
import argparse
import statistics
import time
from pathlib import Path

import pandas as pd

from fastlib.core import num_cpus
from fastlib.text.transform import Tokenizer, Vocab


def timed(f, repeats, clock=time.perf_counter):
    "Run `f` `repeats` times: (result of the last run, list of seconds on `clock`)."
    times = []
    for _ in range(repeats):
        start = clock()
        res = f()
        times.append(clock() - start)
    return res, times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data', default=str(Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'imdb_full.csv.gz'))
    parser.add_argument('--sizes', type=int, nargs='+', default=[5000, 50000])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--n_cpus', type=int, default=num_cpus())
    args = parser.parse_args()
    df = pd.read_csv(args.data, nrows=max(args.sizes))
    texts_all = df['text'].tolist()
    print(f'{len(texts_all)} IMDB reviews loaded; {args.n_cpus} CPUs; {args.repeats} runs each\n')
    print(f"{'texts':>7} {'mode':>14} {'tokens':>11} {'median tok/s':>13} {'best tok/s':>11} {'runs (s)':>24}")
    for n in args.sizes:
        texts = texts_all[:n]
        _, split_t = timed(lambda: [t.split() for t in texts], args.repeats)
        n_split = sum(len(t.split()) for t in texts)
        print(f"{n:>7} {'str.split':>14} {n_split:>11,} {n_split / statistics.median(split_t):>13,.0f} "
              f"{n_split / min(split_t):>11,.0f} {', '.join(f'{t:.2f}' for t in split_t):>24}")
        for mode, n_cpus in (('1 process', 1), (f'{args.n_cpus} processes', args.n_cpus)):
            tok = Tokenizer(n_cpus=n_cpus)
            toks, times = timed(lambda: tok.process_all(texts), args.repeats)
            n_tok = sum(len(t) for t in toks)
            print(f"{n:>7} {mode:>14} {n_tok:>11,} {n_tok / statistics.median(times):>13,.0f} "
                  f"{n_tok / min(times):>11,.0f} {', '.join(f'{t:.2f}' for t in times):>24}")
            if n_cpus == 1:  # CPU time of this process: what the tokenizer costs, whatever else the machine runs
                _, cpu = timed(lambda: tok.process_all(texts), args.repeats, time.process_time)
                print(f"{n:>7} {'1 proc, CPU s':>14} {n_tok:>11,} {n_tok / statistics.median(cpu):>13,.0f} "
                      f"{n_tok / min(cpu):>11,.0f} {', '.join(f'{t:.2f}' for t in cpu):>24}")
        vocab, vt = timed(lambda: Vocab.create(toks, max_vocab=60000, min_freq=2), 1)
        _, nt = timed(lambda: [vocab.numericalize(t) for t in toks], 1)
        print(f"{n:>7} {'Vocab.create':>14} {n_tok:>11,} {n_tok / vt[0]:>13,.0f}")
        print(f"{n:>7} {'numericalize':>14} {n_tok:>11,} {n_tok / nt[0]:>13,.0f}\n")


if __name__ == '__main__':
    main()
