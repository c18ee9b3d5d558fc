"""Torch helpers: defaults, moving and detaching batches, model surgery, parameter groups, seeding."""
from __future__ import annotations

import random
from collections.abc import Callable, Collection, Sequence
from enum import IntEnum
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .core import PathOrStr, ifnone, is_listy, listify, num_cpus

__all__ = ['defaults', 'Module', 'ParameterModule', 'tensor', 'to_device', 'to_detach', 'to_cpu', 'to_half', 'to_float',
           'to_np', 'to_data', 'data_collate', 'requires_grad', 'trainable_params', 'children', 'num_children',
           'range_children', 'children_and_parameters', 'flatten_model', 'first_layer', 'last_layer', 'split_model',
           'split_model_idx', 'split_no_wd_params', 'get_param_groups', 'set_bn_eval', 'bn_types', 'bias_types',
           'no_wd_types', 'apply_init', 'apply_leaf', 'cond_init', 'init_default', 'in_channels', 'one_param',
           'has_params', 'is_pool_type', 'flatten_check', 'grab_idx', 'logit', 'logit_', 'set_seed', 'set_all_seed',
           'get_rng_states', 'set_rng_states', 'uniform', 'log_uniform', 'rand_bool', 'uniform_int', 'try_int',
           'get_model', 'remove_module_load', 'num_distrib', 'rank_distrib', 'distrib_barrier', 'add_metrics',
           'model_type', 'np2model_tensor', 'np_address', 'torch_save', 'try_save', 'trange_of', 'bn2float', 'model2half', 'batch_to_half', 'np_func',
           'Tensor', 'nn', 'F', 'torch', 'np', 'IntEnum', 'ModelOnCPU', 'NoneReduceOnCPU']


class _Defaults:
    "fastlib's global defaults; change them on the `defaults` instance (`defaults.device = torch.device('cpu')`)."

    def __init__(self):
        self.cpus = min(16, num_cpus())
        self.device = torch.device('cuda') if torch.cuda.is_available() else torch.device('cpu')
        self.lr = 3e-3
        self.wd = 1e-2
        self.silent = False              # True: Recorder prints no epoch table
        self.progress = 'auto'           # 'auto', 'notebook', 'console', 'plain' or False (see fastlib.progress)
        self.return_fig = False
        self.cmap = 'viridis'
        self.extra_callbacks = None      # callbacks added to every Learner.fit
        self.extra_callback_fns = None   # callback factories added to every Learner

    def __repr__(self):
        return 'defaults(' + ', '.join(f'{k}={v!r}' for k, v in vars(self).items()) + ')'


defaults = _Defaults()

bn_types = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
bias_types = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
# Parameters of these layers get no weight decay when `bn_wd=False` (decay on a norm's scale fights the norm).
no_wd_types = bn_types + (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


class _AutoInitMeta(type(nn.Module)):
    "Metaclass that runs `nn.Module.__init__` before the subclass's `__init__`, so no `super().__init__()` is needed."

    def __call__(cls, *args, **kwargs):
        obj = cls.__new__(cls)
        nn.Module.__init__(obj)
        obj.__init__(*args, **kwargs)
        return obj


class Module(nn.Module, metaclass=_AutoInitMeta):
    "An `nn.Module` whose subclasses need not call `super().__init__()` (fastai v1's `Module`)."

    def __init__(self):
        pass


class ParameterModule(Module):
    "A module that holds the single parameter `p` and returns its input unchanged (for layer groups)."

    def __init__(self, p: nn.Parameter):
        self.val = p

    def forward(self, x: Tensor) -> Tensor:
        return x


def tensor(x: Any, *rest) -> Tensor:
    "Make a tensor from `x` (array, list, scalar or several values as `tensor(1, 2, 3)`)."
    if rest:
        x = (x,) + rest
    if isinstance(x, Tensor):
        return x
    if is_listy(x) and len(x) > 0 and isinstance(x[0], Tensor):
        return torch.stack(list(x))
    res = torch.as_tensor(np.asarray(x)) if not isinstance(x, np.ndarray) else torch.from_numpy(x)
    if res.dtype == torch.int32:
        res = res.long()
    return res


def _apply(b: Any, f: Callable[[Tensor], Any]) -> Any:
    "Apply `f` to every tensor in the nested collection `b`, keeping its structure."
    if isinstance(b, Tensor):
        return f(b)
    if isinstance(b, dict):
        return {k: _apply(v, f) for k, v in b.items()}
    if is_listy(b):
        return type(b)(_apply(o, f) for o in b) if not hasattr(b, '_fields') else type(b)(*(_apply(o, f) for o in b))
    return b


def to_device(b: Any, device: torch.device | str | None = None, non_blocking: bool = False) -> Any:
    "Move the tensors of `b` to `device` (default `defaults.device`)."
    device = ifnone(device, defaults.device)
    return _apply(b, lambda t: t.to(device, non_blocking=non_blocking))


def to_detach(b: Any, cpu: bool = True) -> Any:
    "Detach the tensors of `b` from the graph, and move them to the CPU when `cpu`."
    return _apply(b, lambda t: t.detach().cpu() if cpu else t.detach())


def to_cpu(b: Any) -> Any:
    "Move the tensors of `b` to the CPU."
    return _apply(b, lambda t: t.cpu())


def to_half(b: Any) -> Any:
    "Cast the floating-point tensors of `b` to float16."
    return _apply(b, lambda t: t.half() if torch.is_floating_point(t) else t)


def to_float(b: Any) -> Any:
    "Cast the floating-point tensors of `b` to float32."
    return _apply(b, lambda t: t.float() if torch.is_floating_point(t) else t)


def to_data(b: Any) -> Any:
    "The raw data of `b` (items with a `.data` attribute give that, tensors stay)."
    if is_listy(b):
        return [to_data(o) for o in b]
    return b.data if hasattr(b, 'data') and not isinstance(b, (Tensor, np.ndarray)) else b


def to_np(x: Any) -> np.ndarray:
    "A NumPy array of the tensor `x` (detached, on the CPU)."
    if isinstance(x, Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def data_collate(batch: Sequence) -> Any:
    "Collate a list of samples into a batch, first turning item objects (anything with a `.data`) into their data."
    batch = list(batch)
    if batch and _holds_items(batch[0]):  # decided on the first sample: samples of a dataset share a structure
        _before_collate(batch)
        batch = to_data(batch)
    return torch.utils.data.dataloader.default_collate(batch)


def _before_collate(batch: list) -> None:
    "Hand each item type of the samples (with a `before_collate` class method) its column of the batch first."
    for column in zip(*[s if is_listy(s) else [s] for s in batch]):
        hook = getattr(type(column[0]), 'before_collate', None)
        if hook is not None:
            hook(column)


def _holds_items(sample: Any) -> bool:
    "True when `sample` is, or directly contains, an item object with a `.data` (not a tensor or an array)."
    parts = sample if is_listy(sample) else [sample]
    return any(hasattr(o, 'data') and not isinstance(o, (Tensor, np.ndarray)) for o in parts)


def requires_grad(m: nn.Module, b: bool | None = None) -> bool | None:
    "Set `requires_grad` of all parameters of `m` to `b`, or return the first parameter's flag when `b` is None."
    ps = list(m.parameters())
    if not ps:
        return None
    if b is None:
        return ps[0].requires_grad
    for p in ps:
        p.requires_grad_(b)
    return None


def trainable_params(m: nn.Module) -> list[nn.Parameter]:
    "The parameters of `m` that require a gradient."
    return [p for p in m.parameters() if p.requires_grad]


def children(m: nn.Module) -> list[nn.Module]:
    "The direct children of `m`."
    return list(m.children())


def num_children(m: nn.Module) -> int:
    "How many direct children `m` has."
    return len(children(m))


def range_children(m: nn.Module) -> range:
    "The indices of the direct children of `m`."
    return range(num_children(m))


def has_params(m: nn.Module) -> bool:
    "True when `m` has at least one parameter."
    return len(list(m.parameters())) > 0


def children_and_parameters(m: nn.Module) -> list[nn.Module]:
    "The children of `m`, plus a `ParameterModule` for each parameter held directly by `m`."
    result = children(m)
    child_params = {id(p) for c in result for p in c.parameters()}
    for p in m.parameters(recurse=False):
        if id(p) not in child_params:
            result.append(ParameterModule(p))
    return result


def flatten_model(m: nn.Module) -> list[nn.Module]:
    "The leaf modules of `m`, in order (a module with its own parameters counts as a leaf)."
    if not children(m):
        return [m]
    return [leaf for c in children_and_parameters(m) for leaf in flatten_model(c)]


def first_layer(m: nn.Module) -> nn.Module:
    "The first leaf module of `m`."
    return flatten_model(m)[0]


def last_layer(m: nn.Module) -> nn.Module:
    "The last leaf module of `m`."
    return flatten_model(m)[-1]


def split_model_idx(model: nn.Module, idxs: Collection[int]) -> list[nn.Sequential]:
    "Split the leaf layers of `model` into groups that start at the indices `idxs`."
    layers = flatten_model(model)
    idxs = list(idxs)
    if not idxs or idxs[0] != 0:
        idxs = [0] + idxs
    if idxs[-1] != len(layers):
        idxs.append(len(layers))
    return [nn.Sequential(*layers[i:j]) for i, j in zip(idxs[:-1], idxs[1:])]


def split_model(model: nn.Module | None = None, splits: Collection[nn.Module] | nn.Module | None = None,
                want_idxs: bool = False) -> list[nn.Sequential]:
    "Split `model` into layer groups at the modules `splits` (each split starts a group) or at the direct children."
    layers = flatten_model(model)
    splits = listify(splits)
    if isinstance(splits[0], nn.Module):
        # Each split module starts a new group at its first leaf.
        leaf_ids = [id(l) for l in layers]
        idxs = []
        for s in splits:
            first = first_layer(s)
            if id(first) not in leaf_ids:
                raise ValueError(f"split_model: {type(s).__name__} is not part of the model being split.")
            idxs.append(leaf_ids.index(id(first)))
    else:
        idxs = list(splits)
    res = split_model_idx(model, idxs)
    return (res, idxs) if want_idxs else res


def split_no_wd_params(layer_groups: Collection[nn.Module]) -> list[list[nn.Parameter]]:
    "For each layer group, the parameters that get no weight decay when `bn_wd=False` (norm layers and biases)."
    res = []
    for lg in layer_groups:
        group, seen = [], set()
        for m in lg.modules():
            ps = []
            if isinstance(m, no_wd_types):
                ps = list(m.parameters(recurse=False))
            elif isinstance(m, bias_types) and getattr(m, 'bias', None) is not None:
                ps = [m.bias]
            for p in ps:
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    group.append(p)
        res.append(group)
    return res


def get_param_groups(layer_groups: Collection[nn.Module]) -> list[list[nn.Parameter]]:
    "The trainable parameters of each layer group."
    return [trainable_params(lg) for lg in layer_groups]


def set_bn_eval(m: nn.Module) -> None:
    "Put the batch-norm layers of `m` whose parameters are frozen into eval mode (for `train_bn=False`)."
    for l in m.children():
        if isinstance(l, bn_types) and not next(l.parameters(), torch.empty(0, requires_grad=True)).requires_grad:
            l.eval()
        set_bn_eval(l)


def apply_leaf(m: nn.Module, f: Callable[[nn.Module], None]) -> None:
    "Apply `f` to every module in `m` (depth first, parents first)."
    f(m)
    for c in m.children():
        apply_leaf(c, f)


def cond_init(m: nn.Module, init_func: Callable) -> None:
    "Initialise the weight of `m` with `init_func` and zero its bias, unless `m` is a norm layer."
    if isinstance(m, no_wd_types):
        return
    if getattr(m, 'weight', None) is not None and isinstance(m.weight, Tensor) and m.weight.dim() >= 2:
        init_func(m.weight)
    if getattr(m, 'bias', None) is not None and isinstance(m.bias, Tensor):
        with torch.no_grad():
            m.bias.zero_()


def apply_init(m: nn.Module, init_func: Callable) -> None:
    "Initialise every layer of `m` with `init_func` (norm layers keep theirs)."
    apply_leaf(m, lambda x: cond_init(x, init_func))


def init_default(m: nn.Module, func: Callable | None = nn.init.kaiming_normal_) -> nn.Module:
    "Initialise the weight of `m` with `func` and its bias with 0; returns `m`."
    if func is not None and getattr(m, 'weight', None) is not None:
        func(m.weight)
    if getattr(m, 'bias', None) is not None:
        with torch.no_grad():
            m.bias.fill_(0.)
    return m


def in_channels(m: nn.Module) -> int:
    "The number of input channels of the first convolution in `m`."
    for l in flatten_model(m):
        if isinstance(l, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return l.in_channels
    raise ValueError(f"No convolution found in {type(m).__name__}: cannot tell its number of input channels.")


def one_param(m: nn.Module) -> nn.Parameter:
    "The first parameter of `m` (to read its device and dtype)."
    return next(m.parameters())


def is_pool_type(l: nn.Module) -> bool:
    "True for a pooling layer."
    return 'pool' in type(l).__name__.lower()


def flatten_check(out: Tensor, targ: Tensor) -> tuple[Tensor, Tensor]:
    "Flatten `out` and `targ`, checking that they hold the same number of elements."
    out, targ = out.contiguous().view(-1), targ.contiguous().view(-1)
    if len(out) != len(targ):
        raise ValueError(f"Expected output and target to have the same number of elements, "
                         f"got {len(out)} and {len(targ)}.")
    return out, targ


def grab_idx(x: Any, i: int, batch_first: bool = True) -> Any:
    "The `i`-th item of the batch `x` (nested collections supported)."
    if batch_first:
        return _apply(x, lambda t: t[i].detach().cpu())
    return _apply(x, lambda t: t[:, i].detach().cpu())


def logit(x: Tensor) -> Tensor:
    "The inverse of the sigmoid, clamped to stay finite."
    x = x.clamp(1e-7, 1 - 1e-7)
    return -(1 / x - 1).log()


def logit_(x: Tensor) -> Tensor:
    "In-place `logit`."
    x.clamp_(1e-7, 1 - 1e-7)
    return (x.reciprocal_().sub_(1)).log_().neg_()


def set_seed(seed: int, reproducible: bool = False) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators with `seed`.

    With `reproducible=True`, also ask torch for deterministic kernels (cuDNN autotuning off), so that a rerun
    gives the same numbers; DataLoader workers derive their seeds from torch's generator, so they follow too.
    """
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if reproducible:
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


set_all_seed = set_seed


def get_rng_states() -> dict:
    "A snapshot of Python's, NumPy's and torch's random generators (restore it with `set_rng_states`)."
    states = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    "Restore the random generators from a `get_rng_states` snapshot."
    random.setstate(states['python'])
    np.random.set_state(states['numpy'])
    torch.set_rng_state(states['torch'].cpu())   # a checkpoint loaded onto a GPU holds it there
    if 'cuda' in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states['cuda']])


def uniform(low: float, high: float | None = None, size: int | None = None) -> float | Tensor:
    "A uniform random number in [`low`, `high`) (a tensor of `size` of them when `size` is given)."
    if high is None:
        high = low
    return random.uniform(low, high) if size is None else torch.empty(size).uniform_(low, high)


def log_uniform(low: float, high: float, size: int | None = None) -> float | Tensor:
    "A random number between `low` and `high`, uniform on a log scale."
    res = uniform(np.log(low), np.log(high), size)
    return np.exp(res) if size is None else res.exp_()


def rand_bool(p: float, size: int | None = None) -> bool | Tensor:
    "True with probability `p` (a tensor of `size` booleans when `size` is given)."
    return uniform(0, 1, size) < p


def uniform_int(low: int, high: int, size: int | None = None) -> int | Tensor:
    "A random integer in [`low`, `high`] (both included)."
    return random.randint(low, high) if size is None else torch.randint(low, high + 1, size)


def try_int(o: Any) -> Any:
    "`int(o)` when `o` is a number-like object, else `o` unchanged."
    if isinstance(o, (np.ndarray, Tensor)):
        n = o.size if isinstance(o, np.ndarray) else o.numel()
        return o.item() if n == 1 else o
    try:
        return int(o)
    except (TypeError, ValueError):
        return o


def get_model(model: nn.Module) -> nn.Module:
    "The model inside DataParallel, DistributedDataParallel and `torch.compile` wrappers, or `model` itself."
    wrappers = (nn.DataParallel, nn.parallel.DistributedDataParallel)
    while True:
        if isinstance(model, wrappers):
            model = model.module
        elif isinstance(getattr(model, '_orig_mod', None), nn.Module):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def remove_module_load(state_dict: dict) -> dict:
    "Drop the 'module.' prefix that DataParallel adds to state-dict keys."
    return {(k[7:] if k.startswith('module.') else k): v for k, v in state_dict.items()}


def num_distrib() -> int:
    "The number of distributed processes (0 when not distributed)."
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 0


def rank_distrib() -> int:
    "The rank of this process (0 when not distributed)."
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def distrib_barrier() -> None:
    "Wait for every distributed process (does nothing when not distributed)."
    if num_distrib() > 1:
        torch.distributed.barrier()


def np_address(x: np.ndarray) -> int:
    "The memory address of the data of the array `x` (to tell whether two arrays share memory)."
    return x.__array_interface__['data'][0]


def torch_save(*args: Any, _use_new_zipfile_serialization: bool = False, **kwargs: Any) -> None:
    """`torch.save(*args, **kwargs)`, in the legacy (non-zip) format unless `_use_new_zipfile_serialization`, as
    fastai v1 wrote files for older PyTorch versions. fastlib's own files go through `try_save` instead."""
    torch.save(*args, _use_new_zipfile_serialization=_use_new_zipfile_serialization, **kwargs)


def try_save(state: Any, path: PathOrStr | None = None, file: Any = None) -> None:
    """Save `state` to the file `path` (atomically: a crash leaves the old file or none) or to the open `file`,
    with an error that says what to do when the place cannot be written."""
    from .serialization import atomic_save
    target = path if path is not None else getattr(file, 'name', 'the given file object')
    try:
        if path is not None:
            atomic_save(state, path)
        else:
            torch.save(state, file)
    except OSError as e:
        raise OSError(f"Cannot save to {target} ({e.strerror or e}). Choose a writable place, e.g. "
                      f"`learn.model_dir = '/tmp/models'` or another `learn.path`.") from e


def add_metrics(last_metrics: Collection, mets: Any) -> dict:
    "A callback return value that appends `mets` to `last_metrics`."
    return {'last_metrics': list(last_metrics or []) + listify(mets)}


def model_type(dtype: str | np.dtype) -> torch.dtype | None:
    "The torch dtype a model input of NumPy `dtype` should have."
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return torch.float32
    if np.issubdtype(dtype, np.integer):
        return torch.int64
    if dtype == np.bool_:
        return torch.bool
    return None


def np2model_tensor(a: np.ndarray) -> Tensor:
    "A tensor of the array `a` in the dtype a model expects."
    res = torch.as_tensor(a)
    dtype = model_type(a.dtype)
    return res if dtype is None else res.to(dtype)


def trange_of(x: Collection) -> Tensor:
    "A tensor `[0, 1, ..., len(x)-1]`."
    return torch.arange(len(x))


def bn2float(module: nn.Module) -> nn.Module:
    "Keep the batch-norm layers of `module` in float32 (after `.half()`)."
    if isinstance(module, bn_types):
        module.float()
    for c in module.children():
        bn2float(c)
    return module


def model2half(model: nn.Module) -> nn.Module:
    "Cast `model` to float16, batch-norm layers excepted."
    return bn2float(model.half())


def batch_to_half(b: Collection[Tensor]) -> list:
    "Cast the input of the batch `b` to float16 and leave the target."
    return [to_half(b[0]), b[1]]


def np_func(f: Callable) -> Callable:
    "Wrap the NumPy function `f` so that it takes and returns tensors."
    def _inner(*args, **kwargs):
        nargs = [to_np(a) if isinstance(a, Tensor) else a for a in args]
        return tensor(f(*nargs, **kwargs))
    _inner.__name__ = getattr(f, '__name__', 'np_func')
    return _inner


class ModelOnCPU:
    "Context manager that moves `model` to the CPU inside the block and back to its device afterwards."

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.device = one_param(self.model).device
        return self.model.cpu()

    def __exit__(self, *args):
        self.model.to(self.device)


class NoneReduceOnCPU:
    "Context manager that gives a copy of `loss_func` with `reduction='none'` (per-item losses)."

    def __init__(self, loss_func: Callable):
        self.loss_func = loss_func
        self.old_red = None

    def __enter__(self):
        if hasattr(self.loss_func, 'reduction'):
            self.old_red = self.loss_func.reduction
            self.loss_func.reduction = 'none'
            return self.loss_func
        return lambda out, *yb: self.loss_func(out, *yb, reduction='none')

    def __exit__(self, *args):
        if self.old_red is not None:
            self.loss_func.reduction = self.old_red
