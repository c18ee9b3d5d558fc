"""How much time fastlib's `fit` adds to a hand-written PyTorch training loop.

Trains the same small MLP and the same small CNN on the same data, from the same initial weights, with the
same optimizer (AdamW, betas (0.9, 0.99), weight decay 0.01), batch size and per-epoch validation (loss and
accuracy), once with `Learner.fit` and once with a plain loop, alternating the two `--reps` times in this
process. Prints the median time of each and the ratio fastlib / plain (targets: <= 1.05 for the MLP, which is
overhead-bound, and <= 1.02 for the CNN). Uses Fashion-MNIST from ../shared/data when it is there, else
random data of the same shape (the timing does not depend on the pixel values).

    python bench/loop_overhead.py [--reps 5] [--epochs 2] [--device cpu|cuda] [--n-train 10000] [--threads N]
"""
from __future__ import annotations

import argparse
import copy
import gc
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastlib.basic_data import DataBunch
from fastlib.basic_train import Learner
from fastlib.metrics import accuracy

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'fashion_mnist.npz'


def load_data(n_train: int, n_valid: int) -> tuple[TensorDataset, TensorDataset]:
    "Fashion-MNIST (or random stand-ins) as float tensors (N, 1, 28, 28) in [0, 1] with int64 labels."
    if SHARED.is_file():
        with np.load(SHARED) as f:
            xt, yt, xv, yv = f['x_train'][:n_train], f['y_train'][:n_train], f['x_test'][:n_valid], f['y_test'][:n_valid]
    else:
        rng = np.random.default_rng(0)
        xt, xv = rng.integers(0, 256, (n_train, 28, 28), np.uint8), rng.integers(0, 256, (n_valid, 28, 28), np.uint8)
        yt, yv = rng.integers(0, 10, n_train), rng.integers(0, 10, n_valid)

    def ds(x, y):
        return TensorDataset(torch.from_numpy(x).float().div_(255).unsqueeze(1), torch.from_numpy(y).long())

    return ds(xt, yt), ds(xv, yv)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def cnn() -> nn.Module:
    # (1, 28, 28) -> 32 x 14 x 14 -> 64 x 7 x 7 -> 10
    return nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def make_opt(params, lr):
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.01)


def plain_fit(model, train_ds, valid_ds, epochs, bs, lr, device):
    "The loop a PyTorch user writes by hand: train, then validation loss and accuracy each epoch."
    opt = make_opt(model.parameters(), lr)
    train_dl = DataLoader(train_ds, bs, shuffle=True, drop_last=True, pin_memory=device.type == 'cuda')
    valid_dl = DataLoader(valid_ds, bs, pin_memory=device.type == 'cuda')
    for _ in range(epochs):
        model.train()
        for xb, yb in train_dl:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        total, correct, n = torch.zeros((), device=device), torch.zeros((), device=device), 0
        with torch.no_grad():
            for xb, yb in valid_dl:
                xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
                out = model(xb)
                total += F.cross_entropy(out, yb) * len(yb)
                correct += (out.argmax(1) == yb).sum()
                n += len(yb)
        val_loss, acc = (total / n).item(), (correct / n).item()
    return val_loss, acc


def fastlib_fit(model, train_ds, valid_ds, epochs, bs, lr, device):
    data = DataBunch.create(train_ds, valid_ds, bs=bs, num_workers=0, device=device, no_check=True)
    # fastlib's defaults: Adam (0.9, 0.99) with decoupled weight decay 0.01 = torch's AdamW above.
    learn = Learner(data, model, loss_func=F.cross_entropy, metrics=[accuracy], wd=0.01, true_wd=True,
                    silent=True)
    learn.fit(epochs, lr)
    return learn.recorder.val_losses[-1], learn.recorder.metrics[-1][0]


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def bench(name, make_model, train_ds, valid_ds, args, device):
    torch.manual_seed(0)
    init = make_model().to(device)
    times = {'fastlib': [], 'plain': []}
    runners = {'fastlib': fastlib_fit, 'plain': plain_fit}
    for rep in range(args.reps + 1):  # the first round warms up (allocator, kernels) and is not counted
        for kind in (('fastlib', 'plain') if rep % 2 == 0 else ('plain', 'fastlib')):
            model = copy.deepcopy(init)
            torch.manual_seed(rep)
            gc.collect()  # start each run with no garbage left by the previous one (GC stays on while timing)
            sync(device)
            t = time.perf_counter()
            runners[kind](model, train_ds, valid_ds, args.epochs, args.bs, 1e-3, device)
            sync(device)
            if rep > 0:
                times[kind].append(time.perf_counter() - t)
    fl, pl = statistics.median(times['fastlib']), statistics.median(times['plain'])
    ratios = [a / b for a, b in zip(times['fastlib'], times['plain'])]
    print(f'{name:4s}  fastlib {fl:7.3f}s   plain {pl:7.3f}s   ratio (median of times) {fl / pl:.3f}   '
          f'ratio per pair: median {statistics.median(ratios):.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}')
    return fl / pl


def main():
    parser = argparse.ArgumentParser(description='fastlib fit vs a plain PyTorch loop')
    parser.add_argument('--reps', type=int, default=5)
    parser.add_argument('--epochs', type=int, default=2)
    parser.add_argument('--bs', type=int, default=64)
    parser.add_argument('--n-train', type=int, default=10000)
    parser.add_argument('--n-valid', type=int, default=2000)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--threads', type=int, default=None, help="torch's CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    train_ds, valid_ds = load_data(args.n_train, args.n_valid)
    print(f'device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, '
          f'{args.n_train} train / {args.n_valid} valid items, bs {args.bs}, {args.epochs} epochs, {args.reps} reps, '
          f'data: {"Fashion-MNIST" if SHARED.is_file() else "random"}')
    bench('MLP', mlp, train_ds, valid_ds, args, device)
    bench('CNN', cnn, train_ds, valid_ds, args, device)


if __name__ == '__main__':
    main()
