"""Pure-Python helpers used everywhere in fastlib; nothing here imports torch."""
from __future__ import annotations

import contextlib
import difflib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ['listify', 'ifnone', 'is_listy', 'is_tuple', 'is_dict', 'camel2snake', 'even_mults', 'range_of',
           'arrays_split', 'random_split', 'noop', 'chunks', 'partition', 'num_cpus', 'closest_names',
           'did_you_mean', 'atomic_write', 'Path', 'PathOrStr', 'to_int', 'uniqueify']

PathOrStr = str | os.PathLike


def noop(x: Any = None, *args, **kwargs) -> Any:
    "Return `x` unchanged."
    return x


def ifnone(a: Any, b: Any) -> Any:
    "Return `b` when `a` is None, else `a`."
    return b if a is None else a


def is_listy(x: Any) -> bool:
    "True for a list or a tuple."
    return isinstance(x, (list, tuple))


def is_tuple(x: Any) -> bool:
    "True for a tuple."
    return isinstance(x, tuple)


def is_dict(x: Any) -> bool:
    "True for a dict."
    return isinstance(x, dict)


def listify(p: Any = None, q: Any = None) -> list:
    "Make `p` a list; when `q` is given (an int or a collection), repeat a single `p` to `q`'s length."
    if p is None:
        p = []
    elif isinstance(p, str) or not isinstance(p, Iterable):
        p = [p]
    else:
        p = list(p)
    n = q if isinstance(q, int) else len(p) if q is None else len(list(q))
    if len(p) == 1:
        p = p * n
    if len(p) != n:
        raise ValueError(f"List of length {len(p)} does not match the required length {n}.")
    return p


_camel_re1 = re.compile('(.)([A-Z][a-z]+)')
_camel_re2 = re.compile('([a-z0-9])([A-Z])')


def camel2snake(name: str) -> str:
    "Turn `name` from CamelCase into snake_case (`LRFinder` -> `lr_finder`)."
    s1 = _camel_re1.sub(r'\1_\2', name)
    return _camel_re2.sub(r'\1_\2', s1).lower()


def even_mults(start: float, stop: float, n: int) -> np.ndarray:
    "`n` values from `start` to `stop`, evenly spaced on a log scale (geometric progression)."
    if n == 1:
        return np.array([stop])
    mult = stop / start
    step = mult ** (1 / (n - 1))
    return np.array([start * (step ** i) for i in range(n)])


def range_of(x: Sequence) -> list[int]:
    "The indices of `x`: `[0, 1, ..., len(x)-1]`."
    return list(range(len(x)))


def to_int(b: Any) -> Any:
    "Convert `b` (or each element of a list `b`) to int where possible."
    if is_listy(b):
        return [to_int(x) for x in b]
    try:
        return int(b)
    except (TypeError, ValueError):
        return b


def arrays_split(mask: np.ndarray, *arrs: Sequence) -> list[tuple]:
    "Split each array of `arrs` by the boolean `mask`: returns [(arrs where mask), (arrs where not mask)]."
    mask = np.asarray(mask, dtype=bool)
    return [tuple(np.asarray(a)[m] for a in arrs) for m in (mask, ~mask)]


def random_split(valid_pct: float, *arrs: Sequence, seed: int | None = None) -> list[tuple]:
    "Randomly split `arrs` with `valid_pct` of the items going to the second part (seeded by `seed`)."
    rng = np.random.default_rng(seed)
    is_train = rng.uniform(size=len(arrs[0])) > valid_pct
    return arrays_split(is_train, *arrs)


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    "Successive slices of `items` of length `size` (the last may be shorter)."
    for i in range(0, len(items), size):
        yield items[i:i + size]


def partition(items: Sequence, predicate) -> tuple[list, list]:
    "Split `items` into (those where `predicate` holds, the others)."
    yes, no = [], []
    for o in items:
        (yes if predicate(o) else no).append(o)
    return yes, no


def uniqueify(items: Iterable, sort: bool = False) -> list:
    "The unique elements of `items`, in order of first appearance (or sorted)."
    res = list(dict.fromkeys(items))
    return sorted(res) if sort else res


def num_cpus() -> int:
    "The number of CPUs this process may use."
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def closest_names(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    "Up to `n` names of `choices` that look like `name` (for 'did you mean' messages)."
    return difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=0.5)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    "A ' Did you mean ...?' suffix naming the closest of `choices` to `name`, or '' when none is close."
    close = closest_names(name, choices)
    if not close:
        return ''
    return ' Did you mean ' + ' or '.join(repr(c) for c in close) + '?'


@contextlib.contextmanager
def atomic_write(path: PathOrStr, mode: str = 'wb') -> Iterator[Any]:
    """Open a temporary file next to `path` for writing and rename it over `path` once the block succeeds.

    A crash or an exception inside the block leaves any earlier `path` untouched and no half file behind:
    `os.replace` is atomic on POSIX and Windows when source and target are on the same file system.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.', suffix='.tmp')
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _file_mode(path))  # mkstemp makes the file private (0600); give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _file_mode(path: Path) -> int:
    "The permissions a new file at `path` gets: those of the file it replaces, else 0666 less the umask."
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
