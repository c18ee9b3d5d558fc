"""Progress display: a live table in Jupyter, a bar in a terminal, plain lines in a log.

fastprogress draws the notebook and terminal bars. When stdout is not a terminal (a log file, CI, a pipe),
fastlib prints one line per epoch and nothing per batch, so logs carry no flood of carriage returns.
`defaults.progress` picks the mode ('auto', 'notebook', 'console', 'plain' or False); `no_progress()` turns
the bars off inside a `with` block, and `Learner.fit(..., progress=False)` for one call.
"""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastprogress import fastprogress as fp

from .torch_core import defaults, rank_distrib

__all__ = ['master_bar', 'progress_bar', 'no_progress', 'progress_mode', 'PlainMasterBar', 'PlainProgressBar']

_MODES = ('notebook', 'console', 'plain')


def progress_mode() -> str | bool:
    "The display mode in use: 'notebook', 'console', 'plain', or False when progress is off."
    mode = defaults.progress
    if mode in (False, None):
        return False
    if mode == 'auto':
        if fp.IN_NOTEBOOK:
            return 'notebook'
        isatty = getattr(sys.stdout, 'isatty', None)
        return 'console' if isatty is not None and isatty() else 'plain'
    if mode not in _MODES:
        raise ValueError(f"defaults.progress must be 'auto', False or one of {_MODES}, not {mode!r}.")
    return mode


@contextlib.contextmanager
def no_progress() -> Iterator[None]:
    "Turn progress bars off inside the `with` block (epoch tables still print unless the learner is silent)."
    old = defaults.progress
    defaults.progress = False
    try:
        yield
    finally:
        defaults.progress = old


class PlainProgressBar:
    "An inner bar that shows nothing per batch: iterates `gen` and keeps `comment` for the API's sake."

    def __init__(self, gen: Iterable, total: int | None = None, parent: Any = None, leave: bool = True,
                 comment: str = ''):
        self.gen, self.parent, self.comment = gen, parent, comment
        self.total = len(gen) if total is None and hasattr(gen, '__len__') else total
        if parent is not None:
            parent.add_child(self)

    def __iter__(self):
        yield from self.gen

    def update(self, val: int) -> None:
        pass


class PlainMasterBar:
    "An outer bar that prints its table rows as aligned plain lines and nothing else (quiet when `show=False`)."

    def __init__(self, gen: Iterable, total: int | None = None, show: bool = True):
        self.gen, self.show = gen, show
        self.total = len(gen) if total is None and hasattr(gen, '__len__') else total
        self.child = None
        self.names = None
        self.start_t = time.time()

    def __iter__(self):
        yield from self.gen

    def add_child(self, child: Any) -> None:
        self.child = child

    def write(self, line: Any, table: bool = False) -> None:
        "Print `line`; with `table`, the first call gives the column names and later calls align under them."
        if not self.show:
            return
        if not table:
            print(line, flush=True)
            return
        if self.names is None:
            self.names = [f'{name:<8}' for name in line]
            text = '  '.join(self.names)
        else:
            text = ''.join(f'{t:<{len(name) + 2}}' for t, name in zip(line, self.names))
        print(text.rstrip(), flush=True)

    def update(self, val: int) -> None:
        pass

    def update_graph(self, *args, **kwargs) -> None:
        pass


def master_bar(gen: Iterable, total: int | None = None) -> Any:
    "The outer (epoch) bar for the current display mode (showing nothing on the ranks but 0 of distributed training)."
    if rank_distrib() != 0:
        return PlainMasterBar(gen, total=total, show=False)
    mode = progress_mode()
    if mode == 'notebook':
        return fp.NBMasterBar(gen, total=total)
    if mode == 'console':
        return fp.ConsoleMasterBar(gen, total=total)
    return PlainMasterBar(gen, total=total)


def progress_bar(gen: Iterable, total: int | None = None, parent: Any = None, leave: bool = True,
                 comment: str = '') -> Any:
    "An inner (batch) bar for the current display mode; silent in plain mode or under a plain parent."
    mode = progress_mode()
    if isinstance(parent, PlainMasterBar) or mode in ('plain', False):
        return PlainProgressBar(gen, total=total, parent=parent, leave=leave, comment=comment)
    cls = fp.NBProgressBar if mode == 'notebook' else fp.ConsoleProgressBar
    bar = cls(gen, total=total, parent=parent, leave=leave)
    bar.comment = comment
    return bar
