"""Hooks on modules (outputs, gradients, activation statistics) and the model probes built on them: sizes, summary.

A `Hook` keeps what `hook_func(module, input, output)` returned on the last forward (or backward) pass in
`.stored`. Hooks hold a registration on the module until `.remove()`: use them as context managers (or let
`HookCallback` remove them at the end of training) so that none stays registered after an error.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..basic_data import DatasetType
from ..basic_train import Learner, LearnerCallback
from ..core import is_listy
from ..torch_core import flatten_model, get_rng_states, has_params, in_channels, one_param, set_rng_states, to_detach

__all__ = ['Hook', 'Hooks', 'hook_output', 'hook_outputs', 'HookCallback', 'ActivationStats', 'dummy_batch',
           'dummy_eval', 'model_sizes', 'num_features_model', 'model_summary']


class Hook:
    """Call `hook_func(module, input, output)` on each forward pass of `m` (on backward when not `is_forward`).

    The result lands in `.stored`; with `detach`, the tensors given to `hook_func` are detached first (they stay
    on their device). A backward hook calls `hook_func(module, grad_input, grad_output)`, the gradients being
    tuples. By default it is a full backward hook (torch's `register_full_backward_hook`), which forbids in-place
    changes of the module's output, such as a following `ReLU(inplace=True)`. With `grad_input=False` only the
    gradients of the outputs are read (through hooks on the output tensors, which work after in-place ops) and
    `hook_func` receives `grad_input=None`.
    """

    def __init__(self, m: nn.Module, hook_func: Callable[[nn.Module, Any, Any], Any], is_forward: bool = True,
                 detach: bool = True, *, grad_input: bool = True):
        self.hook_func, self.detach, self.stored = hook_func, detach, None
        self.removed = False
        if is_forward:
            self.hook = m.register_forward_hook(self.hook_fn)
        elif grad_input:
            self.hook = m.register_full_backward_hook(self.hook_fn)
        else:
            self.hook = m.register_forward_hook(self._watch_outputs)

    def hook_fn(self, module: nn.Module, input: Any, output: Any) -> None:
        "Apply `hook_func` to `module`, `input` and `output` (detached when `self.detach`) and store the result."
        if self.removed:  # a gradient may still arrive for an output computed before `remove()`
            return
        if self.detach:
            input, output = to_detach(input, cpu=False), to_detach(output, cpu=False)
        self.stored = self.hook_func(module, input, output)

    def _watch_outputs(self, module: nn.Module, input: Any, output: Any) -> None:
        "Forward hook of a `grad_input=False` backward hook: hook each output tensor to catch its gradient."
        outs = list(output) if is_listy(output) else [output]
        grads: list[Tensor | None] = [None] * len(outs)

        def _on_grad(i: int, grad: Tensor) -> None:
            # A hook put on a tensor before an in-place op gets the gradient of the value before the op: the
            # module's own output, as wanted. Several outputs each call `hook_func` with what has arrived so far.
            grads[i] = grad
            self.hook_fn(module, None, tuple(grads))

        for i, o in enumerate(outs):
            if isinstance(o, Tensor) and o.requires_grad:
                o.register_hook(lambda grad, i=i: _on_grad(i, grad))

    def remove(self) -> None:
        "Unregister the hook (calling it again does nothing)."
        if not self.removed:
            self.hook.remove()
            self.removed = True

    def __enter__(self) -> Hook:
        return self

    def __exit__(self, *args: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = 'removed' if self.removed else 'registered'
        return f'{type(self).__name__}({getattr(self.hook_func, "__name__", self.hook_func)}, {state})'


class Hooks:
    "A `Hook` with `hook_func` on each module of `ms`; indexable and iterable, `.stored` lists their results."

    def __init__(self, ms: Sequence[nn.Module], hook_func: Callable[[nn.Module, Any, Any], Any],
                 is_forward: bool = True, detach: bool = True, *, grad_input: bool = True):
        self.hooks: list[Hook] = []
        try:
            for m in ms:
                self.hooks.append(Hook(m, hook_func, is_forward, detach, grad_input=grad_input))
        except BaseException:
            self.remove()  # never leave the first few registered when a later one fails
            raise

    def __getitem__(self, i: int) -> Hook:
        return self.hooks[i]

    def __len__(self) -> int:
        return len(self.hooks)

    def __iter__(self) -> Iterator[Hook]:
        return iter(self.hooks)

    @property
    def stored(self) -> list[Any]:
        "What each hook stored on the last pass (None for a module that has not run)."
        return [h.stored for h in self.hooks]

    def remove(self) -> None:
        "Unregister every hook."
        for h in self.hooks:
            h.remove()

    def __enter__(self) -> Hooks:
        return self

    def __exit__(self, *args: Any) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f'{type(self).__name__}({len(self.hooks)} hooks)'


def _hook_inner(m: nn.Module, i: Any, o: Any) -> Any:
    "Keep the output (or the tuple of output gradients) as it is."
    return o


def hook_output(module: nn.Module, detach: bool = True, grad: bool = False) -> Hook:
    """Store the output of `module` on each forward pass (detached when `detach`).

    With `grad`, store instead the gradients of its output on each backward pass, as a tuple (one per output
    tensor: `hook.stored[0]` for a single output). This works also when an in-place op follows `module`.
    """
    return Hook(module, _hook_inner, is_forward=not grad, detach=detach, grad_input=False)


def hook_outputs(modules: Sequence[nn.Module], detach: bool = True, grad: bool = False) -> Hooks:
    "Store the output (with `grad`, the output gradients) of each of `modules`, detached when `detach`."
    return Hooks(modules, _hook_inner, is_forward=not grad, detach=detach, grad_input=False)


class HookCallback(LearnerCallback):
    """A callback that hooks `modules` (default: the leaf modules of the model that have parameters) with its
    `hook(m, i, o)` method when training begins, and removes the hooks when it ends (when `do_remove`)."""

    def __init__(self, learn: Learner, modules: Sequence[nn.Module] | None = None, do_remove: bool = True):
        super().__init__(learn)
        self.modules, self.do_remove = modules, do_remove
        self.hooks: Hooks | None = None

    def on_train_begin(self, **kwargs: Any) -> None:
        "Register the hooks."
        if not self.modules:
            model = self.learn.model
            in_model = {id(m) for m in model.modules()}  # flatten_model also lists stand-ins for bare parameters
            self.modules = [m for m in flatten_model(model) if has_params(m) and id(m) in in_model]
        self.remove()  # a second fit with `do_remove=False` must not hook the modules twice
        self.hooks = Hooks(self.modules, self.hook)

    def on_train_end(self, **kwargs: Any) -> None:
        "Remove the hooks when `do_remove` (this also runs after an exception)."
        if self.do_remove:
            self.remove()

    def remove(self) -> None:
        "Unregister the hooks."
        hooks = getattr(self, 'hooks', None)  # absent when __init__ failed early
        if hooks is not None:
            hooks.remove()

    def hook(self, m: nn.Module, i: Any, o: Any) -> Any:
        "What to store for module `m` with input `i` and output `o`; subclasses define it."
        raise NotImplementedError(f"{type(self).__name__} must define `hook(self, m, i, o)`.")

    def __del__(self) -> None:
        self.remove()


class ActivationStats(HookCallback):
    """Record the mean and standard deviation of the output of each hooked module on each training batch.

    After training, `stats` is a CPU tensor of shape (2, n_modules, n_batches): `stats[0]` the means, `stats[1]`
    the standard deviations. While training they stay on the device (read once, at the end: no host sync per
    batch). A module that did not run in a batch gets NaN there.
    """

    def on_train_begin(self, **kwargs: Any) -> None:
        "Hook the modules and start empty records."
        self.stats: list[Tensor] | Tensor = []
        self._train = True
        super().on_train_begin(**kwargs)

    def on_batch_begin(self, train: bool, **kwargs: Any) -> None:
        "Note whether the batch is a training one (validation batches are not recorded)."
        self._train = train

    def hook(self, m: nn.Module, i: Any, o: Any) -> Tensor | None:
        "The (mean, std) of the output `o` of `m`, as a device tensor of shape (2,)."
        if not self._train:
            return None  # skip the reductions on validation batches
        if not isinstance(o, Tensor):  # e.g. an RNN's (output, hidden): look at the output
            o = o[0]
        o = o.float()  # float16 sums could overflow
        return torch.stack([o.mean(), o.std()])

    def on_batch_end(self, train: bool, **kwargs: Any) -> None:
        "Append this batch's (2, n_modules) statistics."
        if not train:
            return
        stored = self.hooks.stored
        ref = next((s for s in stored if s is not None), None)
        if ref is None:
            return
        if any(s is None for s in stored):
            stored = [torch.full_like(ref, float('nan')) if s is None else s for s in stored]
        self.stats.append(torch.stack(stored, dim=1))  # (2, n_modules)
        for h in self.hooks:
            h.stored = None  # a module that does not run next batch must not repeat this batch's values

    def on_train_end(self, **kwargs: Any) -> None:
        "Remove the hooks and stack the records into a (2, n_modules, n_batches) tensor."
        super().on_train_end(**kwargs)
        if isinstance(self.stats, list):
            n_modules = len(self.hooks) if self.hooks is not None else 0
            if self.stats:
                self.stats = torch.stack(self.stats, dim=-1).cpu()
            else:
                self.stats = torch.empty(2, n_modules, 0)


# --- Probing a model with a dummy batch -------------------------------------------------------------------------

@contextlib.contextmanager
def _eval_mode(m: nn.Module) -> Iterator[nn.Module]:
    "Put `m` in eval mode and restore each submodule's own `training` flag afterwards (some may be frozen in eval)."
    flags = [(mod, mod.training) for mod in m.modules()]
    m.eval()
    try:
        yield m
    finally:
        for mod, flag in flags:
            mod.training = flag


def dummy_batch(m: nn.Module, size: tuple[int, ...] = (64, 64)) -> Tensor:
    """A batch of one random image of spatial `size` with as many channels as `m`'s first convolution.

    Shape (1, in_channels(m), *size), on the device and in the dtype of `m`'s parameters. The values come from
    a private generator, so making it leaves the global random state untouched.
    """
    ch_in = in_channels(m)
    p = one_param(m)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, ch_in, *size, generator=g) * 2 - 1  # uniform in [-1, 1)
    return x.to(device=p.device, dtype=p.dtype)


def dummy_eval(m: nn.Module, size: tuple[int, ...] = (64, 64)) -> Any:
    "The output of `m` on `dummy_batch(m, size)`, in eval mode and without gradients; `m`'s modes are kept."
    with _eval_mode(m), torch.no_grad():
        return m(dummy_batch(m, size))


def model_sizes(m: nn.Module, size: tuple[int, ...] = (64, 64)) -> list[torch.Size | None]:
    "The output shape of each child of `m` on a dummy batch of one image of spatial `size` (None if it did not run)."
    with hook_outputs(list(m.children())) as hooks:
        dummy_eval(m, size)
        return [o.shape if isinstance(o, Tensor) else None for o in hooks.stored]


def num_features_model(m: nn.Module) -> int:
    "The number of features (channels) that the conv body `m` outputs, trying larger dummy images if 64 is too small."
    in_channels(m)  # fails here, with its own message, when `m` has no convolution
    sz = 64
    while True:
        try:
            return model_sizes(m, size=(sz, sz))[-1][1]
        except (RuntimeError, ValueError) as e:
            sz *= 2
            if sz > 2048:
                raise ValueError(f"num_features_model: {type(m).__name__} fails on dummy images up to 2048x2048 "
                                 f"({e}). Is it a conv body that takes images?") from e


# --- Summary ----------------------------------------------------------------------------------------------------

class _SummaryText(str):
    "The summary table: a plain `str` that a notebook or REPL shows as the table itself (no quotes, no `\\n`)."

    def __repr__(self) -> str:
        return str(self)


def _shape_without_batch(o: Any) -> str:
    "The shape of output `o` without its batch dimension, e.g. '[16, 32, 32]'; the first tensor of a tuple."
    if is_listy(o) and len(o) > 0:
        o = o[0]
    if isinstance(o, Tensor):
        return str(list(o.shape[1:]))
    return '-'


def _format_table(rows: list[tuple[str, ...]], header: tuple[str, ...], n: int) -> tuple[list[str], int]:
    "Lines of a table of `rows` under `header`, columns padded to fit; the width of its rules is at least `n`."
    widths = [max(len(r[j]) for r in rows + [header]) for j in range(len(header))]

    def line(r):
        return '  '.join(c.ljust(w) for c, w in zip(r, widths)).rstrip()

    width = max(n, sum(widths) + 2 * (len(widths) - 1))
    lines = ['=' * width, line(header), '=' * width]
    for k, r in enumerate(rows):
        lines.append(line(r))
        if k < len(rows) - 1:
            lines.append('_' * width)
    lines.append('=' * width)
    return lines, width


def _func_name(f: Any) -> str:
    "A readable name for the function or partial `f`: `Adam(betas=(0.9, 0.99))` for a partial of Adam."
    if isinstance(f, functools.partial):
        args = [repr(a) for a in f.args] + [f'{k}={v!r}' for k, v in f.keywords.items()]
        return f'{_func_name(f.func)}({", ".join(args)})'
    return getattr(f, '__name__', None) or repr(f)


def model_summary(m: Learner | nn.Module, n: int = 70, xb: Any = None, size: tuple[int, ...] = (64, 64)) -> str:
    """A table of the leaf layers of `m` (a Learner or a module): Layer (type), Output Shape, Param #, Trainable.

    The shapes come from one forward pass: for a Learner, on one training batch of its data; for a module, on
    the batch `xb` when given, else on `dummy_batch(m, size)` (conv nets). The pass runs in eval mode under
    `torch.no_grad()`, and afterwards the model's `training` flags, batch-norm statistics, weights and the random
    generators are as they were. Output shapes leave out the batch dimension. `n` is the width of the rules.
    The result is a `str` that notebooks show as the table; `print()` it in a script. Nothing is printed here.
    """
    learn = m if isinstance(m, Learner) else None
    model = learn.model if learn is not None else m
    rng = get_rng_states()  # reading a shuffled batch draws from the generators; give them back untouched
    try:
        if learn is not None:
            xb = learn.data.one_batch(DatasetType.Train, detach=False, denorm=False)[0]
        elif xb is None:
            xb = dummy_batch(model, size)
        inputs = list(xb) if is_listy(xb) else [xb]
        layers = flatten_model(model)
        # Keep only the shape: holding every layer's activation would cost memory for nothing.
        with Hooks(layers, lambda mod, i, o: _shape_without_batch(o)) as hooks, _eval_mode(model), torch.no_grad():
            model(*inputs)
            shapes = hooks.stored
    finally:
        set_rng_states(rng)

    rows = []
    for layer, shape in zip(layers, shapes):
        ps = list(layer.parameters())
        trainable = any(p.requires_grad for p in ps)
        rows.append((type(layer).__name__, shape if shape is not None else '-', f'{sum(p.numel() for p in ps):,}',
                     str(trainable)))
    header = ('Layer (type)', 'Output Shape', 'Param #', 'Trainable')
    table, width = _format_table(rows, header, n)

    total = sum(p.numel() for p in model.parameters())  # parameters() lists a shared weight once
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines = [type(model).__name__]
    if isinstance(inputs[0], Tensor):
        lines.append(f'Input shape: {list(inputs[0].shape[1:])} (batch of {inputs[0].shape[0]})')
    lines += table
    lines += [f'Total params: {total:,}', f'Total trainable params: {n_trainable:,}',
              f'Total non-trainable params: {total - n_trainable:,}']
    if learn is not None:
        decay = 'decoupled from the gradients (true_wd)' if learn.true_wd else 'added to the gradients (L2)'
        lines += ['', f'Optimizer: {_func_name(learn.opt_func)}', f'Weight decay: {learn.wd}, {decay}',
                  f'Loss function: {learn.loss_func}']
    return _SummaryText('\n'.join(lines))
