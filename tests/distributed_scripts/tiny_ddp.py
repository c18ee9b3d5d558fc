"""A tiny distributed run for tests/test_distributed.py: `python -m fastlib.launch --nproc_per_node 2 tiny_ddp.py
OUT_DIR MODE`, or `run(out_dir, 'single')` in-process for the single-process reference.

MODE 'fit': lr_find, then fit_one_cycle for 2 epochs with SaveModelCallback and CSVLogger, then export; each rank
writes what it saw to OUT_DIR/rank{r}.json. 'single' is the same run on one process at the same global batch size,
its training batches made of exactly the items the two ranks' batches hold together. 'crash': rank 1 raises in its
third training batch; 'hang': rank 1 sleeps there instead. 'fp16': fit under mixed precision (bfloat16 autocast on a CPU).
"""
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from fastlib.basic_data import DataBunch
from fastlib.basic_train import Learner
from fastlib.callback import Callback
from fastlib.callbacks import CSVLogger, SaveModelCallback
from fastlib.distributed import setup_distrib
from fastlib.metrics import accuracy
from fastlib.testing import fake_datasets
from fastlib.torch_core import rank_distrib

WORLD, BS, SEED = 2, 8, 123   # per-rank batch size; the single-process reference uses WORLD * BS
N_TRAIN, N_VALID = 96, 37     # 37: the validation set divides neither by 2 nor by the global batch


class ReferenceBatches:
    """The global batches of a 2-rank run: rank r's batch j is DistributedSampler(rank=r)'s items j*BS:(j+1)*BS, at
    the epoch counted over every fit (as DistributedTrainer counts them)."""

    def __init__(self, ds):
        self.ds, self.epoch = ds, 0

    def __len__(self):
        return (N_TRAIN // WORLD) // BS

    def __iter__(self):
        orders = []
        for r in range(WORLD):
            s = DistributedSampler(self.ds, WORLD, r, shuffle=True, seed=SEED)
            s.set_epoch(self.epoch)
            orders.append(list(s))
        self.epoch += 1
        for j in range(len(self)):
            yield [i for o in orders for i in o[j * BS:(j + 1) * BS]]


class CrashOnRank1(Callback):
    "Rank 1 fails (or, with `hang`, gets stuck) in its third training batch."

    def __init__(self, hang=False):
        self.hang = hang

    def on_batch_end(self, num_batch, train, **kwargs):
        if train and rank_distrib() == 1 and num_batch == 2:
            if self.hang:
                time.sleep(600)
            raise RuntimeError('boom on rank 1')


def make_learner(out_dir: Path, single: bool) -> Learner:
    train_ds, valid_ds = fake_datasets(8, 3, N_TRAIN, N_VALID, seed=0)
    bs = BS * WORLD if single else BS
    data = DataBunch.create(train_ds, valid_ds, bs=bs, num_workers=0, device=torch.device('cpu'), path=out_dir)
    if single:
        data.train_dl.dl = DataLoader(train_ds, batch_sampler=ReferenceBatches(train_ds),
                                      collate_fn=data.train_dl.dl.collate_fn)
    torch.manual_seed(0)   # rank 0's weights; DDP copies them to the other ranks
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))   # no batch norm: per-rank statistics
    return Learner(data, model, metrics=[accuracy], path=out_dir)


def run(out_dir: str, mode: str) -> dict:
    torch.set_num_threads(1)
    out_dir = Path(out_dir)
    single = mode == 'single'
    if not single:
        setup_distrib()
    learn = make_learner(out_dir, single)
    if not single:
        learn.to_distributed(seed=SEED)
    res = {}
    if mode == 'fp16':
        learn.to_fp16()
        learn.fit_one_cycle(2, 1e-2)
    elif mode in ('crash', 'hang'):
        learn.fit(2, 1e-2, callbacks=[CrashOnRank1(hang=mode == 'hang')])
    else:
        res['lr_find'] = list(learn.lr_find(num_it=10, end_lr=1))
        learn.fit_one_cycle(2, 1e-2, callbacks=[SaveModelCallback(learn, name='best'), CSVLogger(learn)])
        learn.export()
    rec = learn.recorder
    res.update(val_losses=[float(v) for v in rec.val_losses], metrics=[[float(m) for m in ms] for ms in rec.metrics],
               losses=list(rec.losses), n_batches=rec.nb_batches, validate=[float(v) for v in learn.validate()],
               weights=[float(p.detach().double().sum()) for p in learn.model.parameters()],
               model_type=type(learn.model).__name__)
    name = 'single' if single else f'rank{rank_distrib()}'
    (out_dir / f'{name}.json').write_text(json.dumps(res))
    return res


if __name__ == '__main__':
    run(sys.argv[1], sys.argv[2])
