"""Images per second of a training loader over cifar10_small (JPEG files): fastlib against torchvision.

fastlib: `ImageDataBunch.from_folder(ds_tfms=get_transforms(), size=...)` normalized; its workers decode to uint8
tensors (resized per item only when larger than `size`: cifar's 32 px images are upsampled inside the batch's
resampling), and the flip/warp/rotate/zoom/lighting run on whole batches on the device (on a CPU: in the workers,
which send uint8 batches that this process makes float and normalizes). torchvision: `ImageFolder` + `DataLoader`
with per-item RandomResizedCrop, RandomHorizontalFlip, RandomRotation, ColorJitter, ToTensor, Normalize (the same
kinds of augmentation), the same `bs` and `num_workers`, batches moved to the same device. Ceiling: a plain PIL
open + convert + resize loop in this process (one core). Each loader is timed over `--batches` batches after its
first one (worker start-up excluded; each batch is read once, as training reads it), `--reps` times, alternating;
prints the best and the median, and the fastlib / torchvision ratio.

    python bench/image_pipeline.py [--sizes 32 128] [--bs 64] [--workers N] [--reps 3] [--batches 60]
                                   [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import PIL.Image
import torch

from fastlib.datasets import URLs, untar_data
from fastlib.vision import ImageDataBunch, cifar_stats, get_image_files, get_transforms


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def _touch(x: torch.Tensor) -> None:
    """Read one value per 4 KiB page of the batch `x`, as the model's forward pass would read them all.

    A batch made by a worker process arrives in shared memory that this process has not mapped yet: the first
    read of each page costs a page fault (about 40 ms for a 64 x 3 x 128 x 128 float batch). Without this, a
    loader whose consumer never reads the pixels would look faster than one that normalizes them here.
    """
    float(x.reshape(-1)[::1024].sum())


def _time_loader(it_factory, n_batches: int, bs: int, device: torch.device) -> float:
    "Images/s over `n_batches` batches of the iterator `it_factory()`, after its first batch."
    it = it_factory()
    next(it)
    _sync(device)
    start, n = time.perf_counter(), 0
    for _ in range(n_batches):
        try:
            x, _ = next(it)
        except StopIteration:
            it = it_factory()
            x, _ = next(it)
        _touch(x)
        n += x.shape[0]
    _sync(device)
    return n / (time.perf_counter() - start)


def fastlib_loader(path: Path, size: int, bs: int, workers: int, device: torch.device):
    data = ImageDataBunch.from_folder(path, ds_tfms=get_transforms(), size=size, bs=bs, num_workers=workers,
                                      device=device).normalize(cifar_stats)
    return lambda: iter(data.train_dl)


def torchvision_loader(path: Path, size: int, bs: int, workers: int, device: torch.device):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder
    tfms = T.Compose([T.RandomResizedCrop(size, scale=(0.35, 1.)), T.RandomHorizontalFlip(), T.RandomRotation(10),
                      T.ColorJitter(brightness=0.2, contrast=0.2), T.ToTensor(), T.Normalize(*cifar_stats)])
    ds = ImageFolder(str(path / 'train'), transform=tfms)
    dl = torch.utils.data.DataLoader(ds, batch_size=bs, shuffle=True, num_workers=workers, drop_last=True,
                                     pin_memory=device.type == 'cuda', persistent_workers=workers > 0)

    def gen():
        for x, y in dl:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    return gen


def pil_loop(files: list[Path], size: int, n: int) -> float:
    "Images/s of opening, converting and resizing `n` files with PIL in this process."
    start = time.perf_counter()
    for f in files[:n]:
        with PIL.Image.open(f) as im:
            im.convert('RGB').resize((size, size), PIL.Image.BILINEAR)
    return n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--sizes', type=int, nargs='+', default=[32, 128])
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--workers', type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--batches', type=int, default=60)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    args = p.parse_args()
    os.environ.setdefault('FASTLIB_ARCHIVE', str(Path(__file__).resolve().parents[2] / 'shared' / 'data'))
    path = untar_data(URLs.CIFAR10_SMALL)
    device = torch.device(args.device)
    files = get_image_files(path / 'train', recurse=True)
    print(f'cifar10_small at {path}: {len(files)} training JPEGs; device {device}, bs {args.bs}, '
          f'workers {args.workers}, {args.batches} batches x {args.reps} reps, torch threads {torch.get_num_threads()}')
    for size in args.sizes:
        loaders = {'fastlib': fastlib_loader(path, size, args.bs, args.workers, device),
                   'torchvision': torchvision_loader(path, size, args.bs, args.workers, device)}
        res = {k: [] for k in loaders}
        res['PIL loop (1 core)'] = []
        for _ in range(args.reps):
            for name, factory in loaders.items():
                res[name].append(_time_loader(factory, args.batches, args.bs, device))
            res['PIL loop (1 core)'].append(pil_loop(files, size, 2000))
        print(f'\nsize {size}:')
        for name, v in res.items():
            print(f'  {name:18s} best {max(v):8.0f} img/s   median {statistics.median(v):8.0f} img/s')
        print(f'  ratio fastlib / torchvision: best {max(res["fastlib"]) / max(res["torchvision"]):.2f}x, '
              f'median {statistics.median(res["fastlib"]) / statistics.median(res["torchvision"]):.2f}x')


if __name__ == '__main__':
    main()
