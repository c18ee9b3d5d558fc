"""Training on several processes (GPUs or machines) with torch.distributed and DistributedDataParallel.

Start a script with `python -m fastlib.launch --nproc_per_node N script.py` (torchrun underneath); in it,
`setup_distrib()` joins the process group and `learn.to_distributed(local_rank)` adds a `DistributedTrainer`,
which at each fit wraps the model in DistributedDataParallel and gives each process its shard of the data:

- training: a `DistributedSampler` (shuffled with a seed shared by every rank, `set_epoch` at each epoch); each
  rank keeps the batch size of the DataBunch, so the global batch is `bs * world_size`. The training loader stays
  sharded after the fit (so `len(learn.data.train_dl)` is what each rank runs, as lr_find and schedulers expect);
- validation: the set, in its loader's order, is cut into global batches of `val_bs * world_size` items, each
  split between the ranks (the last one as evenly as it goes; a rank left with nothing computes a dummy item that
  is thrown away). The outputs and targets of each global batch are gathered on every rank before the loss and the
  metrics see them, so every rank reports the numbers a single process gets on the whole validation set, with no
  item counted twice, whether or not the set divides by the number of processes;
- the training loss reported (epoch table, lr_find, trackers) is the mean over the ranks of each batch's loss, so
  decisions based on it (stopping lr_find, early stopping) are the same everywhere; gradients are unchanged.

Only rank 0 writes files (save, export, CSVLogger, SaveModelCallback) or shows progress; the others wait for it.
"""
from __future__ import annotations

import datetime
import math
import os
import random
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler, SequentialSampler

from .basic_train import Learner, LearnerCallback
from .callback import SmoothenValue
from .core import PathOrStr, atomic_write
from .torch_core import bn_types, defaults, rank_distrib

__all__ = ['DistributedTrainer', 'DistributedRecorder', 'read_metrics', 'setup_distrib', 'to_distributed',
           'convert_sync_batchnorm', 'valid_shard_plan', 'gather_batch', 'ShardSampler']

# How long a rank waits for the others in a collective before giving up (a crashed or stuck rank must not
# leave the rest hanging forever); the FASTLIB_DIST_TIMEOUT environment variable (seconds) overrides it.
DEFAULT_TIMEOUT = 600.


def setup_distrib(gpu: int | str | None = None, backend: str | None = None, timeout: float | None = None) -> int:
    """Join the process group described by torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    `gpu`: this process's GPU (default LOCAL_RANK); `backend`: 'nccl' on GPUs, 'gloo' on CPUs by default;
    `timeout`: seconds a rank waits for the others in a collective (default 600, or FASTLIB_DIST_TIMEOUT).
    Returns the local rank. Run with plain `python` (WORLD_SIZE unset or 1), it does nothing, so one script
    serves both cases.
    """
    local_rank = int(gpu) if gpu is not None else int(os.environ.get('LOCAL_RANK', 0))
    world = int(os.environ.get('WORLD_SIZE', 1))
    use_cuda = torch.cuda.is_available() and backend in (None, 'nccl')
    if use_cuda:
        torch.cuda.set_device(local_rank)
        defaults.device = torch.device('cuda', local_rank)
    if world <= 1 or dist.is_initialized():
        return local_rank
    missing = [v for v in ('RANK', 'MASTER_ADDR', 'MASTER_PORT') if v not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE is {world} but {', '.join(missing)} is not set: start the script with "
                           f"`python -m fastlib.launch --nproc_per_node {world} script.py` (or torchrun), which sets "
                           f"them for each process.")
    backend = backend or ('nccl' if use_cuda else 'gloo')
    timeout = timeout if timeout is not None else float(os.environ.get('FASTLIB_DIST_TIMEOUT', DEFAULT_TIMEOUT))
    kwargs = {'device_id': torch.device('cuda', local_rank)} if backend == 'nccl' else {}
    dist.init_process_group(backend, init_method='env://', timeout=datetime.timedelta(seconds=timeout), **kwargs)
    return local_rank


def to_distributed(learn: Learner, cuda_id: int | None = None, cache_dir: str = 'tmp', sync_bn: bool = False,
                   seed: int | None = None, **ddp_kwargs: Any) -> Learner:
    """Train `learn` with DistributedDataParallel on GPU `cuda_id` (None: the CPU, or LOCAL_RANK's GPU).

    `sync_bn` turns batch norms into SyncBatchNorm (GPUs only); `seed` fixes the shuffling of the training shards
    (default: drawn on rank 0); `ddp_kwargs` go to DistributedDataParallel. `cache_dir` is accepted
    for fastai v1's signature and unused: the ranks agree on the metrics without files. Joins the process group
    first (`setup_distrib`) when torchrun started the script and nobody has.
    """
    if not dist.is_initialized() and int(os.environ.get('WORLD_SIZE', 1)) > 1:
        cuda_id = setup_distrib(cuda_id)
    if cuda_id is not None and torch.cuda.is_available():
        device = torch.device('cuda', int(cuda_id))
        learn.model.to(device)
        learn.data.device = device
        for dl in learn.data.dls:
            dl.device = device
    if sync_bn:
        convert_sync_batchnorm(learn)
    learn.callbacks = [cb for cb in learn.callbacks if not isinstance(cb, DistributedTrainer)]
    learn.callbacks.append(DistributedTrainer(learn, cuda_id, seed=seed, **ddp_kwargs))
    if rank_distrib() != 0:
        learn.silent = True  # the epoch table and lr_find's summary print once, on rank 0
    return learn


def convert_sync_batchnorm(learn: Learner) -> Learner:
    """Replace the batch norms of `learn.model` (and of its layer groups) by SyncBatchNorm, sharing their weights.

    SyncBatchNorm computes the batch statistics over every rank's batch; torch supports it on GPUs only.
    """
    if not torch.cuda.is_available() or learn.data.device.type != 'cuda':
        raise ValueError("sync_bn=True needs GPUs: torch's SyncBatchNorm does not run on a CPU. Leave sync_bn=False "
                         "(each process normalizes with its own batch's statistics).")
    mapping: dict[nn.Module, nn.Module] = {}
    for module in list(learn.model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, bn_types):
                if child not in mapping:
                    mapping[child] = _sync_bn_like(child)
                setattr(module, name, mapping[child])
    for group in learn.layer_groups:   # groups hold layers directly (flattened): point them at the new ones
        for name, child in list(group.named_children()):
            if child in mapping:
                setattr(group, name, mapping[child])
    return learn


def _sync_bn_like(bn: nn.Module) -> nn.Module:
    "A SyncBatchNorm with the same parameters and buffers (the same tensors, so the optimizer keeps them)."
    res = nn.SyncBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    if bn.affine:
        res.weight, res.bias = bn.weight, bn.bias
    res.running_mean, res.running_var, res.num_batches_tracked = bn.running_mean, bn.running_var, bn.num_batches_tracked
    res.train(bn.training)
    return res


class ShardSampler(Sampler):
    """Rank `rank`'s share of the order `sampler` gives, out of `world` ranks: every `world`-th index, padded at the
    end (with the first indices) to the same length on every rank. Every rank draws the same order: `sampler` runs
    with the random generators seeded from `seed` and the epoch (`set_epoch`). For samplers other than torch's
    random and sequential ones (those get a `DistributedSampler`), e.g. a sampler that batches texts by length.
    """

    def __init__(self, sampler: Sampler, world: int, rank: int, seed: int = 0):
        self.sampler, self.world, self.rank, self.seed, self.epoch = sampler, world, rank, seed, 0

    def set_epoch(self, epoch: int) -> None:
        "Shuffle differently at epoch `epoch` (the same way on every rank)."
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.world)

    def __iter__(self) -> Iterator[int]:
        np_state, py_state = np.random.get_state(), random.getstate()
        with torch.random.fork_rng(devices=[]):
            s = self.seed + self.epoch
            torch.manual_seed(s)
            np.random.seed(s % 2 ** 32)
            random.seed(s)
            try:
                order = list(self.sampler)
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
        n = len(self) * self.world
        order = (order * math.ceil(n / max(len(order), 1)))[:n] if order else order
        return iter(order[self.rank::self.world])


def valid_shard_plan(order: Sequence[int], bs: int, world: int, rank: int) -> tuple[list[list[int]], list[list[int]]]:
    """How validation splits `order` (the indices in the validation loader's order) between `world` ranks.

    Global batch k holds `order[k*bs*world:(k+1)*bs*world]`, cut in `world` consecutive slices of
    `ceil(len/world)` items. Returns (the index lists rank `rank` loads, one per global batch; the number of real
    items of every rank in each global batch). A rank whose slice is empty loads one item it does not count.
    """
    gbs = bs * world
    batches, counts = [], []
    for start in range(0, len(order), gbs):
        chunk = list(order[start:start + gbs])
        per = math.ceil(len(chunk) / world)
        slices = [chunk[r * per:(r + 1) * per] for r in range(world)]
        counts.append([len(s) for s in slices])
        batches.append(slices[rank] if slices[rank] else [chunk[0]])   # a dummy item, dropped after gathering
    return batches, counts


def gather_batch(b: Any, counts: Sequence[int], group: Any = None) -> Any:
    """Gather `b` (a tensor, or lists/tuples of them, batch axis first) from every rank, keeping `counts[r]` rows of
    rank r's, concatenated in rank order. Leaves whose other sizes differ between ranks are zero-padded to the
    largest (the raw activations of padded texts, say)."""
    if isinstance(b, Tensor):
        return _gather_tensor(b, counts, group)
    if isinstance(b, (list, tuple)):
        res = [gather_batch(o, counts, group) for o in b]
        return res if isinstance(b, list) else tuple(res)
    return b


def _comm_device(t: Tensor) -> torch.device:
    "Where collectives run: the tensor's GPU for NCCL, the CPU for gloo."
    return t.device if dist.get_backend() == 'nccl' else torch.device('cpu')


def _gather_tensor(t: Tensor, counts: Sequence[int], group: Any) -> Tensor:
    world = dist.get_world_size(group)
    device = _comm_device(t)
    # Every rank's sizes after the batch axis (ranks agree on the number of axes).
    shape = torch.tensor(list(t.shape[1:]), dtype=torch.long, device=device)
    shapes = [torch.empty_like(shape) for _ in range(world)]
    if shape.numel():
        dist.all_gather(shapes, shape, group=group)
    max_shape = [int(max(s[i] for s in shapes)) for i in range(shape.numel())]
    rows = max(max(counts), 1)
    dtype = t.dtype
    comm_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else torch.uint8 if dtype == torch.bool \
        else dtype   # gloo lacks half and bool collectives everywhere; float32 holds them exactly
    padded = torch.zeros((rows, *max_shape), dtype=comm_dtype, device=device)
    n = min(t.shape[0], rows) if t.dim() else 0
    if t.dim():
        padded[(slice(0, n), *(slice(0, s) for s in t.shape[1:]))] = t[:n].to(device=device, dtype=comm_dtype)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous(), group=group)
    return torch.cat([p[:c] for p, c in zip(parts, counts)]).to(device=t.device, dtype=dtype)


class DistributedTrainer(LearnerCallback):
    """During each fit: the model in DistributedDataParallel, a shard of the training and validation data on each rank,
    validation outputs gathered so every rank computes the same loss and metrics (see the module's docstring).

    `cuda_id`: this process's GPU (None on a CPU); `seed`: the seed of the training shards' shuffling (default drawn
    on rank 0 and shared); `ddp_kwargs` go to DistributedDataParallel. Outside a process group (a plain
    `python script.py`) it does nothing.
    """
    _order = -20   # before the Recorder (which records the shared loss) and the schedulers (which read len(train_dl))

    def __init__(self, learn: Learner, cuda_id: int | None = None, seed: int | None = None, **ddp_kwargs: Any):
        super().__init__(learn)
        self.cuda_id, self.seed, self.ddp_kwargs = cuda_id, seed, ddp_kwargs
        self.active, self.epochs_seen, self.train_shard = False, 0, None
        if dist.is_initialized():
            self._shard_train()

    def _shard_train(self) -> None:
        """Give this rank its shard of the training loader, for good: the number of batches that `lr_find` and the
        schedulers read from `len(learn.data.train_dl)`, before a fit as during it, is then the one each rank runs."""
        self.world, self.rank = dist.get_world_size(), dist.get_rank()
        self.shared_seed = self.seed if self.seed is not None else self._agreed_seed()
        self.train_shard = self._train_loader(self.learn.data.train_dl.dl)
        self.learn.data.train_dl.dl = self.train_shard

    def on_train_begin(self, pbar: Any = None, **kwargs: Any) -> None:
        # `Learner.validate` fires on_train_begin with no bar (and no on_train_end): there every rank validates the
        # whole set itself, which gives the same numbers everywhere with nothing to undo.
        if pbar is None or not dist.is_initialized():
            return
        learn = self.learn
        if learn.data.train_dl.dl is not self.train_shard:   # new data since (learn.data = ...)
            self._shard_train()
        self.old_model, self.old_valid = learn.model, learn.data.valid_dl.dl
        self.active = True  # from here on_train_end undoes what follows, even if it fails half-way
        device_ids = [self.cuda_id] if self.cuda_id is not None and learn.data.device.type == 'cuda' else None
        learn.model = _DDP(learn.model, device_ids=device_ids, **self.ddp_kwargs)
        self.valid_counts: list[list[int]] = []
        if not learn.data.empty_val:
            learn.data.valid_dl.dl = self._valid_loader(self.old_valid)
        self.smoother = SmoothenValue(0.98)

    def _agreed_seed(self) -> int:
        "A seed drawn on rank 0 and sent to every rank, so every rank shuffles the same way (the epoch varies it)."
        t = torch.randint(0, 2 ** 31 - 1, (1,), dtype=torch.long)
        if dist.get_backend() == 'nccl':
            t = t.cuda()
        dist.broadcast(t, src=0)
        return int(t.item())

    def _train_loader(self, dl: DataLoader) -> DataLoader:
        "The training loader of this rank: the same batch size, over its shard."
        _check_shardable(dl, 'training')
        sampler = dl.sampler
        if isinstance(sampler, ShardSampler):   # a shard rebuilt by DeviceDataLoader (a new batch size, say)
            sampler = sampler.sampler
        if isinstance(sampler, (RandomSampler, SequentialSampler, DistributedSampler)):
            shuffle = sampler.shuffle if isinstance(sampler, DistributedSampler) else isinstance(sampler, RandomSampler)
            shard = DistributedSampler(dl.dataset, self.world, self.rank, shuffle=shuffle, seed=self.shared_seed)
        else:
            shard = ShardSampler(sampler, self.world, self.rank, seed=self.shared_seed)
        # Keep the last short batch when the shard holds fewer items than a batch (as DataBunch.create does).
        drop_last = dl.drop_last and len(shard) > dl.batch_size
        # Per-rank generator: workers' random augmentations differ between ranks.
        gen = torch.Generator().manual_seed(self.shared_seed + 1 + self.rank)
        return _loader_like(dl, batch_size=dl.batch_size, sampler=shard, drop_last=drop_last, generator=gen)

    def _valid_loader(self, dl: DataLoader) -> DataLoader:
        "The validation loader of this rank: its slice of each global batch (see `valid_shard_plan`)."
        _check_shardable(dl, 'validation')
        batches, self.valid_counts = valid_shard_plan(list(dl.sampler), dl.batch_size, self.world, self.rank)
        return _loader_like(dl, batch_sampler=batches)

    def on_epoch_begin(self, **kwargs: Any) -> None:
        self.valid_step = 0
        if self.active:
            # Counted over every fit, so that a second fit (after lr_find, say) does not replay the same order.
            self.learn.data.train_dl.dl.sampler.set_epoch(self.epochs_seen)
            self.epochs_seen += 1

    def on_batch_begin(self, last_target: Any, train: bool, **kwargs: Any) -> dict | None:
        if not self.active or train:
            return None
        if self.valid_step >= len(self.valid_counts):
            raise RuntimeError("DistributedTrainer: the validation loader gave more batches than its plan "
                               "(was learn.data.valid_dl replaced during fit?).")
        self.counts = self.valid_counts[self.valid_step]
        self.valid_step += 1
        return {'last_target': gather_batch(last_target, self.counts)}

    def on_loss_begin(self, last_output: Any, train: bool, **kwargs: Any) -> dict | None:
        if not self.active or train:
            return None
        return {'last_output': gather_batch(last_output, self.counts)}

    def on_backward_begin(self, last_loss: Tensor, **kwargs: Any) -> dict | None:
        if not self.active:
            return None
        # The mean of this batch's loss over the ranks, for what reads its value (Recorder, lr_find, trackers):
        # the same on every rank, so their decisions agree. Adding the detached difference keeps the gradient of
        # this rank's own loss, which DDP averages.
        mean = last_loss.detach().float().clone()
        dist.all_reduce(mean)
        mean /= self.world
        self.smoother.add_value(mean)
        shared = last_loss + (mean - last_loss.detach()).to(last_loss.dtype)
        return {'last_loss': shared, 'smooth_loss': self.smoother.smooth}

    def on_train_end(self, exception: BaseException | bool = False, **kwargs: Any) -> None:
        if not self.active:
            return
        self.active = False
        self.learn.model = self.old_model
        self.learn.data.valid_dl.dl = self.old_valid
        if exception and not isinstance(exception, KeyboardInterrupt):
            warnings.warn(f"Rank {self.rank} of {self.world} stopped training with {type(exception).__name__}: "
                          f"{exception}. The other ranks stop when the launcher ends them, or after the process "
                          f"group's timeout.")


class DistributedRecorder(LearnerCallback):
    """fastai v1's per-process record: each rank writes its training losses (`losses_{rank}.npy`) and, per epoch, the
    validation loss then the metrics (`metrics_{rank}.npy`) to `learn.path/cache_dir` after every epoch (atomically),
    for `read_metrics`. Under `DistributedTrainer` every rank already reports the whole validation set's numbers,
    so this is for scripts written for v1 (`cuda_id` is accepted for its signature; files are named by rank).
    """

    def __init__(self, learn: Learner, cuda_id: int | None = 0, cache_dir: PathOrStr = 'tmp'):
        super().__init__(learn)
        self.cuda_id, self.cache_dir = cuda_id, cache_dir

    def on_train_begin(self, **kwargs: Any) -> None:
        (self.learn.path / self.cache_dir).mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, **kwargs: Any) -> None:
        self.save_stats()

    def on_train_end(self, **kwargs: Any) -> None:
        self.save_stats()

    def save_stats(self) -> None:
        "Write this rank's losses and per-epoch [valid_loss, *metrics] (a missing value is NaN)."
        rec, folder, rank = self.learn.recorder, self.learn.path / self.cache_dir, rank_distrib()
        metrics = rec.metrics or [[] for _ in rec.val_losses]
        stats = [[v, *m] for v, m in zip(rec.val_losses, metrics)]
        for name, values in ((f'losses_{rank}.npy', rec.losses), (f'metrics_{rank}.npy', stats)):
            with atomic_write(folder / name) as f:
                np.save(f, np.array(values, dtype=float))


def read_metrics(cache_path: PathOrStr, n_gpus: int, reduce: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The (losses, metrics) that `DistributedRecorder` wrote in `cache_path` for ranks 0 to `n_gpus - 1`: averaged over
    the ranks when `reduce`, else stacked with the rank first."""
    folder = Path(cache_path)
    missing = [r for r in range(n_gpus) if not (folder / f'losses_{r}.npy').is_file()]
    if missing:
        raise FileNotFoundError(f"No DistributedRecorder files of rank(s) {missing} in {folder}: was it the cache_dir "
                                f"of the run, and did every rank train (n_gpus={n_gpus})?")
    losses = np.stack([np.load(folder / f'losses_{r}.npy') for r in range(n_gpus)])
    metrics = np.stack([np.load(folder / f'metrics_{r}.npy') for r in range(n_gpus)])
    return (losses.mean(0), metrics.mean(0)) if reduce else (losses, metrics)


class _DDP(nn.parallel.DistributedDataParallel):
    "DistributedDataParallel with the `reset` of recurrent models (RNNTrainer resets the hidden state each epoch)."

    def reset(self) -> None:
        "Call the wrapped model's `reset`, when it has one."
        if callable(getattr(self.module, 'reset', None)):
            self.module.reset()


def _check_shardable(dl: DataLoader, name: str) -> None:
    "Fail early on loaders whose batches do not come from a sampler over the dataset's items."
    if dl.batch_size is None or type(dl).__iter__ is not DataLoader.__iter__:
        raise TypeError(f"DistributedTrainer shards a loader through its sampler, but the {name} loader "
                        f"({type(dl).__name__}) builds its batches itself (e.g. a tabular or language-model "
                        f"loader). Train this kind of data on one process for now.")


def _loader_like(dl: DataLoader, **changes: Any) -> DataLoader:
    "A DataLoader over the same dataset with the same workers and collate function, and `changes`."
    args = dict(dataset=dl.dataset, num_workers=dl.num_workers, collate_fn=dl.collate_fn, pin_memory=dl.pin_memory,
                timeout=dl.timeout, worker_init_fn=dl.worker_init_fn, persistent_workers=dl.persistent_workers,
                generator=dl.generator)
    args.update(changes)
    return DataLoader(**args)
