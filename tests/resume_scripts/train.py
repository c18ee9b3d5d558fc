"""A small training run for tests/test_resume.py: `python train.py OUT MODE [WORKERS]`.

MODE (WORKERS: DataLoader workers, default 0): 'clean' trains 4 epochs of one-cycle; 'crash' is the same run killed by SIGKILL in the middle of epoch 2;
'resume_last' repeats the call with resume='ck_last' (the checkpoint of every 3 batches); 'start_epoch' resumes
fastai v1's way, fit_one_cycle(..., start_epoch=2) with SaveModelCallback(every='epoch') loading ck_1.
The run draws random numbers everywhere a real one does: shuffling, augmentation in the dataset, dropout.
Writes OUT/MODE.pt (weights and buffers) and OUT/MODE.json (the recorder's history).
"""
import json
import os
import signal
import sys
from pathlib import Path

import torch
from torch import nn

from fastlib.basic_data import DataBunch
from fastlib.basic_train import Learner
from fastlib.callback import Callback
from fastlib.callbacks import CSVLogger, SaveModelCallback
from fastlib.testing import FakeDataset, fake_datasets
from fastlib.torch_core import set_seed


class NoisyDataset(FakeDataset):
    "Each item gets fresh random noise (an augmentation drawn from torch's generator, in workers or not)."

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x + 0.1 * torch.randn_like(x), y


class KillAt(Callback):
    "SIGKILL this process after training batch `batch` of epoch `epoch` (no clean-up runs, as in a real crash)."

    def __init__(self, epoch, batch):
        self.epoch, self.batch = epoch, batch

    def on_batch_end(self, epoch, num_batch, train, **kwargs):
        if train and epoch == self.epoch and num_batch == self.batch:
            os.kill(os.getpid(), signal.SIGKILL)


def learner(out, workers):
    set_seed(42)
    train, valid = fake_datasets(n_in=8, n_classes=3, train_length=200, valid_length=64)
    # Workers that start afresh each epoch draw their seeds from this process's generator (persistent ones keep
    # their random state across epochs, which a resumed run cannot restore).
    data = DataBunch.create(NoisyDataset(train.x, train.y, train.classes), valid, bs=16, num_workers=workers,
                            device=torch.device('cpu'), persistent_workers=False)
    model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
    learn = Learner(data, model, metrics=['accuracy'], path=out, add_time=False)
    learn.split([model[3]])
    return learn


def main(out, mode, workers=0):
    out = Path(out)
    learn = learner(out, workers)
    cbs = [SaveModelCallback(learn, every='epoch', name='ck', every_batches=3), CSVLogger(learn)]
    if mode == 'crash':
        cbs.append(KillAt(epoch=2, batch=7))
    if mode == 'start_epoch':
        learn.fit_one_cycle(4, slice(1e-3, 1e-2), callbacks=cbs, start_epoch=2)
    else:
        learn.fit_one_cycle(4, slice(1e-3, 1e-2), callbacks=cbs, resume='ck_last' if mode == 'resume_last' else None)
    torch.save(learn.model.state_dict(), out / f'{mode}.pt')
    rec = learn.recorder
    (out / f'{mode}.json').write_text(json.dumps({'losses': rec.losses, 'val_losses': rec.val_losses,
                                                 'metrics': rec.metrics, 'lrs': [list(map(float, lr)) if hasattr(lr, '__len__') else lr for lr in rec.lrs],
                                                 'nb_batches': rec.nb_batches}))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
