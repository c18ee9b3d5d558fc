"""Saving and loading files safely: atomic writes, and loading that runs no code from the file by default.

Format and why: fastlib files are ordinary `torch.save` archives. They are loaded with
`torch.load(weights_only=True)`, whose unpickler refuses every Python object that is not on an allowlist, so
a crafted file cannot run code. The allowlist holds plain data (tensors, numbers, strings, containers, numpy
arrays, paths), the `nn.Module` classes of torch, torchvision and fastlib, torch's optimizers and loss functions,
fastlib's metric functions, and the classes fastlib registers with `register_safe_globals` (the data block's
item lists, processors and items register themselves). Rebuilding any of these runs no constructor: the
unpickler only fills the object's `__dict__`. A file that needs anything else
(a model class of your own, say) loads only when the caller passes `trusted=True` (full pickle: do that only
for files from a source you trust) or lists the extra classes in `safe_globals=[MyNet]`.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import io
import pathlib
import pickle
import re
import zipfile
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .core import PathOrStr, atomic_write

__all__ = ['register_safe_globals', 'safe_globals_allowed', 'safe_load', 'atomic_save', 'UnsafeFileError']

_registered: set = set()
# Modules whose nn.Module subclasses may be rebuilt from a file: their constructors are not called by loading,
# and an nn.Module's state only fills its __dict__.
_MODULE_PREFIXES = ('torch.nn.', 'torchvision.', 'fastlib.')


class UnsafeFileError(pickle.UnpicklingError):
    "A file holds Python objects outside fastlib's allowlist, so loading it would need to trust its code."


def register_safe_globals(*objs: Any) -> Any:
    "Allow the classes or functions `objs` in files loaded by `safe_load` (usable as a class decorator)."
    _registered.update(objs)
    return objs[0] if len(objs) == 1 else objs


def _module_subclasses(cls: type) -> Iterable[type]:
    "Every subclass of `cls` imported so far, recursively."
    for sub in cls.__subclasses__():
        yield sub
        yield from _module_subclasses(sub)


@functools.lru_cache(maxsize=1)
def _static_allowlist() -> tuple:
    "Functions and classes from torch that are pure to call: optimizers, functional ops, dtypes, partial."
    objs: list = [functools.partial, nn.Parameter, set, frozenset, slice, range, complex, bytes, bytearray]
    # numpy arrays and scalars (item lists hold their items in arrays) and paths: plain data once rebuilt.
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray  # renamed in numpy 2
    objs += [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    objs += [getattr(np.dtypes, n) for n in np.dtypes.__all__]
    objs += [pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath, pathlib.PurePosixPath, pathlib.PureWindowsPath]
    objs += [o for o in vars(torch.optim).values() if inspect.isclass(o) and issubclass(o, torch.optim.Optimizer)]
    objs += [o for n, o in vars(torch.nn.functional).items() if inspect.isfunction(o) and not n.startswith('_')]
    # fastlib's metrics and layers: pure computations (losses, metric functions and callbacks, layer factories).
    from . import layers, metrics
    for module in (layers, metrics):
        objs += [getattr(module, n) for n in module.__all__ if callable(getattr(module, n))]
    return tuple(objs)


def safe_globals_allowed(extra: Collection[Any] = ()) -> list:
    "The classes and functions `safe_load` accepts: see the module docstring."
    modules = [c for c in _module_subclasses(nn.Module) if c.__module__.startswith(_MODULE_PREFIXES)
               or c.__module__ == 'torch.nn']
    return list({id(o): o for o in [*_static_allowlist(), *modules, *_registered, *extra]}.values())


_GLOBAL_RE = re.compile(r'GLOBAL ([\w.]+)')


def safe_load(path: PathOrStr | io.BufferedIOBase, trusted: bool = False, safe_globals: Collection[Any] = (),
              map_location: Any = 'cpu', what: str = 'file', name: str | None = None) -> Any:
    """Load a `torch.save` file at `path` without running code from it unless `trusted`.

    `safe_globals` allows extra classes (your own model class, say) without trusting the whole file;
    `map_location` defaults to the CPU so that files written on a GPU open on any machine.
    """
    name = name or (str(path) if isinstance(path, (str, Path)) else getattr(path, 'name', '<file object>'))
    if isinstance(path, (str, Path)) and not Path(path).is_file():
        raise FileNotFoundError(f"No {what} at {name}.")
    try:
        if trusted:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(safe_globals_allowed(safe_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        match = _GLOBAL_RE.search(str(e))
        if match is None:
            raise ValueError(f"{name} is not a readable fastlib/torch {what} (truncated or corrupted?): "
                             f"{str(e).splitlines()[-1]}") from e
        culprit = match.group(1)
        raise UnsafeFileError(
            f"{name} contains {culprit}, which is not a torch, torchvision or fastlib class, so loading it would "
            f"run code from the file. If you trust where the file comes from, pass trusted=True; or allow just "
            f"that class with safe_globals=[{culprit.rsplit('.', 1)[-1]}].") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{name} is not a readable fastlib/torch {what} (truncated or corrupted?): {e}") from e


def import_fastlib_modules(names: Iterable[str]) -> None:
    "Import the fastlib modules named in a file, so that their classes are known before loading it."
    for n in names:
        if n == 'fastlib' or n.startswith('fastlib.'):
            importlib.import_module(n)


def atomic_save(obj: Any, path: PathOrStr) -> Path:
    "`torch.save` `obj` to `path` through a temporary file renamed into place (a crash leaves no half file)."
    path = Path(path)
    with atomic_write(path) as f:
        torch.save(obj, f)
    return path
