"""Image data: ImageList and its kin (segmentation, points, boxes, image-to-image), ImageDataBunch and its
factories, normalization, and file helpers (get_image_files, verify_images, download_images).

Speed: a loader's workers open each file, resize and crop it, and return uint8 tensors of the final size; the
batch goes to the device as uint8 (4x less to copy), and there `ImageBatchTransform` converts it to floats and
applies the random geometric and lighting transforms to the whole batch in one `grid_sample`, before
normalization. Images smaller than `size` are not upsampled per item: when a batch shares one source size, they
travel at that size and the batch's resampling reads them directly (16x fewer bytes for 32 px images at 128).
`ImageDataBunch.create` arranges this for every LabelList of images (it adds `on_batch=True` and
`resize_on_batch=True` to their transform arguments); `item.apply_tfms(tfms)` still does everything for one item.
"""
from __future__ import annotations

import json
import mimetypes
import os
import urllib.request
import warnings
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import PIL
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..basic_data import CollateThenTfms, DataBunch, DatasetType
from ..core import PathOrStr, atomic_write, ifnone
from ..data_block import (CategoryList, EmptyLabel, ItemList, LabelList, LabelLists, MultiCategoryList,
                          MultiCategoryProcessor, PreProcessor, csv_file, get_files)
from ..layers import CrossEntropyFlat, MSELossFlat
from ..serialization import register_safe_globals
from ..torch_core import data_collate, to_data
from .image import FlowField, Image, ImageBBox, ImagePoints, ImageSegment, _open_tensor
from .transform import ImageBatchTransform, ImagesToFloat

__all__ = ['get_image_files', 'get_annotations', 'bb_pad_collate', 'normalize', 'denormalize', 'normalize_funcs',
           'channel_view', 'ImageDataBunch', 'download_image', 'download_images', 'resize_to', 'verify_image',
           'verify_images', 'ImageList', 'ObjectCategoryProcessor', 'ObjectCategoryList', 'ObjectItemList',
           'SegmentationProcessor', 'SegmentationLabelList', 'SegmentationItemList', 'PointsLabelList',
           'PointsItemList', 'ImageImageList', 'image_extensions', 'imagenet_stats', 'cifar_stats', 'mnist_stats']

image_extensions = {k for k, v in mimetypes.types_map.items() if v.startswith('image/')} | {'.webp', '.tif', '.tiff'}

# Per-channel (mean, std) of well-known data sets.
imagenet_stats = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
cifar_stats = ([0.491, 0.482, 0.447], [0.247, 0.243, 0.261])
mnist_stats = ([0.131, 0.131, 0.131], [0.308, 0.308, 0.308])


# ---------------------------------------------------------------------------------------------- normalization
def channel_view(x: Tensor) -> Tensor:
    "`x` (n, c, ...) as (c, everything else): one row per channel."
    return x.transpose(0, 1).contiguous().view(x.shape[1], -1)


def normalize(x: Tensor, mean: Tensor, std: Tensor, inplace: bool = False) -> Tensor:
    "`x` (n, c, h, w) normalized by the per-channel `mean` and `std` (in `x` itself when `inplace`)."
    mean, std = mean[..., None, None], std[..., None, None]
    # One new tensor at most: each fresh allocation of a batch-sized buffer costs page faults on first write.
    return x.sub_(mean).div_(std) if inplace else (x - mean).div_(std)


def denormalize(x: Tensor, mean: Tensor, std: Tensor, do_x: bool = True) -> Tensor:
    "`x` (n, c, h, w) with the normalization by `mean` and `std` undone (on the CPU) when `do_x`."
    return x.cpu().float() * std[..., None, None] + mean[..., None, None] if do_x else x.cpu()


def _normalize_batch(b: tuple, mean: Tensor, std: Tensor, do_x: bool = True, do_y: bool = False,
                     inplace: bool = False) -> tuple:
    "The batch `b` with its inputs (`do_x`) and/or image targets (`do_y`) normalized (`inplace`: in their tensors)."
    x, y = b
    mean, std = mean.to(x.device), std.to(x.device)

    def norm(t: Tensor) -> Tensor:
        return normalize(t, mean, std, inplace=inplace and t.is_floating_point() and not t.requires_grad)
    if do_x:
        x = norm(x)
    if do_y and isinstance(y, Tensor) and y.dim() == 4:
        y = norm(y)
    return x, y


def normalize_funcs(mean: Sequence[float] | Tensor, std: Sequence[float] | Tensor, do_x: bool = True,
                    do_y: bool = False, inplace: bool = False) -> tuple[Callable, Callable]:
    """The batch transform normalizing by `mean`/`std` (inputs if `do_x`, image targets if `do_y`; in the batch's
    own tensors if `inplace`) and its inverse."""
    mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
    return (partial(_normalize_batch, mean=mean, std=std, do_x=do_x, do_y=do_y, inplace=inplace),
            partial(denormalize, mean=mean, std=std, do_x=do_x))


register_safe_globals(_normalize_batch, denormalize, normalize)


# -------------------------------------------------------------------------------------------------- files
def get_image_files(c: PathOrStr, check_ext: bool = True, recurse: bool = False) -> list[Path]:
    "The image files in the folder `c` (any file when not `check_ext`; subfolders too when `recurse`)."
    return get_files(c, extensions=image_extensions if check_ext else None, recurse=recurse)


def get_annotations(fname: PathOrStr, prefix: str | None = None) -> tuple[list[str], list[list]]:
    """The image names and their [boxes, labels] from the COCO-style json `fname` (boxes as top, left, bottom,
    right in pixels), names prefixed by `prefix`."""
    j = json.loads(Path(fname).read_text())
    id2name = {o['id']: o['file_name'] for o in j['images']}
    id2cat = {o['id']: o['name'] for o in j['categories']}
    boxes: dict = {}
    for a in j['annotations']:
        x, y, w, h = a['bbox']
        b = boxes.setdefault(a['image_id'], [[], []])
        b[0].append([y, x, y + h, x + w])
        b[1].append(id2cat[a['category_id']])
    ids = [i for i in id2name if i in boxes]
    return [ifnone(prefix, '') + id2name[i] for i in ids], [boxes[i] for i in ids]


def bb_pad_collate(samples: Sequence, pad_idx: int = 0) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    "Collate (image, boxes) samples, padding each image's boxes (zeros) and labels (`pad_idx`) to the most boxes."
    samples = [(to_data(x), y.data if hasattr(y, 'data') and not isinstance(y, (Tensor, tuple)) else y)
               for x, y in samples]
    pairs = [y if isinstance(y, tuple) else (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)) for _, y in samples]
    k = max(1, max(len(lbl) for _, lbl in pairs))
    bboxes = torch.zeros(len(samples), k, 4)
    labels = torch.full((len(samples), k), pad_idx, dtype=torch.long)
    for i, (b, lbl) in enumerate(pairs):
        if len(lbl):
            bboxes[i, -len(lbl):] = torch.as_tensor(b, dtype=torch.float32)
            labels[i, -len(lbl):] = torch.as_tensor(lbl, dtype=torch.long)
    return torch.stack([x for x, _ in samples]), (bboxes, labels)


register_safe_globals(bb_pad_collate)


def resize_to(img: PIL.Image.Image, targ_sz: int, use_min: bool = False) -> tuple[int, int]:
    "The (width, height) that scales `img` so its longest (shortest if `use_min`) side is `targ_sz`."
    w, h = img.size
    ratio = targ_sz / (min(w, h) if use_min else max(w, h))
    return int(w * ratio), int(h * ratio)


def verify_image(file: PathOrStr, delete: bool = True, max_size: int | None = None, dest: PathOrStr | None = None,
                 n_channels: int = 3, interp: int = PIL.Image.BILINEAR, ext: str | None = None,
                 img_format: str | None = None, resume: bool = False, **kwargs: Any) -> bool:
    """Check that `file` opens as an image (warn and `delete` it when not); when `max_size` or the channel count
    (`n_channels`) asks for it, save a resized / converted copy in `dest`. Returns whether the file is good."""
    file = Path(file)
    try:
        with PIL.Image.open(file) as im:
            im.load()
            bands = len(im.getbands())
            too_big = max_size is not None and max(im.size) > max_size
            if too_big or bands != n_channels:
                dest_file = Path(ifnone(dest, file.parent)) / (file.stem + (ext or file.suffix))
                if resume and dest_file.exists():
                    return True
                out = im.convert('RGB' if n_channels == 3 else 'L' if n_channels == 1 else im.mode)
                if too_big:
                    out = out.resize(resize_to(out, max_size), resample=interp)
                with atomic_write(dest_file) as f:
                    out.save(f, format=img_format or PIL.Image.registered_extensions().get(dest_file.suffix.lower()),
                             **kwargs)
        return True
    except Exception as e:
        warnings.warn(f"{file} is not a readable image ({type(e).__name__}: {e})"
                      + ("; deleted." if delete else "; delete it or pass delete=True."))
        if delete:
            file.unlink(missing_ok=True)
        return False


def verify_images(path: PathOrStr, delete: bool = True, max_workers: int = 4, max_size: int | None = None,
                  recurse: bool = False, dest: PathOrStr = '.', n_channels: int = 3, interp: int = PIL.Image.BILINEAR,
                  ext: str | None = None, img_format: str | None = None, resume: bool | None = None,
                  **kwargs: Any) -> list[Path]:
    """Check every image file in `path` (`recurse` into subfolders): warn about (and `delete`) unreadable ones,
    save copies resized to `max_size` / converted to `n_channels` in `path/dest`. Returns the bad files."""
    path = Path(path)
    files = get_image_files(path, recurse=recurse)
    dest = path / dest
    dest.mkdir(parents=True, exist_ok=True)
    func = partial(verify_image, delete=delete, max_size=max_size, dest=dest, n_channels=n_channels, interp=interp,
                   ext=ext, img_format=img_format, resume=bool(resume), **kwargs)
    if max_workers and max_workers > 1:
        with ThreadPoolExecutor(max_workers) as ex:
            ok = list(ex.map(func, files))
    else:
        ok = [func(f) for f in files]
    return [f for f, good in zip(files, ok) if not good]


def download_image(url: str, dest: PathOrStr, timeout: float = 4) -> None:
    "Download `url` to the file `dest` (atomically: a failed download leaves no file)."
    with urllib.request.urlopen(url, timeout=timeout) as r:
        data = r.read()
    with atomic_write(Path(dest)) as f:
        f.write(data)


def download_images(urls: PathOrStr | Sequence[str], dest: PathOrStr, max_pics: int = 1000, max_workers: int = 8,
                    timeout: float = 4) -> list[str]:
    """Download up to `max_pics` images from `urls` (a list, or a text file with one URL a line) into the folder
    `dest` as 00000000.jpg, ...; failures are warned about (naming the URL) and returned."""
    if isinstance(urls, (str, Path)) and Path(urls).is_file():
        urls = Path(urls).read_text().split()
    urls = [u.strip() for u in urls if u.strip()][:max_pics]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)

    def one(i_url: tuple[int, str]) -> str | None:
        i, url = i_url
        suffix = Path(url.split('?')[0]).suffix.lower()
        suffix = suffix if suffix in image_extensions else '.jpg'
        try:
            download_image(url, dest / f'{i:08d}{suffix}', timeout=timeout)
            return None
        except Exception as e:
            warnings.warn(f"Could not download {url}: {type(e).__name__}: {e}")
            return url

    with ThreadPoolExecutor(max(1, max_workers)) as ex:
        res = list(ex.map(one, enumerate(urls)))
    return [u for u in res if u is not None]


# ------------------------------------------------------------------------------------------------- item lists
def _show_grid(n: int, imgsize: int, figsize: tuple | None) -> Any:
    import matplotlib.pyplot as plt
    rows = int(np.ceil(np.sqrt(n)))
    cols = int(np.ceil(n / rows))
    fig, axs = plt.subplots(rows, cols, figsize=ifnone(figsize, (imgsize * cols, imgsize * rows)), squeeze=False)
    for ax in axs.flatten()[n:]:
        ax.axis('off')
    return fig, axs.flatten()


def _on(y: Any, x: Image) -> Any:
    "The target `y` made to fit the image `x`: points and boxes rebuilt from a batch do not know its size."
    if isinstance(y, ImagePoints) and tuple(y.size) == (1, 1):
        y.size = x.size
    return y


class ImageList(ItemList):
    "Image files (paths), opened as `Image`s in `convert_mode` ('RGB', 'L', ...) and passed to `after_open`."
    _bunch = None            # set to ImageDataBunch below
    _square_show = True
    _square_show_res = True
    _y_kind = 'image'        # how ImageBatchTransform moves targets of this kind (image-to-image)

    def __init__(self, *args: Any, convert_mode: str = 'RGB', after_open: Callable | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.convert_mode, self.after_open = convert_mode, after_open
        self.copy_new += ['convert_mode', 'after_open']
        self.c, self.sizes = 3 if convert_mode == 'RGB' else 1, {}

    def open(self, fn: PathOrStr) -> Image:
        "The image in the file `fn` (uint8 pixels)."
        return Image(_open_tensor(fn, self.convert_mode, self.after_open))

    def get(self, i: int) -> Image:
        fn = self.items[i]
        res = fn if isinstance(fn, Image) else self.open(fn)
        self.sizes[i] = res.size
        return res

    def process_one(self, item: Any, processor: Any = None) -> Any:
        "One item to predict: an `Image`, or the path of an image file (opened as this list opens its items)."
        if isinstance(item, (str, os.PathLike)):
            item = self.open(item)
        if not isinstance(item, Image):
            raise TypeError(f"predict takes an Image (e.g. open_image(path)) or the path of an image file, not a "
                            f"{type(item).__name__}. Wrap a tensor of pixels as Image(t), t shaped (channels, height, "
                            f"width) with values in [0, 1].")
        return super().process_one(item, processor)

    @classmethod
    def from_folder(cls, path: PathOrStr = '.', extensions: Collection[str] | None = None, **kwargs: Any) -> ImageList:
        "The image files in `path` and its subfolders (`extensions` default: the image ones)."
        return super().from_folder(path=path, extensions=ifnone(extensions, image_extensions), **kwargs)

    @classmethod
    def from_df(cls, df: pd.DataFrame, path: PathOrStr, cols: Any = 0, folder: PathOrStr | None = None,
                suffix: str = '', **kwargs: Any) -> ImageList:
        "The files named in column `cols` of `df`, under `path/folder`, with `suffix` appended; all must exist."
        res = super().from_df(df, path=path, cols=cols, **kwargs)
        base = Path(res.path) / folder if folder is not None else Path(res.path)
        res.items = np.array([base / f'{o}{suffix or ""}' for o in res.items], dtype=object)
        missing = [str(o) for o in res.items if not os.path.exists(o)]
        if missing:
            raise FileNotFoundError(f"{len(missing)} file(s) named in the table do not exist, e.g. {missing[:5]}. "
                                    f"Check `path`, `folder` and `suffix`, or drop those rows.")
        return res

    @classmethod
    def from_csv(cls, path: PathOrStr, csv_name: str, header: Any = 'infer', delimiter: str | None = None,
                 **kwargs: Any) -> ImageList:
        "The files named in the CSV file `path/csv_name` (see `from_df`)."
        df = pd.read_csv(csv_file(Path(path) / csv_name), header=header,
                         **({} if delimiter is None else {'delimiter': delimiter}))
        return cls.from_df(df, path=path, **kwargs)

    def reconstruct(self, t: Tensor, x: Any = None) -> Image:
        "An Image of the (denormalized) batch tensor `t`."
        return Image(t.float().clamp(0, 1) if t.dtype != torch.uint8 else t)

    def show_xys(self, xs: Sequence, ys: Sequence, imgsize: int = 4, figsize: tuple | None = None,
                 **kwargs: Any) -> Any:
        "Show the inputs `xs` with their targets `ys` (as titles, or drawn over them) in a grid."
        fig, axs = _show_grid(len(xs), imgsize, figsize)
        for x, y, ax in zip(xs, ys, axs):
            x.show(ax=ax, y=_on(y, x), **kwargs)
        fig.tight_layout()
        return fig

    def show_xyzs(self, xs: Sequence, ys: Sequence, zs: Sequence, imgsize: int = 4, figsize: tuple | None = None,
                  **kwargs: Any) -> Any:
        "Show inputs with targets and predictions: 'prediction/target' titles, or side by side for image targets."
        import matplotlib.pyplot as plt
        if not isinstance(ys[0], Image) if len(ys) else True:
            fig, axs = _show_grid(len(xs), imgsize, figsize)
            for x, y, z, ax in zip(xs, ys, zs, axs):
                x.show(ax=ax, title=f'{z}/{y}', **kwargs)
            return fig
        fig, axs = plt.subplots(len(xs), 2, figsize=ifnone(figsize, (imgsize * 2, imgsize * len(xs))), squeeze=False)
        for i, (x, y, z) in enumerate(zip(xs, ys, zs)):
            x.show(ax=axs[i, 0], y=_on(y, x), title='target' if i == 0 else None, **kwargs)
            x.show(ax=axs[i, 1], y=_on(z, x), title='prediction' if i == 0 else None, **kwargs)
        return fig


class ObjectCategoryProcessor(MultiCategoryProcessor):
    "Maps box labels to indices, with class 0 the 'background' (the padding of `bb_pad_collate`)."

    def generate_classes(self, items: Any) -> list:
        return ['background'] + super().generate_classes(items)

    def process_one(self, item: Any) -> Any:
        if isinstance(item, EmptyLabel):
            return item
        return [item[0], [self.c2i.get(o) for o in item[1]]]

    def process(self, ds: ItemList) -> None:
        if self.classes is None:
            self.create_classes(self.generate_classes([o[1] for o in ds.items]))
        ds.classes, ds.c2i = self.classes, self.c2i
        res = [self.process_one(o) for o in ds.items]
        unknown = sorted({lbl for o, r in zip(ds.items, res) for lbl, c in zip(o[1], r[1]) if c is None})
        if unknown:
            raise ValueError(f"Box labels {unknown[:5]} are not among the classes {self.classes[:10]}.")
        arr = np.empty(len(res), dtype=object)
        for i, o in enumerate(res):
            arr[i] = o
        ds.items = arr


class ObjectCategoryList(MultiCategoryList):
    "The boxes and labels of each image (items: [boxes as top, left, bottom, right in pixels, label names])."
    _processor = ObjectCategoryProcessor
    _y_kind = 'bbox'

    def __init__(self, items: Any, classes: Sequence | None = None, pad_idx: int = 0, **kwargs: Any):
        arr = np.empty(len(items), dtype=object)
        for i, o in enumerate(items):
            arr[i] = list(o)
        super().__init__(arr, classes=classes, **kwargs)
        self.pad_idx = pad_idx
        self.copy_new.append('pad_idx')
        self.loss_func = None

    def get(self, i: int) -> ImageBBox:
        h, w = self.x.sizes.get(i) or self.x.get(i).size
        boxes, labels = self.items[i]
        return ImageBBox.create(h, w, boxes, labels, classes=self.classes, pad_idx=self.pad_idx)

    def analyze_pred(self, pred: Any, thresh: float = 0.5) -> Any:
        return pred

    def reconstruct(self, t: Any, x: Any = None) -> ImageBBox:
        boxes, labels = t
        keep = labels != self.pad_idx
        boxes, labels = boxes[keep], labels[keep]
        h, w = x.size if x is not None else (1, 1)
        corners = torch.stack([boxes[:, [0, 1]], boxes[:, [0, 3]], boxes[:, [2, 1]], boxes[:, [2, 3]]], 1)
        return ImageBBox(FlowField((h, w), corners.reshape(-1, 2)), scale=False, labels=labels.tolist(),
                         classes=self.classes, pad_idx=self.pad_idx)


class ObjectItemList(ImageList):
    "Images labelled with boxes (`ObjectCategoryList`); use `bb_pad_collate` (the default of its DataBunch)."
    _label_cls = ObjectCategoryList


class SegmentationProcessor(PreProcessor):
    "Keeps the `classes` (codes) of a SegmentationLabelList."

    def __init__(self, ds: ItemList):
        super().__init__(ds)
        self.classes = ds.classes

    def process(self, ds: ItemList) -> None:
        ds.classes, ds.c = self.classes, len(self.classes) if self.classes is not None else 0


class SegmentationLabelList(ImageList):
    "Mask files whose pixel values index `classes`; a code beyond `classes` is an error naming the file."
    _processor = SegmentationProcessor
    _y_kind = 'mask'

    def __init__(self, items: Any, classes: Sequence | None = None, **kwargs: Any):
        super().__init__(items, **kwargs)
        self.copy_new.append('classes')
        self.classes = None if classes is None else list(classes)
        self.c = len(self.classes) if self.classes is not None else 0
        self.loss_func = CrossEntropyFlat(axis=1)

    def open(self, fn: PathOrStr) -> ImageSegment:
        m = _open_tensor(fn, 'L', self.after_open)
        if self.classes is not None and m.numel():
            top = int(m.max())
            if top >= len(self.classes):
                raise ValueError(f"The mask {fn} holds the code {top}, but there are only {len(self.classes)} classes "
                                 f"(codes 0..{len(self.classes) - 1}). Pass the full `classes` list (codes).")
        return ImageSegment(m)

    def analyze_pred(self, pred: Tensor, thresh: float = 0.5) -> Tensor:
        "The class map (1, h, w) of the scores `pred` (c, h, w)."
        return pred.argmax(dim=0)[None]

    def reconstruct(self, t: Tensor, x: Any = None) -> ImageSegment:
        return ImageSegment(t)


class SegmentationItemList(ImageList):
    "Images whose labels are segmentation masks (`label_from_func(get_mask_fn, classes=codes)`)."
    _label_cls = SegmentationLabelList
    _square_show_res = False


class PointsLabelList(ItemList):
    "Points on each image (items: tensors (k, 2) of pixel coordinates, y then x)."
    _y_kind = 'points'

    def __init__(self, items: Any, **kwargs: Any):
        arr = np.empty(len(items), dtype=object)
        for i, o in enumerate(items):
            arr[i] = torch.as_tensor(np.asarray(o, dtype=np.float32))
        super().__init__(arr, **kwargs)
        self.loss_func = MSELossFlat()
        self.c = int(arr[0].numel()) if len(arr) else 0

    def get(self, i: int) -> ImagePoints:
        size = self.x.sizes.get(i) or self.x.get(i).size
        return ImagePoints(FlowField(size, self.items[i]), scale=True)

    def analyze_pred(self, pred: Tensor, thresh: float = 0.5) -> Tensor:
        return pred.view(-1, 2)

    def reconstruct(self, t: Tensor, x: Any = None) -> ImagePoints:
        size = x.size if x is not None else (1, 1)
        return ImagePoints(FlowField(size, t.view(-1, 2)), scale=False)


class PointsItemList(ImageList):
    "Images labelled with points (`PointsLabelList`)."
    _label_cls = PointsLabelList
    _square_show_res = False


class ImageImageList(ImageList):
    "Images whose targets are images (`label_from_func(..., label_cls=ImageList)`)."
    _label_cls = ImageList
    _square_show = False
    _square_show_res = False

    def show_xys(self, xs: Sequence, ys: Sequence, imgsize: int = 4, figsize: tuple | None = None,
                 **kwargs: Any) -> Any:
        "Show input and target images side by side."
        import matplotlib.pyplot as plt
        fig, axs = plt.subplots(len(xs), 2, figsize=ifnone(figsize, (imgsize * 2, imgsize * len(xs))), squeeze=False)
        for i, (x, y) in enumerate(zip(xs, ys)):
            x.show(ax=axs[i, 0], **kwargs)
            y.show(ax=axs[i, 1], **kwargs)
        return fig

    def show_xyzs(self, xs: Sequence, ys: Sequence, zs: Sequence, imgsize: int = 4, figsize: tuple | None = None,
                  **kwargs: Any) -> Any:
        "Show input, target and prediction images side by side."
        import matplotlib.pyplot as plt
        fig, axs = plt.subplots(len(xs), 3, figsize=ifnone(figsize, (imgsize * 3, imgsize * len(xs))), squeeze=False)
        for i, (x, y, z) in enumerate(zip(xs, ys, zs)):
            for ax, o in zip(axs[i], (x, y, z)):
                o.show(ax=ax, **kwargs)
        return fig


# ------------------------------------------------------------------------------------------------- DataBunch
def _defer_to_batch(ds: Any, resize: bool = False) -> None:
    """Make the LabelList `ds` of images stop its items before the geometric/lighting transforms (done on the batch)
    and, with `resize`, leave the upsampling of its inputs to the batch too (loaders collating by `data_collate`,
    which falls back to upsampling per item when a batch mixes source sizes)."""
    if not isinstance(ds, LabelList) or not isinstance(ds.x, ImageList):
        return
    ds.tfmargs = {**(ds.tfmargs or {}), 'on_batch': True}
    if resize:
        ds.tfmargs['resize_on_batch'] = True
    else:
        ds.tfmargs.pop('resize_on_batch', None)
    if getattr(ds, 'tfm_y', False) and hasattr(ds, 'tfmargs_y'):
        ds.tfmargs_y = {**(ds.tfmargs_y or {}), 'on_batch': True}


def _install_batch_tfms(data: DataBunch) -> None:
    """Put an ImageBatchTransform of each loader's own dataset first in its batch transforms.

    On a CPU device with workers, the augmentation runs in the workers after collating (there the device is the
    CPU, and the workers are its cores), and the batches come back as uint8 to be made float and normalized here
    (see `_tfms_to_workers`).
    """
    # (not `data.dls`: it leaves out a validation loader with no items, as an exported DataBunch has)
    for dl in _loaders(data):
        rest = [t for t in dl.tfms if not isinstance(t, ImageBatchTransform)]
        dl.tfms = [ImageBatchTransform(dl.dataset)] + rest
    _tfms_to_workers(data)


def _loaders(data: DataBunch) -> list:
    return [dl for dl in (data.train_dl, data.valid_dl, data.fix_dl, data.single_dl, data.test_dl) if dl is not None]


def _tfms_to_workers(data: DataBunch) -> None:
    """On a CPU device, let the loaders with workers run their batch transforms in them.

    The usual loader (the augmentation, then the normalization) sends its batches back as uint8: the workers
    augment and round to 8 bits, and this process makes them float and normalizes them (`ImagesToFloat`), a quarter
    of the bytes to move between processes. A loader with other batch transforms runs them all in the workers.
    """
    norm = getattr(data, 'norm', None)
    for dl in _loaders(data):
        if data.device.type != 'cpu' or dl.num_workers == 0:
            continue
        augment = [t for t in dl.tfms if isinstance(t, ImageBatchTransform)]
        rest = [t for t in dl.tfms if not isinstance(t, (ImageBatchTransform, ImagesToFloat)) and t is not norm]
        if len(augment) == 1 and not rest:
            augment = ImageBatchTransform(augment[0].ds, to_uint8=True)
            dl.tfms = [augment, ImagesToFloat(norm)]
            dl.dl = dl._new_dl(collate_fn=CollateThenTfms(dl.collate_fn, [augment]))
        else:
            dl.run_tfms_in_collate()


class _DefaultPct(float):
    "A float that `from_folder` can tell from the same number passed by the caller."


_DEFAULT_VALID_PCT = _DefaultPct(0.2)


class ImageDataBunch(DataBunch):
    "A DataBunch of images, with the random augmentation and the normalization run on whole batches on the device."

    @classmethod
    def create(cls, train_ds: Dataset, valid_ds: Dataset, test_ds: Dataset | None = None, path: PathOrStr = '.',
               bs: int = 64, val_bs: int | None = None, num_workers: int | None = None,
               dl_tfms: Collection[Callable] | None = None, device: torch.device | None = None,
               collate_fn: Callable = data_collate, no_check: bool = False, **dl_kwargs: Any) -> ImageDataBunch:
        "An ImageDataBunch of the datasets (LabelLists of images get the uint8 worker / device batch split)."
        if isinstance(getattr(train_ds, 'y', None), ObjectCategoryList):
            collate_fn = bb_pad_collate if collate_fn is data_collate else collate_fn
        for ds in (train_ds, valid_ds, test_ds):
            _defer_to_batch(ds, resize=collate_fn is data_collate)
        data = super().create(train_ds, valid_ds, test_ds, path=path, bs=bs, val_bs=val_bs, num_workers=num_workers,
                              dl_tfms=dl_tfms, device=device, collate_fn=collate_fn, no_check=no_check, **dl_kwargs)
        _install_batch_tfms(data)
        return data

    @classmethod
    def from_empty(cls, path: PathOrStr, ds: Dataset, extra: dict, **kwargs: Any) -> ImageDataBunch:
        "The inference DataBunch of an exported one: its dataset, batch transforms and normalization."
        if isinstance(getattr(ds, 'y', None), ObjectCategoryList):
            kwargs.setdefault('collate_fn', bb_pad_collate)
        _defer_to_batch(ds, resize=kwargs.get('collate_fn', data_collate) is data_collate)
        data = super().from_empty(path, ds, extra, **kwargs)
        _install_batch_tfms(data)
        norm = extra.get('normalize')
        if norm is not None:
            data.normalize((norm['mean'], norm['std']), do_x=norm['do_x'], do_y=norm['do_y'])
        return data

    def export_extra(self) -> dict:
        "The normalization statistics, which prediction must apply as training did."
        if getattr(self, 'norm', None) is None:
            return {}
        kw = self.norm.keywords
        return {'normalize': {'mean': kw['mean'], 'std': kw['std'], 'do_x': kw['do_x'], 'do_y': kw['do_y']}}

    def add_test(self, items: Any, label: Any = None, tfms: Any = None, tfm_y: bool | None = None) -> None:
        "Add a test set: a Dataset, or raw items (file names, an ItemList) processed like the validation set."
        if not isinstance(items, Dataset):
            items = self.valid_ds.test_set(items, label=label, tfms=tfms, tfm_y=tfm_y)
        _defer_to_batch(items, resize=getattr(self.valid_dl, 'collate_fn', data_collate) is data_collate)
        super().add_test(items)
        _install_batch_tfms(self)

    @classmethod
    def create_from_ll(cls, lls: LabelLists, bs: int = 64, val_bs: int | None = None, ds_tfms: Any = None,
                       num_workers: int | None = None, dl_tfms: Collection[Callable] | None = None,
                       device: torch.device | None = None, test: PathOrStr | None = None,
                       collate_fn: Callable = data_collate, size: Any = None, no_check: bool = False,
                       resize_method: Any = None, mult: int | None = None, padding_mode: str = 'reflection',
                       mode: str = 'bilinear', tfm_y: bool = False, **dl_kwargs: Any) -> ImageDataBunch:
        """An ImageDataBunch of the labelled lists `lls`, transformed by `ds_tfms` to `size` (see `Image.apply_tfms`);
        `dl_kwargs` go to the DataLoaders."""
        lls = lls.transform(tfms=ds_tfms, size=size, resize_method=resize_method, mult=mult, padding_mode=padding_mode,
                            mode=mode, tfm_y=tfm_y)
        if test is not None:
            lls.add_test_folder(test)
        return lls.databunch(bs=bs, val_bs=val_bs, dl_tfms=dl_tfms, num_workers=num_workers, collate_fn=collate_fn,
                             device=device, no_check=no_check, **dl_kwargs)

    @classmethod
    def from_folder(cls, path: PathOrStr, train: PathOrStr = 'train', valid: PathOrStr = 'valid',
                    test: PathOrStr | None = None, valid_pct: float | None = _DEFAULT_VALID_PCT,
                    seed: int | None = None, classes: Collection | None = None, **kwargs: Any) -> ImageDataBunch:
        """Images in `path/train/<class>/` and `path/valid/<class>/`, labelled by their folder; `test` names a
        folder of unlabelled images. Without a `valid` folder (or with `valid_pct` given explicitly), a random
        `valid_pct` of all the images under `path` but the `test` folder is the validation set (`valid_pct=None`:
        always the folders). Empty class folders are warned about."""
        path = Path(path)
        train_dir = path / train if (path / train).is_dir() else path
        _warn_empty_class_folders(train_dir)
        if valid_pct is _DEFAULT_VALID_PCT and (path / valid).is_dir():
            valid_pct = None
        if valid_pct is None:
            src = ImageList.from_folder(path).split_by_folder(train=str(train), valid=str(valid))
        else:
            exclude = None if test is None else [str(test)]
            src = ImageList.from_folder(path, exclude=exclude).split_by_rand_pct(valid_pct, seed)
        src = src.label_from_folder(classes=classes)
        return cls.create_from_ll(src, test=test, **kwargs)

    @classmethod
    def from_df(cls, path: PathOrStr, df: pd.DataFrame, folder: PathOrStr | None = None,
                label_delim: str | None = None, valid_pct: float = 0.2, seed: int | None = None, fn_col: Any = 0,
                label_col: Any = 1, suffix: str = '', **kwargs: Any) -> ImageDataBunch:
        "Images named in column `fn_col` of `df` (under `path/folder`), labelled by `label_col` (`label_delim`)."
        src = (ImageList.from_df(df, path, folder=folder, suffix=suffix, cols=fn_col)
               .split_by_rand_pct(valid_pct, seed)
               .label_from_df(label_delim=label_delim, cols=label_col))
        return cls.create_from_ll(src, **kwargs)

    @classmethod
    def from_csv(cls, path: PathOrStr, folder: PathOrStr | None = None, label_delim: str | None = None,
                 csv_labels: PathOrStr = 'labels.csv', valid_pct: float = 0.2, seed: int | None = None,
                 fn_col: Any = 0, label_col: Any = 1, suffix: str = '', delimiter: str | None = None,
                 header: Any = 'infer', **kwargs: Any) -> ImageDataBunch:
        "Images named in the CSV file `path/csv_labels` (see `from_df`)."
        path = Path(path)
        df = pd.read_csv(csv_file(path / csv_labels), header=header,
                         **({} if delimiter is None else {'delimiter': delimiter}))
        return cls.from_df(path, df, folder=folder, label_delim=label_delim, valid_pct=valid_pct, seed=seed,
                           fn_col=fn_col, label_col=label_col, suffix=suffix, **kwargs)

    @classmethod
    def from_lists(cls, path: PathOrStr, fnames: Sequence, labels: Sequence, valid_pct: float = 0.2,
                   seed: int | None = None, item_cls: type | None = None, **kwargs: Any) -> ImageDataBunch:
        "The files `fnames` labelled `labels` (same order), a random `valid_pct` for validation."
        item_cls = ifnone(item_cls, ImageList)
        if len(fnames) != len(labels):
            raise ValueError(f"from_lists got {len(fnames)} file names but {len(labels)} labels.")
        fname2label = {str(f): lbl for f, lbl in zip(fnames, labels)}
        src = item_cls(list(fnames), path=path).split_by_rand_pct(valid_pct, seed)
        return cls.create_from_ll(src.label_from_func(lambda o: fname2label[str(o)]), **kwargs)

    @classmethod
    def from_name_func(cls, path: PathOrStr, fnames: Sequence, label_func: Callable, valid_pct: float = 0.2,
                       seed: int | None = None, **kwargs: Any) -> ImageDataBunch:
        "The files `fnames` labelled by `label_func(fname)`."
        src = ImageList(list(fnames), path=path).split_by_rand_pct(valid_pct, seed)
        return cls.create_from_ll(src.label_from_func(label_func), **kwargs)

    @classmethod
    def from_name_re(cls, path: PathOrStr, fnames: Sequence, pat: str, valid_pct: float = 0.2, seed: int | None = None,
                     **kwargs: Any) -> ImageDataBunch:
        "The files `fnames` labelled by the first group of the regular expression `pat` on their full path."
        src = ImageList(list(fnames), path=path).split_by_rand_pct(valid_pct, seed)
        return cls.create_from_ll(src.label_from_re(pat, full_path=True), **kwargs)

    @staticmethod
    def single_from_classes(path: PathOrStr, classes: Sequence, ds_tfms: Any = None, **kwargs: Any) -> ImageDataBunch:
        "An empty DataBunch that predicts `classes` (deprecated in fastai v1: prefer `export` + `load_learner`)."
        x = ImageList([], path=path, ignore_empty=True)
        ds = LabelList(x, CategoryList(np.array([], dtype=np.int64), classes=classes, path=path),
                       tfms=ds_tfms, **kwargs)
        return ImageDataBunch.from_empty(path, ds, {})

    def batch_stats(self, funcs: Collection[Callable] | None = None, ds_type: DatasetType = DatasetType.Train
                    ) -> list[Tensor]:
        "Per-channel statistics (`funcs`, default mean and std) of one batch of `ds_type`."
        funcs = ifnone(funcs, [torch.mean, torch.std])
        x = self.one_batch(ds_type=ds_type, denorm=False)[0].float()
        return [f(channel_view(x), 1) for f in funcs]

    def normalize(self, stats: tuple | None = None, do_x: bool = True, do_y: bool = False) -> ImageDataBunch:
        "Normalize batches by `stats` = (mean, std) per channel (computed from a training batch when None)."
        if getattr(self, 'norm', None) is not None:
            raise ValueError("This DataBunch is normalized already: call normalize once.")
        if stats is None:
            stats = self.batch_stats()
        _check_stats(stats, self.train_ds[0][0].data.shape[0] if len(self.train_ds) else None)
        self.stats = stats
        # In place: the loaders' first transform (ImageBatchTransform) hands over batches nobody else holds.
        self.norm, self.denorm = normalize_funcs(*stats, do_x=do_x, do_y=do_y, inplace=True)
        self.add_tfm(self.norm)
        _tfms_to_workers(self)
        return self


ImageList._bunch = ImageDataBunch


def _check_stats(stats: Any, n_channels: int | None) -> None:
    "Raise a clear error unless `stats` is (mean, std), one value per channel (or one for all), the stds positive."
    try:
        mean, std = (torch.as_tensor(o, dtype=torch.float32) for o in stats)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"normalize takes stats = (mean, std), each one number per channel, e.g. imagenet_stats or "
                        f"([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]); not {stats!r}.") from None
    if n_channels is not None and (mean.numel() not in (1, n_channels) or std.numel() not in (1, n_channels)):
        raise ValueError(f"The stats hold {mean.numel()} mean(s) and {std.numel()} std(s), but the images have "
                         f"{n_channels} channel(s): give one value per channel (or one for all).")
    if not (std > 0).all():
        raise ValueError(f"The stds of the stats must be > 0 (dividing by them), not {std.tolist()}.")


def _warn_empty_class_folders(folder: Path) -> None:
    "Warn about the subfolders of `folder` that hold no image (they cannot be classes)."
    if not folder.is_dir():
        return
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith('.')):
        if not get_image_files(sub, recurse=True):
            warnings.warn(f"The class folder {sub} holds no image files: it is not a class of this data set.")
