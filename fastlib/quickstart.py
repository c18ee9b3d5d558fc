"""The quick start: train a small CNN on the bundled mnist_tiny (3s vs 7s) with lr_find and one-cycle.

Run `python -m fastlib.quickstart [--epochs N] [--out FOLDER]`. It needs no network: mnist_tiny ships inside
the package. It prints the validation accuracy and saves the loss and learning-rate plots as PNG files.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib
import numpy as np
import torch
from PIL import Image

from .basic_data import DataBunch
from .basic_train import Learner
from .core import atomic_write
from .datasets import URLs, untar_data
from .layers import simple_cnn
from .metrics import accuracy
from .torch_core import set_seed
from .testing import FakeDataset

__all__ = ['mnist_tiny_databunch', 'main']


def _load_folder(folder: Path, classes: list[str]) -> FakeDataset:
    "All the PNGs of `folder/<class>/` as one float tensor (N, 1, 28, 28) in [0, 1], with class indices."
    images, labels = [], []
    for idx, name in enumerate(classes):
        for f in sorted((folder / name).glob('*.png')):
            images.append(np.asarray(Image.open(f).convert('L'), dtype=np.float32) / 255.)
            labels.append(idx)
    x = torch.from_numpy(np.stack(images))[:, None]  # (N, 28, 28) -> (N, 1, 28, 28)
    return FakeDataset(x, torch.tensor(labels), classes)


def mnist_tiny_databunch(bs: int = 64) -> DataBunch:
    "mnist_tiny's train and valid folders as a DataBunch of in-memory tensors, batch size `bs`."
    path = untar_data(URLs.MNIST_TINY)
    classes = sorted(p.name for p in (path / 'train').iterdir() if p.is_dir())
    train_ds, valid_ds = _load_folder(path / 'train', classes), _load_folder(path / 'valid', classes)
    return DataBunch.create(train_ds, valid_ds, path=path, bs=bs, num_workers=0)


def main(argv: list[str] | None = None) -> float:
    "Train on mnist_tiny for `--epochs` epochs; returns the final validation accuracy."
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--out', type=Path, default=Path('quickstart_output'), help='folder for the plots')
    parser.add_argument('--seed', type=int, default=42)
    args = parser.parse_args(argv)
    matplotlib.use('Agg')  # write PNG files; no screen needed
    set_seed(args.seed)
    data = mnist_tiny_databunch()
    # (1, 28, 28) -> 16 x 14 x 14 -> 32 x 7 x 7 -> 2 x 4 x 4, pooled to the 2 class scores
    model = simple_cnn((1, 16, 32, 2), bn=True)
    learn = Learner(data, model, metrics=[accuracy])
    learn.split([model[-2]])
    suggestions = learn.lr_find()
    # `steep` (where the loss falls fastest) suits one-cycle on this small, fresh model; `valley` is more cautious.
    lr = suggestions.steep if suggestions.steep is not None else 1e-2
    learn.fit_one_cycle(args.epochs, max_lr=lr)
    acc = float(learn.validate()[1])
    print(f'accuracy: {acc:.4f}')
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fig in (('losses', learn.recorder.plot_losses(return_fig=True)),
                      ('lr', learn.recorder.plot_lr(show_moms=True, return_fig=True))):
        with atomic_write(args.out / f'{name}.png') as f:
            fig.savefig(f, format='png')
    print(f'plots saved in {args.out}/: losses.png, lr.png')
    return acc


if __name__ == '__main__':
    main()
